"""Shared by the risk tests: a quiet period before the demo data, and incidents seeded in known grids."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text

BEIJING = timezone(timedelta(hours=8))
# The demo incidents start in November 2025: March 2024 and the month before it hold only what a test seeds.
START = datetime(2024, 3, 1, tzinfo=BEIJING)
END = datetime(2024, 4, 1, tzinfo=BEIJING)
PERIOD_ARGS = {"from": "2024-03-01", "to": "2024-04-01"}

FANYING = "410421102204"      # 范营村, 闹店镇
NAODIAN = "410421102000"      # 闹店镇
CHENGGUAN = "410421100000"    # 城关镇


def at(day: int, month: int = 3, hour: int = 12) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=BEIJING)


def villages_of(session, town: str, n: int) -> list[str]:
    return list(session.execute(text("SELECT code FROM villages WHERE town_code = :t ORDER BY code LIMIT :n"),
                                {"t": town, "n": n}).scalars())


def grid_point(session, village: str, index: int = 0) -> tuple[str, float, float]:
    """(grid code, lon, lat) of a point well inside the village's ``index``-th grid."""
    return tuple(session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids "
        "WHERE village_code = :v ORDER BY code OFFSET :i LIMIT 1) s"), {"v": village, "i": index}).one())


def add_incident(session, village: str, *, category: str, occurred: datetime, grid_index: int = 0,
                 subcategory: str | None = None, severity: int = 1, legal_class: str = "none",
                 status: str = "closed", enterprise: bool = False, resolved: datetime | None = None,
                 level: str | None = None, deadline: datetime | None = None, mediation_point: int | None = None,
                 outcome: str | None = None, phone: str | None = None, parties: str | None = None) -> int:
    """Insert one incident at a point of the village's grid (or of the grid, given a 15-digit code);
    the database assigns grid, village and town."""
    if len(village) == 15:
        lon, lat = session.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
                                        "WHERE code = :g) s"), {"g": village}).one()
    else:
        _, lon, lat = grid_point(session, village, grid_index)
    return session.execute(text(
        "INSERT INTO incidents (category, subcategory, severity, legal_class, enterprise_involved, status, "
        "occurred_at, reported_at, resolved_at, resolution_level, deadline_at, mediation_point_id, "
        "mediation_outcome, contact_phone, parties, description, geom) VALUES (:category, :subcategory, "
        ":severity, :legal, :enterprise, :status, :occurred, :occurred, :resolved, :level, :deadline, :point, "
        ":outcome, :phone, :parties, '测试', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) RETURNING id"),
        {"category": category, "subcategory": subcategory, "severity": severity, "legal": legal_class,
         "enterprise": enterprise, "status": status, "occurred": occurred, "resolved": resolved, "level": level,
         "deadline": deadline, "point": mediation_point, "outcome": outcome, "phone": phone, "parties": parties,
         "lon": lon, "lat": lat}).scalar_one()


def add_enterprise_with_incident(session, village: str, incident_id: int, name: str = "测试机械厂") -> int:
    """An enterprise on the registry whose inspection opened ``incident_id``: the incident-unit link."""
    _, lon, lat = grid_point(session, village, 0)
    place = session.execute(text(
        "INSERT INTO places (kind, subkind, name, inspection_interval_days, registered_on, geom) VALUES "
        "('enterprise', 'industrial', :name, 180, '2020-01-01', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
        "RETURNING id"), {"name": name, "lon": lon, "lat": lat}).scalar_one()
    session.execute(text(
        "INSERT INTO inspections (place_id, inspected_on, passed, hazard_found, hazard_description, incident_id) "
        "VALUES (:p, '2024-03-02', false, true, '测试隐患', :i)"), {"p": place, "i": incident_id})
    return place


def mediation_point(session, index: int = 0) -> int:
    return session.execute(text("SELECT id FROM mediation_points ORDER BY id OFFSET :i LIMIT 1"),
                           {"i": index}).scalar_one()
