"""The patrol API and pages over HTTP: upload in each format (multipart and JSON), every bad input a
clear 4xx with nothing written, tracks and coverage by role, route planning and its GPX read back
with gpxpy, and the pages a police officer uses."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import gpxpy
import pytest

from tests.conftest import auth
from tests.incident_helpers import cheap_password_hashing
from tests.patrol_helpers import (FAR_ZONE, OTHER_ZONE, QUIET_DAY, ZONE, csv_bytes, geojson_bytes, gpx_bytes,
                                  grid_points, patrol_counts, stay)

ROUTE = {"zone": ZONE, "shift_start": "2026-11-01T08:00", "shift_minutes": 240, "stops": 5, "stop_minutes": 12}


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def people(make_user):
    return {name: make_user(f"pa_{name}", role, scopes)[1] for name, role, scopes in (
        ("police", "police", [ZONE]), ("far_police", "police", [FAR_ZONE]), ("county", "county_officer", []),
        ("viewer", "viewer", []), ("town", "town_supervisor", ["410421102000"]),
        ("worker", "grid_worker", ["410421102204"]))}


@pytest.fixture
def fixes(db_session):
    _, lon, lat = grid_points(db_session)[0]
    return stay(lon, lat, QUIET_DAY + timedelta(hours=8), 12)


def upload(client, token, content: bytes, name: str, zone: str = ZONE, **form):
    data = {"file": (io.BytesIO(content), name), "zone": zone, **form}
    return client.post("/api/patrol/tracks", data=data, content_type="multipart/form-data", headers=auth(token))


@pytest.mark.parametrize("make, name", [(gpx_bytes, "day.gpx"), (geojson_bytes, "day.geojson"),
                                        (csv_bytes, "day.csv")])
def test_upload_each_format(client, db_session, people, fixes, make, name):
    before = patrol_counts(db_session)
    response = upload(client, people["police"], make(fixes + [(fixes[-1][0], fixes[-1][1] + 1e-4, fixes[-1][2])]),
                      name)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["counts"]["kept"] == 25 and body["counts"]["duplicate_time"] == 1 and body["counts"]["dropped"] == 1
    assert body["track"]["zone_code"] == ZONE and body["track"]["officer"] == "pa_police"
    assert body["track"]["started_at"] == "2026-11-10T08:00:00+08:00"
    assert response.headers["Location"].endswith(f"/api/patrol/tracks/{body['track']['id']}")
    assert patrol_counts(db_session)[:2] == (before[0] + 1, before[1] + 25)
    detail = client.get(response.headers["Location"], headers=auth(people["police"]))
    assert detail.status_code == 200 and detail.json["fixes_kept"] == 25


def test_upload_as_json(client, db_session, people, fixes):
    body = {"zone": ZONE, "officer": "闹店派出所巡逻二组",
            "fixes": [{"time": t.isoformat(), "lon": x, "lat": y} for t, x, y in fixes]}
    response = client.post("/api/patrol/tracks", json=body, headers=auth(people["county"]))
    assert response.status_code == 201 and response.json["track"]["officer"] == "闹店派出所巡逻二组"
    content = {"zone": ZONE, "format": "csv", "content": csv_bytes(fixes).decode()}
    response = client.post("/api/patrol/tracks", json=content, headers=auth(people["police"]))
    assert response.status_code == 201 and response.json["track"]["source_format"] == "csv"


@pytest.mark.parametrize("case, status, field, message", [
    ("empty", 400, "file", "empty"),
    ("corrupt", 400, "file", "not a valid GPX"),
    ("untimed", 400, "file", "none carries a timestamp"),
    ("no_file", 400, "file", "choose a track file"),
    ("other_zone", 403, "zone", "not in your area"),
    ("no_zone", 400, "zone", "choose a patrol zone"),
    ("bad_json_fixes", 400, "fixes", "non-empty list"),
    ("text_body", 415, "Content-Type", "multipart/form-data"),
])
def test_bad_uploads_are_clear_and_write_nothing(client, db_session, people, fixes, case, status, field, message):
    before = patrol_counts(db_session)
    token = people["police"]
    if case == "empty":
        response = upload(client, token, b"", "day.gpx")
    elif case == "corrupt":
        response = upload(client, token, b"<gpx version='1.1'><trk><trkseg><trkpt lat='33.8'", "day.gpx")
    elif case == "untimed":
        response = upload(client, token, gpx_bytes(fixes, with_times=False), "day.gpx")
    elif case == "no_file":
        response = client.post("/api/patrol/tracks", data={"zone": ZONE}, content_type="multipart/form-data",
                               headers=auth(token))
    elif case == "other_zone":
        response = upload(client, token, gpx_bytes(fixes), "day.gpx", zone=OTHER_ZONE)
    elif case == "no_zone":
        response = upload(client, token, gpx_bytes(fixes), "day.gpx", zone="")
    elif case == "bad_json_fixes":
        response = client.post("/api/patrol/tracks", json={"zone": ZONE, "fixes": []}, headers=auth(token))
    else:
        response = client.post("/api/patrol/tracks", data="time,lon,lat", content_type="text/plain",
                               headers=auth(token))
    assert response.status_code == status, response.json
    error = response.json["error"]
    assert error["field"] == field and message in error["message"]
    assert patrol_counts(db_session) == before


def test_who_may_upload(client, db_session, people, fixes):
    before = patrol_counts(db_session)
    for name in ("viewer", "town"):
        response = upload(client, people[name], gpx_bytes(fixes), "day.gpx")
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    assert upload(client, people["worker"], gpx_bytes(fixes), "day.gpx").status_code == 403
    assert client.post("/api/patrol/tracks", data={}, content_type="multipart/form-data").status_code == 401
    assert patrol_counts(db_session) == before


def test_track_lists_by_role(client, people, fixes):
    track_id = upload(client, people["police"], gpx_bytes(fixes), "day.gpx").json["track"]["id"]
    args = "?from=2026-11-10&to=2026-11-11"
    mine = client.get(f"/api/patrol/tracks{args}", headers=auth(people["police"])).json["tracks"]
    assert [t["id"] for t in mine] == [track_id] and mine[0]["officer"] == "pa_police"
    for name in ("viewer", "town"):
        rows = client.get(f"/api/patrol/tracks{args}", headers=auth(people[name])).json["tracks"]
        assert [t["id"] for t in rows] == [track_id] and "officer" not in rows[0] and "uploaded_by" not in rows[0]
        geo = client.get(f"/api/patrol/tracks{args}&format=geojson", headers=auth(people[name]))
        assert geo.mimetype == "application/geo+json" and "pa_police" not in geo.get_data(as_text=True)
    assert client.get(f"/api/patrol/tracks{args}", headers=auth(people["far_police"])).json["tracks"] == []
    assert client.get(f"/api/patrol/tracks/{track_id}", headers=auth(people["far_police"])).status_code == 404
    assert client.get(f"/api/patrol/tracks{args}", headers=auth(people["worker"])).status_code == 403
    assert client.get(f"/api/patrol/tracks{args}&zone={ZONE}", headers=auth(people["far_police"])).status_code == 403


def test_coverage_in_every_format(client, db_session, people, fixes):
    code = grid_points(db_session)[0][0]
    upload(client, people["police"], csv_bytes(fixes), "day.csv")
    args = "?from=2026-11-10&to=2026-11-11"
    body = client.get(f"/api/patrol/coverage{args}", headers=auth(people["police"])).json
    grids = {g["code"]: g for g in body["grids"]}
    assert {g["zone_code"] for g in grids.values()} == {ZONE}
    assert (grids[code]["visits"], grids[code]["dwell_minutes"], grids[code]["share_10_15"]) == (1, 12.0, 1.0)
    assert grids[code]["last_visit_end"] == "2026-11-10T08:12:00+08:00"
    assert body["zones"][0]["zone_code"] == ZONE and body["zones"][0]["tracks"] == 1
    assert body["period"]["label"] == "2026-11-10 至 2026-11-10"
    geo = client.get(f"/api/patrol/coverage{args}&format=geojson", headers=auth(people["police"]))
    assert geo.mimetype == "application/geo+json"
    feature = next(f for f in geo.json["features"] if f["id"] == code)
    assert feature["geometry"]["type"] == "MultiPolygon" and feature["properties"]["visits"] == 1
    hot = client.get(f"/api/patrol/coverage{args}&format=geojson&level=hotspots", headers=auth(people["police"]))
    assert hot.status_code == 200 and hot.json["type"] == "FeatureCollection"
    text = client.get(f"/api/patrol/coverage{args}&format=csv", headers=auth(people["police"])).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {r["code"]: r for r in rows}[code]["visits"] == "1" and len(rows) == len(grids)
    zones_csv = client.get(f"/api/patrol/coverage{args}&format=csv&level=zones", headers=auth(people["police"]))
    assert zones_csv.get_data(as_text=True).lstrip("\ufeff").startswith("zone_code,")


def test_coverage_by_role(client, people):
    args = "?from=2026-10-25&to=2026-11-01"
    town = client.get(f"/api/patrol/coverage{args}", headers=auth(people["town"])).json
    assert {z["zone_code"] for z in town["zones"]} == {ZONE, OTHER_ZONE}
    viewer = client.get(f"/api/patrol/coverage{args}", headers=auth(people["viewer"]))
    assert viewer.status_code == 200 and len(viewer.json["zones"]) == 28
    assert "巡逻一组" not in viewer.get_data(as_text=True)  # units and officers stay out of aggregates
    assert client.get(f"/api/patrol/coverage{args}&zone={ZONE}", headers=auth(people["far_police"])).status_code == 403
    assert client.get(f"/api/patrol/coverage{args}", headers=auth(people["worker"])).status_code == 403
    bad = client.get("/api/patrol/coverage?from=2026-01-01&to=2026-11-01", headers=auth(people["county"]))
    assert bad.status_code == 400 and bad.json["error"]["field"] == "from"
    bad = client.get("/api/patrol/coverage?format=xml", headers=auth(people["county"]))
    assert bad.status_code == 400 and bad.json["error"]["field"] == "format"


def test_plan_a_route_and_read_its_gpx(client, db_session, people):
    before = patrol_counts(db_session)
    response = client.post("/api/patrol/routes", json=ROUTE, headers=auth(people["police"]))
    assert response.status_code == 201, response.json
    route = response.json
    assert patrol_counts(db_session)[2] == before[2] + 1
    assert 1 <= len(route["stops"]) <= 5 and route["travel_mode"] == "straight_line"
    assert route["travel_mode_zh"] == "直线距离按设定车速估算" and route["total_minutes"] <= 240
    assert [s["order"] for s in route["stops"]] == list(range(1, len(route["stops"]) + 1))
    detail = client.get(response.headers["Location"], headers=auth(people["viewer"]))
    assert detail.status_code == 200 and detail.json["stops"] == route["stops"] and "created_by" not in detail.json
    gpx_response = client.get(f"/api/patrol/routes/{route['id']}.gpx", headers=auth(people["police"]))
    assert gpx_response.mimetype == "application/gpx+xml"
    assert "attachment" in gpx_response.headers["Content-Disposition"]
    gpx = gpxpy.parse(gpx_response.get_data(as_text=True))
    assert [w.name for w in gpx.waypoints] == [f"{s['order']:02d} {s['grid_code']}" for s in route["stops"]]
    assert [(w.longitude, w.latitude) for w in gpx.waypoints] == [(s["lon"], s["lat"]) for s in route["stops"]]
    assert len(gpx.tracks[0].segments[0].points) == len(route["path"]["coordinates"])
    assert client.get(f"/api/patrol/routes/{route['id']}", headers=auth(people["far_police"])).status_code == 404
    listed = client.get("/api/patrol/routes", headers=auth(people["police"])).json["routes"]
    assert listed[0]["id"] == route["id"]


@pytest.mark.parametrize("change, token, status, field, message", [
    ({"shift_minutes": 10}, "police", 400, "shift_minutes", "too short for even one stop"),
    ({"stop_minutes": 20}, "police", 400, "stop_minutes", "between 10 and 15"),
    ({"shift_start": ""}, "police", 400, "shift_start", "required"),
    ({"zone": OTHER_ZONE}, "police", 403, "zone", "not in your area"),
    ({}, "viewer", 403, "role", "only police and county officers"),
    ({"zone": "nowhere"}, "county", 400, "zone", "no patrol zone"),
])
def test_bad_route_requests_write_nothing(client, db_session, people, change, token, status, field, message):
    before = patrol_counts(db_session)
    response = client.post("/api/patrol/routes", json={**ROUTE, **change}, headers=auth(people[token]))
    assert response.status_code == status, response.json
    assert response.json["error"]["field"] == field and message in response.json["error"]["message"]
    assert patrol_counts(db_session) == before


def test_route_in_a_zone_without_risky_grids(app, client, db_session, people):
    from gridmap.services import patrol

    risk_result = patrol.risk_for(db_session, patrol.parse_moment(ROUTE["shift_start"], "s"),
                                  patrol.risk.RiskSettings.from_config(app.config))
    zones = patrol.grid_zones(db_session)
    hot_zones = set(zones.reindex(risk_result.grids.loc[risk_result.grids["gi_bin"] > 0, "code"]).dropna())
    quiet = sorted(set(zones.dropna()) - hot_zones)[0]
    app.config["PATROL_HIGH_RISK_LEVEL"] = 6  # only hot spots count, and this zone has none
    before = patrol_counts(db_session)
    response = client.post("/api/patrol/routes", json={**ROUTE, "zone": quiet}, headers=auth(people["county"]))
    assert response.status_code == 400 and response.json["error"]["field"] == "zone"
    assert "no risky grid" in response.json["error"]["message"]
    assert patrol_counts(db_session) == before


def test_route_body_must_be_json(client, people):
    response = client.post("/api/patrol/routes", data=ROUTE, headers=auth(people["police"]))
    assert response.status_code == 415


def test_cookie_writes_need_the_csrf_header(client, people, fixes):
    client.post("/login", data={"username": "pa_police", "password": "test-password-1"})
    response = client.post("/api/patrol/routes", json=ROUTE)
    assert response.status_code == 403 and response.json["error"]["code"] == "csrf"


# --- pages ------------------------------------------------------------------------------------

def login(client, username):
    response = client.post("/login", data={"username": username, "password": "test-password-1"})
    assert response.status_code == 302


def test_a_police_officer_uploads_sees_the_gaps_and_plans_the_next_shift(client, db_session, people, fixes):
    login(client, "pa_police")
    page = client.get("/patrol/tracks")
    assert page.status_code == 200 and "上传" in page.get_data(as_text=True)
    spoiled = fixes + [(fixes[-1][0] + timedelta(seconds=20), fixes[-1][1] - 0.03, fixes[-1][2])]
    response = client.post("/patrol/tracks", data={"file": (io.BytesIO(gpx_bytes(spoiled)), "day.gpx"), "zone": ZONE,
                                                   "officer": "<b>巡逻一组</b>"},
                           content_type="multipart/form-data", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<b id="gm-fixes-kept">25</b>' in html and '<b id="gm-fixes-dropped">1</b>' in html
    assert "速度异常 1" in html
    assert "&lt;b&gt;巡逻一组&lt;/b&gt;" in html and "<b>巡逻一组</b>" not in html

    coverage = client.get(f"/patrol/coverage?zone={ZONE}&from=2026-11-10&to=2026-11-11&hours=12")
    html = coverage.get_data(as_text=True)
    assert coverage.status_code == 200 and 'id="gm-stale"' in html and grid_points(db_session)[0][0] in html
    assert "gm-cov-highlight" in html and "/vendor/leaflet/dist/leaflet.js" in html
    assert 'href="/patrol/routes/new?zone=410421102000-Z1"' in html

    form = client.get(f"/patrol/routes/new?zone={ZONE}")
    assert 'value="2026-11-10T20:00"' in form.get_data(as_text=True)  # the shift after the upload
    assert "未加载道路网络" in form.get_data(as_text=True)
    planned = client.post("/patrol/routes", data={**ROUTE, "shift_start": "2026-11-10T20:00"})
    assert planned.status_code == 302
    route_page = client.get(planned.headers["Location"])
    html = route_page.get_data(as_text=True)
    assert route_page.status_code == 200 and 'id="gm-gpx-link"' in html and 'data-mode="straight_line"' in html
    assert html.count('<tr data-order="') >= 1


def test_route_form_errors_show_on_the_page(client, db_session, people):
    login(client, "pa_police")
    before = patrol_counts(db_session)
    response = client.post("/patrol/routes", data={**ROUTE, "shift_minutes": "5"})
    assert response.status_code == 400
    assert "too short for even one stop" in response.get_data(as_text=True)
    assert patrol_counts(db_session) == before


def test_upload_page_errors_show_on_the_page(client, db_session, people):
    login(client, "pa_police")
    before = patrol_counts(db_session)
    response = client.post("/patrol/tracks", data={"file": (io.BytesIO(b"<gpx"), "day.gpx"), "zone": ZONE},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and 'id="gm-track-error"' in response.get_data(as_text=True)
    assert patrol_counts(db_session) == before


def test_pages_by_role(client, people):
    login(client, "pa_viewer")
    assert client.get("/patrol/coverage").status_code == 200
    assert client.get("/patrol/routes/new").status_code == 403
    tracks = client.get("/patrol/tracks").get_data(as_text=True)
    assert 'id="gm-track-form"' not in tracks and "巡逻人员/组" not in tracks
    client.post("/logout")
    login(client, "pa_worker")
    assert client.get("/patrol/coverage").status_code == 403
    assert "/patrol/coverage" not in client.get("/").get_data(as_text=True)
