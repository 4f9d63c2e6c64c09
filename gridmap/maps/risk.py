"""The risk maps: grid choropleth with hot-spot outlines and a measure switch, the incident
heatmap with a month slider, and the report's map of villages by "三零" status and mediation
coverage.

Data reach the browser as JSON and every text in it goes through ``gmEscape`` before it is put
into a tooltip, a legend or a control.
"""
from __future__ import annotations

import html

import folium
from branca.element import MacroElement
from branca.utilities import color_brewer
from folium.elements import JSCSSMixin
from folium.map import Layer
from jinja2 import Template

from gridmap.catalog import CATEGORIES
from gridmap.maps.assets import use_local_assets, vendor_url
from gridmap.maps.elements import ESCAPE_JS
from gridmap.maps.home import base_map
from gridmap.maps.incidents import script_json

MEASURES = (("score", "风险等级（评分）"), ("per_km2", "每平方公里事件数"), ("per_1000", "每千人事件数"),
            ("gi_bin", "热点分析 Gi*"))
GI_BINS = ((3, "热点（99%置信）"), (2, "热点（95%置信）"), (1, "热点（90%置信）"), (0, "不显著"),
           (-1, "冷点（90%置信）"), (-2, "冷点（95%置信）"), (-3, "冷点（99%置信）"))
GI_COLOURS = dict(zip((3, 2, 1, 0, -1, -2, -3), color_brewer("RdBu", n=7)))
NO_VALUE_COLOUR = "#d9d9d9"
# More features than this never go into a page: the map fetches them by URL instead.
MAX_INLINE_FEATURES = 5000
HOT_OUTLINE, COLD_OUTLINE = "#67000d", "#08306b"
DEFAULT_LABELS = {
    "legend_title": "图例", "no_value": "无数据（面积或人口为 0）", "grid": "网格", "village": "村（社区）",
    "town": "乡镇", "score": "风险评分", "level": "风险等级", "incidents": "事件", "per_km2": "每平方公里",
    "per_1000": "每千人", "backlog": "未结 / 超期", "trend": "较上期", "previous": "上期",
    "hotspot": "热点分析", "measure": "显示指标", "outline_note": "粗框：Gi* 热点（红）/ 冷点（蓝虚线）",
    "level_n": "第 {n} 级", "loading": "正在加载…", "no_trend": "上期无事件",
    "month": "月份", "play": "播放", "pause": "暂停", "incidents_in_month": "{month}：{n} 起",
    "heat_title": "事件热力（按月）", "empty": "本期无事件",
}


def level_colours(classes: int) -> list[str]:
    """ColorBrewer YlOrRd for ``classes`` levels (palest first)."""
    if classes >= 3:
        return color_brewer("YlOrRd", n=min(classes, 9))
    return color_brewer("YlOrRd", n=3)[-classes:] if classes > 0 else []


class RiskGridLayer(Layer):
    """Grids coloured by the chosen measure, with tooltips, a measure switch and a legend that
    follows it. The FeatureCollection (from :func:`gridmap.services.risk.risk_geojson`, with its
    ``legend`` member) is inlined when given as ``data`` or fetched from ``url``.
    Features with a non-zero ``gi_bin`` also go to ``outline`` (a :class:`HotspotOutlines`)."""

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>
        .gm-risk-box { background: rgba(255,255,255,.95); padding: 6px 9px; border-radius: 4px;
            font: 12px/1.6 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3); max-width: 260px; }
        .gm-risk-box label { display: block; cursor: pointer; white-space: nowrap; }
        .gm-risk-box .gm-swatch { display: inline-block; width: 14px; height: 12px; margin-right: 5px;
            vertical-align: middle; border: 1px solid #777; }
        .gm-risk-tip table { border-collapse: collapse; font-size: 12px; }
        .gm-risk-tip th { text-align: left; padding-right: 8px; color: #555; font-weight: normal; }
        .gm-risk-tip .gm-up { color: #c0392b; } .gm-risk-tip .gm-down { color: #1a7f37; }
        </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.geoJSON(null, {});
        {{ this.get_name() }}.gmLoaded = 0;
        (function (layer, map, outline, cfg) {
            var measure = cfg.measure, legend = {}, loaded = false;
            layer.gmMeasure = measure;
            function levelOf(p) {
                if (measure === 'score') { return p.risk_level; }
                if (measure === 'per_km2') { return p.level_per_km2; }
                if (measure === 'per_1000') { return p.level_per_1000; }
                return p.gi_bin;
            }
            function colourOf(p) {
                var v = levelOf(p);
                if (measure === 'gi_bin') { return cfg.giColours[String(v || 0)]; }
                return v ? (cfg.levelColours[v - 1] || cfg.levelColours[cfg.levelColours.length - 1]) : cfg.noValue;
            }
            function style(f) {
                return {color: '#555', weight: 0.6, opacity: 0.8, fillColor: colourOf(f.properties), fillOpacity: 0.72};
            }
            function number(v, digits) {
                if (v === null || v === undefined || v === '') { return '—'; }
                var n = Number(v);
                return isFinite(n) ? n.toFixed(digits) : '—';
            }
            function trend(p) {
                if (!p.prev_total) { return gmEscape(cfg.labels.no_trend) + (p.n_total ? ' (+' + gmEscape(p.n_total) + ')' : ''); }
                var cls = p.change > 0 ? 'gm-up' : (p.change < 0 ? 'gm-down' : '');
                var arrow = p.change > 0 ? '▲ +' : (p.change < 0 ? '▼ ' : '＝ ');
                return '<span class="' + cls + '">' + arrow + gmEscape(p.change) + '（' + gmEscape(number(p.change_pct, 0))
                    + '%）</span> ' + gmEscape(cfg.labels.previous) + ' ' + gmEscape(p.prev_total);
            }
            function tooltip(p) {
                var counts = Object.keys(cfg.categories).filter(function (c) { return p['n_' + c] > 0; })
                    .map(function (c) { return gmEscape(cfg.categories[c]) + ' ' + gmEscape(p['n_' + c]); }).join('，');
                var rows = [
                    [cfg.labels.grid, gmEscape(p.code) + ' ' + gmEscape(p.name)],
                    [cfg.labels.village, gmEscape(p.village_name) + ' · ' + gmEscape(p.town_name)],
                    [cfg.labels.score, gmEscape(number(p.score, 1)) + '（' + gmEscape(cfg.labels.level_n.replace('{n}', p.risk_level)) + '）'],
                    [cfg.labels.incidents, gmEscape(p.n_total) + (counts ? '：' + counts : '')],
                    [cfg.labels.per_km2 + ' / ' + cfg.labels.per_1000, gmEscape(number(p.per_km2, 1)) + ' / ' + gmEscape(number(p.per_1000, 1))],
                    [cfg.labels.backlog, gmEscape(p.open_backlog) + ' / ' + gmEscape(p.overdue_backlog)],
                    [cfg.labels.trend, trend(p)],
                    [cfg.labels.hotspot, gmEscape(cfg.giLabels[String(p.gi_bin || 0)]) + ' (z ' + gmEscape(number(p.gi_z, 2)) + ')']
                ];
                return '<div class="gm-risk-tip"><table>' + rows.map(function (r) {
                    return '<tr><th>' + gmEscape(r[0]) + '</th><td>' + r[1] + '</td></tr>'; }).join('') + '</table></div>';
            }
            layer.options.style = style;
            layer.options.onEachFeature = function (f, l) {
                l.bindTooltip(function () { return tooltip(f.properties); }, {sticky: true});
            };

            var legendControl = L.control({position: 'bottomright'});
            legendControl.onAdd = function () {
                var div = L.DomUtil.create('div', 'gm-risk-box gm-legend');
                div.id = 'gm-risk-legend';
                return div;
            };
            legendControl.addTo(map);
            function renderLegend() {
                var div = legendControl.getContainer();
                var title = cfg.measures.filter(function (m) { return m[0] === measure; })[0][1];
                var rows = [];
                if (!loaded) {
                    rows.push(gmEscape(cfg.labels.loading));
                } else if (measure === 'gi_bin') {
                    (legend.gi_bin || []).forEach(function (b) {
                        rows.push('<span class="gm-swatch" style="background:' + cfg.giColours[String(b.bin)] + '"></span>'
                            + gmEscape(b.label) + ' (' + gmEscape(b.n) + ')');
                    });
                } else {
                    (legend[measure] || []).forEach(function (c) {
                        rows.push('<span class="gm-swatch" style="background:' + (cfg.levelColours[c.level - 1] || '#000') + '"></span>'
                            + gmEscape(cfg.labels.level_n.replace('{n}', c.level)) + '：' + gmEscape(number(c.min, 1))
                            + ' – ' + gmEscape(number(c.max, 1)) + ' (' + gmEscape(c.n) + ')');
                    });
                    if (measure !== 'score') {
                        rows.push('<span class="gm-swatch" style="background:' + cfg.noValue + '"></span>' + gmEscape(cfg.labels.no_value));
                    }
                }
                div.innerHTML = '<b class="gm-legend-title" data-measure="' + gmEscape(measure) + '">' + gmEscape(title) + '</b><br>'
                    + rows.join('<br>') + '<div style="margin-top:4px;color:#555">' + gmEscape(cfg.labels.outline_note) + '</div>';
            }
            var switcher = L.control({position: 'topright'});
            switcher.onAdd = function () {
                var div = L.DomUtil.create('form', 'gm-risk-box');
                div.id = 'gm-risk-measures';
                L.DomEvent.disableClickPropagation(div);
                var head = document.createElement('b');
                head.textContent = cfg.labels.measure;
                div.appendChild(head);
                cfg.measures.forEach(function (m) {
                    var label = document.createElement('label');
                    var input = document.createElement('input');
                    input.type = 'radio'; input.name = 'gm-measure'; input.value = m[0]; input.checked = m[0] === measure;
                    label.appendChild(input);
                    label.appendChild(document.createTextNode(' ' + m[1]));
                    div.appendChild(label);
                });
                div.addEventListener('change', function (e) { setMeasure(e.target.value); });
                return div;
            };
            switcher.addTo(map);
            function setMeasure(value) {
                measure = value;
                layer.gmMeasure = value;
                layer.setStyle(style);
                renderLegend();
                layer.fire('gm:measure');
            }
            layer.gmSetMeasure = setMeasure;
            function show(data) {
                layer.clearLayers();
                layer.addData(data);
                legend = data.legend || {};
                outline.clearLayers();
                outline.addData({type: 'FeatureCollection', features: data.features.filter(function (f) {
                    return f.properties.gi_bin; })});
                loaded = true;
                layer.gmLoaded = data.features.length;
                layer.gmHotspots = outline.getLayers().length;
                renderLegend();
                if (map.hasLayer(outline)) { outline.bringToFront(); }
                layer.fire('gm:loaded');
            }
            layer.on('add', function () { if (map.hasLayer(outline)) { outline.bringToFront(); } });
            renderLegend();
            if (cfg.data) {
                show(cfg.data);
            } else {
                fetch(cfg.url, {credentials: 'same-origin'})
                    .then(function (r) { if (!r.ok) { throw new Error(cfg.url + ': HTTP ' + r.status); } return r.json(); })
                    .then(show)
                    .catch(function (e) { console.error(e); });
            }
        })({{ this.get_name() }}, {{ this._parent.get_name() }}, {{ this.outline.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, outline: HotspotOutlines, *, data: dict | None = None, url: str | None = None,
                 classes: int = 5, measure: str = "score", labels: dict | None = None,
                 name: str = "网格风险 Grid risk"):
        if (data is None) == (url is None):
            raise ValueError("give the grids either inline (data) or by URL (url)")
        if data is not None and len(data.get("features", ())) > MAX_INLINE_FEATURES:
            raise ValueError(f"{len(data['features'])} grids are too many to inline (at most "
                             f"{MAX_INLINE_FEATURES}); give their URL instead")
        if measure not in dict(MEASURES):
            raise ValueError(f"measure must be one of {[m for m, _ in MEASURES]}")
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "RiskGridLayer"
        self.outline = outline
        self.escape_js = ESCAPE_JS
        self.config_json = script_json({
            "data": data, "url": url, "measure": measure, "measures": [list(m) for m in MEASURES],
            "levelColours": level_colours(classes), "giColours": {str(k): v for k, v in GI_COLOURS.items()},
            "giLabels": {str(k): v for k, v in GI_BINS}, "noValue": NO_VALUE_COLOUR,
            "categories": {c.code: c.name_zh for c in CATEGORIES}, "labels": {**DEFAULT_LABELS, **(labels or {})},
        })


class HotspotOutlines(Layer):
    """Outlines of the grids Gi* finds significant: hot spots in dark red, cold spots in dashed
    blue, thicker for higher confidence. Filled by :class:`RiskGridLayer`."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJSON(null, {
            interactive: false,
            style: function (f) {
                var b = f.properties.gi_bin || 0;
                return b > 0 ? {color: {{ this.hot|tojson }}, weight: 1 + Math.abs(b), fill: false, opacity: 0.95}
                             : {color: {{ this.cold|tojson }}, weight: 1 + Math.abs(b), dashArray: '5 4', fill: false, opacity: 0.9};
            }
        });
        {% endmacro %}
    """)

    def __init__(self, name: str = "热点轮廓 Hot spots"):
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "HotspotOutlines"
        self.hot, self.cold = HOT_OUTLINE, COLD_OUTLINE


def build_risk_map(*, bounds, grids: dict | None = None, grids_url: str | None = None, classes: int = 5,
                   measure: str = "score", basemap_url: str = "", basemap_attribution: str = "",
                   labels: dict | None = None) -> folium.Map:
    """Build the risk map.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit.
    grids : dict, optional
        The grid FeatureCollection of :func:`gridmap.services.risk.risk_geojson` (properties
        ``code``, ``name``, ``village_name``, ``town_name``, ``n_<category>``, ``n_total``,
        ``score``, ``risk_level``, ``per_km2``, ``level_per_km2``, ``per_1000``,
        ``level_per_1000``, ``open_backlog``, ``overdue_backlog``, ``prev_total``, ``change``,
        ``change_pct``, ``gi_z``, ``gi_bin``; member ``legend``), inlined in the page. At most
        :data:`MAX_INLINE_FEATURES` grids (ValueError beyond).
    grids_url : str, optional
        Where the page fetches that FeatureCollection instead (large layers).
    classes : int
        Number of risk levels (the colour ramp).
    measure : {"score", "per_km2", "per_1000", "gi_bin"}
        The measure shown first; a control on the map switches between them and the legend
        follows.

    Returns
    -------
    folium.Map
        With the grid layer, hot-spot outlines, a layer control and only local assets.
    """
    m = base_map(bounds, basemap_url, basemap_attribution)
    outline = HotspotOutlines()
    outline.add_to(m)
    # The outlines come first: the grid layer fills them, and brings them to the front once drawn.
    RiskGridLayer(outline, data=grids, url=grids_url, classes=classes, measure=measure, labels=labels).add_to(m)
    folium.LayerControl(collapsed=False, position="topleft").add_to(m)
    return use_local_assets(m)


class HeatTimeLayer(JSCSSMixin, Layer):
    """A leaflet.heat layer over incident counts per cell and month, fetched from ``url``
    (:func:`gridmap.services.risk.heat_cells`), with a month slider and a play button."""

    default_js = [("leaflet-heat.js", vendor_url("leaflet-heat.js"))]

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>
        .gm-heat-box { background: rgba(255,255,255,.95); padding: 6px 10px; border-radius: 4px;
            font: 13px/1.6 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3); min-width: 280px; }
        .gm-heat-box input[type=range] { width: 100%; }
        .gm-heat-box button { font-size: 12px; }
        </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.heatLayer([], {radius: 18, blur: 16, maxZoom: 13, minOpacity: 0.25});
        {{ this.get_name() }}.gmMonth = null;
        {{ this.get_name() }}.gmPoints = -1;
        (function (layer, map, cfg) {
            var data = null, timer = null;
            var control = L.control({position: 'bottomleft'});
            control.onAdd = function () {
                var div = L.DomUtil.create('div', 'gm-heat-box');
                div.id = 'gm-heat-control';
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                var title = document.createElement('b');
                title.textContent = cfg.labels.heat_title;
                var label = document.createElement('div');
                label.id = 'gm-heat-month';
                label.textContent = cfg.labels.loading;
                var slider = document.createElement('input');
                slider.type = 'range'; slider.id = 'gm-heat-slider'; slider.min = 0; slider.max = 0; slider.step = 1;
                slider.value = 0; slider.disabled = true;
                slider.setAttribute('aria-label', cfg.labels.month);
                var play = document.createElement('button');
                play.type = 'button'; play.id = 'gm-heat-play'; play.textContent = cfg.labels.play; play.disabled = true;
                div.appendChild(title); div.appendChild(label); div.appendChild(slider); div.appendChild(play);
                slider.addEventListener('input', function () { show(Number(slider.value)); });
                play.addEventListener('click', function () {
                    if (timer) { stop(); return; }
                    play.textContent = cfg.labels.pause;
                    timer = setInterval(function () {
                        var next = (Number(slider.value) + 1) % data.months.length;
                        slider.value = next;
                        show(next);
                    }, 1200);
                });
                this._label = label; this._slider = slider; this._play = play;
                return div;
            };
            control.addTo(map);
            function stop() { clearInterval(timer); timer = null; control._play.textContent = cfg.labels.play; }
            function show(index) {
                var month = data.months[index];
                var points = data.points[month] || [];
                layer.setLatLngs(points.map(function (p) { return [p[0], p[1], p[2]]; }));
                var n = data.counts[month] || 0;
                control._label.textContent = n ? cfg.labels.incidents_in_month.replace('{month}', month).replace('{n}', n)
                                               : month + '：' + cfg.labels.empty;
                layer.gmMonth = month;
                layer.gmPoints = points.length;
                layer.fire('gm:month');
            }
            layer.gmShow = function (index) { control._slider.value = index; show(index); };
            fetch(cfg.url, {credentials: 'same-origin'})
                .then(function (r) { if (!r.ok) { throw new Error(cfg.url + ': HTTP ' + r.status); } return r.json(); })
                .then(function (d) {
                    data = d;
                    layer.setOptions({max: d.scale || 1});
                    if (!d.months.length) { control._label.textContent = cfg.labels.empty; return; }
                    control._slider.max = d.months.length - 1;
                    control._slider.disabled = d.months.length < 2;
                    control._play.disabled = d.months.length < 2;
                    control._slider.value = d.months.length - 1;
                    show(d.months.length - 1);
                    layer.fire('gm:loaded');
                })
                .catch(function (e) { console.error(e); });
        })({{ this.get_name() }}, {{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, url: str, labels: dict | None = None, name: str = "事件热力 Heatmap"):
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "HeatTimeLayer"
        self.escape_js = ESCAPE_JS
        self.config_json = script_json({"url": url, "labels": {**DEFAULT_LABELS, **(labels or {})}})


def build_heat_map(*, bounds, heat_url: str, grids_url: str | None = None, basemap_url: str = "",
                   basemap_attribution: str = "", labels: dict | None = None) -> folium.Map:
    """Build the incident heatmap with a month slider.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit.
    heat_url : str
        URL of the per-month cell counts (:func:`gridmap.services.risk.heat_cells` as JSON:
        ``months``, ``counts``, ``points`` = {month: [[lat, lon, n], ...]}, ``scale``). The
        page holds no incident data, so its size does not depend on their number.
    grids_url : str, optional
        Grid outlines fetched for the view, for orientation.

    Returns
    -------
    folium.Map
    """
    from gridmap.maps.elements import BboxGeoJson

    m = base_map(bounds, basemap_url, basemap_attribution)
    if grids_url:
        BboxGeoJson(grids_url, "网格 Grids", style={"color": "#777", "weight": 0.6, "fill": False},
                    fields={"code": "网格编码", "name": "网格"}, min_zoom=13, show=False).add_to(m)
    HeatTimeLayer(heat_url, labels=labels).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    return use_local_assets(m)


class StyledGeoJson(Layer):
    """Inline GeoJSON (small layers only) styled by one property, with escaped tooltips.

    ``styles`` maps a property value (as text) to a Leaflet path style; ``fields`` maps
    properties to tooltip labels; ``value_labels`` turns raw values into words per field.
    Points are drawn as circle markers.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = (function (cfg) {
            function styleOf(f) {
                var key = String(f.properties[cfg.property]);
                return Object.assign({}, cfg.base, cfg.styles[key] || {});
            }
            return L.geoJSON(cfg.data, {
                style: styleOf,
                pointToLayer: function (f, latlng) { return L.circleMarker(latlng, Object.assign({radius: 5}, styleOf(f))); },
                onEachFeature: function (f, layer) {
                    var rows = Object.keys(cfg.fields).map(function (k) {
                        var v = f.properties[k];
                        var words = (cfg.valueLabels[k] || {})[String(v)];
                        if (typeof v === 'number' && !Number.isInteger(v)) { v = v.toFixed(0); }
                        return '<tr><th>' + gmEscape(cfg.fields[k]) + '</th><td>' + gmEscape(words !== undefined ? words : v) + '</td></tr>';
                    });
                    layer.bindTooltip('<table>' + rows.join('') + '</table>', {sticky: true});
                }
            });
        })({{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, data: dict, name: str, *, property: str, styles: dict, fields: dict,
                 value_labels: dict | None = None, base: dict | None = None, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "StyledGeoJson"
        self.escape_js = ESCAPE_JS
        self.config_json = script_json({
            "data": data, "property": property, "styles": {str(k).lower() if isinstance(k, bool) else str(k): v
                                                          for k, v in styles.items()},
            "fields": fields, "valueLabels": value_labels or {}, "base": base or {}})


class LegendControl(MacroElement):
    """A legend inside the map (a Leaflet control, so it stays with the map on a long page):
    a title and (colour, label, outline-only) rows, escaped in Python."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function (map) {
            var legend = L.control({position: {{ this.position|tojson }}});
            legend.onAdd = function () {
                var div = L.DomUtil.create('div', 'gm-legend');
                div.style.cssText = 'background:rgba(255,255,255,.92);padding:6px 10px;border-radius:4px;'
                    + 'font:12px/1.6 sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)';
                div.innerHTML = {{ this.html|tojson }};
                return div;
            };
            legend.addTo(map);
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, title: str, rows: list[tuple[str, str, bool]], position: str = "bottomright"):
        super().__init__()
        self._name = "LegendControl"
        self.position = position
        items = []
        for colour, label, outline in rows:
            swatch = (f"border:2px dashed {html.escape(colour)};background:transparent" if outline
                      else f"background:{html.escape(colour)};border:1px solid #555")
            items.append(f'<span style="display:inline-block;width:12px;height:12px;margin-right:4px;'
                         f'vertical-align:middle;{swatch}"></span>{html.escape(label)}')
        self.html = f"<b>{html.escape(title)}</b><br>" + "<br>".join(items)


COMPLIANT_COLOURS = {True: "#1a9641", False: "#d7191c"}


def build_report_map(*, bounds, villages: dict, points: dict, distance_m: float, basemap_url: str = "",
                     basemap_attribution: str = "") -> folium.Map:
    """The report's map: villages by "三零" status, villages without a mediation point within
    ``distance_m`` outlined, and the mediation points.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit.
    villages : dict
        FeatureCollection of :func:`gridmap.services.risk.report_villages_geojson` (``code``,
        ``name``, ``town_name``, ``compliant``, the three flags and counts, ``mediation_gap``,
        ``distance_m``). A county has a few hundred villages; they are inlined.
    points : dict
        Mediation points (``name``, ``kind_zh``).
    distance_m : float
        The distance the gaps were found with (for the legend).

    Returns
    -------
    folium.Map
    """
    m = base_map(bounds, basemap_url, basemap_attribution)
    yes_no = {"True": "是", "False": "否", "true": "是", "false": "否"}
    StyledGeoJson(villages, "“三零”达标状态 Three-zero status", property="compliant",
                  styles={True: {"fillColor": COMPLIANT_COLOURS[True]}, False: {"fillColor": COMPLIANT_COLOURS[False]}},
                  base={"color": "#555", "weight": 0.7, "fillOpacity": 0.55},
                  fields={"name": "村（社区）", "town_name": "乡镇", "compliant": "“三零”达标",
                          "n_escalated_petitions": "越级/上交信访", "n_accidents": "安全事故",
                          "n_criminal_cases": "刑事案件", "n_serious_public_order_cases": "较重治安案件"},
                  value_labels={"compliant": yes_no}).add_to(m)
    gaps = {"type": "FeatureCollection",
            "features": [f for f in villages["features"] if f["properties"].get("mediation_gap")]}
    StyledGeoJson(gaps, f"调解阵地覆盖缺口（{distance_m:g} 米）Mediation gaps", property="mediation_gap",
                  styles={True: {"color": "#6a3d9a", "weight": 3, "dashArray": "6 4", "fill": False}},
                  fields={"name": "村（社区）", "town_name": "乡镇", "distance_m": "最近调解阵地（米）"}).add_to(m)
    StyledGeoJson(points, "调解阵地 Mediation points", property="kind_zh", styles={},
                  base={"color": "#fff", "weight": 1, "fillColor": "#6a3d9a", "fillOpacity": 0.9, "radius": 4},
                  fields={"name": "调解阵地", "kind_zh": "类型"}).add_to(m)
    LegendControl("图例", [(COMPLIANT_COLOURS[True], "“三零”达标", False), (COMPLIANT_COLOURS[False], "未达标", False),
                           ("#6a3d9a", f"{distance_m:g} 米内无调解阵地", True),
                           ("#6a3d9a", "调解阵地", False)]).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return use_local_assets(m)
