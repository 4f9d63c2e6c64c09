"""The incidents map (clustered markers fetched by URL for the view, coloured by category, with
filters) and the small map on a case page."""
from __future__ import annotations

import html
import json
import re

import folium
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.map import Layer
from jinja2 import Template

from gridmap.maps.assets import use_local_assets, vendor_url
from gridmap.maps.elements import ESCAPE_JS, BboxGeoJson, Legend
from gridmap.maps.home import base_map

DEFAULT_COLOUR = "#777777"
OVERDUE_COLOUR = "#d7191c"
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
.gm-srv-cluster { background: rgba(31,59,99,.85); color: #fff; border-radius: 50%; text-align: center;
    font: bold 12px/34px sans-serif; border: 2px solid #fff; }
.gm-srv-cluster.gm-has-overdue { box-shadow: 0 0 0 3px #d7191c; }
.gm-inc-filters { background: rgba(255,255,255,.95); padding: 6px 8px; border-radius: 4px;
    font: 12px/1.6 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3); max-width: 220px; }
.gm-inc-filters label { display: block; }
.gm-inc-filters select, .gm-inc-filters input[type=date] { max-width: 150px; font-size: 12px; }
.gm-inc-status { font-size: 12px; color: #333; }
"""


class IncidentLayer(JSCSSMixin, Layer):
    """Incidents fetched from ``url`` for the current view (``bbox``, ``zoom`` and the filters),
    drawn as markers clustered with Leaflet.markercluster. When the server returns clusters
    of its own (too many incidents in view) they are drawn as count bubbles that zoom in on
    click. Every text from the server goes through ``gmEscape`` before it reaches a popup.
    """

    default_js = [("markerclusterjs", vendor_url("markerclusterjs"))]
    default_css = [("markerclustercss", vendor_url("markerclustercss")),
                   ("markerclusterdefaultcss", vendor_url("markerclusterdefaultcss"))]

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>{{ this.css }}</style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.markerClusterGroup({showCoverageOnHover: false, maxClusterRadius: 45,
                                                           chunkedLoading: true});
        {{ this.get_name() }}.gmLoaded = 0;
        (function (layer, map, cfg) {
            // Without a tile layer the map's max zoom is Infinity, and markercluster would build
            // cluster levels for ever.
            if (!isFinite(map.getMaxZoom())) { map.setMaxZoom(19); }
            var filters = Object.assign({}, cfg.filters);
            var pending = null;
            var status = L.control({position: 'bottomleft'});
            status.onAdd = function () { this._div = L.DomUtil.create('div', 'gm-inc-filters gm-inc-status'); return this._div; };
            status.addTo(map);
            function colourOf(code) { return (cfg.categories[code] || {}).colour || '#777777'; }
            function when(iso) { return iso ? String(iso).replace('T', ' ').slice(0, 16) : ''; }
            function popupHtml(p) {
                var cat = cfg.categories[p.category] || {};
                var url = cfg.caseUrl.replace('__ID__', encodeURIComponent(p.id));
                return '<div class="gm-inc-popup"><b>' + gmEscape(cat.name || p.category)
                    + (p.subcategory_zh ? ' · ' + gmEscape(p.subcategory_zh) : '') + '</b> '
                    + (p.overdue ? '<span class="gm-overdue-tag">' + gmEscape(cfg.labels.overdue) + '</span>' : '')
                    + '<br>' + gmEscape(p.status_zh) + ' · ' + gmEscape(cfg.labels.severity) + ' ' + gmEscape(p.severity)
                    + '<br>' + gmEscape(when(p.occurred_at)) + ' · ' + gmEscape(p.town_name) + ' ' + gmEscape(p.village_name)
                    + '<div class="gm-inc-desc">' + gmEscape(p.description) + '</div>'
                    + '<a class="gm-case-link" href="' + gmEscape(url) + '">' + gmEscape(cfg.labels.open_case)
                    + ' #' + gmEscape(p.id) + '</a></div>';
            }
            function incidentMarker(f) {
                var p = f.properties, c = f.geometry.coordinates;
                var icon = L.divIcon({className: 'gm-inc-icon' + (p.overdue ? ' gm-overdue' : ''), iconSize: [18, 18],
                                      html: '<span style="background:' + colourOf(p.category) + '"></span>'});
                var marker = L.marker([c[1], c[0]], {icon: icon, title: (cfg.categories[p.category] || {}).name || p.category});
                marker.gmIncidentId = p.id;
                marker.bindPopup(popupHtml(p), {maxWidth: 280});
                return marker;
            }
            function clusterMarker(f) {
                var p = f.properties, c = f.geometry.coordinates;
                var size = p.count >= 1000 ? 46 : 36;
                var icon = L.divIcon({className: 'gm-srv-cluster' + (p.overdue ? ' gm-has-overdue' : ''),
                                      iconSize: [size, size], html: gmEscape(p.count)});
                var marker = L.marker([c[1], c[0]], {icon: icon});
                marker.on('click', function () { map.setView(marker.getLatLng(), Math.min(map.getZoom() + 2, 19)); });
                return marker;
            }
            function query() {
                var b = map.getBounds();
                var args = {bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(','),
                            zoom: map.getZoom()};
                Object.keys(filters).forEach(function (k) { if (filters[k] !== '' && filters[k] !== null && filters[k] !== undefined) { args[k] = filters[k]; } });
                return Object.keys(args).map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(args[k]); }).join('&');
            }
            function refresh() {
                if (!map.hasLayer(layer)) { return; }
                var url = cfg.url + (cfg.url.indexOf('?') < 0 ? '?' : '&') + query();
                if (pending) { pending.abort(); }
                pending = new AbortController();
                fetch(url, {credentials: 'same-origin', signal: pending.signal})
                    .then(function (r) { if (!r.ok) { throw new Error(url + ': HTTP ' + r.status); } return r.json(); })
                    .then(function (data) {
                        layer.clearLayers();
                        var make = data.clustered ? clusterMarker : incidentMarker;
                        layer.addLayers(data.features.map(make));
                        layer.gmLoaded = data.features.length;
                        layer.gmClustered = !!data.clustered;
                        status._div.textContent = (data.clustered ? cfg.labels.clustered : cfg.labels.shown)
                            .replace('{n}', String(data.numberMatched));
                        layer.fire('gm:loaded');
                    })
                    .catch(function (e) { if (e.name !== 'AbortError') { console.error(e); } });
            }
            layer.gmRefresh = refresh;
            layer.gmFilters = filters;
            map.on('moveend', refresh);
            layer.on('add', refresh);

            var control = L.control({position: 'topleft'});
            control.onAdd = function () {
                var div = L.DomUtil.create('form', 'gm-inc-filters');
                div.id = 'gm-incident-filters';
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                function field(label, input) {
                    var l = document.createElement('label');
                    l.appendChild(document.createTextNode(label + ' '));
                    l.appendChild(input);
                    div.appendChild(l);
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
                field(cfg.labels.category, select('category', [['', cfg.labels.all]].concat(
                    Object.keys(cfg.categories).map(function (k) { return [k, cfg.categories[k].name]; }))));
                field(cfg.labels.status, select('status', [['', cfg.labels.all]].concat(cfg.statuses)));
                ['from', 'to'].forEach(function (name) {
                    var d = document.createElement('input');
                    d.type = 'date'; d.name = name; d.value = filters[name] || '';
                    field(cfg.labels[name], d);
                });
                var overdue = document.createElement('input');
                overdue.type = 'checkbox'; overdue.name = 'overdue'; overdue.checked = filters.overdue === '1';
                field(cfg.labels.overdue_only, overdue);
                div.addEventListener('change', function () {
                    filters.category = div.elements.category.value;
                    filters.status = div.elements.status.value;
                    filters.from = div.elements.from.value;
                    filters.to = div.elements.to.value;
                    filters.overdue = div.elements.overdue.checked ? '1' : '';
                    refresh();
                });
                div.addEventListener('submit', function (e) { e.preventDefault(); });
                return div;
            };
            control.addTo(map);
        })({{ this.get_name() }}, {{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, url: str, case_url: str, categories: list[dict], statuses: list[tuple[str, str]],
                 filters: dict | None = None, labels: dict | None = None, name: str = "事件 Incidents",
                 show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "IncidentLayer"
        config = {
            "url": url, "caseUrl": case_url,
            "categories": {c["code"]: {"name": c["name_zh"], "colour": safe_colour(c.get("colour"))}
                           for c in categories},
            "statuses": [[code, label] for code, label in statuses],
            "filters": {k: str(v) for k, v in (filters or {}).items() if k in FILTER_KEYS},
            "labels": {**DEFAULT_LABELS, **(labels or {})},
        }
        self.config_json = script_json(config)
        self.escape_js = ESCAPE_JS
        self.css = INCIDENT_CSS


FILTER_KEYS = ("category", "status", "from", "to", "overdue")
DEFAULT_LABELS = {
    "category": "类别", "status": "状态", "from": "起", "to": "止", "overdue_only": "仅超期",
    "all": "全部", "overdue": "超期", "severity": "等级", "open_case": "查看案件",
    "shown": "显示 {n} 起事件", "clustered": "{n} 起事件（已聚合，放大查看）",
}


def build_incidents_map(*, bounds, layer_url: str, case_url: str, categories: list[dict],
                        statuses: list[tuple[str, str]], filters: dict | None = None, labels: dict | None = None,
                        grids_url: str | None = None, basemap_url: str = "",
                        basemap_attribution: str = "") -> folium.Map:
    """Build the incidents map.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit, e.g. the user's area.
    layer_url : str
        The incidents API (``GET /api/incidents``); the map adds ``bbox``, ``zoom`` and the
        filters and re-fetches on every move, so the page holds no incidents.
    case_url : str
        Link to a case page with ``__ID__`` where the incident id goes.
    categories : list of dict
        ``code``, ``name_zh`` and ``colour`` per category (from the category table).
    statuses : list of (str, str)
        Status filter choices as (value, label).
    filters : dict, optional
        Initial filter values (``category``, ``status``, ``from``, ``to``, ``overdue``).
    labels : dict, optional
        UI strings overriding the Chinese defaults (for the English interface).
    grids_url : str, optional
        Grid outlines fetched by bbox for context.

    Returns
    -------
    folium.Map
        With the incident layer, a filter control, a category legend and local assets only.

    Examples
    --------
    >>> m = build_incidents_map(bounds=(113.0, 33.8, 113.2, 34.0), layer_url="/api/incidents",
    ...                         case_url="/incidents/__ID__", categories=[], statuses=[])
    >>> "/api/incidents" in m.get_root().render()
    True
    """
    m = base_map(bounds, basemap_url, basemap_attribution)
    if grids_url:
        BboxGeoJson(grids_url, "网格 Grids", style={"color": "#e07b00", "weight": 1, "fillOpacity": 0.02},
                    fields={"name": "网格", "code": "网格编码"}, min_zoom=12).add_to(m)
    IncidentLayer(layer_url, case_url, categories, statuses, filters, labels).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    Legend("事件类别 Categories", [(safe_colour(c.get("colour")), c["name_zh"]) for c in categories]
           + [(OVERDUE_COLOUR, (labels or {}).get("overdue", DEFAULT_LABELS["overdue"]) + "（红圈）")]).add_to(m)
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
