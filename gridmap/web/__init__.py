"""Web layer: blueprints, per-request session, login, CSRF, languages, JSON errors."""
from __future__ import annotations

from contextlib import contextmanager

from flask import Flask, g, jsonify, request
from flask_babel import Babel, get_locale
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException

from gridmap.db import autocommit_engine, get_engine
from gridmap.errors import GridmapError

csrf = CSRFProtect()
login_manager = LoginManager()
babel = Babel()
SUPPORTED_LOCALES = ("zh_CN", "en")


def _select_locale() -> str:
    """Chinese first: English only when chosen (?lang=en, remembered in a cookie)."""
    chosen = request.args.get("lang") or request.cookies.get("lang")
    return chosen if chosen in SUPPORTED_LOCALES else "zh_CN"


def _remember_locale(response):
    chosen = request.args.get("lang")
    if chosen in SUPPORTED_LOCALES:
        response.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="Lax")
    return response


def init_web(app: Flask) -> None:
    from sqlalchemy.orm import sessionmaker

    from gridmap.cli import register_cli  # noqa: E402
    from gridmap.web import api, assets, auth, pages

    engine = get_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    app.extensions["gridmap_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)

    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录 / Please log in"
    babel.init_app(app, locale_selector=_select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    app.after_request(_remember_locale)

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(assets.bp)
    from gridmap.web import tiles
    app.register_blueprint(tiles.bp)
    # The API authenticates by bearer token or session cookie; state-changing calls from pages
    # carry the CSRF token in a header, checked in api.bp's before_request.
    csrf.exempt(api.bp)
    from gridmap.web import incidents
    app.register_blueprint(incidents.bp)
    app.register_blueprint(incidents.api_bp)
    csrf.exempt(incidents.api_bp)
    from gridmap.web import registries
    app.register_blueprint(registries.bp)
    app.register_blueprint(registries.api_bp)
    csrf.exempt(registries.api_bp)
    from gridmap.web import risk
    app.register_blueprint(risk.bp)
    app.register_blueprint(risk.api_bp)
    csrf.exempt(risk.api_bp)

    from gridmap.web import patrol
    app.register_blueprint(patrol.bp)
    app.register_blueprint(patrol.api_bp)
    csrf.exempt(patrol.api_bp)

    @app.teardown_appcontext
    def _close_session(exc):
        session = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()

    @app.errorhandler(GridmapError)
    def _gridmap_error(err: GridmapError):
        return jsonify(err.to_dict()), err.status

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        if request.path.startswith("/api/") or request.path.startswith("/tiles/"):
            body = {"error": {"code": err.name.lower().replace(" ", "_"), "message": err.description,
                              "field": None}}
            return jsonify(body), err.code
        return err

    register_cli(app)


def db_session():
    """The request's Session, opened on first use and closed at teardown."""
    from flask import current_app

    if "db_session" not in g:
        g.db_session = current_app.extensions["gridmap_sessionmaker"]()
    return g.db_session


@contextmanager
def short_statements():
    """A connection for a request's few short read-only statements (a vector tile, a click on the
    map): autocommit, so no BEGIN and ROLLBACK round trips, with JIT and parallel workers off
    (``gridmap.db.autocommit_engine``). Returned to the pool when the block ends. Where the
    sessions are bound to one connection (a test's transaction), that connection."""
    from flask import current_app

    bind = current_app.extensions["gridmap_sessionmaker"].kw["bind"]
    if not isinstance(bind, Engine):
        yield bind
        return
    with autocommit_engine(bind).connect() as connection:
        yield connection
