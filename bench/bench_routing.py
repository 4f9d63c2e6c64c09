"""Benchmark the patrol route planner on a county-sized synthetic road network.

A jittered lattice of roads (>= 20,000 edges, EPSG:4547 metres, around Baofeng county)
with speeds by road class, 300 candidate stops with random prizes, an 8-hour shift and
12-minute stops. Runs of the same model:

* A: the whole plan as the web app runs it (travel times over the road network, rows
  computed as the search needs them, + search + OR-Tools from the search's route + plan)
  with ``time_limit_s=2``, target <= 2 s; A's route is re-timed on B's complete matrix;
* B: the same model (the complete matrix, timed alone, same prizes, shift and stop
  times) with ``time_limit_s=30``: the baseline for quality;
* C (``--ortools-s``, off by default): OR-Tools' routing solver alone on the same model
  (prizes as disjunction penalties, guided local search, its own first solution) for that
  many seconds, for comparison.

A's and B's status ends with what OR-Tools did after the search ("OR-Tools improved",
"OR-Tools checked, no better route" or "OR-Tools skipped").

Prints wall and CPU time of each, the prizes and prize_A / prize_B (target >= 0.98), and
a Markdown row per seed for bench/README.md.

Run:  .venv/bin/python bench/bench_routing.py [--seeds 1,7,8,9,11] [--limit-a 2] [--limit-b 30] [--ortools-s 30]
"""
from __future__ import annotations

import argparse
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from gridmap.analysis.routing import build_road_network, plan_route, road_network_travel
from gridmap.analysis.tracks import transformer

METRIC_CRS = "EPSG:4547"
CENTER_LONLAT = (113.06, 33.87)  # Baofeng county seat, roughly


def make_roads(rng: np.random.Generator, side: int = 105, spacing_m: float = 250.0,
               drop_share: float = 0.05) -> gpd.GeoDataFrame:
    """Jittered lattice of side x side nodes; every 10th line arterial, every 5th collector."""
    cx, cy = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True).transform(*CENTER_LONLAT)
    half = (side - 1) * spacing_m / 2
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    x = cx - half + jj * spacing_m + rng.uniform(-60, 60, size=ii.shape)
    y = cy - half + ii * spacing_m + rng.uniform(-60, 60, size=ii.shape)

    def speed(line_index: np.ndarray) -> np.ndarray:
        return np.where(line_index % 10 == 0, 60.0, np.where(line_index % 5 == 0, 40.0, 25.0))

    # horizontal edges (along a row i) and vertical edges (along a column j)
    h_a = np.column_stack([x[:, :-1].ravel(), y[:, :-1].ravel()])
    h_b = np.column_stack([x[:, 1:].ravel(), y[:, 1:].ravel()])
    h_speed = speed(ii[:, :-1].ravel())
    v_a = np.column_stack([x[:-1, :].ravel(), y[:-1, :].ravel()])
    v_b = np.column_stack([x[1:, :].ravel(), y[1:, :].ravel()])
    v_speed = speed(jj[:-1, :].ravel())
    a = np.vstack([h_a, v_a])
    b = np.vstack([h_b, v_b])
    spd = np.r_[h_speed, v_speed]
    keep = (rng.random(len(a)) >= drop_share) | (spd > 25)  # never cut arterials
    lines = shapely.linestrings(np.stack([a[keep], b[keep]], axis=1))
    road_class = np.where(spd[keep] == 60, "arterial", np.where(spd[keep] == 40, "collector", "local"))
    return gpd.GeoDataFrame({"road_class": road_class, "speed_kmh": spd[keep]}, geometry=lines, crs=METRIC_CRS)


def make_stops(rng: np.random.Generator, roads: gpd.GeoDataFrame, n: int = 300) -> pd.DataFrame:
    minx, miny, maxx, maxy = roads.total_bounds
    pad = 300.0
    x = rng.uniform(minx + pad, maxx - pad, n)
    y = rng.uniform(miny + pad, maxy - pad, n)
    lon, lat = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True).transform(x, y)
    return pd.DataFrame({"id": [f"G{i:03d}" for i in range(n)], "lon": lon, "lat": lat,
                         "prize": np.round(rng.gamma(2.0, 1.0, n), 3), "service_minutes": 12.0})


class Clock:
    """Wall and CPU time of a block; CPU time shows the work when other jobs share the cores."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def __str__(self) -> str:
        return f"{self.wall:.3f} s wall / {self.cpu:.3f} s CPU"


def ortools_prize(matrix, stops: pd.DataFrame, shift: float, seconds: float) -> tuple[float, str]:
    """OR-Tools routing on the model plan_route solves: the same integer milliseconds."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    ticks = 60_000
    n = len(stops)
    end = n + 1
    travel = np.ceil(matrix.minutes * ticks - 1e-6).astype(np.int64)
    service = np.r_[0, np.ceil(stops["service_minutes"].to_numpy() * ticks - 1e-6).astype(np.int64), 0]
    full = np.zeros((n + 2, n + 2), dtype=np.int64)
    full[: n + 1, : n + 1] = travel
    full[: n + 1, end] = travel[:, 0]
    transit = full + service[:, None]
    transit[:, 0] = 0
    np.fill_diagonal(transit, 0)
    budget = int(shift * ticks)
    prize = stops["prize"].to_numpy()
    penalty = np.round(prize * 10.0 * (budget + 1) / prize[prize > 0].min()).astype(np.int64)
    manager = pywrapcp.RoutingIndexManager(n + 2, 1, [0], [end])
    model = pywrapcp.RoutingModel(manager)
    arc = model.RegisterTransitMatrix(transit.tolist())
    model.SetArcCostEvaluatorOfAllVehicles(arc)
    model.AddDimension(arc, 0, budget, True, "Time")
    for i in range(1, n + 1):
        model.AddDisjunction([manager.NodeToIndex(i)], int(penalty[i - 1]))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(int(seconds * 1000))
    solution = model.SolveWithParameters(params)
    if solution is None:
        return 0.0, "no solution"
    visited, index = [], model.Start(0)
    while not model.IsEnd(index):
        if manager.IndexToNode(index) != 0:
            visited.append(manager.IndexToNode(index))
        index = solution.Value(model.NextVar(index))
    return float(prize[[v - 1 for v in visited]].sum()), f"{len(visited)} stops"


def run(seed: int, limit_a: float, limit_b: float, ortools_s: float) -> float:
    rng = np.random.default_rng(seed)
    roads = make_roads(rng)
    stops = make_stops(rng, roads)
    start = CENTER_LONLAT
    shift = 8 * 60

    with Clock() as c_proj:  # PROJ's WGS84 -> CGCS2000 search, once per process
        transformer("EPSG:4326", METRIC_CRS)
        transformer(METRIC_CRS, "EPSG:4326")
    with Clock() as c_net:
        network = build_road_network(roads, default_speed_kmh=30, metric_crs=METRIC_CRS)
    made = []

    def travel(points, labels=None):  # what the app passes: road_network_travel on the cached network
        made.append(road_network_travel(network, points, labels=labels))
        return made[-1]

    points = np.vstack([start, stops[["lon", "lat"]].to_numpy()])
    with Clock() as c_matrix:  # every row, as B gets it
        matrix = road_network_travel(network, points, labels=["start"] + list(stops["id"]))
        matrix.minutes
    with Clock() as c_a:
        plan_a = plan_route(stops, start, shift, travel, time_limit_s=limit_a)
    rows_a = made[-1].computed_rows
    # A's route re-timed on B's complete matrix: the same model, so it must fit the shift
    ids = list(stops["id"])
    seq = [0] + [ids.index(i) + 1 for i in plan_a.stops["id"]] + [0]
    time_a_full = (sum(matrix.minutes[a, b] for a, b in zip(seq[:-1], seq[1:]))
                   + float(plan_a.stops["service_minutes"].sum()))
    with Clock() as c_b:
        plan_b = plan_route(stops, start, shift, matrix, time_limit_s=limit_b)
    prize_c = None
    if ortools_s > 0:
        with Clock() as c_c:
            prize_c, what_c = ortools_prize(matrix, stops, shift, ortools_s)

    ratio = plan_a.total_prize / plan_b.total_prize if plan_b.total_prize else float("nan")
    best = max(plan_a.total_prize, plan_b.total_prize, prize_c or 0.0)
    print(f"seed {seed}: network {network.n_nodes} nodes, {network.n_edges} edges, built in {c_net}; "
          f"PROJ transformer init (once per process) {c_proj}")
    print(f"  {len(stops)} candidates, {shift}-min shift, 12-min stops; whole travel matrix ({len(points)} rows) {c_matrix}")
    print(f"  A  matrix rows on demand + search + plan, time limit {limit_a:g} s: {c_a}; prize {plan_a.total_prize:.3f}, "
          f"{len(plan_a.stops)} stops, {plan_a.total_minutes:.1f} min ({time_a_full:.1f} on the whole matrix), "
          f"{plan_a.status}, {rows_a} of {len(points)} matrix rows")
    print(f"  B  search + plan on the same matrix, time limit {limit_b:g} s: {c_b}; prize {plan_b.total_prize:.3f}, "
          f"{len(plan_b.stops)} stops, {plan_b.total_minutes:.1f} min, {plan_b.status}")
    if prize_c is not None:
        print(f"  C  OR-Tools routing alone, same model, {ortools_s:g} s: {c_c}; prize {prize_c:.3f}, {what_c}")
    print(f"  ratio prize_A / prize_B = {ratio:.4f} (target >= 0.98); A / best seen = {plan_a.total_prize / best:.4f}; "
          f"time A = {c_a.wall:.3f} s wall, {c_a.cpu:.3f} s CPU (target <= 2 s)")
    c_text = f" | {prize_c:.3f}" if prize_c is not None else ""
    print(f"  | {seed} | {c_matrix.wall:.2f} s / {c_matrix.cpu:.2f} s | {c_a.wall:.2f} s / {c_a.cpu:.2f} s | "
          f"{rows_a} | {plan_a.status} | {plan_a.total_prize:.3f} | {c_b.wall:.1f} s / {c_b.cpu:.1f} s | {plan_b.total_prize:.3f}"
          f"{c_text} | {ratio:.4f} |")
    assert plan_a.total_minutes <= shift + 1e-9 and plan_b.total_minutes <= shift + 1e-9 and time_a_full <= shift + 1e-9
    return ratio, c_a.wall, c_a.cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,7,8,9,11", help="comma-separated seeds (default 1,7,8,9,11)")
    ap.add_argument("--limit-a", type=float, default=2.0, help="A's time_limit_s (matrix + search + plan)")
    ap.add_argument("--limit-b", type=float, default=30.0, help="B's time_limit_s (same model, same matrix)")
    ap.add_argument("--ortools-s", type=float, default=0.0, help="also run OR-Tools alone for this long (C)")
    args = ap.parse_args()
    results = [run(int(seed), args.limit_a, args.limit_b, args.ortools_s) for seed in args.seeds.split(",")]
    ratios = [r[0] for r in results]
    walls = [r[1] for r in results]
    cpus = [r[2] for r in results]
    print(f"ratios: min {min(ratios):.4f}, mean {np.mean(ratios):.4f} over {len(ratios)} seeds; "
          f"A: wall {min(walls):.2f}-{max(walls):.2f} s, CPU {min(cpus):.2f}-{max(cpus):.2f} s")


if __name__ == "__main__":
    main()
