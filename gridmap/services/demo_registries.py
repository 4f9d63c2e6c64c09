"""Load the demo registries (geodata/baofeng/places.geojson, inspections.csv, staff.csv,
activities.geojson, built by gridmap.demo.registries) -- called by services.demo.load_demo."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyogrio
from psycopg2.extras import execute_values
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import ValidationError

# Children first, so deleting in this order never trips a foreign key.
REGISTRY_TABLES = ("case_review_items", "case_reviews", "inspections", "places", "village_staff", "legal_activities")


def _require(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.exists():
        raise ValidationError(f"demo file missing: {path}; run `python -m gridmap.demo.registries` first", "path")
    return path


def _none(value):
    return None if value in ("", None) or (isinstance(value, float) and pd.isna(value)) else value


def load_demo_registries(session: Session, directory: Path) -> dict[str, int]:
    """Replace the registries' rows with the demo's; idempotent, in the caller's transaction."""
    directory = Path(directory)
    places = pyogrio.read_dataframe(_require(directory, "places.geojson"))
    activities = pyogrio.read_dataframe(_require(directory, "activities.geojson"))
    staff = pd.read_csv(_require(directory, "staff.csv"), dtype=str, keep_default_na=False)
    inspections = pd.read_csv(_require(directory, "inspections.csv"), dtype=str, keep_default_na=False)
    for table in REGISTRY_TABLES:
        session.execute(text(f"DELETE FROM {table}"))
    conn = session.connection().connection.dbapi_connection
    with conn.cursor() as cur:
        rows = execute_values(
            cur, "INSERT INTO places (ref, kind, subkind, name, address, responsible_role, inspection_interval_days, "
                 "registered_on, geom) VALUES %s RETURNING ref, id",
            [(r.ref, r.kind, r.subkind, r.name, r.address, r.responsible_role, int(r.inspection_interval_days),
              r.registered_on, f"POINT({g.x!r} {g.y!r})") for r, g in zip(places.itertuples(), places.geometry)],
            template="(%s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromText(%s, 4326))", page_size=2000, fetch=True)
        place_ids = dict(rows)
        execute_values(
            cur, "INSERT INTO inspections (place_id, inspected_on, inspector_name, checklist, passed, hazard_found, "
                 "hazard_description, note) VALUES %s",
            [(place_ids[r.place_ref], r.inspected_on, r.inspector_name, r.checklist,
              all(json.loads(r.checklist).values()) and r.hazard_found != "true", r.hazard_found == "true",
              r.hazard_description, r.note) for r in inspections.itertuples()],
            template="(%s, %s, %s, %s::jsonb, %s, %s, %s, %s)", page_size=5000)
        execute_values(
            cur, "INSERT INTO village_staff (role, name, phone, organisation, village_code, grid_code, since) VALUES %s",
            [(r.role, r.name, _none(r.phone), r.organisation, r.village_code, _none(r.grid_code), _none(r.since))
             for r in staff.itertuples()], page_size=5000)
        execute_values(
            cur, "INSERT INTO legal_activities (held_on, kind, title, audience, organiser, geom) VALUES %s",
            [(r.held_on, r.kind, r.title, int(r.audience), r.organiser, f"POINT({g.x!r} {g.y!r})")
             for r, g in zip(activities.itertuples(), activities.geometry)],
            template="(%s, %s, %s, %s, %s, ST_GeomFromText(%s, 4326))", page_size=2000)
    return {"places": len(places), "inspections": len(inspections), "village_staff": len(staff),
            "legal_activities": len(activities)}
