"""The home map: the county with its towns, villages, grids, stations, patrol zones and
mediation points."""
from __future__ import annotations

import html

import folium
from folium.plugins import MarkerCluster

from gridmap.catalog import MEDIATION_KIND_ZH
from gridmap.maps.assets import use_local_assets
from gridmap.maps.elements import BboxGeoJson, Legend

# (awesome-markers colour, Font Awesome icon) per mediation-point kind.
MEDIATION_ICONS = {
    "bailitang": ("red", "scale-balanced"),
    "shuoshiting": ("orange", "comments"),
    "committee": ("blue", "people-group"),
    "police_office": ("darkblue", "shield-halved"),
    "legal_station": ("green", "gavel"),
}
LEGEND_COLOURS = {"red": "#d63e2a", "orange": "#f69730", "blue": "#38aadd", "darkblue": "#0067a3",
                  "green": "#72b026"}


def base_map(bounds: tuple[float, float, float, float], basemap_url: str = "",
             basemap_attribution: str = "") -> folium.Map:
    """An empty map fitted to ``bounds`` (minlon, minlat, maxlon, maxlat), with a scale bar and
    the configured basemap (none when ``basemap_url`` is empty)."""
    minx, miny, maxx, maxy = bounds
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=11, tiles=None,
                   control_scale=True)
    # Without a tile layer Leaflet's max zoom is Infinity, which breaks marker clustering.
    m.options.update(maxZoom=19, minZoom=6)
    if basemap_url:
        folium.TileLayer(basemap_url, attr=basemap_attribution or "basemap", name="底图 Basemap",
                         overlay=False, control=True).add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m


def inline_layer(data: dict, name: str, style: dict, tooltip: dict | None = None,
                 show: bool = True) -> folium.GeoJson:
    """A small GeoJSON layer drawn from the page itself; ``tooltip`` maps properties to labels."""
    tip = None
    if tooltip and data["features"]:
        tip = folium.GeoJsonTooltip(list(tooltip), aliases=list(tooltip.values()))
    return folium.GeoJson(data, name=name, show=show, style_function=lambda f: style, tooltip=tip)


def mediation_popup(point: dict) -> str:
    kind = MEDIATION_KIND_ZH.get(point["kind"], point["kind"])
    rows = [("类型", kind), ("联系电话", point.get("contact") or ""), ("调解员人数", point.get("mediators") or ""),
            ("开放时间", point.get("opening_hours") or "")]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<b>{html.escape(point['name'])}</b><table>{body}</table>"


def build_home_map(*, bounds, county: dict, towns: dict, stations: dict, zones: dict,
                   mediation_points: dict, villages_url: str, grids_url: str,
                   basemap_url: str = "", basemap_attribution: str = "") -> folium.Map:
    """Build the county map.

    Parameters
    ----------
    bounds : tuple
        (minlon, minlat, maxlon, maxlat) of the county.
    county, towns, stations, zones, mediation_points : dict
        GeoJSON FeatureCollections (small layers, drawn inline).
    villages_url, grids_url : str
        API URLs the villages and grids are fetched from for the current view.

    Returns
    -------
    folium.Map
        With a layer control, legend, scale bar and only locally served assets.
    """
    m = base_map(bounds, basemap_url, basemap_attribution)
    inline_layer(county, "县界 County", {"color": "#222", "weight": 3, "fill": False}).add_to(m)
    inline_layer(towns, "乡镇 Towns", {"color": "#444", "weight": 2, "fillOpacity": 0.03},
                 {"name": "乡镇", "code": "代码"}).add_to(m)
    inline_layer(zones, "巡区 Patrol zones", {"color": "#1f4e9c", "weight": 1.5, "dashArray": "6 4",
                                             "fillOpacity": 0.02}, {"name": "巡区", "code": "代码"},
                 show=False).add_to(m)
    BboxGeoJson(villages_url, "村/社区 Villages", style={"color": "#777", "weight": 1, "fillOpacity": 0.0},
                fields={"name": "村/社区", "code": "代码"}, min_zoom=10).add_to(m)
    BboxGeoJson(grids_url, "网格 Grids", style={"color": "#e07b00", "weight": 1, "fillOpacity": 0.05},
                fields={"code": "网格编码", "name": "网格", "population": "人口", "households": "户数"},
                min_zoom=11).add_to(m)

    stations_group = folium.FeatureGroup(name="派出所 Police stations").add_to(m)
    for f in stations["features"]:
        lon, lat = f["geometry"]["coordinates"]
        folium.Marker([lat, lon], icon=folium.Icon(color="cadetblue", icon="building-shield", prefix="fa"),
                      tooltip=html.escape(f["properties"]["name"])).add_to(stations_group)

    # Clustered at county scale, where ~100 markers would hide the map; single markers from zoom 13.
    mediation_group = MarkerCluster(name="调解阵地 Mediation points",
                                    options={"disableClusteringAtZoom": 13, "maxClusterRadius": 40}).add_to(m)
    for f in mediation_points["features"]:
        lon, lat = f["geometry"]["coordinates"]
        colour, icon = MEDIATION_ICONS.get(f["properties"]["kind"], ("gray", "circle"))
        folium.Marker([lat, lon], icon=folium.Icon(color=colour, icon=icon, prefix="fa"),
                      tooltip=html.escape(f["properties"]["name"]),
                      popup=folium.Popup(mediation_popup(f["properties"]), max_width=300)).add_to(mediation_group)

    folium.LayerControl(collapsed=False).add_to(m)
    Legend("调解阵地 Mediation points",
           [(LEGEND_COLOURS[c], MEDIATION_KIND_ZH[k]) for k, (c, _) in MEDIATION_ICONS.items()]).add_to(m)
    return use_local_assets(m)
