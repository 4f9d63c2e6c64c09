"""Benchmark the patrol route planner on a county-sized synthetic road network.

A jittered lattice of roads (>= 20,000 edges, EPSG:4547 metres, around Baofeng county)
with speeds by road class, 300 candidate stops with random prizes, an 8-hour shift and
12-minute stops. Two runs of the same model:

* A: the whole plan as the web app would run it (travel-time matrix over the road
  network + solve with a short time limit), target <= 2 s;
* B: the same model with a 30 s search: the baseline for quality.

Prints both times, both prizes and prize_A / prize_B (target >= 0.98).

Run:  .venv/bin/python bench/bench_routing.py [--seeds 7,8,9] [--limit-a 1.2] [--limit-b 30]
"""
from __future__ import annotations

import argparse
import functools
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


def run(seed: int, limit_a: float, limit_b: float) -> float:
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
    travel = functools.partial(road_network_travel, network)
    points = np.vstack([start, stops[["lon", "lat"]].to_numpy()])
    with Clock() as c_matrix:
        matrix = travel(points, labels=["start"] + list(stops["id"]))
    with Clock() as c_a:
        plan_a = plan_route(stops, start, shift, travel, time_limit_s=limit_a)
    with Clock() as c_b:
        plan_b = plan_route(stops, start, shift, matrix, time_limit_s=limit_b)

    ratio = plan_a.total_prize / plan_b.total_prize if plan_b.total_prize else float("nan")
    print(f"seed {seed}: network {network.n_nodes} nodes, {network.n_edges} edges, built in {c_net}; "
          f"PROJ transformer init (once per process) {c_proj}")
    print(f"  {len(stops)} candidates, {shift}-min shift, 12-min stops; travel matrix alone {c_matrix}")
    print(f"  A  matrix + plan, search limit {limit_a:g} s: {c_a}; prize {plan_a.total_prize:.3f}, "
          f"{len(plan_a.stops)} stops, {plan_a.total_minutes:.1f} min, {plan_a.status}")
    print(f"  B  plan only, search limit {limit_b:g} s:      {c_b}; prize {plan_b.total_prize:.3f}, "
          f"{len(plan_b.stops)} stops, {plan_b.total_minutes:.1f} min, {plan_b.status}")
    print(f"  ratio prize_A / prize_B = {ratio:.4f} (target >= 0.98); time A = {c_a.wall:.3f} s wall, "
          f"{c_a.cpu:.3f} s CPU (target <= 2 s)")
    assert plan_a.total_minutes <= shift + 1e-9 and plan_b.total_minutes <= shift + 1e-9
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="7", help="comma-separated seeds (default 7)")
    ap.add_argument("--limit-a", type=float, default=1.2)
    ap.add_argument("--limit-b", type=float, default=30.0)
    args = ap.parse_args()
    ratios = [run(int(seed), args.limit_a, args.limit_b) for seed in args.seeds.split(",")]
    if len(ratios) > 1:
        print(f"ratios: min {min(ratios):.4f}, mean {np.mean(ratios):.4f} over {len(ratios)} seeds")


if __name__ == "__main__":
    main()
