"""Risk, hot spots and the county's numbers from PostGIS, on incidents seeded in known grids inside the
test's transaction (March 2024, before any demo incident), with the expected answers written here."""
from __future__ import annotations

import io
import math
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest
from sqlalchemy import text

from gridmap.models import User
from gridmap.services import risk
from gridmap.errors import ValidationError
from tests.risk_helpers import (CHENGGUAN, END, FANYING, NAODIAN, PERIOD_ARGS, START, add_enterprise_with_incident,
                                add_incident, at, grid_point, mediation_point, villages_of)

PERIOD = risk.Period(START, END)
SETTINGS = risk.RiskSettings()


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    from werkzeug.security import generate_password_hash

    from gridmap.services import accounts

    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))


def count(session, sql: str, **params) -> int:
    return session.execute(text(sql), params).scalar_one()


# --- periods and filters ----------------------------------------------------------------------

def test_period_dates_are_beijing_days_and_to_is_not_included():
    period = risk.parse_period(PERIOD_ARGS)
    assert period.start == START and period.end == END
    assert period.previous_start == datetime(2024, 1, 30, tzinfo=timezone(timedelta(hours=8)))
    assert period.label() == "2024-03-01 至 2024-03-31"
    assert period.query_args() == PERIOD_ARGS


@pytest.mark.parametrize(("args", "field"), [
    ({"from": "2024-02-30"}, "from"), ({"from": "last week"}, "from"), ({"to": "2024/04/01"}, "to"),
    ({"from": "2024-04-01", "to": "2024-04-01"}, "to"), ({"from": "2024-05-01", "to": "2024-04-01"}, "to"),
    ({"from": "2024-01-01", "to": "2099-01-01"}, "to"), ({"from": "2099-01-01"}, "from"),
    ({"from": "2000-01-01", "to": "2024-01-01"}, "from"),
])
def test_bad_periods_name_the_field(args, field):
    with pytest.raises(ValidationError) as caught:
        risk.parse_period(args)
    assert caught.value.field == field


def test_default_period_ends_with_today():
    now = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)  # 23:00 in Beijing
    period = risk.parse_period({}, now=now, default_days=90)
    assert period.end == datetime(2026, 11, 27, tzinfo=timezone(timedelta(hours=8)))
    assert period.days == 90


def test_categories_and_settings_are_checked():
    assert risk.parse_categories({"category": "dsp, SEC"}) == ("DSP", "SEC")
    with pytest.raises(ValidationError) as caught:
        risk.parse_categories({"category": "DSP,XXX"})
    assert caught.value.field == "category"
    settings = risk.RiskSettings.from_config({"RISK_SEVERITY_WEIGHTS": "1:1,2:3,3:9,4:27", "RISK_HALF_LIFE_DAYS": "14",
                                              "RISK_ADJACENCY": "distance_band:50", "RISK_CLASSES": "4"})
    assert dict(settings.weights.severity) == {1: 1.0, 2: 3.0, 3: 9.0, 4: 27.0}
    assert settings.weights.half_life_days == 14 and settings.classes == 4
    assert settings.adjacency_rule == "distance_band:50@EPSG:4547"
    assert "14 天半衰期" in settings.description_zh()
    for bad in ({"RISK_CLASS_METHOD": "jenks"}, {"RISK_SEVERITY_WEIGHTS": "1:1,2:2"}, {"RISK_ADJACENCY": "rook"},
                {"RISK_HOTSPOT_VALUE": "colour"}):
        with pytest.raises(ValueError):
            risk.RiskSettings.from_config(bad)


# --- the risk summary -------------------------------------------------------------------------

def test_grid_summary_counts_score_backlog_and_trend(db_session):
    grid, _, _ = grid_point(db_session, FANYING)
    # In the period, 30 days (one half-life) before its end: severity weights 1, 2 and 8 count half.
    add_incident(db_session, FANYING, category="DSP", severity=1, occurred=END - timedelta(days=30))
    add_incident(db_session, FANYING, category="DSP", severity=2, occurred=END - timedelta(days=30),
                 status="resolved", deadline=at(10), resolved=at(5), level="village")  # open, resolved in time
    add_incident(db_session, FANYING, category="SEC", severity=4, occurred=END - timedelta(days=30),
                 status="in_progress", deadline=at(10))                              # open and overdue
    add_incident(db_session, FANYING, category="SEC", severity=4, occurred=at(3), status="rejected")  # not counted
    add_incident(db_session, FANYING, category="PET", severity=1, occurred=at(10, month=2))  # previous period
    result = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    row = result.grids.loc[grid]
    area, population = db_session.execute(text("SELECT area_km2, population FROM grids WHERE code = :g"),
                                          {"g": grid}).one()
    assert (row.n_DSP, row.n_SEC, row.n_PET, row.n_total) == (2, 1, 0, 3)
    assert row.score == pytest.approx(0.5 * 1 + 0.5 * 2 + 0.5 * 8)
    assert row.per_km2 == pytest.approx(3 / area)
    assert row.per_1000 == pytest.approx(3000 / population)
    assert (row.open_backlog, row.overdue_backlog) == (2, 1)
    assert (row.prev_total, row.change, row.change_pct) == (1, 2, 200.0)
    assert row.risk_level == 2 and row.village_name == "范营村"
    others = result.grids.drop(index=grid)
    assert (others["n_total"] == 0).all() and (others["risk_level"] == 1).all()
    assert len(result.grids) == count(db_session, "SELECT count(*) FROM grids")
    village = result.villages.loc[FANYING]
    assert (village.n_total, village.prev_total, village.open_backlog) == (3, 1, 2)
    assert result.towns.loc[NAODIAN, "n_total"] == 3
    # Only disputes: the security incident drops out of the counts and the score.
    disputes = risk.compute_risk(db_session, None, PERIOD, ("DSP",), SETTINGS, now=END).grids.loc[grid]
    assert (disputes.n_total, disputes.n_SEC) == (2, 0)
    assert disputes.score == pytest.approx(1.5)


def test_a_period_without_incidents_gives_zeros_and_no_hot_spots(db_session):
    result = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    assert result.grids["n_total"].sum() == 0
    assert (result.grids["risk_level"] == 1).all()
    assert (result.grids["gi_bin"] == 0).all() and result.grids["gi_z"].isna().all()


def test_hot_spots_come_out_where_incidents_cluster(db_session):
    adjacency, _ = risk.grid_adjacency(db_session, risk.load_grids(db_session), SETTINGS)
    centre, _, _ = grid_point(db_session, FANYING)
    ring = set(adjacency.neighbours(centre))
    cluster = {centre} | ring | {g for n in ring for g in adjacency.neighbours(n)}
    for grid in cluster:
        for day in (2, 9, 16):
            add_incident(db_session, grid, category="SEC", severity=3, occurred=at(day))
    for grid in [g for g in adjacency.codes[::5] if g not in cluster][:80]:
        add_incident(db_session, grid, category="DSP", occurred=at(20))
    result = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    assert result.grids.loc[centre, "gi_z"] > 3
    assert result.grids.loc[centre, "gi_bin"] > 0
    assert (result.grids.loc[sorted(cluster), "gi_bin"] > 0).sum() >= 3
    assert result.villages.loc[FANYING, "n_hot_grids"] == 1
    assert result.legend["gi_bin"][0]["bin"] == 3


def test_sparse_incidents_do_not_make_empty_neighbourhoods_cold_spots(db_session):
    add_incident(db_session, FANYING, category="ACC", subcategory="injury", occurred=at(20))
    result = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    silent = result.grids["gi"] == 0
    assert silent.sum() > 400            # nothing in or next to most grids ...
    assert (result.grids.loc[silent, "gi_bin"] == 0).all()  # ... which makes them no cold spots
    assert (result.grids.loc[silent, "p_sim"] < 0.01).all()  # although esda's tie-blind p-value says so


def test_adjacency_is_cached_with_the_grids_and_rebuilt_when_they_change(db_session):
    db_session.execute(text("DELETE FROM grid_adjacency"))
    first = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    assert first.adjacency_cached is False
    fingerprint = db_session.execute(text("SELECT fingerprint FROM grid_adjacency WHERE rule = 'queen'")).scalar_one()
    second = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    assert second.adjacency_cached is True
    # Same figures from the cached adjacency.
    assert second.grids["gi_z"].equals(first.grids["gi_z"])
    grid, _, _ = grid_point(db_session, FANYING)
    db_session.execute(text("UPDATE grids SET geom = ST_Reverse(geom) WHERE code = :g"), {"g": grid})
    third = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    assert third.adjacency_cached is False
    rows = db_session.execute(text("SELECT fingerprint, n_grids FROM grid_adjacency")).all()
    assert len(rows) == 1 and rows[0].fingerprint != fingerprint and rows[0].n_grids == len(third.grids)


def test_each_user_sees_the_grids_of_their_scope_with_county_wide_levels(db_session, make_user):
    add_incident(db_session, FANYING, category="SEC", severity=4, occurred=at(20))
    county = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    supervisor, _ = make_user("risk_town", "town_supervisor", [NAODIAN])
    town = risk.compute_risk(db_session, supervisor, PERIOD, (), SETTINGS, now=END)
    naodian_grids = count(db_session, "SELECT count(*) FROM grids g JOIN villages v ON v.code = g.village_code "
                                      "WHERE v.town_code = :t", t=NAODIAN)
    assert len(town.grids) == naodian_grids and set(town.grids["town_code"]) == {NAODIAN}
    assert list(town.towns.index) == [NAODIAN] and set(town.villages["town_code"]) == {NAODIAN}
    assert town.grids["risk_level"].equals(county.grids.loc[town.grids.index, "risk_level"])
    assert town.grids["gi_bin"].equals(county.grids.loc[town.grids.index, "gi_bin"])

    worker, _ = make_user("risk_worker", "grid_worker", [FANYING])
    village = risk.compute_risk(db_session, worker, PERIOD, (), SETTINGS, now=END)
    assert set(village.grids["village_code"]) == {FANYING} and list(village.villages.index) == [FANYING]
    assert village.towns.empty  # the town's other villages are not theirs

    split_village = db_session.execute(text(
        "SELECT village_code FROM grids WHERE village_code LIKE '410421102%' GROUP BY village_code "
        "HAVING count(*) >= 2 ORDER BY village_code LIMIT 1")).scalar_one()
    grid, _, _ = grid_point(db_session, split_village)
    one_grid, _ = make_user("risk_one_grid", "grid_worker", [grid])
    narrow = risk.compute_risk(db_session, one_grid, PERIOD, (), SETTINGS, now=END)
    assert list(narrow.grids.index) == [grid] and narrow.villages.empty  # not all of the village is theirs

    mediator, _ = make_user("risk_mediator", "mediator", [str(mediation_point(db_session))])
    assert risk.compute_risk(db_session, mediator, PERIOD, (), SETTINGS, now=END).grids.empty


def test_exports_json_geojson_csv_and_excel(db_session):
    grid, _, _ = grid_point(db_session, FANYING)
    add_incident(db_session, FANYING, category="DSP", severity=2, occurred=at(15))
    result = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    body = risk.risk_json(result)
    row = next(r for r in body["grids"] if r["code"] == grid)
    assert row["n_DSP"] == 1 and row["village_name"] == "范营村" and row["gi_bin"] == 0
    assert body["period"]["from"].startswith("2024-03-01") and body["settings"]["half_life_days"] == 30
    assert all(v is None or not (isinstance(v, float) and math.isnan(v)) for r in body["grids"] for v in r.values())

    collection = risk.risk_geojson(db_session, result, "villages")
    feature = next(f for f in collection["features"] if f["id"] == FANYING)
    assert feature["geometry"]["type"] == "MultiPolygon" and feature["properties"]["n_total"] == 1

    lines = risk.risk_csv(result, "towns").lstrip("\ufeff").splitlines()
    assert lines[0].split(",")[:3] == ["code", "name", "n_grids"]
    assert len(lines) == 1 + count(db_session, "SELECT count(*) FROM towns")

    book = openpyxl.load_workbook(io.BytesIO(risk.risk_xlsx(result)))
    assert book.sheetnames == ["说明", "网格风险", "村（社区）汇总", "乡镇汇总"]
    sheet = book["网格风险"]
    headers = [c.value for c in sheet[1]]
    assert {"编码", "村（社区）", "矛盾纠纷", "风险评分", "每千人事件数", "热点判定"} <= set(headers)
    rows = {r[headers.index("编码")]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[grid][headers.index("矛盾纠纷")] == 1
    assert rows[grid][headers.index("热点判定")] == "不显著"


def test_risk_file_formats_and_nothing_half_written(db_session, tmp_path):
    result = risk.compute_risk(db_session, None, PERIOD, (), SETTINGS, now=END)
    import pyogrio

    path = tmp_path / "risk.gpkg"
    risk.write_risk_file(db_session, result, "gpkg", path)
    assert [name for name, _ in pyogrio.list_layers(path)] == ["grids", "villages", "towns"]
    frame = pyogrio.read_dataframe(path, layer="grids")
    assert len(frame) == len(result.grids) and frame.crs.to_epsg() == 4326
    with pytest.raises(ValidationError) as caught:
        risk.write_risk_file(db_session, result, "shp", tmp_path / "risk.shp")
    assert caught.value.field == "format"
    with pytest.raises(ValidationError):
        risk.write_risk_file(db_session, result, "csv", tmp_path / "missing" / "risk.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["risk.gpkg"]


# --- heatmap ----------------------------------------------------------------------------------

def test_heat_cells_per_month_and_scope(db_session, make_user):
    for day in (2, 3, 4):
        add_incident(db_session, FANYING, category="DSP", occurred=at(day))
    add_incident(db_session, FANYING, category="SEC", occurred=at(28))
    add_incident(db_session, FANYING, category="SEC", occurred=at(29), status="duplicate")
    body = risk.heat_cells(db_session, None, risk.Period(at(1, month=2, hour=0), END), (), SETTINGS)
    assert body["months"] == ["2024-02", "2024-03"]
    assert body["counts"] == {"2024-02": 0, "2024-03": 4} and body["total"] == 4
    cells = body["points"]["2024-03"]
    assert cells[0][2] == 4  # all four at one point: one ~200 m cell
    _, lon, lat = grid_point(db_session, FANYING)
    assert abs(cells[0][0] - lat) < 0.002 and abs(cells[0][1] - lon) < 0.002
    assert risk.heat_cells(db_session, None, PERIOD, ("SEC",), SETTINGS)["total"] == 1
    other, _ = make_user("heat_other_town", "town_supervisor", [CHENGGUAN])
    assert risk.heat_cells(db_session, other, PERIOD, (), SETTINGS)["total"] == 0


# --- the county's numbers ---------------------------------------------------------------------

def test_sanling_and_compliance_on_seeded_villages(db_session):
    v_petition, v_ok, v_accident, v_serious, v_rejected, v_earlier = villages_of(db_session, NAODIAN, 6)
    v_criminal = villages_of(db_session, CHENGGUAN, 1)[0]
    add_incident(db_session, v_petition, category="PET", subcategory="county", occurred=at(5))  # escalated
    add_incident(db_session, v_ok, category="PET", subcategory="village", occurred=at(6), resolved=at(8),
                 level="village")                                                              # stays in the village
    add_incident(db_session, v_ok, category="SEC", legal_class="public_order", severity=2, occurred=at(7))  # not serious
    add_incident(db_session, v_accident, category="ACC", subcategory="injury", occurred=at(8))
    add_incident(db_session, v_serious, category="SEC", legal_class="public_order", severity=3, occurred=at(9))
    add_incident(db_session, v_rejected, category="ACC", subcategory="death", occurred=at(9), status="rejected")
    add_incident(db_session, v_earlier, category="ACC", subcategory="injury", occurred=at(20, month=2))
    add_incident(db_session, v_criminal, category="SEC", legal_class="criminal", severity=2, occurred=at(10))

    report = risk.county_report(db_session, None, PERIOD, SETTINGS)
    flags = report.villages
    failing = set(flags.index[~flags["compliant"]])
    assert failing == {v_petition, v_accident, v_serious, v_criminal}
    assert not flags.loc[v_petition, "zero_petitions"] and flags.loc[v_petition, "zero_cases"]
    assert not flags.loc[v_accident, "zero_accidents"]
    assert not flags.loc[v_serious, "zero_cases"] and not flags.loc[v_criminal, "zero_cases"]
    assert flags.loc[[v_ok, v_rejected, v_earlier], "compliant"].all()

    villages = count(db_session, "SELECT count(*) FROM villages")
    naodian = count(db_session, "SELECT count(*) FROM villages WHERE town_code = :t", t=NAODIAN)
    chengguan = count(db_session, "SELECT count(*) FROM villages WHERE town_code = :t", t=CHENGGUAN)
    table = report.compliance
    assert table.index[-1] == "county_total" and table.loc["county_total", "town_name"] == "全县"
    assert (table.loc["county_total", "n"], table.loc["county_total", "n_compliant"]) == (villages, villages - 4)
    assert table.loc["county_total", "rate"] == pytest.approx((villages - 4) / villages)
    assert table.loc[NAODIAN, "n_compliant"] == naodian - 3
    assert table.loc[NAODIAN, "rate"] == pytest.approx((naodian - 3) / naodian)
    assert bool(table.loc[NAODIAN, "target_met"]) is ((naodian - 3) / naodian >= 0.8)
    assert table.loc[CHENGGUAN, "n_compliant"] == chengguan - 1
    assert table.loc[NAODIAN, "town_name"] == "闹店镇"


def test_resolution_levels_on_seeded_disputes(db_session):
    n1, n2, n3 = villages_of(db_session, NAODIAN, 3)
    c1 = villages_of(db_session, CHENGGUAN, 1)[0]
    for village, level in ((n1, "village"), (n2, "village"), (n1, "town"), (n3, "county")):
        add_incident(db_session, village, category="DSP", occurred=at(2), resolved=at(12), level=level)
    # occurred in the previous period, resolved in this one: counted (disputes are placed by when they were resolved)
    add_incident(db_session, n2, category="DSP", occurred=at(20, month=2), resolved=at(3), level="village")
    add_incident(db_session, c1, category="DSP", occurred=at(4), resolved=at(6), level="village")
    add_incident(db_session, c1, category="DSP", occurred=at(4), resolved=at(7), level="town")
    add_incident(db_session, c1, category="DSP", occurred=at(4), resolved=at(8), level="county", status="duplicate")
    add_incident(db_session, c1, category="DSP", occurred=at(25), resolved=at(10, month=4), level="county")  # later
    add_incident(db_session, c1, category="PET", occurred=at(4), resolved=at(8), level="county")  # not a dispute

    table = risk.county_report(db_session, None, PERIOD, SETTINGS).resolution
    assert list(table.loc[NAODIAN, ["n_resolved", "n_village", "n_town", "n_county"]]) == [5, 3, 1, 1]
    assert table.loc[NAODIAN, "share_village"] == pytest.approx(0.6)
    assert table.loc[NAODIAN, "share_town"] == pytest.approx(0.2)
    assert table.loc[NAODIAN, "share_county"] == pytest.approx(0.2)
    assert list(table.loc[CHENGGUAN, ["n_resolved", "n_village", "n_town", "n_county"]]) == [2, 1, 1, 0]
    assert list(table.loc["county_total", ["n_resolved", "n_village", "n_town", "n_county"]]) == [7, 4, 2, 1]
    assert table.loc["county_total", "share_village"] == pytest.approx(4 / 7)
    other_town = table.drop(index=[NAODIAN, CHENGGUAN, "county_total"])
    assert (other_town["n_resolved"] == 0).all() and other_town["share_village"].isna().all()


def test_enterprise_units_and_mediation_on_seeded_cases(db_session):
    n1, n2 = villages_of(db_session, NAODIAN, 2)
    c1 = villages_of(db_session, CHENGGUAN, 1)[0]
    add_incident(db_session, n1, category="DSP", subcategory="enterprise", occurred=at(3))
    add_incident(db_session, n2, category="DSP", subcategory="wages", enterprise=True, occurred=at(4))
    case = add_incident(db_session, c1, category="SEC", legal_class="criminal", enterprise=True, occurred=at(5),
                        phone="13912345678", parties="张某某")
    accident = add_incident(db_session, n1, category="ACC", subcategory="injury", occurred=at(6))
    unit = add_enterprise_with_incident(db_session, n1, accident)
    point = mediation_point(db_session)
    for outcome in ("agreement", "agreement", "failed", None):
        add_incident(db_session, n2, category="DSP", occurred=at(10), mediation_point=point, outcome=outcome)

    report = risk.county_report(db_session, None, PERIOD, SETTINGS)
    enterprise = report.enterprise
    assert list(enterprise.loc["county_total", ["n_enterprise_disputes", "n_enterprise_cases",
                                                "n_enterprise_criminal_cases"]]) == [2, 1, 1]
    assert enterprise.loc[NAODIAN, "n_enterprise_disputes"] == 2 and enterprise.loc[CHENGGUAN, "n_enterprise_cases"] == 1
    listed = {c["id"]: c for c in report.enterprise_cases}
    assert listed[case]["kind_of_case"] == "涉企案件" and "13912345678" not in str(report.enterprise_cases)

    assert not report.units.loc[unit, "compliant"] and report.units.loc[unit, "n_accidents"] == 1
    units_in_town = count(db_session, "SELECT count(*) FROM places WHERE kind = 'enterprise' AND active "
                                      "AND town_code = :t", t=NAODIAN)
    assert report.unit_compliance.loc[NAODIAN, "n"] == units_in_town
    assert report.unit_compliance.loc[NAODIAN, "n_compliant"] == units_in_town - 1
    assert "巡检" in report.unit_note

    stats = report.mediation.loc[point]
    assert (stats.n_referred, stats.n_agreement, stats.n_failed, stats.n_pending) == (4, 2, 1, 1)
    assert stats.agreement_rate == pytest.approx(2 / 3)
    assert report.gaps["distance_m"].gt(report.distance_m).all()

    body = risk.report_json(report)
    assert body["sanling"]["by_town"][-1]["town_code"] == "county_total"
    assert 0 <= body["sanling"]["by_town"][-1]["rate"] <= 1
    book = openpyxl.load_workbook(io.BytesIO(risk.report_xlsx(report)))
    assert {"三零村（社区）", "三零达标率（乡镇）", "化解层级", "涉企纠纷与案件", "调解阵地覆盖缺口",
            "调解阵地"} <= set(book.sheetnames)
    sheet = book["三零达标率（乡镇）"]
    headers = [c.value for c in sheet[1]]
    assert headers[:3] == ["乡镇编码", "乡镇（街道）", "数量"] and "达标率" in headers
    last = [r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == "county_total"][0]
    assert last[1] == "全县" and 0 < last[headers.index("达标率")] <= 1


def test_mediation_gaps_follow_the_distance(db_session):
    near = risk.county_report(db_session, None, PERIOD, SETTINGS, distance_m=100)
    far = risk.county_report(db_session, None, PERIOD, SETTINGS, distance_m=20_000)
    assert far.gaps.empty
    assert len(near.gaps) > 0 and (near.gaps["distance_m"] > 100).all()
    assert near.gaps["nearest_point_name"].notna().all()
    with pytest.raises(ValidationError) as caught:
        risk.parse_distance("-5", 2000)
    assert caught.value.field == "distance"


def test_report_for_a_town_supervisor_and_a_mediator(db_session, make_user):
    supervisor, _ = make_user("report_town", "town_supervisor", [NAODIAN])
    report = risk.county_report(db_session, supervisor, PERIOD, SETTINGS)
    naodian = count(db_session, "SELECT count(*) FROM villages WHERE town_code = :t", t=NAODIAN)
    assert len(report.villages) == naodian and set(report.villages["town_code"]) == {NAODIAN}
    assert list(report.compliance.index) == [NAODIAN, "county_total"]
    assert report.compliance.loc["county_total", "town_name"] == "合计（可见范围）"
    viewer = db_session.get(User, make_user("report_viewer", "viewer")[0].id)
    assert risk.county_report(db_session, viewer, PERIOD, SETTINGS).enterprise_cases is None
    point = mediation_point(db_session, 2)
    add_incident(db_session, villages_of(db_session, CHENGGUAN, 1)[0], category="DSP", occurred=at(4), mediation_point=point,
                 outcome="agreement")
    mediator, _ = make_user("report_mediator", "mediator", [str(point)])
    own = risk.county_report(db_session, mediator, PERIOD, SETTINGS)
    assert list(own.mediation.index) == [point] and own.mediation.loc[point, "n_agreement"] == 1
    assert own.villages.empty
