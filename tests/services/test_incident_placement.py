"""The database, not the client, decides an incident's grid, village and town."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

INSERT = """INSERT INTO incidents (category, severity, occurred_at, reported_at, geom, grid_code, village_code,
            town_code) VALUES ('DSP', 2, now(), now(), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :g, :v, :t)
            RETURNING id, grid_code, village_code, town_code"""


def grid_interior_point(session, village_code):
    return session.execute(text("SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
                                "FROM grids WHERE village_code = :v ORDER BY code LIMIT 1) s"),
                           {"v": village_code}).one()


def test_trigger_assigns_place_and_ignores_client_codes(db_session):
    code, lon, lat = grid_interior_point(db_session, "410421102204")
    row = db_session.execute(text(INSERT), {"lon": lon, "lat": lat, "g": "999999999999999",
                                            "v": "999999999999", "t": "999999999999"}).one()
    assert row.grid_code == code
    assert row.village_code == "410421102204"
    assert row.town_code == "410421102000"


def test_moving_a_point_moves_its_grid(db_session):
    code, lon, lat = grid_interior_point(db_session, "410421102204")
    row = db_session.execute(text(INSERT), {"lon": lon, "lat": lat, "g": None, "v": None, "t": None}).one()
    other, lon2, lat2 = grid_interior_point(db_session, "410421100003")
    db_session.execute(text("UPDATE incidents SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) WHERE id = :i"),
                       {"x": lon2, "y": lat2, "i": row.id})
    moved = db_session.execute(text("SELECT grid_code, town_code FROM incidents WHERE id = :i"), {"i": row.id}).one()
    assert moved == (other, "410421100000")


def test_point_in_no_grid_is_refused(db_session):
    with pytest.raises(DBAPIError) as info:
        with db_session.begin_nested():
            db_session.execute(text(INSERT), {"lon": 116.4, "lat": 39.9, "g": None, "v": None, "t": None})
    assert info.value.orig.pgcode == "GM001"
    assert "lies in no grid" in str(info.value.orig)


def test_audit_log_is_append_only(db_session):
    db_session.execute(text("INSERT INTO audit_log (action, entity) VALUES ('test', 'test')"))
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError) as info:
            with db_session.begin_nested():
                db_session.execute(text(statement))
        assert info.value.orig.pgcode == "GM002"
