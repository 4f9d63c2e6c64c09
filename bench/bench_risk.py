"""Benchmark: per-grid risk summary + Gi* hot spots in memory (5,000 grids, 1,000,000 incidents).

Times the pure-Python part of the risk map -- ``grid_risk_summary`` over the incidents
already tagged with their grid, then ``getis_ord_gi_star`` (999 permutations) on the
scores, with the grid adjacency built once (timed separately) -- and reports the peak
memory. The data are generated in memory with a seed.

The baseline, measured in the same run, is PostGIS (:func:`postgis_contains_baseline`): the
same grids and incident points are bulk-loaded with COPY into plain tables of a scratch
database (GiST indexes, ANALYZE), and a plain ``ST_Contains`` join with ``GROUP BY`` grid and
category is timed. Any other callable ``baseline(grids, incidents) -> seconds`` can be passed
to :func:`main`; ``--baseline none`` prints the gridmap figures only.

    .venv/bin/python bench/bench_risk.py [--grids 5000 --incidents 1000000 --permutations 999 --seed 7]
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gridmap.analysis.hotspots import GridAdjacency, getis_ord_gi_star  # noqa: E402
from gridmap.analysis.risk import grid_risk_summary  # noqa: E402
from gridmap.catalog import CATEGORIES, OPEN_STATUSES, STATUSES  # noqa: E402

COUNTY = "410421"
NOW = pd.Timestamp("2024-07-01T00:00", tz="Asia/Shanghai")
PERIOD_DAYS = 90
HISTORY_DAYS = 730
CELL_M = 700.0


def make_grids(n_grids: int, seed: int) -> gpd.GeoDataFrame:
    """About ``n_grids`` square grids (a 2:1 lattice) with villages of 50 grids and towns
    of 10 villages, in EPSG:4326 (built in EPSG:4547 around Baofeng)."""
    ny = max(1, int(round(np.sqrt(n_grids / 2))))
    nx = int(np.ceil(n_grids / ny))
    rng = np.random.default_rng(seed)
    k = np.arange(nx * ny)[:n_grids]
    row, col = np.divmod(k, nx)
    x0 = 400_000.0 + col * CELL_M
    y0 = 3_740_000.0 + row * CELL_M
    polygons = shapely.box(x0, y0, x0 + CELL_M, y0 + CELL_M)
    village_index = (row // 5) * int(np.ceil(nx / 10)) + col // 10
    town_index = village_index // 10
    town_codes = np.array([f"{COUNTY}{100 + t:03d}000" for t in range(town_index.max() + 1)])
    village_codes = np.array([f"{town_codes[v // 10][:9]}{200 + v % 10 + 10 * (v // 100):03d}"
                              for v in range(village_index.max() + 1)])
    codes = [f"{village_codes[v]}{s:03d}" for v, s in zip(village_index, _sequence_in_group(village_index))]
    population = rng.integers(0, 3000, n_grids)
    population[rng.random(n_grids) < 0.02] = 0  # fields, industrial land: nobody lives there
    grids = gpd.GeoDataFrame({
        "code": codes,
        "village_code": village_codes[village_index],
        "town_code": town_codes[town_index],
        "population": population,
        "area_km2": np.full(n_grids, CELL_M * CELL_M / 1e6),
    }, geometry=shapely.multipolygons(polygons[:, None].tolist()), crs="EPSG:4547").to_crs("EPSG:4326")
    return grids


def _sequence_in_group(groups: np.ndarray) -> np.ndarray:
    order = np.argsort(groups, kind="stable")
    sequence = np.empty_like(groups)
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    counts = np.diff(np.r_[starts, len(groups)])
    sequence[order] = np.arange(len(groups)) - np.repeat(starts, counts) + 1
    return sequence


def make_incidents(grids: gpd.GeoDataFrame, n_incidents: int, seed: int) -> pd.DataFrame:
    """``n_incidents`` incidents over the last two years, clustered in space, each with a
    point inside its grid (``lon``/``lat``) for a spatial-join baseline."""
    rng = np.random.default_rng(seed + 1)
    n = len(grids)
    corners = grids.to_crs("EPSG:4547").geometry.bounds[["minx", "miny"]].to_numpy()  # lower-left, metres
    rate = np.full(n, 0.3)
    extent = corners.max(axis=0) - corners.min(axis=0) + CELL_M
    for _ in range(15):
        centre = corners.min(axis=0) + rng.random(2) * extent
        radius = rng.uniform(2, 8) * CELL_M
        rate += rng.uniform(1, 4) * np.exp(-((corners - centre) ** 2).sum(axis=1) / (2 * radius ** 2))
    rate *= rng.gamma(4.0, 0.25, n)
    grid_of = rng.choice(n, size=n_incidents, p=rate / rate.sum())

    codes = [c.code for c in CATEGORIES]
    category_index = rng.choice(len(codes), size=n_incidents, p=[0.35, 0.2, 0.12, 0.03, 0.05, 0.12, 0.03, 0.1])
    category = np.asarray(codes, dtype=object)[category_index]
    subcategory = np.empty(n_incidents, dtype=object)
    for i, c in enumerate(CATEGORIES):
        mask = category_index == i
        subcategory[mask] = np.asarray([s[0] for s in c.subcategories], dtype=object)[
            rng.integers(0, len(c.subcategories), mask.sum())]
    deadline_days = np.array([c.deadline_days for c in CATEGORIES])[category_index]

    age_ns = (rng.random(n_incidents) * HISTORY_DAYS * 86_400e9).astype(np.int64)
    occurred = pd.DatetimeIndex(NOW.as_unit("ns").value - age_ns, tz="UTC").tz_convert("Asia/Shanghai")
    deadline = occurred + pd.to_timedelta(deadline_days + 1, unit="D")
    # older incidents are mostly closed; recent ones often still open
    open_probability = np.clip(1.2 - age_ns / (60 * 86_400e9), 0.02, 0.9)
    is_open = rng.random(n_incidents) < open_probability
    open_statuses = np.asarray(OPEN_STATUSES, dtype=object)
    closed_statuses = np.asarray([s for s in STATUSES if s not in OPEN_STATUSES], dtype=object)
    status = np.where(is_open, open_statuses[rng.integers(0, len(open_statuses), n_incidents)],
                      closed_statuses[rng.choice(len(closed_statuses), n_incidents,
                                                 p=[0.03, 0.03, 0.64, 0.30])])
    deadline = deadline.where(status != "reported")  # not accepted yet: no deadline

    lower_left = corners[grid_of]
    offsets = (0.01 + 0.98 * rng.random((n_incidents, 2))) * CELL_M
    lon, lat = Transformer.from_crs("EPSG:4547", "EPSG:4326", always_xy=True).transform(
        lower_left[:, 0] + offsets[:, 0], lower_left[:, 1] + offsets[:, 1])
    grid_codes = grids["code"].to_numpy()[grid_of]
    legal = np.where(category == "SEC", rng.choice(["none", "public_order", "criminal"], n_incidents,
                                                   p=[0.5, 0.35, 0.15]), "none")
    resolved = ~is_open & (status != "rejected") & (status != "duplicate")
    return pd.DataFrame({
        "id": np.arange(1, n_incidents + 1),
        "grid_code": grid_codes,
        "village_code": grids["village_code"].to_numpy()[grid_of],
        "town_code": grids["town_code"].to_numpy()[grid_of],
        "category": category,
        "subcategory": subcategory,
        "severity": rng.choice([1, 2, 3, 4], n_incidents, p=[0.5, 0.3, 0.15, 0.05]),
        "legal_class": legal,
        "enterprise_involved": rng.random(n_incidents) < 0.05,
        "status": status,
        "occurred_at": occurred,
        "deadline_at": deadline,
        "resolution_level": np.where(resolved, rng.choice(["village", "town", "county"], n_incidents,
                                                          p=[0.8, 0.17, 0.03]), None),
        "mediation_point_id": None,
        "mediation_outcome": None,
        "lon": lon,
        "lat": lat,
    })


def run_summary(grids: gpd.GeoDataFrame, incidents: pd.DataFrame, *, permutations: int = 999,
                seed: int = 7, adjacency: GridAdjacency | None = None) -> dict:
    """The in-memory pipeline: risk summary, then Gi* on the scores.

    Returns a dict with the results (``summary``, ``hotspots``, ``adjacency``) and the
    wall times in seconds (``t_summary``, ``t_adjacency`` -- 0 when an adjacency was
    given --, ``t_hotspots``).
    """
    start, end = NOW - pd.Timedelta(days=PERIOD_DAYS), NOW
    t0 = time.perf_counter()
    summary = grid_risk_summary(grids, incidents, start, end, now=NOW)
    t_summary = time.perf_counter() - t0
    t0 = time.perf_counter()
    built_here = adjacency is None
    if built_here:
        adjacency = GridAdjacency.from_grids(grids)
    t_adjacency = time.perf_counter() - t0 if built_here else 0.0
    t0 = time.perf_counter()
    hotspots = getis_ord_gi_star(summary["score"], adjacency, permutations=permutations, seed=seed)
    t_hotspots = time.perf_counter() - t0
    return {"summary": summary, "hotspots": hotspots, "adjacency": adjacency, "t_summary": t_summary,
            "t_adjacency": t_adjacency, "t_hotspots": t_hotspots}


def postgis_contains_baseline(grids: gpd.GeoDataFrame, incidents: pd.DataFrame, *, repeats: int = 2) -> float:
    """Seconds PostGIS takes to count the incidents per grid and category with a spatial join.

    Loads ``grids`` and the incident points (``lon``/``lat``) into plain tables of a new
    scratch database (``tests.conftest.create_scratch_database``) by COPY, adds GiST indexes
    and ANALYZE, then times ``SELECT g.code, i.category, count(*) FROM bench_grids g JOIN
    bench_incidents i ON ST_Contains(g.geom, i.geom) GROUP BY g.code, i.category`` -- the best
    of ``repeats`` runs, loading not included -- and drops the database.
    """
    from sqlalchemy import create_engine

    from tests.conftest import create_scratch_database, drop_database

    url = create_scratch_database("gm_bench_risk")
    engine = create_engine(url)
    try:
        t0 = time.perf_counter()
        connection = engine.raw_connection()
        try:
            with connection.cursor() as cur:
                cur.execute("CREATE TABLE bench_grids (code varchar(15) PRIMARY KEY, "
                            "geom geometry(MultiPolygon, 4326) NOT NULL)")
                cur.execute("CREATE TABLE bench_incidents (id bigint PRIMARY KEY, category varchar(3) NOT NULL, "
                            "severity smallint NOT NULL, status varchar(20) NOT NULL, "
                            "occurred_at timestamptz NOT NULL, geom geometry(Point, 4326) NOT NULL)")
                grid_wkb = shapely.to_wkb(shapely.set_srid(np.asarray(grids.geometry.array), 4326), hex=True,
                                          include_srid=True)
                _copy(cur, "bench_grids (code, geom)", pd.DataFrame({"code": grids["code"], "geom": grid_wkb}))
                points = shapely.set_srid(shapely.points(incidents["lon"].to_numpy(), incidents["lat"].to_numpy()),
                                          4326)
                _copy(cur, "bench_incidents (id, category, severity, status, occurred_at, geom)", pd.DataFrame({
                    "id": incidents["id"], "category": incidents["category"], "severity": incidents["severity"],
                    "status": incidents["status"],
                    "occurred_at": incidents["occurred_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S+00"),
                    "geom": shapely.to_wkb(points, hex=True, include_srid=True)}))
                cur.execute("CREATE INDEX ON bench_grids USING gist (geom)")
                cur.execute("CREATE INDEX ON bench_incidents USING gist (geom)")
                cur.execute("ANALYZE bench_grids")
                cur.execute("ANALYZE bench_incidents")
            connection.commit()
            print(f"PostGIS: loaded {len(grids):,} grids and {len(incidents):,} points by COPY, GiST-indexed and "
                  f"analysed in {time.perf_counter() - t0:.1f} s (not timed)")
            best = float("inf")
            with connection.cursor() as cur:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    cur.execute("SELECT g.code, i.category, count(*) FROM bench_grids g "
                                "JOIN bench_incidents i ON ST_Contains(g.geom, i.geom) GROUP BY g.code, i.category")
                    rows = cur.fetchall()
                    best = min(best, time.perf_counter() - t0)
            matched = sum(r[2] for r in rows)
            print(f"PostGIS ST_Contains join + GROUP BY: {len(rows):,} rows, {matched:,} incidents matched, "
                  f"best of {repeats}: {best:.2f} s")
            if matched != len(incidents):
                print(f"warning: {len(incidents) - matched:,} points fell in no grid")
        finally:
            connection.close()
    finally:
        engine.dispose()
        drop_database(url)
    return best


def _copy(cur, target: str, frame: pd.DataFrame) -> None:
    """COPY ``frame`` into ``target`` in chunks of tab-separated text."""
    for start in range(0, len(frame), 200_000):
        buffer = io.StringIO()
        frame.iloc[start:start + 200_000].to_csv(buffer, sep="\t", header=False, index=False)
        buffer.seek(0)
        cur.copy_expert(f"COPY {target} FROM STDIN", buffer)


def main(argv=None, baseline: Callable[[gpd.GeoDataFrame, pd.DataFrame], float] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=5_000)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", choices=("postgis", "none"), default="postgis",
                        help="measure the PostGIS ST_Contains + GROUP BY baseline (default) or not")
    args = parser.parse_args(argv)
    if baseline is None and args.baseline == "postgis":
        baseline = postgis_contains_baseline

    t0 = time.perf_counter()
    grids = make_grids(args.grids, args.seed)
    incidents = make_incidents(grids, args.incidents, args.seed)
    print(f"generated {len(grids):,} grids and {len(incidents):,} incidents in {time.perf_counter() - t0:.1f} s "
          f"(seed {args.seed}); period {PERIOD_DAYS} days to {NOW}; {args.permutations} permutations")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # 1. timing run, no tracing
    timed = run_summary(grids, incidents, permutations=args.permutations, seed=args.seed)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # 2. memory run: tracemalloc sees numpy and pandas buffers; adjacency reused
    tracemalloc.start()
    traced = run_summary(grids, incidents, permutations=args.permutations, seed=args.seed,
                         adjacency=timed["adjacency"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert traced["hotspots"]["p_sim"].equals(timed["hotspots"]["p_sim"])

    total = timed["t_summary"] + timed["t_hotspots"]
    summary, hotspots = timed["summary"], timed["hotspots"]
    print(f"grid_risk_summary                    {timed['t_summary']:7.2f} s")
    print(f"GridAdjacency.from_grids (once)      {timed['t_adjacency']:7.2f} s")
    print(f"getis_ord_gi_star ({args.permutations} perms)       {timed['t_hotspots']:7.2f} s")
    print(f"summary + Gi*                        {total:7.2f} s   (+ adjacency: "
          f"{total + timed['t_adjacency']:.2f} s)")
    print(f"peak memory of summary + Gi* (tracemalloc): {peak / 2**20:,.0f} MiB")
    print(f"process max RSS: {rss_before:,.0f} MiB after generating the data, {rss_after:,.0f} MiB after the run")
    print(f"incidents in period: {int(summary['n_total'].sum()):,}; open backlog {int(summary['open_backlog'].sum()):,}"
          f" (overdue {int(summary['overdue_backlog'].sum()):,}); risk levels "
          f"{summary['risk_level'].value_counts().sort_index().to_dict()}")
    bins = hotspots["gi_bin"].value_counts().sort_index()
    print("gi_bin counts: " + ", ".join(f"{int(k):+d}: {int(v)}" for k, v in bins.items()))
    if baseline is None:
        print("baseline: not measured here (plug a PostGIS ST_Contains + GROUP BY run in via main(baseline=...))")
    else:
        t_base = baseline(grids, incidents)
        print(f"baseline                             {t_base:7.2f} s")
        ratio = total / t_base
        print(f"ratio gridmap/baseline = {ratio:.3f} (target <= 0.1: {'met' if ratio <= 0.1 else 'NOT met'})")
    print(f"peak memory {peak / 2**20:,.0f} MiB traced, {rss_after:,.0f} MiB process max RSS "
          f"(target < 1 GB: {'met' if rss_after < 1024 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
