"""Folium elements gridmap needs beyond folium's own: layers fetched by URL for the current view,
and an HTML legend."""
from __future__ import annotations

import html
import json

from branca.element import MacroElement
from folium.map import Layer
from jinja2 import Template

# Helpers every map page gets: gmEscape, which text from the database goes through before it
# reaches a tooltip or popup, and gmFetchGeoJson, which (re)fills a GeoJSON layer from a URL
# (with the view's bbox when ``byView``), cancelling a fetch the next move makes stale.
ESCAPE_JS = """
window.gmEscape = window.gmEscape || function (value) {
    return String(value === null || value === undefined ? '' : value)
        .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
        .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
};
window.gmFetchGeoJson = window.gmFetchGeoJson || function (layer, map, opts) {
    var pending = null;
    layer.gmLoaded = 0;
    function refresh() {
        if (!map.hasLayer(layer)) { return; }
        if (map.getZoom() < (opts.minZoom || 0)) { layer.clearLayers(); return; }
        var url = opts.url;
        if (opts.byView) {
            var b = map.getBounds();
            var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(',');
            url += (url.indexOf('?') < 0 ? '?' : '&') + 'bbox=' + bbox;
        }
        if (pending) { pending.abort(); }
        pending = new AbortController();
        fetch(url, {credentials: 'same-origin', signal: pending.signal})
            .then(function (r) { if (!r.ok) { throw new Error(url + ': HTTP ' + r.status); } return r.json(); })
            .then(function (data) { layer.clearLayers(); layer.addData(data); layer.gmLoaded = data.features.length; layer.fire('gm:loaded'); })
            .catch(function (e) { if (e.name !== 'AbortError') { console.error(e); } });
    }
    if (opts.byView) { map.on('moveend', refresh); }
    layer.on('add', refresh);
    return refresh;
};
"""


class BboxGeoJson(Layer):
    """A GeoJSON layer re-fetched from ``url?bbox=...`` whenever the view changes.

    The page holds no features, so its size does not grow with the data. ``fields`` maps
    property names to tooltip labels; values are escaped in the browser.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.geoJSON(null, {
            style: function (f) { return {{ this.style_json }}; },
            pointToLayer: function (f, latlng) { return L.circleMarker(latlng, {radius: 5}); },
            onEachFeature: function (f, layer) {
                var fields = {{ this.fields_json }};
                var rows = Object.keys(fields).map(function (k) {
                    return '<tr><th>' + gmEscape(fields[k]) + '</th><td>' + gmEscape(f.properties[k]) + '</td></tr>';
                });
                if (rows.length) { layer.bindTooltip('<table>' + rows.join('') + '</table>', {sticky: true}); }
            }
        });
        gmFetchGeoJson({{ this.get_name() }}, {{ this._parent.get_name() }},
                       {url: {{ this.url_json }}, byView: true, minZoom: {{ this.min_zoom }}});
        {% endmacro %}
    """)

    def __init__(self, url: str, name: str, *, style: dict | None = None, fields: dict | None = None,
                 min_zoom: int = 0, show: bool = True, overlay: bool = True):
        super().__init__(name=name, overlay=overlay, control=True, show=show)
        self._name = "BboxGeoJson"
        self.url_json = json.dumps(url)
        self.style_json = json.dumps(style or {})
        self.fields_json = json.dumps(fields or {}, ensure_ascii=False)
        self.min_zoom = int(min_zoom)
        self.escape_js = ESCAPE_JS


class Legend(MacroElement):
    """A fixed legend box: a title and (colour, label) rows; labels are escaped."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <div class="gm-legend" style="position: fixed; bottom: 28px; right: 10px; z-index: 1000;
             background: rgba(255,255,255,0.92); padding: 6px 10px; border-radius: 4px;
             font: 12px/1.5 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3);">
          <b>{{ this.title }}</b><br>
          {% for colour, label in this.rows %}
          <span style="display:inline-block;width:12px;height:12px;background:{{ colour }};
                margin-right:4px;vertical-align:middle;border:1px solid #555"></span>{{ label }}<br>
          {% endfor %}
        </div>
        {% endmacro %}
    """)

    def __init__(self, title: str, rows: list[tuple[str, str]]):
        super().__init__()
        self._name = "Legend"
        self.title = html.escape(title)
        self.rows = [(html.escape(c), html.escape(label)) for c, label in rows]
