"""JSON API: thin adapters over services. Authenticated by session cookie or Bearer token."""
from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError as CSRFError

from gridmap.errors import Forbidden, UnsupportedMediaType, ValidationError
from gridmap.services import layers
from gridmap.web import db_session
from gridmap.web.auth import current_db_user

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def _authenticate():
    if not current_user.is_authenticated:
        abort(401, description="login or a Bearer token is required")
    # Cookie-authenticated writes must carry the page's CSRF token; token clients need none.
    if request.method not in ("GET", "HEAD", "OPTIONS") and "Authorization" not in request.headers:
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except CSRFError:
            raise Forbidden("missing or invalid CSRF token", "X-CSRFToken", code="csrf") from None


def json_body() -> dict:
    """The request's JSON object, or a 415/400 naming what is wrong with it."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json", "Content-Type")
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationError("the body is not valid JSON", "body")
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", "body")
    return body


def geojson_response(data: dict) -> Response:
    response = jsonify(data)
    response.mimetype = "application/geo+json"
    return response


def _float_arg(name: str, default: float) -> float:
    try:
        return float(request.args.get(name, default))
    except ValueError:
        raise ValidationError(f"{name} must be a number", name) from None


@bp.get("/<any(towns, villages, grids, stations, 'patrol-zones', 'mediation-points'):name>")
def layer(name: str):
    bbox = layers.parse_bbox(request.args.get("bbox"))
    simplify = _float_arg("simplify", 0.0)
    return geojson_response(layers.layer_geojson(db_session(), current_db_user(), name, bbox, simplify))


@bp.get("/me")
def me():
    user = current_db_user()
    return jsonify({"username": user.username, "role": user.role, "scopes": user.scopes})
