"""Patrol route planning: optimality on small cases, the time budget, road travel, GPX."""
from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from itertools import permutations

import geopandas as gpd
import gpxpy
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import LineString, box

from gridmap.analysis import routing
from gridmap.analysis.routing import (
    RoadNetwork,
    RoutePlan,
    RoutingError,
    TravelTimes,
    build_road_network,
    choose_candidates,
    plan_route,
    road_network_travel,
    route_to_gpx,
    straight_line_travel,
)

CRS = "EPSG:4547"
TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
X0, Y0 = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(113.06, 33.87)


def lonlat(dx: float, dy: float) -> tuple[float, float]:
    lon, lat = TO_LONLAT.transform(X0 + dx, Y0 + dy)
    return (float(lon), float(lat))


def random_case(seed: int, n: int, radius_m: float = 3000.0):
    rng = np.random.default_rng(seed)
    pts = [lonlat(*rng.uniform(-radius_m, radius_m, 2)) for _ in range(n)]
    stops = pd.DataFrame({
        "id": [f"S{i}" for i in range(n)],
        "lon": [p[0] for p in pts],
        "lat": [p[1] for p in pts],
        "prize": np.round(rng.uniform(0.5, 5.0, n), 2),
        "service_minutes": rng.choice([10.0, 12.0, 15.0], n),
    })
    return stops, lonlat(0, 0)


def brute_force_best_prize(minutes: np.ndarray, service: np.ndarray, prize: np.ndarray, shift: float,
                           return_to_start: bool) -> float:
    """Best prize over every ordered subset of stops (nodes 1..n, node 0 is the start)."""
    n = len(prize)
    best = 0.0
    for r in range(1, n + 1):
        for perm in permutations(range(1, n + 1), r):
            t = 0.0
            prev = 0
            for node in perm:
                t += minutes[prev, node] + service[node - 1]
                prev = node
                if t > shift:
                    break
            if return_to_start:
                t += minutes[prev, 0]
            if t <= shift:
                best = max(best, float(prize[[p - 1 for p in perm]].sum()))
    return best


def route_time(plan: RoutePlan, minutes: np.ndarray, ids: list[str]) -> float:
    """The plan's time recomputed from the matrix, independent of the plan's own numbers."""
    nodes = [ids.index(i) + 1 for i in plan.stops["id"]]
    seq = [0, *nodes] + ([0] if plan.return_to_start and nodes else [])
    travel = sum(minutes[a, b] for a, b in zip(seq[:-1], seq[1:]))
    return travel + float(plan.stops["service_minutes"].sum())


# --------------------------------------------------------------------------- optimality and budget


@pytest.mark.parametrize("seed, n, shift, back", [
    (1, 6, 60, True), (2, 7, 75, True), (3, 7, 50, False), (4, 6, 60, True), (5, 7, 65, False),
])
def test_planner_finds_the_brute_force_best_prize(seed, n, shift, back):
    stops, start = random_case(seed, n)
    points = [start, *zip(stops["lon"], stops["lat"])]
    travel = straight_line_travel(points, speed_kmh=30)
    best = brute_force_best_prize(travel.minutes, stops["service_minutes"].to_numpy(),
                                  stops["prize"].to_numpy(), shift, back)
    plan = plan_route(stops, start, shift, travel, time_limit_s=0.3, return_to_start=back)
    assert 0 < len(plan.stops) < n  # the case is not trivial: some stops must be left out
    assert plan.total_prize == pytest.approx(best)
    assert plan.total_minutes <= shift


@pytest.mark.parametrize("seed, n, shift, back", [(2, 7, 75, True), (3, 7, 50, False), (5, 7, 65, False)])
def test_search_path_also_finds_the_brute_force_best_prize(monkeypatch, seed, n, shift, back):
    # the same small cases through the heuristic + OR-Tools path used for large zones
    monkeypatch.setattr(routing, "_EXACT_MAX_STOPS", 0)
    stops, start = random_case(seed, n)
    travel = straight_line_travel([start, *zip(stops["lon"], stops["lat"])], speed_kmh=30)
    best = brute_force_best_prize(travel.minutes, stops["service_minutes"].to_numpy(),
                                  stops["prize"].to_numpy(), shift, back)
    plan = plan_route(stops, start, shift, travel, time_limit_s=1.0, return_to_start=back)
    assert plan.status != "ROUTING_OPTIMAL"  # really the search path
    assert plan.total_prize == pytest.approx(best)


@pytest.mark.parametrize("seed", range(8))
def test_time_budget_is_never_exceeded(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(8, 30))
    stops, start = random_case(1000 + seed, n, radius_m=float(rng.uniform(1000, 8000)))
    shift = float(rng.uniform(25, 240))
    back = bool(rng.random() < 0.7)
    max_stops = int(rng.integers(2, 8)) if rng.random() < 0.3 else None
    points = [start, *zip(stops["lon"], stops["lat"])]
    travel = straight_line_travel(points, speed_kmh=float(rng.uniform(15, 40)))
    try:
        plan = plan_route(stops, start, shift, travel, time_limit_s=0.2, return_to_start=back,
                          max_stops=max_stops)
    except RoutingError as exc:  # a very short shift may fit no stop at all
        assert "too short" in str(exc)
        return
    ids = list(stops["id"])
    assert route_time(plan, travel.minutes, ids) <= shift + 1e-9
    assert plan.total_minutes == pytest.approx(route_time(plan, travel.minutes, ids))
    assert plan.total_minutes <= shift
    if max_stops is not None:
        assert len(plan.stops) <= max_stops
    s = plan.stops
    assert s["order"].tolist() == list(range(1, len(s) + 1))
    assert (s["departure_minute"] - s["arrival_minute"]).tolist() == pytest.approx(s["service_minutes"].tolist())
    assert s["arrival_minute"].tolist() == pytest.approx(
        (s["departure_minute"].shift(1).fillna(0) + s["travel_minutes"]).tolist())
    assert set(plan.skipped) == set(ids) - set(s["id"])


def test_a_longer_shift_collects_at_least_as_much():
    stops, start = random_case(7, 15)
    travel = functools.partial(straight_line_travel, speed_kmh=30)
    prizes = [plan_route(stops, start, shift, travel, time_limit_s=0.2).total_prize for shift in (40, 80, 160)]
    assert prizes[0] <= prizes[1] <= prizes[2]
    assert prizes[0] < prizes[2]


def test_max_stops_limits_the_route():
    stops, start = random_case(8, 10, radius_m=500)
    plan = plan_route(stops, start, 480, straight_line_travel([start, *zip(stops.lon, stops.lat)]),
                      max_stops=3, time_limit_s=0.2)
    assert len(plan.stops) == 3
    assert plan.total_prize == pytest.approx(stops["prize"].nlargest(3).sum())


def test_open_route_ends_at_the_last_stop_and_closed_route_at_the_start():
    stops, start = random_case(9, 5, radius_m=1000)
    travel = functools.partial(straight_line_travel, speed_kmh=30)
    closed = plan_route(stops, start, 480, travel, time_limit_s=0.2)
    assert closed.path[0] == pytest.approx(start) and closed.path[-1] == pytest.approx(start)
    assert closed.travel_mode == "straight_line"
    assert len(closed.stops) == 5
    opened = plan_route(stops, start, 480, travel, time_limit_s=0.2, return_to_start=False)
    last = opened.stops.iloc[-1]
    assert opened.path[-1] == pytest.approx((last["lon"], last["lat"]))
    assert opened.total_minutes < closed.total_minutes


def test_plan_to_dict_is_plain_json():
    import json

    stops, start = random_case(10, 4, radius_m=800)
    plan = plan_route(stops, start, 120, functools.partial(straight_line_travel), time_limit_s=0.2)
    doc = json.loads(json.dumps(plan.to_dict()))
    assert doc["path"]["type"] == "LineString"
    assert [s["id"] for s in doc["stops"]] == plan.stops["id"].tolist()


@pytest.mark.parametrize("mutate, shift, message", [
    (lambda s: s.iloc[0:0], 60, "no candidate stops"),
    (lambda s: s.drop(columns="prize"), 60, "missing column"),
    (lambda s: s.assign(prize=-1.0), 60, "negative prize"),
    (lambda s: s.assign(id="same"), 60, "not unique"),
    (lambda s: s.assign(lat=np.nan), 60, "'lat'"),
    (lambda s: s, 5, "too short for even one stop"),
    (lambda s: s, 0, "shift_minutes"),
])
def test_plan_route_errors(mutate, shift, message):
    stops, start = random_case(11, 4)
    with pytest.raises(RoutingError, match=message):
        plan_route(mutate(stops), start, shift, functools.partial(straight_line_travel), time_limit_s=0.1)


def test_plan_route_rejects_a_matrix_for_other_points():
    stops, start = random_case(12, 4)
    wrong = straight_line_travel([start, *zip(stops["lon"], stops["lat"])][:-1])
    with pytest.raises(RoutingError, match="4 stops"):
        plan_route(stops, start, 60, wrong, time_limit_s=0.1)
    shifted = straight_line_travel([lonlat(10, 10), *zip(stops["lon"], stops["lat"])])
    with pytest.raises(RoutingError, match="other points"):
        plan_route(stops, start, 60, shifted, time_limit_s=0.1)


# --------------------------------------------------------------------------- road network


def roads_frame() -> gpd.GeoDataFrame:
    """A 1 km square A(0,0) B(1000,0) C(1000,1000) D(0,1000) with a slow diagonal, and an island."""
    def line(*pts):
        return LineString([(X0 + x, Y0 + y) for x, y in pts])
    rows = [
        (line((0, 0), (500, 0), (1000, 0)), 60.0),       # A-B, fast, with a middle vertex
        (line((1000, 0), (1000, 500), (1000, 1000)), 60.0),  # B-C, fast
        (line((0, 0), (1000, 1000)), 10.0),             # A-C diagonal, slow
        (line((0, 0), (0, 1000)), np.nan),              # A-D, default speed (30)
        (line((0, 1000), (1000, 1000)), None),          # D-C, default speed
        (line((0, 0), (1000, 0)), 5.0),                 # a slow parallel A-B: the fast one wins
        (line((5000, 0), (5100, 0)), 30.0),             # an island
    ]
    return gpd.GeoDataFrame({"speed_kmh": [r[1] for r in rows]}, geometry=[r[0] for r in rows], crs=CRS)


def test_road_travel_follows_the_shortest_path():
    points = [lonlat(0, 0), lonlat(1000, 1000), lonlat(1030, 500)]
    tt = road_network_travel(roads_frame(), points, default_speed_kmh=30, labels=["start", "C", "mid"])
    assert tt.mode == "road"
    assert tt.minutes[0, 1] == pytest.approx(2.0, abs=1e-6)          # A-B-C at 60 km/h
    assert tt.minutes[1, 0] == pytest.approx(2.0, abs=1e-6)
    assert tt.minutes[0, 2] == pytest.approx(1.5 + 0.06, abs=1e-3)   # 1.5 km + 30 m access at 30 km/h
    assert tt.minutes[2, 1] == pytest.approx(0.06 + 0.5, abs=1e-3)
    path = tt.path(0, 1)
    assert path[0] == pytest.approx(points[0]) and path[-1] == pytest.approx(points[1])
    corner_b = lonlat(1000, 0)
    assert any(np.allclose(p, corner_b, atol=1e-9) for p in path)     # goes through B, not along the diagonal
    assert len(path) == 5                                             # A, mid A-B, B, mid B-C, C


def test_road_network_built_once_gives_the_same_times():
    net = build_road_network(roads_frame(), default_speed_kmh=30)
    assert isinstance(net, RoadNetwork)
    # A-mid, mid-B, B-mid, mid-C, A-C, A-D, D-C, the direct A-B, and the island
    assert (net.n_nodes, net.n_edges) == (8, 9)
    points = [lonlat(0, 0), lonlat(1000, 1000)]
    assert road_network_travel(net, points).minutes[0, 1] == pytest.approx(2.0, abs=1e-6)


def test_road_travel_errors_name_the_points():
    roads = roads_frame()
    with pytest.raises(RoutingError, match="no road connects start and stop island"):
        road_network_travel(roads, [lonlat(0, 0), lonlat(1000, 1000), lonlat(5050, 0)],
                            labels=["start", "stop C", "stop island"])
    with pytest.raises(RoutingError, match="stop far is 500 m from the nearest road"):
        road_network_travel(roads, [lonlat(0, 0), lonlat(500, 500)], snap_max_m=400,
                            labels=["start", "stop far"])


def test_plan_route_with_road_travel_names_unreachable_stops():
    stops = pd.DataFrame({"id": ["C", "island"], "lon": [lonlat(1000, 1000)[0], lonlat(5050, 0)[0]],
                          "lat": [lonlat(1000, 1000)[1], lonlat(5050, 0)[1]], "prize": [1.0, 2.0]})
    travel = functools.partial(road_network_travel, build_road_network(roads_frame()))
    with pytest.raises(RoutingError, match="no road connects start and stop island"):
        plan_route(stops, lonlat(0, 0), 120, travel, time_limit_s=0.1)
    plan = plan_route(stops.iloc[:1], lonlat(0, 0), 120, travel, time_limit_s=0.1)
    assert plan.travel_mode == "road"
    assert plan.total_minutes == pytest.approx(2.0 + 12.0 + 2.0, abs=1e-6)
    assert any(np.allclose(p, lonlat(1000, 0), atol=1e-9) for p in plan.path)


def test_build_road_network_checks_input():
    with pytest.raises(RoutingError, match="LineStrings"):
        build_road_network(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs=CRS))
    with pytest.raises(RoutingError, match="no CRS"):
        build_road_network(roads_frame().set_crs(None, allow_override=True))
    with pytest.raises(RoutingError, match="non-positive"):
        build_road_network(roads_frame().assign(speed_kmh=0.0))


# --------------------------------------------------------------------------- candidates and GPX


def test_choose_candidates_prizes_by_hand():
    grids = gpd.GeoDataFrame({
        "code": ["G1", "G2", "G3", "G4"],
        "score": [2.0, 1.0, 0.0, 4.0],
        "hours_since_last_visit": [24.0, np.nan, 5.0, 0.0],
        "hotspot": [False, True, True, False],
    }, geometry=[box(X0 + 400 * i, Y0, X0 + 400 * i + 300, Y0 + 300) for i in range(4)], crs=CRS)
    cand = choose_candidates(grids)
    assert cand["id"].tolist() == ["G2", "G1", "G4"]          # G3 has no risk
    assert cand["prize"].tolist() == pytest.approx([1.5, 1.2, 0.8])
    assert (cand["service_minutes"] == 12.0).all()
    cells = grids.set_index("code").to_crs(4326).geometry
    for row in cand.itertuples():
        assert cells[row.id].contains(gpd.points_from_xy([row.lon], [row.lat])[0])
    assert choose_candidates(grids, max_candidates=2)["id"].tolist() == ["G2", "G1"]
    # a Gi* bin column works too: above 0 is a hot spot, cold spots (below 0) are not
    gi = grids.drop(columns="hotspot").assign(gi_bin=[-2, 3, 1, 0])
    assert choose_candidates(gi, hotspot_column="gi_bin")["prize"].tolist() == pytest.approx([1.5, 1.2, 0.8])
    assert choose_candidates(gi, hotspot_column=None)["prize"].tolist() == pytest.approx([1.2, 1.0, 0.8])


def test_choose_candidates_errors():
    grids = gpd.GeoDataFrame({"code": ["G1"], "score": [0.0], "hours_since_last_visit": [1.0],
                              "hotspot": [False]}, geometry=[box(X0, Y0, X0 + 1, Y0 + 1)], crs=CRS)
    with pytest.raises(RoutingError, match="no candidate stops"):
        choose_candidates(grids)
    with pytest.raises(RoutingError, match="hotspot"):
        choose_candidates(grids.drop(columns="hotspot"))


def test_gpx_round_trip_keeps_stops_order_and_times():
    stops, start = random_case(13, 6, radius_m=1500)
    plan = plan_route(stops, start, 120, functools.partial(straight_line_travel), time_limit_s=0.2)
    shift_start = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
    gpx = gpxpy.parse(route_to_gpx(plan, "巡逻路线 Z1", start_time=shift_start))
    assert gpx.version == "1.1"
    names = [w.name for w in gpx.waypoints]
    assert names == [f"{i + 1:02d} {sid}" for i, sid in enumerate(plan.stops["id"])]
    expected = [shift_start + timedelta(minutes=m) for m in plan.stops["arrival_minute"]]
    assert [w.time for w in gpx.waypoints] == [pytest.approx(t, abs=timedelta(seconds=1)) for t in expected]
    assert [p.name for p in gpx.routes[0].points] == names
    assert gpx.routes[0].name == "巡逻路线 Z1"
    track = [(p.longitude, p.latitude) for p in gpx.tracks[0].segments[0].points]
    assert np.allclose(track, plan.path, atol=1e-9)
    assert (gpx.waypoints[0].longitude, gpx.waypoints[0].latitude) == pytest.approx(
        (plan.stops["lon"].iloc[0], plan.stops["lat"].iloc[0]))


def test_gpx_without_start_time_has_no_times():
    stops, start = random_case(14, 3, radius_m=500)
    plan = plan_route(stops, start, 120, straight_line_travel([start, *zip(stops.lon, stops.lat)]),
                      time_limit_s=0.1)
    assert isinstance(plan, RoutePlan)
    gpx = gpxpy.parse(route_to_gpx(plan, "r"))
    assert all(w.time is None for w in gpx.waypoints)
    assert "arrive +" in gpx.waypoints[0].description


def test_plan_uses_the_given_matrix_not_geometry():
    # three stops on a line east of the start; the matrix makes the far one cheap to reach
    points = [lonlat(0, 0), lonlat(1000, 0), lonlat(2000, 0), lonlat(3000, 0)]
    minutes = np.array([[0, 20, 20, 1],
                        [20, 0, 20, 20],
                        [20, 20, 0, 20],
                        [1, 20, 20, 0]], dtype=float)
    travel = TravelTimes(minutes=minutes, points=np.array(points), mode="straight_line",
                         labels=("start", "a", "b", "c"))
    stops = pd.DataFrame({"id": ["a", "b", "c"], "lon": [p[0] for p in points[1:]],
                          "lat": [p[1] for p in points[1:]], "prize": [1.0, 1.0, 1.0], "service_minutes": 10.0})
    plan = plan_route(stops, points[0], 30, travel, time_limit_s=0.1)
    assert plan.stops["id"].tolist() == ["c"]
    assert plan.total_minutes == pytest.approx(12.0)
    with pytest.raises(RoutingError, match="no route connects start and a"):
        bad = minutes.copy()
        bad[0, 1] = np.inf
        plan_route(stops, points[0], 30, TravelTimes(bad, np.array(points), "road", ("start", "a", "b", "c")),
                   time_limit_s=0.1)
