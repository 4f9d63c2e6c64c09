"""Shared by the scale benchmarks (bench_tiles, bench_api, bench_map_page): a scratch database
with the demo county, incidents generated and loaded by COPY, the app under gunicorn, and a
logged-in HTTP session. Not a benchmark itself."""
from __future__ import annotations

import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridmap.catalog import CATEGORIES, SUBCATEGORY_CODES  # noqa: E402
from tests.conftest import create_scratch_database, drop_database, free_port, migrate  # noqa: E402

PASSWORD = "bench-password-1"
SECRET = "bench-secret"
# Roughly the demo county's mix: most cases closed, a few per cent open.
STATUS_SHARES = {"followed_up": 0.58, "closed": 0.30, "rejected": 0.03, "duplicate": 0.02, "in_progress": 0.025,
                 "dispatched": 0.01, "resolved": 0.01, "accepted": 0.01, "reported": 0.015}
CATEGORY_SHARES = {"DSP": 0.30, "SEC": 0.24, "FIR": 0.13, "HAZ": 0.03, "LOG": 0.07, "TRF": 0.08, "ACC": 0.06,
                   "PET": 0.09}


def log(message: str) -> None:
    print(message, flush=True)


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def demo_dir() -> Path:
    """The demo county's files (geodata/baofeng, made by `gridmap demo build`)."""
    from gridmap.services.demo import DEMO_DIR

    if not (DEMO_DIR / "manifest.json").exists():
        raise SystemExit(f"{DEMO_DIR} is missing: run `gridmap demo build` first")
    return DEMO_DIR


def new_database(prefix: str) -> str:
    """A scratch PostGIS database migrated to head (its URL)."""
    url = create_scratch_database(prefix)
    migrate(url)
    return url


def load_demo_county(url: str, commit: bool = True, without_tile_triggers: bool = False) -> float:
    """Load the demo county (places, 24,000 incidents, users); seconds taken."""
    from gridmap.db import make_session
    from gridmap.services.demo import load_demo

    session = make_session(url)
    try:
        if without_tile_triggers:   # undone with the rollback
            for trigger in TILE_TRIGGERS:
                session.execute(text(f"ALTER TABLE incidents DISABLE TRIGGER {trigger}"))
        start = time.perf_counter()
        load_demo(session, demo_dir(), password=PASSWORD)
        session.flush()
        seconds = time.perf_counter() - start
        (session.commit if commit else session.rollback)()
        return seconds
    finally:
        session.close()


TILE_TRIGGERS = ("incidents_cells_insert", "incidents_cells_update", "incidents_cells_delete")


def time_delete_incidents(url: str, without_tile_triggers: bool = False) -> float:
    """Seconds to DELETE every incident (in a transaction rolled back afterwards)."""
    from gridmap.db import make_session

    session = make_session(url)
    try:
        if without_tile_triggers:
            for trigger in TILE_TRIGGERS:
                session.execute(text(f"ALTER TABLE incidents DISABLE TRIGGER {trigger}"))
        # incidents.duplicate_of has no index, so each deleted row's foreign-key check scans the
        # table (quadratic); a temporary index keeps that from drowning what is measured.
        session.execute(text("CREATE INDEX bench_duplicate_of ON incidents (duplicate_of)"))
        session.execute(text("DELETE FROM incident_events"))
        start = time.perf_counter()
        session.execute(text("DELETE FROM incidents"))
        return time.perf_counter() - start
    finally:
        session.rollback()
        session.close()


def generate_incidents(url: str, n: int, seed: int = 6, chunk: int = 100_000,
                       start: str = "2023-11-01", days: int = 3 * 365, rollback: bool = False,
                       without_tile_triggers: bool = False) -> float:
    """Add ``n`` incidents inside the county's grids (population-weighted, uniform within a grid),
    over ``days`` days from ``start``, by COPY in chunks; returns seconds spent in COPY.
    With ``rollback`` nothing stays (one chunk, for timing)."""
    engine = create_engine(url)
    rng = np.random.default_rng(seed)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_points"))
        conn.execute(text("""
            CREATE UNLOGGED TABLE bench_points AS
            SELECT (ST_Dump(ST_GeneratePoints(g.geom, greatest(1, ceil(:n * 1.02 * g.population / t.total))::int,
                                              :seed))).geom AS geom
              FROM grids AS g, (SELECT sum(greatest(population, 1))::float AS total FROM grids) AS t"""),
                     {"n": n, "seed": seed})
        points = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM bench_points ORDER BY random()")).all()
        conn.execute(text("DROP TABLE bench_points"))
    engine.dispose()
    xy = np.asarray(points[:n], dtype=float)
    if len(xy) < n:
        raise RuntimeError(f"only {len(xy)} points generated")
    categories = rng.choice(list(CATEGORY_SHARES), size=n, p=list(CATEGORY_SHARES.values()))
    statuses = rng.choice(list(STATUS_SHARES), size=n, p=list(STATUS_SHARES.values()))
    subcategories = _subcategories(categories, rng)
    occurred = pd.Timestamp(start, tz="Asia/Shanghai") + pd.to_timedelta(rng.uniform(0, days * 86400, n), unit="s")
    reported = occurred + pd.to_timedelta(rng.uniform(60, 6 * 3600, n), unit="s")
    severity = rng.choice([1, 2, 3, 4], size=n, p=[0.5, 0.3, 0.15, 0.05])
    frame = pd.DataFrame({
        "category": categories, "subcategory": subcategories, "severity": severity, "status": statuses,
        "occurred_at": occurred.strftime("%Y-%m-%d %H:%M:%S+08"),
        "reported_at": reported.strftime("%Y-%m-%d %H:%M:%S+08"),
        "description": "生成的测试事件",
        "geom": [f"SRID=4326;POINT({x!r} {y!r})" for x, y in xy.tolist()],
    })
    import psycopg2

    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    spent = 0.0
    try:
        with conn.cursor() as cur:
            if rollback:
                if without_tile_triggers:
                    for trigger in TILE_TRIGGERS:
                        cur.execute(f"ALTER TABLE incidents DISABLE TRIGGER {trigger}")
                buffer = io.StringIO()
                frame.to_csv(buffer, index=False, header=False)
                buffer.seek(0)
                t = time.perf_counter()
                cur.copy_expert("COPY incidents (category, subcategory, severity, status, occurred_at, reported_at, "
                                "description, geom) FROM STDIN WITH (FORMAT csv)", buffer)
                spent = time.perf_counter() - t
                conn.rollback()
                return spent
            for offset in range(0, n, chunk):
                buffer = io.StringIO()
                frame.iloc[offset:offset + chunk].to_csv(buffer, index=False, header=False)
                buffer.seek(0)
                t = time.perf_counter()
                cur.copy_expert("COPY incidents (category, subcategory, severity, status, occurred_at, reported_at, "
                                "description, geom) FROM STDIN WITH (FORMAT csv)", buffer)
                conn.commit()
                spent += time.perf_counter() - t
                done = min(offset + chunk, n)
                if n > chunk:
                    log(f"  copied {done:,} / {n:,} incidents ({done / spent:,.0f}/s)")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE incidents")
            cur.execute("VACUUM ANALYZE incident_cell_totals")
            cur.execute("VACUUM ANALYZE incident_cell_months")
    finally:
        conn.close()
    return spent


def _subcategories(categories: np.ndarray, rng) -> np.ndarray:
    out = np.empty(len(categories), dtype=object)
    for code in CATEGORY_SHARES:
        mask = categories == code
        out[mask] = rng.choice(SUBCATEGORY_CODES[code], size=int(mask.sum()))
    return out


def delete_incidents(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        # incidents.duplicate_of has no index: without one, each deleted row's foreign-key check
        # scans the table.
        conn.execute(text("CREATE INDEX bench_duplicate_of ON incidents (duplicate_of)"))
        conn.execute(text("DELETE FROM incident_events"))
        conn.execute(text("DELETE FROM incidents"))
        conn.execute(text("DROP INDEX bench_duplicate_of"))
    engine.dispose()


@contextmanager
def gunicorn(url: str, workers: int = 2, worker_class: str = "sync"):
    """The app under gunicorn on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_SECRET_KEY": SECRET,
           "GRIDMAP_INSTANCE": tempfile.mkdtemp(prefix="gridmap-bench-")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "-w", str(workers), "-k", worker_class,
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
        env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def logged_in(base: str, username: str, password: str = PASSWORD) -> requests.Session:
    """A requests session carrying the login cookie (the way a browser fetches tiles)."""
    import re

    session = requests.Session()
    page = session.get(f"{base}/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or \
        re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    response = session.post(f"{base}/login", data={"username": username, "password": password,
                                                    "csrf_token": token.group(1)}, allow_redirects=False)
    if response.status_code not in (302, 303):
        raise RuntimeError(f"login as {username} failed: HTTP {response.status_code}")
    return session


class KeepAlive:
    """A lean HTTP/1.1 client on one persistent connection (as a browser fetches tiles), carrying
    the cookies of a logged-in requests session; reconnects when the server closes."""

    def __init__(self, base: str, logged: requests.Session):
        import http.client

        self._factory = lambda: http.client.HTTPConnection(*base.replace("http://", "").split(":"))
        self._conn = self._factory()
        self._cookie = "; ".join(f"{c.name}={c.value}" for c in logged.cookies)

    def get(self, path: str, headers: dict | None = None):
        import http.client

        for attempt in (1, 2):
            try:
                self._conn.request("GET", path, headers={"Cookie": self._cookie, **(headers or {})})
                response = self._conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                self._conn.close()
                self._conn = self._factory()
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self._conn.close()
                self._conn = self._factory()
            return response.status, body, response
        raise RuntimeError("unreachable")


def drop(url: str) -> None:
    drop_database(url)
