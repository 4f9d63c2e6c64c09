"""Maps of the registries: places by inspection status with the incidents their hazards opened,
one place with its inspections' incidents, village-staff coverage gaps, legal-publicity activities;
and the static map image of a bulletin (matplotlib, for Excel and PDF).

The words the browser builds into popups, tooltips and legends come from ``labels`` (Chinese by
default, :data:`DEFAULT_LABELS`); the web layer passes them in the interface language. Values from
the data (names, kinds, statuses) are shown as the API gives them.
"""
from __future__ import annotations

import html
import io
import json
import math

import folium
from folium.map import Layer
from jinja2 import Template

from gridmap.catalog import ACTIVITY_KIND_ZH, INSPECTION_STATUS_ZH
from gridmap.maps.assets import use_local_assets
from gridmap.maps.elements import ESCAPE_JS, BboxGeoJson, Legend
from gridmap.maps.home import base_map

STATUS_COLOURS = {"overdue": "#d7191c", "due": "#fdae61", "ok": "#1a9641"}
GAP_COLOURS = {"both": "#d7191c", "police": "#fdae61", "lawyer": "#abd9e9", "none": "#1a9641"}
GAP_ZH = {"both": "缺民警和律师", "police": "缺驻村民警", "lawyer": "缺法律顾问", "none": "已配齐"}
ACTIVITY_COLOURS = {"agencies": "#6a3d9a", "villages": "#33a02c", "communities": "#1f78b4", "schools": "#ff7f00",
                    "enterprises": "#e31a1c", "units": "#b15928"}
HAZARD_COLOUR = "#7b3294"


def N_(text: str) -> str:
    """Marks a label for translation (``pybabel extract`` finds it); the web layer translates it."""
    return text


DEFAULT_LABELS = {
    "kind": N_("类型"), "subkind": N_("细类"), "address": N_("地址"), "town": N_("乡镇"), "village": N_("村（社区）"),
    "grid": N_("网格"), "grid_code": N_("网格编码"), "last_inspected": N_("上次检查"), "next_due": N_("应检日期"),
    "status": N_("状态"), "category": N_("类别"), "place": N_("场所"), "inspection": N_("巡检记录"),
    "found_at": N_("发现时间"), "open_case": N_("查看事件"), "inspect": N_("检查记录 / 登记检查"),
    "police": N_("驻村民警"), "lawyer": N_("法律顾问"), "grid_worker": N_("网格员"), "mediator": N_("调解员"),
    "elder": N_("五老"), "grids_without_worker": N_("无网格员网格"), "date": N_("日期"), "audience": N_("受众人数"),
    "organiser": N_("主办"), "hazards": N_("隐患事件"), "staffing_legend": N_("一村一警一律师"),
    "no_worker_outline": N_("黑色虚线：网格无网格员"), "publicity_legend": N_("法律六进"),
}


def _words(labels: dict | None) -> dict:
    return {**DEFAULT_LABELS, **(labels or {})}


def script_json(value) -> str:
    """JSON safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    return (json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


class FetchedLayer(Layer):
    """A GeoJSON layer fetched from ``url`` (with ``bbox=`` for the view when ``by_view``), each
    feature coloured by one property, with an escaped tooltip and popup.

    The layer is also registered as ``window.gmLayers[key]`` so pages (and tests) can find it;
    ``gmLoaded`` holds the number of features of the last answer and a ``gm:loaded`` event fires.

    Parameters
    ----------
    url : str
        The GeoJSON endpoint.
    name : str
        Name in the layer control.
    key : str
        Name under ``window.gmLayers``.
    colour_by : str, optional
        Property whose value picks the colour from ``colours`` (else ``default_colour``).
    fields : dict, optional
        Property -> label rows of the popup (and, for ``tooltip``, its text property).
    link : str, optional
        URL with ``__ID__`` for the feature's id, linked from the popup as ``link_label``.
    radius_by : str, optional
        Property scaled into the circle radius of points (``sqrt``, between 5 and 16 pixels).
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.escape_js }}
        window.gmLayers = window.gmLayers || {};
        var {{ this.get_name() }} = (function (map, cfg) {
            function colourOf(f) {
                var v = cfg.colourBy ? f.properties[cfg.colourBy] : null;
                return (v !== null && v !== undefined && cfg.colours[String(v)]) || cfg.defaultColour;
            }
            function radiusOf(f) {
                if (!cfg.radiusBy) { return cfg.radius; }
                var v = Number(f.properties[cfg.radiusBy]) || 0;
                return Math.max(5, Math.min(16, 4 + Math.sqrt(v) / 2));
            }
            function popupHtml(f) {
                var p = f.properties;
                var rows = cfg.fields.map(function (pair) {
                    var value = p[pair[0]];
                    return '<tr><th style="text-align:left;padding-right:6px">' + gmEscape(pair[1]) + '</th><td>'
                        + gmEscape(value === null || value === undefined ? '' : value) + '</td></tr>';
                });
                var title = cfg.titleField ? '<b>' + gmEscape(p[cfg.titleField]) + '</b>' : '';
                var link = '';
                if (cfg.link) {
                    var href = cfg.link.replace('__ID__', encodeURIComponent(f.id !== undefined ? f.id : p.id));
                    link = '<br><a class="gm-feature-link" href="' + gmEscape(href) + '">' + gmEscape(cfg.linkLabel) + '</a>';
                }
                return '<div class="gm-popup" data-id="' + gmEscape(f.id) + '">' + title + '<table>' + rows.join('') + '</table>' + link + '</div>';
            }
            var layer = L.geoJSON(null, {
                style: function (f) {
                    var c = colourOf(f);
                    return Object.assign({}, cfg.style, {color: cfg.style.color || c, fillColor: c});
                },
                pointToLayer: function (f, latlng) {
                    var c = colourOf(f);
                    return L.circleMarker(latlng, Object.assign({radius: radiusOf(f), color: '#333', weight: 1,
                                                                 fillColor: c, fillOpacity: 0.85}, cfg.pointStyle));
                },
                onEachFeature: function (f, l) {
                    l.gmId = f.id;
                    if (cfg.tooltipField) { l.bindTooltip(gmEscape(f.properties[cfg.tooltipField])); }
                    if (cfg.fields.length || cfg.titleField) { l.bindPopup(popupHtml(f), {maxWidth: 300}); }
                }
            });
            layer.gmRefresh = gmFetchGeoJson(layer, map, cfg);
            window.gmLayers[cfg.key] = layer;
            return layer;
        })({{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, url: str, name: str, key: str, *, colour_by: str | None = None, colours: dict | None = None,
                 default_colour: str = "#3388ff", fields: dict | None = None, title_field: str | None = None,
                 tooltip_field: str | None = None, link: str | None = None, link_label: str = "详情",
                 style: dict | None = None, point_style: dict | None = None, radius: int = 6,
                 radius_by: str | None = None, by_view: bool = True, min_zoom: int = 0, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "FetchedLayer"
        self.escape_js = ESCAPE_JS
        self.config_json = script_json({
            "url": url, "key": key, "colourBy": colour_by, "colours": colours or {}, "defaultColour": default_colour,
            "fields": [[k, v] for k, v in (fields or {}).items()], "titleField": title_field,
            "tooltipField": tooltip_field, "link": link, "linkLabel": link_label, "style": style or {},
            "pointStyle": point_style or {}, "radius": radius, "radiusBy": radius_by, "byView": by_view,
            "minZoom": min_zoom})


def _outlines(m: folium.Map, county: dict, towns: dict, words: dict) -> None:
    folium.GeoJson(county, name="县界 County", style_function=lambda f: {
        "color": "#222", "weight": 3, "fill": False}).add_to(m)
    folium.GeoJson(towns, name="乡镇 Towns", style_function=lambda f: {
        "color": "#444", "weight": 1.5, "fillOpacity": 0.0},
        tooltip=folium.GeoJsonTooltip(["name"], aliases=[html.escape(words["town"])]) if towns["features"] else None
    ).add_to(m)


# Popup rows: property -> key of the label in DEFAULT_LABELS.
PLACE_FIELDS = {"kind_zh": "kind", "subkind_zh": "subkind", "address": "address", "town_name": "town",
                "village_name": "village", "grid_code": "grid", "last_inspected": "last_inspected",
                "next_due": "next_due", "status_zh": "status"}
HAZARD_FIELDS = {"category_zh": "category", "status_zh": "status", "place_name": "place", "inspection_id": "inspection",
                 "occurred_at": "found_at"}
STAFFING_FIELDS = {"town_name": "town", "police": "police", "lawyer": "lawyer", "grid_worker": "grid_worker",
                   "mediator": "mediator", "elder": "elder", "grids_without_worker": "grids_without_worker"}
ACTIVITY_FIELDS = {"held_on": "date", "kind_zh": "kind", "audience": "audience", "organiser": "organiser",
                   "village_name": "village", "town_name": "town"}


def _fields(fields: dict, words: dict) -> dict:
    return {prop: words[key] for prop, key in fields.items()}


def _hazard_layer(url: str, case_link: str | None, words: dict, *, by_view: bool = True) -> FetchedLayer:
    return FetchedLayer(url, "隐患事件 Hazard incidents", "hazards", default_colour=HAZARD_COLOUR,
                        fields=_fields(HAZARD_FIELDS, words), title_field="id", tooltip_field="category_zh",
                        link=case_link, link_label=words["open_case"], radius=8,
                        point_style={"color": "#fff", "weight": 2}, by_view=by_view)


def build_places_map(*, bounds, county: dict, towns: dict, places_url: str, hazards_url: str, place_link: str,
                     case_link: str | None = None, labels: dict | None = None, basemap_url: str = "",
                     basemap_attribution: str = "") -> folium.Map:
    """Places coloured by inspection status (overdue, due, ok) and the incidents their inspections opened.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) to fit.
    county, towns : dict
        Small GeoJSON FeatureCollections drawn inline.
    places_url, hazards_url : str
        GeoJSON endpoints fetched for the current view.
    place_link, case_link : str
        Page URLs with ``__ID__`` for a place and for an incident.
    labels : dict, optional
        Words of popups, tooltips and the legend by the keys of :data:`DEFAULT_LABELS`.

    Returns
    -------
    folium.Map
    """
    words = _words(labels)
    m = base_map(bounds, basemap_url, basemap_attribution)
    _outlines(m, county, towns, words)
    FetchedLayer(places_url, "重点场所 Places", "places", colour_by="status", colours=STATUS_COLOURS,
                 fields=_fields(PLACE_FIELDS, words), title_field="name", tooltip_field="name", link=place_link,
                 link_label=words["inspect"]).add_to(m)
    _hazard_layer(hazards_url, case_link, words).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    Legend("巡检状态 Inspection", [(STATUS_COLOURS[s], INSPECTION_STATUS_ZH[s]) for s in ("overdue", "due", "ok")]
           + [(HAZARD_COLOUR, words["hazards"])]).add_to(m)
    return use_local_assets(m)


def build_place_map(*, place: dict, hazards_url: str, case_link: str | None = None, grids_url: str | None = None,
                    labels: dict | None = None, basemap_url: str = "", basemap_attribution: str = "") -> folium.Map:
    """One place (a GeoJSON Feature from the places API) and the incidents its inspections opened.

    Parameters
    ----------
    place : dict
        GeoJSON Feature with the place's properties (``name``, ``status``, ...).
    hazards_url : str
        GeoJSON endpoint of this place's hazard incidents.
    grids_url : str, optional
        GeoJSON endpoint of the grids, drawn for the view as context.
    labels : dict, optional
        As in :func:`build_places_map`.

    Returns
    -------
    folium.Map
    """
    words = _words(labels)
    lon, lat = place["geometry"]["coordinates"]
    m = base_map((lon - 0.006, lat - 0.004, lon + 0.006, lat + 0.004), basemap_url, basemap_attribution)
    props = place["properties"]
    if grids_url:
        BboxGeoJson(grids_url, "网格 Grids", style={"color": "#e07b00", "weight": 1, "fillOpacity": 0.04},
                    fields={"code": words["grid_code"], "name": words["grid"]}).add_to(m)
    colour = STATUS_COLOURS.get(props.get("status"), "#3388ff")
    folium.CircleMarker([lat, lon], radius=9, color="#333", weight=1, fill=True, fill_color=colour,
                        fill_opacity=0.9, tooltip=html.escape(props["name"])).add_to(m)
    _hazard_layer(hazards_url, case_link, words, by_view=False).add_to(m)
    return use_local_assets(m)


def build_coverage_map(*, bounds, county: dict, towns: dict, villages_url: str, grids_url: str,
                       labels: dict | None = None, basemap_url: str = "", basemap_attribution: str = "") -> folium.Map:
    """Villages coloured by what they lack ("一村一警一律师") and grids without a grid worker.

    Parameters
    ----------
    villages_url, grids_url : str
        GeoJSON endpoints of the coverage layers (villages with ``gap``, uncovered grids).
    labels : dict, optional
        As in :func:`build_places_map`.

    Returns
    -------
    folium.Map
    """
    words = _words(labels)
    m = base_map(bounds, basemap_url, basemap_attribution)
    _outlines(m, county, towns, words)
    FetchedLayer(villages_url, "村（社区）配备 Villages", "coverage_villages", colour_by="gap", colours=GAP_COLOURS,
                 fields=_fields(STAFFING_FIELDS, words), title_field="name", tooltip_field="name", style={"color": "#555", "weight": 0.8, "fillOpacity": 0.55},
                 by_view=False).add_to(m)
    FetchedLayer(grids_url, "无网格员网格 Grids without worker", "coverage_grids", default_colour="#000000",
                 fields={"village_name": words["village"], "code": words["grid_code"]}, title_field="name",
                 tooltip_field="code",
                 style={"color": "#000", "weight": 2, "dashArray": "4 3", "fillOpacity": 0.0},
                 by_view=False).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    Legend(words["staffing_legend"], [(GAP_COLOURS[k], GAP_ZH[k]) for k in ("both", "police", "lawyer", "none")]
           + [("#ffffff", words["no_worker_outline"])]).add_to(m)
    return use_local_assets(m)


def build_activities_map(*, bounds, county: dict, towns: dict, activities_url: str, labels: dict | None = None,
                         basemap_url: str = "", basemap_attribution: str = "") -> folium.Map:
    """Legal-publicity activities of a period, coloured by kind ("法律六进"), sized by audience.

    Parameters
    ----------
    activities_url : str
        GeoJSON endpoint (with the period in its query) fetched for the current view.
    labels : dict, optional
        As in :func:`build_places_map`.

    Returns
    -------
    folium.Map
    """
    words = _words(labels)
    m = base_map(bounds, basemap_url, basemap_attribution)
    _outlines(m, county, towns, words)
    FetchedLayer(activities_url, "普法活动 Activities", "activities", colour_by="kind", colours=ACTIVITY_COLOURS,
                 fields=_fields(ACTIVITY_FIELDS, words), title_field="title", tooltip_field="title",
                 radius_by="audience").add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    Legend(words["publicity_legend"], [(ACTIVITY_COLOURS[k], ACTIVITY_KIND_ZH[k]) for k in ACTIVITY_COLOURS]).add_to(m)
    return use_local_assets(m)


def render_bulletin_map(villages, towns, activities=None, labels=(), *, width_px: int = 1200) -> bytes:
    """A PNG map for a bulletin: villages green where they meet "三零", red where they do not, town
    outlines, activity points in blue, and short labels (digits: Latin fonts suffice).

    Parameters
    ----------
    villages : geopandas.GeoDataFrame
        Polygons with a boolean ``three_zero`` column (missing counts as met).
    towns : geopandas.GeoDataFrame
        Outlines.
    activities : geopandas.GeoDataFrame, optional
        Points.
    labels : iterable of (x, y, text)
        Text drawn at lon/lat positions.

    Returns
    -------
    bytes
        The PNG file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frames = [f for f in (towns, villages) if len(f)]
    extent = frames[0].total_bounds if frames else (0.0, 0.0, 1.0, 1.0)
    # Degrees of longitude are shorter than degrees of latitude away from the equator.
    stretch = 1 / math.cos(math.radians((extent[1] + extent[3]) / 2))
    ratio = (extent[2] - extent[0]) / max((extent[3] - extent[1]) * stretch, 1e-9)
    height = min(max(8 / ratio, 3.0), 11.0)
    figure = Figure(figsize=(8, height), dpi=width_px / 8)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0.01, 0.01, 0.98, 0.98))
    ax.set_axis_off()
    if len(villages):
        met = villages["three_zero"].fillna(True).astype(bool)
        for subset, colour in ((villages[met], "#a6d96a"), (villages[~met], "#f46d43")):
            if len(subset):
                subset.plot(ax=ax, color=colour, edgecolor="#ffffff", linewidth=0.3)
    if len(towns):
        towns.boundary.plot(ax=ax, color="#333333", linewidth=1.0)
    if activities is not None and len(activities):
        activities.plot(ax=ax, color="#2166ac", markersize=6)
    for x, y, text in labels:
        if text:
            ax.text(x, y, text, ha="center", va="center", fontsize=11, fontweight="bold", color="#111111",
                    bbox={"boxstyle": "circle,pad=0.25", "facecolor": "#ffffff", "edgecolor": "#333333",
                          "linewidth": 0.6})
    ax.set_aspect(stretch)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
