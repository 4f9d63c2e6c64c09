"""Independent reckoning for tile tests: web-Mercator maths in Python over incidents read back
from the database, to compare with what PostGIS put in the tiles."""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import mapbox_vector_tile
from sqlalchemy import text

R = 20037508.342789244
EXTENT = 4096
CHINA = ZoneInfo("Asia/Shanghai")


def mercator(lon: float, lat: float) -> tuple[float, float]:
    return lon * R / 180.0, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * R / math.pi


def width(z: int) -> float:
    return 2 * R / 2 ** z


def cell_of(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    x, y = mercator(lon, lat)
    return math.floor((x + R) / width(zoom)), math.floor((R - y) / width(zoom))


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    return cell_of(lon, lat, z)


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True, "geojson": False})


def incidents(session, where: str = "true", params: dict | None = None) -> list[dict]:
    rows = session.execute(text(
        "SELECT id, category, status, severity, town_code, occurred_at, ST_X(geom) AS lon, ST_Y(geom) AS lat "
        f"FROM incidents WHERE {where}"), params or {}).mappings().all()
    return [dict(r) for r in rows]


def expected_cells(rows, z: int, x: int, y: int, c: int | None = None,
                   margin_cells: int = 1) -> dict[tuple[int, int], int]:
    """Counts per cell of zoom ``c`` (default z + 4: 16 x 16 a tile), keyed by the cell's centre
    in tile units as drawn, with the cells just beyond the tile's edges."""
    c = z + 4 if c is None else c
    per_side = 2 ** (c - z)
    unit = EXTENT / per_side
    counts = Counter(cell_of(r["lon"], r["lat"], c) for r in rows)
    out = {}
    for (gx, gy), n in counts.items():
        ix, iy = gx - x * per_side, gy - y * per_side
        if -margin_cells <= ix < per_side + margin_cells and -margin_cells <= iy < per_side + margin_cells:
            out[(int((ix + 0.5) * unit), int((iy + 0.5) * unit))] = n
    return out


def drawn_cells(data: bytes) -> dict[tuple[int, int], int]:
    layer = decode(data).get("incident_cells", {"features": []})
    out = {}
    for f in layer["features"]:
        px, py = f["geometry"]["coordinates"]
        out[(px, py)] = f["properties"]["n"]
    return out


def local_month(ts: datetime):
    return ts.astimezone(CHINA).date().replace(day=1)
