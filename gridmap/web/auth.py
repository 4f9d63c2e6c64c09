"""Login and logout (Flask-Login, CSRF-protected form) and bearer-token authentication for the API."""
from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gridmap.catalog import ROLE_ZH
from gridmap.models import User
from gridmap.services import accounts
from gridmap.web import db_session, login_manager

bp = Blueprint("auth", __name__)

LOGIN_CACHE_SECONDS = 5.0


class SessionUser(UserMixin):
    """The logged-in user as Flask-Login sees it; a plain copy, detached from any Session."""

    def __init__(self, user: User):
        self.id = user.id
        self.username = user.username
        self.display_name = user.display_name or user.username
        self.role = user.role
        self.scopes = list(user.scopes or [])

    @property
    def role_zh(self) -> str:
        return ROLE_ZH.get(self.role, self.role)


class LoginCache:
    """Who a session cookie or a Bearer token stands for, remembered for a few seconds per worker
    process, so a burst of tiles or reports costs no database round trip to authenticate.

    An entry lives ``seconds`` (app config ``LOGIN_CACHE_SECONDS``, default 5): an account made
    inactive, a changed role or scope, or a revoked token take effect within that time. Keys are
    the user id (cookie sessions) and the token's hash (Bearer tokens), never the token itself.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[object, tuple[float, SessionUser]] = {}

    def get(self, key) -> SessionUser | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key, user: SessionUser) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.seconds, user)

    def clear(self) -> None:
        self._entries.clear()


def login_cache() -> LoginCache:
    cache = current_app.extensions.get("gridmap_login_cache")
    if cache is None:
        cache = current_app.extensions["gridmap_login_cache"] = LoginCache(
            float(current_app.config.get("LOGIN_CACHE_SECONDS", LOGIN_CACHE_SECONDS)))
    return cache


@login_manager.user_loader
def _load_user(user_id: str):
    try:
        key = ("user", int(user_id))
    except ValueError:
        return None
    cache = login_cache()
    found = cache.get(key)
    if found is None:
        user = db_session().get(User, key[1])
        if user is None or not user.active:
            return None
        found = SessionUser(user)
        cache.put(key, found)
    return found


@login_manager.request_loader
def _load_user_from_token(req):
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    token = header[len("Bearer "):].strip()
    key = ("token", accounts.token_hash(token))
    cache = login_cache()
    found = cache.get(key)
    if found is None:
        session = db_session()
        user, touched = accounts.user_for_token(session, token)
        if user is None:
            return None
        if touched:
            session.commit()  # records last_used_at (at most once a minute per token)
        found = SessionUser(user)
        cache.put(key, found)
    return found


@login_manager.unauthorized_handler
def _unauthorized():
    if request.path.startswith("/api/") or request.path.startswith("/tiles/"):
        abort(401, description="login or a Bearer token is required")
    return redirect(url_for("auth.login", next=request.full_path))


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("密码", validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("pages.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        session = db_session()
        user = accounts.check_password(session, form.username.data, form.password.data)
        if user is not None:
            login_user(SessionUser(user))
            accounts.audit(session, user.id, "login", "user", user.id)
            session.commit()
            return redirect(_safe_next(request.args.get("next")))
        flash(_("用户名或密码错误"), "error")
    return render_template("login.html", form=form), (401 if form.is_submitted() else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


def current_db_user() -> User:
    """The logged-in user's row in this request's Session."""
    if not current_user.is_authenticated:
        abort(401)
    return db_session().get(User, current_user.id)
