"""The per-cell counts kept by triggers stay equal to a fresh count from incidents through
inserts, moves, changes, deletions, TRUNCATE and a reload of the demo county; the data version
moves only when what tiles show changes."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import text

from tests.tiles.helpers import cell_of, incidents, local_month

LEVELS = (12, 14, 16)


def fresh_counts(session):
    """Both tables recomputed from scratch in Python from every incident's lon/lat."""
    months, totals = Counter(), Counter()
    for r in incidents(session):
        fine = cell_of(r["lon"], r["lat"], 16)
        for level in LEVELS:
            cx, cy = fine[0] >> (16 - level), fine[1] >> (16 - level)
            key = (level, cx, cy, r["category"], r["status"], r["town_code"])
            totals[key] += 1
            months[(level, local_month(r["occurred_at"])) + key[1:]] += 1
    return months, totals


def kept_counts(session):
    months = Counter({tuple(r[:-1]): r[-1] for r in session.execute(text(
        "SELECT zoom, month, cx, cy, category, status, town_code, n FROM incident_cell_months"))})
    totals = Counter({tuple(r[:-1]): r[-1] for r in session.execute(text(
        "SELECT zoom, cx, cy, category, status, town_code, n FROM incident_cell_totals"))})
    return months, totals


def assert_counts_fresh(session):
    session.flush()
    kept_months, kept_totals = kept_counts(session)
    fresh_months, fresh_totals = fresh_counts(session)
    assert min(kept_totals.values(), default=1) > 0, "a cell that reached zero was kept"
    assert min(kept_months.values(), default=1) > 0, "a cell that reached zero was kept"
    assert kept_totals == fresh_totals
    assert kept_months == fresh_months


def version(session, layer="incidents") -> int:
    return session.execute(text("SELECT version FROM tile_versions WHERE layer = :l"), {"l": layer}).scalar_one()


def insert_random_incidents(session, n: int, seed: int, category: str = "SEC", status: str = "reported") -> list[int]:
    """n incidents at seeded random points inside random grids, in one INSERT statement."""
    return list(session.execute(text("""
        INSERT INTO incidents (category, severity, status, occurred_at, reported_at, geom)
        SELECT :category, 2, :status, timestamptz '2026-03-31 23:30+08' + (g.i || ' hours')::interval,
               now(), (ST_Dump(ST_GeneratePoints(gr.geom, 1, :seed + g.i))).geom
          FROM generate_series(1, :n) AS g(i)
          JOIN LATERAL (SELECT geom FROM grids ORDER BY md5(code || g.i::text) LIMIT 1) AS gr ON true
        RETURNING id"""), {"n": n, "seed": seed, "category": category, "status": status}).scalars())


def test_counts_after_the_demo_load_match_a_fresh_count(db_session):
    assert db_session.execute(text("SELECT count(*) FROM incidents")).scalar_one() > 1000
    assert_counts_fresh(db_session)


def test_inserts_single_and_bulk_keep_counts(db_session):
    before = version(db_session)
    insert_random_incidents(db_session, 200, seed=1)
    assert version(db_session) == before + 1
    for i in range(3):
        insert_random_incidents(db_session, 1, seed=100 + i, category="FIR", status="accepted")
    assert version(db_session) == before + 4
    assert_counts_fresh(db_session)


def test_moves_status_category_and_period_changes_keep_counts(db_session):
    ids = insert_random_incidents(db_session, 60, seed=7)
    # Moves: across the county (changing town), and a few metres (often the same cell).
    db_session.execute(text("""
        UPDATE incidents AS i SET geom = (SELECT ST_PointOnSurface(g.geom) FROM grids AS g
                                           ORDER BY md5(g.code || i.id::text) LIMIT 1)
         WHERE i.id = ANY(:ids)"""), {"ids": ids[:20]})
    db_session.execute(text("UPDATE incidents SET geom = ST_Translate(geom, 0.0004, 0.0003) WHERE id = ANY(:ids)"),
                       {"ids": ids[20:30]})
    moved_towns = db_session.execute(text(
        "SELECT count(DISTINCT town_code) FROM incidents WHERE id = ANY(:ids)"), {"ids": ids[:20]}).scalar_one()
    assert moved_towns > 1
    db_session.execute(text("UPDATE incidents SET status = 'accepted' WHERE id = ANY(:ids)"), {"ids": ids[30:40]})
    db_session.execute(text("UPDATE incidents SET category = 'PET' WHERE id = ANY(:ids)"), {"ids": ids[40:50]})
    # Across a month boundary (the inserts straddle 31 March / 1 April, China time).
    db_session.execute(text("UPDATE incidents SET occurred_at = occurred_at - interval '40 days' "
                            "WHERE id = ANY(:ids)"), {"ids": ids[50:]})
    # Existing demo incidents change too, in one statement with several kinds of change.
    db_session.execute(text("""
        UPDATE incidents SET status = CASE WHEN id % 2 = 0 THEN 'closed' ELSE status END,
                             geom = CASE WHEN id % 3 = 0 THEN ST_Translate(geom, -0.002, 0.001) ELSE geom END
         WHERE id IN (SELECT id FROM incidents ORDER BY id LIMIT 300)"""))
    assert_counts_fresh(db_session)


def test_deletions_remove_emptied_cells(db_session):
    ids = insert_random_incidents(db_session, 40, seed=11, category="HAZ", status="dispatched")
    db_session.execute(text("DELETE FROM incidents WHERE id = ANY(:ids)"), {"ids": ids[:25]})
    # Demo incidents too; deleting one that others duplicate sets their duplicate_of to NULL,
    # an UPDATE the triggers see and must ignore.
    db_session.execute(text("DELETE FROM incidents WHERE id IN (SELECT id FROM incidents ORDER BY id DESC LIMIT 500) "
                            "OR id IN (SELECT duplicate_of FROM incidents WHERE duplicate_of IS NOT NULL LIMIT 5)"))
    assert_counts_fresh(db_session)


def test_update_that_changes_nothing_on_the_map_keeps_the_version(db_session):
    before = version(db_session)
    db_session.execute(text("UPDATE incidents SET description = description || ' ' WHERE id IN "
                            "(SELECT id FROM incidents ORDER BY id LIMIT 50)"))
    db_session.execute(text("DELETE FROM incidents WHERE false"))
    assert version(db_session) == before
    db_session.execute(text("UPDATE incidents SET severity = 4 WHERE id = (SELECT min(id) FROM incidents "
                            "WHERE severity <> 4)"))
    assert version(db_session) == before + 1
    assert_counts_fresh(db_session)


def test_truncate_empties_the_counts(db_session):
    before = version(db_session)
    db_session.execute(text("TRUNCATE incidents CASCADE"))
    assert db_session.execute(text("SELECT count(*) FROM incident_cell_totals")).scalar_one() == 0
    assert db_session.execute(text("SELECT count(*) FROM incident_cell_months")).scalar_one() == 0
    assert version(db_session) > before
    insert_random_incidents(db_session, 30, seed=5)
    assert_counts_fresh(db_session)


def test_reloading_the_demo_county_keeps_counts_and_bumps_versions(db_session):
    from gridmap.services.demo import load_demo
    from tests.conftest import PASSWORD

    insert_random_incidents(db_session, 25, seed=3)   # gone after the reload
    incidents_before, places_before = version(db_session), version(db_session, "places")
    load_demo(db_session, password=PASSWORD)
    assert version(db_session) > incidents_before
    assert version(db_session, "places") > places_before
    assert_counts_fresh(db_session)


@pytest.mark.parametrize("statement", [
    "UPDATE grids SET name = name WHERE code = (SELECT min(code) FROM grids)",
    "UPDATE towns SET name = name WHERE false",
    "UPDATE patrol_zones SET name = name WHERE code = (SELECT min(code) FROM patrol_zones)",
])
def test_boundary_changes_bump_the_places_version(db_session, statement):
    before = version(db_session, "places")
    db_session.execute(text(statement))
    assert version(db_session, "places") == before + 1


def test_rebuilding_the_counts_in_one_pass_matches_a_fresh_count(db_session):
    insert_random_incidents(db_session, 300, seed=41)
    db_session.execute(text("UPDATE incident_cell_totals SET n = n + 5"))  # counts gone wrong
    db_session.execute(text("DELETE FROM incident_cell_months WHERE zoom = 14"))
    before = version(db_session)

    db_session.execute(text("SELECT gridmap_rebuild_cell_counts()"))

    assert_counts_fresh(db_session)
    assert version(db_session) == before + 1
