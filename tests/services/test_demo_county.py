"""The demo county as loaded into PostGIS: real codes, tiling grids, the 摆理堂, idempotent load."""
import pytest
from sqlalchemy import text

from gridmap.services.demo import demo_counts, load_demo
from tests.conftest import PASSWORD


def scalar(session, sql, **params):
    return session.execute(text(sql), params).scalar_one()


def test_official_towns_and_villages(db_session):
    assert scalar(db_session, "SELECT count(*) FROM towns") == 13
    assert scalar(db_session, "SELECT count(*) FROM villages") == 323
    assert scalar(db_session, "SELECT name FROM towns WHERE code = '410421102000'") == "闹店镇"
    assert scalar(db_session, "SELECT name FROM villages WHERE code = '410421102204'") == "范营村"
    assert scalar(db_session, "SELECT count(*) FROM villages v LEFT JOIN towns t ON t.code = v.town_code "
                              "WHERE t.code IS NULL OR left(v.code, 9) <> left(t.code, 9)") == 0


def test_grid_codes_and_counts(db_session):
    assert scalar(db_session, "SELECT count(*) FROM grids WHERE code !~ '^[0-9]{15}$' "
                              "OR left(code, 12) <> village_code") == 0
    per_village = db_session.execute(text(
        "SELECT min(n), max(n) FROM (SELECT count(*) n FROM grids GROUP BY village_code) s")).one()
    assert per_village == (1, 4) or (per_village[0] >= 1 and per_village[1] <= 4)
    assert scalar(db_session, "SELECT count(DISTINCT village_code) FROM grids") == 323


def test_grids_tile_each_village_within_one_square_metre(db_session):
    # Gap: village area not covered by its grids; overlap: area where two grids of a village meet.
    rows = db_session.execute(text("""
        WITH m AS (SELECT v.code,
                          ST_Area(ST_Transform(v.geom, 4547)) AS village_area,
                          ST_Area(ST_Transform(ST_Union(g.geom), 4547)) AS union_area,
                          sum(ST_Area(ST_Transform(g.geom, 4547))) AS sum_area
                     FROM villages v JOIN grids g ON g.village_code = v.code GROUP BY v.code, v.geom)
        SELECT code, village_area - union_area AS gap, sum_area - union_area AS overlap FROM m
         WHERE abs(village_area - union_area) > 1 OR sum_area - union_area > 1""")).all()
    assert rows == []


def test_fanying_has_a_bailitang(db_session):
    assert scalar(db_session, "SELECT count(*) FROM mediation_points WHERE village_code = '410421102204' "
                              "AND kind = 'bailitang'") == 1


def test_demo_incidents_are_placed_and_plentiful(db_session):
    assert scalar(db_session, "SELECT count(*) FROM incidents") >= 20_000
    assert scalar(db_session, "SELECT count(*) FROM incidents i JOIN grids g ON g.code = i.grid_code "
                              "WHERE NOT ST_Intersects(g.geom, i.geom)") == 0
    statuses = {r[0] for r in db_session.execute(text("SELECT DISTINCT status FROM incidents"))}
    assert statuses == {"reported", "accepted", "rejected", "duplicate", "dispatched", "in_progress",
                        "resolved", "closed", "followed_up"}
    assert scalar(db_session, "SELECT count(*) FROM incidents WHERE status IN "
                              "('accepted','dispatched','in_progress') AND deadline_at < now()") > 0


def test_loading_twice_leaves_the_same_counts(db_session):
    before = demo_counts(db_session)
    after = load_demo(db_session, password=PASSWORD)
    assert after == before
    assert after["towns"] == 13 and after["villages"] == 323


def test_missing_demo_directory_is_a_clear_error(db_session, tmp_path):
    from gridmap.errors import ValidationError

    with pytest.raises(ValidationError, match="demo file missing"):
        load_demo(db_session, tmp_path)
