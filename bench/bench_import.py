"""Benchmark: import 1,000,000 incidents from a GeoPackage.

A (baseline): ``ogr2ogr -f PostgreSQL`` loading the file into a new table of a scratch PostGIS
database (GDAL's defaults: COPY, a GiST index, no constraints).
B (gridmap): ``gridmap import incidents FILE`` into another scratch database migrated to head
with the demo county loaded (its grids, villages, towns and ~24,000 incidents): every row is
checked, loaded by COPY into a staging table and placed in its grid by one INSERT … SELECT,
into the real incidents table with its indexes, foreign keys and triggers.

Prints both times, the ratio B/A (target <= 1.5) and B's own breakdown (at 1M rows the import
takes its bulk path: indexes, foreign keys and tile counts rebuilt after the rows are written).
``--no-bulk`` times B writing through the indexes instead.

It also measures a floor on B's result: what the incidents table itself adds to any bulk load,
whatever checks it skips — building its secondary indexes, checking its foreign keys and counting
the map's tile cells, once each, in one rolled-back transaction (the import's own code,
``indexes_set_aside``). A plus that work is the least a load of these rows into this schema can
take; it prints floor/A beside the target.

    .venv/bin/python bench/bench_import.py [--rows 1000000] [--seed 6] [--no-bulk]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridmap.catalog import SUBCATEGORY_CODES  # noqa: E402
from gridmap.services.demo import DEMO_DIR  # noqa: E402
from tests.conftest import create_scratch_database, drop_database, migrate  # noqa: E402
from tests.incident_helpers import points_in_grids  # noqa: E402

OUT = ROOT / "bench" / "out"
CATEGORY_SHARES = {"DSP": 0.30, "SEC": 0.24, "FIR": 0.13, "HAZ": 0.03, "LOG": 0.07, "TRF": 0.08, "ACC": 0.06,
                   "PET": 0.09}
OGR2OGR = shutil.which("ogr2ogr") or "/usr/bin/ogr2ogr"


def log(message: str) -> None:
    print(message, flush=True)


def make_file(n: int, seed: int) -> Path:
    path = OUT / f"incidents_{n}_{seed}.gpkg"
    if path.exists():
        log(f"reusing {path}")
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grids = pyogrio.read_dataframe(DEMO_DIR / "grids.geojson")
    xy = points_in_grids(grids, n, rng)
    categories = rng.choice(list(CATEGORY_SHARES), size=n, p=list(CATEGORY_SHARES.values()))
    subcategories = np.empty(n, dtype=object)
    for code in CATEGORY_SHARES:
        mask = categories == code
        subcategories[mask] = rng.choice(SUBCATEGORY_CODES[code], size=int(mask.sum()))
    occurred = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, n), unit="s")
    frame = gpd.GeoDataFrame({
        "category": categories, "subcategory": subcategories,
        "severity": rng.choice([1, 2, 3, 4], size=n, p=[0.5, 0.3, 0.15, 0.05]).astype("int16"),
        "status": rng.choice(["closed", "followed_up", "reported"], size=n, p=[0.5, 0.4, 0.1]),
        "occurred_at": occurred,
        "reported_at": occurred + pd.to_timedelta(rng.integers(60, 6 * 3600, n), unit="s"),
        "description": rng.choice(["邻里纠纷", "电动车楼道充电", "盗窃电动车", "生成的测试事件"], size=n),
    }, geometry=shapely.points(xy), crs="EPSG:4326")
    log(f"writing {n:,} incidents to {path}")
    pyogrio.write_dataframe(frame, path, layer="incidents")
    return path


def ogr_connection(url: str) -> str:
    u = make_url(url)
    parts = {"dbname": u.database, "host": u.host or "127.0.0.1", "port": u.port or 5432, "user": u.username,
             "password": u.password}
    return "PG:" + " ".join(f"{k}={v}" for k, v in parts.items() if v)


def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar_one()
    engine.dispose()
    return value


def baseline(path: Path, n: int) -> float:
    url = create_scratch_database("gm_bench_ogr")
    try:
        started = time.perf_counter()
        subprocess.run([OGR2OGR, "-f", "PostgreSQL", ogr_connection(url), str(path), "-nln", "incidents_ogr",
                        "-lco", "GEOMETRY_NAME=geom"], check=True, capture_output=True)
        seconds = time.perf_counter() - started
        assert count(url, "SELECT count(*) FROM incidents_ogr") == n
        return seconds
    finally:
        drop_database(url)


def county_database() -> str:
    from gridmap.db import session_scope
    from gridmap.services.demo import load_demo

    url = create_scratch_database("gm_bench_import")
    migrate(url)
    with session_scope(url) as session:
        load_demo(session)
    return url


def gridmap_cli(path: Path, n: int, bulk_flag: str | None = None) -> tuple[float, str]:
    url = county_database()
    try:
        before = count(url, "SELECT count(*) FROM incidents")
        env = dict(os.environ, GRIDMAP_DATABASE_URL=url)
        started = time.perf_counter()
        result = subprocess.run([str(ROOT / ".venv" / "bin" / "gridmap"), "import", "incidents", str(path), "--quiet",
                                 *([bulk_flag] if bulk_flag else [])],
                                env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"gridmap import failed:\n{result.stderr}")
        assert count(url, "SELECT count(*) FROM incidents") == before + n
        assert count(url, "SELECT count(*) FROM incidents i JOIN grids g ON g.code = i.grid_code "
                          "WHERE NOT ST_Intersects(g.geom, i.geom)") == 0, "an incident placed in the wrong grid"
        assert count(url, "SELECT sum(n) FROM incident_cell_totals WHERE zoom = 16") == before + n
        return seconds, result.stdout + schema_work(url)
    finally:
        drop_database(url)


def schema_work(url: str) -> str:
    """The incidents table's own bulk-load work on the imported rows (see the module docstring),
    timed phase by phase by the import's own code and rolled back."""
    from gridmap.services.importing_incidents import indexes_set_aside

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    engine = create_engine(url)
    conn = engine.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL work_mem = '256MB'; SET LOCAL maintenance_work_mem = '256MB'; "
                        "SET LOCAL jit = off")
            with indexes_set_aside(cur, lap):
                lap("set aside")
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()
    del seconds["set aside"], seconds["insert"]
    return f"\nschema work {sum(seconds.values()):.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())


def one_line(output: str) -> str:
    return re.sub(r"\s+", " ", output.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--no-bulk", action="store_true", help="also time B writing through the indexes")
    args = parser.parse_args()
    if not (DEMO_DIR / "grids.geojson").exists():
        raise SystemExit(f"no demo county in {DEMO_DIR}: run `gridmap demo build` first")

    path = make_file(args.rows, args.seed)
    log(f"A: ogr2ogr -f PostgreSQL {path.name} …")
    a = baseline(path, args.rows)
    log(f"A: {a:.1f} s")
    log(f"B: gridmap import incidents {path.name} …")
    b, output = gridmap_cli(path, args.rows)
    output, floor_line = output.split("\nschema work ")
    floor = float(floor_line.split(" s:")[0])
    log(f"B: {b:.1f} s   ({one_line(output)})")
    log(f"floor: A + the table's own work on these rows ({floor_line}) = {a + floor:.1f} s")
    if args.no_bulk:
        log(f"B --no-bulk: gridmap import incidents {path.name} --no-bulk …")
        c, output_c = gridmap_cli(path, args.rows, "--no-bulk")
        log(f"B --no-bulk: {c:.1f} s   ({one_line(output_c)})")
    log("")
    log("| rows | A ogr2ogr (s) | B gridmap import (s) | B/A | target |")
    log("|---|---|---|---|---|")
    log(f"| {args.rows:,} | {a:.1f} | {b:.1f} | {b / a:.2f} | <= 1.5 |")
    log(f"floor (A + indexes, keys, tile counts of the incidents table): {a + floor:.1f} s = {(a + floor) / a:.2f} x A")
    if args.no_bulk:
        log(f"B --no-bulk (writing through the indexes): {c:.1f} s, {c / a:.2f} x A")


if __name__ == "__main__":
    main()
