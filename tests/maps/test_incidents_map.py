"""The incidents map's HTML: incidents from vector tiles by URL (never inlined), the filter form
driving the tile layer, category colours, escaping, labels in the page's language, and no asset
from outside the app."""
import json
import re

from gridmap.catalog import CATEGORIES
from gridmap.maps.incidents import (DEFAULT_LABELS, build_case_map, build_incidents_map, incident_popup_html,
                                    safe_colour, script_json)

CATEGORY_ROWS = [{"code": c.code, "name": c.name_zh, "colour": c.colour,
                  "subcategories": {code: zh for code, zh, _ in c.subcategories}} for c in CATEGORIES]
TILE_URLS = {name: f"/tiles/{name}/{{z}}/{{x}}/{{y}}.pbf" for name in ("incidents", "towns", "villages", "grids")}
# Scripts and stylesheets the page loads.
ASSET_URL = re.compile(r'(?:<script[^>]*\ssrc|<link[^>]*\shref)="([^"]*)"')
EVIL = '</script><script>alert("x")</script>'


def build(**overrides):
    kwargs = dict(bounds=(113.0, 33.8, 113.1, 33.9), tile_urls=TILE_URLS, query_url="/tiles/incidents/at",
                  case_url="/incidents/{id}", categories=CATEGORY_ROWS,
                  statuses=[("open", "未结"), ("reported", "上报")], status_names={"reported": "上报"},
                  filters={"category": "DSP", "overdue": "1"})
    kwargs.update(overrides)
    return build_incidents_map(**kwargs).get_root().render()


def config_of(html: str) -> dict:
    """The filter form's configuration, as the page's script receives it."""
    return json.loads(re.search(r"\}\)\(vector_tile_layer_\w+, map_\w+, (\{.*\})\);", html).group(1))


def test_layers_and_controls():
    html = build()
    assert html.count("L.vectorGrid.protobuf(") == 4      # incidents, towns, villages, grids
    assert '"/tiles/incidents/{z}/{x}/{y}.pbf"' in html and 'var queryUrl = "/tiles/incidents/at"' in html
    assert '"/incidents/{id}"' in html
    assert "L.markerClusterGroup" not in html and "/api/incidents" not in html
    assert "gm-incident-filters" in html and "L.control.layers" in html
    # The form changes the tile layer's filters, it does not fetch incidents itself.
    assert "layer.gmSetFilters(changes)" in html
    assert re.search(r'filters = \{"category": "DSP", "overdue": "1"\}', html)
    config = config_of(html)
    assert config["filters"] == {"category": "DSP", "overdue": "1"}
    assert config["statuses"] == [["open", "未结"], ["reported", "上报"]]
    assert [code for code, _ in config["categories"]] == [c.code for c in CATEGORIES]
    specs = next(json.loads(m) for m in re.findall(r"specs = (\{.*?\});", html) if "incidents" in m)
    assert specs["incidents"]["colours"] == {c.code: c.colour for c in CATEGORIES}
    assert specs["incidents"]["overdue"]["style"]["color"] == "#d7191c"
    assert specs["incident_cells"]["size_by"] == "n"
    for c in CATEGORIES:
        assert c.name_zh in html or json.dumps(c.name_zh)[1:-1] in html   # legend, form
    assert "超期（红圈）" in html and "每格 1,000 起以上" in html


def test_colours_come_from_the_category_table():
    rows = [dict(r, colour="#123456") if r["code"] == "DSP" else r for r in CATEGORY_ROWS]
    html = build(categories=rows)
    specs = next(json.loads(m) for m in re.findall(r"specs = (\{.*?\});", html) if "incidents" in m)
    assert specs["incidents"]["colours"]["DSP"] == "#123456"
    assert "background:#123456" in html.replace(" ", "")       # the legend agrees


def test_only_local_assets():
    html = build()
    urls = ASSET_URL.findall(html)
    assert urls, "the map loads scripts and styles"
    assert all(u.startswith("/vendor/") for u in urls), urls
    assert urls.count("/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js") == 1
    lowered = html.lower()
    assert "cdn" not in lowered and "unpkg" not in lowered and "https://" not in lowered


def test_no_incident_is_inlined():
    """The page holds the tiles' URLs, not their features, so it does not grow with the data."""
    html = build()
    assert '"type": "Feature"' not in html and "FeatureCollection" not in html
    assert len(build(filters={})) < 60_000


def test_popups_escape_server_text_in_the_browser():
    html = build()
    popup = html[html.index("function incidentHtml"):html.index("layer.gmQuery = function")]
    for field in ("i.description", "i.village_name", "i.grid_name", "i.severity", "i.id", "c.n", "labels.open_case"):
        assert f"gmEscape({field})" in popup, field
    assert 'class="gm-case-link"' in popup
    assert "window.gmEscape" in html


def test_labels_from_the_page_replace_the_chinese_ones():
    english = {"category": "Category", "all": "All", "incidents_layer": "Incidents", "legend": "Categories",
               "open_case": "Open case", "cell_total": "{n} incidents here"}
    rows = [dict(r, name={"DSP": "Dispute"}.get(r["code"], r["name"])) for r in CATEGORY_ROWS]
    html = build(labels=english, categories=rows)
    config = config_of(html)
    assert config["labels"]["category"] == "Category" and config["labels"]["to"] == DEFAULT_LABELS["to"]
    assert ["DSP", "Dispute"] in config["categories"]
    assert '"open_case": "Open case"' in html and '"cell_total": "{n} incidents here"' in html
    assert '"Incidents" : vector_tile_layer_' in html and "<b>Categories</b>" in html


def test_labels_from_the_database_cannot_break_out_of_the_script():
    rows = CATEGORY_ROWS + [{"code": "XSS", "name": EVIL, "colour": 'red" onmouseover="alert(1)',
                             "subcategories": {"x": EVIL}}]
    html = build(categories=rows, labels={"overdue": EVIL}, status_names={"reported": EVIL})
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
