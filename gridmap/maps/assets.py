"""Point every script and stylesheet a folium map loads at the app's own /vendor/ copies.

Folium and its plugins name CDN URLs in ``default_js``/``default_css``; an intranet cannot
reach them. ``use_local_assets`` rewrites them by name and refuses any it does not know, so a
new plugin cannot silently bring a CDN back.
"""
from __future__ import annotations

import folium

VENDOR = "/vendor"

LOCAL_ASSETS: dict[str, str] = {
    # folium.Map
    "leaflet": "leaflet/dist/leaflet.js",
    "jquery": "jquery/dist/jquery.min.js",
    "bootstrap": "bootstrap/dist/js/bootstrap.bundle.min.js",
    "awesome_markers": "leaflet.awesome-markers/dist/leaflet.awesome-markers.js",
    "leaflet_css": "leaflet/dist/leaflet.css",
    "bootstrap_css": "bootstrap/dist/css/bootstrap.min.css",
    "awesome_markers_font_css": "@fortawesome/fontawesome-free/css/all.min.css",
    "awesome_markers_css": "leaflet.awesome-markers/dist/leaflet.awesome-markers.css",
    # plugins
    "markerclusterjs": "leaflet.markercluster/dist/leaflet.markercluster.js",
    "markerclustercss": "leaflet.markercluster/dist/MarkerCluster.css",
    "markerclusterdefaultcss": "leaflet.markercluster/dist/MarkerCluster.Default.css",
    "leaflet-heat.js": "leaflet.heat/dist/leaflet-heat.js",
    "Control_locate_min_js": "leaflet.locatecontrol/dist/L.Control.Locate.min.js",
    "Control_locate_min_css": "leaflet.locatecontrol/dist/L.Control.Locate.min.css",
    "iso8601": "iso8601-js-period/iso8601.min.js",
    "leaflet.timedimension.min.js": "leaflet-timedimension/dist/leaflet.timedimension.min.js",
    "leaflet.timedimension.control.min.css": "leaflet-timedimension/dist/leaflet.timedimension.control.css",
    "vectorgrid": "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
}
# Stylesheets folium adds that gridmap's maps do not need.
DROPPED = {"glyphicons_css", "awesome_rotate_css"}


def vendor_url(name: str) -> str:
    return f"{VENDOR}/{LOCAL_ASSETS[name]}"


def _localise(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, url in pairs:
        if name in DROPPED:
            continue
        if url.startswith(VENDOR + "/"):
            out.append((name, url))
            continue
        if name not in LOCAL_ASSETS:
            raise ValueError(f"no local copy of front-end asset {name!r} ({url}); add it to package.json "
                             "and gridmap.maps.assets.LOCAL_ASSETS")
        out.append((name, vendor_url(name)))
    return out


def use_local_assets(m: folium.Map) -> folium.Map:
    """Rewrite the assets of the map and every element under it; returns the map."""
    stack = [m]
    while stack:
        element = stack.pop()
        for attr in ("default_js", "default_css"):
            pairs = getattr(element, attr, None)
            if pairs:
                setattr(element, attr, _localise(list(pairs)))
        stack.extend(element._children.values())
    return m
