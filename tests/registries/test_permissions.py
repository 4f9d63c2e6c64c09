"""Who may see and edit each registry, by role and scope, over the API."""
import pytest

from gridmap.services import registries
from tests.conftest import auth
from tests.registries.conftest import FANYING, NAODIAN, interior_point

# (role, may see the registries, may add a place in 范营村, may record an inspection there,
#  may add staff there, may record an activity there)
MATRIX = [
    ("admin", True, True, True, True, True),
    ("county_officer", True, True, True, True, True),
    ("town_supervisor", True, True, True, True, True),
    ("other_town", True, False, False, False, False),
    ("grid_worker", True, False, True, False, True),
    ("police", True, False, True, False, True),
    ("viewer", True, False, False, False, False),
    ("mediator", False, False, False, False, False),
]


@pytest.fixture
def fanying_place(db_session, users):
    _, lon, lat = interior_point(db_session, FANYING)
    return registries.create_place(db_session, users["county_officer"][0],
                                   {"kind": "nine_small", "subkind": "shop", "name": "权限测试小店", "lon": lon,
                                    "lat": lat, "registered_on": "2024-01-01"})


@pytest.mark.parametrize("role, sees, add_place, inspect, add_staff, add_activity", MATRIX)
def test_role_matrix(client, db_session, users, fanying_place, role, sees, add_place, inspect, add_staff,
                     add_activity):
    token = users[role][1]
    _, lon, lat = interior_point(db_session, FANYING)
    listing = client.get(f"/api/places?village={FANYING}", headers=auth(token))
    assert listing.status_code == (200 if sees else 403)
    if sees:
        ids = [f["id"] for f in listing.get_json()["features"]]
        assert (fanying_place.id in ids) == (role != "other_town")

    def status(response, allowed):
        expected = (201,) if allowed else (403, 404)
        assert response.status_code in expected, (role, response.get_json())

    status(client.post("/api/places", headers=auth(token),
                       json={"kind": "nine_small", "name": "新店", "lon": lon, "lat": lat}), add_place)
    status(client.post("/api/inspections", headers=auth(token),
                       json={"place_id": fanying_place.id, "checklist": {"exits": True}}), inspect)
    status(client.post("/api/staff", headers=auth(token),
                       json={"role": "lawyer", "name": "某律师", "village_code": FANYING}), add_staff)
    status(client.post("/api/activities", headers=auth(token),
                       json={"held_on": "2024-05-04", "kind": "villages", "title": "普法", "lon": lon, "lat": lat,
                             "audience": 40}), add_activity)


def test_scoped_users_see_only_their_area(client, users):
    town = client.get("/api/places", headers=auth(users["town_supervisor"][1])).get_json()
    assert town["features"] and {f["properties"]["town_code"] for f in town["features"]} == {NAODIAN}
    worker = client.get("/api/places", headers=auth(users["grid_worker"][1])).get_json()
    assert worker["features"] and {f["properties"]["village_code"] for f in worker["features"]} == {FANYING}
    county = client.get("/api/places", headers=auth(users["viewer"][1])).get_json()
    assert county["numberMatched"] > town["numberMatched"] > worker["numberMatched"]
    coverage = client.get("/api/staff/coverage", headers=auth(users["town_supervisor"][1])).get_json()
    assert {v["town_code"] for v in coverage["villages"]} == {NAODIAN}


def test_unauthenticated_api_is_refused(client):
    for url in ("/api/places", "/api/inspections", "/api/staff", "/api/bulletins?period=2024-03", "/api/reviews",
                "/api/activities"):
        response = client.get(url)
        assert response.status_code == 401 and response.get_json()["error"]["code"]


def test_permissions_summary(users):
    assert registries.permissions(users["grid_worker"][0]) == {
        "places": {"view": True, "edit": False}, "inspections": {"view": True, "edit": True},
        "staff": {"view": True, "edit": False}, "activities": {"view": True, "edit": True}}
    assert not any(p["view"] for p in registries.permissions(users["mediator"][0]).values())


def test_places_fields_keep_map_answers_small(client, users):
    token = users["county_officer"][1]
    full = client.get("/api/places", headers=auth(token))
    slim = client.get("/api/places?fields=name,status", headers=auth(token))
    assert slim.get_json()["numberMatched"] == full.get_json()["numberMatched"]
    assert set(slim.get_json()["features"][0]["properties"]) == {"name", "status"}
    assert len(slim.data) < len(full.data) / 3
