"""What a request costs before its own work: the login cache (users and tokens remembered for a
few seconds, refused again within them once disabled or revoked), a token's last_used_at written
at most once a minute, and a pool that tests only connections that sat idle."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from gridmap.db import create_gridmap_engine
from tests.conftest import PASSWORD, auth, terminate_backend
from tests.incident_helpers import cheap_password_hashing
from tests.tiles.helpers import tile_of


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


class Statements:
    """The SQL a block of code sends over ``connection`` (savepoints of the test transaction left out)."""

    def __init__(self, connection):
        self.connection = connection
        self.sent: list[str] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO")):
            self.sent.append(" ".join(statement.split()))

    def __enter__(self):
        event.listen(self.connection, "before_cursor_execute", self._record)
        return self.sent

    def __exit__(self, *exc):
        event.remove(self.connection, "before_cursor_execute", self._record)


def tile_url(z=12, lon=113.06, lat=33.87):
    x, y = tile_of(lon, lat, z)
    return f"/tiles/incidents/{z}/{x}/{y}.pbf"


def test_a_cookie_sessions_user_is_read_once_per_burst(app, client, make_user, connection):
    make_user("burst_officer", "county_officer")
    assert client.post("/login", data={"username": "burst_officer", "password": PASSWORD}).status_code == 302
    assert client.get(tile_url()).status_code == 200
    with Statements(connection) as sent:
        for z in (10, 11, 12):
            assert client.get(tile_url(z)).status_code == 200
    assert sent, "the tiles ran no SQL"
    assert not [s for s in sent if "FROM users" in s or s == "SELECT 1"], sent


def test_a_disabled_account_is_refused_once_the_cache_expires(app, client, make_user, db_session):
    app.config["LOGIN_CACHE_SECONDS"] = 0.5
    user, token = make_user("soon_gone", "county_officer")
    assert client.post("/login", data={"username": "soon_gone", "password": PASSWORD}).status_code == 302
    assert client.get(tile_url()).status_code == 200
    assert client.get("/api/me", headers=auth(token)).status_code == 200
    db_session.execute(text("UPDATE users SET active = false WHERE id = :i"), {"i": user.id})
    db_session.flush()
    time.sleep(0.6)
    assert client.get(tile_url()).status_code == 401
    assert client.get("/api/me", headers=auth(token)).status_code == 401


def test_a_revoked_token_is_refused_once_the_cache_expires(app, client, make_user, db_session):
    app.config["LOGIN_CACHE_SECONDS"] = 0.5
    user, token = make_user("revoked_soon", "county_officer")
    assert client.get("/api/me", headers=auth(token)).get_json()["username"] == "revoked_soon"
    db_session.execute(text("UPDATE api_tokens SET revoked = true WHERE user_id = :i"), {"i": user.id})
    db_session.flush()
    time.sleep(0.6)
    assert client.get("/api/me", headers=auth(token)).status_code == 401
    assert client.get("/api/me", headers=auth("gm_not-a-token")).status_code == 401


def test_a_tokens_last_use_is_written_at_most_once_a_minute(app, client, make_user, db_session):
    app.config["LOGIN_CACHE_SECONDS"] = 0   # every request looks the token up
    user, token = make_user("token_user", "county_officer")

    def last_used():
        return db_session.execute(text("SELECT last_used_at FROM api_tokens WHERE user_id = :i"),
                                  {"i": user.id}).scalar_one()

    assert last_used() is None
    assert client.get("/api/me", headers=auth(token)).status_code == 200
    first = last_used()
    assert first is not None
    for _ in range(3):
        assert client.get("/api/me", headers=auth(token)).status_code == 200
    assert last_used() == first
    db_session.execute(text("UPDATE api_tokens SET last_used_at = last_used_at - interval '61 seconds' "
                            "WHERE user_id = :i"), {"i": user.id})
    db_session.flush()
    assert client.get("/api/me", headers=auth(token)).status_code == 200
    assert last_used() > first


def test_the_pool_replaces_a_dropped_connection_after_idling(database, engine):
    """No ping for a connection in steady use; one that sat idle is tested and replaced if dead."""
    pooled = create_gridmap_engine(database, ping_after_idle_s=0.2, pool_size=1)
    try:
        with pooled.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        terminate_backend(engine, pid)
        time.sleep(0.3)
        with pooled.connect() as conn:   # idle long enough: tested, found dead, replaced
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        pooled.dispose()


def test_a_connection_in_steady_use_is_not_pinged(database, engine):
    pooled = create_gridmap_engine(database, ping_after_idle_s=60, pool_size=1)
    try:
        with pooled.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        terminate_backend(engine, pid)
        time.sleep(0.1)
        # Not tested at checkout (it was idle a moment only), so the dead connection fails once...
        with pytest.raises(OperationalError):
            with pooled.connect() as conn:
                conn.execute(text("SELECT 1"))
        # ... and the pool, invalidated by that error, opens a new one.
        with pooled.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        pooled.dispose()


def test_a_prepared_statement_survives_a_failed_first_run(database, engine):
    """The PREPARE stays on the server when the first EXECUTE fails; the next run must reuse it."""
    from sqlalchemy.exc import DataError

    from gridmap.db import PreparedStatement

    divide = PreparedStatement("gridmap_test_divide", "SELECT CAST(:a AS integer) / CAST(:b AS integer) AS q",
                               {"a": "integer", "b": "integer"}, generic_plan=True)
    with engine.connect() as conn:
        with pytest.raises(DataError):
            divide.execute(conn, {"a": 10, "b": 0})
        conn.rollback()
        assert divide.execute(conn, {"a": 10, "b": 5}).scalar_one() == 2
        conn.rollback()
        assert divide.execute(conn, {"a": 9, "b": 3}).scalar_one() == 3
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements WHERE name = %s",
                                    (divide.name,)).scalar_one() == 1
        conn.exec_driver_sql(f"DEALLOCATE {divide.name}")
        conn.connection.info["gridmap_prepared"].discard(divide.name)
