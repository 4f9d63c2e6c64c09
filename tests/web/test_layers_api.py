"""GeoJSON layer API: authentication, scope per role, bbox filter, JSON errors."""
import pytest

from tests.conftest import auth

NAODIAN = "410421102000"
FANYING = "410421102204"


def codes(response):
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/geo+json"
    data = response.get_json()
    assert data["type"] == "FeatureCollection"
    return {f["properties"].get("code", f["properties"].get("id")) for f in data["features"]}


def test_anonymous_gets_401_json(client):
    response = client.get("/api/towns")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_bad_token_is_refused(client):
    assert client.get("/api/towns", headers=auth("gm_nonsense")).status_code == 401


@pytest.mark.parametrize("layer", ["towns", "villages", "grids", "stations", "patrol-zones", "mediation-points"])
def test_county_officer_sees_every_layer(client, make_user, layer):
    _, token = make_user("officer", "county_officer")
    assert len(codes(client.get(f"/api/{layer}", headers=auth(token)))) > 0


def test_county_officer_sees_all_towns_and_villages(client, make_user):
    _, token = make_user("officer", "county_officer")
    assert len(codes(client.get("/api/towns", headers=auth(token)))) == 13
    assert len(codes(client.get("/api/villages", headers=auth(token)))) == 323


def test_town_supervisor_sees_only_own_town(client, make_user):
    _, token = make_user("sup", "town_supervisor", [NAODIAN])
    assert codes(client.get("/api/towns", headers=auth(token))) == {NAODIAN}
    villages = codes(client.get("/api/villages", headers=auth(token)))
    assert villages and all(v.startswith("410421102") for v in villages)
    grids = codes(client.get("/api/grids", headers=auth(token)))
    assert grids and all(g.startswith("410421102") for g in grids)


def test_grid_worker_sees_own_village_grids_and_its_bailitang(client, make_user):
    _, token = make_user("worker", "grid_worker", [FANYING])
    grids = codes(client.get("/api/grids", headers=auth(token)))
    assert grids and all(g.startswith(FANYING) for g in grids)
    points = client.get("/api/mediation-points", headers=auth(token)).get_json()["features"]
    assert any(p["properties"]["kind"] == "bailitang" for p in points)
    assert all(p["properties"]["village_code"] == FANYING for p in points)


def test_bbox_filters(client, make_user):
    _, token = make_user("officer", "county_officer")
    everything = codes(client.get("/api/grids", headers=auth(token)))
    corner = codes(client.get("/api/grids?bbox=113.20,33.84,113.23,33.87", headers=auth(token)))
    assert 0 < len(corner) < len(everything)
    nowhere = codes(client.get("/api/grids?bbox=100,20,100.1,20.1", headers=auth(token)))
    assert nowhere == set()


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "113,34,112,33", "0,0,0,0", "1,2,3,4,5"])
def test_bad_bbox_is_a_400_naming_the_field(client, make_user, bbox):
    _, token = make_user("officer", "county_officer")
    response = client.get(f"/api/grids?bbox={bbox}", headers=auth(token))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "bbox"


def test_unknown_layer_is_404_json(client, make_user):
    _, token = make_user("officer", "county_officer")
    response = client.get("/api/rivers", headers=auth(token))
    assert response.status_code == 404
    assert "error" in response.get_json()
