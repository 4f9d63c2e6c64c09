"""The folium map drawn from vector tiles: local scripts only, styles per layer, filters and the
click endpoint wired in, nothing inlined, and script-safe JSON."""
from __future__ import annotations

import json
import re

from gridmap.catalog import CATEGORIES
from gridmap.maps.vectortiles import VectorTileLayer, build_incident_tiles_map, incident_tile_layer

BOUNDS = (112.7, 33.75, 113.3, 34.05)
TILE_URLS = {name: f"/tiles/{name}/{{z}}/{{x}}/{{y}}.pbf" for name in ("incidents", "towns", "villages", "grids")}


def render(m) -> str:
    return m.get_root().render()


def test_map_uses_local_vectorgrid_and_no_cdn():
    html = render(build_incident_tiles_map(bounds=BOUNDS, tile_urls=TILE_URLS, query_url="/tiles/incidents/at"))
    assert html.count("/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js") == 1
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts and all(src.startswith("/vendor/") for src in scripts)
    assert all(href.startswith("/vendor/") for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', html))
    assert html.count("L.vectorGrid.protobuf(") == 4
    for name in ("事件 Incidents", "乡镇 Towns", "村/社区 Villages", "网格 Grids"):
        assert f"{json.dumps(name)} : vector_tile_layer_" in html   # in the layer control
    assert len(html) < 60_000


def test_incident_styles_colour_by_category_and_size_by_count():
    html = render(build_incident_tiles_map(bounds=BOUNDS, tile_urls=TILE_URLS, query_url="/tiles/incidents/at",
                                           incident_url="/incidents/{id}"))
    all_specs = [json.loads(m) for m in re.findall(r"specs = (\{.*?\});", html)]
    incident = next(s for s in all_specs if "incidents" in s)
    assert incident["incidents"]["colour_by"] == "category"
    assert incident["incidents"]["colours"] == {c.code: c.colour for c in CATEGORIES}
    assert incident["incident_cells"]["size_by"] == "n"
    assert '"/incidents/{id}"' in html
    for c in CATEGORIES:
        assert c.name_zh in html   # the legend


def test_filters_and_query_url_reach_the_layer():
    layer = incident_tile_layer("/tiles/incidents/{z}/{x}/{y}.pbf", "/tiles/incidents/at",
                                filters={"category": "DSP", "status": "open", "from": "", "to": None})
    html = render(_on_map(layer))
    assert re.search(r'filters = \{"category": "DSP", "status": "open"\}', html)
    assert 'var queryUrl = "/tiles/incidents/at"' in html
    assert "gmEscape(" in html and "window.gmEscape" in html


def test_json_in_the_script_cannot_close_it():
    evil = "</script><script>alert(1)</script>"
    layer = VectorTileLayer("/tiles/incidents/{z}/{x}/{y}.pbf", "x", styles={}, filters={"category": evil})
    html = render(_on_map(layer))
    assert evil not in html
    assert "\\u003c/script\\u003e" in html


def _on_map(layer):
    import folium

    from gridmap.maps.assets import use_local_assets

    m = folium.Map(tiles=None)
    layer.add_to(m)
    return use_local_assets(m)
