"""Reporting incidents: validation, scope, idempotent client ids (also under concurrency),
GCJ-02 input, possible duplicates, listing filters and exports scoped to the user."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.analysis.gcj02 import wgs84_to_gcj02
from gridmap.models import Incident
from gridmap.services import incidents
from gridmap.errors import Conflict, Forbidden, ValidationError
from tests.conftest import terminate_backend
from tests.incident_helpers import (FANYING, NAODIAN, OTHER_TOWN_VILLAGE, cheap_password_hashing,
                                    interior_point, other_village_in_town, payload, row_counts,
                                    village_with_two_grids)

SETTINGS = incidents.IncidentSettings()


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def worker(make_user):
    return make_user("svc_worker", "grid_worker", [FANYING])[0]


@pytest.fixture
def supervisor(make_user):
    return make_user("svc_supervisor", "town_supervisor", [NAODIAN])[0]


@pytest.fixture
def here(db_session):
    return interior_point(db_session, FANYING)


def test_report_assigns_place_and_records_history_and_audit(db_session, worker, here):
    grid, lon, lat = here
    before = row_counts(db_session)
    result = incidents.create_incident(db_session, worker, payload(lon, lat), SETTINGS)
    assert result.created
    incident = result.incident
    assert (incident.grid_code, incident.village_code, incident.town_code) == (grid, FANYING, NAODIAN)
    assert incident.status == "reported" and incident.reporter_id == worker.id
    assert row_counts(db_session) == (before[0] + 1, before[1] + 1, before[2] + 1)
    event = db_session.execute(text("SELECT from_status, to_status, actor_id FROM incident_events "
                                    "WHERE incident_id = :i"), {"i": incident.id}).one()
    assert event == (None, "reported", worker.id)
    action = db_session.execute(text("SELECT action FROM audit_log WHERE entity = 'incident' AND entity_id = :i"),
                                {"i": str(incident.id)}).scalar_one()
    assert action == "incident.create"


def test_same_client_id_returns_the_first_incident(db_session, worker, here):
    _, lon, lat = here
    body = payload(lon, lat)
    first = incidents.create_incident(db_session, worker, body, SETTINGS)
    counts = row_counts(db_session)
    again = incidents.create_incident(db_session, worker, dict(body, description="changed on retry"), SETTINGS)
    assert not again.created
    assert again.incident.id == first.incident.id
    assert again.incident.description == body["description"]
    assert row_counts(db_session) == counts


def test_client_id_of_someone_elses_report_is_a_conflict(db_session, worker, make_user, here):
    _, lon, lat = here
    body = payload(lon, lat)
    incidents.create_incident(db_session, worker, body, SETTINGS)
    other = make_user("svc_worker2", "grid_worker", [FANYING])[0]
    with pytest.raises(Conflict) as info:
        incidents.create_incident(db_session, other, body, SETTINGS)
    assert info.value.field == "client_id"


def test_concurrent_copies_of_one_pin_make_one_incident(engine, database):
    """Ten sessions commit the same client id at once: ON CONFLICT leaves exactly one row."""
    client_id = str(uuid.uuid4())
    with Session(engine) as setup:
        worker = setup.execute(text("SELECT id FROM users WHERE username = 'fanying'")).scalar_one()
        _, lon, lat = interior_point(setup, FANYING)
    outcomes, errors = [], []
    barrier = threading.Barrier(10)

    def report():
        try:
            with Session(engine) as session:
                from gridmap.models import User
                user = session.get(User, worker)
                barrier.wait()
                result = incidents.create_incident(session, user, payload(lon, lat, client_id=client_id), SETTINGS)
                session.commit()
                outcomes.append((result.created, result.incident.id))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=report) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert sum(created for created, _ in outcomes) == 1
        assert len({incident_id for _, incident_id in outcomes}) == 1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM incidents WHERE client_id = :c"),
                                {"c": client_id}).scalar_one() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM incidents WHERE client_id = :c"), {"c": client_id})


def test_gcj02_input_is_stored_as_wgs84(db_session, worker, here):
    _, lon, lat = here
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    result = incidents.create_incident(db_session, worker, payload(gcj_lon, gcj_lat, crs="gcj02"), SETTINGS)
    stored = db_session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM incidents WHERE id = :i"),
                                {"i": result.incident.id}).one()
    assert stored[0] == pytest.approx(lon, abs=1e-7)
    assert stored[1] == pytest.approx(lat, abs=1e-7)


@pytest.mark.parametrize("override, field, error", [
    ({"category": None}, "category", ValidationError),
    ({"category": "XXX"}, "category", ValidationError),
    ({"subcategory": "theft"}, "subcategory", ValidationError),   # a SEC subcategory under DSP
    ({"severity": 0}, "severity", ValidationError),
    ({"severity": 5}, "severity", ValidationError),
    ({"severity": "2"}, "severity", ValidationError),
    ({"severity": True}, "severity", ValidationError),
    ({"lon": "113.1"}, "lon", ValidationError),
    ({"lat": None}, "lat", ValidationError),
    ({"lon": float("nan")}, "lon", ValidationError),
    ({"lon": 116.4, "lat": 39.9}, "lon", ValidationError),        # Beijing: outside the county
    ({"occurred_at": "2999-01-01T00:00:00+08:00"}, "occurred_at", ValidationError),
    ({"occurred_at": "yesterday"}, "occurred_at", ValidationError),
    ({"description": "长" * 2001}, "description", ValidationError),
    ({"description": 42}, "description", ValidationError),
    ({"client_id": "not-a-uuid"}, "client_id", ValidationError),
    ({"crs": "bd09"}, "crs", ValidationError),
    ({"enterprise_involved": "yes"}, "enterprise_involved", ValidationError),
    ({"contact_phone": "1" * 41}, "contact_phone", ValidationError),
])
def test_bad_input_names_the_field_and_writes_nothing(db_session, worker, here, override, field, error):
    _, lon, lat = here
    before = row_counts(db_session)
    body = payload(lon, lat)
    body.update(override)
    with pytest.raises(error) as info:
        incidents.create_incident(db_session, worker, body, SETTINGS)
    assert info.value.field == field
    assert row_counts(db_session) == before


def test_out_of_scope_pin_is_refused(db_session, worker):
    _, lon, lat = interior_point(db_session, OTHER_TOWN_VILLAGE)
    before = row_counts(db_session)
    with pytest.raises(Forbidden) as info:
        incidents.create_incident(db_session, worker, payload(lon, lat), SETTINGS)
    assert info.value.field == "lon"
    assert "辖区" in info.value.message
    assert row_counts(db_session) == before


def test_worker_with_a_grid_scope_may_pin_only_in_that_grid(db_session, make_user):
    village = village_with_two_grids(db_session)
    grid, lon, lat = interior_point(db_session, village, 0)
    other_grid, lon2, lat2 = interior_point(db_session, village, 1)
    worker = make_user("svc_gridonly", "grid_worker", [grid])[0]
    assert incidents.create_incident(db_session, worker, payload(lon, lat), SETTINGS).created
    with pytest.raises(Forbidden):
        incidents.create_incident(db_session, worker, payload(lon2, lat2), SETTINGS)


def test_town_supervisor_pins_anywhere_in_the_town_only(db_session, supervisor):
    neighbour = other_village_in_town(db_session, NAODIAN, FANYING)
    _, lon, lat = interior_point(db_session, neighbour)
    assert incidents.create_incident(db_session, supervisor, payload(lon, lat), SETTINGS).created
    _, lon, lat = interior_point(db_session, OTHER_TOWN_VILLAGE)
    with pytest.raises(Forbidden):
        incidents.create_incident(db_session, supervisor, payload(lon, lat), SETTINGS)


@pytest.mark.parametrize("role, scopes", [("viewer", []), ("mediator", ["1"])])
def test_roles_that_do_not_report(db_session, make_user, here, role, scopes):
    user = make_user(f"svc_{role}", role, scopes)[0]
    with pytest.raises(Forbidden):
        incidents.create_incident(db_session, user, payload(here[1], here[2]), SETTINGS)


def test_describe_location(db_session, worker, here):
    grid, lon, lat = here
    inside = incidents.describe_location(db_session, worker, str(lon), str(lat))
    assert inside["in_scope"] and inside["place"]["grid"]["code"] == grid
    assert "范营" in inside["place"]["village"]["name"]
    _, lon2, lat2 = interior_point(db_session, OTHER_TOWN_VILLAGE)
    outside = incidents.describe_location(db_session, worker, lon2, lat2)
    assert not outside["in_scope"] and "辖区" in outside["message"]
    far = incidents.describe_location(db_session, worker, 116.4, 39.9)
    assert far["place"] is None and not far["inside_county"]


def _metres_east(lon, lat, metres):
    import math
    return lon + metres / (111_320 * math.cos(math.radians(lat))), lat


def test_possible_duplicates_by_category_distance_time_and_status(db_session, worker, here):
    _, lon, lat = here
    now = datetime.now(timezone.utc)
    first = incidents.create_incident(db_session, worker, payload(lon, lat, occurred_at=(now - timedelta(hours=5))
                                                                   .isoformat()), SETTINGS).incident
    near_lon, near_lat = _metres_east(lon, lat, 60)
    second = incidents.create_incident(db_session, worker, payload(near_lon, near_lat), SETTINGS)
    assert [d["id"] for d in second.duplicates][:1] == [first.id]
    assert 50 < second.duplicates[0]["distance_m"] < 70

    def candidates(category="DSP", metres=60, hours=0):
        x, y = _metres_east(lon, lat, metres)
        found = incidents.possible_duplicates(db_session, worker, category, x, y, now - timedelta(hours=hours),
                                              SETTINGS, exclude_id=second.incident.id)
        return {d["id"] for d in found}

    assert first.id in candidates()
    assert first.id not in candidates(category="SEC")
    assert first.id not in candidates(metres=400)
    assert first.id not in candidates(hours=24 * 5)
    narrow = incidents.IncidentSettings(duplicate_distance_m=30)
    assert first.id not in {d["id"] for d in incidents.possible_duplicates(
        db_session, worker, "DSP", near_lon, near_lat, now, narrow, exclude_id=second.incident.id)}
    db_session.execute(text("UPDATE incidents SET status = 'closed' WHERE id = :i"), {"i": first.id})
    assert first.id not in candidates()


def test_settings_from_config():
    settings = incidents.IncidentSettings.from_config({"METRIC_CRS": "EPSG:32649", "DUPLICATE_DISTANCE_M": "150",
                                                       "DUPLICATE_WINDOW_HOURS": 24, "API_PAGE_SIZE": 100})
    assert (settings.metric_srid, settings.duplicate_distance_m, settings.duplicate_window_hours,
            settings.page_size) == (32649, 150.0, 24.0, 100)
    with pytest.raises(ValueError):
        incidents.IncidentSettings.from_config({"METRIC_CRS": "+proj=utm"})


# --- listing ------------------------------------------------------------------------------------

def _ids(collection):
    return [f["id"] for f in collection["features"]]


def test_listing_is_scoped_to_the_user(db_session, worker, supervisor, make_user):
    mine = incidents.list_incidents(db_session, worker, incidents.IncidentFilters(), page_size=5000,
                                    settings=SETTINGS)
    assert mine["numberMatched"] > 0
    assert {f["properties"]["village_code"] for f in mine["features"]} == {FANYING}
    town = incidents.list_incidents(db_session, supervisor, incidents.IncidentFilters(), page_size=1)
    assert town["numberMatched"] > mine["numberMatched"]
    assert {f["properties"]["town_code"] for f in incidents.list_incidents(
        db_session, supervisor, incidents.IncidentFilters(), page_size=5000)["features"]} == {NAODIAN}
    outside = db_session.execute(text("SELECT count(*) FROM incidents WHERE town_code <> :t"),
                                 {"t": NAODIAN}).scalar_one()
    county = incidents.list_incidents(db_session, make_user("svc_county", "county_officer")[0],
                                      incidents.IncidentFilters(), page_size=1)
    assert county["numberMatched"] == town["numberMatched"] + outside


def test_grid_worker_also_sees_what_they_reported_elsewhere(db_session, make_user):
    village = village_with_two_grids(db_session)
    grid, lon, lat = interior_point(db_session, village, 0)
    worker = make_user("svc_moved", "grid_worker", [grid])[0]
    created = incidents.create_incident(db_session, worker, payload(lon, lat), SETTINGS).incident
    worker.scopes = [interior_point(db_session, village, 1)[0]]
    listed = incidents.list_incidents(db_session, worker, incidents.IncidentFilters(mine=True))
    assert _ids(listed) == [created.id]


def test_filters(db_session, supervisor, worker, here):
    _, lon, lat = here
    created = incidents.create_incident(db_session, worker, payload(lon, lat, category="FIR", subcategory="ebike"),
                                        SETTINGS).incident

    def matched(**args):
        filters = incidents.parse_filters(db_session, args)
        return incidents.list_incidents(db_session, supervisor, filters, page_size=5000)

    everything = matched()["numberMatched"]
    fire = matched(category="FIR")
    assert created.id in _ids(fire) and all(f["properties"]["category"] == "FIR" for f in fire["features"])
    assert matched(category="FIR,SEC")["numberMatched"] > fire["numberMatched"]
    reported = matched(status="reported")
    assert all(f["properties"]["status"] == "reported" for f in reported["features"])
    open_ = matched(status="open")
    assert all(f["properties"]["status"] in ("reported", "accepted", "dispatched", "in_progress", "resolved")
               for f in open_["features"])
    assert matched(village=FANYING)["numberMatched"] < everything
    assert {f["properties"]["grid_code"] for f in matched(grid=created.grid_code)["features"]} == {created.grid_code}
    box = matched(bbox=f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}")
    assert created.id in _ids(box) and box["numberMatched"] < everything
    # The Beijing day it occurred on (an hour ago: the day before "today" just after Beijing midnight).
    day = created.occurred_at.astimezone(incidents.CHINA_TZ).date()
    recent = matched(**{"from": day.isoformat()})
    assert created.id in _ids(recent)
    old = matched(to="2026-01-31")
    assert created.id not in _ids(old) and old["numberMatched"] > 0
    assert all(datetime.fromisoformat(f["properties"]["occurred_at"]) < datetime(2026, 2, 1, tzinfo=incidents.CHINA_TZ)
               for f in old["features"])
    overdue = matched(overdue="1")
    assert overdue["numberMatched"] > 0 and all(f["properties"]["overdue"] for f in overdue["features"])
    assert matched(overdue="0")["numberMatched"] + overdue["numberMatched"] == everything


def test_paging(db_session, supervisor):
    filters = incidents.IncidentFilters(sort="deadline")
    first = incidents.list_incidents(db_session, supervisor, filters, page=1, page_size=7)
    second = incidents.list_incidents(db_session, supervisor, filters, page=2, page_size=7)
    assert len(first["features"]) == 7 and first["next_page"] == 2
    assert not set(_ids(first)) & set(_ids(second))
    deadlines = [f["properties"]["deadline_at"] for f in first["features"] + second["features"]]
    dated = [datetime.fromisoformat(d) for d in deadlines if d]
    assert dated == sorted(dated)
    last_page = -(-first["numberMatched"] // 7)
    assert incidents.list_incidents(db_session, supervisor, filters, page=last_page, page_size=7)["next_page"] is None
    with pytest.raises(ValidationError):
        incidents.list_incidents(db_session, supervisor, filters, page_size=100_000)


@pytest.mark.parametrize("args, field", [
    ({"category": "NOPE"}, "category"), ({"status": "lost"}, "status"), ({"town": "12"}, "town"),
    ({"grid": "4104211022040011"}, "grid"), ({"from": "last week"}, "from"), ({"overdue": "maybe"}, "overdue"),
    ({"bbox": "1,2,3"}, "bbox"), ({"sort": "random"}, "sort"), ({"from": "2026-05-01", "to": "2026-04-01"}, "from"),
])
def test_bad_filters_name_the_field(db_session, args, field):
    with pytest.raises(ValidationError) as info:
        incidents.parse_filters(db_session, args)
    assert info.value.field == field


def test_map_layer_clusters_when_too_many_in_view(db_session, make_user):
    county = make_user("svc_map", "county_officer")[0]
    filters = incidents.IncidentFilters()
    small = incidents.IncidentSettings(map_feature_cap=50)
    clustered = incidents.map_layer(db_session, county, filters, zoom=10, settings=small)
    assert clustered["clustered"]
    total = db_session.execute(text("SELECT count(*) FROM incidents")).scalar_one()
    assert clustered["numberMatched"] == total
    assert len(clustered["features"]) < 1000
    assert all(f["properties"]["count"] >= 1 for f in clustered["features"])
    _, lon, lat = interior_point(db_session, FANYING)
    tiny = incidents.IncidentFilters(bbox=(lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002))
    points = incidents.map_layer(db_session, county, tiny, zoom=17, settings=small)
    assert not points["clustered"] and all("id" in f for f in points["features"])


def test_exports_show_personal_details_only_to_handling_roles(db_session, worker, supervisor, make_user, here):
    _, lon, lat = here
    created = incidents.create_incident(db_session, worker, payload(lon, lat, contact_phone="13912345678"),
                                        SETTINGS).incident
    filters = incidents.IncidentFilters(grid=created.grid_code)
    viewer = make_user("svc_viewer", "viewer")[0]
    police = make_user("svc_police", "police", [db_session.execute(text(
        "SELECT code FROM patrol_zones ORDER BY code LIMIT 1")).scalar_one()])[0]
    for user in (viewer, police):
        assert "contact_phone" not in incidents.export_columns(user)
        assert all("contact_phone" not in row for row in incidents.export_rows(db_session, user, filters))
    assert "contact_phone" in incidents.export_columns(supervisor)
    rows = {r["id"]: r for r in incidents.export_rows(db_session, supervisor, filters)}
    assert rows[created.id]["contact_phone"] == "13912345678"
    viewer_detail = incidents.incident_detail(db_session, viewer, created.id)["properties"]
    assert "contact_phone" not in viewer_detail and not viewer_detail["personal_details_shown"]


def test_incident_detail_is_not_found_outside_scope(db_session, worker, make_user, here):
    _, lon, lat = here
    created = incidents.create_incident(db_session, worker, payload(lon, lat), SETTINGS).incident
    stranger = make_user("svc_stranger", "town_supervisor", ["410421100000"])[0]
    from gridmap.errors import NotFound
    with pytest.raises(NotFound):
        incidents.incident_detail(db_session, stranger, created.id)
    assert db_session.get(Incident, created.id) is not None


def test_a_committed_report_is_one_round_trip_of_its_own(engine, monkeypatch):
    """With commit=True on a fresh session (a web request) the report's statement runs as its own
    transaction on an autocommit connection: no BEGIN, no COMMIT, nothing left open, and the rows
    are visible at once. What reaches the driver is logged by psycopg2's LoggingConnection."""
    import psycopg2.extensions
    from psycopg2.extras import LoggingConnection

    from gridmap import db
    from gridmap.models import User

    class Sent(list):
        def write(self, statement):
            self.append(statement)

    sent = Sent()

    class Logged(LoggingConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.initialize(sent)

    logged = db.create_gridmap_engine(engine.url, isolation_level="AUTOCOMMIT",
                                      connect_args={"connection_factory": Logged})
    monkeypatch.setitem(db._autocommit_engines, engine, logged)
    client_id, warm = str(uuid.uuid4()), None
    with Session(engine) as setup:
        worker_id = setup.execute(text("SELECT id FROM users WHERE username = 'fanying'")).scalar_one()
        _, lon, lat = interior_point(setup, FANYING)
        other_lon, other_lat = interior_point(setup, OTHER_TOWN_VILLAGE)[1:]
    try:
        with Session(engine, expire_on_commit=False) as session:
            worker = session.get(User, worker_id)
            session.expunge_all()
            session.close()   # as a request with a cached login: nothing begun yet
            # The category codes are read once per process (a query that begins a transaction),
            # and the first report on a connection also sends its PREPARE and the pool's set-up.
            incidents.validate_category(session, "DSP", None)
            session.close()
            warm = incidents.create_incident(session, worker, payload(lon, lat), SETTINGS, commit=True)
            sent.clear()
            result = incidents.create_incident(session, worker, payload(lon, lat, client_id=client_id), SETTINGS,
                                               commit=True)
            assert len(sent) == 1 and "EXECUTE gridmap_report_incident" in sent[0], sent
            assert result.created and not session.in_transaction()
            with logged.connect() as probe:
                status = probe.connection.dbapi_connection.get_transaction_status()
            assert status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
            with engine.connect() as other:
                counts = other.execute(text(
                    "SELECT (SELECT count(*) FROM incidents WHERE client_id = :c), "
                    "(SELECT count(*) FROM incident_events WHERE incident_id = :i), "
                    "(SELECT count(*) FROM audit_log WHERE entity = 'incident' AND entity_id = :t)"),
                    {"c": client_id, "i": result.incident.id, "t": str(result.incident.id)}).one()
            assert tuple(counts) == (1, 1, 1)
        with Session(engine) as session:
            worker = session.get(User, worker_id)
            session.close()
            before = row_counts(session)
            session.close()
            with pytest.raises(Forbidden):
                incidents.create_incident(session, worker, payload(other_lon, other_lat), SETTINGS, commit=True)
            session.close()
            assert row_counts(session) == before
    finally:
        logged.dispose()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM incidents WHERE id = :w OR client_id = :c"),
                         {"w": warm.incident.id if warm else None, "c": client_id})


def test_a_report_after_its_pooled_connection_died_fails_once_then_reconnects(engine):
    """The report's autocommit pool hands out a connection the server has closed (a restart, an
    idle timeout): that report fails as a database error, the connection is thrown away, and the
    next report gets a new one."""
    import psycopg2
    from sqlalchemy.exc import DBAPIError

    from gridmap import db
    from gridmap.models import User

    with Session(engine) as setup:
        worker_id = setup.execute(text("SELECT id FROM users WHERE username = 'fanying'")).scalar_one()
        _, lon, lat = interior_point(setup, FANYING)
    pool = db.autocommit_engine(engine)
    created = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            worker = session.get(User, worker_id)
            session.expunge_all()
            session.close()
            created.append(incidents.create_incident(session, worker, payload(lon, lat), SETTINGS, commit=True))
            with pool.connect() as pooled:
                backend = pooled.connection.dbapi_connection.get_backend_pid()
            terminate_backend(engine, backend)

            with pytest.raises(DBAPIError) as caught:
                incidents.create_incident(session, worker, payload(lon, lat), SETTINGS, commit=True)
            assert isinstance(caught.value.orig, psycopg2.OperationalError)
            created.append(incidents.create_incident(session, worker, payload(lon, lat), SETTINGS, commit=True))
            with pool.connect() as pooled:
                assert pooled.connection.dbapi_connection.get_backend_pid() != backend
        assert all(result.created for result in created)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM incidents WHERE id = ANY(:ids)"),
                         {"ids": [result.incident.id for result in created]})


def test_disposing_an_engine_closes_its_report_pool(database):
    """The reports' autocommit pool belongs to its engine: disposing the engine closes the pool's
    connections too, so nothing stays connected to a database being dropped."""
    from sqlalchemy import create_engine

    from gridmap import db

    engine = create_engine(database)
    partner = db.autocommit_engine(engine)
    with partner.connect() as conn:
        backend = conn.connection.dbapi_connection.get_backend_pid()
    assert partner.pool.checkedin() == 1

    engine.dispose()

    assert engine not in db._autocommit_engines and partner.pool.checkedin() == 0
    with create_engine(database).connect() as probe:
        alive = probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": backend}).scalar_one()
    assert alive == 0
