"""Vector tiles, what is at a clicked point, and the incidents map drawn from tiles.

Authenticated like the API (login session or Bearer token); tiles are scoped to the user and
carry an ETag built from the data version, the filters and the scope, so a browser revalidates
with If-None-Match and gets 304 while nothing changed.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for
from flask_login import current_user, login_required

from gridmap.maps.render import map_parts
from gridmap.maps.vectortiles import build_incident_tiles_map
from gridmap.services import layers
from gridmap.tiles import registry
from gridmap.tiles.registry import IncidentFilter, Scope
from gridmap.web import db_session

bp = Blueprint("tiles", __name__)

MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
FILTER_ARGS = ("category", "status", "from", "to")


def _require_login() -> None:
    if not current_user.is_authenticated:
        abort(401, description="login or a Bearer token is required")


def _scope() -> Scope:
    return Scope.for_user(current_user.role, current_user.scopes, current_user.id)


def _incident_filter() -> IncidentFilter:
    return IncidentFilter.parse(request.args.getlist("category"), request.args.getlist("status"),
                                request.args.get("from"), request.args.get("to"))


@bp.get("/tiles/<layer>/<int:z>/<int:x>/<int:y>.pbf")
def tile(layer: str, z: int, x: int, y: int):
    _require_login()
    registry.layer_for(layer)
    registry.check_tile(z, x, y)
    flt = _incident_filter() if layer == "incidents" else IncidentFilter()
    scope = _scope()
    etag, body = registry.conditional_tile(db_session(), layer, z, x, y, flt, scope,
                                           request.if_none_match.contains_weak)
    response = Response(status=304) if body is None else Response(body, mimetype=MVT_MIMETYPE)
    response.set_etag(etag)
    # Incidents change all day: always revalidate (cheap, a 304). Boundaries rarely change.
    response.headers["Cache-Control"] = "private, no-cache" if layer == "incidents" else "private, max-age=60"
    response.vary.update(("Cookie", "Authorization"))
    return response


@bp.get("/tiles/incidents/at")
def incidents_at():
    _require_login()
    answer = registry.incidents_at(db_session(), request.args.get("lon"), request.args.get("lat"),
                                   request.args.get("z"), _incident_filter(), _scope())
    return jsonify(answer)


@bp.get("/map/incidents-tiles")
@login_required
def incidents_map():
    session = db_session()
    county = layers.county_geojson(session)
    filters = {k: request.args.get(k) for k in FILTER_ARGS if request.args.get(k)}
    _incident_filter()  # a bad filter is a 400 here rather than empty tiles later
    tile_urls = {name: url_for("tiles.tile", layer=name, z=0, x=0, y=0).replace("/0/0/0.pbf", "/{z}/{x}/{y}.pbf")
                 for name in ("incidents", "towns", "villages", "grids")}
    m = build_incident_tiles_map(
        bounds=layers.bounds(county), tile_urls=tile_urls, query_url=url_for("tiles.incidents_at"),
        filters=filters, incident_url="/incidents/{id}", basemap_url=current_app.config["BASEMAP_URL"],
        basemap_attribution=current_app.config["BASEMAP_ATTRIBUTION"])
    return render_template("map_page.html", map=map_parts(m))
