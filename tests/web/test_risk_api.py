"""The risk and report API over real HTTP handling: formats, bad input, scoping by role, Excel and pages."""
from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from sqlalchemy import text

from tests.conftest import auth
from tests.risk_helpers import CHENGGUAN, FANYING, NAODIAN, PERIOD_ARGS, add_incident, at, grid_point

PHONE, PARTIES = "13912345678", "当事人张某某"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    from werkzeug.security import generate_password_hash

    from gridmap.services import accounts

    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))


@pytest.fixture
def people(make_user):
    return {name: make_user(f"riskapi_{name}", role, scopes)[1] for name, role, scopes in (
        ("county", "county_officer", []), ("viewer", "viewer", []), ("town", "town_supervisor", [NAODIAN]),
        ("worker", "grid_worker", [FANYING]))}


def count(session, sql: str, **params) -> int:
    return session.execute(text(sql), params).scalar_one()


def get(client, token, path, **params):
    return client.get(path, query_string={**PERIOD_ARGS, **params}, headers=auth(token))


def test_grids_as_json_geojson_and_csv(client, db_session, people):
    grid, _, _ = grid_point(db_session, FANYING)
    add_incident(db_session, FANYING, category="DSP", severity=3, occurred=at(10))
    add_incident(db_session, FANYING, category="SEC", severity=1, occurred=at(11))
    n_grids = count(db_session, "SELECT count(*) FROM grids")

    body = get(client, people["county"], "/api/risk/grids").get_json()
    assert body["period"]["label"] == "2024-03-01 至 2024-03-31" and body["scope"] == "county"
    assert len(body["grids"]) == n_grids == body["count"]["grids"]
    row = next(r for r in body["grids"] if r["code"] == grid)
    assert (row["n_DSP"], row["n_SEC"], row["n_total"], row["risk_level"]) == (1, 1, 2, 2)
    assert {"score", "per_km2", "per_1000", "open_backlog", "overdue_backlog", "change_pct", "gi_z", "gi_bin"} <= set(row)
    assert [c["level"] for c in body["legend"]["score"]] == [1, 2]

    response = get(client, people["county"], "/api/risk/grids", format="geojson")
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    collection = response.get_json()
    feature = next(f for f in collection["features"] if f["id"] == grid)
    assert feature["geometry"]["type"] == "MultiPolygon" and feature["properties"]["n_total"] == 2
    assert collection["legend"]["classes"] == 5

    response = get(client, people["county"], "/api/risk/grids", format="csv", category="DSP")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == n_grids
    mine = next(r for r in rows if r["code"] == grid)
    assert (mine["n_DSP"], mine["n_SEC"], mine["n_total"]) == ("1", "0", "1")


def test_villages_and_towns(client, db_session, people):
    add_incident(db_session, FANYING, category="PET", subcategory="village", occurred=at(3))
    villages = get(client, people["county"], "/api/risk/villages").get_json()["villages"]
    assert len(villages) == count(db_session, "SELECT count(*) FROM villages")
    fanying = next(v for v in villages if v["code"] == FANYING)
    assert fanying["name"] == "范营村" and fanying["n_PET"] == 1 and fanying["town_name"] == "闹店镇"
    towns = get(client, people["county"], "/api/risk/towns", format="geojson").get_json()
    naodian = next(f for f in towns["features"] if f["id"] == NAODIAN)
    assert naodian["properties"]["n_total"] == 1 and naodian["geometry"]["type"] == "MultiPolygon"
    lines = get(client, people["county"], "/api/risk/towns", format="csv").get_data(as_text=True).splitlines()
    assert len(lines) == 1 + count(db_session, "SELECT count(*) FROM towns")


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/risk/grids", {"from": "2024-02-31"}, "from"),
    ("/api/risk/grids", {"from": "yesterday"}, "from"),
    ("/api/risk/grids", {"to": "2024-03-01"}, "to"),
    ("/api/risk/grids", {"from": "2024-03-10", "to": "2024-03-01"}, "to"),
    ("/api/risk/grids", {"to": "2999-01-01"}, "to"),
    ("/api/risk/villages", {"format": "xlsx"}, "format"),
    ("/api/risk/towns", {"category": "DSP,BAD"}, "category"),
    ("/api/risk/heat", {"from": "2024-13-01"}, "from"),
    ("/api/report", {"to": "2024-03-01"}, "to"),
    ("/api/report", {"distance": "far"}, "distance"),
])
def test_bad_input_is_a_400_naming_the_field(client, people, path, params, field):
    response = get(client, people["county"], path, **params)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and error["field"] == field and error["message"]


def test_login_is_required(client):
    for path in ("/api/risk/grids", "/api/risk/heat", "/api/report"):
        response = client.get(path)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/risk").status_code == 302


def test_scope_by_role(client, db_session, people):
    add_incident(db_session, FANYING, category="DSP", occurred=at(10))
    add_incident(db_session, FANYING, category="SEC", occurred=at(12))
    naodian_grids = count(db_session, "SELECT count(*) FROM grids g JOIN villages v ON v.code = g.village_code "
                                      "WHERE v.town_code = :t", t=NAODIAN)
    town = get(client, people["town"], "/api/risk/grids").get_json()
    assert town["scope"] == "scoped" and len(town["grids"]) == naodian_grids
    assert {g["town_code"] for g in town["grids"]} == {NAODIAN}
    assert [t["code"] for t in get(client, people["town"], "/api/risk/towns").get_json()["towns"]] == [NAODIAN]
    worker = get(client, people["worker"], "/api/risk/grids").get_json()
    assert {g["village_code"] for g in worker["grids"]} == {FANYING}
    heat = get(client, people["town"], "/api/risk/heat").get_json()
    assert heat["total"] == 2 and heat["months"] == ["2024-03"]
    by_town = get(client, people["worker"], "/api/report").get_json()["sanling"]["by_town"]
    assert [(r["town_name"], r["n"]) for r in by_town] == [("闹店镇（可见部分）", 1), ("合计（可见范围）", 1)]


def test_viewer_sees_aggregates_without_personal_details(client, db_session, people):
    case = add_incident(db_session, chengguan_village(db_session), category="SEC", legal_class="criminal",
                        enterprise=True, occurred=at(5), phone=PHONE, parties=PARTIES)
    viewer = get(client, people["viewer"], "/api/report")
    county = get(client, people["county"], "/api/report")
    assert viewer.status_code == county.status_code == 200
    viewer_body, county_body = viewer.get_json(), county.get_json()
    assert viewer_body["enterprise"]["by_town"][-1]["n_enterprise_criminal_cases"] == 1
    assert viewer_body["enterprise"]["cases"] is None
    assert [c["id"] for c in county_body["enterprise"]["cases"]] == [case]
    grids = get(client, people["viewer"], "/api/risk/grids")
    assert len(grids.get_json()["grids"]) == count(db_session, "SELECT count(*) FROM grids")
    for response in (viewer, county, grids, get(client, people["viewer"], "/api/risk/heat"),
                     get(client, people["viewer"], "/report/export.xlsx")):
        assert PHONE.encode() not in response.data and PARTIES.encode() not in response.data
    page = get(client, people["viewer"], "/report").get_data(as_text=True)
    assert "只读账户只显示汇总数字" in page and f"#{case}<" not in page
    assert f"#{case}<" in get(client, people["county"], "/report").get_data(as_text=True)


def chengguan_village(session) -> str:
    return session.execute(text("SELECT code FROM villages WHERE town_code = :t ORDER BY code LIMIT 1"),
                           {"t": CHENGGUAN}).scalar_one()


def test_excel_exports_read_back(client, db_session, people):
    grid, _, _ = grid_point(db_session, FANYING)
    add_incident(db_session, FANYING, category="ACC", subcategory="injury", occurred=at(7))
    response = get(client, people["county"], "/risk/export.xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    book = openpyxl.load_workbook(io.BytesIO(response.data))
    sheet = book["网格风险"]
    headers = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == grid)
    assert row[headers.index("安全事故")] == 1 and row[headers.index("村（社区）")] == "范营村"
    assert book["说明"]["B2"].value == "2024-03-01 至 2024-03-31"

    book = openpyxl.load_workbook(io.BytesIO(get(client, people["county"], "/report/export.xlsx").data))
    sheet = book["三零村（社区）"]
    headers = [c.value for c in sheet[1]]
    fanying = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == FANYING)
    assert fanying[headers.index("零事故")] is False and fanying[headers.index("“三零”达标")] is False
    assert headers[0] == "村（社区）编码" and "越级/上交信访" in headers


def test_pages_render_and_escape_names(client, db_session, people):
    grid, _, _ = grid_point(db_session, FANYING)
    evil = '<img src=x onerror="alert(1)">'
    db_session.execute(text("UPDATE grids SET name = :n WHERE code = :g"), {"n": evil, "g": grid})
    db_session.execute(text("UPDATE villages SET name = :n WHERE code = :v"), {"n": evil, "v": FANYING})
    add_incident(db_session, FANYING, category="PET", subcategory="county", occurred=at(7))
    client.post("/login", data={"username": "riskapi_county", "password": "test-password-1"})
    for path in ("/risk", "/risk/heat", "/report"):
        response = client.get(path, query_string=PERIOD_ARGS)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert evil not in page and "<img src=x" not in page, path
        assert "https://" not in page and "cdn" not in page.lower(), path
    risk_page = client.get("/risk", query_string=PERIOD_ARGS).get_data(as_text=True)
    assert grid in risk_page and "gm-risk-top" in risk_page and "半衰期" in risk_page
    report_page = client.get("/report", query_string=PERIOD_ARGS).get_data(as_text=True)
    assert "&lt;img src=x" in report_page  # the village that is not compliant, listed escaped
    bad = client.get("/risk", query_string={"from": "nonsense"}).get_data(as_text=True)
    assert "gm-error" in bad and "from must be a date" in bad


def test_a_large_grid_layer_is_fetched_by_url(app, client, people):
    app.config["RISK_INLINE_MAX_FEATURES"] = 100
    client.post("/login", data={"username": "riskapi_county", "password": "test-password-1"})
    page = client.get("/risk", query_string={**PERIOD_ARGS, "category": "DSP"}).get_data(as_text=True)
    assert '"data": null' in page
    assert '"url": "/api/risk/grids?format=geojson&from=2024-03-01&to=2024-04-01&category=DSP"' in page.replace(
        "\\u0026", "&")
    assert len(page) < 60_000  # the 621 grids are not in it
