"""GET /tiles/<layer>/<z>/<x>/<y>.pbf and /tiles/incidents/at over HTTP (Flask test client):
authentication, content, ETag / 304, cache headers and JSON errors."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conftest import auth
from tests.tiles.helpers import decode, tile_of

LON, LAT = 113.06, 33.87
NAODIAN = "410421102000"
FANYING = "410421102204"


@pytest.fixture
def token(make_user):
    return make_user("officer", "county_officer")[1]


def url(layer="incidents", z=10, lon=LON, lat=LAT, query=""):
    x, y = tile_of(lon, lat, z)
    return f"/tiles/{layer}/{z}/{x}/{y}.pbf" + (f"?{query}" if query else "")


def test_anonymous_gets_401_json(client):
    response = client.get(url())
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/tiles/incidents/at?lon=113&lat=33.8&z=10").status_code == 401


def test_a_tile_is_a_vector_tile_with_cache_headers(client, token):
    response = client.get(url(), headers=auth(token))
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.mapbox-vector-tile"
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert "Cookie" in response.headers["Vary"] and "Authorization" in response.headers["Vary"]
    assert response.get_etag()[0]
    cells = decode(response.data)["incident_cells"]["features"]
    assert sum(f["properties"]["n"] for f in cells) > 100
    grids = client.get(url("grids", 12), headers=auth(token))
    assert grids.status_code == 200 and decode(grids.data)["grids"]["features"]
    assert grids.headers["Cache-Control"] == "private, max-age=60"


def test_if_none_match_gives_304_until_an_incident_is_added(client, token, db_session):
    first = client.get(url(), headers=auth(token))
    etag = first.get_etag()[0]
    again = client.get(url(), headers={**auth(token), "If-None-Match": f'"{etag}"'})
    assert again.status_code == 304
    assert again.data == b""
    assert again.get_etag()[0] == etag
    db_session.execute(text("""
        INSERT INTO incidents (category, severity, status, occurred_at, reported_at, geom)
        VALUES ('SEC', 2, 'reported', now(), now(), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"""),
                       {"lon": LON, "lat": LAT})
    db_session.flush()
    changed = client.get(url(), headers={**auth(token), "If-None-Match": f'"{etag}"'})
    assert changed.status_code == 200
    assert changed.get_etag()[0] != etag
    before = sum(f["properties"]["n"] for f in decode(first.data)["incident_cells"]["features"])
    after = sum(f["properties"]["n"] for f in decode(changed.data)["incident_cells"]["features"])
    assert after == before + 1


def test_etag_depends_on_filters_and_scope(client, token, make_user):
    plain = client.get(url(), headers=auth(token))
    filtered = client.get(url(query="category=DSP&status=open&from=2026-01-01"), headers=auth(token))
    _, town_token = make_user("sup", "town_supervisor", [NAODIAN])
    scoped = client.get(url(), headers=auth(town_token))
    etags = {r.get_etag()[0] for r in (plain, filtered, scoped)}
    assert len(etags) == 3
    assert filtered.data != plain.data and scoped.data != plain.data
    # The filtered tile's ETag does not answer for the unfiltered one.
    assert client.get(url(), headers={**auth(token), "If-None-Match": f'"{filtered.get_etag()[0]}"'}).status_code == 200


@pytest.mark.parametrize("path, status, field", [
    ("/tiles/roads/10/0/0.pbf", 404, "layer"),
    ("/tiles/incidents/23/0/0.pbf", 400, "z"),
    ("/tiles/incidents/3/8/1.pbf", 400, "x"),
    ("/tiles/grids/3/1/8.pbf", 400, "x"),
    ("/tiles/incidents/10/833/409.pbf?category=XX", 400, "category"),
    ("/tiles/incidents/10/833/409.pbf?status=lost", 400, "status"),
    ("/tiles/incidents/10/833/409.pbf?from=2026-13-01", 400, "from"),
    ("/tiles/incidents/10/833/409.pbf?overdue=maybe", 400, "overdue"),
    ("/tiles/incidents/at?lon=abc&lat=33.8&z=10", 400, "lon"),
    ("/tiles/incidents/at?lon=113&lat=33.8&z=40", 400, "z"),
    ("/tiles/incidents/at?lon=113&lat=33.8", 400, "z"),
])
def test_bad_requests_are_4xx_json(client, token, path, status, field):
    response = client.get(path, headers=auth(token))
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field


def test_negative_or_non_numeric_tile_numbers_are_404(client, token):
    assert client.get("/tiles/incidents/10/-1/3.pbf", headers=auth(token)).status_code == 404
    assert client.get("/tiles/incidents/ten/1/3.pbf", headers=auth(token)).status_code == 404


def test_what_is_at_a_point(client, token, db_session):
    lon, lat, incident_id = db_session.execute(text(
        "SELECT ST_X(geom), ST_Y(geom), id FROM incidents ORDER BY id LIMIT 1")).one()
    points = client.get(f"/tiles/incidents/at?lon={lon}&lat={lat}&z=18", headers=auth(token)).get_json()
    assert points["mode"] == "points"
    assert points["incidents"][0]["id"] == incident_id
    assert "contact_phone" not in points["incidents"][0] and "parties" not in points["incidents"][0]
    cell = client.get(f"/tiles/incidents/at?lon={lon}&lat={lat}&z=9&category=DSP", headers=auth(token)).get_json()
    assert cell["mode"] == "cell"
    assert [c["code"] for c in cell["by_category"]] in ([], ["DSP"])


def test_a_grid_worker_gets_only_own_village_from_tiles_and_clicks(client, make_user, db_session):
    """The scope the incidents map relies on: another village's incidents are in no tile and
    no click answer of a village grid worker (who sees own village and own reports)."""
    _, worker = make_user("tile_worker", "grid_worker", [FANYING])
    _, officer = make_user("tile_officer", "county_officer")
    other = db_session.execute(text("SELECT id, ST_X(geom), ST_Y(geom) FROM incidents "
                                    "WHERE village_code <> :v ORDER BY id LIMIT 1"), {"v": FANYING}).one()
    own = db_session.execute(text("SELECT id, ST_X(geom), ST_Y(geom) FROM incidents "
                                  "WHERE village_code = :v ORDER BY id LIMIT 1"), {"v": FANYING}).one()
    for incident_id, lon, lat in (other, own):
        seen = client.get(url(z=17, lon=lon, lat=lat), headers=auth(officer))
        assert incident_id in {f["id"] for f in decode(seen.data)["incidents"]["features"]}
    hidden = client.get(url(z=17, lon=other[1], lat=other[2]), headers=auth(worker))
    assert hidden.status_code == 200
    assert other[0] not in {f["id"] for f in decode(hidden.data).get("incidents", {"features": []})["features"]}
    shown = client.get(url(z=17, lon=own[1], lat=own[2]), headers=auth(worker))
    assert own[0] in {f["id"] for f in decode(shown.data)["incidents"]["features"]}
    at = f"/tiles/incidents/at?lon={other[1]}&lat={other[2]}&z=18"
    assert other[0] in [i["id"] for i in client.get(at, headers=auth(officer)).get_json()["incidents"]]
    assert other[0] not in [i["id"] for i in client.get(at, headers=auth(worker)).get_json().get("incidents", [])]
    cell = client.get(f"/tiles/incidents/at?lon={other[1]}&lat={other[2]}&z=9", headers=auth(worker)).get_json()
    assert cell["mode"] == "cell"
    rows = db_session.execute(text("SELECT count(*) FROM incidents WHERE village_code = :v"), {"v": FANYING}).scalar()
    assert cell["n"] <= rows


def test_overdue_filter_reaches_tiles_and_clicks(client, token):
    plain = client.get(url(), headers=auth(token))
    late = client.get(url(query="overdue=1"), headers=auth(token))
    assert late.status_code == 200 and late.get_etag()[0] != plain.get_etag()[0]
    total = sum(f["properties"]["n"] for f in decode(plain.data)["incident_cells"]["features"])
    overdue = sum(f["properties"]["n"] for f in decode(late.data)["incident_cells"]["features"])
    assert 0 < overdue < total
    assert client.get("/tiles/incidents/at?lon=113&lat=33.8&z=10&overdue=1", headers=auth(token)).status_code == 200
