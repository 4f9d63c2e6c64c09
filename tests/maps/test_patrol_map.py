"""The patrol maps' HTML: the coverage layer with its highlight control and legend, tracks and
hot spots by URL or inline, the route's numbered stops in order, escaping, local assets only."""
import json
import re

import pytest

from gridmap.maps.patrol import HOUR_CLASSES, NEVER_COLOUR, CoverageGridLayer, build_coverage_map, build_route_map

EVIL = '<img src=x onerror="alert(1)">'


def square(x0: float, y0: float, size: float = 0.01) -> dict:
    return {"type": "MultiPolygon", "coordinates": [[[[x0, y0], [x0 + size, y0], [x0 + size, y0 + size],
                                                      [x0, y0 + size], [x0, y0]]]]}


def fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def grid(code: str, x0: float, hours, name: str = "范营村第1网格", high_risk: bool = True) -> dict:
    return {"type": "Feature", "id": code, "geometry": square(x0, 33.8),
            "properties": {"code": code, "name": name, "village_name": "范营村", "risk_level": 4, "hotspot": False,
                           "high_risk": high_risk, "visits": 0 if hours is None else 2, "dwell_minutes": 24.0,
                           "share_10_15": 0.5, "hours_since_last_visit": hours, "longest_gap_hours": 30.0}}


def coverage_html(grids=None, grids_url=None, hours=24) -> str:
    m = build_coverage_map(
        bounds=(113.0, 33.8, 113.1, 33.9), grids=grids, grids_url=grids_url,
        tracks_url="/api/patrol/tracks?format=geojson&from=2026-10-18&to=2026-11-01",
        hotspots=fc({"type": "Feature", "id": "H410421102204001", "geometry": square(113.0, 33.8, 0.02),
                     "properties": {"id": "H410421102204001", "visits": 3}}),
        zones=fc({"type": "Feature", "id": "Z1", "geometry": square(113.0, 33.8, 0.1),
                  "properties": {"code": "Z1", "name": EVIL}}),
        stations=fc({"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.05, 33.85]},
                     "properties": {"code": "PS1", "name": EVIL}}), hours=hours)
    return m.get_root().render()


def config_of(html: str, marker: str) -> dict:
    """The JSON configuration object a layer's script is called with (the last argument)."""
    start = html.index(marker)
    call = html[start:]
    body = call[call.index("})(") + 3:]
    args = body[:body.index(");\n")]
    return json.loads(args[args.index("{"):])


def test_coverage_layer_colours_highlight_and_legend():
    html = coverage_html(fc(grid("410421102204001", 113.0, 3.5), grid("410421102204002", 113.01, None),
                            grid("410421102204003", 113.02, 50.0)), hours=36)
    cfg = config_of(html, "gm-cov-highlight")
    assert [f["id"] for f in cfg["data"]["features"]] == ["410421102204001", "410421102204002", "410421102204003"]
    assert cfg["hours"] == 36 and cfg["highRiskOnly"] is True and cfg["url"] is None
    assert cfg["classes"] == [[b, c] for b, c, _ in HOUR_CLASSES] and cfg["never"] == NEVER_COLOUR
    assert 'input.id = \'gm-cov-hours\'' in html and "gmSetHours" in html
    # The legend is a control inside the map (it stays with the map when the page scrolls).
    text = json.loads(re.search(r"div\.innerHTML = (\".*?\");", html).group(1))
    assert "position: fixed" not in html
    for _, colour, label in HOUR_CLASSES:
        assert colour in text and label in text
    assert "期间内未巡逻" in text and "默认 36" in text


def test_large_layers_and_tracks_come_by_url():
    html = coverage_html(grids_url="/api/patrol/coverage?format=geojson&zone=Z1")
    cfg = config_of(html, "gm-cov-highlight")
    assert cfg["data"] is None and cfg["url"] == "/api/patrol/coverage?format=geojson&zone=Z1"
    assert '"/api/patrol/tracks?format=geojson\\u0026from=2026-10-18\\u0026to=2026-11-01"' in html
    assert "H410421102204001" in html  # hot spots are few and drawn inline


def test_coverage_needs_grids_one_way():
    with pytest.raises(ValueError, match="either inline"):
        CoverageGridLayer()
    with pytest.raises(ValueError, match="either inline"):
        CoverageGridLayer(data=fc(), url="/x")


def test_typed_names_are_escaped():
    html = coverage_html(fc(grid("410421102204001", 113.0, 3.5, name=EVIL)))
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html          # the station's tooltip
    assert "\\u003cimg src=x" in html       # the grid's name in the layer's data, escaped again by gmEscape
    assert "gmEscape(r[1])" in html


def test_only_local_assets():
    html = coverage_html(fc(grid("410421102204001", 113.0, 1.0)))
    urls = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert urls and all(u.startswith("/vendor/") for u in urls), urls
    assert "cdn" not in html.lower() and "https://" not in html


ROUTE = {
    "id": 7, "station_name": "闹店派出所", "start": [113.05, 33.85],
    "path": {"type": "LineString", "coordinates": [[113.05, 33.85], [113.06, 33.86], [113.07, 33.84],
                                                   [113.05, 33.85]]},
    "stops": [
        {"order": 1, "grid_code": "410421102204001", "name": EVIL, "village_name": "范营村", "lon": 113.06,
         "lat": 33.86, "arrival": "2026-11-01T08:03+08:00", "departure": "2026-11-01T08:15+08:00", "risk_level": 4,
         "hotspot": True, "hours_since_last_visit": None},
        {"order": 2, "grid_code": "410421102204002", "name": "范营村第2网格", "village_name": "范营村", "lon": 113.07,
         "lat": 33.84, "arrival": "2026-11-01T08:22+08:00", "departure": "2026-11-01T08:34+08:00", "risk_level": 3,
         "hotspot": False, "hours_since_last_visit": 30.5},
    ],
}


def route_html() -> str:
    m = build_route_map(route=ROUTE, zone=fc({"type": "Feature", "id": "Z1", "geometry": square(113.0, 33.8, 0.2),
                                             "properties": {"code": "Z1", "name": "巡区"}}),
                        stop_grids=fc({"type": "Feature", "id": "410421102204001", "geometry": square(113.055, 33.855),
                                       "properties": {"code": "410421102204001", "name": EVIL}}))
    return m.get_root().render()


def test_route_stops_are_numbered_in_order():
    html = route_html()
    cfg = config_of(html, "window.gmRoute = layer")
    assert [(s["order"], s["grid_code"]) for s in cfg["stops"]] == [(1, "410421102204001"), (2, "410421102204002")]
    assert cfg["path"] == ROUTE["path"]["coordinates"] and cfg["start"] == ROUTE["start"]
    assert "gm-stop-number" in html and "data-order=" in html and "layer.gmStops" in html
    assert "<img src=x" not in html and "\\u003cimg src=x" in html
    # The map is fitted to the zone, not only to the path: its bounds reach the zone's corner.
    assert "[[33.8, 113.0], [34.0, 113.2]]" in html


def test_route_map_assets_are_local():
    html = route_html()
    urls = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert urls and all(u.startswith("/vendor/") for u in urls), urls


def test_labels_reach_the_scripts_and_the_legend_escaped():
    from gridmap.maps.patrol import DEFAULT_LABELS

    english = {key: f"EN:{key}" for key in DEFAULT_LABELS}
    english["legend_highlight"] = "Outlined: over {hours} h " + EVIL
    m = build_coverage_map(bounds=(113.0, 33.8, 113.1, 33.9), grids=fc(grid("410421102204001", 113.0, 5.0)),
                           tracks_url="/t", hotspots=fc(), zones=fc(), stations=fc(), hours=36, labels=english)
    page = m.get_root().render()
    assert '"highlight": "EN:highlight"' in page and '"stale_count": "EN:stale_count"' in page
    assert "EN:legend_title" in page and "EN:class_0" in page and "Outlined: over 36 h" in page
    assert "\\u0026lt;img src=x" in page and EVIL not in page  # escaped into the legend, then JSON
    assert "红框" not in page and "距上次巡逻" not in page and "6 小时内" not in page
