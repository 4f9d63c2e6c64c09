"""Login and logout (Flask-Login, CSRF-protected form) and bearer-token authentication for the API."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
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


@login_manager.user_loader
def _load_user(user_id: str):
    user = db_session().get(User, int(user_id))
    return SessionUser(user) if user and user.active else None


@login_manager.request_loader
def _load_user_from_token(req):
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    session = db_session()
    user = accounts.user_for_token(session, header[len("Bearer "):].strip())
    if user is None:
        return None
    session.commit()  # records last_used_at
    return SessionUser(user)


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
