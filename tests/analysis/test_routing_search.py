"""The orienteering search's moves against brute force, and its round budget against the clock."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from gridmap.analysis import routing
from gridmap.analysis.routing import plan_route, straight_line_travel
from gridmap.analysis.routing_search import OR_OPT_MAX, OrienteeringSearch

CRS = "EPSG:4547"
TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
X0, Y0 = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(113.06, 33.87)


def asymmetric_case(seed: int, k: int, budget: int):
    """A model as plan_route builds it: node 0 start, 1..k stops, k+1 end; times not symmetric."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1000, (k + 1, 2))
    travel = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    travel = np.round(travel * rng.uniform(1.0, 1.6, travel.shape)).astype(np.int64)  # one-way streets
    service = np.r_[0, rng.integers(20, 60, k), 0]
    cost = np.zeros((k + 2, k + 2), dtype=np.int64)
    cost[: k + 1, : k + 1] = travel
    cost[: k + 1, k + 1] = travel[:, 0]
    cost += service[:, None]
    cost[:, 0] = 0
    cost[k + 1, :] = 0
    np.fill_diagonal(cost, 0)
    prize = np.r_[0.0, np.round(rng.uniform(0.5, 5.0, k), 2), 0.0]
    return OrienteeringSearch(cost, prize, budget, seed=seed)


def neighbours(route: list[int]):
    """Every 2-opt reversal and every or-opt move (runs of 1..OR_OPT_MAX, either way round)."""
    n = len(route)
    for p in range(n):
        for q in range(p + 2, n + 1):
            yield route[:p] + route[p:q][::-1] + route[q:]
    for length in range(1, OR_OPT_MAX + 1):
        for i in range(n - length + 1):
            run, rest = route[i:i + length], route[:i] + route[i + length:]
            for at in range(len(rest) + 1):
                for piece in (run, run[::-1]):
                    yield rest[:at] + piece + rest[at:]


@pytest.mark.parametrize("seed", range(20))
def test_shorten_ends_where_no_two_opt_or_or_opt_move_saves_time(seed):
    search = asymmetric_case(seed, 16, budget=10**9)
    route = list(np.random.default_rng(seed).permutation(np.arange(1, 17))[:13])
    short = search.shorten(route)
    assert sorted(short) == sorted(route)
    assert search.time(short) <= search.time(route)
    assert min(search.time(r) for r in neighbours(short)) >= search.time(short)


@pytest.mark.parametrize("seed, slack", [(s, slack) for s in range(10) for slack in (0, 40)])
def test_replace_makes_the_best_prize_swap_that_fits(seed, slack):
    search = asymmetric_case(100 + seed, 16, budget=0)
    route = search.shorten(list(range(1, 8)))
    search.budget = search.time(route) + slack     # full: little or no room for anything bigger
    visited = set(route)
    best_gain = 0.0
    for at, v in enumerate(route):
        rest = route[:at] + route[at + 1:]
        for u in range(1, 17):
            gain = search.prize[u] - search.prize[v]
            if u in visited or gain <= 1e-9:
                continue
            fastest = min(search.time(rest[:e] + [u] + rest[e:]) for e in range(len(rest) + 1))
            if fastest <= search.budget:
                best_gain = max(best_gain, gain)
    swapped = search.replace(route)
    if best_gain == 0.0:
        assert swapped is None
    else:
        assert swapped is not None and len(swapped) == len(route) and len(set(swapped)) == len(swapped)
        assert search.time(swapped) <= search.budget
        assert search.value(swapped) - search.value(route) == pytest.approx(best_gain)


@pytest.mark.parametrize("seed", range(4))
def test_fill_keeps_the_budget_and_the_stop_limit(seed):
    search = asymmetric_case(200 + seed, 30, budget=4000)
    route = search.fill([], 1.0)
    assert route and search.time(route) <= 4000 and len(set(route)) == len(route)
    # nothing left out fits anywhere
    for u in set(range(1, 31)) - set(route):
        assert all(search.time(route[:e] + [u] + route[e:]) > 4000 for e in range(len(route) + 1))
    search.limit = 3
    assert len(search.fill([], 1.0)) == 3


@pytest.mark.parametrize("seed, k", [(1, 11), (2, 12), (3, 12)])
def test_search_finds_the_exact_optimum_of_twelve_stop_cases(seed, k):
    search = asymmetric_case(300 + seed, k, budget=0)
    search.budget = int(search.time(list(range(1, k + 1))) * 0.45)  # about half the stops fit
    exact = routing._exact_route(search.c, search.prize, search.budget, None)
    found = search.run(40, stall_rounds=20)
    assert 0 < len(exact) < k
    assert search.time(found) <= search.budget
    assert search.value(found) == pytest.approx(search.value(exact))


def stops_frame(seed: int, n: int, radius_m: float = 6000.0) -> tuple[pd.DataFrame, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    lon, lat = TO_LONLAT.transform(X0 + rng.uniform(-radius_m, radius_m, n), Y0 + rng.uniform(-radius_m, radius_m, n))
    stops = pd.DataFrame({"id": [f"G{i}" for i in range(n)], "lon": lon, "lat": lat,
                          "prize": np.round(rng.gamma(2.0, 1.0, n), 3), "service_minutes": 12.0})
    return stops, tuple(TO_LONLAT.transform(X0, Y0))


def test_the_search_counts_rounds_so_the_same_request_gives_the_same_route(monkeypatch):
    # the search alone: OR-Tools after it is cut by the clock (test_routing_ortools.py)
    monkeypatch.setattr(routing, "_ORTOOLS_SHARE", 0.0)
    stops, start = stops_frame(5, 60)
    travel = straight_line_travel([start, *zip(stops["lon"], stops["lat"])], speed_kmh=25)
    first = plan_route(stops, start, 240, travel, time_limit_s=2.0)
    again = plan_route(stops, start, 240, travel, time_limit_s=2.0)
    assert first.stops["id"].tolist() == again.stops["id"].tolist()
    assert first.status == again.status
    assert first.status.startswith(("SEARCH_CONVERGED", "SEARCH_ROUNDS_DONE"))
    rounds = int(first.status.split("(")[1].split()[0])
    assert 20 <= rounds <= 80       # 40 rounds a second of the limit; stops after 32 idle rounds


def test_the_time_limit_covers_the_travel_matrix():
    stops, start = stops_frame(6, 60)

    def slow_travel(points, labels=None):   # e.g. a big road network on a busy server
        time.sleep(0.6)
        return straight_line_travel(points, speed_kmh=25, labels=labels)

    began = time.perf_counter()
    plan = plan_route(stops, start, 240, slow_travel, time_limit_s=0.5)
    elapsed = time.perf_counter() - began
    # the matrix used up the limit: the search still does its first few rounds, no more
    assert plan.status == "SEARCH_TIME_LIMIT (10 rounds); OR-Tools skipped"   # no time left for it
    assert plan.total_minutes <= 240
    assert elapsed < 0.6 + 5.0       # bounded (generous: shared CI machines)


def lattice_roads(side: int = 25, spacing_m: float = 200.0, seed: int = 0):
    """A jittered lattice of two-way streets around the county seat (EPSG:4547)."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    x = X0 - side * spacing_m / 2 + jj * spacing_m + rng.uniform(-40, 40, ii.shape)
    y = Y0 - side * spacing_m / 2 + ii * spacing_m + rng.uniform(-40, 40, ii.shape)
    a = np.vstack([np.column_stack([x[:, :-1].ravel(), y[:, :-1].ravel()]),
                   np.column_stack([x[:-1, :].ravel(), y[:-1, :].ravel()])])
    b = np.vstack([np.column_stack([x[:, 1:].ravel(), y[:, 1:].ravel()]),
                   np.column_stack([x[1:, :].ravel(), y[1:, :].ravel()])])
    speed = rng.choice([25.0, 40.0, 60.0], len(a), p=[0.7, 0.2, 0.1])
    return gpd.GeoDataFrame({"speed_kmh": speed}, geometry=shapely.linestrings(np.stack([a, b], axis=1)), crs=CRS)


def test_road_rows_are_computed_when_asked_for_and_match_the_whole_matrix():
    net = routing.build_road_network(lattice_roads(12), default_speed_kmh=30)
    stops, start = stops_frame(7, 15, radius_m=1000)
    points = [start, *zip(stops["lon"], stops["lat"])]
    lazy = routing.road_network_travel(net, points)
    assert lazy.symmetric and lazy.computed_rows == 0
    first = lazy.rows([3, 5])
    assert lazy.computed_rows == 2
    whole = routing.road_network_travel(net, points).minutes
    assert np.array_equal(first, whole[[3, 5]])
    assert np.array_equal(lazy.minutes, whole) and lazy.computed_rows == len(points)
    assert np.allclose(whole, whole.T, rtol=0, atol=1e-9)


def test_a_plan_on_road_rows_on_demand_is_the_plan_on_the_whole_matrix(monkeypatch):
    # the search alone: OR-Tools sees only the fetched stops on road rows, all of them on a
    # whole matrix, and is cut by the clock
    monkeypatch.setattr(routing, "_ORTOOLS_SHARE", 0.0)
    net = routing.build_road_network(lattice_roads(), default_speed_kmh=30)
    stops, start = stops_frame(8, 80, radius_m=2200)
    made = []

    def travel(points, labels=None):
        made.append(routing.road_network_travel(net, points, labels=labels))
        return made[-1]

    plan = plan_route(stops, start, 150, travel, time_limit_s=8)  # the clock never cuts it: equal rounds
    assert made[0].computed_rows < len(stops) + 1            # only the rows the search needed
    whole = routing.road_network_travel(net, [start, *zip(stops["lon"], stops["lat"])])
    whole.minutes
    again = plan_route(stops, start, 150, whole, time_limit_s=8)
    assert plan.status.startswith("SEARCH_") and "TIME_LIMIT" not in plan.status + again.status
    assert plan.stops["id"].tolist() == again.stops["id"].tolist()
    assert plan.total_minutes == pytest.approx(again.total_minutes) and plan.total_minutes <= 150
