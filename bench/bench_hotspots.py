"""Benchmark: Getis-Ord Gi* on 50,000 grids with 999 permutations.

A (baseline, from scratch): ``libpysal.weights.Queen.from_dataframe`` + ``esda.G_Local(
star=True, transform="B", permutations=999, seed=...)`` with esda's defaults (all cores).
B (gridmap): ``getis_ord_gi_star`` with a prebuilt ``GridAdjacency`` (its build time is
reported separately, since the app builds it once and caches it).

Prints both times, the ratio B/A (target <= 0.5) and whether the numbers are equal.

    .venv/bin/python bench/bench_hotspots.py [--nx 250 --ny 200 --permutations 999 --seed 2024]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import geopandas as gpd
import numpy as np
import shapely

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gridmap.analysis.hotspots import GridAdjacency, getis_ord_gi_star  # noqa: E402


def jittered_lattice(nx: int, ny: int, seed: int, cell_m: float = 500.0, jitter: float = 0.2) -> gpd.GeoDataFrame:
    """nx*ny quadrilaterals whose shared corners are jittered (so neighbours share exact
    vertices), in EPSG:4547 around Baofeng, returned in EPSG:4326."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(nx + 1, dtype=float), np.arange(ny + 1, dtype=float))
    gx += rng.uniform(-jitter, jitter, gx.shape)
    gy += rng.uniform(-jitter, jitter, gy.shape)
    x = 400_000.0 + gx * cell_m  # EPSG:4547: CM 114E, false easting 500 km; Baofeng is ~113E
    y = 3_740_000.0 + gy * cell_m
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    j, i = j.ravel(), i.ravel()
    ring = np.stack([
        np.stack([x[j, i], y[j, i]], axis=1),
        np.stack([x[j, i + 1], y[j, i + 1]], axis=1),
        np.stack([x[j + 1, i + 1], y[j + 1, i + 1]], axis=1),
        np.stack([x[j + 1, i], y[j + 1, i]], axis=1),
        np.stack([x[j, i], y[j, i]], axis=1),
    ], axis=1)
    polygons = shapely.polygons(ring)
    codes = [f"410421{k:09d}" for k in range(len(polygons))]
    return gpd.GeoDataFrame({"code": codes}, geometry=polygons, crs="EPSG:4547").to_crs("EPSG:4326")


def clustered_counts(nx: int, ny: int, seed: int) -> np.ndarray:
    """Incident counts per grid with a few spatial clusters (so there are hot spots)."""
    rng = np.random.default_rng(seed + 1)
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    rate = np.full(i.shape, 0.5)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, nx), rng.uniform(0, ny), rng.uniform(3, 12)
        rate += rng.uniform(2, 6) * np.exp(-((i - cx) ** 2 + (j - cy) ** 2) / (2 * r * r))
    return rng.poisson(rate).ravel().astype(float)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nx", type=int, default=250)
    parser.add_argument("--ny", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)

    from esda import G_Local
    from libpysal.weights import Queen

    grids = jittered_lattice(args.nx, args.ny, args.seed)
    y = clustered_counts(args.nx, args.ny, args.seed)
    print(f"grids: {len(grids):,}  permutations: {args.permutations}  seed: {args.seed}  cores: {os.cpu_count()}")

    # A: libpysal + esda from scratch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # esda's DeprecationWarning about 'alternative'
        t0 = time.perf_counter()
        w = Queen.from_dataframe(grids, use_index=False)
        t_queen = time.perf_counter() - t0
        t1 = time.perf_counter()
        esda_result = G_Local(y, w, transform="B", star=True, permutations=args.permutations, seed=args.seed)
        t_glocal = time.perf_counter() - t1
    time_a = t_queen + t_glocal

    # B: gridmap with a prebuilt adjacency
    t0 = time.perf_counter()
    adjacency = GridAdjacency.from_grids(grids)
    t_adjacency = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = getis_ord_gi_star(y, adjacency, permutations=args.permutations, seed=args.seed)
    time_b = time.perf_counter() - t0

    same_weights = (adjacency.matrix != w.sparse).nnz == 0 if w.sparse.shape == adjacency.matrix.shape else False
    checks = {}
    for ours_col, theirs in (("gi", esda_result.Gs), ("gi_z", esda_result.Zs), ("p_norm", esda_result.p_norm),
                             ("p_sim", esda_result.p_sim)):
        checks[ours_col] = bool(np.allclose(ours[ours_col].to_numpy(), np.asarray(theirs, dtype=float),
                                            rtol=1e-6, atol=0, equal_nan=True))
    sim_counts_equal = bool(np.array_equal(np.rint(ours["p_sim"].to_numpy() * (args.permutations + 1)),
                                           np.rint(np.asarray(esda_result.p_sim, float) * (args.permutations + 1))))

    print(f"A  libpysal Queen.from_dataframe       {t_queen:8.2f} s")
    print(f"A  esda.G_Local(star, B, {args.permutations} perms)   {t_glocal:8.2f} s")
    print(f"A  total                               {time_a:8.2f} s")
    print(f"   gridmap GridAdjacency.from_grids    {t_adjacency:8.2f} s  (built once, cached; not in B)")
    print(f"B  gridmap getis_ord_gi_star           {time_b:8.2f} s")
    print(f"ratio B/A = {time_b / time_a:.3f}  (target <= 0.5: {'met' if time_b / time_a <= 0.5 else 'NOT met'})")
    print(f"ratio (adjacency + B)/A = {(t_adjacency + time_b) / time_a:.3f}")
    print(f"same neighbours as Queen: {same_weights}")
    print("equal to esda: " + ", ".join(f"{k}={v}" for k, v in checks.items())
          + f", p_sim permutation counts identical={sim_counts_equal}")
    bins = ours["gi_bin"].value_counts().sort_index()
    print("gi_bin counts: " + ", ".join(f"{int(k):+d}: {int(v)}" for k, v in bins.items()))
    return 0 if all(checks.values()) and same_weights else 1


if __name__ == "__main__":
    raise SystemExit(main())
