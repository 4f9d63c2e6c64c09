"""The incidents map (vector tiles: counts per cell at low zoom, incidents coloured by category
at high zoom, with filters and click-to-query popups) and the small map on a case page."""
from __future__ import annotations

import html
import json
import re

import folium
from branca.element import MacroElement
from jinja2 import Template

from gridmap.maps.assets import use_local_assets
from gridmap.maps.elements import BboxGeoJson, Legend
from gridmap.maps.home import base_map
from gridmap.maps.vectortiles import (INCIDENT_STYLES, OVERDUE_COLOUR, POPUP_LABELS, N_, area_tile_layer,
                                      incident_tile_layer)

DEFAULT_COLOUR = "#777777"
_COLOUR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?")


def safe_colour(value: str | None) -> str:
    """A CSS hex colour, or grey when the stored value is anything else (it ends up in markup)."""
    return value if isinstance(value, str) and _COLOUR.fullmatch(value) else DEFAULT_COLOUR


def script_json(value) -> str:
    """JSON that is safe inside a <script> element: no ``</script>``, no HTML comment openers."""
    return (json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


INCIDENT_CSS = """
.gm-inc-icon span { display: block; width: 14px; height: 14px; border-radius: 50%;
    border: 2px solid #fff; box-shadow: 0 0 2px rgba(0,0,0,.6); }
.gm-inc-icon.gm-overdue span { border: 3px solid #d7191c; width: 16px; height: 16px; margin: -1px; }
.gm-inc-popup { font: 13px/1.5 sans-serif; max-width: 260px; }
.gm-inc-popup .gm-inc-desc { white-space: pre-wrap; word-break: break-word; margin: 4px 0; color: #333; }
.gm-overdue-tag { background: #d7191c; color: #fff; border-radius: 3px; padding: 0 4px; font-size: 12px; }
"""

FILTER_CSS = """
.gm-inc-filters { background: rgba(255,255,255,.95); padding: 6px 8px; border-radius: 4px;
    font: 12px/1.6 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3); max-width: 220px; }
.gm-inc-filters label { display: block; }
.gm-inc-filters select, .gm-inc-filters input[type=date] { max-width: 150px; font-size: 12px; }
"""

FILTER_KEYS = ("category", "status", "from", "to", "overdue")
# The page's text in Chinese; the web layer passes it translated (``labels``).
DEFAULT_LABELS = {
    "category": N_("类别"), "status": N_("状态"), "from": N_("起"), "to": N_("止"), "overdue_only": N_("仅超期"),
    "all": N_("全部"), "incidents_layer": N_("事件"), "towns_layer": N_("乡镇"), "villages_layer": N_("村/社区"),
    "grids_layer": N_("网格"), "legend": N_("事件类别"), "legend_overdue": N_("超期（红圈）"),
    "legend_cells": N_("每格 {n} 起以上"),
    **POPUP_LABELS,
}


class IncidentFilterControl(MacroElement):
    """The filter form on the map (category, status, period, overdue only). A change sets the
    incidents tile layer's filters (``gmSetFilters``): the layer asks for new tiles, the page
    is not reloaded, and the address bar keeps the filters so a reload or a shared link shows
    the same. Every label is set as text, never as HTML."""

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>{{ this.css }}</style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        (function (layer, map, cfg) {
            var filters = Object.assign({}, cfg.filters);
            var control = L.control({position: 'topleft'});
            control.onAdd = function () {
                var form = L.DomUtil.create('form', 'gm-inc-filters');
                form.id = 'gm-incident-filters';
                L.DomEvent.disableClickPropagation(form);
                L.DomEvent.disableScrollPropagation(form);
                function field(label, input) {
                    var l = document.createElement('label');
                    l.appendChild(document.createTextNode(label + ' '));
                    l.appendChild(input);
                    form.appendChild(l);
                }
                function select(name, options) {
                    var s = document.createElement('select');
                    s.name = name;
                    options.forEach(function (o) {
                        var opt = document.createElement('option');
                        opt.value = o[0]; opt.textContent = o[1];
                        if (String(filters[name] || '') === o[0]) { opt.selected = true; }
                        s.appendChild(opt);
                    });
                    return s;
                }
                field(cfg.labels.category, select('category', [['', cfg.labels.all]].concat(cfg.categories)));
                field(cfg.labels.status, select('status', [['', cfg.labels.all]].concat(cfg.statuses)));
                ['from', 'to'].forEach(function (name) {
                    var d = document.createElement('input');
                    d.type = 'date'; d.name = name; d.value = filters[name] || '';
                    field(cfg.labels[name], d);
                });
                var overdue = document.createElement('input');
                overdue.type = 'checkbox'; overdue.name = 'overdue'; overdue.checked = filters.overdue === '1';
                field(cfg.labels.overdue_only, overdue);
                form.addEventListener('change', function () {
                    var from = form.elements.from.value, to = form.elements.to.value;
                    // The server refuses a period whose start is after its end; swap them.
                    if (from && to && from > to) { var t = from; from = to; to = t; }
                    var changes = {category: form.elements.category.value, status: form.elements.status.value,
                                   from: from, to: to, overdue: overdue.checked ? '1' : ''};
                    layer.gmSetFilters(changes);
                    var q = new URLSearchParams(window.location.search);
                    Object.keys(changes).forEach(function (k) { if (changes[k]) { q.set(k, changes[k]); } else { q.delete(k); } });
                    var search = q.toString();
                    window.history.replaceState(null, '', window.location.pathname + (search ? '?' + search : ''));
                });
                form.addEventListener('submit', function (e) { e.preventDefault(); });
                return form;
            };
            control.addTo(map);
        })({{ this.layer.get_name() }}, {{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, layer, *, categories: list[tuple[str, str]], statuses: list[tuple[str, str]],
                 filters: dict | None = None, labels: dict | None = None):
        super().__init__()
        self._name = "IncidentFilterControl"
        self.layer = layer
        self.css = FILTER_CSS
        self.config_json = script_json({
            "categories": [[code, name] for code, name in categories],
            "statuses": [[code, label] for code, label in statuses],
            "filters": {k: str(v) for k, v in (filters or {}).items() if k in FILTER_KEYS and v not in (None, "")},
            "labels": {**DEFAULT_LABELS, **(labels or {})},
        })


def build_incidents_map(*, bounds, tile_urls: dict[str, str], query_url: str, case_url: str,
                        categories: list[dict], statuses: list[tuple[str, str]],
                        status_names: dict[str, str] | None = None, filters: dict | None = None,
                        labels: dict | None = None, basemap_url: str = "",
                        basemap_attribution: str = "") -> folium.Map:
    """Build the incidents map: the incidents of any area at any zoom from vector tiles.

    Counts per cell at low zoom, single incidents coloured by category (a red ring when
    overdue) where a tile holds few enough; a click asks ``query_url`` what is there and opens
    a popup that links to the case. The page holds no incidents, so its size and render time do
    not grow with the data; the tiles are scoped to the user by the tile endpoint.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit, e.g. the user's area.
    tile_urls : dict
        Tile URL templates (``{z}/{x}/{y}``) by layer: ``incidents`` and optionally ``towns``,
        ``villages``, ``grids``.
    query_url : str
        The click endpoint (``/tiles/incidents/at``).
    case_url : str
        Link to a case page with ``{id}`` where the incident id goes.
    categories : list of dict
        ``code``, ``name`` (in the page's language), ``colour`` and optionally
        ``subcategories`` (``{code: name}``) per category.
    statuses : list of (str, str)
        Status filter choices as (value, label); ``open`` stands for every open status.
    status_names : dict, optional
        Status names by code in the page's language (for popups).
    filters : dict, optional
        Initial filter values (``category``, ``status``, ``from``, ``to``, ``overdue``).
    labels : dict, optional
        Text overriding the Chinese :data:`DEFAULT_LABELS` (for the English interface).

    Returns
    -------
    folium.Map
        With area outlines, the incident layer, a filter control, a legend and local assets only.

    Examples
    --------
    >>> m = build_incidents_map(bounds=(113.0, 33.8, 113.2, 34.0),
    ...                         tile_urls={"incidents": "/tiles/incidents/{z}/{x}/{y}.pbf"},
    ...                         query_url="/tiles/incidents/at", case_url="/incidents/{id}",
    ...                         categories=[], statuses=[])
    >>> "/tiles/incidents/{z}/{x}/{y}.pbf" in m.get_root().render()
    True
    """
    text = {**DEFAULT_LABELS, **(labels or {})}
    filters = {k: str(v) for k, v in (filters or {}).items() if k in FILTER_KEYS and v not in (None, "")}
    m = base_map(bounds, basemap_url, basemap_attribution)
    if "towns" in tile_urls:
        area_tile_layer(tile_urls["towns"], "towns", text["towns_layer"]).add_to(m)
    if "villages" in tile_urls:
        area_tile_layer(tile_urls["villages"], "villages", text["villages_layer"], min_zoom=8, show=False).add_to(m)
    if "grids" in tile_urls:
        area_tile_layer(tile_urls["grids"], "grids", text["grids_layer"], min_zoom=10).add_to(m)
    names = {"categories": {c["code"]: {"name": c["name"], "colour": safe_colour(c.get("colour")),
                                        "subcategories": dict(c.get("subcategories") or {})}
                            for c in categories},
             "statuses": dict(status_names or {})}
    layer = incident_tile_layer(tile_urls["incidents"], query_url, filters=filters, incident_url=case_url,
                                names=names, labels={k: text[k] for k in POPUP_LABELS}, name=text["incidents_layer"],
                                colours={c["code"]: safe_colour(c.get("colour")) for c in categories})
    layer.add_to(m)
    IncidentFilterControl(layer, categories=[(c["code"], c["name"]) for c in categories], statuses=statuses,
                          filters=filters, labels=text).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    cells = [(colour, text["legend_cells"].replace("{n}", f"{threshold:,}"))
             for threshold, colour in INCIDENT_STYLES["incident_cells"]["colour_steps"]]
    Legend(text["legend"], [(safe_colour(c.get("colour")), c["name"]) for c in categories]
           + [(OVERDUE_COLOUR, text["legend_overdue"])] + cells).add_to(m)
    _Css(INCIDENT_CSS).add_to(m)
    return use_local_assets(m)


def incident_popup_html(properties: dict, case_url: str) -> str:
    """A popup for one incident, every value escaped.

    Parameters
    ----------
    properties : dict
        ``category_zh``, ``subcategory_zh``, ``status_zh``, ``occurred_at``, ``village_name``,
        ``description``, ``overdue`` and ``id`` (as the incidents API returns them).
    case_url : str
        The case page's URL.

    Returns
    -------
    str
        HTML safe to put in a folium popup.
    """
    e = html.escape
    title = e(str(properties.get("category_zh") or properties.get("category") or ""))
    if properties.get("subcategory_zh"):
        title += " · " + e(str(properties["subcategory_zh"]))
    overdue = ' <span class="gm-overdue-tag">超期</span>' if properties.get("overdue") else ""
    when = str(properties.get("occurred_at") or "").replace("T", " ")[:16]
    return (f'<div class="gm-inc-popup"><b>{title}</b>{overdue}<br>{e(str(properties.get("status_zh") or ""))}'
            f' · {e(when)}<br>{e(str(properties.get("village_name") or ""))}'
            f'<div class="gm-inc-desc">{e(str(properties.get("description") or ""))}</div>'
            f'<a href="{e(case_url)}">查看案件 #{e(str(properties.get("id", "")))}</a></div>')


class _Css(MacroElement):
    _template = Template("""{% macro header(this, kwargs) %}<style>{{ this.css }}</style>{% endmacro %}""")

    def __init__(self, css: str):
        super().__init__()
        self.css = css


def build_case_map(*, lon: float, lat: float, properties: dict, case_url: str, colour: str | None = None,
                   grids_url: str | None = None, basemap_url: str = "", basemap_attribution: str = "") -> folium.Map:
    """A small map of one case: its marker (coloured by category, red ring when overdue) with an
    escaped popup, and the grid outlines around it.

    Parameters
    ----------
    lon, lat : float
        The incident's WGS84 position.
    properties : dict
        As for :func:`incident_popup_html`.
    case_url : str
        The case page's URL (the popup links to it).
    colour : str, optional
        Category colour (hex); anything else draws grey.
    grids_url : str, optional
        Grid outlines fetched by bbox.

    Returns
    -------
    folium.Map
    """
    delta = 0.01
    m = base_map((lon - delta, lat - delta, lon + delta, lat + delta), basemap_url, basemap_attribution)
    if grids_url:
        BboxGeoJson(grids_url, "网格 Grids", style={"color": "#e07b00", "weight": 1, "fillOpacity": 0.03},
                    fields={"name": "网格", "code": "网格编码"}, min_zoom=11).add_to(m)
    overdue = " gm-overdue" if properties.get("overdue") else ""
    icon = folium.DivIcon(html=f'<span style="background:{safe_colour(colour)}"></span>',
                          class_name="gm-inc-icon" + overdue, icon_size=(18, 18), icon_anchor=(9, 9))
    folium.Marker([lat, lon], icon=icon, popup=folium.Popup(incident_popup_html(properties, case_url),
                                                            max_width=280)).add_to(m)
    _Css(INCIDENT_CSS).add_to(m)
    return use_local_assets(m)
