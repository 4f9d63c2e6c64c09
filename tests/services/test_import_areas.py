"""`gridmap import towns|villages|grids|zones|stations|mediation-points` with real files of every
format, good and broken, against a real PostGIS database of the module's own."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import Transformer
from shapely import box

from gridmap.analysis.gcj02 import wgs84_to_gcj02
from gridmap.services.importing import apply_code_template
from tests.services.import_support import (GRIDS, TOWNS, VILLAGES, clear_places, frame, gridmap, rows, scalar,
                                           scratch_database, seed_county)


@pytest.fixture(scope="module")
def url():
    yield from scratch_database("gm_import_areas")


@pytest.fixture
def db(url):
    clear_places(url)
    return url


@pytest.fixture
def county(db):
    seed_county(db, grids=False)
    return db


def write(path, records, geometry, crs="EPSG:4326", driver=None, **kw):
    pyogrio.write_dataframe(frame(records, geometry, crs), path, driver=driver, **kw)
    return path


def towns_frame():
    return [{"XZQDM": code, "MC": name} for code, (name, _) in TOWNS.items()], [g for _, g in TOWNS.values()]


def test_towns_from_projected_geopackage_with_column_mapping(db, tmp_path):
    records, geoms = towns_frame()
    to_gk = Transformer.from_crs(4326, 4547, always_xy=True)
    projected = [shapely.transform(g, lambda xy: np.column_stack(to_gk.transform(xy[:, 0], xy[:, 1]))) for g in geoms]
    path = write(tmp_path / "towns.gpkg", records, projected, crs="EPSG:4547")

    result = gridmap(db, "import", "towns", path, "--map", "code=XZQDM", "--map", "name=MC", "--quiet")

    assert result.exit_code == 0, result.output
    assert "2 new, 0 updated" in result.stdout
    stored = rows(db, "SELECT code, name, ST_XMin(geom), ST_YMax(geom), ST_SRID(geom) FROM towns ORDER BY code")
    assert [(c, n) for c, n, *_ in stored] == [("410421901000", "甲镇"), ("410421902000", "乙镇")]
    assert stored[0][2] == pytest.approx(113.00, abs=1e-6) and stored[0][3] == pytest.approx(33.90, abs=1e-6)
    assert {s[4] for s in stored} == {4326}

    again = gridmap(db, "import", "towns", path, "--map", "code=XZQDM", "--map", "name=MC", "--quiet")
    assert again.exit_code == 0 and "0 new, 2 updated" in again.stdout
    assert scalar(db, "SELECT count(*) FROM towns") == 2


def test_villages_from_shapefile_derive_their_town(db, tmp_path):
    seed_county(db, grids=False)
    rows(db, "DELETE FROM villages RETURNING code")   # keep the towns only
    records = [{"code": code, "name": name} for code, (name, _, _) in VILLAGES.items()]
    path = write(tmp_path / "villages.shp", records, [g for *_, g in VILLAGES.values()])

    result = gridmap(db, "import", "villages", path, "--quiet")

    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT code, town_code FROM villages ORDER BY code") == [
        (code, town) for code, (_, town, _) in VILLAGES.items()]


def test_grids_from_geojson_get_area_in_metric_crs_and_a_clean_tiling_report(county, tmp_path):
    records = [{"code": code, "name": f"第{code[-1]}网格", "population": 1200, "households": 400} for code in GRIDS]
    path = write(tmp_path / "grids.geojson", records, list(GRIDS.values()))
    report = tmp_path / "check.geojson"

    result = gridmap(county, "import", "grids", path, "--report", report, "--quiet")

    assert result.exit_code == 0, result.output
    assert "5 new" in result.stdout and "no gap, overlap or part outside" in result.stdout
    assert not report.exists()
    area, village, population = rows(county, "SELECT area_km2, village_code, population FROM grids "
                                             "WHERE code = '410421901201001'")[0]
    expected = metric_area(GRIDS["410421901201001"]) / 1e6
    assert area == pytest.approx(expected, rel=1e-6) and 25 < area < 30
    assert (village, population) == ("410421901201", 1200)


def test_grids_with_heights_are_stored_flat(county, tmp_path):
    """Survey and KML exports carry a height on every vertex: the polygons are stored in 2D."""
    records = [{"code": code, "name": f"第{code[-1]}网格", "population": 1200, "households": 400} for code in GRIDS]
    raised = [shapely.force_3d(geom, 120.0) for geom in GRIDS.values()]
    path = write(tmp_path / "grids_3d.geojson", records, raised)

    result = gridmap(county, "import", "grids", path, "--quiet")

    assert result.exit_code == 0, result.output
    assert rows(county, "SELECT DISTINCT ST_NDims(geom) FROM grids") == [(2,)]
    assert scalar(county, "SELECT count(*) FROM grids") == len(GRIDS)


def metric_area(geom) -> float:
    to_gk = Transformer.from_crs(4326, 4547, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(to_gk.transform(xy[:, 0], xy[:, 1]))).area


def test_gaps_and_overlaps_between_grids_are_written_to_geojson(county, tmp_path):
    narrowed = box(113.00, 33.80, 113.049, 33.85)             # leaves a strip at the village's east edge
    widened = box(113.00, 33.845, 113.05, 33.90)              # reaches into the first grid
    grids = {"410421901201001": narrowed, "410421901201002": widened}
    path = write(tmp_path / "grids.gpkg", [{"code": c, "name": c[-3:]} for c in grids], list(grids.values()))
    report = tmp_path / "out" / "problems.geojson"

    result = gridmap(county, "import", "grids", path, "--report", report, "--quiet")

    assert result.exit_code == 0, result.output
    assert str(report) in result.stdout and "1 gap(s), 1 overlap(s), 0 part(s) outside" in result.stdout
    problems = json.loads(report.read_text())["features"]
    kinds = {f["properties"]["kind"]: f["properties"] for f in problems}
    assert set(kinds) == {"gap", "overlap"}
    assert kinds["overlap"]["grid_codes"] == "410421901201001,410421901201002"
    assert kinds["overlap"]["area_m2"] == pytest.approx(metric_area(box(113.00, 33.845, 113.049, 33.85)), rel=1e-3)
    assert kinds["gap"]["area_m2"] == pytest.approx(metric_area(box(113.049, 33.80, 113.05, 33.845)), rel=1e-3)


def test_kml_names_map_and_a_bowtie_is_repaired_and_named(county, tmp_path):
    bowtie = shapely.Polygon([(113.0, 33.8), (113.05, 33.9), (113.05, 33.8), (113.0, 33.9)])
    geoms = [bowtie, GRIDS["410421902201001"]]
    path = write(tmp_path / "grids.kml", [{"Name": "410421901201001", "Description": "蝴蝶"},
                                          {"Name": "410421902201001", "Description": "正常"}], geoms, driver="KML")

    result = gridmap(county, "import", "grids", path, "--map", "code=Name", "--map", "name=Description", "--quiet")

    assert result.exit_code == 0, result.output
    assert "repaired 1 invalid geometry" in result.stdout
    assert "row 1 (code 410421901201001): Self-intersection" in result.stdout
    valid, name = rows(county, "SELECT ST_IsValid(geom), name FROM grids WHERE code = '410421901201001'")[0]
    assert valid and name == "蝴蝶"


def test_unknown_village_code_refuses_the_whole_file(county, tmp_path):
    records = [{"code": "410421901201001", "name": "a"}, {"code": "410421999999001", "name": "b"},
               {"code": "410421901202001", "name": "c"}]
    geoms = [GRIDS["410421901201001"], box(113.0, 33.8, 113.01, 33.81), GRIDS["410421901202001"]]
    path = write(tmp_path / "grids.gpkg", records, geoms)

    result = gridmap(county, "import", "grids", path, "--quiet")

    assert result.exit_code == 2
    assert "row 2 (code 410421999999001): unknown village 410421999999" in result.stderr
    assert "nothing was imported" in result.stderr
    assert scalar(county, "SELECT count(*) FROM grids") == 0


def test_line_geometry_and_bad_codes_are_row_errors(county, tmp_path):
    records = [{"code": "410421901201001", "name": "a"}, {"code": "12345", "name": "b"},
               {"code": "410421901201001", "name": "c"}]
    geoms = [shapely.LineString([(113.0, 33.8), (113.01, 33.81)]), GRIDS["410421901201002"],
             GRIDS["410421901201001"]]
    path = write(tmp_path / "grids.geojson", records, geoms, driver="GeoJSON")

    result = gridmap(county, "import", "grids", path, "--quiet")

    assert result.exit_code == 2
    assert "row 1 (code 410421901201001): the geometry is a LineString, not a polygon" in result.stderr
    assert "row 2 (code 12345): code '12345' must have 15 digits" in result.stderr
    assert "row 3 (code 410421901201001): code 410421901201001 also on row 1" in result.stderr
    assert scalar(county, "SELECT count(*) FROM grids") == 0


def test_missing_column_names_the_column_and_the_file_columns(db, tmp_path):
    records, geoms = towns_frame()
    path = write(tmp_path / "towns.gpkg", records, geoms)

    result = gridmap(db, "import", "towns", path, "--quiet")

    assert result.exit_code == 2
    assert "missing column 'code'" in result.stderr and "--map code=COLUMN" in result.stderr
    assert "XZQDM, MC" in result.stderr


def test_wrong_crs_is_caught(county, tmp_path):
    records = [{"code": c, "name": "x"} for c in GRIDS]
    to_gk = Transformer.from_crs(4326, 4547, always_xy=True)
    metres = [shapely.transform(g, lambda xy: np.column_stack(to_gk.transform(xy[:, 0], xy[:, 1])))
              for g in GRIDS.values()]
    labelled_degrees = write(tmp_path / "metres_said_degrees.gpkg", records, metres, crs="EPSG:4326")
    labelled_metres = write(tmp_path / "degrees_said_metres.gpkg", records, list(GRIDS.values()), crs="EPSG:4547")

    first = gridmap(county, "import", "grids", labelled_degrees, "--quiet")
    second = gridmap(county, "import", "grids", labelled_metres, "--quiet")

    for result in (first, second):
        assert result.exit_code == 2
        assert "lie outside the county's extent" in result.stderr and "Is the CRS right?" in result.stderr
    fixed = gridmap(county, "import", "grids", labelled_degrees, "--crs", "EPSG:4547", "--quiet")
    assert fixed.exit_code == 0, fixed.output
    assert scalar(county, "SELECT count(*) FROM grids") == 5


def test_file_without_crs_is_refused_unless_named(db, tmp_path):
    records, geoms = towns_frame()
    path = write(tmp_path / "towns.shp", records, geoms)
    for sidecar in tmp_path.glob("towns.prj"):
        sidecar.unlink()

    refused = gridmap(db, "import", "towns", path, "--map", "code=XZQDM", "--map", "name=MC", "--quiet")
    named = gridmap(db, "import", "towns", path, "--map", "code=XZQDM", "--map", "name=MC", "--crs", "EPSG:4326",
                    "--quiet")

    assert refused.exit_code == 2 and "--crs" in refused.stderr and "coordinate reference system" in refused.stderr
    assert named.exit_code == 0, named.output


def test_empty_file_is_refused(db, tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')

    result = gridmap(db, "import", "towns", path, "--quiet")

    assert result.exit_code == 2 and "holds no features" in result.stderr


def test_stations_from_gcj02_csv_and_zones_reference_them(county, tmp_path):
    seats = {"PS01": (113.0321, 33.8612), "PS02": (113.1543, 33.8275)}
    gcj = {code: tuple(float(v) for v in wgs84_to_gcj02(*xy)) for code, xy in seats.items()}
    pd.DataFrame([{"code": c, "name": f"{c}派出所", "经度": x, "纬度": y} for c, (x, y) in gcj.items()]) \
        .to_csv(tmp_path / "stations.csv", index=False)

    result = gridmap(county, "import", "stations", tmp_path / "stations.csv", "--from-gcj02", "--quiet")

    assert result.exit_code == 0, result.output
    stored = {c: (x, y, t) for c, x, y, t in rows(
        county, "SELECT code, ST_X(geom), ST_Y(geom), town_code FROM police_stations")}
    for code, (x, y) in seats.items():
        assert stored[code][0] == pytest.approx(x, abs=1e-7) and stored[code][1] == pytest.approx(y, abs=1e-7)
    assert stored["PS01"][2] == "410421901000" and stored["PS02"][2] == "410421902000"

    zones = write(tmp_path / "zones.gpkg", [{"code": "Z1", "name": "一区", "station_code": "PS01"},
                                            {"code": "Z2", "name": "二区", "station_code": "PS99"}],
                  [TOWNS["410421901000"][1], TOWNS["410421902000"][1]])
    refused = gridmap(county, "import", "zones", zones, "--quiet")
    assert refused.exit_code == 2 and "row 2 (code Z2): unknown police station PS99" in refused.stderr
    assert scalar(county, "SELECT count(*) FROM patrol_zones") == 0


def test_mediation_points_take_chinese_kinds_and_the_village_they_lie_in(county, tmp_path):
    pd.DataFrame([{"name": "东村摆理堂", "kind": "摆理堂", "lon": 113.02, "lat": 33.83, "mediators": 3},
                  {"name": "南村说事厅", "kind": "shuoshiting", "lon": 113.15, "lat": 33.85, "mediators": ""}]) \
        .to_csv(tmp_path / "points.csv", index=False)

    result = gridmap(county, "import", "mediation-points", tmp_path / "points.csv", "--quiet")
    again = gridmap(county, "import", "mediation-points", tmp_path / "points.csv", "--quiet")

    assert result.exit_code == 0 and again.exit_code == 0, result.output + again.output
    assert "0 new, 2 updated" in again.stdout
    assert rows(county, "SELECT name, kind, village_code, mediators FROM mediation_points ORDER BY name") == [
        ("东村摆理堂", "bailitang", "410421901201", 3), ("南村说事厅", "shuoshiting", "410421902201", None)]

    pd.DataFrame([{"name": "x", "kind": "茶馆", "lon": 113.02, "lat": 33.83}]).to_csv(tmp_path / "bad.csv", index=False)
    bad = gridmap(county, "import", "mediation-points", tmp_path / "bad.csv", "--quiet")
    assert bad.exit_code == 2 and "row 1: unknown kind '茶馆'" in bad.stderr


def test_code_template_and_dissolve_fit_a_foreign_data_set(db, tmp_path):
    parts = [box(113.00, 33.80, 113.05, 33.90), box(113.05, 33.80, 113.10, 33.90), box(113.10, 33.80, 113.20, 33.90)]
    path = write(tmp_path / "districts.kml", [{"Name": "7", "Description": "District 7"},
                                              {"Name": "7", "Description": "District 7"},
                                              {"Name": "12", "Description": "District 12"}], parts, driver="KML")
    common = ["--map", "code=Name", "--map", "name=Description", "--dissolve", "--quiet"]

    towns = gridmap(db, "import", "towns", path, "--code-template", "410421###000", *common)
    villages = gridmap(db, "import", "villages", path, "--code-template", "410421###001", *common)
    grids = gridmap(db, "import", "grids", path, "--code-template", "410421###001001", *common)

    for result in (towns, villages, grids):
        assert result.exit_code == 0, result.output
        assert "dissolved rows 1, 2" in result.stdout
    assert rows(db, "SELECT g.code, v.town_code, ST_Area(g.geom) FROM grids g "
                    "JOIN villages v ON v.code = g.village_code ORDER BY g.code") == [
        ("410421007001001", "410421007000", pytest.approx(0.01)),
        ("410421012001001", "410421012000", pytest.approx(0.01))]


def test_code_template_refuses_codes_that_do_not_fit():
    codes, problems = apply_code_template(pd.Series(["7", "1234", "x1", None]), "410421###000")
    assert codes.tolist() == ["410421007000", None, None, None]
    assert set(problems) == {1, 2} and "at most 3 digits" in problems[1]


def test_data_far_from_the_county_is_refused(county, tmp_path):
    chicago = write(tmp_path / "chicago.gpkg", [{"code": "410421901201001", "name": "x"}],
                    [box(-87.7, 41.8, -87.6, 41.9)])

    result = gridmap(county, "import", "grids", chicago, "--quiet")

    assert result.exit_code == 2 and "outside the county's extent" in result.stderr


def test_changing_a_grid_moves_the_incidents_already_in_it(county, tmp_path):
    seed_grids = write(tmp_path / "grids.gpkg", [{"code": c, "name": c[-3:]} for c in GRIDS], list(GRIDS.values()))
    assert gridmap(county, "import", "grids", seed_grids, "--quiet").exit_code == 0
    rows(county, "INSERT INTO incidents (category, severity, occurred_at, reported_at, geom) VALUES "
                 "('SEC', 1, now(), now(), ST_SetSRID(ST_MakePoint(113.02, 33.86), 4326)) RETURNING id")
    assert scalar(county, "SELECT grid_code FROM incidents") == "410421901201002"

    moved = {"410421901201001": box(113.00, 33.80, 113.05, 33.87), "410421901201002": box(113.00, 33.87, 113.05, 33.90)}
    path = write(tmp_path / "moved.gpkg", [{"code": c, "name": c[-3:]} for c in moved], list(moved.values()))
    result = gridmap(county, "import", "grids", path, "--quiet")

    assert result.exit_code == 0, result.output
    assert scalar(county, "SELECT grid_code FROM incidents") == "410421901201001"


def test_a_geopackage_with_several_layers_needs_layer(county, tmp_path):
    path = tmp_path / "county.gpkg"
    pyogrio.write_dataframe(frame([{"code": "PS01", "name": "一所"}], [shapely.Point(113.02, 33.83)]), path,
                            layer="stations")
    pyogrio.write_dataframe(frame([{"code": "Z1", "name": "一区", "station_code": "PS01"}],
                                  [TOWNS["410421901000"][1]]), path, layer="zones")

    unchosen = gridmap(county, "import", "stations", path, "--quiet")
    stations = gridmap(county, "import", "stations", path, "--layer", "stations", "--quiet")
    zones = gridmap(county, "import", "zones", path, "--layer", "zones", "--quiet")

    assert unchosen.exit_code == 2 and "several layers (stations, zones)" in unchosen.stderr
    assert stations.exit_code == 0 and zones.exit_code == 0, stations.output + zones.output
    assert rows(county, "SELECT z.code, z.station_code, s.town_code FROM patrol_zones z "
                        "JOIN police_stations s ON s.code = z.station_code") == [("Z1", "PS01", "410421901000")]
