"""The home map's HTML: layers, legend, escaping, and no asset from outside the app."""
import json
import re

from gridmap.maps.home import build_home_map
from gridmap.maps.render import map_parts

SQUARE = {"type": "MultiPolygon", "coordinates": [[[[113.0, 33.8], [113.1, 33.8], [113.1, 33.9], [113.0, 33.9],
                                                     [113.0, 33.8]]]]}


def fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def build(point_name="范营村摆理堂"):
    return build_home_map(
        bounds=(113.0, 33.8, 113.1, 33.9),
        county=fc({"type": "Feature", "geometry": SQUARE, "properties": {"code": "410421", "name": "宝丰县"}}),
        towns=fc({"type": "Feature", "geometry": SQUARE, "properties": {"code": "410421102000", "name": "闹店镇"}}),
        stations=fc({"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.05, 33.85]},
                     "properties": {"code": "PS1", "name": "闹店派出所"}}),
        zones=fc(),
        mediation_points=fc({"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.02, 33.83]},
                             "properties": {"id": 1, "name": point_name, "kind": "bailitang",
                                            "contact": "0375-6000000", "mediators": 5, "opening_hours": "全天"}}),
        villages_url="/api/villages?simplify=5", grids_url="/api/grids",
    )


def shows(html: str, text: str) -> bool:
    """Layer names reach the page raw or as JSON \\u escapes; either is the same text to the browser."""
    return text in html or json.dumps(text)[1:-1] in html


def test_layers_legend_and_urls():
    html = build().get_root().render()
    for name in ("县界 County", "乡镇 Towns", "网格 Grids", "村/社区 Villages", "派出所 Police stations",
                 "调解阵地 Mediation points", "巡区 Patrol zones"):
        assert shows(html, name), name
    assert '"/api/grids"' in html          # grids come from the API for the view ...
    assert "410421102204001" not in html   # ... and are never inlined
    assert "gm-legend" in html and "摆理堂" in html
    assert "L.control.scale" in html
    assert "\"maxZoom\": 19" in html  # marker clusters need a finite max zoom


def test_every_asset_is_served_locally():
    html = build().get_root().render()
    urls = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert urls, "the map loads scripts"
    assert all(u.startswith("/vendor/") for u in urls), urls
    assert "cdn" not in html.lower() and "https://" not in html


def test_names_are_escaped_in_popups():
    html = build('<img src=x onerror="alert(1)">').get_root().render()
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html


def test_map_parts_split_for_the_page_template():
    parts = map_parts(build())
    assert "/vendor/leaflet/dist/leaflet.js" in parts.header
    assert 'class="folium-map"' in parts.html
    assert "L.map(" in parts.script
