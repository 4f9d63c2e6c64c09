"""`gridmap import incidents`: CSV, GeoPackage and GeoJSON files, bulk COPY and one set-based
statement, grid assignment, row errors, all-or-nothing, --skip-outside, re-import."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg2
import pyogrio
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import create_engine, text

from gridmap.analysis.gcj02 import wgs84_to_gcj02
from gridmap.db import session_scope
from gridmap.services.importing import ImportRefused, SourceOptions
from gridmap.services.importing_incidents import import_incidents
from tests.tiles.test_aggregates import assert_counts_fresh
from tests.services.import_support import clear_places, frame, gridmap, rows, scalar, scratch_database, seed_county

# (lon, lat) -> the grid it lies in
INSIDE = [((113.02, 33.82), "410421901201001"), ((113.02, 33.88), "410421901201002"),
          ((113.07, 33.85), "410421901202001"), ((113.12, 33.83), "410421902201001"),
          ((113.18, 33.87), "410421902201002")]
OUTSIDE = (113.30, 33.85)


@pytest.fixture(scope="module")
def url():
    yield from scratch_database("gm_import_incidents")


@pytest.fixture
def county(url):
    clear_places(url)
    seed_county(url)
    return url


def good_rows(n: int = 5) -> list[dict]:
    out = []
    for i in range(n):
        (lon, lat), _ = INSIDE[i % len(INSIDE)]
        out.append({"lon": lon, "lat": lat, "category": ["治安", "DSP", "fire hazard", "SEC", "TRF"][i % 5],
                    "subcategory": ["盗窃", "neighbour", "ebike", "诈骗（含电信诈骗）", "accident"][i % 5],
                    "severity": 1 + i % 4, "occurred_at": f"2024-03-{1 + i % 28:02d} 08:30",
                    "description": f"第{i + 1}条", "client_id": str(uuid.UUID(int=i + 1))})
    return out


def test_csv_is_imported_with_grid_village_and_town(county, tmp_path):
    pd.DataFrame(good_rows()).to_csv(tmp_path / "incidents.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "incidents.csv", "--quiet")

    assert result.exit_code == 0, result.output
    assert "5 rows read, 5 imported" in result.stdout
    stored = rows(county, "SELECT client_id::text, category, subcategory, severity, grid_code, village_code, "
                          "town_code, occurred_at, reported_at, status, description FROM incidents ORDER BY client_id")
    assert [(r[1], r[2]) for r in stored] == [("SEC", "theft"), ("DSP", "neighbour"), ("FIR", "ebike"),
                                              ("SEC", "fraud"), ("TRF", "accident")]
    for (client, *_, grid, village, town, occurred, reported, status, _), (_, expected) in zip(stored, INSIDE):
        assert (grid, village, town) == (expected, expected[:12], expected[:9] + "000")
        assert reported == occurred and status == "reported"
    # 08:30 in Asia/Shanghai is 00:30 UTC
    assert stored[0][7] == datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc)
    assert scalar(county, "SELECT detail->>'imported' FROM audit_log WHERE action = 'import.incidents'") == "5"


def test_geopackage_in_a_projected_crs_and_geojson(county, tmp_path):
    records = [{k: v for k, v in r.items() if k not in ("lon", "lat")} for r in good_rows()]
    to_gk = Transformer.from_crs(4326, 4547, always_xy=True)
    points = [shapely.Point(to_gk.transform(*xy)) for xy, _ in INSIDE]
    gpkg = tmp_path / "incidents.gpkg"
    pyogrio.write_dataframe(frame(records, points, crs="EPSG:4547"), gpkg)
    geojson = tmp_path / "incidents.geojson"
    for r in records:
        r["client_id"] = str(uuid.uuid4())
    pyogrio.write_dataframe(frame(records, [shapely.Point(xy) for xy, _ in INSIDE]), geojson)

    first = gridmap(county, "import", "incidents", gpkg, "--quiet")
    second = gridmap(county, "import", "incidents", geojson, "--quiet")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert rows(county, "SELECT grid_code, count(*) FROM incidents GROUP BY 1 ORDER BY 1") == [
        (grid, 2) for _, grid in INSIDE]
    lon, lat = rows(county, "SELECT ST_X(geom), ST_Y(geom) FROM incidents WHERE grid_code = :g ORDER BY id LIMIT 1",
                    g=INSIDE[0][1])[0]
    assert (lon, lat) == (pytest.approx(113.02, abs=1e-8), pytest.approx(33.82, abs=1e-8))


def test_points_with_heights_are_stored_flat(county, tmp_path):
    """GPS exports often carry a height (KML always does): it is dropped, the point stays."""
    records = [{k: v for k, v in r.items() if k not in ("lon", "lat")} for r in good_rows()]
    geojson = tmp_path / "with_heights.geojson"
    pyogrio.write_dataframe(frame(records, [shapely.Point(*xy, 85.0) for xy, _ in INSIDE]), geojson)

    result = gridmap(county, "import", "incidents", geojson, "--quiet")

    assert result.exit_code == 0, result.output
    assert rows(county, "SELECT DISTINCT ST_NDims(geom) FROM incidents") == [(2,)]
    assert rows(county, "SELECT grid_code FROM incidents ORDER BY grid_code") == [(g,) for _, g in sorted(
        INSIDE, key=lambda item: item[1])]


def test_bad_rows_are_named_and_nothing_is_written(county, tmp_path):
    data = good_rows(10)
    data[1]["category"] = "UFO"
    data[2]["severity"] = 7
    data[3]["occurred_at"] = "yesterday-ish"
    data[4]["occurred_at"] = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    data[5]["lon"] = "east"
    data[6]["client_id"] = data[0]["client_id"]
    data[7]["lon"], data[7]["lat"] = OUTSIDE
    data[8]["category"], data[8]["subcategory"] = "消防隐患", "neighbour"   # a dispute subcategory on a fire hazard
    data[9]["client_id"] = "not-a-uuid"
    pd.DataFrame(data).to_csv(tmp_path / "bad.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "bad.csv", "--quiet")

    assert result.exit_code == 2
    err = result.stderr
    assert "9 rows refused, nothing was imported" in err
    client = data[0]["client_id"]
    for expected in (f"row 2 (code {data[1]['client_id']}): unknown category 'UFO'",
                     "row 3 (code", "severity '7' is not 1, 2, 3 or 4",
                     "occurred_at 'yesterday-ish' is not a date and time", "is in the future",
                     "row 6 (code", "has no point (are lon/lat numbers?)",
                     f"row 7 (code {client}): client_id repeats an earlier row",
                     "row 8 (code", "the point (113.300000, 33.850000) lies in no grid",
                     "unknown subcategory 'neighbour' of FIR",
                     "row 10 (code not-a-uuid): client_id 'not-a-uuid' is not a UUID"):
        assert expected in err
    assert scalar(county, "SELECT count(*) FROM incidents") == 0


def test_points_outside_every_grid_refuse_the_file_or_are_skipped_and_counted(county, tmp_path):
    data = good_rows(4)
    data[1]["lon"], data[1]["lat"] = OUTSIDE
    data[3]["lon"], data[3]["lat"] = (113.25, 33.95)
    pd.DataFrame(data).to_csv(tmp_path / "some_outside.csv", index=False)

    refused = gridmap(county, "import", "incidents", tmp_path / "some_outside.csv", "--quiet")
    assert refused.exit_code == 2
    assert "2 of 4 rows lie in no grid" in refused.stderr and "row 2 (code" in refused.stderr
    assert "row 4 (code" in refused.stderr and "--skip-outside" in refused.stderr
    assert scalar(county, "SELECT count(*) FROM incidents") == 0

    skipped = gridmap(county, "import", "incidents", tmp_path / "some_outside.csv", "--skip-outside", "--quiet")
    assert skipped.exit_code == 0, skipped.output
    assert "2 imported" in skipped.stdout and "left out 2 rows lying in no grid" in skipped.stdout
    assert scalar(county, "SELECT count(*) FROM incidents") == 2


def test_reimporting_the_same_client_ids_adds_nothing(county, tmp_path):
    pd.DataFrame(good_rows()).to_csv(tmp_path / "incidents.csv", index=False)
    assert gridmap(county, "import", "incidents", tmp_path / "incidents.csv", "--quiet").exit_code == 0

    again = gridmap(county, "import", "incidents", tmp_path / "incidents.csv", "--quiet")

    assert again.exit_code == 0 and "0 imported" in again.stdout
    assert "left out 5 rows whose client_id is already stored" in again.stdout
    assert scalar(county, "SELECT count(*) FROM incidents") == 5


def test_foreign_columns_are_mapped_and_constants_set(county, tmp_path):
    pd.DataFrame([{"X": lon, "Y": lat, "when": "2023-07-01T10:00:00+08:00", "what": "street", "level": "二"}
                  for (lon, lat), _ in INSIDE]).to_csv(tmp_path / "foreign.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "foreign.csv", "--map", "lon=X", "--map", "lat=Y",
                     "--map", "occurred_at=when", "--map", "description=what", "--set", "category=SEC",
                     "--set", "subcategory=fight", "--set", "severity=2", "--set", "status=closed",
                     "--set", "legal_class=治安案件", "--quiet")

    assert result.exit_code == 0, result.output
    assert set(rows(county, "SELECT category, subcategory, severity, status, legal_class, description, "
                            "occurred_at FROM incidents")) == {
        ("SEC", "fight", 2, "closed", "public_order", "street", datetime(2023, 7, 1, 2, 0, tzinfo=timezone.utc))}


def test_missing_category_column_is_named(county, tmp_path):
    pd.DataFrame([{"lon": 113.02, "lat": 33.82, "occurred_at": "2024-01-01"}]).to_csv(tmp_path / "x.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "x.csv", "--quiet")

    assert result.exit_code == 2 and "missing column 'category'" in result.stderr and "--set category=" in result.stderr


def test_swapped_coordinates_are_recognised(county, tmp_path):
    pd.DataFrame([{"lon": lat, "lat": lon, "category": "SEC", "occurred_at": "2024-01-01"}
                  for (lon, lat), _ in INSIDE]).to_csv(tmp_path / "swapped.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "swapped.csv", "--quiet")

    assert result.exit_code == 2 and "look swapped" in result.stderr


def test_gcj02_points_land_in_the_right_grid(county, tmp_path):
    # 113.0465 lies ~320 m west of the village boundary at 113.0500 (WGS84); its GCJ-02 pick lies
    # ~600 m further east, so reading it as WGS84 would put it in the neighbouring village.
    lon, lat = wgs84_to_gcj02(113.0465, 33.85)
    pd.DataFrame([{"lon": lon, "lat": lat, "category": "SEC", "occurred_at": "2024-01-01"}]) \
        .to_csv(tmp_path / "amap.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "amap.csv", "--from-gcj02", "--quiet")

    assert result.exit_code == 0, result.output
    assert scalar(county, "SELECT village_code FROM incidents") == "410421901201"
    assert lon > 113.05  # as picked, it would have been in the neighbouring village


def test_a_point_on_a_shared_boundary_goes_to_the_lower_grid_code(county, tmp_path):
    pd.DataFrame([{"lon": 113.03, "lat": 33.85, "category": "SEC", "occurred_at": "2024-01-01"}]) \
        .to_csv(tmp_path / "edge.csv", index=False)

    assert gridmap(county, "import", "incidents", tmp_path / "edge.csv", "--quiet").exit_code == 0
    assert scalar(county, "SELECT grid_code FROM incidents") == "410421901201001"


def test_the_service_loads_by_copy_and_places_in_one_statement(county, tmp_path):
    n = 20_000
    rng = np.random.default_rng(7)
    pd.DataFrame({"lon": rng.uniform(113.001, 113.199, n), "lat": rng.uniform(33.801, 33.899, n),
                  "category": "SEC", "occurred_at": "2024-05-01 12:00"}).to_csv(tmp_path / "many.csv", index=False)
    statements = []

    class RecordingCursor(psycopg2.extensions.cursor):
        def execute(self, sql, params=None):
            statements.append(sql if isinstance(sql, str) else sql.decode())
            return super().execute(sql, params)

        def copy_expert(self, sql, file, size=8192):
            statements.append(sql)
            return super().copy_expert(sql, file, size)

    with session_scope(county) as session:
        raw = session.connection().connection.dbapi_connection
        raw.cursor_factory = RecordingCursor
        try:
            report = import_incidents(session, tmp_path / "many.csv", SourceOptions())
        finally:
            raw.cursor_factory = None

    assert report.imported == n
    assert sum(s.startswith("COPY gridmap_incident_import") for s in statements) == 1
    inserts = [s for s in statements if s.startswith("INSERT INTO incidents")]
    assert len(inserts) == 1 and "ST_Intersects(g.geom, s.geom)" in inserts[0]
    stored = rows(county, "SELECT count(*), count(DISTINCT grid_code) FROM incidents")[0]
    assert stored == (n, 5)
    wrong = scalar(county, "SELECT count(*) FROM incidents i JOIN grids g ON g.code = i.grid_code "
                           "WHERE NOT ST_Intersects(g.geom, i.geom)")
    assert wrong == 0


def test_refusal_from_the_service_lists_every_problem(county, tmp_path):
    data = good_rows(3)
    data[0]["category"] = ""
    pd.DataFrame(data).to_csv(tmp_path / "x.csv", index=False)

    with pytest.raises(ImportRefused) as caught, session_scope(county) as session:
        import_incidents(session, tmp_path / "x.csv")

    assert [(p.row, p.reason) for p in caught.value.problems] == [(1, "has no category")]
    assert caught.value.to_dict()["error"]["details"][0]["row"] == 1


def incidents_schema(url) -> dict:
    """What a bulk import sets aside and must put back: indexes, constraints, triggers' states."""
    return {
        "indexes": rows(url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'incidents' ORDER BY 1"),
        "constraints": rows(url, "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
                                 "WHERE conrelid = 'incidents'::regclass ORDER BY 1"),
        "triggers": rows(url, "SELECT tgname, tgenabled FROM pg_trigger "
                              "WHERE tgrelid = 'incidents'::regclass AND NOT tgisinternal ORDER BY 1"),
    }


def many_points(n: int, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lon": rng.uniform(113.001, 113.199, n), "lat": rng.uniform(33.801, 33.899, n),
                         "category": rng.choice(["SEC", "DSP", "FIR"], n), "occurred_at": "2024-05-01 12:00"})


def test_bulk_import_rebuilds_indexes_keys_and_trigger(county, tmp_path):
    before = incidents_schema(county)
    assert len(before["indexes"]) >= 10 and any(name.startswith("fk_") for name, *_ in before["constraints"])
    many_points(3_000).to_csv(tmp_path / "many.csv", index=False)

    with session_scope(county) as session:
        report = import_incidents(session, tmp_path / "many.csv", SourceOptions(), bulk=True)

    assert report.bulk and report.imported == 3_000
    assert {"insert", "indexes", "foreign keys", "tile counts"} <= set(report.seconds)
    assert incidents_schema(county) == before
    assert scalar(county, "SELECT count(*) FROM incidents i JOIN grids g ON g.code = i.grid_code "
                          "JOIN villages v ON v.code = g.village_code WHERE NOT ST_Intersects(g.geom, i.geom) "
                          "OR i.village_code <> g.village_code OR i.town_code <> v.town_code") == 0
    with session_scope(county) as session:
        assert_counts_fresh(session)
    # The rebuilt indexes answer queries, and the placement trigger is back on.
    assert scalar(county, "SET enable_seqscan = off; SELECT count(*) FROM incidents "
                          "WHERE grid_code = '410421901201001'") == \
        scalar(county, "SELECT count(*) FROM incidents WHERE grid_code || '' = '410421901201001'")
    with session_scope(county) as session:
        session.connection().exec_driver_sql(
            "INSERT INTO incidents (category, severity, occurred_at, reported_at, grid_code, village_code, "
            "town_code, geom) VALUES ('SEC', 1, now(), now(), '410421902201002', '410421902201', '410421902000', "
            "ST_SetSRID(ST_MakePoint(113.02, 33.82), 4326))")
    assert scalar(county, "SELECT grid_code FROM incidents ORDER BY id DESC LIMIT 1") == "410421901201001"


def test_refused_bulk_import_leaves_the_table_as_it_was(county, tmp_path):
    before = incidents_schema(county)
    stored = scalar(county, "SELECT count(*) FROM incidents")
    data = many_points(2_000)
    data.loc[1_500, ["lon", "lat"]] = OUTSIDE
    data.to_csv(tmp_path / "one_outside.csv", index=False)

    with pytest.raises(ImportRefused) as caught, session_scope(county) as session:
        import_incidents(session, tmp_path / "one_outside.csv", SourceOptions(), bulk=True)

    assert [p.row for p in caught.value.problems] == [1_501]
    assert incidents_schema(county) == before
    assert scalar(county, "SELECT count(*) FROM incidents") == stored


def test_cli_bulk_switch(county, tmp_path):
    many_points(500).to_csv(tmp_path / "some.csv", index=False)

    small = gridmap(county, "import", "incidents", tmp_path / "some.csv", "--quiet")
    forced = gridmap(county, "import", "incidents", tmp_path / "some.csv", "--quiet", "--bulk")

    assert small.exit_code == 0 and "rebuilt" not in small.stdout
    assert forced.exit_code == 0 and "500 imported" in forced.stdout and "rebuilt" in forced.stdout
    assert scalar(county, "SELECT count(*) FROM incidents") == 1_000


def add_enterprise(url: str, ref: str, lon: float, lat: float, kind: str = "enterprise") -> int:
    engine = create_engine(url)
    with engine.begin() as conn:
        place = conn.execute(text(
            "INSERT INTO places (kind, name, ref, inspection_interval_days, geom) "
            "VALUES (:k, :n, :r, 180, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) RETURNING id"),
            {"k": kind, "n": f"单位 {ref}", "r": ref, "lon": lon, "lat": lat}).scalar_one()
    engine.dispose()
    return place


def test_unit_ref_names_the_enterprise_and_a_unit_of_another_village_refuses_the_file(county, tmp_path):
    works = add_enterprise(county, "91410421MA001", *INSIDE[0][0])        # village 410421901201
    add_enterprise(county, "91410421MA002", *INSIDE[3][0])                # village 410421902201
    add_enterprise(county, "SHOP-1", *INSIDE[1][0], kind="nine_small")
    data = good_rows(5)
    data[0]["unit_ref"], data[1]["unit_ref"] = "91410421MA001", " 91410421MA001 "
    pd.DataFrame(data).to_csv(tmp_path / "units.csv", index=False)

    result = gridmap(county, "import", "incidents", tmp_path / "units.csv", "--quiet")

    assert result.exit_code == 0, result.output
    assert rows(county, "SELECT description, unit_id FROM incidents ORDER BY description") == [
        ("第1条", works), ("第2条", works), ("第3条", None), ("第4条", None), ("第5条", None)]

    bad = [{k: v for k, v in row.items() if k != "client_id"} for row in good_rows(4)]
    bad[0]["unit_ref"], bad[1]["unit_ref"], bad[2]["unit_ref"] = "91410421MA002", "SHOP-1", "NOPE"
    pd.DataFrame(bad).to_csv(tmp_path / "bad_units.csv", index=False)

    refused = gridmap(county, "import", "incidents", tmp_path / "bad_units.csv", "--quiet")

    assert refused.exit_code == 2
    for row, ref in ((1, "91410421MA002"), (2, "SHOP-1"), (3, "NOPE")):
        assert f"row {row}: unit_ref '{ref}' is no active enterprise of the registry in the village" in refused.stderr
    assert scalar(county, "SELECT count(*) FROM incidents") == 5
