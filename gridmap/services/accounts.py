"""Users, roles, scopes and API tokens."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gridmap.catalog import COUNTY_WIDE_ROLES, ROLES
from gridmap.errors import Conflict, NotFound, ValidationError
from gridmap.models import ApiToken, AuditEntry, Grid, PatrolZone, Town, User, Village


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_scope(session: Session, role: str, scopes: list[str]) -> list[str]:
    """Check that every scope names an existing town, village, grid, patrol zone or mediation point."""
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}; one of {', '.join(ROLES)}", "role")
    if role in COUNTY_WIDE_ROLES:
        return []
    if not scopes:
        raise ValidationError(f"role {role} needs a scope (a town, village, grid or zone code)", "scope")
    for code in scopes:
        if not any(session.get(model, code) for model in (Town, Village, Grid, PatrolZone)):
            if not (role == "mediator" and code.isdigit()):
                raise ValidationError(f"scope {code!r} is no known town, village, grid or patrol zone", "scope")
    return list(scopes)


def create_user(session: Session, username: str, password: str, role: str,
                scopes: list[str] | None = None, display_name: str | None = None) -> User:
    if not username or len(username) > 80:
        raise ValidationError("username must be 1-80 characters", "username")
    if len(password) < 8:
        raise ValidationError("password must have at least 8 characters", "password")
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username!r} exists", "username")
    user = User(username=username, password_hash=generate_password_hash(password), role=role,
                scopes=validate_scope(session, role, scopes or []), display_name=display_name)
    session.add(user)
    session.flush()
    audit(session, None, "user.create", "user", user.id, {"role": role, "scopes": user.scopes})
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}", "username")
    return user


def check_password(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user and check_password_hash(user.password_hash, password):
        return user
    return None


def issue_token(session: Session, username: str) -> str:
    """A new API token for the user; only its hash is stored, so it is shown once."""
    user = get_user(session, username)
    token = "gm_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(token)))
    audit(session, user.id, "token.issue", "user", user.id)
    return token


# A token's last_used_at is written at most this often: recording every request would make each
# API call a write (and a commit) of its own.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


def user_for_token(session: Session, token: str, now: datetime | None = None) -> tuple[User | None, bool]:
    """The active user holding an unrevoked ``token`` (one query), and whether its ``last_used_at``
    was updated (it is when unset or older than TOKEN_USE_RESOLUTION; the caller commits)."""
    now = now or datetime.now(timezone.utc)
    found = session.execute(
        select(User, ApiToken.id, ApiToken.last_used_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked.is_(False), User.active.is_(True))
    ).first()
    if found is None:
        return None, False
    user, token_id, last_used_at = found
    if last_used_at is not None and now - last_used_at < TOKEN_USE_RESOLUTION:
        return user, False
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
                    .execution_options(synchronize_session=False))
    return user, True


def audit(session: Session, user_id: int | None, action: str, entity: str, entity_id=None,
          detail: dict | None = None, note: str | None = None) -> None:
    session.add(AuditEntry(user_id=user_id, action=action, entity=entity,
                           entity_id=None if entity_id is None else str(entity_id),
                           detail=detail, note=note))
