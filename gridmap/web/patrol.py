"""Patrol: the JSON API under /api/patrol (tracks, coverage, routes, GPX) and the pages under /patrol
(track upload, coverage map, route planning and the planned route). Thin adapters over
services.patrol and maps.patrol."""
from __future__ import annotations

from datetime import timedelta

from flask import (Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from gridmap.errors import GridmapError, ValidationError
from gridmap.maps.patrol import DEFAULT_LABELS, build_coverage_map, build_route_map
from gridmap.maps.render import map_parts
from gridmap.services import layers, patrol, risk
from gridmap.services.incidents import CHINA_TZ
from gridmap import errors
from gridmap.web import api, db_session
from gridmap.web.auth import current_db_user

api_bp = Blueprint("patrol_api", __name__, url_prefix="/api/patrol")
# Same rule as the rest of /api: a login or Bearer token, and the CSRF header on cookie writes.
api_bp.before_request(api._authenticate)

bp = Blueprint("patrol", __name__, url_prefix="/patrol")

GPX_MIMETYPE = "application/gpx+xml"



def _settings() -> patrol.PatrolSettings:
    return patrol.PatrolSettings.from_config(current_app.config)


def _risk_settings() -> risk.RiskSettings:
    return risk.RiskSettings.from_config(current_app.config)


def _map_labels() -> dict:
    """The patrol maps' words in the interface language (marked for extraction in maps.patrol)."""
    return {key: _(text) for key, text in DEFAULT_LABELS.items()}



def _download(body, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}"})


def _basemap() -> dict:
    return {"basemap_url": current_app.config["BASEMAP_URL"],
            "basemap_attribution": current_app.config["BASEMAP_ATTRIBUTION"]}



def _upload(session, user, settings) -> patrol.TrackUpload:
    """A track from a multipart form (``file``, ``zone``, ``officer``, ``format``) or a JSON body."""
    if request.mimetype == "application/json":
        return patrol.upload_track_json(session, user, api.json_body(), settings)
    if request.mimetype != "multipart/form-data":
        raise errors.UnsupportedMediaType("send the track as multipart/form-data (field 'file') or application/json",
                                   "Content-Type")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("choose a track file (GPX, GeoJSON or CSV)", "file")
    return patrol.upload_track(session, user, upload.read(), zone_code=request.form.get("zone"),
                               filename=upload.filename, fmt=request.form.get("format") or None,
                               officer=request.form.get("officer"), settings=settings)


def _track_body(result: patrol.TrackUpload, session, user) -> dict:
    return {"track": patrol.get_track(session, user, result.track.id), "counts": result.counts,
            "message": result.message_zh()}


def _coverage_request(session, user, settings, args=None):
    args = request.args if args is None else args
    period = patrol.parse_coverage_period(session, user, args, settings)
    zone = args.get("zone") or None
    return period, zone


# --- API --------------------------------------------------------------------------------------

@api_bp.post("/tracks")
def tracks_create():
    session, user, settings = db_session(), current_db_user(), _settings()
    result = _upload(session, user, settings)
    body = _track_body(result, session, user)
    session.commit()
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("patrol_api.tracks_detail", track_id=result.track.id)
    return response


@api_bp.get("/tracks")
def tracks_index():
    """``?from=&to=&zone=&format=json|geojson``: tracks the user may see (officers for the roles handling them)."""
    session, user, settings = db_session(), current_db_user(), _settings()
    fmt = risk.parse_choice(request.args.get("format"), "format", ("json", "geojson"), "json")
    period, zone = _coverage_request(session, user, settings)
    if fmt == "geojson":
        return api.geojson_response(patrol.tracks_geojson(session, user, period, zone))
    return jsonify({"period": period.as_dict(), "tracks": patrol.list_tracks(session, user, period, zone)})


@api_bp.get("/tracks/<int:track_id>")
def tracks_detail(track_id: int):
    return jsonify(patrol.get_track(db_session(), current_db_user(), track_id))


@api_bp.get("/coverage")
def coverage():
    """``?from=&to=&zone=&format=json|geojson|csv&level=grids|hotspots|zones``."""
    session, user, settings = db_session(), current_db_user(), _settings()
    fmt = risk.parse_choice(request.args.get("format"), "format", patrol.COVERAGE_FORMATS, "json")
    level = risk.parse_choice(request.args.get("level"), "level", patrol.COVERAGE_LEVELS, "grids")
    period, zone = _coverage_request(session, user, settings)
    result = patrol.compute_coverage(session, user, period, zone, settings, _risk_settings())
    session.commit()  # keeps a newly built grid adjacency
    if fmt == "geojson":
        if level == "zones":
            raise ValidationError("zones come as json or csv", "level")
        return api.geojson_response(patrol.coverage_geojson(result, level))
    if fmt == "csv":
        args = period.query_args()
        name = f"patrol-{level}-{args['from']}-{args['to']}.csv".replace(":", "")
        return _download(patrol.coverage_csv(result, level), "text/csv; charset=utf-8", name)
    return jsonify(patrol.coverage_json(result))


@api_bp.post("/routes")
def routes_create():
    """JSON ``{zone, shift_start, shift_minutes, stops, stop_minutes}``: plan and store a route."""
    session, user = db_session(), current_db_user()
    route = patrol.plan_patrol_route(session, user, api.json_body(), _settings(), _risk_settings())
    body = patrol.route_json(session, user, route)
    session.commit()
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("patrol_api.routes_detail", route_id=route.id)
    return response


@api_bp.get("/routes")
def routes_index():
    return jsonify({"routes": patrol.list_routes(db_session(), current_db_user(), request.args.get("zone") or None)})


@api_bp.get("/routes/<int:route_id>")
def routes_detail(route_id: int):
    session, user = db_session(), current_db_user()
    return jsonify(patrol.route_json(session, user, patrol.get_route(session, user, route_id)))


@api_bp.get("/routes/<int:route_id>.gpx")
def routes_gpx(route_id: int):
    session, user = db_session(), current_db_user()
    route = patrol.get_route(session, user, route_id)
    local = route.shift_start.astimezone(CHINA_TZ)
    return _download(patrol.route_gpx(session, route), GPX_MIMETYPE,
                     f"route-{route.id}-{route.zone_code}-{local:%Y%m%d-%H%M}.gpx")


# --- pages ------------------------------------------------------------------------------------

def _require_page_reader() -> None:
    if current_user.role not in patrol.PATROL_READERS:
        abort(403)


def _can_write() -> bool:
    return current_user.role in patrol.TRACK_WRITERS


@bp.get("/")
@login_required
def index():
    return redirect(url_for("patrol.coverage_page"))


@bp.route("/tracks", methods=["GET", "POST"])
@login_required
def tracks_page():
    _require_page_reader()
    session, user, settings = db_session(), current_db_user(), _settings()
    result, error, status = None, None, 200
    if request.method == "POST":
        if not _can_write():
            abort(403)
        try:
            result = _upload(session, user, settings)
            session.commit()
            flash(result.message_zh(), "info")
            return redirect(url_for("patrol.tracks_page", uploaded=result.track.id))
        except GridmapError as err:
            session.rollback()
            error, status = err.message, err.status
    uploaded = None
    if request.args.get("uploaded", "").isdigit():
        try:
            uploaded = patrol.get_track(session, user, int(request.args["uploaded"]))
        except GridmapError:
            uploaded = None
    tracks = patrol.list_tracks(session, user, limit=50)
    return render_template("patrol/tracks.html", zones=patrol.zone_choices(session, user),
                           default_zone=request.form.get("zone") or patrol.default_zone(session, user),
                           officer=request.form.get("officer", ""), error=error, tracks=tracks, uploaded=uploaded,
                           can_write=_can_write(), named=patrol.is_named(user)), status


@bp.get("/coverage")
@login_required
def coverage_page():
    _require_page_reader()
    session, user, settings = db_session(), current_db_user(), _settings()
    error = None
    try:
        period, zone = _coverage_request(session, user, settings)
    except GridmapError as err:
        error = f"{err.field}: {err.message}" if err.field else err.message
        period, zone = _coverage_request(session, user, settings, {})
    try:
        hours = float(request.args.get("hours") or 24)
        if not 0 < hours <= 2400:
            raise ValueError
    except ValueError:
        hours, error = 24.0, _("hours: 请输入 1–2400 之间的小时数")
    try:
        result = patrol.compute_coverage(session, user, period, zone, settings, _risk_settings())
    except GridmapError as err:
        error = err.message
        zone = None
        result = patrol.compute_coverage(session, user, period, None, settings, _risk_settings())
    session.commit()
    args = {**period.query_args(), **({"zone": zone} if zone else {})}
    inline = len(result.grids) <= current_app.config.get("RISK_INLINE_MAX_FEATURES", 3000)
    grids_json = patrol.coverage_geojson(result, "grids", simplify=True) if inline else None
    bounds = tuple(float(v) for v in result.grids.total_bounds) if len(result.grids) else \
        layers.bounds(layers.county_geojson(session))
    zones_fc = layers.layer_geojson(session, user, "patrol-zones", simplify_m=20)
    if zone:
        zones_fc = {"type": "FeatureCollection", "features": [f for f in zones_fc["features"] if f["id"] == zone]}
    m = build_coverage_map(
        bounds=bounds, grids=grids_json,
        grids_url=None if inline else url_for("patrol_api.coverage", format="geojson", **args),
        tracks_url=url_for("patrol_api.tracks_index", format="geojson", **args),
        hotspots=patrol.coverage_geojson(result, "hotspots"), zones=zones_fc,
        stations=layers.layer_geojson(session, user, "stations"), hours=hours, labels=_map_labels(), **_basemap())
    stale = patrol.not_visited(result, hours)
    zones = risk.records(result.zones, "zone_code")
    daily = None
    if 0 < len(result.zones) <= 6 and len(result.daily):
        daily = result.daily.pivot_table(index="date", columns="zone_code", values="minutes", aggfunc="sum")
    return render_template(
        "patrol/coverage.html", map=map_parts(m), period=period, args=args, zone=zone, hours=hours, error=error,
        zones=zones, zone_options=patrol.zone_choices(session, user), stale=risk.records(stale.set_index("code",
                                                                                                        drop=False)),
        hotspots=risk.records(result.hotspots.drop(columns="geometry").set_index("id", drop=False)),
        daily=daily, result=result, settings=settings, can_write=_can_write(), china_tz=CHINA_TZ)


@bp.get("/routes/new")
@login_required
def route_form():
    if not _can_write():
        abort(403)
    session, user = db_session(), current_db_user()
    return _route_form(session, user, dict(request.args), None, 200)


def _route_form(session, user, values: dict, error: str | None, status: int):
    settings = _settings()
    zone = values.get("zone") or patrol.default_zone(session, user)
    if not values.get("shift_start"):
        start = patrol.default_shift_start(session, user, zone)
        values["shift_start"] = start.astimezone(CHINA_TZ).strftime("%Y-%m-%dT%H:%M")
    values.setdefault("shift_minutes", "240")
    values.setdefault("stops", "6")
    values.setdefault("stop_minutes", f"{patrol.DEFAULT_STOP_MINUTES:g}")
    roads = patrol.road_network(session, settings) is not None
    return render_template("patrol/route_new.html", zones=patrol.zone_choices(session, user), zone=zone,
                           values=values, error=error, roads=roads, settings=settings,
                           routes=patrol.list_routes(session, user)), status


@bp.post("/routes")
@login_required
def route_create():
    if not _can_write():
        abort(403)
    session, user = db_session(), current_db_user()
    values = {k: request.form.get(k, "") for k in ("zone", "shift_start", "shift_minutes", "stops", "stop_minutes")}
    try:
        route = patrol.plan_patrol_route(session, user, values, _settings(), _risk_settings())
        session.commit()
    except GridmapError as err:
        session.rollback()
        return _route_form(session, user, values, err.message, err.status)
    return redirect(url_for("patrol.route_page", route_id=route.id))


@bp.get("/routes/<int:route_id>")
@login_required
def route_page(route_id: int):
    _require_page_reader()
    session, user = db_session(), current_db_user()
    try:
        route = patrol.get_route(session, user, route_id)
    except GridmapError:
        abort(404)
    body = patrol.route_json(session, user, route)
    zone = layers.layer_geojson(session, user, "patrol-zones", simplify_m=5)
    zone = {"type": "FeatureCollection", "features": [f for f in zone["features"] if f["id"] == route.zone_code]}
    m = build_route_map(route=body, zone=zone, stop_grids=patrol.route_grids_geojson(session, route),
                        labels=_map_labels(), **_basemap())
    shift_end = route.shift_start + timedelta(minutes=route.shift_minutes)
    return render_template("patrol/route.html", map=map_parts(m), route=body, shift_end=shift_end.astimezone(CHINA_TZ),
                           can_write=_can_write())
