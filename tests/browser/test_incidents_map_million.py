"""The incidents map over a million incidents (issue 6). The demo county imports ~976,000 more
incidents from a GeoPackage as a county would (`gridmap import incidents`, which takes its bulk
path at this size); then headless Chromium on /incidents/map draws counts per cell at county
zoom and single incidents when zoomed in, from tiles no larger than 500 KB."""
from __future__ import annotations

import threading

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from sqlalchemy import create_engine, text

from tests.browser.test_incidents_map import view, wait_for_tiles
from tests.services.import_support import gridmap
from tests.incident_helpers import points_in_grids
from tests.conftest import PASSWORD, create_scratch_database, drop_database, free_port, login, migrate

TOTAL = 1_000_000
MAX_TILE_BYTES = 500 * 1024


def write_incidents(path, grids, n: int, seed: int = 20) -> None:
    rng = np.random.default_rng(seed)
    xy = points_in_grids(grids, n, rng)
    occurred = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, n), unit="s")
    frame = pd.DataFrame({
        "category": rng.choice(["DSP", "SEC", "FIR", "TRF", "PET"], size=n, p=[0.35, 0.3, 0.15, 0.1, 0.1]),
        "severity": rng.choice([1, 2, 3], size=n).astype("int16"),
        "status": rng.choice(["closed", "followed_up", "reported"], size=n, p=[0.5, 0.4, 0.1]),
        "occurred_at": occurred,
    })
    pyogrio.write_dataframe(gpd.GeoDataFrame(frame, geometry=shapely.points(xy), crs="EPSG:4326"), path,
                            layer="incidents")


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    """A database of its own: the demo county plus imported incidents, a million in all."""
    from gridmap.db import session_scope
    from gridmap.services.demo import DEMO_DIR, load_demo

    url = create_scratch_database("gm_million")
    try:
        migrate(url)
        with session_scope(url) as session:
            load_demo(session, password=PASSWORD)
            demo = session.execute(text("SELECT count(*) FROM incidents")).scalar_one()
        path = tmp_path_factory.mktemp("million") / "more_incidents.gpkg"
        write_incidents(path, pyogrio.read_dataframe(DEMO_DIR / "grids.geojson"), TOTAL - demo)

        result = gridmap(url, "import", "incidents", path, "--quiet")

        assert result.exit_code == 0, result.output
        assert f"{TOTAL - demo:,} imported" in result.output and "rebuilt" in result.output
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM incidents")).scalar_one() == TOTAL
            assert conn.execute(text("SELECT sum(n) FROM incident_cell_totals WHERE zoom = 16")).scalar_one() == TOTAL
        engine.dispose()
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def million_server(million):
    from werkzeug.serving import make_server

    from gridmap import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": million, "SECRET_KEY": "million-test"})
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_incidents_map_at_a_million_shows_counts_low_and_points_high(million, million_server, page):
    engine = create_engine(million)
    with engine.connect() as conn:
        busy = conn.execute(text("""
            SELECT ST_Y(c), ST_X(c) FROM (SELECT ST_SnapToGrid(geom, 0.002) AS c, count(*) AS n
                                            FROM incidents GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1) AS d""")).one()
    engine.dispose()
    tiles = []
    page.on("response", lambda r: "/tiles/incidents/" in r.url and ".pbf" in r.url and tiles.append(r))
    login(page, million_server, "county")
    response = page.goto(f"{million_server}/incidents/map")
    assert len(response.body()) <= 500 * 1024
    page.wait_for_selector(".leaflet-container")
    wait_for_tiles(page)

    low = view(page, busy[0], busy[1], 10)
    assert low.get("10:incident_cells", 0) > 50
    assert "10:incidents" not in low
    high = view(page, busy[0], busy[1], 17)
    assert high.get("17:incidents", 0) > 100
    assert "17:incident_cells" not in high

    assert tiles and all(r.status in (200, 204, 304) for r in tiles)
    sizes = [len(r.body()) for r in tiles if r.status == 200]
    assert sizes and max(sizes) <= MAX_TILE_BYTES
    assert page.gm_console_errors == []
