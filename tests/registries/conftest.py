"""Fixtures for the registry tests: cheap password hashing, points inside known villages, users by role."""
from __future__ import annotations

import pytest
from sqlalchemy import text

FANYING = "410421102204"   # 范营村, 闹店镇
NAODIAN = "410421102000"   # 闹店镇
CHENGGUAN = "410421100000"  # 城关镇


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    """Tests make many users; a low-cost hash (still checked by werkzeug) keeps them fast."""
    from werkzeug.security import generate_password_hash

    from gridmap.services import accounts

    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))


def interior_point(session, village_code: str, index: int = 0) -> tuple[str, float, float]:
    """(grid code, lon, lat) of a point well inside one of the village's grids."""
    return tuple(session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids "
        "WHERE village_code = :v ORDER BY code OFFSET :i LIMIT 1) s"), {"v": village_code, "i": index}).one())


def other_village(session, town_code: str, not_village: str) -> str:
    return session.execute(text("SELECT code FROM villages WHERE town_code = :t AND code <> :v ORDER BY code LIMIT 1"),
                           {"t": town_code, "v": not_village}).scalar_one()


def counts(session, *tables: str) -> tuple[int, ...]:
    return tuple(session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables)


@pytest.fixture
def users(make_user):
    """One user per role: county-wide roles, a town supervisor and grid worker in 闹店镇 / 范营村,
    a police officer scoped to 范营村, a viewer and a mediator."""
    made = {}
    for name, role, scopes in (("r_admin", "admin", []), ("r_county", "county_officer", []),
                               ("r_viewer", "viewer", []), ("r_town", "town_supervisor", [NAODIAN]),
                               ("r_other_town", "town_supervisor", [CHENGGUAN]),
                               ("r_worker", "grid_worker", [FANYING]), ("r_police", "police", [FANYING]),
                               ("r_mediator", "mediator", ["1"])):
        made[role if name not in ("r_other_town",) else "other_town"] = make_user(name, role, scopes)
    return made
