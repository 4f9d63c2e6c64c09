"""Incidents: the JSON API (report, list, case, transitions, duplicates, locate, export) and the
pages (pin on a phone, incidents map, list, case). Thin adapters over services.incidents,
services.workflow and maps.incidents."""
from __future__ import annotations

import csv
import io
from datetime import datetime

from flask import (Blueprint, Response, abort, current_app, jsonify, render_template, request, stream_with_context,
                   url_for)
from flask_babel import get_locale, pgettext
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from gridmap.catalog import (DISPATCH_KIND_ZH, LEGAL_CLASS_ZH, MEDIATION_OUTCOME_ZH, RESOLUTION_LEVEL_ZH,
                             STATUS_ZH, STATUSES)
from gridmap.errors import NotFound, ValidationError
from gridmap.maps.incidents import DEFAULT_LABELS as MAP_LABELS
from gridmap.maps.incidents import FILTER_KEYS as MAP_FILTERS
from gridmap.maps.incidents import build_case_map, build_incidents_map
from gridmap.maps.render import map_parts
from gridmap.models import IncidentCategory, IncidentSubcategory
from gridmap.services import incidents, layers, workflow
from gridmap.tiles.registry import IncidentFilter
from gridmap.web import api, db_session
from gridmap.web.auth import current_db_user

api_bp = Blueprint("incidents_api", __name__, url_prefix="/api")
# Same rule as the rest of /api: a login or Bearer token, and the CSRF header on cookie writes.
api_bp.before_request(api._authenticate)

bp = Blueprint("incidents", __name__)

SEVERITY_ZH = {1: "1 轻微", 2: "2 一般", 3: "3 较重", 4: "4 严重"}



def _settings() -> incidents.IncidentSettings:
    return incidents.IncidentSettings.from_config(current_app.config)



def _default_sort(user) -> str:
    return "deadline" if user.role == "town_supervisor" else "-reported_at"


def _int_arg(name: str, default: int) -> int:
    value = request.args.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number", name) from None



# --- API --------------------------------------------------------------------------------------

@api_bp.post("/incidents")
def create():
    session = db_session()
    # The authenticated user as loaded for this request (no second read of the users row).
    user = current_user._get_current_object()
    result = incidents.create_incident(session, user, api.json_body(), _settings(), commit=True)
    detail = result.case or workflow.case_detail(session, user, result.incident.id)
    session.commit()
    detail["created"] = result.created
    detail["possible_duplicates"] = result.duplicates
    response = jsonify(detail)
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = url_for("incidents_api.detail", incident_id=result.incident.id)
    return response


@api_bp.get("/incidents")
def index():
    session = db_session()
    user = current_db_user()
    filters = incidents.parse_filters(session, request.args, _default_sort(user))
    if request.args.get("zoom") not in (None, ""):
        return api.geojson_response(incidents.map_layer(session, user, filters, _int_arg("zoom", 12), _settings()))
    settings = _settings()
    return api.geojson_response(incidents.list_incidents(session, user, filters, _int_arg("page", 1),
                                             _int_arg("page_size", settings.page_size), settings))


@api_bp.get("/incidents/<int:incident_id>")
def detail(incident_id: int):
    return api.geojson_response(workflow.case_detail(db_session(), current_db_user(), incident_id))


@api_bp.post("/incidents/<int:incident_id>/transitions")
def transition(incident_id: int):
    session = db_session()
    user = current_db_user()
    event = workflow.perform(session, user, incident_id, api.json_body())
    body = workflow.case_detail(session, user, incident_id)
    session.commit()
    body["event"] = {"from_status": event.from_status, "to_status": event.to_status, "at": event.at.isoformat(),
                     "note": event.note, "data": event.data}
    return jsonify(body)


@api_bp.get("/incidents/duplicates")
def duplicates():
    found = incidents.find_duplicates(db_session(), current_db_user(), request.args, _settings())
    return jsonify({"possible_duplicates": found})


@api_bp.get("/locate")
def locate():
    return jsonify(incidents.describe_location(db_session(), current_db_user(), request.args.get("lon"),
                                               request.args.get("lat"), request.args.get("crs", "wgs84")))


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    # Spreadsheets run cells starting with these as formulas.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@api_bp.get("/incidents/export.csv")
def export_csv():
    session = db_session()
    user = current_db_user()
    filters = incidents.parse_filters(session, request.args, _default_sort(user))
    columns = incidents.export_columns(user)

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")  # so spreadsheet programs read the Chinese as UTF-8
        writer.writerow(columns)
        for row in incidents.export_rows(session, user, filters):
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={_export_name('csv')}"})


@api_bp.get("/incidents/export.geojson")
def export_geojson():
    session = db_session()
    user = current_db_user()
    filters = incidents.parse_filters(session, request.args, _default_sort(user))
    return Response(stream_with_context(incidents.export_geojson_chunks(session, user, filters)),
                    mimetype="application/geo+json",
                    headers={"Content-Disposition": f"attachment; filename={_export_name('geojson')}"})


def _export_name(extension: str) -> str:
    return f"incidents-{datetime.now():%Y%m%d-%H%M}.{extension}"


# --- pages ------------------------------------------------------------------------------------

def _categories(session) -> list[dict]:
    subs: dict[str, list[dict]] = {}
    for sub in session.scalars(select(IncidentSubcategory).order_by(IncidentSubcategory.category_code)):
        subs.setdefault(sub.category_code, []).append({"code": sub.code, "name_zh": sub.name_zh,
                                                       "name_en": sub.name_en})
    return [{"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en, "colour": c.colour,
             "deadline_days": c.deadline_days, "subcategories": subs.get(c.code, [])}
            for c in session.scalars(select(IncidentCategory).order_by(IncidentCategory.code))]


def _bounds(session, user):
    found = incidents.scope_bounds(session, user)
    return found or layers.bounds(layers.county_geojson(session))


@bp.get("/incidents/new")
@login_required
def pin_page():
    session = db_session()
    user = current_db_user()
    config = {
        "categories": _categories(session),
        "bounds": _bounds(session, user),
        "basemap": {"url": current_app.config["BASEMAP_URL"], "attribution": current_app.config["BASEMAP_ATTRIBUTION"]},
        "urls": {"create": url_for("incidents_api.create"), "locate": url_for("incidents_api.locate"),
                 "duplicates": url_for("incidents_api.duplicates"), "incidents": url_for("incidents_api.index"),
                 "grids": url_for("api.layer", name="grids"), "case": "/incidents/__ID__"},
        "can_report": user.role in incidents.REPORTING_ROLES,
        "severities": [[k, v] for k, v in SEVERITY_ZH.items()],
    }
    return render_template("incidents/pin.html", pin_config=config)


def _english() -> bool:
    return str(get_locale() or "").startswith("en")


def _status_names() -> dict[str, str]:
    """Workflow states in the page's language (literal message ids, so pybabel finds them)."""
    return {"reported": pgettext("status", "上报"), "accepted": pgettext("status", "受理"),
            "rejected": pgettext("status", "不予受理"), "duplicate": pgettext("status", "重复"),
            "dispatched": pgettext("status", "派遣"), "in_progress": pgettext("status", "处置中"),
            "resolved": pgettext("status", "办结"), "closed": pgettext("status", "核查结案"),
            "followed_up": pgettext("status", "已回访")}


def _map_labels() -> dict[str, str]:
    """Every text of the incidents map, translated (marked with N_ in maps.incidents and maps.vectortiles)."""
    return {key: _(text) for key, text in MAP_LABELS.items()}


@bp.get("/incidents/map")
@login_required
def map_page():
    """Incidents at any scale from vector tiles, scoped to the user by the tile endpoint."""
    session = db_session()
    user = current_db_user()
    filters = {k: request.args[k] for k in MAP_FILTERS if request.args.get(k)}
    # A bad filter in the address is a 400 naming the field, not a map of empty tiles.
    IncidentFilter.parse(filters.get("category"), filters.get("status"), filters.get("from"), filters.get("to"),
                         filters.get("overdue"))
    english = _english()
    statuses = _status_names()
    categories = [{"code": c["code"], "name": c["name_en"] if english else c["name_zh"], "colour": c["colour"],
                   "subcategories": {s["code"]: s["name_en"] if english else s["name_zh"] for s in c["subcategories"]}}
                  for c in _categories(session)]
    tile_urls = {name: url_for("tiles.tile", layer=name, z=0, x=0, y=0).replace("/0/0/0.pbf", "/{z}/{x}/{y}.pbf")
                 for name in ("incidents", "towns", "villages", "grids")}
    m = build_incidents_map(
        bounds=_bounds(session, user), tile_urls=tile_urls, query_url=url_for("tiles.incidents_at"),
        case_url=url_for("incidents.list_page") + "/{id}", categories=categories,
        statuses=[("open", _("未结（全部进行中）"))] + [(code, statuses[code]) for code in STATUSES],
        status_names=statuses, filters=filters, labels=_map_labels(),
        basemap_url=current_app.config["BASEMAP_URL"], basemap_attribution=current_app.config["BASEMAP_ATTRIBUTION"])
    return render_template("map_page.html", map=map_parts(m))


@bp.get("/incidents")
@login_required
def list_page():
    session = db_session()
    user = current_db_user()
    error = None
    try:
        filters = incidents.parse_filters(session, request.args, _default_sort(user))
        page = _int_arg("page", 1)
        result = incidents.list_incidents(session, user, filters, page, 50, _settings())
    except ValidationError as err:
        error = f"{err.field}: {err.message}"
        filters = incidents.IncidentFilters(sort=_default_sort(user))
        page = 1
        result = incidents.list_incidents(session, user, filters, 1, 50, _settings())
    args = filters.query_args()
    return render_template(
        "incidents/list.html", result=result, filters=filters, args=args, page=page, error=error,
        categories=_categories(session), statuses=STATUSES, status_zh=STATUS_ZH, severity_zh=SEVERITY_ZH,
        sorts=[("-reported_at", _("最新上报")), ("deadline", _("按期限")), ("-occurred_at", _("最近发生")),
               ("-severity", _("按等级"))],
        csv_url=url_for("incidents_api.export_csv", **args),
        geojson_url=url_for("incidents_api.export_geojson", **args),
        personal=incidents.can_see_personal_details(user))


@bp.get("/incidents/<int:incident_id>")
@login_required
def case_page(incident_id: int):
    session = db_session()
    user = current_db_user()
    try:
        case = workflow.case_detail(session, user, incident_id)
    except NotFound:
        abort(404)
    props = case["properties"]
    lon, lat = case["geometry"]["coordinates"]
    incident = incidents.get_visible_incident(session, user, incident_id)
    needs_targets = any(a["name"] == "dispatch" for a in props["allowed_actions"])
    m = build_case_map(lon=lon, lat=lat, properties=props, case_url=request.path, colour=props["colour"],
                       grids_url=url_for("api.layer", name="grids"),
                       basemap_url=current_app.config["BASEMAP_URL"],
                       basemap_attribution=current_app.config["BASEMAP_ATTRIBUTION"])
    return render_template(
        "incidents/case.html", case=props, lon=lon, lat=lat, map=map_parts(m), severity_zh=SEVERITY_ZH,
        legal_class_zh=LEGAL_CLASS_ZH, resolution_level_zh=RESOLUTION_LEVEL_ZH,
        outcome_zh=MEDIATION_OUTCOME_ZH, dispatch_kind_zh=DISPATCH_KIND_ZH,
        targets=workflow.dispatch_targets(session, incident) if needs_targets else {},
        units=(incidents.village_units(session, incident.village_code)
               if any(a["name"] == "set_unit" for a in props["allowed_actions"]) else []),
        transition_url=url_for("incidents_api.transition", incident_id=incident_id))
