"""grid_risk_summary, risk_levels and rollup against numbers worked out by hand."""
from __future__ import annotations

import math
import warnings

import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.analysis.risk import (COUNT_COLUMNS, DEFAULT_RISK_WEIGHTS, AnalysisInputError, RiskWeights,
                                   fisher_jenks_upper_bounds, grid_risk_summary, risk_levels, rollup)

END = pd.Timestamp("2024-05-01T00:00", tz="Asia/Shanghai")
START = END - pd.Timedelta(days=30)
DAY = pd.Timedelta(days=1)
# half-life 10 days: ages of 10, 20, 30 days weigh 1/2, 1/4, 1/8
TEN_DAY_WEIGHTS = RiskWeights(half_life_days=10)

VILLAGE_1, VILLAGE_2, VILLAGE_3 = "410421102201", "410421102202", "410421103201"
TOWN_1, TOWN_2 = "410421102000", "410421103000"


def code(k: int) -> str:
    village = VILLAGE_1 if k <= 3 else VILLAGE_2 if k <= 6 else VILLAGE_3
    return f"{village}{k:03d}"


def three_by_three_grids() -> gpd.GeoDataFrame:
    """Grids 1..9 as 1 km squares in EPSG:4547, row by row from the north-west, in 4326.
    Grids 1-3 are village 1, 4-6 village 2 (both town 1), 7-9 village 3 (town 2)."""
    squares, codes = [], []
    for k in range(1, 10):
        row, col = divmod(k - 1, 3)
        x0, y0 = 400_000 + col * 1000, 3_740_000 - row * 1000
        squares.append(shapely.MultiPolygon([shapely.box(x0, y0 - 1000, x0 + 1000, y0)]))
        codes.append(code(k))
    grids = gpd.GeoDataFrame({
        "code": codes,
        "village_code": [VILLAGE_1] * 3 + [VILLAGE_2] * 3 + [VILLAGE_3] * 3,
        "town_code": [TOWN_1] * 6 + [TOWN_2] * 3,
        "population": [100, 200, 0, 300, 400, 500, 600, 700, 800],
        "area_km2": [1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    }, geometry=squares, crs="EPSG:4547").to_crs("EPSG:4326")
    return grids


def incident_frame(rows) -> pd.DataFrame:
    columns = ["id", "grid_code", "category", "severity", "status", "occurred_at", "deadline_at"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["deadline_at"] = pd.to_datetime(frame["deadline_at"], utc=True)
    frame["village_code"] = frame["grid_code"].str[:12]
    frame["town_code"] = frame["grid_code"].str[:9] + "000"
    return frame


def hand_incidents() -> pd.DataFrame:
    return incident_frame([
        # in the period [START, END)
        (1, code(1), "DSP", 1, "closed", START, None),                     # age 30: 1 * 1/8 = 0.125
        (2, code(1), "SEC", 3, "closed", END - 10 * DAY, None),           # age 10: 4 * 1/2 = 2.0
        (3, code(2), "ACC", 4, "in_progress", END - 10 * DAY, END - DAY),  # 8 * 1/2 = 4.0; open, overdue
        (4, code(2), "PET", 2, "reported", END - 20 * DAY, None),         # 2 * 1/4 = 0.5; open, no deadline
        (5, code(3), "FIR", 1, "accepted", START, END + 5 * DAY),         # 1 * 1/8 = 0.125; open, not yet due
        (6, code(5), "DSP", 4, "rejected", END - 10 * DAY, None),         # rejected: not counted at all
        (7, "410421999999999", "DSP", 4, "reported", END - 10 * DAY, None),  # unknown grid: ignored
        (8, code(6), "HAZ", 1, "reported", END, None),                    # at END: after the period, not backlog
        # previous period [START - 30 days, START)
        (9, code(1), "DSP", 2, "closed", START - 5 * DAY, None),
        (10, code(1), "DSP", 2, "closed", START - 30 * DAY, None),        # previous-period start is included
        (11, code(2), "SEC", 1, "closed", START - DAY, None),
        (12, code(2), "SEC", 1, "closed", START - 30 * DAY - DAY, None),  # before the previous period
        # long ago, still open and overdue
        (13, code(4), "TRF", 2, "dispatched", "2023-01-01T00:00+08:00", "2023-02-01T00:00+08:00"),
    ])


@pytest.fixture
def grids():
    return three_by_three_grids()


@pytest.fixture
def summary(grids):
    return grid_risk_summary(grids, hand_incidents(), START, END, now=END, weights=TEN_DAY_WEIGHTS, classes=3)


def test_counts_per_category_and_total(summary):
    assert list(summary.index) == [code(k) for k in range(1, 10)]
    assert summary.index.name == "grid_code"
    assert summary.loc[code(1), ["n_DSP", "n_SEC", "n_total"]].tolist() == [1, 1, 2]
    assert summary.loc[code(2), ["n_ACC", "n_PET", "n_total"]].tolist() == [1, 1, 2]
    assert summary.loc[code(3), ["n_FIR", "n_total"]].tolist() == [1, 1]
    # grids 4-9 had nothing in the period (5's incident was rejected, 6's came at END)
    assert summary.loc[[code(k) for k in range(4, 10)], "n_total"].tolist() == [0] * 6
    assert summary[list(COUNT_COLUMNS)].sum().sum() == 5
    assert summary["n_total"].dtype == np.int64


def test_score_is_severity_and_recency_weighted(summary):
    # grid 1: 1 * 2**-3 + 4 * 2**-1 = 2.125 ; grid 2: 8 * 2**-1 + 2 * 2**-2 = 4.5 ; grid 3: 1 * 2**-3
    assert summary.loc[code(1), "score"] == pytest.approx(2.125)
    assert summary.loc[code(2), "score"] == pytest.approx(4.5)
    assert summary.loc[code(3), "score"] == pytest.approx(0.125)
    assert summary.loc[[code(k) for k in range(4, 10)], "score"].tolist() == [0.0] * 6


def test_default_weights_halve_after_thirty_days(grids):
    assert dict(DEFAULT_RISK_WEIGHTS.severity) == {1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0}
    assert DEFAULT_RISK_WEIGHTS.half_life_days == 30
    incidents = incident_frame([(1, code(5), "SEC", 3, "closed", START, None)])
    out = grid_risk_summary(grids, incidents, START, END, now=END)
    # severity 3 weighs 4; age 30 days = one half-life: 4 * 0.5 = 2
    assert out.loc[code(5), "score"] == pytest.approx(2.0)


def test_rates_never_divide_by_zero(summary):
    # grid 1: 2 incidents / 1 km2 ; 2 / 100 people * 1000 = 20
    assert summary.loc[code(1), "per_km2"] == pytest.approx(2.0)
    assert summary.loc[code(1), "per_1000"] == pytest.approx(20.0)
    # grid 2: 2 / 0.5 km2 = 4 ; 2 / 200 * 1000 = 10
    assert summary.loc[code(2), "per_km2"] == pytest.approx(4.0)
    assert summary.loc[code(2), "per_1000"] == pytest.approx(10.0)
    # grid 3 has no residents: per 1,000 is undefined, per km2 is 1 / 1
    assert math.isnan(summary.loc[code(3), "per_1000"])
    assert summary.loc[code(3), "per_km2"] == pytest.approx(1.0)
    # an empty grid with people: 0, not NaN
    assert summary.loc[code(9), "per_1000"] == 0.0


def test_backlog_is_judged_now(summary, grids):
    # open now: 3 and 4 (grid 2), 5 (grid 3), 13 (grid 4, from 2023); overdue: 3 and 13
    assert summary["open_backlog"].to_dict() == {code(k): v for k, v in zip(range(1, 10), [0, 2, 1, 1, 0, 0, 0, 0, 0])}
    assert summary["overdue_backlog"].to_dict() == {code(k): v for k, v in
                                                    zip(range(1, 10), [0, 1, 0, 1, 0, 0, 0, 0, 0])}
    # 30 days later incident 5's deadline (END + 5 days) has passed too
    later = grid_risk_summary(grids, hand_incidents(), START, END, now=END + 30 * DAY, weights=TEN_DAY_WEIGHTS)
    assert later.loc[code(3), "overdue_backlog"] == 1
    # ...while the score still counts ages back from the period end, min(end, now)
    assert later.loc[code(2), "score"] == pytest.approx(4.5)


def test_trend_against_previous_period(summary):
    # grid 1: 2 now, 2 before (incidents 9 and 10) -> change 0, 0 %
    assert summary.loc[code(1), ["prev_total", "change"]].tolist() == [2, 0]
    assert summary.loc[code(1), "change_pct"] == 0.0
    # grid 2: 2 now, 1 before (11; 12 is older) -> +1, +100 %
    assert summary.loc[code(2), ["prev_total", "change"]].tolist() == [1, 1]
    assert summary.loc[code(2), "change_pct"] == pytest.approx(100.0)
    # grid 3: 1 now, none before -> +1, percentage undefined
    assert summary.loc[code(3), ["prev_total", "change"]].tolist() == [0, 1]
    assert math.isnan(summary.loc[code(3), "change_pct"])


def test_risk_levels_by_natural_breaks(summary, grids):
    # scores: six 0, one 0.125, 2.125, 4.5. Three classes: {0, 0.125} (within SS ~0.013)
    # beats {0}, {0.125, 2.125} (SS 2.0), so grid 1 -> 2, grid 2 -> 3, the rest -> 1
    assert summary["risk_level"].tolist() == [2, 3, 1, 1, 1, 1, 1, 1, 1]
    assert summary.attrs["risk_classes"] == 3
    # five classes but only four distinct scores: each its own level, 1..4
    five = grid_risk_summary(grids, hand_incidents(), START, END, now=END, weights=TEN_DAY_WEIGHTS, classes=5)
    assert five["risk_level"].tolist() == [3, 4, 2, 1, 1, 1, 1, 1, 1]


def test_period_without_incidents(grids):
    incidents = hand_incidents()
    out = grid_risk_summary(grids, incidents, END + 100 * DAY, END + 130 * DAY, now=END + 130 * DAY)
    assert out["n_total"].sum() == 0
    assert out["score"].sum() == 0.0
    assert out["risk_level"].tolist() == [1] * 9  # all-zero scores: everything is level 1
    assert out["change_pct"].isna().all()
    # the open backlog is still there: incidents 3, 4, 5, 13, and now also 8 (it occurred
    # at END, before this later period's end)
    assert out["open_backlog"].sum() == 5


def test_no_incidents_at_all(grids):
    empty = hand_incidents().iloc[0:0]
    out = grid_risk_summary(grids, empty, START, END, now=END)
    assert len(out) == 9
    assert (out[["n_total", "open_backlog", "prev_total"]] == 0).all().all()
    assert (out["risk_level"] == 1).all()


def test_empty_grid_layer():
    grids = three_by_three_grids().iloc[0:0]
    out = grid_risk_summary(grids, hand_incidents(), START, END, now=END)
    assert len(out) == 0
    assert {"n_DSP", "score", "per_1000", "risk_level"} <= set(out.columns)


@pytest.mark.parametrize("drop", ["population", "area_km2", "code"])
def test_missing_grid_column_is_named(grids, drop):
    with pytest.raises(ValueError, match=drop):
        grid_risk_summary(grids.drop(columns=[drop]), hand_incidents(), START, END, now=END)


def test_missing_incident_column_is_named(grids):
    with pytest.raises(ValueError, match="deadline_at"):
        grid_risk_summary(grids, hand_incidents().drop(columns=["deadline_at"]), START, END, now=END)


def test_grids_must_be_wgs84(grids):
    with pytest.raises(AnalysisInputError, match="EPSG:4326"):
        grid_risk_summary(grids.to_crs("EPSG:4547"), hand_incidents(), START, END, now=END)


def test_times_must_be_aware_and_period_non_empty(grids):
    with pytest.raises(ValueError, match="timezone-aware"):
        grid_risk_summary(grids, hand_incidents(), "2024-04-01", END, now=END)
    with pytest.raises(ValueError, match="empty"):
        grid_risk_summary(grids, hand_incidents(), END, START, now=END)
    naive = hand_incidents()
    naive["occurred_at"] = naive["occurred_at"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="naive"):
        grid_risk_summary(grids, naive, START, END, now=END)


def test_unknown_category_severity_and_status_are_rejected(grids):
    bad = hand_incidents()
    bad.loc[0, "category"] = "XYZ"
    with pytest.raises(ValueError, match="XYZ"):
        grid_risk_summary(grids, bad, START, END, now=END)
    bad = hand_incidents()
    bad.loc[0, "severity"] = 5
    with pytest.raises(ValueError, match="severit"):
        grid_risk_summary(grids, bad, START, END, now=END)
    bad = hand_incidents()
    bad.loc[0, "status"] = "lost"
    with pytest.raises(ValueError, match="lost"):
        grid_risk_summary(grids, bad, START, END, now=END)


def test_risk_weights_validate():
    with pytest.raises(ValueError):
        RiskWeights(severity={1: 1, 2: 2, 3: 4})
    with pytest.raises(ValueError):
        RiskWeights(half_life_days=0)
    weights = RiskWeights.from_mapping({"severity": {"1": 1, "2": 3, "3": 9, "4": 27}, "half_life_days": 7})
    assert dict(weights.severity) == {1: 1.0, 2: 3.0, 3: 9.0, 4: 27.0} and weights.half_life_days == 7.0


# --------------------------------------------------------------------------- levels


def test_natural_breaks_by_hand():
    # {0,0,0,1,1} (SS 1.2), {10,10,10}, {50}: any other 3-way cut costs more
    # (e.g. {0}, {1,1,10,10,10} has SS 97.2)
    values = [0, 0, 0, 1, 1, 10, 10, 10, 50]
    assert risk_levels(values, classes=3).tolist() == [1, 1, 1, 1, 1, 2, 2, 2, 3]
    assert fisher_jenks_upper_bounds(values, 3).tolist() == [1.0, 10.0, 50.0]


def test_natural_breaks_match_mapclassify():
    rng = np.random.default_rng(7)
    for _ in range(8):
        values = np.round(rng.gamma(1.2, 3.0, size=int(rng.integers(15, 60))), 3)
        k = int(rng.integers(2, 7))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Numba not installed"
            reference = mapclassify.FisherJenks(values, k=k)
        np.testing.assert_allclose(fisher_jenks_upper_bounds(values, k), reference.bins)
        np.testing.assert_array_equal(risk_levels(values, classes=k), reference.yb + 1)


def test_quantile_levels():
    # quintile upper bounds of 0..9 are 1.8, 3.6, 5.4, 7.2, 9
    assert risk_levels(np.arange(10), classes=5, method="quantiles").tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_quantile_levels_with_many_ties_merge_without_warning():
    # 12 zeros and 1..6 (18 values): the 20/40/60 % quantiles are all 0 and merge; the 80 %
    # one is at position 0.8 * 17 = 13.6 of the sorted values: 2 + 0.6 * (3 - 2) = 2.6.
    # Upper bounds 0, 2.6, 6 -> three levels.
    values = np.array([0] * 12 + [1, 2, 3, 4, 5, 6], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        levels = risk_levels(values, classes=5, method="quantiles")
    assert levels.tolist() == [1] * 12 + [2, 2, 3, 3, 3, 3]


def test_levels_with_few_distinct_values():
    assert risk_levels([0, 0, 0], classes=5).tolist() == [1, 1, 1]
    assert risk_levels([0, 7, 0, 3], classes=5).tolist() == [1, 3, 1, 2]
    assert risk_levels([], classes=5).tolist() == []
    with pytest.raises(ValueError):
        risk_levels([1, -1], classes=5)
    with pytest.raises(ValueError):
        risk_levels([1, 2], classes=5, method="equal_interval")


# --------------------------------------------------------------------------- roll-ups


def test_rollup_to_villages(summary, grids):
    villages = rollup(summary, grids, by="village_code", classes=3)
    assert villages.index.tolist() == [VILLAGE_1, VILLAGE_2, VILLAGE_3]
    v1 = villages.loc[VILLAGE_1]
    # grids 1-3: 2 + 2 + 1 incidents; score 2.125 + 4.5 + 0.125; 100 + 200 + 0 people; 1 + 0.5 + 1 km2
    assert v1["n_grids"] == 3 and v1["n_total"] == 5
    assert v1["score"] == pytest.approx(6.75)
    assert v1["population"] == 300 and v1["area_km2"] == pytest.approx(2.5)
    assert v1["per_km2"] == pytest.approx(5 / 2.5)
    assert v1["per_1000"] == pytest.approx(5 / 300 * 1000)
    assert (v1["open_backlog"], v1["overdue_backlog"]) == (3, 1)
    # previous: 2 + 1 + 0 = 3 -> change +2 = +66.7 %
    assert (v1["prev_total"], v1["change"]) == (3, 2)
    assert v1["change_pct"] == pytest.approx(200 / 3)
    assert villages.loc[VILLAGE_2, ["n_total", "open_backlog", "overdue_backlog"]].tolist() == [0, 1, 1]
    assert math.isnan(villages.loc[VILLAGE_2, "change_pct"])
    # scores 6.75, 0, 0: two distinct values -> levels 2, 1, 1
    assert villages["risk_level"].tolist() == [2, 1, 1]


def test_rollup_to_towns(summary, grids):
    towns = rollup(summary, grids, by="town_code")
    assert towns.index.tolist() == [TOWN_1, TOWN_2]
    assert towns["n_total"].tolist() == [5, 0]
    assert towns["n_grids"].tolist() == [6, 3]
    assert towns.loc[TOWN_1, "population"] == 100 + 200 + 0 + 300 + 400 + 500


def test_rollup_needs_every_grid(summary, grids):
    with pytest.raises(ValueError, match="not in grids"):
        rollup(summary, grids.iloc[1:], by="village_code")
    with pytest.raises(ValueError):
        rollup(summary, grids, by="county_code")
