"""The incidents API over real HTTP handling: create, replay, every bad input (4xx naming the
field, nothing written), transitions by role, filters, exports, locate, CSRF, the pages, and the
enterprise or unit a case concerns."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from gridmap.services import risk
from gridmap.services.incidents import CHINA_TZ
from tests.conftest import PASSWORD, auth
from tests.incident_helpers import (FANYING, MATRIX, NAODIAN, OTHER_TOWN_VILLAGE, TRANSITION_FIELDS,
                                    cheap_password_hashing, interior_point, make_people, payload, row_counts)


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def people(make_user, db_session):
    return make_people(make_user, db_session, "api")


@pytest.fixture
def here(db_session):
    return interior_point(db_session, FANYING)


def post(client, url, body, token):
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=auth(token))


def create(client, people, here, **overrides):
    _, lon, lat = here
    response = post(client, "/api/incidents", payload(lon, lat, **overrides), people["worker"][1])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_returns_the_case(client, people, here, db_session):
    grid, lon, lat = here
    before = row_counts(db_session)
    response = post(client, "/api/incidents", payload(lon, lat), people["worker"][1])
    assert response.status_code == 201
    body = response.get_json()
    props = body["properties"]
    assert response.headers["Location"] == f"/api/incidents/{body['id']}"
    assert (props["grid_code"], props["village_code"], props["town_code"]) == (grid, FANYING, NAODIAN)
    assert props["status"] == "reported" and body["created"] is True
    assert [a["name"] for a in props["allowed_actions"]] == ["note"]
    assert row_counts(db_session) == (before[0] + 1, before[1] + 1, before[2] + 1)
    again = client.get(f"/api/incidents/{body['id']}", headers=auth(people["worker"][1]))
    assert again.status_code == 200 and again.get_json()["properties"]["description"] == "两户因宅基地边界争执"


def test_replaying_one_pin_ten_times_makes_one_incident(client, people, here, db_session):
    _, lon, lat = here
    body = payload(lon, lat)
    before = row_counts(db_session)
    responses = [post(client, "/api/incidents", body, people["worker"][1]) for _ in range(10)]
    assert [r.status_code for r in responses] == [201] + [200] * 9
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert all(r.get_json()["created"] is False for r in responses[1:])
    assert db_session.execute(text("SELECT count(*) FROM incidents WHERE client_id = :c"),
                              {"c": body["client_id"]}).scalar_one() == 1
    assert row_counts(db_session) == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_create_reports_possible_duplicates(client, people, here):
    first = create(client, people, here)
    second = create(client, people, here)
    assert first["id"] in [d["id"] for d in second["possible_duplicates"]]
    _, lon, lat = here
    found = client.get(f"/api/incidents/duplicates?category=DSP&lon={lon}&lat={lat}",
                       headers=auth(people["worker"][1])).get_json()["possible_duplicates"]
    assert {first["id"], second["id"]} <= {d["id"] for d in found}
    none = client.get(f"/api/incidents/duplicates?category=HAZ&lon={lon}&lat={lat}",
                      headers=auth(people["worker"][1])).get_json()["possible_duplicates"]
    assert first["id"] not in {d["id"] for d in none}


BAD_INPUTS = [
    ("missing category", {"category": None}, 400, "category"),
    ("unknown category", {"category": "UFO"}, 400, "category"),
    ("unknown subcategory", {"subcategory": "unicorn"}, 400, "subcategory"),
    ("severity too high", {"severity": 9}, 400, "severity"),
    ("severity too low", {"severity": 0}, 400, "severity"),
    ("lon not a number", {"lon": "east"}, 400, "lon"),
    ("lat not a number", {"lat": [33.9]}, 400, "lat"),
    ("outside the county", {"lon": 121.47, "lat": 31.23}, 400, "lon"),
    ("future date", {"occurred_at": "2999-12-31T08:00:00+08:00"}, 400, "occurred_at"),
    ("not a date", {"occurred_at": "32/13/2026"}, 400, "occurred_at"),
    ("oversized description", {"description": "x" * 2001}, 400, "description"),
    ("bad client id", {"client_id": "12345"}, 400, "client_id"),
    ("unknown crs", {"crs": "bd09"}, 400, "crs"),
]


@pytest.mark.parametrize("name, override, status, field", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_and_writes_nothing(client, people, here, db_session, name, override, status, field):
    _, lon, lat = here
    body = payload(lon, lat)
    body.update(override)
    before = row_counts(db_session)
    response = post(client, "/api/incidents", body, people["worker"][1])
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["field"] == field and error["message"]
    assert row_counts(db_session) == before


def test_out_of_scope_grid_is_forbidden(client, people, db_session):
    _, lon, lat = interior_point(db_session, OTHER_TOWN_VILLAGE)
    before = row_counts(db_session)
    response = post(client, "/api/incidents", payload(lon, lat), people["worker"][1])
    assert response.status_code == 403
    assert response.get_json()["error"]["field"] == "lon"
    assert row_counts(db_session) == before


def test_malformed_json_and_wrong_content_type(client, people, here, db_session):
    token = people["worker"][1]
    before = row_counts(db_session)
    broken = client.post("/api/incidents", data='{"lon": 113.1, "lat":', content_type="application/json",
                         headers=auth(token))
    assert broken.status_code == 400 and broken.get_json()["error"]["field"] == "body"
    not_object = client.post("/api/incidents", data="[1, 2]", content_type="application/json", headers=auth(token))
    assert not_object.status_code == 400 and not_object.get_json()["error"]["field"] == "body"
    _, lon, lat = here
    form = client.post("/api/incidents", data={"lon": lon, "lat": lat, "category": "DSP"}, headers=auth(token))
    assert form.status_code == 415 and form.get_json()["error"]["field"] == "Content-Type"
    transition = client.post("/api/incidents/1/transitions", data="accept", content_type="text/plain",
                             headers=auth(people["supervisor"][1]))
    assert transition.status_code == 415
    assert row_counts(db_session) == before


def test_script_in_text_fields_is_stored_as_text_and_escaped_on_pages(client, people, here):
    script = '<script>window.gmPwned = 1</script><img src=x onerror="window.gmPwned=2">'
    body = create(client, people, here, description=script, contact_phone="<b>13800000000</b>")
    assert body["properties"]["description"] == script
    login(client, "api_supervisor")
    page = client.get(f"/incidents/{body['id']}").get_data(as_text=True)
    assert "<script>window.gmPwned" not in page and "onerror=\"window" not in page
    assert "&lt;script&gt;window.gmPwned = 1&lt;/script&gt;" in page
    assert "&lt;b&gt;13800000000&lt;/b&gt;" in page
    listing = client.get(f"/incidents?village={FANYING}&sort=-reported_at").get_data(as_text=True)
    assert "&lt;script&gt;window.gmPwned" in listing and "<script>window.gmPwned" not in listing


# --- transitions ------------------------------------------------------------------------------

STATUS_OF = {"ok": 200, "Forbidden": 403, "NotFound": 404, "Conflict": 409}


@pytest.mark.parametrize("role, action, status, outcome", MATRIX,
                         ids=[f"{r}-{a}-from-{s}" for r, a, s, _ in MATRIX])
def test_transitions_by_role(client, people, here, db_session, role, action, status, outcome):
    case = create(client, people, here)
    db_session.execute(text("UPDATE incidents SET status = :s WHERE id = :i"), {"s": status, "i": case["id"]})
    fields = dict(TRANSITION_FIELDS.get(action, {}))
    if action == "mark_duplicate":
        fields["duplicate_of"] = create(client, people, here)["id"]
    before = row_counts(db_session)
    response = post(client, f"/api/incidents/{case['id']}/transitions", {"action": action, **fields},
                    people[role][1])
    expected = STATUS_OF[outcome if outcome == "ok" else outcome.__name__]
    assert response.status_code == expected, response.get_json()
    if outcome == "ok":
        body = response.get_json()
        assert body["event"]["from_status"] == status
        assert body["properties"]["history"][-1]["actor"] == f"api_{role}"
        assert row_counts(db_session) == (before[0], before[1] + 1, before[2] + 1)
    else:
        assert response.get_json()["error"]["field"] in ("action", "id")
        assert row_counts(db_session) == before
        assert db_session.execute(text("SELECT status FROM incidents WHERE id = :i"),
                                  {"i": case["id"]}).scalar_one() == status


def test_supervisor_and_mediator_take_a_dispute_through_mediation(client, people, here):
    case = create(client, people, here)
    url = f"/api/incidents/{case['id']}/transitions"
    supervisor, mediator = people["supervisor"][1], people["mediator"][1]
    assert post(client, url, {"action": "accept"}, supervisor).status_code == 200
    assert client.get(f"/api/incidents/{case['id']}", headers=auth(mediator)).status_code == 404
    dispatched = post(client, url, {"action": "dispatch", "target_kind": "mediation_point",
                                    "target": str(people["point"]), "note": "转摆理堂"}, supervisor)
    assert dispatched.status_code == 200
    seen = client.get(f"/api/incidents/{case['id']}", headers=auth(mediator)).get_json()["properties"]
    assert [a["name"] for a in seen["allowed_actions"]] == ["start", "record_mediation", "note"]
    bad = post(client, url, {"action": "record_mediation", "outcome": "maybe"}, mediator)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "outcome"
    done = post(client, url, {"action": "record_mediation", "outcome": "agreement", "note": "达成协议"}, mediator)
    assert done.status_code == 200
    props = done.get_json()["properties"]
    assert (props["status"], props["mediation_outcome"], props["resolution_level"]) == ("resolved", "agreement",
                                                                                       "village")
    closed = post(client, url, {"action": "close", "note": "核查属实"}, supervisor)
    assert closed.get_json()["properties"]["status"] == "closed"
    history = closed.get_json()["properties"]["history"]
    assert [h["to_status"] for h in history] == ["reported", "accepted", "dispatched", "resolved", "closed"]
    assert [h["actor"] for h in history[1:]] == ["api_supervisor", "api_supervisor", "api_mediator", "api_supervisor"]


def test_transition_on_unknown_case_and_bad_action(client, people):
    token = people["county"][1]
    missing = post(client, "/api/incidents/999999999/transitions", {"action": "accept"}, token)
    assert missing.status_code == 404
    unknown = post(client, "/api/incidents/1/transitions", {"action": "teleport"}, token)
    assert unknown.status_code == 400 and unknown.get_json()["error"]["field"] == "action"


# --- listing and exports ----------------------------------------------------------------------

def test_listing_filters_and_paging(client, people, here):
    created = create(client, people, here, category="FIR", subcategory="ebike")
    token = people["supervisor"][1]

    def get(query):
        response = client.get(f"/api/incidents?{query}", headers=auth(token))
        assert response.status_code == 200, response.get_json()
        assert response.mimetype == "application/geo+json"
        return response.get_json()

    everything = get("page_size=1")["numberMatched"]
    fire = get("category=FIR&page_size=5000")
    assert created["id"] in [f["id"] for f in fire["features"]]
    assert {f["properties"]["category"] for f in fire["features"]} == {"FIR"}
    assert get(f"village={FANYING}&page_size=1")["numberMatched"] < everything
    _, lon, lat = here
    box = get(f"bbox={lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}&page_size=5000")
    assert created["id"] in [f["id"] for f in box["features"]]
    reported = get("status=reported&page_size=5000")
    assert {f["properties"]["status"] for f in reported["features"]} == {"reported"}
    overdue = get("overdue=true&page_size=5000")
    assert all(f["properties"]["overdue"] for f in overdue["features"])
    ranged = get("from=2026-03-01&to=2026-03-31&page_size=5000")
    assert ranged["numberMatched"] > 0
    start, end = datetime(2026, 3, 1, tzinfo=CHINA_TZ), datetime(2026, 4, 1, tzinfo=CHINA_TZ)
    assert all(start <= datetime.fromisoformat(f["properties"]["occurred_at"]) < end for f in ranged["features"])
    page1, page2 = get("page=1&page_size=3&sort=deadline"), get("page=2&page_size=3&sort=deadline")
    assert page1["next_page"] == 2 and not {f["id"] for f in page1["features"]} & {f["id"] for f in page2["features"]}
    assert get("page_size=1")["numberMatched"] == everything
    bad = client.get("/api/incidents?status=lost", headers=auth(token))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "status"
    worker_sees = get_as(client, people["worker"][1], "page_size=5000")
    assert {f["properties"]["village_code"] for f in worker_sees["features"]} == {FANYING}


def get_as(client, token, query):
    return client.get(f"/api/incidents?{query}", headers=auth(token)).get_json()


def test_map_view_is_capped_or_clustered(client, people):
    county = people["county"][1]
    wide = client.get("/api/incidents?bbox=112.8,33.6,113.4,34.1&zoom=10", headers=auth(county)).get_json()
    assert wide["clustered"] is True
    assert sum(f["properties"]["count"] for f in wide["features"]) == wide["numberMatched"] > 2000
    assert len(wide["features"]) < 500


def test_detail_hides_personal_details_from_viewer_and_police(client, people, here, db_session):
    case = create(client, people, here, contact_phone="13512345678")
    viewer = client.get(f"/api/incidents/{case['id']}", headers=auth(people["viewer"][1])).get_json()["properties"]
    assert "contact_phone" not in viewer and "parties" not in viewer
    supervisor = client.get(f"/api/incidents/{case['id']}",
                            headers=auth(people["supervisor"][1])).get_json()["properties"]
    assert supervisor["contact_phone"] == "13512345678"
    assert client.get(f"/api/incidents/{case['id']}",
                      headers=auth(people["other_supervisor"][1])).status_code == 404


def _csv(response):
    text_body = response.get_data(as_text=True)
    assert text_body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text_body[1:])))


def test_exports_are_scoped_and_hide_personal_details_from_viewers(client, people, here):
    case = create(client, people, here, contact_phone="13612345678", description="=HYPERLINK(\"http://x\")")
    grid = case["properties"]["grid_code"]
    supervisor = client.get(f"/api/incidents/export.csv?grid={grid}", headers=auth(people["supervisor"][1]))
    assert supervisor.status_code == 200 and supervisor.mimetype == "text/csv"
    assert "attachment" in supervisor.headers["Content-Disposition"]
    rows = {int(r["id"]): r for r in _csv(supervisor)}
    assert rows[case["id"]]["contact_phone"] == "13612345678"
    assert rows[case["id"]]["description"].startswith("'=")  # not run as a spreadsheet formula
    viewer_rows = _csv(client.get(f"/api/incidents/export.csv?grid={grid}", headers=auth(people["viewer"][1])))
    assert case["id"] in {int(r["id"]) for r in viewer_rows}
    assert "contact_phone" not in viewer_rows[0] and "parties" not in viewer_rows[0]
    other = _csv(client.get("/api/incidents/export.csv?category=DSP", headers=auth(people["other_supervisor"][1])))
    assert other and {r["town_code"] for r in other} == {"410421100000"}
    geo = client.get(f"/api/incidents/export.geojson?grid={grid}", headers=auth(people["viewer"][1]))
    collection = json.loads(geo.get_data(as_text=True))
    assert collection["type"] == "FeatureCollection"
    assert case["id"] in [f["id"] for f in collection["features"]]
    assert all("contact_phone" not in f["properties"] for f in collection["features"])
    handled = json.loads(client.get(f"/api/incidents/export.geojson?grid={grid}",
                                    headers=auth(people["worker"][1])).get_data(as_text=True))
    assert any(f["properties"].get("contact_phone") == "13612345678" for f in handled["features"])


def test_locate(client, people, here, db_session):
    grid, lon, lat = here
    token = people["worker"][1]
    inside = client.get(f"/api/locate?lon={lon}&lat={lat}", headers=auth(token)).get_json()
    assert inside["in_scope"] and inside["place"]["grid"]["code"] == grid
    _, lon2, lat2 = interior_point(db_session, OTHER_TOWN_VILLAGE)
    outside = client.get(f"/api/locate?lon={lon2}&lat={lat2}", headers=auth(token)).get_json()
    assert outside["in_scope"] is False and outside["place"]["village"]["code"] == OTHER_TOWN_VILLAGE
    bad = client.get("/api/locate?lon=abc&lat=1", headers=auth(token))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "lon"
    assert client.get(f"/api/locate?lon={lon}&lat={lat}").status_code == 401


# --- cookie sessions and pages ----------------------------------------------------------------

def login(client, username):
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302


def test_cookie_writes_need_the_pages_csrf_token(database, connection, here, db_session, make_user):
    from sqlalchemy.orm import sessionmaker

    from gridmap import create_app

    make_user("api_csrf_worker", "grid_worker", [FANYING])
    app = create_app({"TESTING": True, "SECRET_KEY": "csrf-test"})
    app.extensions["gridmap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf-token" content="([^"]+)"', page)
    client.post("/login", data={"username": "api_csrf_worker", "password": PASSWORD, "csrf_token": token.group(1)})
    pin_page = client.get("/incidents/new")
    assert pin_page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', pin_page.get_data(as_text=True)).group(1)
    _, lon, lat = here
    before = row_counts(db_session)
    refused = client.post("/api/incidents", json=payload(lon, lat))
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf"
    assert row_counts(db_session) == before
    accepted = client.post("/api/incidents", json=payload(lon, lat), headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 201


def test_pages_render(client, people, here, db_session):
    case = create(client, people, here)
    login(client, "api_supervisor")
    for url in ("/incidents", "/incidents/map", "/incidents/new", f"/incidents/{case['id']}",
                "/incidents?category=DSP&status=open&overdue=1&sort=deadline"):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        assert "cdn" not in page.lower() and "unpkg" not in page
    case_page = client.get(f"/incidents/{case['id']}").get_data(as_text=True)
    for action in ("accept", "reject", "mark_duplicate", "note"):
        assert f'data-action="{action}"' in case_page
    assert 'data-action="close"' not in case_page
    listing = client.get("/incidents").get_data(as_text=True)
    assert "/api/incidents/export.csv" in listing and "/api/incidents/export.geojson" in listing
    # The supervisor's list is sorted by deadline by default.
    assert '<option value="deadline" selected>' in listing
    assert client.get("/incidents/999999999").status_code == 404
    bad = client.get("/incidents?status=lost")
    assert bad.status_code == 200 and "status:" in bad.get_data(as_text=True)


# --- the report's one statement ---------------------------------------------------------------

@pytest.mark.parametrize("role", ["worker", "supervisor", "county"])
def test_the_reports_answer_is_the_case_as_read_back(client, people, here, db_session, role):
    """The answer is built from what the insert returned; it must equal the case read again."""
    _, lon, lat = here
    response = post(client, "/api/incidents", payload(lon, lat, crs="wgs84", parties="张三、李四"), people[role][1])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body.pop("created") is True
    body.pop("possible_duplicates")
    again = client.get(f"/api/incidents/{body['id']}", headers=auth(people[role][1])).get_json()
    assert body == again
    history = body["properties"]["history"]
    assert [h["to_status"] for h in history] == ["reported"] and history[0]["actor"] == f"api_{role}"
    assert history[0]["data"]["place"]["village"] == {"code": FANYING, "name": "范营村"}
    audit = db_session.execute(text("SELECT user_id, detail FROM audit_log WHERE entity = 'incident' "
                                    "AND entity_id = :i"), {"i": str(body["id"])}).one()
    assert audit.user_id == people[role][0].id
    assert audit.detail["grid"] == body["properties"]["grid_code"] and audit.detail["category"] == "DSP"


def test_possible_duplicates_are_only_what_the_reporter_may_see(client, people, here, db_session):
    """A worker's report lists duplicates in their area; a neighbouring grid worker's open case
    just across the line is left out unless the county officer reports."""
    _, lon, lat = here
    first = create(client, people, here)
    # An open incident of the same category 20 m away, stored as if in another village.
    db_session.execute(text("ALTER TABLE incidents DISABLE TRIGGER incidents_assign_place"))
    other = db_session.execute(text("""
        INSERT INTO incidents (category, severity, status, occurred_at, reported_at, geom, grid_code, village_code,
                               town_code)
        SELECT 'DSP', 2, 'reported', now(), now(), ST_SetSRID(ST_MakePoint(:lon + 0.0002, :lat), 4326),
               g.code, g.village_code, v.town_code
          FROM grids g JOIN villages v ON v.code = g.village_code WHERE g.village_code = :v ORDER BY g.code LIMIT 1
        RETURNING id"""), {"lon": lon, "lat": lat, "v": OTHER_TOWN_VILLAGE}).scalar_one()
    db_session.execute(text("ALTER TABLE incidents ENABLE TRIGGER incidents_assign_place"))
    closed = create(client, people, here)
    db_session.execute(text("UPDATE incidents SET status = 'closed' WHERE id = :i"), {"i": closed["id"]})
    worker = create(client, people, here)["possible_duplicates"]
    assert first["id"] in [d["id"] for d in worker]
    assert other not in [d["id"] for d in worker] and closed["id"] not in [d["id"] for d in worker]
    assert all(d["distance_m"] <= 200 and d["category"] == "DSP" for d in worker)
    county = post(client, "/api/incidents", payload(lon, lat), people["county"][1]).get_json()["possible_duplicates"]
    assert other in [d["id"] for d in county] and first["id"] in [d["id"] for d in county]
    assert [d["distance_m"] for d in county] == sorted(d["distance_m"] for d in county)
    elsewhere = post(client, "/api/incidents", payload(lon, lat, category="HAZ", subcategory=None),
                     people["county"][1]).get_json()["possible_duplicates"]
    assert first["id"] not in [d["id"] for d in elsewhere]


def test_a_report_is_one_statement_and_a_commit(client, people, here, connection):
    """Authentication comes from the login cache after the first request; a report is then the
    one prepared statement (no re-read of the case, no separate duplicate search)."""
    from sqlalchemy import event

    _, lon, lat = here
    token = people["worker"][1]
    assert post(client, "/api/incidents", payload(lon, lat), token).status_code == 201
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        assert post(client, "/api/incidents", payload(lon, lat), token).status_code == 201
    finally:
        event.remove(connection, "before_cursor_execute", record)
    queries = [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO"))]
    assert len(queries) == 1 and "EXECUTE gridmap_report_incident" in queries[0], queries


def test_a_replayed_pin_with_a_now_refused_field_still_answers_with_the_stored_incident(client, people, here):
    _, lon, lat = here
    body = payload(lon, lat)
    first = post(client, "/api/incidents", body, people["worker"][1])
    assert first.status_code == 201
    # The phone's clock jumped ahead (occurred_at now "in the future"): the stored pin still answers.
    again = post(client, "/api/incidents", dict(body, occurred_at="2999-01-01T00:00:00+08:00"), people["worker"][1])
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]


# --- the enterprise or unit a case concerns (incidents.unit_id, "三零" per unit) ----------------

def add_place(session, village: str, name: str, kind: str = "enterprise", active: bool = True,
              ref: str | None = None) -> int:
    _, lon, lat = interior_point(session, village)
    return session.execute(text(
        "INSERT INTO places (kind, name, ref, active, inspection_interval_days, geom) "
        "VALUES (:kind, :name, :ref, :active, 180, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) RETURNING id"),
        {"kind": kind, "name": name, "ref": ref, "active": active, "lon": lon, "lat": lat}).scalar_one()


@pytest.fixture
def units(db_session):
    return {"works": add_place(db_session, FANYING, "范营机械厂"),
            "closed": add_place(db_session, FANYING, "已注销砖厂", active=False),
            "shop": add_place(db_session, FANYING, "范营小超市", kind="nine_small"),
            "elsewhere": add_place(db_session, OTHER_TOWN_VILLAGE, "外镇化工厂")}


def report(client, people, db_session, **overrides):
    _, lon, lat = interior_point(db_session, FANYING)
    return post(client, "/api/incidents", payload(lon, lat, **overrides), people["worker"][1])


def test_locate_offers_the_villages_active_enterprises_only(client, people, db_session, units):
    _, lon, lat = interior_point(db_session, FANYING)
    body = client.get(f"/api/locate?lon={lon}&lat={lat}", headers=auth(people["worker"][1])).get_json()
    offered = {u["id"]: u["name"] for u in body["units"]}
    assert offered.get(units["works"]) == "范营机械厂"
    assert not {units["closed"], units["shop"], units["elsewhere"]} & set(offered)


def test_a_report_names_its_unit_and_the_case_shows_it(client, people, db_session, units):
    response = report(client, people, db_session, category="ACC", subcategory="injury", enterprise_involved=True,
                      unit_id=units["works"])
    assert response.status_code == 201, response.get_json()
    props = response.get_json()["properties"]
    assert (props["unit_id"], props["unit_name"]) == (units["works"], "范营机械厂")
    stored = db_session.execute(text("SELECT unit_id FROM incidents WHERE id = :i"), {"i": props["id"]}).scalar_one()
    assert stored == units["works"]
    again = client.get(f"/api/incidents/{props['id']}", headers=auth(people["worker"][1])).get_json()
    assert again["properties"]["unit_name"] == "范营机械厂"
    exported = _csv(client.get("/api/incidents/export.csv", headers=auth(people["worker"][1])))
    assert [(r["unit_id"], r["unit_name"]) for r in exported if r["id"] == str(props["id"])] == [
        (str(units["works"]), "范营机械厂")]


@pytest.mark.parametrize("which", ["closed", "shop", "elsewhere", "missing"])
def test_a_unit_that_is_no_active_enterprise_of_the_village_is_refused(client, people, db_session, units, which):
    before = row_counts(db_session)
    unit_id = units[which] if which in units else max(units.values()) + 1000
    response = report(client, people, db_session, unit_id=unit_id)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == "unit_id"
    assert row_counts(db_session) == before


@pytest.mark.parametrize("value", ["7", 1.5, True, 0, -3])
def test_a_unit_id_that_is_not_an_id_is_refused(client, people, db_session, value):
    response = report(client, people, db_session, unit_id=value)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "unit_id"


def test_three_zeros_per_unit_count_an_incident_that_names_the_unit(client, people, db_session, units):
    other = add_place(db_session, FANYING, "范营面粉厂")
    assert report(client, people, db_session, category="ACC", subcategory="injury",
                  unit_id=units["works"]).status_code == 201
    now = datetime.now(timezone.utc)
    period = risk.Period(datetime(now.year - 1, 1, 1, tzinfo=timezone.utc),
                         datetime(now.year + 1, 1, 1, tzinfo=timezone.utc))

    county = risk.county_report(db_session, None, period, risk.RiskSettings())

    assert not county.units.loc[units["works"], "compliant"] and county.units.loc[units["works"], "n_accidents"] == 1
    assert county.units.loc[other, "compliant"]


def test_a_supervisor_names_corrects_and_clears_the_unit_of_a_case(client, people, db_session, units):
    case = report(client, people, db_session).get_json()
    transitions = f"/api/incidents/{case['id']}/transitions"
    unit_of = lambda: db_session.execute(  # noqa: E731
        text("SELECT unit_id FROM incidents WHERE id = :i"), {"i": case["id"]}).scalar_one()

    named = post(client, transitions, {"action": "set_unit", "unit_id": str(units["works"])}, people["supervisor"][1])
    assert named.status_code == 200, named.get_json()
    assert unit_of() == units["works"] and named.get_json()["properties"]["unit_name"] == "范营机械厂"
    assert named.get_json()["properties"]["history"][-1]["data"]["unit_name"] == "范营机械厂"

    for wrong in (units["elsewhere"], units["shop"], "abc"):
        refused = post(client, transitions, {"action": "set_unit", "unit_id": wrong}, people["supervisor"][1])
        assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "unit_id"
    assert post(client, transitions, {"action": "set_unit", "unit_id": units["works"]},
                people["worker"][1]).status_code == 403
    assert unit_of() == units["works"]

    cleared = post(client, transitions, {"action": "set_unit", "unit_id": None}, people["supervisor"][1])
    assert cleared.status_code == 200 and unit_of() is None


def test_the_case_page_offers_the_villages_units_to_a_supervisor(client, people, db_session, units):
    case = report(client, people, db_session, unit_id=units["works"]).get_json()
    login(client, people["supervisor"][0].username)
    page = client.get(f"/incidents/{case['id']}").get_data(as_text=True)
    select = re.search(r'<select name="unit_id">(.*?)</select>', page, re.S).group(1)
    assert f'<option value="{units["works"]}" selected>范营机械厂</option>' in select
    assert "外镇化工厂" not in select and "范营小超市" not in select
    assert '<td id="case-unit">范营机械厂</td>' in page
