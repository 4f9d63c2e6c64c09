"""Patrol coverage: visits, dwell, gaps and zone figures against hand-computed values."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import box

from gridmap.analysis.coverage import (
    CoverageError,
    daily_patrol_minutes,
    find_visits,
    grid_coverage,
    hotspot_coverage,
    patrol_intervals,
    shift_coverage,
    zone_coverage,
)

T0 = pd.Timestamp("2024-05-01T08:00:00Z")
CRS = "EPSG:4547"
TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
X0, Y0 = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(113.06, 33.87)


def minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


def track(track_id, points, officer="民警甲", zone_code="Z1") -> pd.DataFrame:
    """Fixes from (x offset m, y offset m, minute) triples."""
    x = np.array([X0 + p[0] for p in points], dtype=float)
    y = np.array([Y0 + p[1] for p in points], dtype=float)
    lon, lat = TO_LONLAT.transform(x, y)
    return pd.DataFrame({"track_id": track_id, "officer": officer, "zone_code": zone_code,
                         "time": [minutes(p[2]) for p in points], "lon": lon, "lat": lat})


def grids_frame(rows: list[dict]) -> gpd.GeoDataFrame:
    """Square grids given as metre offsets (x0, y0, x1, y1) in EPSG:4547."""
    geoms = [box(X0 + r["box"][0], Y0 + r["box"][1], X0 + r["box"][2], Y0 + r["box"][3]) for r in rows]
    data = [{k: v for k, v in r.items() if k != "box"} for r in rows]
    return gpd.GeoDataFrame(data, geometry=geoms, crs=CRS).to_crs(4326)


# grid A: a 200 m square from x=0 to 200; grid B: 200 m east of it, far enough away
GRIDS = grids_frame([{"code": "A", "box": (0, 0, 200, 200)}, {"code": "B", "box": (2000, 0, 2200, 200)}])


def patrol() -> pd.DataFrame:
    """One officer: walks into A, stays 12 min, leaves; later a drive-by and a split stay."""
    pts = [(-300, 100, 0), (-200, 100, 1), (-100, 100, 2)]        # approaching, > 50 m away
    pts += [(100, 100, m) for m in range(3, 16)]                   # in A from minute 3 to 15
    pts += [(400, 100, 16), (600, 100, 17)]                        # out (200 m, 400 m away)
    pts += [(100, 100, 120), (100, 100, 121), (600, 100, 122)]     # drive-by: 1 minute
    pts += [(100, 100, m) for m in range(200, 206)]                # 5 minutes...
    pts += [(100, 100, m) for m in range(220, 223)]                # ...15-min gap, then 2 minutes
    pts += [(600, 100, 223)]
    return track("t1", pts)


def test_find_visits_splits_on_leaving_and_on_time_gaps():
    visits = find_visits(patrol(), GRIDS)
    a = visits[visits["code"] == "A"]
    assert a["start"].tolist() == [minutes(3), minutes(120), minutes(200), minutes(220)]
    assert a["end"].tolist() == [minutes(15), minutes(121), minutes(205), minutes(222)]
    assert a["dwell_minutes"].tolist() == [12.0, 1.0, 5.0, 2.0]
    assert a["fixes"].tolist() == [13, 2, 6, 3]
    assert set(a["officer"]) == {"民警甲"} and set(a["zone_code"]) == {"Z1"}
    assert (visits["code"] == "B").sum() == 0


def test_visit_distance_counts_fixes_just_outside_the_polygon():
    near = track("t", [(-40, 100, 0), (-40, 100, 1)])   # 40 m west of A's edge
    far = track("u", [(-60, 100, 0), (-60, 100, 1)])    # 60 m west
    visits = find_visits(pd.concat([near, far]), GRIDS, visit_distance_m=50)
    assert visits["track_id"].tolist() == ["t"]
    assert len(find_visits(far, GRIDS, visit_distance_m=70)) == 1


def test_gap_minutes_parameter_controls_the_split():
    visits = find_visits(patrol(), GRIDS, gap_minutes=20)
    assert (visits["dwell_minutes"] == 22.0).sum() == 1  # 200..222 is one visit now


def test_grid_coverage_numbers_by_hand():
    start, end = minutes(-60), minutes(300)
    cov = grid_coverage(patrol(), GRIDS, start=start, end=end)
    a, b = cov.loc["A"], cov.loc["B"]
    assert a["visits"] == 4
    assert a["dwell_minutes"] == pytest.approx(20.0)
    assert a["mean_dwell_minutes"] == pytest.approx(5.0)
    assert a["share_10_15"] == pytest.approx(0.25)
    assert a["last_visit_end"] == minutes(222)
    assert a["hours_since_last_visit"] == pytest.approx(78 / 60)
    # gaps: 63 min before the first visit, then 105, 79, 15, and 78 to the end
    assert a["longest_gap_hours"] == pytest.approx(105 / 60)
    assert b["visits"] == 0 and b["dwell_minutes"] == 0.0
    assert np.isnan(b["share_10_15"]) and np.isnan(b["hours_since_last_visit"]) and pd.isna(b["last_visit_end"])
    assert b["longest_gap_hours"] == pytest.approx(6.0)


def test_now_inside_the_period_cuts_the_period_there():
    cov = grid_coverage(patrol(), GRIDS, start=minutes(-60), end=minutes(600), now=minutes(210))
    a = cov.loc["A"]
    assert a["visits"] == 3                         # the visit starting at 220 is in the future
    assert a["last_visit_end"] == minutes(205)      # fixes after now are ignored
    assert a["hours_since_last_visit"] == pytest.approx(5 / 60)
    assert a["longest_gap_hours"] == pytest.approx(105 / 60)
    assert cov.loc["B", "longest_gap_hours"] == pytest.approx(270 / 60)


def test_longest_gap_uses_the_latest_end_when_visits_overlap():
    long_stay = track("t1", [(100, 100, m) for m in range(0, 61)])
    short_stay = track("t2", [(100, 100, m) for m in range(10, 21)], officer="民警乙")
    later = track("t3", [(100, 100, 70), (100, 100, 80)], officer="民警乙")
    cov = grid_coverage(pd.concat([long_stay, short_stay, later]), GRIDS, start=minutes(0), end=minutes(90))
    a = cov.loc["A"]
    assert a["visits"] == 3
    assert a["longest_gap_hours"] == pytest.approx(10 / 60)  # 60 -> 70 and 80 -> 90, not 20 -> 70
    assert a["share_10_15"] == pytest.approx(2 / 3)           # 60 min, 10 min, 10 min


def test_hotspot_coverage_uses_any_polygons_and_their_index():
    spots = grids_frame([{"box": (50, 50, 150, 150)}, {"box": (5000, 5000, 5100, 5100)}])
    spots.index = ["hs-1", "hs-2"]
    cov = hotspot_coverage(patrol(), spots, start=minutes(-60), end=minutes(300))
    assert cov.loc["hs-1", "visits"] == 4
    assert cov.loc["hs-2", "visits"] == 0


@pytest.mark.parametrize("call, message", [
    (lambda: grid_coverage(patrol().drop(columns="track_id"), GRIDS, start=minutes(0), end=minutes(1)),
     "track_id"),
    (lambda: grid_coverage(patrol(), GRIDS, start="2024-05-01 08:00", end=minutes(60)), "timezone-aware"),
    (lambda: grid_coverage(patrol(), GRIDS, start=minutes(60), end=minutes(0)), "period is empty"),
    (lambda: grid_coverage(patrol(), GRIDS.set_crs(None, allow_override=True), start=minutes(0), end=minutes(1)),
     "no CRS"),
    (lambda: grid_coverage(patrol(), GRIDS.set_geometry(GRIDS.representative_point()),
                           start=minutes(0), end=minutes(1)),
     "must be polygons"),
    (lambda: grid_coverage(patrol(), pd.concat([GRIDS, GRIDS]), start=minutes(0), end=minutes(1)),
     "duplicate ids"),
    (lambda: grid_coverage(patrol(), GRIDS, start=minutes(0), end=minutes(1), visit_distance_m=-1),
     "visit_distance_m"),
    (lambda: grid_coverage(patrol().assign(time=patrol()["time"].dt.tz_localize(None)), GRIDS,
                           start=minutes(0), end=minutes(1)), "timezone-aware"),
])
def test_coverage_checks_its_inputs(call, message):
    with pytest.raises(CoverageError, match=message):
        call()


def test_empty_tracks_give_zero_coverage():
    empty = patrol().iloc[0:0]
    cov = grid_coverage(empty, GRIDS, start=minutes(0), end=minutes(120))
    assert cov["visits"].tolist() == [0, 0]
    assert cov["longest_gap_hours"].tolist() == [2.0, 2.0]


# --------------------------------------------------------------------------- zones


ZONE_GRIDS = grids_frame([
    {"code": "A", "risk_level": 4, "score": 3.0, "zone_code": "Z1", "box": (0, 0, 200, 200)},
    {"code": "B", "risk_level": 1, "score": 1.0, "zone_code": "Z1", "box": (200, 0, 400, 200)},
    {"code": "C", "risk_level": 3, "score": 2.0, "zone_code": "Z2", "box": (5000, 0, 5200, 200)},
])


def zone_patrol() -> pd.DataFrame:
    pts = [(100, 100, m) for m in range(0, 31)]          # in A, minutes 0..30
    pts += [(300, 100, m) for m in range(31, 41)]        # in B, minutes 31..40
    pts += [(300, 100, m) for m in range(100, 111)]      # after a 60-min gap, B again 100..110
    return track("t1", pts)


def test_patrol_intervals_leave_out_long_gaps():
    iv = patrol_intervals(zone_patrol())
    assert iv["minutes"].sum() == pytest.approx(50.0)   # 30 + 1 + 9 + 10; the 60-min gap is out
    assert len(iv) == 50


def test_zone_coverage_by_hand():
    shifts = [(minutes(-60), minutes(60)), (minutes(180), minutes(300))]
    cov = zone_coverage(zone_patrol(), ZONE_GRIDS, start=minutes(-720), end=minutes(2160), shifts=shifts)
    z1, z2 = cov.loc["Z1"], cov.loc["Z2"]
    assert (z1["grids"], z1["high_risk_grids"], z2["grids"], z2["high_risk_grids"]) == (2, 1, 1, 1)
    assert z1["share_high_risk_visited_per_shift"] == pytest.approx(0.5)   # shift 1: 1/1, shift 2: 0/1
    assert z2["share_high_risk_visited_per_shift"] == pytest.approx(0.0)
    assert z1["patrol_minutes"] == pytest.approx(50.0)
    assert z1["patrol_minutes_per_day"] == pytest.approx(25.0)            # a two-day period
    assert z2["patrol_minutes"] == 0.0
    # 31 of 50 minutes in A (the 30->31 interval starts in A); A holds 3 of 4 risk units
    assert z1["high_risk_time_share"] == pytest.approx(31 / 50)
    assert z1["high_risk_risk_share"] == pytest.approx(0.75)
    assert z1["risk_time_ratio"] == pytest.approx((31 / 50) / 0.75)
    assert np.isnan(z2["risk_time_ratio"])                                   # nobody patrolled Z2


def test_zone_coverage_places_grids_in_zone_polygons_the_same_way():
    zones = grids_frame([{"zone_code": "Z1", "box": (-100, -100, 1000, 1000)},
                         {"zone_code": "Z2", "box": (4000, -100, 6000, 1000)}])
    shifts = [(minutes(-60), minutes(60)), (minutes(180), minutes(300))]
    with_column = zone_coverage(zone_patrol(), ZONE_GRIDS, start=minutes(-720), end=minutes(2160), shifts=shifts)
    with_polygons = zone_coverage(zone_patrol(), ZONE_GRIDS.drop(columns="zone_code"), zones=zones,
                                  start=minutes(-720), end=minutes(2160), shifts=shifts)
    pd.testing.assert_frame_equal(with_column.sort_index(), with_polygons.sort_index())


def test_shift_coverage_rows():
    shifts = [(minutes(-60), minutes(60)), (minutes(180), minutes(300))]
    table = shift_coverage(zone_patrol(), ZONE_GRIDS, shifts, high_risk_threshold=3)
    z1 = table[table["zone_code"] == "Z1"]
    assert z1["visited"].tolist() == [1, 0] and z1["share"].tolist() == [1.0, 0.0]
    # with threshold 1, B is high-risk too and visited in shift 1 (minutes 31..40)
    table = shift_coverage(zone_patrol(), ZONE_GRIDS, shifts, high_risk_threshold=1)
    assert table[table["zone_code"] == "Z1"]["share"].tolist() == [1.0, 0.0]
    assert table[table["zone_code"] == "Z1"]["high_risk_grids"].tolist() == [2, 2]


def test_zone_coverage_errors():
    shifts = [(minutes(0), minutes(60))]
    with pytest.raises(CoverageError, match="risk_level"):
        zone_coverage(zone_patrol(), ZONE_GRIDS.drop(columns="risk_level"), start=minutes(0), end=minutes(60),
                      shifts=shifts)
    with pytest.raises(CoverageError, match="zone_code"):
        zone_coverage(zone_patrol(), ZONE_GRIDS.drop(columns="zone_code"), start=minutes(0), end=minutes(60),
                      shifts=shifts)
    with pytest.raises(CoverageError, match="shifts"):
        zone_coverage(zone_patrol(), ZONE_GRIDS, start=minutes(0), end=minutes(60), shifts=[])
    with pytest.raises(CoverageError, match="before it starts"):
        zone_coverage(zone_patrol(), ZONE_GRIDS, start=minutes(0), end=minutes(60),
                      shifts=[(minutes(60), minutes(0))])


def test_daily_patrol_minutes_uses_local_days():
    # 15:50 to 16:10 UTC is 23:50 to 00:10 in Beijing: 10 minutes on each local day
    pts = [(0, 0, 470 + m) for m in range(0, 21)]
    daily = daily_patrol_minutes(track("t", pts), start=minutes(-480), end=minutes(960), tz="Asia/Shanghai")
    assert daily["minutes"].tolist() == [10.0, 10.0]
    assert [str(d) for d in daily["date"]] == ["2024-05-01", "2024-05-02"]
