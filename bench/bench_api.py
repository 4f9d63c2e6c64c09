"""Benchmark POST /api/incidents: throughput and latency under gunicorn against raw inserts.

What it does, in a scratch database with the demo county (24,000 incidents; ``--incidents``
adds more by COPY first):

* baseline: raw psycopg2, one connection, one single-row ``INSERT INTO incidents`` + COMMIT
  per incident (the database triggers run as for the API: grid placement, tile counts);
* gridmap: the app under gunicorn (2 sync workers, loopback), ``--clients`` threads (2: one
  per worker, then 4) each with its own session and a Bearer token, posting the documented body
  ``{lon, lat, category, subcategory, severity, occurred_at, description, client_id}``.

Both insert the same number of incidents at points generated inside the county's grids.
Prints requests per second of each, the ratio (target >= 0.5) and the API's latency
percentiles (target p99 <= 100 ms).

It also times the raw insert without the tile-count trigger (migration 0003), to show its share.

Run:  .venv/bin/python bench/bench_api.py [--requests 2000] [--clients 2 4] [--incidents 24000]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg2
import requests
from sqlalchemy import create_engine, text

import scale
from scale import log, percentile

from gridmap.catalog import SUBCATEGORY_CODES  # noqa: E402


def bodies(url: str, n: int, seed: int) -> list[dict]:
    engine = create_engine(url)
    with engine.connect() as conn:
        points = conn.execute(text("""
            SELECT ST_X(p.geom), ST_Y(p.geom)
              FROM (SELECT (ST_Dump(ST_GeneratePoints(ST_Union(geom), :n, :seed))).geom FROM grids) AS p"""),
                              {"n": n, "seed": seed}).all()
    engine.dispose()
    rng = np.random.default_rng(seed)
    codes = list(scale.CATEGORY_SHARES)
    now = datetime.now(timezone.utc)
    out = []
    for lon, lat in points:
        category = str(rng.choice(codes, p=list(scale.CATEGORY_SHARES.values())))
        out.append({"lon": round(lon, 7), "lat": round(lat, 7), "category": category,
                    "subcategory": str(rng.choice(SUBCATEGORY_CODES[category])),
                    "severity": int(rng.integers(1, 5)),
                    "occurred_at": (now - timedelta(hours=float(rng.uniform(1, 240)))).isoformat(),
                    "description": "基准测试上报的事件", "client_id": str(uuid.uuid4())})
    return out


def raw_inserts(url: str, items: list[dict], reporter_id: int, without_tile_triggers: bool = False) -> list[float]:
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    latencies = []
    try:
        with conn.cursor() as cur:
            if without_tile_triggers:
                cur.execute("ALTER TABLE incidents DISABLE TRIGGER incidents_cells_insert")
                cur.execute("ALTER TABLE incidents DISABLE TRIGGER incidents_cells_delete")
                conn.commit()
            for b in items:
                start = time.perf_counter()
                cur.execute(
                    "INSERT INTO incidents (client_id, category, subcategory, severity, status, occurred_at, "
                    "reported_at, description, reporter_id, geom) VALUES (%s, %s, %s, %s, 'reported', %s, now(), "
                    "%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                    (b["client_id"], b["category"], b["subcategory"], b["severity"], b["occurred_at"],
                     b["description"], reporter_id, b["lon"], b["lat"]))
                conn.commit()
                latencies.append(time.perf_counter() - start)
            if without_tile_triggers:   # these rows were never counted: remove them uncounted
                cur.execute("DELETE FROM incidents WHERE client_id = ANY(%s::uuid[])", ([b["client_id"] for b in items],))
                cur.execute("ALTER TABLE incidents ENABLE TRIGGER incidents_cells_insert")
                cur.execute("ALTER TABLE incidents ENABLE TRIGGER incidents_cells_delete")
                conn.commit()
    finally:
        conn.close()
    return latencies


def api_posts(base: str, token: str, items: list[dict], clients: int) -> tuple[list[float], float, list[int]]:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    shares = [items[i::clients] for i in range(clients)]
    ready = threading.Barrier(clients + 1)

    def client(share):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        ready.wait()
        mine, codes = [], []
        for b in share:
            start = time.perf_counter()
            response = session.post(f"{base}/api/incidents", json=b)
            mine.append(time.perf_counter() - start)
            codes.append(response.status_code)
        with lock:
            latencies.extend(mine)
            statuses.extend(codes)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 4],
                        help="numbers of concurrent clients to run (the first is judged)")
    parser.add_argument("--incidents", type=int, default=24_000, help="incidents in the database before")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    failures = []

    url = scale.new_database("gm_bench_api")
    log(f"database: {url}")
    try:
        scale.load_demo_county(url)
        if args.incidents > 24_000:
            scale.generate_incidents(url, args.incidents - 24_000, seed=args.seed)
        from gridmap.db import session_scope
        from gridmap.services.accounts import create_user, issue_token

        with session_scope(url) as session:
            user = create_user(session, "bench_reporter", scale.PASSWORD, "county_officer", [])
            token = issue_token(session, "bench_reporter")
            reporter_id = user.id
        warmup = 50
        runs = len(args.clients)
        items = bodies(url, (2 + runs) * args.requests + warmup, args.seed)
        chunks = [items[i * args.requests:(i + 1) * args.requests] for i in range(2 + runs)]

        raw = raw_inserts(url, chunks[0], reporter_id)
        raw_rate = len(raw) / sum(raw)
        log(f"raw psycopg2, 1 connection, INSERT + COMMIT: {raw_rate:,.0f} per second "
            f"(p50 {percentile(raw, 50) * 1000:.2f} ms, p99 {percentile(raw, 99) * 1000:.2f} ms)")
        bare = raw_inserts(url, chunks[1], reporter_id, without_tile_triggers=True)
        log(f"  the same without the tile-count trigger: {len(bare) / sum(bare):,.0f} per second "
            f"(p50 {percentile(bare, 50) * 1000:.2f} ms): the trigger adds "
            f"{(percentile(raw, 50) - percentile(bare, 50)) * 1000:+.2f} ms to a single-row insert")

        with scale.gunicorn(url, workers=2) as base:
            warm = requests.Session()
            warm.headers["Authorization"] = f"Bearer {token}"
            for b in items[(2 + runs) * args.requests:]:
                assert warm.post(f"{base}/api/incidents", json=b).status_code == 201
            for run, clients in enumerate(args.clients):
                api_items = chunks[2 + run]
                latencies, elapsed, statuses = api_posts(base, token, api_items, clients)
                created = sum(1 for s in statuses if s == 201)
                if created != len(api_items):
                    failures.append(f"{len(api_items) - created} requests did not answer 201: "
                                    f"{sorted(set(statuses) - {201})}")
                api_rate = len(latencies) / elapsed
                p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (50, 95, 99))
                ratio = api_rate / raw_rate
                log(f"POST /api/incidents, gunicorn 2 sync workers, {clients} clients: {api_rate:,.0f} per second "
                    f"(p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.0f} ms); "
                    f"API / raw = {ratio:.3f}")
                if run == 0:
                    if ratio < 0.5:
                        failures.append(f"API/raw = {ratio:.3f} < 0.5 ({clients} clients)")
                    if p99 > 100:
                        failures.append(f"p99 = {p99:.0f} ms > 100 ms ({clients} clients)")
        engine = create_engine(url)
        with engine.connect() as conn:
            counted = conn.execute(text("SELECT sum(n) FROM incident_cell_totals WHERE zoom = 16")).scalar_one()
            total = conn.execute(text("SELECT count(*) FROM incidents")).scalar_one()
        engine.dispose()
        log(f"tile counts after the run: {counted:,} of {total:,} incidents")
        if counted != total:
            failures.append("tile counts disagree with incidents")
    finally:
        if not args.keep:
            scale.drop(url)
    log("\n" + ("all targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
