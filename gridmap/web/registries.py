"""Registries and campaigns: pages (places and inspections, village staff, legal publicity,
bulletins, case review) and the JSON API under /api/places, /api/inspections, /api/staff,
/api/bulletins, /api/reviews, /api/activities. Thin adapters over the services."""
from __future__ import annotations

import functools
import tempfile
from datetime import date, timedelta
from pathlib import Path

from flask import (Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.utils import secure_filename

from gridmap.catalog import (ACTIVITY_KIND_ZH, BULLETIN_SECTION_ZH, BULLETIN_SECTIONS, INSPECTION_CHECKLISTS,
                             INSPECTION_STATUS_ZH, PLACE_KIND_ZH, PLACE_SUBKINDS, REVIEW_CHECKLIST, REVIEW_METHOD_ZH,
                             STAFF_ROLE_ZH)
from gridmap.errors import Forbidden, GridmapError, NotFound, ValidationError
from gridmap.maps.registries import (DEFAULT_LABELS, build_activities_map, build_coverage_map, build_place_map,
                                     build_places_map)
from gridmap.maps.render import map_parts
from gridmap.models import Town
from gridmap.services import bulletins, case_review, layers, patrol, registries, risk
from gridmap.services.importing import SourceOptions
from gridmap.web import api, db_session
from gridmap.web.auth import current_db_user

bp = Blueprint("registries", __name__, url_prefix="/registries")
api_bp = Blueprint("registries_api", __name__, url_prefix="/api")
# Same rule as the rest of /api: a login or Bearer token, and the CSRF header on cookie writes.
api_bp.before_request(api._authenticate)





def _date_arg(name: str, default: date | None = None) -> date | None:
    return registries.parse_date(request.args.get(name), name, required=False, default=default)


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number", name) from None


def _basemap() -> dict:
    return {"basemap_url": current_app.config["BASEMAP_URL"],
            "basemap_attribution": current_app.config["BASEMAP_ATTRIBUTION"]}


def _outline_layers(session, user) -> dict:
    county = layers.county_geojson(session)
    return {"bounds": layers.bounds(county), "county": county,
            "towns": layers.layer_geojson(session, user, "towns", simplify_m=20)}


def _towns(session) -> list[Town]:
    return session.query(Town).order_by(Town.code).all()


def _period_args() -> tuple[date, date]:
    """``from``/``to`` of a page's period; the last 90 days by default."""
    today = registries.today_in_china()
    start = _date_arg("from", today - timedelta(days=90))
    end = _date_arg("to", today)
    if start > end:
        raise ValidationError("from must not be after to", "from")
    return start, end


def _place_feature(session, user, place_id: int) -> dict:
    return registries.place_feature(session, user, place_id)


# The properties the places map's popups show.
PLACE_MAP_FIELDS = "name,status,status_zh,kind_zh,subkind_zh,address,town_name,village_name,grid_code," \
                   "last_inspected,next_due"


def _case_link() -> str | None:
    if "incidents.case_page" in current_app.view_functions:
        return url_for("incidents.case_page", incident_id=0).replace("/0", "/__ID__")
    return None


# --- API: places and inspections --------------------------------------------------------------

@api_bp.get("/places")
def places_index():
    filters = registries.parse_place_filters(request.args)
    fields = tuple(f for f in (request.args.get("fields") or "").split(",") if f) or None
    return api.geojson_response(registries.places_geojson(db_session(), current_db_user(), filters,
                                              limit=current_app.config["API_MAX_FEATURES"], fields=fields))


@api_bp.get("/places/due")
def places_due():
    session, user = db_session(), current_db_user()
    filters = registries.parse_place_filters(request.args)
    by = request.args.get("by", "town")
    return jsonify({"by": by, "summary": registries.due_summary(session, user, by, filters),
                    "places": registries.place_list(session, user, filters)})


@api_bp.post("/places")
def places_create():
    session, user = db_session(), current_db_user()
    place = registries.create_place(session, user, api.json_body())
    feature = _place_feature(session, user, place.id)
    session.commit()
    response = api.geojson_response(feature)
    response.status_code = 201
    response.headers["Location"] = url_for("registries_api.places_detail", place_id=place.id)
    return response


@api_bp.get("/places/<int:place_id>")
def places_detail(place_id: int):
    return api.geojson_response(_place_feature(db_session(), current_db_user(), place_id))


@api_bp.patch("/places/<int:place_id>")
def places_update(place_id: int):
    session, user = db_session(), current_db_user()
    registries.update_place(session, user, place_id, api.json_body())
    feature = _place_feature(session, user, place_id)
    session.commit()
    return api.geojson_response(feature)


@api_bp.post("/places/import")
def places_import():
    """Multipart upload ``file`` (CSV, GeoPackage, GeoJSON, ...), optional ``crs``, ``layer``, ``from_gcj02``."""
    session, user = db_session(), current_db_user()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("upload the file as the form field 'file'", "file")
    suffix = Path(secure_filename(upload.filename) or "upload").suffix.lower()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        upload.save(path)
        options = SourceOptions(layer=request.form.get("layer") or None, crs=request.form.get("crs") or None,
                                from_gcj02=request.form.get("from_gcj02") in ("1", "true", "on"))
        report = registries.import_places(session, user, path, options)
    session.commit()
    return jsonify({"rows": report.rows, "imported": report.imported, "by_kind": report.by_kind}), 201


@api_bp.get("/inspections")
def inspections_index():
    return jsonify({"inspections": registries.list_inspections(
        db_session(), current_db_user(), place_id=_int_arg("place_id"), incident_id=_int_arg("incident_id"),
        start=_date_arg("from"), end=_date_arg("to"))})


@api_bp.post("/inspections")
def inspections_create():
    session, user = db_session(), current_db_user()
    body = api.json_body()
    place_id = body.get("place_id")
    if isinstance(place_id, bool) or not isinstance(place_id, int):
        raise ValidationError("place_id must be a place's id (a whole number)", "place_id")
    inspection = registries.record_inspection(session, user, place_id, body)
    result = registries.inspection_dict(inspection)
    session.commit()
    response = jsonify(result)
    response.status_code = 201
    return response


@api_bp.get("/inspections/incidents")
def inspections_incidents():
    bbox = layers.parse_bbox(request.args.get("bbox"))
    return api.geojson_response(registries.hazard_incidents_geojson(db_session(), current_db_user(), bbox,
                                                        place_id=_int_arg("place_id")))


# --- API: staff -------------------------------------------------------------------------------

@api_bp.get("/staff")
def staff_index():
    return jsonify({"staff": registries.list_staff(
        db_session(), current_db_user(), town=request.args.get("town") or None,
        village=request.args.get("village") or None, role=request.args.get("role") or None)})


@api_bp.post("/staff")
def staff_create():
    session, user = db_session(), current_db_user()
    staff = registries.create_staff(session, user, api.json_body())
    session.commit()
    return jsonify({"id": staff.id, "role": staff.role, "village_code": staff.village_code,
                    "grid_code": staff.grid_code}), 201


@api_bp.delete("/staff/<int:staff_id>")
def staff_remove(staff_id: int):
    session = db_session()
    registries.remove_staff(session, current_db_user(), staff_id)
    session.commit()
    return "", 204


@api_bp.get("/staff/coverage")
def staff_coverage():
    return jsonify(registries.staff_coverage(db_session(), current_db_user(), town=request.args.get("town") or None))


@api_bp.get("/staff/coverage.geojson")
def staff_coverage_geojson():
    return api.geojson_response(registries.coverage_geojson(db_session(), current_db_user(), request.args.get("layer", "villages"),
                                                layers.parse_bbox(request.args.get("bbox"))))


# --- API: activities --------------------------------------------------------------------------

@api_bp.get("/activities")
def activities_index():
    return api.geojson_response(registries.activities_geojson(
        db_session(), current_db_user(), start=_date_arg("from"), end=_date_arg("to"),
        town=request.args.get("town") or None, bbox=layers.parse_bbox(request.args.get("bbox"))))


@api_bp.post("/activities")
def activities_create():
    session, user = db_session(), current_db_user()
    activity = registries.create_activity(session, user, api.json_body())
    session.commit()
    return jsonify({"id": activity.id, "village_code": activity.village_code, "town_code": activity.town_code,
                    "grid_code": activity.grid_code}), 201


@api_bp.get("/activities/per-village")
def activities_per_village():
    start, end = _period_args()
    return jsonify({"from": start.isoformat(), "to": end.isoformat(),
                    "villages": registries.activities_per_village(db_session(), current_db_user(), start, end,
                                                                  town=request.args.get("town") or None)})


# --- API: bulletins and reviews ---------------------------------------------------------------

def _map_labels() -> dict:
    """The registry maps' words in the interface language (marked for extraction in maps.registries)."""
    return {key: _(text) for key, text in DEFAULT_LABELS.items()}


def _bulletin_settings() -> dict:
    """The deployment's patrol and risk settings, so a bulletin's patrol figures match the coverage page."""
    return {"patrol_settings": patrol.PatrolSettings.from_config(current_app.config),
            "risk_settings": risk.RiskSettings.from_config(current_app.config)}


def _bulletin_response(session, user, args, fmt: str):
    request_ = bulletins.parse_request(session, args, registries.today_in_china())
    bulletin = bulletins.build_bulletin(session, user, request_, **_bulletin_settings())
    if fmt == "json":
        return jsonify(bulletin.as_dict())
    if fmt not in ("xlsx", "pdf", "png"):
        raise ValidationError("format must be json, xlsx, pdf or png", "format")
    image = bulletins.bulletin_map_png(session, bulletin)
    if fmt == "png":
        return Response(image, mimetype="image/png")
    if fmt == "xlsx":
        data = bulletins.bulletin_xlsx(bulletin, image)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        data = bulletins.bulletin_pdf(bulletin, image)
        mimetype = "application/pdf"
    disposition = "inline" if fmt == "pdf" else "attachment"
    return Response(data, mimetype=mimetype,
                    headers={"Content-Disposition": f"{disposition}; filename={bulletin.filename}.{fmt}"})


@api_bp.get("/bulletins")
def bulletins_get():
    return _bulletin_response(db_session(), current_db_user(), request.args, request.args.get("format", "json"))


@api_bp.get("/reviews")
def reviews_index():
    return jsonify({"reviews": case_review.list_reviews(db_session(), current_db_user())})


@api_bp.post("/reviews")
def reviews_create():
    session, user = db_session(), current_db_user()
    review = case_review.create_review(session, user, api.json_body())
    body = {**case_review.review_dict(review), "cases": case_review.review_items(session, user, review.id)}
    session.commit()
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("registries_api.reviews_detail", review_id=review.id)
    return response


@api_bp.get("/reviews/<int:review_id>")
def reviews_detail(review_id: int):
    session, user = db_session(), current_db_user()
    return jsonify({**case_review.review_report(session, user, review_id),
                    "cases": case_review.review_items(session, user, review_id)})


@api_bp.post("/reviews/<int:review_id>/items/<int:item_id>")
def reviews_score(review_id: int, item_id: int):
    session, user = db_session(), current_db_user()
    item = case_review.score_item(session, user, review_id, item_id, api.json_body())
    session.commit()
    return jsonify({"id": item.id, "scores": item.scores, "total": item.total, "findings": item.findings})


# --- pages ------------------------------------------------------------------------------------

def page_errors(view):
    """Pages answer a refused or missing record with the HTTP error page, not the API's JSON."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except Forbidden as err:
            abort(403, description=err.message)
        except NotFound as err:
            abort(404, description=err.message)
        except ValidationError as err:
            abort(400, description=f"{err.message} ({err.field})")
    return wrapper


def _flash_error(err: GridmapError) -> None:
    where = f"（{err.field}）" if err.field else ""
    flash(f"{err.message}{where}", "error")


@bp.get("/")
@login_required
@page_errors
def index():
    session, user = db_session(), current_db_user()
    can = registries.permissions(user)
    overdue = None
    coverage = None
    if can["places"]["view"]:
        overdue = registries.due_summary(session, user)
        coverage = registries.staff_coverage(session, user)["totals"]
    return render_template("registries/index.html", can=can, overdue=overdue, coverage=coverage,
                           bulletins_allowed=user.role in bulletins.BULLETIN_ROLES + ("town_supervisor",),
                           reviews_allowed=user.role in case_review.REPORT_ROLES)


@bp.get("/places")
@login_required
@page_errors
def places_page():
    session, user = db_session(), current_db_user()
    registries.require_view(user, "places")
    filters = registries.parse_place_filters(request.args)
    args = {k: v for k, v in request.args.items() if v and k in ("town", "kind", "status")}
    by = "grid" if filters.town else "town"
    m = build_places_map(**_outline_layers(session, user),
                         places_url=url_for("registries_api.places_index", fields=PLACE_MAP_FIELDS, **args),
                         hazards_url=url_for("registries_api.inspections_incidents"),
                         place_link=url_for("registries.place_page", place_id=0).replace("/0", "/__ID__"),
                         case_link=_case_link(), labels=_map_labels(), **_basemap())
    return render_template("registries/places.html", map=map_parts(m), filters=filters, args=args, by=by,
                           summary=registries.due_summary(session, user, by, filters),
                           places=registries.place_list(session, user, filters)[:300], towns=_towns(session),
                           kinds=PLACE_KIND_ZH, statuses=INSPECTION_STATUS_ZH, subkinds=PLACE_SUBKINDS,
                           can=registries.permissions(user))


@bp.post("/places")
@login_required
def places_create_page():
    session, user = db_session(), current_db_user()
    try:
        place = registries.create_place(session, user, request.form.to_dict())
    except GridmapError as err:
        session.rollback()
        _flash_error(err)
        return redirect(url_for("registries.places_page"))
    session.commit()
    flash(f"已登记场所：{place.name}", "info")
    return redirect(url_for("registries.place_page", place_id=place.id))


@bp.get("/places/<int:place_id>")
@login_required
@page_errors
def place_page(place_id: int):
    session, user = db_session(), current_db_user()
    feature = _place_feature(session, user, place_id)
    props = feature["properties"]
    m = build_place_map(place=feature, hazards_url=url_for("registries_api.inspections_incidents", place_id=place_id),
                        case_link=_case_link(), grids_url=url_for("api.layer", name="grids"), labels=_map_labels(),
                        **_basemap())
    return render_template("registries/place.html", map=map_parts(m), place=props,
                           checklist=INSPECTION_CHECKLISTS[props["kind"]],
                           inspections=registries.list_inspections(session, user, place_id=place_id),
                           can=registries.permissions(user), case_link=_case_link(),
                           today=registries.today_in_china().isoformat())


@bp.post("/places/<int:place_id>/inspections")
@login_required
def inspection_create_page(place_id: int):
    session, user = db_session(), current_db_user()
    form = request.form
    data = {k: v for k, v in form.items() if not k.startswith("check_")}
    data["checklist"] = {k[len("check_"):]: True for k in form if k.startswith("check_")}
    try:
        inspection = registries.record_inspection(session, user, place_id, data)
    except GridmapError as err:
        session.rollback()
        _flash_error(err)
        return redirect(url_for("registries.place_page", place_id=place_id))
    incident_id = inspection.incident_id
    session.commit()
    if incident_id:
        flash(f"已记录检查，并生成隐患事件 #{incident_id}", "info")
    else:
        flash("已记录检查", "info")
    return redirect(url_for("registries.place_page", place_id=place_id, incident=incident_id or None))


@bp.get("/staff")
@login_required
@page_errors
def staff_page():
    session, user = db_session(), current_db_user()
    registries.require_view(user, "staff")
    town = request.args.get("town") or None
    role = request.args.get("role") or None
    coverage = registries.staff_coverage(session, user, town=town)
    m = build_coverage_map(**_outline_layers(session, user),
                           villages_url=url_for("registries_api.staff_coverage_geojson", layer="villages"),
                           grids_url=url_for("registries_api.staff_coverage_geojson", layer="grids"),
                           labels=_map_labels(), **_basemap())
    gaps = [v for v in coverage["villages"] if v["missing_police"] or v["missing_lawyer"]]
    staff = registries.list_staff(session, user, town=town, role=role) if town or role else []
    return render_template("registries/staff.html", map=map_parts(m), coverage=coverage, gaps=gaps, staff=staff,
                           town=town, role=role, towns=_towns(session), roles=STAFF_ROLE_ZH,
                           can=registries.permissions(user), personal=registries.shows_personal_details(user))


@bp.post("/staff")
@login_required
def staff_create_page():
    session, user = db_session(), current_db_user()
    try:
        staff = registries.create_staff(session, user, request.form.to_dict())
    except GridmapError as err:
        session.rollback()
        _flash_error(err)
        return redirect(url_for("registries.staff_page"))
    session.commit()
    flash(f"已登记：{STAFF_ROLE_ZH[staff.role]} {staff.name}", "info")
    return redirect(url_for("registries.staff_page", town=request.form.get("town") or None))


@bp.get("/activities")
@login_required
@page_errors
def activities_page():
    session, user = db_session(), current_db_user()
    registries.require_view(user, "activities")
    start, end = _period_args()
    period = {"from": start.isoformat(), "to": end.isoformat()}
    m = build_activities_map(**_outline_layers(session, user),
                             activities_url=url_for("registries_api.activities_index", **period),
                             labels=_map_labels(), **_basemap())
    return render_template("registries/activities.html", map=map_parts(m), period=period,
                           per_village=registries.activities_per_village(session, user, start, end),
                           activities=registries.activities_geojson(session, user, start=start, end=end,
                                                                    limit=200)["features"],
                           kinds=ACTIVITY_KIND_ZH, can=registries.permissions(user),
                           today=registries.today_in_china().isoformat())


@bp.post("/activities")
@login_required
def activities_create_page():
    session, user = db_session(), current_db_user()
    try:
        activity = registries.create_activity(session, user, request.form.to_dict())
    except GridmapError as err:
        session.rollback()
        _flash_error(err)
        return redirect(url_for("registries.activities_page"))
    session.commit()
    flash(f"已记录普法活动：{activity.title}", "info")
    return redirect(url_for("registries.activities_page"))


@bp.get("/bulletins")
@login_required
@page_errors
def bulletins_page():
    session, user = db_session(), current_db_user()
    today = registries.today_in_china()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    towns = _towns(session)
    if user.role not in bulletins.BULLETIN_ROLES:
        towns = [t for t in towns if t.code in (user.scopes or ())]
        if not towns:
            abort(403)
    bulletin = None
    error = None
    args = {k: v for k, v in request.args.items() if v}
    if "period" in args or "start" in args:
        args["sections"] = ",".join(request.args.getlist("sections")) or args.get("sections", "")
        try:
            bulletin = bulletins.build_bulletin(session, user, bulletins.parse_request(session, args, today),
                                                **_bulletin_settings())
        except GridmapError as err:
            error = err
    files = {fmt: url_for("registries_api.bulletins_get", format=fmt, **{k: v for k, v in args.items() if v})
             for fmt in ("xlsx", "pdf", "png")}
    return render_template("registries/bulletins.html", bulletin=bulletin, error=error, towns=towns,
                           args=args, default_period=last_month, sections=BULLETIN_SECTIONS,
                           section_names=BULLETIN_SECTION_ZH, files=files,
                           county_allowed=user.role in bulletins.BULLETIN_ROLES,
                           chosen=set(request.args.getlist("sections")) or set(BULLETIN_SECTIONS)), \
        (400 if error else 200)


@bp.get("/reviews")
@login_required
@page_errors
def reviews_page():
    session, user = db_session(), current_db_user()
    case_review.require_report_reader(user)
    today = registries.today_in_china()
    return render_template("registries/reviews.html", reviews=case_review.list_reviews(session, user),
                           towns=_towns(session), methods=REVIEW_METHOD_ZH,
                           can_review=user.role in case_review.REVIEW_ROLES,
                           default_start=(today.replace(day=1) - timedelta(days=1)).replace(day=1).isoformat(),
                           default_end=(today.replace(day=1) - timedelta(days=1)).isoformat())


@bp.post("/reviews")
@login_required
def reviews_create_page():
    session, user = db_session(), current_db_user()
    try:
        review = case_review.create_review(session, user, request.form.to_dict())
    except GridmapError as err:
        session.rollback()
        _flash_error(err)
        return redirect(url_for("registries.reviews_page"))
    session.commit()
    return redirect(url_for("registries.review_page", review_id=review.id))


@bp.get("/reviews/<int:review_id>")
@login_required
@page_errors
def review_page(review_id: int):
    session, user = db_session(), current_db_user()
    report = case_review.review_report(session, user, review_id)
    return render_template("registries/review.html", report=report,
                           items=case_review.review_items(session, user, review_id), checklist=REVIEW_CHECKLIST,
                           can_review=user.role in case_review.REVIEW_ROLES, case_link=_case_link())


@bp.post("/reviews/<int:review_id>/items/<int:item_id>")
@login_required
def review_score_page(review_id: int, item_id: int):
    session, user = db_session(), current_db_user()
    try:
        case_review.score_item(session, user, review_id, item_id, request.form.to_dict())
    except GridmapError as err:
        session.rollback()
        _flash_error(err)
    else:
        session.commit()
        flash("评分已保存", "info")
    return redirect(url_for("registries.review_page", review_id=review_id) + f"#item-{item_id}")
