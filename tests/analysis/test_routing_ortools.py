"""OR-Tools after the search in plan_route: it only ever keeps or improves the route, it really
improves a poor one, and the whole plan keeps its time limit."""
from __future__ import annotations

import time
from itertools import permutations

import numpy as np
import pytest

from gridmap.analysis import routing
from gridmap.analysis.routing import plan_route, straight_line_travel
from gridmap.analysis.routing_search import OrienteeringSearch

from .test_routing import brute_force_best_prize, random_case, route_time
from .test_routing_search import asymmetric_case, stops_frame


def route_ok(search: OrienteeringSearch, route: list[int]) -> bool:
    """A route of the model, checked from scratch: distinct stops, stop limit, budget."""
    seq = [0, *route, search.end]
    spent = sum(int(search.c[a, b]) for a, b in zip(seq[:-1], seq[1:]))
    return (len(set(route)) == len(route) and all(1 <= v < search.end for v in route)
            and len(route) <= search.limit and spent <= search.budget)


def enumerated_best(search: OrienteeringSearch) -> float:
    """Best prize over every ordered subset of the stops."""
    k = search.end - 1
    best = 0.0
    for r in range(1, k + 1):
        for perm in permutations(range(1, k + 1), r):
            if search.time(list(perm)) <= search.budget:
                best = max(best, search.value(list(perm)))
    return best


def poorest_route(search: OrienteeringSearch) -> list[int]:
    """The lowest-prize stop that fits the budget alone: a deliberately poor start."""
    alone = [v for v in range(1, search.end) if search.time([v]) <= search.budget]
    return [min(alone, key=lambda v: search.prize[v])]


# --------------------------------------------------------------------------- the step itself


@pytest.mark.parametrize("seed", range(6))
def test_the_ortools_step_never_returns_an_infeasible_or_lower_prize_route(seed):
    search = asymmetric_case(500 + seed, 40, budget=0)
    search.budget = int(search.time(list(range(1, 41))) * 0.3)
    if seed % 2:
        search.limit = 6                                 # max_stops as a count dimension
    searched = search.run(30, stall_rounds=15)
    for start in (searched, poorest_route(search), []):
        assert route_ok(search, start)
        route, verdict = routing._ortools_step(search, list(start), time.perf_counter() + 0.3)
        assert route_ok(search, route)
        assert search.value(route) >= search.value(start) - 1e-9
        if verdict == "OR-Tools improved":
            assert search.better(route, start)
        else:
            assert verdict == "OR-Tools checked, no better route" and route == list(start)
    # from a one-stop route there is always a better one here: the step must find it
    route, verdict = routing._ortools_step(search, poorest_route(search), time.perf_counter() + 0.3)
    assert verdict == "OR-Tools improved"


def test_an_infeasible_or_poorer_ortools_route_is_not_taken(monkeypatch):
    search = asymmetric_case(520, 20, budget=0)
    search.budget = int(search.time(list(range(1, 21))) * 0.4)
    searched = search.run(20, stall_rounds=10)
    everything = list(range(1, 21))                       # all the prize, far over the budget
    assert search.time(everything) > search.budget
    for offered in (everything, searched[:-1], searched + searched[:1]):
        monkeypatch.setattr(routing, "_ortools_route", lambda s, initial, until, r=offered: list(r))
        route, verdict = routing._ortools_step(search, list(searched), time.perf_counter() + 1.0)
        assert route == searched and verdict == "OR-Tools checked, no better route"


@pytest.mark.parametrize("seed", [400, 401, 403])
def test_ortools_from_a_poor_route_finds_the_enumerated_best(seed):
    search = asymmetric_case(seed, 8, budget=0)
    search.budget = int(search.time(list(range(1, 9))) * 0.5)
    best = enumerated_best(search)
    poor = poorest_route(search)
    assert search.value(poor) < best - 1e-9               # a no-op step would fail below
    found = routing._ortools_route(search, poor, time.perf_counter() + 0.5)
    assert found is not None and route_ok(search, found)
    assert search.value(found) == pytest.approx(best)


def test_ortools_uses_only_the_stops_whose_travel_rows_the_search_fetched():
    search = asymmetric_case(530, 150, budget=0)
    search.budget = int(search.time(list(range(1, 151))) * 0.03)
    full = search.c.copy()
    fetched = []

    def fetch(nodes):
        fetched.extend(int(v) for v in nodes)
        return full[nodes, :], full[:, nodes].T

    partial = np.full_like(full, routing._UNKNOWN_TICKS)    # as plan_route starts on road rows
    partial[0, :], partial[:, 0] = full[0, :], full[:, 0]
    partial[:, -1], partial[-1, :] = full[:, -1], full[-1, :]
    np.fill_diagonal(partial, 0)
    lazy = OrienteeringSearch(partial, search.prize, search.budget, fetch=fetch)
    route = lazy.run(20, stall_rounds=10)
    known_before = lazy.known.copy()
    found = routing._ortools_route(lazy, route, time.perf_counter() + 0.3)
    assert np.array_equal(lazy.known, known_before) and not known_before[1:-1].all()
    assert set(found) <= set(np.flatnonzero(known_before))
    assert route_ok(search, found)                        # feasible on the full costs too


# --------------------------------------------------------------------------- through plan_route


def test_plan_route_takes_the_better_ortools_route_and_says_so(monkeypatch):
    # the search path on a small case, with the search made to return a poor route:
    # OR-Tools must lift it to the enumerated best
    monkeypatch.setattr(routing, "_EXACT_MAX_STOPS", 0)
    monkeypatch.setattr(OrienteeringSearch, "run", lambda self, *a, **k: poorest_route(self))
    stops, start = random_case(2, 7)
    travel = straight_line_travel([start, *zip(stops["lon"], stops["lat"])], speed_kmh=30)
    best = brute_force_best_prize(travel.minutes, stops["service_minutes"].to_numpy(),
                                  stops["prize"].to_numpy(), 75, True)
    plan = plan_route(stops, start, 75, travel, time_limit_s=2.0)
    assert plan.status.endswith("; OR-Tools improved")
    assert plan.total_prize == pytest.approx(best)
    assert route_time(plan, travel.minutes, list(stops["id"])) <= 75 + 1e-9


def test_plan_route_keeps_the_search_route_when_ortools_finds_nothing_better():
    stops, start = stops_frame(5, 60)
    travel = straight_line_travel([start, *zip(stops["lon"], stops["lat"])], speed_kmh=25)
    plan = plan_route(stops, start, 240, travel, time_limit_s=2.0)
    search_part, checked = plan.status.split("; ")
    assert search_part.startswith(("SEARCH_CONVERGED", "SEARCH_ROUNDS_DONE"))
    assert checked in ("OR-Tools improved", "OR-Tools checked, no better route")
    assert plan.total_minutes <= 240


@pytest.mark.parametrize("limit", [0.5, 1.5])
def test_the_whole_plan_stays_within_its_time_limit(limit):
    stops, start = stops_frame(9, 300, radius_m=8000)
    travel = straight_line_travel([start, *zip(stops["lon"], stops["lat"])], speed_kmh=25)
    began = time.perf_counter()
    plan = plan_route(stops, start, 480, travel, time_limit_s=limit)
    elapsed = time.perf_counter() - began
    assert "; OR-Tools " in plan.status
    assert plan.total_minutes <= 480
    # 90 % for the search and OR-Tools, 10 % for the plan; a little slack for a shared CI
    # machine (the search's minimum 10 rounds may run past a busy clock)
    assert elapsed <= limit + 0.25, (elapsed, plan.status)
