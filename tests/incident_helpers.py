"""Shared by the incident tests: points inside known grids, a valid payload, row counts."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import shapely
from sqlalchemy import text

from gridmap.errors import Conflict, Forbidden, NotFound

FANYING = "410421102204"      # 范营村, 闹店镇
NAODIAN = "410421102000"      # 闹店镇
OTHER_TOWN_VILLAGE = "410421100003"


def points_in_grids(grids, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` (lon, lat) points inside the grids (a GeoDataFrame with ``population``),
    population-weighted, uniform within each grid, in random order."""
    weights = np.maximum(grids["population"].to_numpy(dtype=float), 1.0)
    counts = rng.multinomial(n, weights / weights.sum())
    out = []
    for geom, count in zip(grids.geometry, counts):
        if count == 0:
            continue
        minx, miny, maxx, maxy = geom.bounds
        shapely.prepare(geom)
        found = np.empty((0, 2))
        while len(found) < count:
            xy = np.column_stack([rng.uniform(minx, maxx, count * 2), rng.uniform(miny, maxy, count * 2)])
            found = np.vstack([found, xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])]])
        out.append(found[:count])
    xy = np.vstack(out)
    return xy[rng.permutation(len(xy))]


def interior_point(session, village_code: str, index: int = 0) -> tuple[str, float, float]:
    """(grid code, lon, lat) of a point well inside one of the village's grids."""
    return tuple(session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids "
        "WHERE village_code = :v ORDER BY code OFFSET :i LIMIT 1) s"), {"v": village_code, "i": index}).one())


def other_village_in_town(session, town_code: str, not_village: str) -> str:
    return session.execute(text("SELECT code FROM villages WHERE town_code = :t AND code <> :v ORDER BY code LIMIT 1"),
                           {"t": town_code, "v": not_village}).scalar_one()


def payload(lon: float, lat: float, **overrides) -> dict:
    body = {"client_id": str(uuid.uuid4()), "lon": lon, "lat": lat, "category": "DSP", "subcategory": "neighbour",
            "severity": 2, "occurred_at": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(),
            "description": "两户因宅基地边界争执", "enterprise_involved": False, "contact_phone": "13800000000"}
    body.update(overrides)
    return body


def row_counts(session) -> tuple[int, int, int]:
    return tuple(session.execute(text(
        "SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM incident_events), "
        "(SELECT count(*) FROM audit_log)")).one())


def mediation_point_in(session, village_code: str) -> int:
    found = session.execute(text("SELECT id FROM mediation_points WHERE village_code = :v ORDER BY id LIMIT 1"),
                            {"v": village_code}).scalar()
    if found is None:
        found = session.execute(text("SELECT id FROM mediation_points ORDER BY id LIMIT 1")).scalar_one()
    return found


def village_with_two_grids(session) -> str:
    return session.execute(text("SELECT village_code FROM grids GROUP BY village_code HAVING count(*) >= 2 "
                                "ORDER BY village_code LIMIT 1")).scalar_one()


def cheap_password_hashing(monkeypatch):
    """Tests make many users; a low-cost hash (still checked by werkzeug) keeps them fast."""
    from werkzeug.security import generate_password_hash

    from gridmap.services import accounts

    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))


# (role, action, status the case is put in first, outcome): every action by every role.
MATRIX = [
    ("supervisor", "accept", "reported", "ok"), ("county", "accept", "reported", "ok"),
    ("admin", "accept", "reported", "ok"), ("worker", "accept", "reported", Forbidden),
    ("viewer", "accept", "reported", Forbidden), ("mediator", "accept", "reported", NotFound),
    ("other_supervisor", "accept", "reported", NotFound), ("supervisor", "accept", "accepted", Conflict),
    ("supervisor", "reject", "reported", "ok"), ("worker", "reject", "reported", Forbidden),
    ("supervisor", "reject", "dispatched", Conflict),
    ("supervisor", "dispatch", "accepted", "ok"), ("supervisor", "dispatch", "dispatched", "ok"),
    ("supervisor", "dispatch", "reported", Conflict), ("worker", "dispatch", "accepted", Forbidden),
    ("supervisor", "start", "dispatched", "ok"), ("supervisor", "start", "accepted", Conflict),
    ("worker", "start", "dispatched", Forbidden),
    ("supervisor", "resolve", "in_progress", "ok"), ("supervisor", "resolve", "dispatched", "ok"),
    ("supervisor", "resolve", "accepted", Conflict), ("viewer", "resolve", "in_progress", Forbidden),
    ("supervisor", "reopen", "resolved", "ok"), ("supervisor", "reopen", "closed", Conflict),
    ("supervisor", "close", "resolved", "ok"), ("county", "close", "resolved", "ok"),
    ("supervisor", "close", "in_progress", Conflict), ("worker", "close", "resolved", Forbidden),
    ("supervisor", "follow_up", "closed", "ok"), ("worker", "follow_up", "closed", "ok"),
    ("supervisor", "follow_up", "resolved", Conflict), ("viewer", "follow_up", "closed", Forbidden),
    ("worker", "note", "reported", "ok"), ("worker", "note", "closed", "ok"), ("supervisor", "note", "dispatched", "ok"),
    ("viewer", "note", "reported", Forbidden),
    ("supervisor", "mark_duplicate", "reported", "ok"), ("supervisor", "mark_duplicate", "accepted", Conflict),
    ("worker", "mark_duplicate", "reported", Forbidden),
    ("supervisor", "record_mediation", "dispatched", Forbidden),
]

TRANSITION_FIELDS = {"reject": {"note": "不属于受理范围"}, "dispatch": {"target_kind": "town_office"},
                     "resolve": {"resolution_level": "town"}, "reopen": {"note": "核查未通过"},
                     "follow_up": {"satisfaction": 4}, "note": {"note": "补充情况"}}


def make_people(make_user, session, prefix: str) -> dict:
    """One user of each kind the workflow tests need: name -> (user, token); plus ``point``."""
    point = mediation_point_in(session, FANYING)
    other_point = session.execute(text("SELECT id FROM mediation_points WHERE id <> :p ORDER BY id LIMIT 1"),
                                  {"p": point}).scalar_one()
    specs = {"worker": ("grid_worker", [FANYING]), "supervisor": ("town_supervisor", [NAODIAN]),
             "other_supervisor": ("town_supervisor", ["410421100000"]), "county": ("county_officer", []),
             "admin": ("admin", []), "viewer": ("viewer", []), "mediator": ("mediator", [str(point)]),
             "other_mediator": ("mediator", [str(other_point)])}
    people = {name: make_user(f"{prefix}_{name}", role, scopes) for name, (role, scopes) in specs.items()}
    people["point"] = point
    return people
