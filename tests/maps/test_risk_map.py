"""The risk map, heatmap and report map HTML: layers, measure switch and legend, escaping, local assets."""
import json
import re

import pytest

from gridmap.maps.risk import GI_COLOURS, MAX_INLINE_FEATURES, build_heat_map, build_report_map, build_risk_map, level_colours

SQUARE = {"type": "MultiPolygon", "coordinates": [[[[113.0, 33.8], [113.1, 33.8], [113.1, 33.9], [113.0, 33.9],
                                                     [113.0, 33.8]]]]}
EVIL = '<img src=x onerror="alert(1)">'


def grid_feature(code="410421102204001", name="范营村第1网格", village="范营村", gi_bin=2, **extra):
    props = {"code": code, "name": name, "village_name": village, "town_name": "闹店镇", "n_total": 5, "n_DSP": 3,
             "n_SEC": 2, "score": 7.5, "risk_level": 3, "per_km2": 12.5, "level_per_km2": 2, "per_1000": 4.1,
             "level_per_1000": 1, "open_backlog": 2, "overdue_backlog": 1, "prev_total": 2, "change": 3,
             "change_pct": 150.0, "gi_z": 2.3, "gi_bin": gi_bin, **extra}
    return {"type": "Feature", "id": code, "geometry": SQUARE, "properties": props}


def grids(*features):
    return {"type": "FeatureCollection", "features": list(features), "legend": {
        "score": [{"level": 1, "min": 0, "max": 2, "n": 10}, {"level": 3, "min": 5, "max": 9, "n": 1}],
        "per_km2": [], "per_1000": [], "gi_bin": [{"bin": 2, "label": "热点（95%置信）", "n": 1}]}}


def render(m) -> str:
    return m.get_root().render()


def shows(html: str, text: str) -> bool:
    return text in html or json.dumps(text)[1:-1] in html


def local_assets_only(html: str) -> None:
    urls = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert urls and all(u.startswith("/vendor/") for u in urls), urls
    assert "cdn" not in html.lower() and "https://" not in html


def test_risk_map_layers_measures_and_legend():
    html = render(build_risk_map(bounds=(113.0, 33.8, 113.1, 33.9), grids=grids(grid_feature()), classes=5))
    for name in ("网格风险 Grid risk", "热点轮廓 Hot spots"):
        assert shows(html, name), name
    for measure, label in (("score", "风险等级（评分）"), ("per_km2", "每平方公里事件数"),
                           ("per_1000", "每千人事件数"), ("gi_bin", "热点分析 Gi*")):
        assert shows(html, label) and f'"{measure}"' in html
    assert "gm-risk-legend" in html and "gm-risk-measures" in html and "L.control.layers" in html
    assert "410421102204001" in html  # small layers are inlined
    for colour in level_colours(5) + list(GI_COLOURS.values()):
        assert colour in html
    assert html.count("bringToFront") >= 2  # outlines stay above the fills
    local_assets_only(html)


def test_risk_map_fetches_large_layers_by_url():
    html = render(build_risk_map(bounds=(113.0, 33.8, 113.1, 33.9), grids_url="/api/risk/grids?format=geojson&from=2024-03-01"))
    assert '"/api/risk/grids?format=geojson\\u0026from=2024-03-01"' in html
    assert '"data": null' in html and "410421102204001" not in html
    with pytest.raises(ValueError):
        build_risk_map(bounds=(113.0, 33.8, 113.1, 33.9), grids=grids(), grids_url="/x")
    with pytest.raises(ValueError):
        build_risk_map(bounds=(113.0, 33.8, 113.1, 33.9), grids=grids(), measure="colour")
    too_many = grids(*[grid_feature(code=f"410421102204{i:03d}") for i in range(MAX_INLINE_FEATURES + 1)])
    with pytest.raises(ValueError, match="too many to inline"):
        build_risk_map(bounds=(113.0, 33.8, 113.1, 33.9), grids=too_many)


def test_risk_map_escapes_names():
    html = render(build_risk_map(bounds=(113.0, 33.8, 113.1, 33.9),
                                 grids=grids(grid_feature(name=EVIL, village=EVIL + "</script>"))))
    assert "<img src=x" not in html and 'alert(1)"></script>' not in html
    assert "\\u003cimg src=x" in html and "\\u003c/script\\u003e" in html
    assert "gmEscape(p.name)" in html and "gmEscape(p.village_name)" in html


def test_fewer_classes_use_a_shorter_ramp():
    assert len(level_colours(3)) == 3 and len(level_colours(2)) == 2 and level_colours(9)[0] == "#ffffcc"


def test_heat_map_fetches_monthly_cells_and_has_a_slider():
    html = render(build_heat_map(bounds=(113.0, 33.8, 113.1, 33.9), heat_url="/api/risk/heat?from=2024-01-01",
                                 grids_url="/api/grids"))
    assert '"/api/risk/heat?from=2024-01-01"' in html
    assert "L.heatLayer" in html and "gm-heat-slider" in html and "type = 'range'" in html
    assert "/vendor/leaflet.heat/dist/leaflet-heat.js" in html
    assert "setLatLngs" in html and "gm-heat-play" in html
    local_assets_only(html)


def test_report_map_layers_legend_and_escaping():
    villages = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "410421102204", "geometry": SQUARE, "properties": {
            "code": "410421102204", "name": EVIL, "town_name": "闹店镇", "compliant": False, "n_accidents": 1,
            "mediation_gap": True, "distance_m": 2500.0}}]}
    points = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": 1, "geometry": {"type": "Point", "coordinates": [113.05, 33.85]},
         "properties": {"id": 1, "name": "范营村摆理堂", "kind_zh": "摆理堂"}}]}
    html = render(build_report_map(bounds=(113.0, 33.8, 113.1, 33.9), villages=villages, points=points,
                                   distance_m=2000))
    for name in ("“三零”达标状态 Three-zero status", "调解阵地覆盖缺口（2000 米）Mediation gaps",
                 "调解阵地 Mediation points"):
        assert shows(html, name), name
    assert "<img src=x" not in html and "gmEscape" in html
    assert shows(html, "2000 米内无调解阵地") and "gm-legend" in html
    assert '"true": {"fillColor": "#1a9641"}' in html and '"false": {"fillColor": "#d7191c"}' in html
    local_assets_only(html)
