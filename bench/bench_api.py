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
import http.client
import json
import os
import runpy
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg2
from sqlalchemy import create_engine, text

import scale
from scale import log, percentile

from gridmap.catalog import SUBCATEGORY_CODES  # noqa: E402

# What `gridmap serve` runs: 2 workers, with the worker class and threads of gunicorn.conf.py.
SERVE_CONFIG = scale.ROOT / "gunicorn.conf.py"
SERVED = runpy.run_path(str(SERVE_CONFIG))
SERVE_WORKER_CLASS = SERVED.get("worker_class", "sync")
SERVE_THREADS = SERVED.get("threads", 1)


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


def raw_inserts(url: str, items: list[dict], reporter_id: int,
                without_tile_triggers: bool = False) -> tuple[list[float], float]:
    """Latencies of the inserts, and the CPU seconds the connection's server process spent."""
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    latencies = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
            conn.commit()
            cpu_before = cpu_seconds([backend])[backend]
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
            backend_cpu = cpu_seconds([backend])[backend] - cpu_before
            if without_tile_triggers:   # these rows were never counted: remove them uncounted
                cur.execute("DELETE FROM incidents WHERE client_id = ANY(%s::uuid[])", ([b["client_id"] for b in items],))
                cur.execute("ALTER TABLE incidents ENABLE TRIGGER incidents_cells_insert")
                cur.execute("ALTER TABLE incidents ENABLE TRIGGER incidents_cells_delete")
                conn.commit()
    finally:
        conn.close()
    return latencies, backend_cpu


class Poster:
    """A lean HTTP/1.1 client posting JSON with a Bearer token. It keeps its connection open while
    the server does (gthread workers; a phone or browser keeps its connection the same way) and
    opens a new one when the server closes it (sync workers answer every request with
    ``Connection: close``)."""

    def __init__(self, base: str, token: str):
        host, port = base.replace("http://", "").split(":")
        self._factory = lambda: http.client.HTTPConnection(host, int(port))
        self._conn = self._factory()
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connections = 1

    def post(self, path: str, body: dict) -> int:
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                self._conn.request("POST", path, data, self._headers)
                response = self._conn.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionError):
                self._reconnect()
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self._reconnect()
            return response.status
        raise RuntimeError("unreachable")

    def _reconnect(self) -> None:
        self._conn.close()
        self._conn = self._factory()
        self.connections += 1


def cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU seconds of each process still alive (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def pids_matching(*needles: str) -> list[int]:
    """Processes whose command line holds every needle (gunicorn's workers, the database's backends)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(int(entry))
    return found


class CpuMeter:
    """CPU seconds spent by groups of processes (each found again at the end) and by this process:
    ``parts`` per group, ``servers`` their sum, ``client`` this process."""

    def __init__(self, *finders):
        self.finders = finders

    def __enter__(self):
        self.before = [cpu_seconds(f()) for f in self.finders]
        self.own = time.process_time()
        return self

    def __exit__(self, *exc):
        self.client = time.process_time() - self.own
        self.parts, self.by_process = [], []
        for finder, before in zip(self.finders, self.before):
            after = cpu_seconds(finder())
            self.by_process.append({p: after[p] - before.get(p, 0.0) for p in after})
            self.parts.append(sum(self.by_process[-1].values()))
        self.servers = sum(self.parts)

    def shares(self, group: int) -> str:
        """Each process's share of a group's CPU, largest first (how the connections fell on the
        workers: a keep-alive connection stays with the worker that accepted it)."""
        spent = sorted(self.by_process[group].values(), reverse=True)
        total = sum(spent) or 1.0
        return " / ".join(f"{100 * s / total:.0f} %" for s in spent if s > 0)


def api_posts(base: str, token: str, items: list[dict], clients: int) -> tuple[list[float], float, list[int], int]:
    latencies: list[float] = []
    statuses: list[int] = []
    connections = []
    lock = threading.Lock()
    shares = [items[i::clients] for i in range(clients)]
    ready = threading.Barrier(clients + 1)

    def client(share):
        poster = Poster(base, token)
        ready.wait()
        mine, codes = [], []
        for b in share:
            start = time.perf_counter()
            codes.append(poster.post("/api/incidents", b))
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            statuses.extend(codes)
            connections.append(poster.connections)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start, statuses, sum(connections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 4],
                        help="numbers of concurrent clients to run (the first is judged)")
    parser.add_argument("--incidents", type=int, default=24_000, help="incidents in the database before")
    parser.add_argument("--worker-class", default=SERVE_WORKER_CLASS, help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=SERVE_THREADS, help="threads per gthread worker")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--url", help="reuse a database of an earlier --keep run (incidents are added to it)")
    args = parser.parse_args()
    failures = []

    url = args.url or scale.new_database("gm_bench_api")
    database = url.rsplit("/", 1)[1]
    log(f"database: {url}")
    try:
        from gridmap.db import session_scope
        from gridmap.services.accounts import create_user, issue_token

        if not args.url:
            scale.load_demo_county(url)
            if args.incidents > 24_000:
                scale.generate_incidents(url, args.incidents - 24_000, seed=args.seed)
            with session_scope(url) as session:
                create_user(session, "bench_reporter", scale.PASSWORD, "county_officer", [])
        with session_scope(url) as session:
            token = issue_token(session, "bench_reporter")
            reporter_id = session.execute(text("SELECT id FROM users WHERE username = 'bench_reporter'")).scalar_one()
        warmup = 50
        runs = len(args.clients)
        items = bodies(url, (2 + runs) * args.requests + warmup, args.seed)
        chunks = [items[i * args.requests:(i + 1) * args.requests] for i in range(2 + runs)]
        backends = lambda: pids_matching("postgres: ", f" {database} ")  # noqa: E731

        client_cpu = time.process_time()
        raw, raw_db_cpu = raw_inserts(url, chunks[0], reporter_id)
        client_cpu = time.process_time() - client_cpu
        raw_rate = len(raw) / sum(raw)
        raw_cpu = (raw_db_cpu + client_cpu) / len(raw) * 1000
        log(f"raw psycopg2, 1 connection, INSERT + COMMIT: {raw_rate:,.0f} per second "
            f"(p50 {percentile(raw, 50) * 1000:.2f} ms, p99 {percentile(raw, 99) * 1000:.2f} ms); "
            f"CPU {raw_cpu:.2f} ms an insert (database {raw_db_cpu / len(raw) * 1000:.2f}, "
            f"client {client_cpu / len(raw) * 1000:.2f})")
        bare, _ = raw_inserts(url, chunks[1], reporter_id, without_tile_triggers=True)
        log(f"  the same without the tile-count trigger: {len(bare) / sum(bare):,.0f} per second "
            f"(p50 {percentile(bare, 50) * 1000:.2f} ms): the trigger adds "
            f"{(percentile(raw, 50) - percentile(bare, 50)) * 1000:+.2f} ms to a single-row insert")

        # gunicorn.conf.py as `gridmap serve` passes it; -k and --threads as chosen here.
        threads = f" --threads {args.threads}" if args.worker_class == "gthread" else ""
        os.environ["GUNICORN_CMD_ARGS"] = f"--config {SERVE_CONFIG}{threads}"
        served = f"gunicorn -w 2 -k {args.worker_class}{threads}"
        with scale.gunicorn(url, workers=2, worker_class=args.worker_class) as base:
            port = base.rsplit(":", 1)[1]
            workers = lambda: pids_matching("gunicorn", f"127.0.0.1:{port}")  # noqa: E731
            warm = Poster(base, token)
            for b in items[(2 + runs) * args.requests:]:
                assert warm.post("/api/incidents", b) == 201
            for run, clients in enumerate(args.clients):
                api_items = chunks[2 + run]
                with CpuMeter(workers, backends) as cpu:
                    latencies, elapsed, statuses, connections = api_posts(base, token, api_items, clients)
                created = sum(1 for s in statuses if s == 201)
                if created != len(api_items):
                    failures.append(f"{len(api_items) - created} requests did not answer 201: "
                                    f"{sorted(set(statuses) - {201})}")
                api_rate = len(latencies) / elapsed
                p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (50, 95, 99))
                ratio = api_rate / raw_rate
                api_cpu = (cpu.servers + cpu.client) / len(latencies) * 1000
                log(f"POST /api/incidents, {served}, {clients} clients ({connections} connections): "
                    f"{api_rate:,.0f} per second (p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
                    f"max {max(latencies) * 1000:.0f} ms); API / raw = {ratio:.3f}; CPU {api_cpu:.2f} ms a request "
                    f"(workers {cpu.parts[0] / len(latencies) * 1000:.2f}, database "
                    f"{cpu.parts[1] / len(latencies) * 1000:.2f}, client "
                    f"{cpu.client / len(latencies) * 1000:.2f}); raw / API CPU = {raw_cpu / api_cpu:.3f}; "
                    f"workers' shares {cpu.shares(0)}")
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
        if not args.keep and not args.url:
            scale.drop(url)
    log("\n" + ("all targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
