"""County numbers ("三零", resolution levels, enterprise cases, mediation) worked out by hand."""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.analysis.county_numbers import (COUNTY_TOTAL, UNIT_COMPLIANCE_TARGET, VILLAGE_COMPLIANCE_TARGET,
                                             compliance_rate, enterprise_related, mediation_gaps, mediation_stats,
                                             resolution_levels, sanling_by_unit, sanling_by_village)

START = pd.Timestamp("2023-01-01T00:00", tz="Asia/Shanghai")
END = pd.Timestamp("2024-01-01T00:00", tz="Asia/Shanghai")
MID = pd.Timestamp("2023-06-15T10:00", tz="Asia/Shanghai")
BEFORE = pd.Timestamp("2022-12-31T23:59", tz="Asia/Shanghai")

T1, T2 = "410421102000", "410421103000"
V1, V2, V3, V4, V5 = "410421102201", "410421102202", "410421103201", "410421103202", "410421103203"

VILLAGES = pd.DataFrame({
    "code": [V1, V2, V3, V4, V5],
    "town_code": [T1, T1, T2, T2, T2],
    "name": ["范营村", "北村", "东村", "西村", "南村"],
})


def incidents(rows) -> pd.DataFrame:
    """rows of dicts; unspecified fields get harmless defaults."""
    defaults = {"id": 0, "grid_code": None, "village_code": V1, "town_code": None, "category": "DSP",
                "subcategory": "other", "severity": 1, "legal_class": "none", "enterprise_involved": False,
                "status": "closed", "occurred_at": MID, "deadline_at": None, "resolution_level": None,
                "mediation_point_id": None, "mediation_outcome": None}
    frame = pd.DataFrame([{**defaults, "id": i + 1, **row} for i, row in enumerate(rows)])
    frame["town_code"] = frame["village_code"].str[:9] + "000"
    frame["grid_code"] = frame["village_code"] + "001"
    for column in ("occurred_at", "deadline_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    if "resolved_at" in frame.columns:
        frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True)
    return frame


SANLING_INCIDENTS = incidents([
    # V1: a petition handled in the village; a criminal case marked duplicate (not counted)
    {"village_code": V1, "category": "PET", "subcategory": "village", "resolution_level": "village"},
    {"village_code": V1, "category": "SEC", "legal_class": "criminal", "status": "duplicate"},
    # V2: a village-level petition that ended up resolved by the town -> escalated
    {"village_code": V2, "category": "PET", "subcategory": "village", "resolution_level": "town"},
    # V3: a safety accident; a public-order case of severity 2 (not serious)
    {"village_code": V3, "category": "ACC", "subcategory": "injury", "severity": 3},
    {"village_code": V3, "category": "SEC", "legal_class": "public_order", "severity": 2},
    # V4: a serious public-order case (severity 3); a county petition that was rejected;
    # a criminal case before the period
    {"village_code": V4, "category": "SEC", "legal_class": "public_order", "severity": 3},
    {"village_code": V4, "category": "PET", "subcategory": "county", "status": "rejected"},
    {"village_code": V4, "category": "SEC", "legal_class": "criminal", "occurred_at": BEFORE},
    # V5: nothing in the period except an accident at END (outside)
    {"village_code": V5, "category": "ACC", "subcategory": "death", "occurred_at": END},
])


def test_sanling_flags_per_village():
    flags = sanling_by_village(VILLAGES, SANLING_INCIDENTS, START, END)
    assert flags.index.tolist() == [V1, V2, V3, V4, V5]
    assert flags.index.name == "village_code"
    assert flags["zero_petitions"].tolist() == [True, False, True, True, True]
    assert flags["zero_accidents"].tolist() == [True, True, False, True, True]
    assert flags["zero_cases"].tolist() == [True, True, True, False, True]
    assert flags["compliant"].tolist() == [True, False, False, False, True]
    assert flags["n_escalated_petitions"].tolist() == [0, 1, 0, 0, 0]
    assert flags["n_serious_public_order_cases"].tolist() == [0, 0, 0, 1, 0]
    assert flags["n_criminal_cases"].tolist() == [0, 0, 0, 0, 0]
    assert flags["town_code"].tolist() == [T1, T1, T2, T2, T2] and flags.loc[V1, "name"] == "范营村"


@pytest.mark.parametrize("subcategory", ["town", "county", "above_county"])
def test_petition_subcategory_beyond_village_is_escalated(subcategory):
    rows = incidents([{"village_code": V1, "category": "PET", "subcategory": subcategory}])
    assert not sanling_by_village(VILLAGES, rows, START, END).loc[V1, "zero_petitions"]


def test_criminal_case_breaks_zero_cases():
    rows = incidents([{"village_code": V5, "category": "SEC", "legal_class": "criminal", "severity": 1}])
    flags = sanling_by_village(VILLAGES, rows, START, END)
    assert flags.loc[V5, ["zero_cases", "compliant"]].tolist() == [False, False]
    assert flags["compliant"].sum() == 4


def test_compliance_rate_by_town_and_county():
    table = compliance_rate(sanling_by_village(VILLAGES, SANLING_INCIDENTS, START, END))
    assert table.index.tolist() == [T1, T2, COUNTY_TOTAL]
    # T1: V1 of V1, V2 -> 1/2 ; T2: V5 of V3, V4, V5 -> 1/3 ; county: 2/5
    assert table["n"].tolist() == [2, 3, 5]
    assert table["n_compliant"].tolist() == [1, 1, 2]
    np.testing.assert_allclose(table["rate"], [1 / 2, 1 / 3, 2 / 5])
    assert table["n_zero_accidents"].tolist() == [2, 2, 4]
    assert (table["target"] == VILLAGE_COMPLIANCE_TARGET).all() and VILLAGE_COMPLIANCE_TARGET == 0.80
    assert table["target_met"].tolist() == [False, False, False]


def test_compliance_target_met_at_exactly_eighty_percent():
    # only V2's escalated petition: 4 of 5 villages compliant = 80 % -> met
    rows = incidents([{"village_code": V2, "category": "PET", "subcategory": "town"}])
    table = compliance_rate(sanling_by_village(VILLAGES, rows, START, END), by=None)
    assert table.index.tolist() == [COUNTY_TOTAL]
    assert table.loc[COUNTY_TOTAL, "rate"] == pytest.approx(0.8)
    assert bool(table.loc[COUNTY_TOTAL, "target_met"])


def test_compliance_of_no_villages_is_undefined():
    empty = sanling_by_village(VILLAGES.iloc[0:0], SANLING_INCIDENTS, START, END)
    table = compliance_rate(empty)
    assert table.index.tolist() == [COUNTY_TOTAL]
    assert table.loc[COUNTY_TOTAL, "n"] == 0
    assert math.isnan(table.loc[COUNTY_TOTAL, "rate"]) and not table.loc[COUNTY_TOTAL, "target_met"]


def test_sanling_per_unit():
    units = pd.DataFrame({"id": [1, 2, 3], "name": ["平煤", "宝丰酒业", "县医院"], "town_code": [T1, T1, T2]})
    rows = incidents([
        {"category": "SEC", "legal_class": "criminal", "enterprise_involved": True, "unit_id": 1.0},
        {"category": "ACC", "subcategory": "injury", "unit_id": 3.0, "occurred_at": BEFORE},
        {"category": "ACC", "subcategory": "injury", "unit_id": None},
    ])
    flags = sanling_by_unit(units, rows, START, END)
    assert flags.index.tolist() == [1, 2, 3]
    assert flags["compliant"].tolist() == [False, True, True]
    table = compliance_rate(flags, by="town_code", target=UNIT_COMPLIANCE_TARGET)
    # T1: 1 of 2 ; T2: 1 of 1 ; county 2 of 3 against 90 %
    np.testing.assert_allclose(table["rate"], [0.5, 1.0, 2 / 3])
    assert table["target_met"].tolist() == [False, True, False]
    assert (table["target"] == 0.90).all()


def test_sanling_per_unit_without_unit_column_is_empty():
    units = pd.DataFrame({"id": [1, 2], "name": ["a", "b"]})
    flags = sanling_by_unit(units, SANLING_INCIDENTS, START, END)
    assert len(flags) == 0
    assert {"zero_petitions", "zero_accidents", "zero_cases", "compliant", "name"} <= set(flags.columns)
    assert compliance_rate(flags, by=None, target=UNIT_COMPLIANCE_TARGET).loc[COUNTY_TOTAL, "n"] == 0


def test_sanling_input_checks():
    with pytest.raises(ValueError, match="town_code"):
        sanling_by_village(VILLAGES.drop(columns=["town_code"]), SANLING_INCIDENTS, START, END)
    with pytest.raises(ValueError, match="legal_class"):
        sanling_by_village(VILLAGES, SANLING_INCIDENTS.drop(columns=["legal_class"]), START, END)
    with pytest.raises(ValueError, match="timezone"):
        sanling_by_village(VILLAGES, SANLING_INCIDENTS, "2023-01-01", END)


# --------------------------------------------------------------------------- resolution levels


def resolved(village, level, when=MID, category="DSP", **extra):
    return {"village_code": village, "category": category, "resolution_level": level, "resolved_at": when,
            "status": "closed", **extra}


RESOLVED = incidents([
    resolved(V1, "village"), resolved(V1, "village"), resolved(V2, "village"), resolved(V2, "town"),
    resolved(V3, "village"), resolved(V4, "county"),
    resolved(V1, "county", when=BEFORE),          # resolved before the period
    resolved(V1, None, when=None, status="in_progress"),  # not resolved
    resolved(V3, "county", category="SEC"),      # not a dispute
    resolved(V3, "town", status="rejected"),     # not counted
])


def test_resolution_levels_by_town_and_county():
    table = resolution_levels(RESOLVED, START, END)
    assert table.attrs["period_by"] == "resolved_at"
    assert table.index.tolist() == [T1, T2, COUNTY_TOTAL]
    # T1: village 3, town 1 ; T2: village 1, county 1 ; county: 4, 1, 1 of 6
    assert table["n_resolved"].tolist() == [4, 2, 6]
    assert table["n_village"].tolist() == [3, 1, 4]
    assert table["n_town"].tolist() == [1, 0, 1]
    assert table["n_county"].tolist() == [0, 1, 1]
    np.testing.assert_allclose(table.loc[COUNTY_TOTAL, ["share_village", "share_town", "share_county"]],
                               [4 / 6, 1 / 6, 1 / 6])
    np.testing.assert_allclose(table.loc[T2, ["share_village", "share_town", "share_county"]], [0.5, 0, 0.5])


def test_resolution_levels_fall_back_to_occurred_at():
    # without resolved_at: disputes that occurred in the period and have a level
    rows = RESOLVED.drop(columns=["resolved_at"])
    table = resolution_levels(rows, START, END, by=None)
    assert table.attrs["period_by"] == "occurred_at"
    # all occurred at MID: the six above plus the one resolved "before" (level county)
    assert table.loc[COUNTY_TOTAL, ["n_resolved", "n_village", "n_town", "n_county"]].tolist() == [7, 4, 1, 2]


def test_resolution_levels_of_empty_period():
    table = resolution_levels(RESOLVED, END, END + pd.Timedelta(days=30))
    assert table.index.tolist() == [COUNTY_TOTAL]
    assert table.loc[COUNTY_TOTAL, "n_resolved"] == 0
    assert math.isnan(table.loc[COUNTY_TOTAL, "share_village"])


# --------------------------------------------------------------------------- enterprise


def test_enterprise_related_disputes_and_cases():
    rows = incidents([
        {"village_code": V1, "category": "DSP", "enterprise_involved": True, "subcategory": "wages"},
        {"village_code": V3, "category": "DSP", "enterprise_involved": True},
        {"village_code": V3, "category": "DSP", "subcategory": "enterprise"},  # 涉企纠纷 without the flag
        {"village_code": V1, "category": "SEC", "enterprise_involved": True, "legal_class": "criminal"},
        {"village_code": V1, "category": "SEC", "enterprise_involved": True, "legal_class": "public_order"},
        {"village_code": V1, "category": "SEC", "enterprise_involved": False, "legal_class": "criminal"},
        {"village_code": V1, "category": "DSP", "enterprise_involved": True, "occurred_at": BEFORE},
        {"village_code": V1, "category": "DSP", "enterprise_involved": True, "status": "duplicate"},
    ])
    total = enterprise_related(rows, START, END)
    assert total.index.tolist() == [COUNTY_TOTAL]
    assert total.loc[COUNTY_TOTAL].to_dict() == {"n_enterprise_disputes": 3, "n_enterprise_cases": 2,
                                                 "n_enterprise_criminal_cases": 1,
                                                 "n_enterprise_public_order_cases": 1}
    by_town = enterprise_related(rows, START, END, by="town_code")
    assert by_town["n_enterprise_disputes"].tolist() == [1, 2, 3]
    assert by_town["n_enterprise_cases"].tolist() == [2, 0, 2]


# --------------------------------------------------------------------------- mediation


def square(x0: float, size: float = 1000.0):
    return shapely.box(400_000 + x0, 3_740_000, 400_000 + x0 + size, 3_740_000 + size)


@pytest.fixture
def village_polygons():
    # V1 [0, 1 km], V2 [2, 3 km], V3 [10, 11 km] along one row, 1 km tall
    return gpd.GeoDataFrame({"code": [V1, V2, V3], "name": ["范营村", "北村", "东村"]},
                            geometry=[square(0), square(2000), square(10_000)], crs="EPSG:4547").to_crs("EPSG:4326")


@pytest.fixture
def points():
    # P1 inside V1; P2 500 m east of V2
    return gpd.GeoDataFrame({"id": [1, 2], "name": ["范营村摆理堂", "北村说事厅"], "kind": ["bailitang", "shuoshiting"]},
                            geometry=[shapely.Point(400_500, 3_740_500), shapely.Point(403_500, 3_740_500)],
                            crs="EPSG:4547").to_crs("EPSG:4326")


def test_mediation_gaps(village_polygons, points):
    gaps = mediation_gaps(village_polygons, points, 1000)
    # V1 contains P1 (0 m), V2 is 500 m from P2, V3 is 10 000 - 3 500 = 6 500 m from P2
    assert gaps.index.tolist() == [V3]
    assert gaps.loc[V3, "nearest_point_id"] == 2
    assert gaps.loc[V3, "distance_m"] == pytest.approx(6500, abs=0.05)
    assert gaps.crs.to_epsg() == 4326 and gaps.loc[V3, "name"] == "东村"
    tighter = mediation_gaps(village_polygons, points, 400)
    assert tighter.index.tolist() == [V3, V2]  # farthest first
    assert tighter.loc[V2, "distance_m"] == pytest.approx(500, abs=0.05)
    # exactly at the distance counts as within
    assert mediation_gaps(village_polygons, points, 6500.5).index.tolist() == []


def test_mediation_gaps_without_points(village_polygons, points):
    gaps = mediation_gaps(village_polygons, points.iloc[0:0], 1000)
    assert gaps.index.tolist() == [V1, V2, V3]
    assert gaps["distance_m"].isna().all()


def test_mediation_gaps_input_checks(village_polygons, points):
    with pytest.raises(ValueError, match="max_distance_m"):
        mediation_gaps(village_polygons, points, -1)
    with pytest.raises(ValueError, match="projected"):
        mediation_gaps(village_polygons, points, 100, metric_crs="EPSG:4326")
    with pytest.raises(ValueError, match="id"):
        mediation_gaps(village_polygons, points.drop(columns=["id"]), 100)
    no_crs = village_polygons.set_crs(None, allow_override=True)
    with pytest.raises(ValueError, match="CRS"):
        mediation_gaps(no_crs, points, 100)


def test_mediation_stats(points):
    rows = incidents([
        {"mediation_point_id": 1, "mediation_outcome": "agreement"},
        {"mediation_point_id": 1, "mediation_outcome": "agreement", "category": "PET"},
        {"mediation_point_id": 1, "mediation_outcome": "failed"},
        {"mediation_point_id": 1, "mediation_outcome": None},
        {"mediation_point_id": 1, "mediation_outcome": "agreement", "status": "rejected"},  # not counted
        {"mediation_point_id": 2, "mediation_outcome": "transferred", "occurred_at": BEFORE},
        {"mediation_point_id": 99, "mediation_outcome": "agreement"},  # unknown point: ignored
        {"mediation_point_id": None},
    ])
    stats = mediation_stats(points, rows)
    assert stats.index.tolist() == [1, 2]
    assert stats.loc[1, ["n_referred", "n_agreement", "n_failed", "n_transferred", "n_pending"]].tolist() == \
        [4, 2, 1, 0, 1]
    # agreements over referrals with an outcome: 2 / 3
    assert stats.loc[1, "agreement_rate"] == pytest.approx(2 / 3)
    assert stats.loc[2, "agreement_rate"] == 0.0
    assert stats.loc[1, "name"] == "范营村摆理堂" and "geometry" not in stats.columns
    in_2023 = mediation_stats(points, rows, start=START, end=END)
    assert in_2023.loc[2, "n_referred"] == 0
    assert math.isnan(in_2023.loc[2, "agreement_rate"])
    with pytest.raises(ValueError):
        mediation_stats(points, rows, start=START)
