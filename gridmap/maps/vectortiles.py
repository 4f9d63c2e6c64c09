"""Layers drawn from gridmap's vector tiles with Leaflet.VectorGrid.Protobuf (served locally):
incidents at any scale (the incidents map, gridmap.maps.incidents) and area outlines.

Vector-tile features make poor popup anchors, so a click on the map asks a small endpoint
what is at that point and opens an ordinary Leaflet popup with the (escaped) answer.
"""
from __future__ import annotations

import json

from folium.elements import JSCSSMixin
from folium.map import Layer
from jinja2 import Template

from gridmap.catalog import CATEGORIES
from gridmap.maps.assets import vendor_url
from gridmap.maps.elements import ESCAPE_JS

CATEGORY_COLOURS = {c.code: c.colour for c in CATEGORIES}
OVERDUE_COLOUR = "#d7191c"


def N_(text: str) -> str:
    """Marks a label for translation (``pybabel extract`` finds it); the web layer translates it."""
    return text


# Text of the click popups ({n} stands for a number); the page passes them translated.
POPUP_LABELS = {
    "severity": N_("等级"), "overdue": N_("超期"), "open_case": N_("查看案件"), "more": N_("另有 {n} 起，请放大查看"),
    "cell_total": N_("本格共 {n} 起事件"), "zoom_in": N_("放大可查看单个事件"), "separator": N_("，"),
}

# Styles per layer inside the tiles. ``colour_by`` picks fillColor from a property,
# ``size_by`` sets a circle's radius from a count (log scale, so 1 and 10,000 both read).
INCIDENT_STYLES = {
    "incidents": {
        "style": {"radius": 5, "fill": True, "fillOpacity": 0.9, "color": "#ffffff", "weight": 1},
        "colour_by": "category", "colours": CATEGORY_COLOURS, "default_colour": "#777777",
        # the same red ring as the case page's marker
        "overdue": {"style": {"color": OVERDUE_COLOUR, "weight": 3, "radius": 6}},
    },
    "incident_cells": {
        "style": {"fill": True, "fillOpacity": 0.75, "color": "#ffffff", "weight": 1},
        "size_by": "n", "min_radius": 3, "radius_per_log2": 0.9, "max_radius": 8,
        # fillColor by count: the last step whose threshold the count reaches
        "colour_steps": [[1, "#fecc5c"], [10, "#fd8d3c"], [100, "#f03b20"], [1000, "#bd0026"]],
    },
}
AREA_STYLES = {
    "towns": {"style": {"color": "#444444", "weight": 2, "fill": False}},
    "villages": {"style": {"color": "#777777", "weight": 1, "fill": False}},
    "grids": {"style": {"color": "#e07b00", "weight": 1, "fill": True, "fillColor": "#e07b00",
                        "fillOpacity": 0.04}},
}


def _script_json(value) -> str:
    """JSON safe inside a <script> element, whatever the strings hold."""
    return (json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


class VectorTileLayer(JSCSSMixin, Layer):
    """A Leaflet.VectorGrid.Protobuf layer over ``url`` (with ``{z}/{x}/{y}``).

    Parameters
    ----------
    url : str
        Tile URL template, e.g. ``/tiles/incidents/{z}/{x}/{y}.pbf``.
    name : str
        Name in the layer control.
    styles : dict
        Per layer inside the tiles: ``{"style": {...Leaflet path options}}`` plus optionally
        ``colour_by``/``colours``/``default_colour``, ``size_by``/``min_radius``/
        ``radius_per_log2``/``max_radius``/``colour_steps`` (``[[threshold, colour], ...]``),
        and ``overdue`` (a style for incidents whose ``overdue_at`` property, in epoch seconds,
        has passed).
    filters : dict, optional
        Query parameters added to every tile request (and to ``query_url``); the page can
        change them later with ``layer.gmSetFilters({...})``.
    query_url : str, optional
        Endpoint asked on a map click (``?lon=&lat=&z=`` plus the filters); its JSON answer is
        shown in a popup.
    incident_url : str, optional
        Link target for an incident in the popup, with ``{id}``.
    names : dict, optional
        Names in the page's language by code, used in popups over the endpoint's Chinese ones:
        ``{"categories": {code: {"name", "colour", "subcategories": {code: name}}}, "statuses": {code: name}}``.
    labels : dict, optional
        Popup text overriding :data:`POPUP_LABELS` (``{n}`` stands for a number).
    min_zoom, max_zoom : int
        Zooms between which the layer is drawn.

    Notes
    -----
    The layer counts the features it draws per zoom and layer in ``layer.gmStats`` (e.g.
    ``gmStats["10:incident_cells"]``) and records ``layer.gmLoadedAt`` when the visible tiles
    have loaded, for tests and benchmarks.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = (function () {
            var base = {{ this.url_json }}, specs = {{ this.styles_json }};
            var filters = {{ this.filters_json }}, stats = {};
            function query() {
                var q = Object.keys(filters).filter(function (k) {
                    return filters[k] !== null && filters[k] !== undefined && filters[k] !== '';
                }).map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(filters[k]); }).join('&');
                return q;
            }
            function withQuery(url) { var q = query(); return q ? url + (url.indexOf('?') < 0 ? '?' : '&') + q : url; }
            function styleFor(layerName, spec) {
                return function (props, zoom) {
                    var key = zoom + ':' + layerName;
                    stats[key] = (stats[key] || 0) + 1;
                    var style = Object.assign({}, spec.style);
                    if (spec.colour_by) {
                        style.fillColor = spec.colours[props[spec.colour_by]] || spec.default_colour;
                    }
                    if (spec.size_by) {
                        var n = Number(props[spec.size_by]) || 0;
                        style.radius = Math.min(spec.max_radius, spec.min_radius + spec.radius_per_log2 * Math.log2(1 + n));
                        (spec.colour_steps || []).forEach(function (step) { if (n >= step[0]) { style.fillColor = step[1]; } });
                    }
                    // overdue_at: when an open incident is (or will be) past its deadline
                    if (spec.overdue && props.overdue_at && props.overdue_at * 1000 < Date.now()) {
                        Object.assign(style, spec.overdue.style);
                    }
                    return style;
                };
            }
            var styles = {};
            Object.keys(specs).forEach(function (name) { styles[name] = styleFor(name, specs[name]); });
            var layer = L.vectorGrid.protobuf(withQuery(base), {
                rendererFactory: L.canvas.tile,
                vectorTileLayerStyles: styles,
                interactive: false,
                minZoom: {{ this.min_zoom }},
                maxZoom: {{ this.max_zoom }},
                maxNativeZoom: {{ this.max_zoom }},
                fetchOptions: {credentials: 'same-origin'}
            });
            layer.gmStats = stats;
            layer.gmLoadedAt = null;
            layer.on('load', function () { layer.gmLoadedAt = performance.now(); });
            layer.gmSetFilters = function (changes) {
                Object.assign(filters, changes);
                layer.setUrl(withQuery(base));
            };
            layer.gmFilters = function () { return Object.assign({}, filters); };
            {% if this.query_url_json %}
            var queryUrl = {{ this.query_url_json }}, incidentUrl = {{ this.incident_url_json }};
            var names = {{ this.names_json }}, labels = {{ this.labels_json }};
            function categoryName(code, fallback) { return ((names.categories || {})[code] || {}).name || fallback || code; }
            function subcategoryName(category, code, fallback) {
                return (((names.categories || {})[category] || {}).subcategories || {})[code] || fallback || '';
            }
            function colourOf(code, fallback) { return ((names.categories || {})[code] || {}).colour || fallback || '#777777'; }
            function statusName(code, fallback) { return (names.statuses || {})[code] || fallback || code; }
            function fill(text, n) { return gmEscape(text).replace('{n}', gmEscape(n)); }
            function incidentHtml(i) {
                var sub = subcategoryName(i.category, i.subcategory, i.subcategory_name);
                var title = gmEscape(categoryName(i.category, i.category_name)) + (sub ? ' · ' + gmEscape(sub) : '');
                var link = incidentUrl ? '<br><a class="gm-case-link" href="'
                    + gmEscape(incidentUrl.replace('{id}', encodeURIComponent(i.id))) + '">'
                    + gmEscape(labels.open_case) + ' #' + gmEscape(i.id) + '</a>' : '';
                return '<div class="gm-at-incident" data-id="' + gmEscape(i.id) + '" style="margin:4px 0;border-left:4px solid '
                    + gmEscape(colourOf(i.category, i.colour)) + ';padding-left:6px"><b>' + title + '</b> '
                    + (i.overdue ? '<span class="gm-overdue-tag">' + gmEscape(labels.overdue) + '</span> ' : '')
                    + '<span>' + gmEscape(statusName(i.status, i.status_name)) + '</span>'
                    + ' <span>' + gmEscape(labels.severity) + ' ' + gmEscape(i.severity) + '</span><br><small>'
                    + gmEscape((i.occurred_at || '').replace('T', ' ').slice(0, 16)) + ' · '
                    + gmEscape(i.village_name) + ' ' + gmEscape(i.grid_name) + '</small>'
                    + '<div class="gm-at-desc" style="white-space:pre-wrap;word-break:break-word">'
                    + gmEscape(i.description) + '</div>' + link + '</div>';
            }
            function answerHtml(data) {
                if (data.mode === 'points') {
                    if (!data.total) { return null; }
                    var more = data.total > data.incidents.length
                        ? '<div>' + fill(labels.more, data.total - data.incidents.length) + '</div>' : '';
                    return '<div class="gm-at">' + data.incidents.map(incidentHtml).join('') + more + '</div>';
                }
                if (!data.n) { return null; }
                var rows = data.by_category.map(function (c) {
                    return '<tr><td><span style="display:inline-block;width:10px;height:10px;background:'
                        + gmEscape(colourOf(c.code, c.colour)) + '"></span> ' + gmEscape(categoryName(c.code, c.name)) + '</td><td>'
                        + gmEscape(c.n) + '</td></tr>';
                });
                var statuses = data.by_status.map(function (s) { return gmEscape(statusName(s.code, s.name)) + ' ' + gmEscape(s.n); });
                return '<div class="gm-at"><b>' + fill(labels.cell_total, data.n) + '</b><table>' + rows.join('')
                    + '</table><small>' + statuses.join(gmEscape(labels.separator)) + '</small><br><small>'
                    + gmEscape(labels.zoom_in) + '</small></div>';
            }
            layer.gmQuery = function (latlng, zoom) {
                var url = withQuery(queryUrl + (queryUrl.indexOf('?') < 0 ? '?' : '&') + 'lon=' + latlng.lng.toFixed(6)
                    + '&lat=' + latlng.lat.toFixed(6) + '&z=' + zoom);
                return fetch(url, {credentials: 'same-origin'}).then(function (r) {
                    if (!r.ok) { throw new Error(url + ': HTTP ' + r.status); }
                    return r.json();
                });
            };
            layer.on('add', function () {
                var map = layer._map;
                layer._gmClick = function (e) {
                    layer.gmQuery(e.latlng, map.getZoom()).then(function (data) {
                        var html = answerHtml(data);
                        if (html) { L.popup({maxWidth: 360, maxHeight: 320}).setLatLng(e.latlng).setContent(html).openOn(map); }
                        layer.fire('gm:answer', {data: data});
                    }).catch(function (err) { console.error(err); });
                };
                map.on('click', layer._gmClick);
            });
            layer.on('remove', function () { if (layer._gmClick) { layer._map && layer._map.off('click', layer._gmClick); } });
            {% endif %}
            return layer;
        })();
        {% endmacro %}
    """)

    default_js = [("vectorgrid", vendor_url("vectorgrid"))]

    def __init__(self, url: str, name: str, *, styles: dict, filters: dict | None = None,
                 query_url: str | None = None, incident_url: str | None = None, names: dict | None = None,
                 labels: dict | None = None, min_zoom: int = 0, max_zoom: int = 22, show: bool = True,
                 overlay: bool = True, control: bool = True):
        super().__init__(name=name, overlay=overlay, control=control, show=show)
        self._name = "VectorTileLayer"
        self.url_json = _script_json(url)
        self.styles_json = _script_json(styles)
        self.filters_json = _script_json({k: v for k, v in (filters or {}).items() if v not in (None, "")})
        self.query_url_json = _script_json(query_url) if query_url else ""
        self.incident_url_json = _script_json(incident_url)
        self.names_json = _script_json(names or {})
        self.labels_json = _script_json({**POPUP_LABELS, **(labels or {})})
        self.min_zoom = int(min_zoom)
        self.max_zoom = int(max_zoom)
        self.escape_js = ESCAPE_JS


def incident_tile_layer(tile_url: str, query_url: str, *, filters: dict | None = None,
                        incident_url: str | None = None, names: dict | None = None, labels: dict | None = None,
                        colours: dict[str, str] | None = None, name: str = "事件 Incidents",
                        show: bool = True) -> VectorTileLayer:
    """The incidents layer: points coloured by category at high zoom, counts per cell (circles
    sized by count) elsewhere; a click shows what is there.

    Parameters
    ----------
    tile_url : str
        ``/tiles/incidents/{z}/{x}/{y}.pbf``.
    query_url : str
        ``/tiles/incidents/at``.
    filters : dict, optional
        ``category``, ``status``, ``from``, ``to``, ``overdue`` as the tile endpoint takes them.
    incident_url : str, optional
        Link for an incident in the popup, with ``{id}``.
    names, labels : dict, optional
        Names by code and popup text in the page's language (see :class:`VectorTileLayer`).
    colours : dict, optional
        Colour by category code (the category table's, which a county may change); default the
        catalogue's.

    Returns
    -------
    VectorTileLayer
    """
    styles = INCIDENT_STYLES
    if colours:
        styles = {**INCIDENT_STYLES, "incidents": {**INCIDENT_STYLES["incidents"], "colours": dict(colours)}}
    return VectorTileLayer(tile_url, name, styles=styles, filters=filters, query_url=query_url,
                           incident_url=incident_url, names=names, labels=labels, show=show)


def area_tile_layer(tile_url: str, layer: str, name: str, *, min_zoom: int = 0,
                    show: bool = True) -> VectorTileLayer:
    """Town, village or grid outlines from their vector tiles (``layer`` names the style)."""
    return VectorTileLayer(tile_url, name, styles={layer: AREA_STYLES[layer]}, min_zoom=min_zoom, show=show)
