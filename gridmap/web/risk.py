"""Risk, hot spots, the heatmap and the county's numbers: the JSON API (JSON, GeoJSON, CSV) and the
pages (risk map, heatmap, report, Excel). Thin adapters over services.risk and maps.risk."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask_login import login_required

from gridmap.catalog import CATEGORIES, MEDIATION_KIND_ZH, RESOLUTION_LEVEL_ZH
from gridmap.errors import ValidationError
from gridmap.maps.render import map_parts
from gridmap.maps.risk import build_heat_map, build_report_map, build_risk_map
from gridmap.services import layers, risk
from gridmap.web import api, db_session
from gridmap.web.auth import current_db_user

api_bp = Blueprint("risk_api", __name__, url_prefix="/api")
# Same rule as the rest of /api: a login or a Bearer token.
api_bp.before_request(api._authenticate)

bp = Blueprint("risk", __name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _settings() -> risk.RiskSettings:
    return risk.RiskSettings.from_config(current_app.config)


def _period(args, settings: risk.RiskSettings) -> risk.Period:
    return risk.parse_period(args, default_days=settings.default_days)


def _file_name(stem: str, period: risk.Period, extension: str) -> str:
    args = period.query_args()
    return f"{stem}-{args['from']}-{args['to']}.{extension}".replace(":", "")


def _download(body, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}"})


def _geojson(data) -> Response:
    response = jsonify(data)
    response.mimetype = "application/geo+json"
    return response


# --- API --------------------------------------------------------------------------------------

@api_bp.get("/risk/<any(grids, villages, towns):level>")
def risk_table(level: str):
    """Risk figures per grid, village or town: ``?from=&to=&category=&format=json|geojson|csv``."""
    session, user, settings = db_session(), current_db_user(), _settings()
    fmt = risk.parse_choice(request.args.get("format"), "format", risk.RISK_FORMATS, "json")
    period = _period(request.args, settings)
    categories = risk.parse_categories(request.args)
    result = risk.compute_risk(session, user, period, categories, settings)
    session.commit()  # keeps a newly built grid adjacency
    if fmt == "geojson":
        return _geojson(risk.risk_geojson(session, result, level))
    if fmt == "csv":
        return _download(risk.risk_csv(result, level), "text/csv; charset=utf-8",
                         _file_name(f"risk-{level}", period, "csv"))
    return jsonify(risk.risk_json(result, level))


@api_bp.get("/risk/heat")
def heat():
    """Incidents per month and ~200 m cell for the heatmap: ``?from=&to=&category=``."""
    session, user, settings = db_session(), current_db_user(), _settings()
    period = _period(request.args, settings)
    return jsonify(risk.heat_cells(session, user, period, risk.parse_categories(request.args), settings))


@api_bp.get("/report")
def report():
    """The county's numbers ("三零", resolution levels, enterprise-related, mediation): ``?from=&to=&distance=``."""
    session, user, settings = db_session(), current_db_user(), _settings()
    period = _period(request.args, settings)
    distance = risk.parse_distance(request.args.get("distance"), settings.mediation_distance_m)
    return jsonify(risk.report_json(risk.county_report(session, user, period, settings, distance)))


# --- pages ------------------------------------------------------------------------------------

def _filters(settings: risk.RiskSettings, *, with_categories: bool = True):
    """The period and categories of a page; a bad value shows as a message and the defaults are used."""
    try:
        period = _period(request.args, settings)
        categories = risk.parse_categories(request.args) if with_categories else ()
        return period, categories, None
    except ValidationError as err:
        return _period({}, settings), (), f"{err.field}: {err.message}"


def _args(period: risk.Period, categories=()) -> dict:
    args = period.query_args()
    if categories:
        args["category"] = ",".join(categories)
    return args


def _basemap() -> dict:
    return {"basemap_url": current_app.config["BASEMAP_URL"],
            "basemap_attribution": current_app.config["BASEMAP_ATTRIBUTION"]}


def _bounds(session, frame=None):
    if frame is not None and len(frame):
        return tuple(float(v) for v in frame.total_bounds)
    return layers.bounds(layers.county_geojson(session))


def _page_context(period, categories, error, settings) -> dict:
    return {"period": period, "categories": categories, "error": error, "args": _args(period, categories),
            "all_categories": [(c.code, c.name_zh) for c in CATEGORIES], "settings": settings}


@bp.get("/risk")
@login_required
def map_page():
    session, user, settings = db_session(), current_db_user(), _settings()
    period, categories, error = _filters(settings)
    result = risk.compute_risk(session, user, period, categories, settings)
    session.commit()
    args = _args(period, categories)
    inline = len(result.grids) <= settings.inline_max_features
    m = build_risk_map(bounds=_bounds(session, result.grids),
                       grids=risk.risk_map_geojson(result) if inline else None,
                       grids_url=None if inline else url_for("risk_api.risk_table", level="grids", format="geojson",
                                                             **args),
                       classes=settings.classes, measure=request.args.get("measure") if request.args.get(
                           "measure") in ("score", "per_km2", "per_1000", "gi_bin") else "score", **_basemap())
    table = result.grids.drop(columns="geometry")
    top = risk.records(table.sort_values(["score", "n_total"], ascending=False).head(15))
    hot = risk.records(table.loc[table["gi_bin"] > 0].sort_values("gi_z", ascending=False).head(15))
    return render_template("risk/map.html", map=map_parts(m), top=top, hot=hot, result=result,
                           category_names={c.code: c.name_zh for c in CATEGORIES}, gi_labels=risk.GI_BIN_ZH,
                           **_page_context(period, categories, error, settings))


@bp.get("/risk/heat")
@login_required
def heat_page():
    session, settings = db_session(), _settings()
    period, categories, error = _filters(settings)
    m = build_heat_map(bounds=_bounds(session), heat_url=url_for("risk_api.heat", **_args(period, categories)),
                       grids_url=url_for("api.layer", name="grids"), **_basemap())
    return render_template("risk/heat.html", map=map_parts(m), **_page_context(period, categories, error, settings))


@bp.get("/risk/export.xlsx")
@login_required
def risk_export():
    session, user, settings = db_session(), current_db_user(), _settings()
    period = _period(request.args, settings)
    result = risk.compute_risk(session, user, period, risk.parse_categories(request.args), settings)
    session.commit()
    return _download(risk.risk_xlsx(result), XLSX, _file_name("risk", period, "xlsx"))


def _report_request(settings):
    period, _, error = _filters(settings, with_categories=False)
    try:
        distance = risk.parse_distance(request.args.get("distance"), settings.mediation_distance_m)
    except ValidationError as err:
        distance, error = settings.mediation_distance_m, f"{err.field}: {err.message}"
    return period, distance, error


@bp.get("/report")
@login_required
def report_page():
    session, user, settings = db_session(), current_db_user(), _settings()
    period, distance, error = _report_request(settings)
    result = risk.county_report(session, user, period, settings, distance)
    body = risk.report_json(result)
    m = build_report_map(bounds=_bounds(session, result.villages), villages=risk.report_villages_geojson(result),
                         points=risk.report_points_geojson(result), distance_m=distance, **_basemap())
    failing = [v for v in body["sanling"]["villages"] if not v["compliant"]]
    args = {**period.query_args(), "distance": f"{distance:g}"}
    return render_template("risk/report.html", map=map_parts(m), report=body, failing=failing, distance=distance,
                           args=args, period=period, error=error, levels=RESOLUTION_LEVEL_ZH,
                           kinds=MEDIATION_KIND_ZH, total_label=result.total_label)


@bp.get("/report/export.xlsx")
@login_required
def report_export():
    session, user, settings = db_session(), current_db_user(), _settings()
    period = _period(request.args, settings)
    distance = risk.parse_distance(request.args.get("distance"), settings.mediation_distance_m)
    result = risk.county_report(session, user, period, settings, distance)
    return _download(risk.report_xlsx(result), XLSX, _file_name("report", period, "xlsx"))
