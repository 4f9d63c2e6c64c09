"""Shared by the import tests: a scratch database of their own, a tiny synthetic county near
Baofeng, and running `gridmap import …` in-process."""
from __future__ import annotations

import geopandas as gpd
from click.testing import CliRunner
from shapely import box
from sqlalchemy import create_engine, text

from tests.conftest import create_scratch_database, drop_database, migrate

# Two towns side by side, three villages, five grids; lon/lat near Baofeng (EPSG:4547 applies).
TOWNS = {"410421901000": ("甲镇", box(113.00, 33.80, 113.10, 33.90)),
         "410421902000": ("乙镇", box(113.10, 33.80, 113.20, 33.90))}
VILLAGES = {"410421901201": ("东村", "410421901000", box(113.00, 33.80, 113.05, 33.90)),
            "410421901202": ("西村", "410421901000", box(113.05, 33.80, 113.10, 33.90)),
            "410421902201": ("南村", "410421902000", box(113.10, 33.80, 113.20, 33.90))}
GRIDS = {"410421901201001": box(113.00, 33.80, 113.05, 33.85),
         "410421901201002": box(113.00, 33.85, 113.05, 33.90),
         "410421901202001": box(113.05, 33.80, 113.10, 33.90),
         "410421902201001": box(113.10, 33.80, 113.15, 33.90),
         "410421902201002": box(113.15, 33.80, 113.20, 33.90)}
PLACE_TABLES = "incident_events, incidents, mediation_points, patrol_zones, police_stations, grids, villages, towns"


def scratch_database(prefix: str):
    """A migrated database of the test's own (generator for a module fixture)."""
    url = create_scratch_database(prefix)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(url)


def clear_places(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {PLACE_TABLES} CASCADE"))
    engine.dispose()


def seed_county(url: str, grids: bool = True) -> None:
    """Towns and villages (and grids) of the synthetic county, written directly."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for code, (name, geom) in TOWNS.items():
            conn.execute(text("INSERT INTO towns (code, name, geom) VALUES (:c, :n, ST_Multi(ST_GeomFromText(:g, 4326)))"),
                         {"c": code, "n": name, "g": geom.wkt})
        for code, (name, town, geom) in VILLAGES.items():
            conn.execute(text("INSERT INTO villages (code, name, town_code, geom) "
                              "VALUES (:c, :n, :t, ST_Multi(ST_GeomFromText(:g, 4326)))"),
                         {"c": code, "n": name, "t": town, "g": geom.wkt})
        if grids:
            for code, geom in GRIDS.items():
                conn.execute(text("INSERT INTO grids (code, name, village_code, population, households, area_km2, geom) "
                                  "VALUES (:c, :n, :v, 0, 0, 0, ST_Multi(ST_GeomFromText(:g, 4326)))"),
                             {"c": code, "n": f"网格{code[-3:]}", "v": code[:12], "g": geom.wkt})
    engine.dispose()


def scalar(url: str, sql: str, **params):
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql), params).scalar()
    engine.dispose()
    return value


def rows(url: str, sql: str, **params) -> list:
    engine = create_engine(url)
    with engine.begin() as conn:
        result = [tuple(r) for r in conn.execute(text(sql), params)]
    engine.dispose()
    return result


def gridmap(url: str, *args, metric_crs: str | None = None):
    """Run `gridmap ARGS…` in-process against ``url``; returns click's Result (exit_code, stdout, stderr)."""
    from gridmap.cli import main

    env = {"GRIDMAP_DATABASE_URL": url}
    if metric_crs:
        env["GRIDMAP_METRIC_CRS"] = metric_crs
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def frame(records: list[dict], geometry: list, crs="EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(records, geometry=geometry, crs=crs)
