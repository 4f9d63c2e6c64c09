"""The patrol maps: grids coloured by the time since the last patrol visit (with a "not visited in
N hours" highlight), the tracks, hot spots outlined; and a planned route with its numbered stops.

Data reach the browser as JSON; every text in it goes through ``gmEscape`` before it is put into a
tooltip, popup or control. The words the browser shows come from ``labels`` (Chinese by default,
:data:`DEFAULT_LABELS`); the web layer passes them translated into the interface language.
"""
from __future__ import annotations

import html

import folium
import shapely
import shapely.geometry
from branca.element import MacroElement
from folium.map import Layer
from jinja2 import Template

from gridmap.maps.assets import use_local_assets
from gridmap.maps.elements import ESCAPE_JS
from gridmap.maps.home import base_map, inline_layer
from gridmap.maps.incidents import script_json


def N_(text: str) -> str:
    """Marks a label for translation (``pybabel extract`` finds it); the web layer translates it."""
    return text


# Hours since the last visit: (upper bound, colour, label). Recently visited is green, neglected red.
HOUR_CLASSES = ((6, "#1a9850", N_("6 小时内")), (12, "#91cf60", N_("6–12 小时")), (24, "#d9ef8b", N_("12–24 小时")),
                (48, "#fee08b", N_("1–2 天")), (96, "#fc8d59", N_("2–4 天")), (None, "#d73027", N_("4 天以上")))
NEVER_COLOUR = "#67001f"
HIGHLIGHT_COLOUR = "#e31a1c"
HOTSPOT_OUTLINE = "#6a3d9a"
TRACK_COLOUR = "#1f4e9c"
ROUTE_COLOUR = "#c2185b"
DEFAULT_LABELS = {
    "never": N_("期间内未巡逻"), "grid": N_("网格"), "village": N_("村（社区）"), "risk_level": N_("风险等级"),
    "hotspot": N_("热点"), "yes": N_("是"), "no": N_("否"), "visits": N_("巡逻到访"), "dwell": N_("停留合计（分钟）"),
    "share_10_15": N_("10–15 分钟停留占比"), "since": N_("距上次巡逻"), "hours": N_("小时"),
    "longest_gap": N_("最长间隔（小时）"), "last_visit": N_("最近一次"), "highlight": N_("未巡逻超过"),
    "high_risk_only": N_("只看高风险网格"), "stale_count": N_("{n} 个网格（其中高风险 {h} 个）"), "zone": N_("巡区"),
    "officer": N_("巡逻人员/组"), "time": N_("时间"), "length": N_("里程（公里）"), "fixes": N_("定位点"),
    "hotspot_title": N_("热点"), "grids_in_hotspot": N_("网格"), "arrival": N_("到达"), "departure": N_("离开"),
    "stop": N_("第 {n} 站"), "station": N_("出发（派出所）"), "colon": N_("："), "loading": N_("正在加载…"),
    # The coverage legend ({hours}: the highlight's starting threshold).
    "legend_title": N_("距上次巡逻"), "legend_highlight": N_("红框：未巡逻超过所设小时数（默认 {hours}）"),
    "legend_hotspot": N_("紫色虚线：热点（Gi*）"), "legend_tracks": N_("蓝线：巡逻轨迹"),
    **{f"class_{i}": label for i, (_, _, label) in enumerate(HOUR_CLASSES)},
}


class CoverageGridLayer(Layer):
    """Grids coloured by hours since their last visit, with tooltips and a control that outlines the
    grids not visited in the last N hours (optionally only the high-risk ones) and counts them.

    ``data`` is the FeatureCollection of :func:`gridmap.services.patrol.coverage_geojson` (inlined)
    or ``url`` where the page fetches it."""

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>
        .gm-cov-box { background: rgba(255,255,255,.95); padding: 6px 9px; border-radius: 4px;
            font: 12px/1.6 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3); max-width: 260px; }
        .gm-cov-box input[type=number] { width: 4.5em; }
        .gm-cov-tip table { border-collapse: collapse; font-size: 12px; }
        .gm-cov-tip th { text-align: left; padding-right: 8px; color: #555; font-weight: normal; }
        </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.geoJSON(null, {});
        {{ this.get_name() }}.gmLoaded = 0;
        {{ this.get_name() }}.gmStale = [];
        (function (layer, map, cfg) {
            var hours = cfg.hours, highRiskOnly = cfg.highRiskOnly, L_ = cfg.labels;
            function colourOf(p) {
                var h = p.hours_since_last_visit;
                if (h === null || h === undefined) { return cfg.never; }
                for (var i = 0; i < cfg.classes.length; i++) {
                    if (cfg.classes[i][0] === null || h < cfg.classes[i][0]) { return cfg.classes[i][1]; }
                }
                return cfg.classes[cfg.classes.length - 1][1];
            }
            function isStale(p) {
                var h = p.hours_since_last_visit;
                var stale = h === null || h === undefined || h >= hours;
                return stale && (!highRiskOnly || p.high_risk);
            }
            function style(f) {
                var stale = isStale(f.properties);
                return {color: stale ? cfg.highlight : '#666', weight: stale ? 3 : 0.6, opacity: stale ? 1 : 0.7,
                        fillColor: colourOf(f.properties), fillOpacity: 0.65};
            }
            function n(v, d) { var x = Number(v); return (v === null || v === undefined || !isFinite(x)) ? '—' : x.toFixed(d); }
            function tooltip(p) {
                var since = (p.hours_since_last_visit === null || p.hours_since_last_visit === undefined)
                    ? L_.never : n(p.hours_since_last_visit, 1) + ' ' + L_.hours;
                var rows = [
                    [L_.grid, p.code + ' ' + p.name], [L_.village, p.village_name],
                    [L_.risk_level, p.risk_level], [L_.hotspot, p.hotspot ? L_.yes : L_.no],
                    [L_.since, since], [L_.visits, p.visits], [L_.dwell, n(p.dwell_minutes, 0)],
                    [L_.share_10_15, p.share_10_15 === null || p.share_10_15 === undefined ? '—' : n(p.share_10_15 * 100, 0) + '%'],
                    [L_.longest_gap, n(p.longest_gap_hours, 1)]
                ];
                return '<div class="gm-cov-tip"><table>' + rows.map(function (r) {
                    return '<tr><th>' + gmEscape(r[0]) + '</th><td>' + gmEscape(r[1]) + '</td></tr>'; }).join('') + '</table></div>';
            }
            layer.options.style = style;
            layer.options.onEachFeature = function (f, l) {
                l.bindTooltip(function () { return tooltip(f.properties); }, {sticky: true});
            };
            var control = L.control({position: 'topright'});
            var count;
            control.onAdd = function () {
                var div = L.DomUtil.create('form', 'gm-cov-box');
                div.id = 'gm-cov-highlight';
                L.DomEvent.disableClickPropagation(div);
                var label = document.createElement('label');
                label.appendChild(document.createTextNode(L_.highlight + ' '));
                var input = document.createElement('input');
                input.type = 'number'; input.min = 1; input.max = 2400; input.step = 1; input.value = hours;
                input.id = 'gm-cov-hours'; input.name = 'hours';
                label.appendChild(input);
                label.appendChild(document.createTextNode(' ' + L_.hours));
                var box = document.createElement('label');
                box.style.display = 'block';
                var check = document.createElement('input');
                check.type = 'checkbox'; check.id = 'gm-cov-high'; check.checked = highRiskOnly;
                box.appendChild(check);
                box.appendChild(document.createTextNode(' ' + L_.high_risk_only));
                count = document.createElement('div');
                count.id = 'gm-cov-count';
                count.textContent = L_.loading;
                div.appendChild(label); div.appendChild(box); div.appendChild(count);
                input.addEventListener('input', function () {
                    var v = Number(input.value);
                    if (isFinite(v) && v > 0) { hours = v; refresh(); }
                });
                check.addEventListener('change', function () { highRiskOnly = check.checked; refresh(); });
                div.addEventListener('submit', function (e) { e.preventDefault(); });
                return div;
            };
            control.addTo(map);
            function refresh() {
                layer.setStyle(style);
                var stale = [], high = 0;
                layer.eachLayer(function (l) {
                    if (isStale(l.feature.properties)) {
                        stale.push(l.feature.properties.code);
                        if (l.feature.properties.high_risk) { high += 1; }
                        l.bringToFront();
                    }
                });
                layer.gmStale = stale;
                layer.gmHours = hours;
                count.textContent = L_.stale_count.replace('{n}', stale.length).replace('{h}', high);
                layer.fire('gm:highlight');
            }
            layer.gmSetHours = function (value, onlyHigh) {
                hours = value;
                if (onlyHigh !== undefined) { highRiskOnly = onlyHigh; }
                refresh();
            };
            function show(data) {
                layer.clearLayers();
                layer.addData(data);
                layer.gmLoaded = data.features.length;
                refresh();
                layer.fire('gm:loaded');
            }
            if (cfg.data) { show(cfg.data); }
            else {
                fetch(cfg.url, {credentials: 'same-origin'})
                    .then(function (r) { if (!r.ok) { throw new Error(cfg.url + ': HTTP ' + r.status); } return r.json(); })
                    .then(show).catch(function (e) { console.error(e); });
            }
        })({{ this.get_name() }}, {{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, *, data: dict | None = None, url: str | None = None, hours: float = 24,
                 high_risk_only: bool = True, labels: dict | None = None, name: str = "巡逻覆盖 Coverage"):
        if (data is None) == (url is None):
            raise ValueError("give the grids either inline (data) or by URL (url)")
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "CoverageGridLayer"
        self.escape_js = ESCAPE_JS
        self.config_json = script_json({
            "data": data, "url": url, "hours": float(hours), "highRiskOnly": bool(high_risk_only),
            "classes": [[bound, colour] for bound, colour, _ in HOUR_CLASSES], "never": NEVER_COLOUR,
            "highlight": HIGHLIGHT_COLOUR, "labels": {**DEFAULT_LABELS, **(labels or {})}})


class TrackLines(Layer):
    """Patrol tracks (simplified lines) fetched from ``url``; tooltips name the zone, the officer or
    unit where the user may see it, the time and the length."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.geoJSON(null, {
            style: function () { return {color: {{ this.colour|tojson }}, weight: 1.6, opacity: 0.55}; },
            onEachFeature: function (f, l) {
                var p = f.properties, L_ = {{ this.labels_json }};
                var rows = [[L_.zone, p.zone_name || p.zone_code]];
                if (p.officer) { rows.push([L_.officer, p.officer]); }
                rows.push([L_.time, String(p.started_at).slice(0, 16).replace('T', ' ') + ' – ' + String(p.ended_at).slice(11, 16)]);
                rows.push([L_.length, (Number(p.length_m) / 1000).toFixed(1)]);
                rows.push([L_.fixes, p.fixes_kept]);
                l.bindTooltip('<table>' + rows.map(function (r) {
                    return '<tr><th>' + gmEscape(r[0]) + '</th><td>' + gmEscape(r[1]) + '</td></tr>'; }).join('') + '</table>',
                    {sticky: true});
            }
        });
        {{ this.get_name() }}.gmLoaded = -1;
        (function (layer, url) {
            fetch(url, {credentials: 'same-origin'})
                .then(function (r) { if (!r.ok) { throw new Error(url + ': HTTP ' + r.status); } return r.json(); })
                .then(function (data) { layer.addData(data); layer.gmLoaded = data.features.length; layer.fire('gm:loaded'); })
                .catch(function (e) { console.error(e); });
        })({{ this.get_name() }}, {{ this.url_json }});
        {% endmacro %}
    """)

    def __init__(self, url: str, *, name: str = "巡逻轨迹 Tracks", show: bool = True, labels: dict | None = None):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TrackLines"
        self.escape_js = ESCAPE_JS
        self.colour = TRACK_COLOUR
        self.url_json = script_json(url)
        self.labels_json = script_json({**DEFAULT_LABELS, **(labels or {})})


def _hotspot_layer(hotspots: dict) -> folium.GeoJson:
    return folium.GeoJson(hotspots, name="热点 Hot spots", style_function=lambda f: {
        "color": HOTSPOT_OUTLINE, "weight": 3, "dashArray": "6 4", "fill": False, "interactive": False})


class MapLegend(MacroElement):
    """A legend inside the map (a Leaflet control), so it stays with the map on a scrolling page:
    a title and (colour, label) rows, escaped."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function (map) {
            var legend = L.control({position: 'bottomright'});
            legend.onAdd = function () {
                var div = L.DomUtil.create('div', 'gm-legend');
                div.style.cssText = 'background: rgba(255,255,255,.92); padding: 6px 10px; border-radius: 4px; '
                    + 'font: 12px/1.5 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3);';
                div.innerHTML = {{ this.html_json }};
                return div;
            };
            legend.addTo(map);
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, title: str, rows: list[tuple[str, str]]):
        super().__init__()
        self._name = "MapLegend"
        swatch = ('<span style="display:inline-block;width:12px;height:12px;background:{};margin-right:4px;'
                  'vertical-align:middle;border:1px solid #555"></span>')
        body = "".join(swatch.format(html.escape(colour)) + html.escape(label) + "<br>" for colour, label in rows)
        self.html_json = script_json(f"<b>{html.escape(title)}</b><br>{body}")


def coverage_legend(hours: float, labels: dict | None = None) -> MapLegend:
    """The coverage map's legend in the words of ``labels`` (see :data:`DEFAULT_LABELS`)."""
    words = {**DEFAULT_LABELS, **(labels or {})}
    rows = [(colour, words[f"class_{i}"]) for i, (_, colour, _) in enumerate(HOUR_CLASSES)]
    rows += [(NEVER_COLOUR, words["never"]),
             (HIGHLIGHT_COLOUR, words["legend_highlight"].replace("{hours}", f"{hours:g}")),
             (HOTSPOT_OUTLINE, words["legend_hotspot"]), (TRACK_COLOUR, words["legend_tracks"])]
    return MapLegend(words["legend_title"], rows)


def build_coverage_map(*, bounds, grids: dict | None = None, grids_url: str | None = None, tracks_url: str,
                       hotspots: dict, zones: dict, stations: dict, hours: float = 24, high_risk_only: bool = True,
                       labels: dict | None = None, basemap_url: str = "",
                       basemap_attribution: str = "") -> folium.Map:
    """Build the patrol coverage map.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit.
    grids : dict, optional
        Grids with coverage (:func:`gridmap.services.patrol.coverage_geojson`: ``code``, ``name``,
        ``village_name``, ``risk_level``, ``hotspot``, ``high_risk``, ``visits``, ``dwell_minutes``,
        ``share_10_15``, ``hours_since_last_visit`` (null when not visited in the period),
        ``longest_gap_hours``), inlined. Only for at most a few thousand grids.
    grids_url : str, optional
        Where the page fetches them instead.
    tracks_url : str
        GeoJSON of the tracks (simplified lines), fetched by the page.
    hotspots, zones, stations : dict
        Small FeatureCollections drawn inline: hot-spot areas (outlined), patrol zones, stations.
    hours : float, default 24
        Initial "not visited in N hours" threshold of the highlight control.
    high_risk_only : bool, default True
        Whether the highlight starts limited to high-risk grids.
    labels : dict, optional
        The words shown in tooltips, the highlight control and the legend, by the keys of
        :data:`DEFAULT_LABELS` (Chinese where not given).

    Returns
    -------
    folium.Map
    """
    m = base_map(bounds, basemap_url, basemap_attribution)
    inline_layer(zones, "巡区 Patrol zones", {"color": "#1f4e9c", "weight": 2, "dashArray": "6 4", "fill": False,
                                             "interactive": False}).add_to(m)
    CoverageGridLayer(data=grids, url=grids_url, hours=hours, high_risk_only=high_risk_only,
                      labels=labels).add_to(m)
    _hotspot_layer(hotspots).add_to(m)
    TrackLines(tracks_url, labels=labels).add_to(m)
    station_group = folium.FeatureGroup(name="派出所 Police stations").add_to(m)
    for f in stations["features"]:
        lon, lat = f["geometry"]["coordinates"]
        folium.Marker([lat, lon], icon=folium.Icon(color="cadetblue", icon="building-shield", prefix="fa"),
                      tooltip=html.escape(str(f["properties"]["name"]))).add_to(station_group)
    folium.LayerControl(collapsed=False, position="topleft").add_to(m)
    coverage_legend(hours, labels).add_to(m)
    return use_local_assets(m)


class RouteLayer(Layer):
    """A planned route: the path, the station, and a numbered marker per stop (1..n in visiting
    order) whose popup gives the planned arrival and departure. ``layer.gmStops`` holds the
    markers in order."""

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>
        .gm-stop-icon { background: none; border: none; }
        .gm-stop-number { width: 24px; height: 24px; border-radius: 50%; background: {{ this.colour }}; color: #fff;
            font: bold 13px/24px sans-serif; text-align: center; border: 2px solid #fff; box-shadow: 0 0 3px rgba(0,0,0,.6); }
        .gm-station-icon div { width: 18px; height: 18px; background: #1f3b63; border: 2px solid #fff;
            box-shadow: 0 0 3px rgba(0,0,0,.6); }
        .gm-route-popup th { text-align: left; padding-right: 8px; color: #555; font-weight: normal; }
        </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        var {{ this.get_name() }} = L.featureGroup();
        (function (layer, map, cfg) {
            var L_ = cfg.labels;
            var coords = cfg.path.map(function (c) { return [c[1], c[0]]; });
            layer.gmPath = L.polyline(coords, {color: cfg.colour, weight: 4, opacity: 0.8}).addTo(layer);
            var station = L.marker([cfg.start[1], cfg.start[0]], {icon: L.divIcon({className: 'gm-station-icon',
                html: '<div></div>', iconSize: [22, 22]}), zIndexOffset: 1000});
            station.bindTooltip(gmEscape(L_.station + (cfg.station ? L_.colon + cfg.station : '')));
            station.addTo(layer);
            layer.gmStops = cfg.stops.map(function (s) {
                var icon = L.divIcon({className: 'gm-stop-icon', iconSize: [28, 28], iconAnchor: [14, 14],
                    html: '<div class="gm-stop-number" data-order="' + gmEscape(s.order) + '">' + gmEscape(s.order) + '</div>'});
                var marker = L.marker([s.lat, s.lon], {icon: icon, zIndexOffset: 2000 - s.order});
                var rows = [[L_.grid, s.grid_code + ' ' + (s.name || '')], [L_.village, s.village_name],
                    [L_.arrival, String(s.arrival).slice(11, 16)], [L_.departure, String(s.departure).slice(11, 16)],
                    [L_.risk_level, s.risk_level], [L_.hotspot, s.hotspot ? L_.yes : L_.no],
                    [L_.since, s.hours_since_last_visit === null ? L_.never : s.hours_since_last_visit + ' ' + L_.hours]];
                marker.bindPopup('<div class="gm-route-popup"><b>' + gmEscape(L_.stop.replace('{n}', s.order)) + '</b><table>'
                    + rows.map(function (r) { return '<tr><th>' + gmEscape(r[0]) + '</th><td>' + gmEscape(r[1]) + '</td></tr>'; }).join('')
                    + '</table></div>');
                marker.bindTooltip(gmEscape(s.order + '. ' + (s.name || s.grid_code) + ' ' + String(s.arrival).slice(11, 16)));
                marker.gmOrder = s.order;
                marker.addTo(layer);
                return marker;
            });
            window.gmRoute = layer;
        })({{ this.get_name() }}, {{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, *, path: list, stops: list[dict], start, station: str | None = None,
                 labels: dict | None = None, name: str = "巡逻路线 Route"):
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "RouteLayer"
        self.escape_js = ESCAPE_JS
        self.colour = ROUTE_COLOUR
        self.config_json = script_json({
            "path": [list(c) for c in path], "start": list(start), "station": station, "colour": ROUTE_COLOUR,
            "stops": [{k: s.get(k) for k in ("order", "grid_code", "name", "village_name", "lon", "lat", "arrival",
                                             "departure", "risk_level", "hotspot", "hours_since_last_visit")}
                      for s in stops],
            "labels": {**DEFAULT_LABELS, **(labels or {})}})


def build_route_map(*, route: dict, zone: dict, stop_grids: dict, labels: dict | None = None, basemap_url: str = "",
                    basemap_attribution: str = "") -> folium.Map:
    """Build the map of a planned route.

    Parameters
    ----------
    route : dict
        :func:`gridmap.services.patrol.route_json`: ``stops`` (in order, with ``order``,
        ``grid_code``, ``name``, ``lon``, ``lat``, ``arrival``, ``departure``, …), ``path`` (a GeoJSON
        LineString), ``start`` (lon, lat) and ``station_name``.
    zone : dict
        The patrol zone (FeatureCollection), outlined.
    stop_grids : dict
        The grids of the stops (FeatureCollection), shaded.
    labels : dict, optional
        The words of the stops' popups and tooltips, by the keys of :data:`DEFAULT_LABELS`.

    Returns
    -------
    folium.Map
        Fitted to the route and the zone.
    """
    coords = route["path"]["coordinates"] + [[s["lon"], s["lat"]] for s in route["stops"]] + [route["start"]]
    for feature in zone["features"] + stop_grids["features"]:
        coords += shapely.get_coordinates(shapely.geometry.shape(feature["geometry"])).tolist()
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    m = base_map((min(xs), min(ys), max(xs), max(ys)), basemap_url, basemap_attribution)
    inline_layer(zone, "巡区 Patrol zone", {"color": "#1f4e9c", "weight": 2, "dashArray": "6 4",
                                           "fillOpacity": 0.03, "interactive": False}).add_to(m)
    inline_layer(stop_grids, "停靠网格 Stop grids", {"color": ROUTE_COLOUR, "weight": 1, "fillOpacity": 0.15,
                                                   "interactive": False}).add_to(m)
    RouteLayer(path=route["path"]["coordinates"], stops=route["stops"], start=route["start"],
               station=route.get("station_name"), labels=labels).add_to(m)
    folium.LayerControl(collapsed=False, position="topleft").add_to(m)
    return use_local_assets(m)
