"""Legal-publicity activities, and importing places from CSV, GeoJSON and GeoPackage: all rows or none."""
import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely.geometry import Point
from sqlalchemy import text

from gridmap.services import registries
from gridmap.errors import ValidationError
from gridmap.services.importing import SourceOptions
from tests.conftest import auth
from tests.registries.conftest import FANYING, NAODIAN, counts, interior_point


def test_activity_gets_its_village_and_counts_per_village(client, db_session, users):
    _, lon, lat = interior_point(db_session, FANYING)
    token = users["town_supervisor"][1]
    response = client.post("/api/activities", headers=auth(token), json={
        "held_on": "2024-05-04", "kind": "schools", "title": "<b>禁毒</b>进校园", "audience": 320,
        "organiser": "闹店司法所", "lon": lon, "lat": lat})
    assert response.status_code == 201
    assert (response.get_json()["village_code"], response.get_json()["town_code"]) == (FANYING, NAODIAN)
    listing = client.get("/api/activities?from=2024-05-01&to=2024-05-31", headers=auth(token)).get_json()
    titles = [f["properties"]["title"] for f in listing["features"]]
    assert "<b>禁毒</b>进校园" in titles
    per_village = client.get("/api/activities/per-village?from=2024-05-01&to=2024-05-31",
                             headers=auth(token)).get_json()["villages"]
    assert [(v["village_code"], v["activities"], v["audience"]) for v in per_village] == [(FANYING, 1, 320)]


@pytest.mark.parametrize("change, field", [
    ({"kind": "internet"}, "kind"), ({"audience": -1}, "audience"), ({"held_on": "2099-01-01"}, "held_on"),
    ({"title": ""}, "title"), ({"lat": None}, "lat"),
])
def test_bad_activity_input_writes_nothing(client, db_session, users, change, field):
    _, lon, lat = interior_point(db_session, FANYING)
    before = counts(db_session, "legal_activities")
    body = {"held_on": "2024-05-04", "kind": "villages", "title": "普法", "lon": lon, "lat": lat, **change}
    response = client.post("/api/activities", headers=auth(users["county_officer"][1]), json=body)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    assert counts(db_session, "legal_activities") == before


def _csv(path, rows):
    lines = ["ref,kind,subkind,name,address,inspection_interval_days,lon,lat"]
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_import_all_rows(tmp_path, db_session, users):
    _, lon, lat = interior_point(db_session, FANYING)
    path = _csv(tmp_path / "places.csv", [("IMP-1", "nine_small", "shop", "导入小店", "范营村2号", "", lon, lat),
                                          ("IMP-2", "delivery", "express", "导入驿站", "", 15, lon + 0.0001, lat)])
    report = registries.import_places(db_session, users["county_officer"][0], path)
    assert (report.rows, report.imported, report.by_kind) == (2, 2, {"nine_small": 1, "delivery": 1})
    rows = db_session.execute(text("SELECT ref, village_code, inspection_interval_days FROM places "
                                   "WHERE ref LIKE 'IMP-%' ORDER BY ref")).all()
    assert rows == [("IMP-1", FANYING, 90), ("IMP-2", FANYING, 15)]


def test_import_with_bad_rows_writes_nothing_and_names_them(tmp_path, db_session, users):
    _, lon, lat = interior_point(db_session, FANYING)
    path = _csv(tmp_path / "bad.csv", [
        ("OK-1", "nine_small", "shop", "好店", "", "", lon, lat),
        ("BAD-1", "casino", "", "赌场", "", "", lon, lat),             # row 2: unknown kind
        ("BAD-2", "nine_small", "shop", "北京小店", "", "", 116.4, 39.9),  # row 3: outside the county
        ("OK-1", "nine_small", "shop", "重复", "", "", lon, lat),       # row 4: ref repeats row 1
        ("BAD-3", "nine_small", "shop", "坏坐标", "", "", "east", lat),   # row 5: no point
    ])
    before = counts(db_session, "places", "audit_log")
    with pytest.raises(ValidationError) as err:
        registries.import_places(db_session, users["county_officer"][0], path)
    assert [(d["row"], d["code"], d["reason"].split(":")[0]) for d in err.value.details] == [
        (2, "BAD-1", "kind"), (3, "BAD-2", "lon"), (4, "OK-1", "ref"), (5, "BAD-3", "lon")]
    assert "nothing was imported" in err.value.message and "row 2 (code BAD-1): kind" in err.value.message
    assert counts(db_session, "places", "audit_log") == before


def test_geojson_in_a_metric_crs_and_geopackage(tmp_path, db_session, users):
    _, lon, lat = interior_point(db_session, FANYING)
    frame = gpd.GeoDataFrame({"ref": ["GJ-1"], "kind": ["hazardous"], "subkind": ["sale"], "name": ["烟花点"],
                              "inspection_interval_days": [30]}, geometry=[Point(lon, lat)], crs=4326)
    frame.to_crs(4547).to_file(tmp_path / "places.geojson", driver="GeoJSON")
    frame.assign(ref=["GP-1"]).to_file(tmp_path / "places.gpkg", layer="places", driver="GPKG")
    officer = users["county_officer"][0]
    assert registries.import_places(db_session, officer, tmp_path / "places.geojson").imported == 1
    gpkg = registries.import_places(db_session, officer, tmp_path / "places.gpkg", SourceOptions(layer="places"))
    assert gpkg.imported == 1 and gpkg.lines() == ["places: 1 rows read, 1 new (hazardous 1)"]
    rows = db_session.execute(text("SELECT ref, village_code, round(ST_X(geom)::numeric, 6), "
                                   "round(ST_Y(geom)::numeric, 6) FROM places WHERE ref IN ('GJ-1', 'GP-1') "
                                   "ORDER BY ref")).all()
    assert [r[:2] for r in rows] == [("GJ-1", FANYING), ("GP-1", FANYING)]
    assert float(rows[0][2]) == pytest.approx(lon, abs=1e-6) and float(rows[0][3]) == pytest.approx(lat, abs=1e-6)


def test_import_refuses_scope_and_format(tmp_path, db_session, users):
    _, lon, lat = interior_point(db_session, "410421100003")   # a village of 城关镇
    path = _csv(tmp_path / "other.csv", [("SC-1", "nine_small", "shop", "外镇店", "", "", lon, lat)])
    with pytest.raises(ValidationError) as err:
        registries.import_places(db_session, users["town_supervisor"][0], path)
    assert err.value.details == [{"row": 1, "code": "SC-1", "reason": "lon: the point is outside your area"}]
    (tmp_path / "places.docx").write_text("x")
    with pytest.raises(ValidationError) as err:
        registries.import_places(db_session, users["county_officer"][0], tmp_path / "places.docx")
    assert err.value.field == "file"
    mapped = tmp_path / "mapped.csv"
    _, lon, lat = interior_point(db_session, FANYING)
    mapped.write_text(f"编号,名称,经度,纬度\nMAP-1,映射小店,{lon},{lat}\n", encoding="utf-8")
    report = registries.import_places(db_session, users["county_officer"][0], mapped, SourceOptions(
        mapping={"ref": "编号", "name": "名称"}, constants={"kind": "nine_small", "subkind": "shop"}))
    assert report.by_kind == {"nine_small": 1}


def test_import_api_and_cli_errors(tmp_path, client, db_session, users):
    _, lon, lat = interior_point(db_session, FANYING)
    path = _csv(tmp_path / "api.csv", [("API-1", "nine_small", "shop", "接口导入", "", "", lon, lat)])
    with path.open("rb") as fh:
        response = client.post("/api/places/import", headers=auth(users["town_supervisor"][1]),
                               data={"file": (fh, "api.csv")}, content_type="multipart/form-data")
    assert response.status_code == 201 and response.get_json()["imported"] == 1
    bad = _csv(tmp_path / "bad.csv", [("CLI-1", "nine_small", "shop", "", "", "", lon, lat)])
    from gridmap.cli import main

    result = CliRunner().invoke(main, ["import", "places", str(bad), "--quiet"])
    assert result.exit_code == 2
    assert "row 1 (code CLI-1): name: name is required" in result.output
    assert db_session.execute(text("SELECT count(*) FROM places WHERE ref = 'CLI-1'")).scalar_one() == 0
