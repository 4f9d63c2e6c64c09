"""Layers drawn from vector tiles: local scripts only, styles per layer, filters and the click
endpoint wired in, and script-safe JSON (the incidents map itself: tests/maps/test_incidents_map.py)."""
from __future__ import annotations

import json
import re

from gridmap.catalog import CATEGORIES
from gridmap.maps.vectortiles import AREA_STYLES, VectorTileLayer, area_tile_layer, incident_tile_layer


def render(m) -> str:
    return m.get_root().render()


def test_incident_layer_styles_colour_by_category_size_by_count_and_ring_overdue():
    html = render(_on_map(incident_tile_layer("/tiles/incidents/{z}/{x}/{y}.pbf", "/tiles/incidents/at",
                                              incident_url="/incidents/{id}")))
    assert html.count("/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js") == 1
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts and all(src.startswith("/vendor/") for src in scripts)
    incident = json.loads(re.search(r"specs = (\{.*?\});", html).group(1))
    assert incident["incidents"]["colour_by"] == "category"
    assert incident["incidents"]["colours"] == {c.code: c.colour for c in CATEGORIES}
    assert incident["incident_cells"]["size_by"] == "n"
    assert "props.overdue_at * 1000 < Date.now()" in html
    assert '"/incidents/{id}"' in html
    # Popup text defaults to Chinese; names by code fall back to the endpoint's.
    labels = json.loads(re.search(r"labels = (\{.*?\});", html).group(1))
    assert labels["cell_total"] == "本格共 {n} 起事件"


def test_area_layers_draw_outlines_from_their_tiles():
    html = render(_on_map(area_tile_layer("/tiles/grids/{z}/{x}/{y}.pbf", "grids", "网格 Grids", min_zoom=10)))
    specs = json.loads(re.search(r"specs = (\{.*?\});", html).group(1))
    assert specs == {"grids": AREA_STYLES["grids"]}
    assert "minZoom: 10" in html and "queryUrl" not in html


def test_filters_and_query_url_reach_the_layer():
    layer = incident_tile_layer("/tiles/incidents/{z}/{x}/{y}.pbf", "/tiles/incidents/at",
                                filters={"category": "DSP", "status": "open", "from": "", "to": None, "overdue": "1"})
    html = render(_on_map(layer))
    assert re.search(r'filters = \{"category": "DSP", "status": "open", "overdue": "1"\}', html)
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
