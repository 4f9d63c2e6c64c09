"""Places and inspections: a hazard opens a linked incident in one step; bad input writes nothing."""
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from gridmap.models import Incident, IncidentEvent, Inspection
from gridmap.services import registries
from gridmap.errors import Forbidden, NotFound, ValidationError
from tests.conftest import auth
from tests.registries.conftest import FANYING, NAODIAN, counts, interior_point

TABLES = ("places", "inspections", "incidents", "incident_events", "audit_log")


@pytest.fixture
def place(db_session, users):
    grid, lon, lat = interior_point(db_session, FANYING)
    return registries.create_place(db_session, users["town_supervisor"][0], {
        "kind": "delivery", "subkind": "express", "name": "范营快递驿站（测试）", "address": "范营村1号",
        "responsible_role": "网点负责人", "lon": lon, "lat": lat, "registered_on": "2024-01-01"})


def test_place_gets_its_grid_from_the_database(db_session, place):
    grid, _, _ = interior_point(db_session, FANYING)
    assert (place.grid_code, place.village_code, place.town_code) == (grid, FANYING, NAODIAN)
    assert place.inspection_interval_days == 30  # the delivery outlets' default


def test_inspection_with_a_hazard_opens_a_linked_incident(db_session, client, users, place):
    worker, token = users["grid_worker"]
    before = counts(db_session, *TABLES)
    response = client.post("/api/inspections", headers=auth(token), json={
        "place_id": place.id, "inspected_on": date.today().isoformat(),
        "checklist": {"real_name": True, "inspection": True, "xray": False},
        "hazard_found": True, "hazard_description": "X光机故障，包裹未过机", "open_incident": True, "severity": 3})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["passed"] is False and body["hazard_found"] is True and body["incident_id"]
    assert counts(db_session, *TABLES) == (before[0], before[1] + 1, before[2] + 1, before[3] + 1, before[4] + 2)

    incident = db_session.get(Incident, body["incident_id"])
    # The "三个100%" item that failed picks the LOG subcategory; the incident sits at the place.
    assert (incident.category, incident.subcategory, incident.severity) == ("LOG", "xray", 3)
    assert incident.grid_code == place.grid_code and incident.reporter_id == worker.id
    assert "X光机故障" in incident.description and place.name in incident.description
    # Linked both ways: the inspection names the incident, the incident's first event names the inspection.
    inspection = db_session.get(Inspection, body["id"])
    assert inspection.incident_id == incident.id
    event = db_session.scalar(select(IncidentEvent).where(IncidentEvent.incident_id == incident.id))
    assert event.data["inspection_id"] == inspection.id and event.data["place_id"] == place.id
    found = client.get(f"/api/inspections?incident_id={incident.id}", headers=auth(token)).get_json()
    assert [i["id"] for i in found["inspections"]] == [inspection.id]
    hazards = client.get(f"/api/inspections/incidents?place_id={place.id}", headers=auth(token)).get_json()
    assert [f["id"] for f in hazards["features"]] == [incident.id]
    assert hazards["features"][0]["properties"]["inspection_id"] == inspection.id


def test_inspection_moves_the_place_out_of_overdue(db_session, client, users, place):
    token = users["county_officer"][1]
    first = client.get(f"/api/places/{place.id}", headers=auth(token)).get_json()
    assert first["properties"]["status"] == "overdue" and first["properties"]["last_inspected"] is None
    response = client.post("/api/inspections", headers=auth(token), json={
        "place_id": place.id, "checklist": {"real_name": True, "inspection": True, "xray": True}})
    assert response.status_code == 201 and response.get_json()["passed"] is True
    assert response.get_json()["incident_id"] is None
    after = client.get(f"/api/places/{place.id}", headers=auth(token)).get_json()["properties"]
    assert after["status"] == "ok" and after["last_inspected"] == registries.today_in_china().isoformat()
    due = client.get(f"/api/places/due?town={NAODIAN}&by=grid", headers=auth(token)).get_json()
    assert place.id not in [p["id"] for p in due["places"]]
    assert sum(row["total"] for row in due["summary"]) >= 1


@pytest.mark.parametrize("change, field", [
    ({"checklist": {"real_name": True, "bogus": True}}, "checklist.bogus"),
    ({"hazard_found": True}, "hazard_description"),
    ({"open_incident": True}, "open_incident"),
    ({"inspected_on": (date.today() + timedelta(days=3)).isoformat()}, "inspected_on"),
    ({"inspected_on": "2023-12-31"}, "inspected_on"),   # before the place was registered
    ({"inspected_on": "yesterday"}, "inspected_on"),
    ({"hazard_found": "maybe"}, "hazard_found"),
    ({"hazard_found": True, "hazard_description": "x" * 2001}, "hazard_description"),
    ({"place_id": "abc"}, "place_id"),
    ({"hazard_found": True, "hazard_description": "有隐患", "open_incident": True, "severity": 9}, "severity"),
])
def test_bad_inspection_input_names_the_field_and_writes_nothing(db_session, client, users, place, change, field):
    before = counts(db_session, *TABLES)
    body = {"place_id": place.id, "checklist": {"real_name": True}, **change}
    response = client.post("/api/inspections", json=body, headers=auth(users["grid_worker"][1]))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert counts(db_session, *TABLES) == before


def test_wrong_content_type_and_unknown_place(db_session, client, users, place):
    token = users["grid_worker"][1]
    response = client.post("/api/inspections", data="place_id=1", headers=auth(token),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.get_json()["error"]["field"] == "Content-Type"
    response = client.post("/api/inspections", json={"place_id": 99999999}, headers=auth(token))
    assert response.status_code == 404 and response.get_json()["error"]["field"] == "id"


@pytest.mark.parametrize("change, field, status", [
    ({"name": ""}, "name", 400),
    ({"kind": "casino"}, "kind", 400),
    ({"subkind": "bank"}, "subkind", 400),
    ({"lon": "east"}, "lon", 400),
    ({"lon": 116.4, "lat": 39.9}, "lon", 400),                      # Beijing: outside the county
    ({"inspection_interval_days": 0}, "inspection_interval_days", 400),
    ({"registered_on": "2099-01-01"}, "registered_on", 400),
    ({"name": "x" * 201}, "name", 400),
])
def test_bad_place_input_names_the_field_and_writes_nothing(db_session, client, users, change, field, status):
    _, lon, lat = interior_point(db_session, FANYING)
    before = counts(db_session, *TABLES)
    body = {"kind": "nine_small", "subkind": "shop", "name": "测试商店", "lon": lon, "lat": lat, **change}
    response = client.post("/api/places", json=body, headers=auth(users["town_supervisor"][1]))
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert counts(db_session, *TABLES) == before


def test_place_names_are_stored_as_typed_and_escaped_on_pages(db_session, client, users):
    _, lon, lat = interior_point(db_session, FANYING)
    token = users["town_supervisor"][1]
    response = client.post("/api/places", headers=auth(token), json={
        "kind": "nine_small", "name": "<script>alert(1)</script>小店", "lon": lon, "lat": lat})
    assert response.status_code == 201
    place_id = response.get_json()["id"]
    assert response.get_json()["properties"]["name"] == "<script>alert(1)</script>小店"
    with client.session_transaction() as session:
        session["_user_id"] = str(users["town_supervisor"][0].id)
        session["_fresh"] = True
    page = client.get(f"/registries/places/{place_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;小店" in html


def test_place_update_and_deactivation(db_session, client, users, place):
    token = users["town_supervisor"][1]
    response = client.patch(f"/api/places/{place.id}", headers=auth(token),
                            json={"inspection_interval_days": 15, "active": False})
    assert response.status_code == 200
    assert response.get_json()["properties"]["inspection_interval_days"] == 15
    assert db_session.execute(text("SELECT active FROM places WHERE id = :i"), {"i": place.id}).scalar_one() is False
    response = client.post("/api/inspections", json={"place_id": place.id}, headers=auth(token))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "place_id"


def test_service_refuses_roles_and_places_outside_scope(db_session, users, place):
    with pytest.raises(NotFound):  # another town's supervisor does not even see the place
        registries.record_inspection(db_session, users["other_town"][0], place.id, {})
    with pytest.raises(Forbidden):
        registries.record_inspection(db_session, users["viewer"][0], place.id, {})
    _, lon, lat = interior_point(db_session, "410421100003")
    with pytest.raises(Forbidden):
        registries.create_place(db_session, users["town_supervisor"][0],
                                {"kind": "nine_small", "name": "外镇小店", "lon": lon, "lat": lat})
    with pytest.raises(Forbidden):
        registries.create_place(db_session, users["grid_worker"][0],
                                {"kind": "nine_small", "name": "小店", "lon": lon, "lat": lat})
    with pytest.raises(ValidationError):
        registries.create_place(db_session, users["county_officer"][0], {"kind": "nine_small", "name": "小店"})
    assert db_session.execute(text("SELECT count(*) FROM places WHERE name = '外镇小店'")).scalar_one() == 0
