"""The incidents map's HTML: the layer fetched by URL (never inlined), clustering and filters,
category colours, escaping, and no asset from outside the app."""
import json
import re

from gridmap.catalog import CATEGORIES
from gridmap.maps.incidents import (build_case_map, build_incidents_map, incident_popup_html, safe_colour,
                                    script_json)

CATEGORY_ROWS = [{"code": c.code, "name_zh": c.name_zh, "colour": c.colour} for c in CATEGORIES]
# Scripts and stylesheets the page loads.
ASSET_URL = re.compile(r'(?:<script[^>]*\ssrc|<link[^>]*\shref)="([^"]*)"')
EVIL = '</script><script>alert("x")</script>'


def build(**overrides):
    kwargs = dict(bounds=(113.0, 33.8, 113.1, 33.9), layer_url="/api/incidents", case_url="/incidents/__ID__",
                  categories=CATEGORY_ROWS, statuses=[("open", "未结"), ("reported", "上报")],
                  filters={"category": "DSP", "overdue": "1"}, grids_url="/api/grids")
    kwargs.update(overrides)
    return build_incidents_map(**kwargs).get_root().render()


def test_layers_and_controls():
    html = build()
    assert "L.markerClusterGroup" in html
    assert '"url": "/api/incidents"' in html and '"caseUrl": "/incidents/__ID__"' in html
    assert "'bbox=' + bbox" in html or "bbox:" in html
    assert "zoom: map.getZoom()" in html
    assert "gm-incident-filters" in html and "L.control.layers" in html
    for c in CATEGORIES:
        assert c.colour in html, c.code
        assert c.name_zh in html or json.dumps(c.name_zh)[1:-1] in html
    assert '"filters": {"category": "DSP", "overdue": "1"}' in html
    assert "gm-overdue" in html and "gm-srv-cluster" in html
    assert "/api/grids" in html


def test_only_local_assets():
    html = build()
    urls = ASSET_URL.findall(html)
    assert urls, "the map loads scripts and styles"
    assert all(u.startswith("/vendor/") for u in urls), urls
    assert "/vendor/leaflet.markercluster/dist/leaflet.markercluster.js" in urls
    assert "/vendor/leaflet.markercluster/dist/MarkerCluster.Default.css" in urls
    lowered = html.lower()
    assert "cdn" not in lowered and "unpkg" not in lowered and "https://" not in lowered


def test_no_incident_is_inlined():
    """The page holds the layer's URL, not its features, so it does not grow with the data."""
    html = build()
    assert '"type": "Feature"' not in html and "FeatureCollection" not in html
    assert len(build(filters={})) < 60_000


def test_popups_escape_server_text_in_the_browser():
    html = build()
    popup = html[html.index("function popupHtml"):html.index("function incidentMarker")]
    for field in ("p.description", "p.status_zh", "p.village_name", "p.subcategory_zh", "p.id"):
        assert f"gmEscape({field})" in popup, field
    assert "window.gmEscape" in html


def test_labels_from_the_database_cannot_break_out_of_the_script():
    rows = CATEGORY_ROWS + [{"code": "XSS", "name_zh": EVIL, "colour": 'red" onmouseover="alert(1)'}]
    html = build(categories=rows, labels={"overdue": EVIL})
    assert EVIL not in html
    assert "\\u003c/script\\u003e" in html
    assert 'onmouseover="alert(1)' not in html
    assert "</script><script>alert" not in html


def test_safe_colour_and_script_json():
    assert safe_colour("#e6550d") == "#e6550d"
    assert safe_colour("#abc") == "#abc"
    assert safe_colour("red;background:url(x)") == "#777777"
    assert safe_colour(None) == "#777777"
    assert json.loads(script_json({"a": "</script>&"})) == {"a": "</script>&"}
    assert "<" not in script_json("</script>")


def test_popup_html_escapes_everything():
    popup = incident_popup_html({"id": 7, "category_zh": "矛盾纠纷", "subcategory_zh": "<i>邻里</i>",
                                 "status_zh": "上报", "occurred_at": "2026-11-20T09:30:00+08:00",
                                 "village_name": "范营村", "description": '<script>alert("x")</script>',
                                 "overdue": True}, "/incidents/7?a=1&b=2")
    assert "<script>" not in popup and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in popup
    assert "&lt;i&gt;邻里&lt;/i&gt;" in popup
    assert 'href="/incidents/7?a=1&amp;b=2"' in popup
    assert "超期" in popup and "2026-11-20 09:30" in popup


def test_case_map_marker_popup_and_assets():
    m = build_case_map(lon=113.05, lat=33.85, properties={"id": 3, "category_zh": "治安", "status_zh": "受理",
                                                          "description": "<img src=x onerror=alert(1)>",
                                                          "overdue": True},
                       case_url="/incidents/3", colour="#de2d26", grids_url="/api/grids")
    html = m.get_root().render()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert "#de2d26" in html and "gm-overdue" in html
    assert "[33.85, 113.05]" in html
    urls = ASSET_URL.findall(html)
    assert all(u.startswith("/vendor/") for u in urls), urls
