"""Benchmark incident vector tiles over 1,000,000 incidents in the demo county.

What it does, in a scratch database (migrated, demo county loaded):

1. The cost of the tile triggers on the demo load: ``load_demo`` into the empty database with
   the incident triggers of migration 0003 disabled and enabled, and ``DELETE FROM incidents``
   of the demo's 24,000 (each in a rolled-back transaction, alternating).
2. Adds generated incidents by COPY (population-weighted, uniform within grids, three years)
   up to ``--incidents`` and reports the rate.
3. For the tile around the busiest spot at z10, z12, z14 and z16:
   * gridmap: ``gridmap.tiles.registry.render_tile`` (what the endpoint runs);
   * baseline A, as the issue states it: the same tile made on the fly by ST_AsMVT over the raw
     table (every incident in the tile as a point);
   * baseline B: the same content as gridmap's tile (counts per cell) computed from the raw
     table on the fly.
   Target at z <= 12: gridmap <= 1/10 of A.
4. The endpoint through gunicorn (2 workers, loopback, login cookie; gthread workers with a
   keep-alive connection as a browser fetches tiles, as gunicorn.conf.py serves the app, and sync
   workers with a new connection per request) and through Flask's test client, against its own
   SQL (data version + tile queries) on a pooled autocommit connection as the view gets it,
   interleaved. It also counts the
   statements a request sends besides the tile's (none: no pool pre-ping, the login's user is
   cached). Target: endpoint (gthread) <= 1.3 x tile SQL. Beside it, a tile request refused
   before any SQL (z = 99, HTTP 400) gives the fixed cost of a request (HTTP, session, login,
   view) to compare with the 0.3 x tile SQL the target allows.
5. Tile sizes: every tile over the county at z10 and z12 and the 40 busiest at z14 and z16.
   Target <= 500 KB.

Run:  .venv/bin/python bench/bench_tiles.py [--incidents 1000000] [--repeat 15] [--keep]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from sqlalchemy import text

import scale
from scale import log, median

from gridmap.db import autocommit_engine, get_engine, make_session  # noqa: E402
from gridmap.tiles import registry  # noqa: E402


# A tile request that the view refuses before any SQL (zoom out of range): HTTP 400.
NO_SQL_TILE = "/tiles/incidents/99/0/0.pbf"


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return median(times), result


def in_transaction(session, fn):
    try:
        return fn()
    finally:
        session.rollback()


def raw_points_tile(session, z, x, y) -> bytes:
    """Baseline A: every incident in the tile as a point, straight from the table."""
    return bytes(session.execute(text("""
        SELECT ST_AsMVT(t, 'incidents', 4096, 'geom', 'id')
          FROM (SELECT i.id, i.category, i.status, i.severity,
                       ST_AsMVTGeom(ST_Transform(i.geom, 3857), ST_TileEnvelope(:z, :x, :y), 4096, 64, true) AS geom
                  FROM incidents AS i
                 WHERE i.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326)) AS t"""),
        {"z": z, "x": x, "y": y}).scalar() or b"")


def raw_cells_tile(session, z, x, y) -> bytes:
    """Baseline B: gridmap's counts per cell, computed from the raw table."""
    county = registry.Scope(county_wide=True)
    c, _ = registry.cell_zoom(z, county)
    params = {**registry.incident_params(z, x, y, registry.IncidentFilter(), county), **registry.cell_params(z, c)}
    session.execute(text("SET LOCAL jit = off"))
    return bytes(registry._run(session, "incidents", "cells_from_incidents", params).scalar() or b"")


def flask_client(url: str):
    """A Flask test client of the app over ``url``, logged in as the demo's county officer."""
    os.environ["GRIDMAP_DATABASE_URL"] = url
    os.environ.setdefault("GRIDMAP_INSTANCE", tempfile.mkdtemp(prefix="gridmap-bench-"))
    from gridmap import create_app

    client = create_app({"SECRET_KEY": scale.SECRET, "WTF_CSRF_ENABLED": False}).test_client()
    response = client.post("/login", data={"username": "county", "password": scale.PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def extra_statements(client, session, lon: float, lat: float, tile_sql) -> list[str]:
    """SQL a tile request through ``client`` sends that the tile SQL itself does not (such as a
    pool pre-ping or a user lookup), after a first request has warmed the login cache."""
    from sqlalchemy import event

    from gridmap.db import get_engine

    z = 12
    x, y = registry.tile_at(*registry.mercator(lon, lat), z)
    path = f"/tiles/incidents/{z}/{x}/{y}.pbf"
    assert client.get(path).status_code == 200
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split())[:80])

    app_engine = get_engine(client.application.config["SQLALCHEMY_DATABASE_URI"])
    engines = {app_engine, autocommit_engine(app_engine), session.get_bind()}
    for target in engines:
        event.listen(target, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
        by_request = list(sent)
        sent.clear()
        tile_sql(z, x, y)
        by_tile = list(sent)
    finally:
        for target in engines:
            event.remove(target, "before_cursor_execute", record)
    for statement in by_tile:
        if statement in by_request:
            by_request.remove(statement)
    return by_request


def busiest_point(session) -> tuple[float, float]:
    return session.execute(text("""
        WITH dense AS (SELECT ST_SnapToGrid(geom, 0.005) AS centre, count(*) AS n
                         FROM incidents GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1)
        SELECT ST_X(i.geom), ST_Y(i.geom) FROM incidents AS i, dense
         ORDER BY i.geom <-> dense.centre LIMIT 1""")).one()


def county_tiles(session, z):
    west, south, east, north = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM counties) s")).one()
    x0, y0 = registry.tile_at(*registry.mercator(west, north), z)
    x1, y1 = registry.tile_at(*registry.mercator(east, south), z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def busiest_tiles(session, z, count):
    size = registry.tile_width_m(z)
    rows = session.execute(text("""
        SELECT floor((ST_X(m) + 20037508.342789244) / :s)::int AS x, floor((20037508.342789244 - ST_Y(m)) / :s)::int AS y
          FROM (SELECT ST_Transform(geom, 3857) AS m FROM incidents) AS p
         GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT :n"""), {"s": size, "n": count}).all()
    return [tuple(r) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1_000_000, help="total incidents (demo included)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline-repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--url", help="reuse a database already loaded by an earlier --keep run")
    args = parser.parse_args()
    failures = []

    url = args.url or scale.new_database("gm_bench_tiles")
    log(f"database: {url}")
    try:
        if not args.url:
            log("cost of the tile triggers: demo load into the empty database, and deleting its incidents "
                "(rolled back, alternating; fastest of 3, the least disturbed by other jobs)")
            offs, ons = [], []
            for _ in range(3):
                offs.append(scale.load_demo_county(url, commit=False, without_tile_triggers=True))
                ons.append(scale.load_demo_county(url, commit=False))
            off, on = min(offs), min(ons)
            log(f"| load_demo (24,000 incidents) | triggers off {off:.1f} s | on {on:.1f} s | "
                f"{(on - off) / off:+.0%} |")
            scale.load_demo_county(url)
            offs, ons = [], []
            for _ in range(3):
                offs.append(scale.time_delete_incidents(url, without_tile_triggers=True))
                ons.append(scale.time_delete_incidents(url))
            off, on = min(offs), min(ons)
            log(f"| DELETE FROM incidents (24,000) | triggers off {off:.2f} s | on {on:.2f} s | "
                f"{(on - off) / off:+.0%} |")
            extra = args.incidents - 24_000
            log(f"generating and copying {extra:,} incidents")
            copy_seconds = scale.generate_incidents(url, extra, seed=args.seed)
            log(f"COPY {extra:,} incidents (triggers on): {copy_seconds:.1f} s = {extra / copy_seconds:,.0f} per second")
            offs, ons = [], []
            for _ in range(3):
                offs.append(scale.generate_incidents(url, 50_000, seed=args.seed + 1, rollback=True,
                                                     without_tile_triggers=True))
                ons.append(scale.generate_incidents(url, 50_000, seed=args.seed + 1, rollback=True))
            off, on = min(offs), min(ons)
            log(f"| COPY 50,000 more at {args.incidents:,} (rolled back) | triggers off {off:.1f} s | on {on:.1f} s | "
                f"{(on - off) / off:+.0%} |")

        session = make_session(url)
        total = session.execute(text("SELECT count(*) FROM incidents")).scalar_one()
        lon, lat = busiest_point(session)
        session.rollback()
        log(f"\n{total:,} incidents; tiles around the busiest spot ({lon:.5f}, {lat:.5f})")
        short = autocommit_engine(get_engine(url))

        def on_short(fn):
            """What the endpoint does: a pooled autocommit connection per tile (JIT and parallel
            workers off, see gridmap.db.autocommit_engine)."""
            with short.connect() as connection:
                return fn(connection)

        rows = []
        for z in (10, 12, 14, 16):
            x, y = registry.tile_at(*registry.mercator(lon, lat), z)
            ours, tile = timed(lambda: on_short(lambda c: registry.render_tile(c, "incidents", z, x, y)),
                               args.repeat)
            base_a, raw = timed(lambda: in_transaction(session, lambda: raw_points_tile(session, z, x, y)),
                                args.baseline_repeat)
            base_b, _ = timed(lambda: in_transaction(session, lambda: raw_cells_tile(session, z, x, y)),
                              args.baseline_repeat)
            kind = "points" if registry.shows_points(session, z, x, y, registry.IncidentFilter(),
                                                     registry.Scope(county_wide=True)) else "cells"
            session.rollback()
            rows.append((z, x, y, kind, ours, len(tile), base_a, len(raw), base_b))
        log("\n| z | tile | gridmap holds | gridmap ms | size KB | A: raw ST_AsMVT ms | A size KB | gridmap/A "
            "| B: cells from raw ms | gridmap/B |")
        log("|---|---|---|---|---|---|---|---|---|---|")
        for z, x, y, kind, ours, size, base_a, raw_size, base_b in rows:
            log(f"| {z} | {x}/{y} | {kind} | {ours * 1000:.1f} | {size / 1024:.1f} | {base_a * 1000:.0f} | "
                f"{raw_size / 1024:.0f} | {ours / base_a:.3f} | {base_b * 1000:.0f} | {ours / base_b:.3f} |")
            if z <= 12 and ours > base_a / 10:
                failures.append(f"z{z}: gridmap/A = {ours / base_a:.3f} > 0.1")

        log("\nendpoint vs its own SQL, interleaved medians (ms). gunicorn: 2 workers, loopback, login "
            "cookie; test client: Flask's, same app in this process. tile SQL: what the view runs (data version + "
            "tile queries) on a warm connection")
        client = flask_client(url)

        def tile_sql(z, x, y):
            on_short(lambda c: registry.conditional_tile(c, "incidents", z, x, y, None, None, lambda etag: False))

        extra = extra_statements(client, session, lon, lat, tile_sql)
        log(f"statements a tile request sends besides the tile's own: {extra or 'none'}")
        if extra:
            failures.append(f"a tile request sends more than its tile SQL: {extra}")

        # gunicorn.conf.py as `gridmap serve` passes it (threads, keep-alive); -k as chosen here.
        os.environ["GUNICORN_CMD_ARGS"] = f"--config {scale.ROOT / 'gunicorn.conf.py'}"
        for worker_class in ("gthread", "sync"):
            with scale.gunicorn(url, worker_class=worker_class) as base:
                http = scale.KeepAlive(base, scale.logged_in(base, "county"))
                log(f"\ngunicorn -w 2 -k {worker_class}" + (" (keep-alive)" if worker_class == "gthread" else
                                                          " (a new connection per request)"))
                log("| z | gunicorn | test client | tile SQL | gunicorn / tile SQL | test client / tile SQL | "
                    "gunicorn / tile SQL, fastest runs | gunicorn, no SQL | allowed over the SQL (0.3 x) |")
                log("|---|---|---|---|---|---|---|---|---|")
                for z in (10, 12, 14, 16):
                    x, y = registry.tile_at(*registry.mercator(lon, lat), z)
                    path = f"/tiles/incidents/{z}/{x}/{y}.pbf"
                    assert http.get(path)[0] == 200 and client.get(path).status_code == 200
                    times = {"gunicorn": [], "client": [], "tile": [], "no_sql": []}
                    for _ in range(args.repeat * 2):
                        start = time.perf_counter()
                        status, body, _ = http.get(path)
                        times["gunicorn"].append(time.perf_counter() - start)
                        assert status == 200 and body
                        start = time.perf_counter()
                        assert client.get(path).status_code == 200
                        times["client"].append(time.perf_counter() - start)
                        start = time.perf_counter()
                        tile_sql(z, x, y)
                        times["tile"].append(time.perf_counter() - start)
                        # The request's fixed cost: the same login, view and error path, no SQL.
                        start = time.perf_counter()
                        assert http.get(NO_SQL_TILE)[0] == 400
                        times["no_sql"].append(time.perf_counter() - start)
                    m = {k: median(v) * 1000 for k, v in times.items()}
                    ratio = m["gunicorn"] / m["tile"]
                    fastest = min(times["gunicorn"]) / min(times["tile"])
                    log(f"| {z} | {m['gunicorn']:.1f} | {m['client']:.1f} | {m['tile']:.1f} | {ratio:.2f} | "
                        f"{m['client'] / m['tile']:.2f} | {fastest:.2f} | {m['no_sql']:.1f} | {0.3 * m['tile']:.1f} |")
                    if worker_class == "gthread" and ratio > 1.3:
                        failures.append(f"z{z}: endpoint (gunicorn gthread) / tile SQL = {ratio:.2f} > 1.3")
                status, _, response = http.get(path)
                status, body, _ = http.get(path, {"If-None-Match": response.getheader("ETag")})
                log(f"revalidation with If-None-Match: HTTP {status}, {len(body)} bytes")

        log("\ntile sizes (KB): largest per layer and zoom")
        log("| layer | z | tiles | largest KB |")
        log("|---|---|---|---|")
        for layer, z, tiles in [("incidents", 10, county_tiles(session, 10)), ("incidents", 12, county_tiles(session, 12)),
                                ("incidents", 14, busiest_tiles(session, 14, 40)),
                                ("incidents", 16, busiest_tiles(session, 16, 40)),
                                ("grids", 10, county_tiles(session, 10)), ("villages", 8, county_tiles(session, 8)),
                                ("towns", 8, county_tiles(session, 8))]:
            largest = max(len(on_short(lambda c: registry.render_tile(c, layer, z, x, y))) for x, y in tiles)
            log(f"| {layer} | {z} | {len(tiles)} | {largest / 1024:.1f} |")
            if largest > registry.MAX_TILE_BYTES:
                failures.append(f"{layer} z{z}: {largest / 1024:.0f} KB > 500 KB")
        session.close()
    finally:
        if not args.keep and not args.url:
            scale.drop(url)
    log("\n" + ("all targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
