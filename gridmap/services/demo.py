"""Load the synthetic demo county (geodata/baofeng/, built by gridmap.demo.generator)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pyogrio
from psycopg2.extras import execute_values
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.catalog import CATEGORY_BY_CODE
from gridmap.errors import ValidationError
from gridmap.services.accounts import audit, create_user
from gridmap.services.demo_patrol import load_demo_tracks
from gridmap.services.demo_registries import load_demo_registries

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = PROJECT_ROOT / "geodata" / "baofeng"

# Workflow stages in order, with the timestamp column of the demo file that reaches each.
STAGES = (("reported", "reported_at"), ("accepted", "accepted_at"), ("dispatched", "dispatched_at"),
          ("in_progress", "in_progress_at"), ("resolved", "resolved_at"), ("closed", "closed_at"),
          ("followed_up", "followed_up_at"))

DEMO_USERS = (
    # username, role, scopes, display name
    ("admin", "admin", [], "系统管理员"),
    ("county", "county_officer", [], "县委政法委"),
    ("leader", "viewer", [], "县领导（只读）"),
    ("naodian", "town_supervisor", ["410421102000"], "闹店镇综治中心"),
    ("fanying", "grid_worker", ["410421102204"], "范营村网格员"),
    ("naodian_police", "police", ["410421102000-Z1"], "闹店派出所民警"),
)

# Children first, so deleting in this order never trips a foreign key.
DEMO_TABLES = ("patrol_track_points", "patrol_tracks", "patrol_routes",
               "case_review_items", "case_reviews", "inspections", "places", "village_staff", "legal_activities",
               "incident_events", "incidents", "mediation_points", "patrol_zones", "police_stations",
               "grids", "villages", "towns", "counties")


def _read(directory: Path, name: str):
    path = directory / name
    if not path.exists():
        raise ValidationError(f"demo file missing: {path}; run `gridmap demo build` first", "path")
    return pyogrio.read_dataframe(path)


def _wkt(frame) -> list[str]:
    return [g.wkt for g in frame.geometry]


def load_demo(session: Session, directory: Path = DEMO_DIR, password: str = "gridmap-demo") -> dict[str, int]:
    """Replace the county's places and incidents with the demo's; idempotent.

    Runs in the caller's transaction: any failure leaves the database as it was.
    """
    county = _read(directory, "county.geojson")
    towns = _read(directory, "towns.geojson")
    villages = _read(directory, "villages.geojson")
    grids = _read(directory, "grids.geojson")
    stations = _read(directory, "stations.geojson")
    zones = _read(directory, "patrol_zones.geojson")
    points = _read(directory, "mediation_points.geojson")
    incidents = pd.read_csv(directory / "incidents.csv.gz", dtype={"client_id": str, "mediation_point": str},
                            keep_default_na=False)

    for table in DEMO_TABLES:
        session.execute(text(f"DELETE FROM {table}"))
    conn = session.connection().connection.dbapi_connection
    with conn.cursor() as cur:
        execute_values(cur, "INSERT INTO counties (code, name, geom) VALUES %s",
                       [(str(r.code), r.name, w) for r, w in zip(county.itertuples(), _wkt(county))],
                       template="(%s, %s, ST_Multi(ST_GeomFromText(%s, 4326)))")
        execute_values(cur, "INSERT INTO towns (code, name, geom) VALUES %s",
                       [(str(r.code), r.name, w) for r, w in zip(towns.itertuples(), _wkt(towns))],
                       template="(%s, %s, ST_Multi(ST_GeomFromText(%s, 4326)))")
        execute_values(cur, "INSERT INTO villages (code, name, full_name, town_code, geom) VALUES %s",
                       [(str(r.code), r.name, r.full_name, str(r.town_code), w)
                        for r, w in zip(villages.itertuples(), _wkt(villages))],
                       template="(%s, %s, %s, %s, ST_Multi(ST_GeomFromText(%s, 4326)))")
        execute_values(cur, "INSERT INTO grids (code, name, village_code, population, households, area_km2, geom)"
                            " VALUES %s",
                       [(str(r.code), r.name, str(r.village_code), int(r.population), int(r.households), w)
                        for r, w in zip(grids.itertuples(), _wkt(grids))],
                       template="(%s, %s, %s, %s, %s, 0, ST_Multi(ST_GeomFromText(%s, 4326)))")
        cur.execute("UPDATE grids SET area_km2 = ST_Area(geom::geography) / 1e6")
        execute_values(cur, "INSERT INTO police_stations (code, name, town_code, geom) VALUES %s",
                       [(r.code, r.name, str(r.town_code), w) for r, w in zip(stations.itertuples(), _wkt(stations))],
                       template="(%s, %s, %s, ST_GeomFromText(%s, 4326))")
        execute_values(cur, "INSERT INTO patrol_zones (code, name, station_code, geom) VALUES %s",
                       [(r.code, r.name, r.station_code, w) for r, w in zip(zones.itertuples(), _wkt(zones))],
                       template="(%s, %s, %s, ST_Multi(ST_GeomFromText(%s, 4326)))")
        execute_values(cur, "INSERT INTO mediation_points (name, kind, village_code, contact, mediators, "
                            "opening_hours, geom) VALUES %s",
                       [(r.name, r.kind, str(r.village_code), r.contact, int(r.mediators), r.opening_hours, w)
                        for r, w in zip(points.itertuples(), _wkt(points))],
                       template="(%s, %s, %s, %s, %s, %s, ST_GeomFromText(%s, 4326))")
        _load_incidents(cur, incidents)
    load_demo_registries(session, directory)
    load_demo_tracks(session, directory)
    users = _ensure_demo_users(session, password)
    audit(session, None, "demo.load", "county", "410421", {"incidents": len(incidents), "users_created": users})
    session.flush()
    return demo_counts(session)


def _none(value):
    return None if value in ("", None) or (isinstance(value, float) and pd.isna(value)) else value


def _load_incidents(cur, incidents: pd.DataFrame) -> None:
    cur.execute("SELECT name, id FROM mediation_points")
    point_ids = dict(cur.fetchall())
    deadline_days = {code: c.deadline_days for code, c in CATEGORY_BY_CODE.items()}
    rows = []
    for r in incidents.itertuples(index=False):
        accepted = _none(r.accepted_at)
        deadline = (pd.Timestamp(accepted) + pd.Timedelta(days=deadline_days[r.category])).isoformat() \
            if accepted else None
        closed = _none(r.closed_at) or _none(r.followed_up_at)
        mediation_point = point_ids.get(_none(r.mediation_point))
        outcome = None
        if mediation_point and _none(r.resolved_at):
            outcome = "agreement" if r.resolution_level == "village" else "transferred"
        rows.append((str(uuid.UUID(r.client_id)), r.category, r.subcategory, int(r.severity), r.legal_class,
                     str(r.enterprise_involved).lower() == "true", r.status, r.occurred_at, r.reported_at,
                     accepted, deadline, _none(r.resolved_at), closed, r.description,
                     _none(r.resolution_level), _none(r.satisfaction), mediation_point, outcome,
                     f"POINT({r.lon!r} {r.lat!r})"))
    ids = execute_values(
        cur,
        "INSERT INTO incidents (client_id, category, subcategory, severity, legal_class, enterprise_involved, "
        "status, occurred_at, reported_at, accepted_at, deadline_at, resolved_at, closed_at, description, "
        "resolution_level, satisfaction, mediation_point_id, mediation_outcome, geom) VALUES %s RETURNING id",
        rows, template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::smallint, %s, %s, "
                       "ST_GeomFromText(%s, 4326))",
        page_size=2000, fetch=True)
    incident_ids = [i for (i,) in ids]
    duplicates = [(incident_ids[int(float(d))], incident_ids[i])
                  for i, d in enumerate(incidents["duplicate_of_index"]) if _none(d) is not None]
    if duplicates:
        execute_values(cur, "UPDATE incidents SET duplicate_of = v.orig FROM (VALUES %s) AS v(orig, id) "
                            "WHERE incidents.id = v.id", duplicates)
    cur.execute("SELECT id FROM users WHERE username = 'admin'")
    events = []
    for incident_id, r in zip(incident_ids, incidents.itertuples(index=False)):
        previous = None
        for status, column in STAGES:
            at = _none(getattr(r, column))
            if at is None:
                break
            events.append((incident_id, previous, status, at, "演示数据"))
            previous = status
        if r.status in ("rejected", "duplicate"):
            events.append((incident_id, "reported", r.status, _none(r.accepted_at) or r.reported_at, "演示数据"))
    execute_values(cur, "INSERT INTO incident_events (incident_id, from_status, to_status, at, note) VALUES %s",
                   events, page_size=5000)


def _ensure_demo_users(session: Session, password: str) -> int:
    created = 0
    for username, role, scopes, display in DEMO_USERS:
        exists = session.execute(text("SELECT 1 FROM users WHERE username = :u"), {"u": username}).first()
        if not exists:
            create_user(session, username, password, role, scopes, display)
            created += 1
    return created


def demo_counts(session: Session) -> dict[str, int]:
    return {table: session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in reversed(DEMO_TABLES)}


def manifest(directory: Path = DEMO_DIR) -> dict:
    return json.loads((directory / "manifest.json").read_text())
