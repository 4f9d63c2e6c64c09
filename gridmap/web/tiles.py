"""Vector tiles and what is at a clicked point (the incidents map, /incidents/map, draws them).

Authenticated like the API (login session or Bearer token); tiles are scoped to the user and
carry an ETag built from the data version, the filters and the scope, so a browser revalidates
with If-None-Match and gets 304 while nothing changed.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, redirect, request, url_for
from flask_login import current_user

from gridmap.tiles import registry
from gridmap.tiles.registry import IncidentFilter, Scope
from gridmap.web import short_statements

bp = Blueprint("tiles", __name__)

MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
FILTER_ARGS = ("category", "status", "from", "to", "overdue")


def _require_login() -> None:
    if not current_user.is_authenticated:
        abort(401, description="login or a Bearer token is required")


def _scope() -> Scope:
    return Scope.for_user(current_user.role, current_user.scopes, current_user.id)


def _incident_filter() -> IncidentFilter:
    return IncidentFilter.parse(request.args.getlist("category"), request.args.getlist("status"),
                                request.args.get("from"), request.args.get("to"), request.args.get("overdue"))


@bp.get("/tiles/<layer>/<int:z>/<int:x>/<int:y>.pbf")
def tile(layer: str, z: int, x: int, y: int):
    _require_login()
    registry.layer_for(layer)
    registry.check_tile(z, x, y)
    flt = _incident_filter() if layer == "incidents" else IncidentFilter()
    scope = _scope()
    with short_statements() as connection:
        etag, body = registry.conditional_tile(connection, layer, z, x, y, flt, scope,
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
    with short_statements() as connection:
        answer = registry.incidents_at(connection, request.args.get("lon"), request.args.get("lat"),
                                       request.args.get("z"), _incident_filter(), _scope())
    return jsonify(answer)


@bp.get("/map/incidents-tiles")
def incidents_map():
    """The tiles map became the incidents map: old links keep working, filters included."""
    args = {k: request.args[k] for k in FILTER_ARGS if request.args.get(k)}
    return redirect(url_for("incidents.map_page", **args), code=301)
