"""Mapbox vector tiles built in PostGIS (``ST_TileEnvelope`` -> ``ST_AsMVTGeom`` -> ``ST_AsMVT``).

A fixed registry of layers, one SQL file each in this package. Nothing from a URL reaches SQL
as text: the layer name picks a registry entry, z/x/y and the filters are checked here and
passed as bound parameters.

Incidents are drawn as raw points only where a tile holds few enough (from zoom
``POINTS_MIN_ZOOM``, at most ``MAX_POINTS`` in the tile); elsewhere as counts per cell, 16 x 16
cells a tile. Up to zoom ``MAX_TABLE_TILE_ZOOM`` the counts come from the cell tables kept by
the triggers of migration 0003 (all time, or whole months plus the days of the period outside
whole months counted from incidents); beyond zoom 12 their cells are the tables' finest, larger
on screen. Users who see less than a town get counts made from incidents, which their scope
keeps few.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gridmap.catalog import (CATEGORIES, CATEGORY_BY_CODE, COUNTY_WIDE_ROLES, OPEN_STATUSES, SCOPE_SHRINK_DEGREES,
                             STATUS_ZH, STATUSES)
from gridmap.errors import NotFound, ValidationError, parse_bool

# Months of the cell tables are calendar months in this zone (migration 0003 uses the same).
LOCAL_TIME_ZONE = ZoneInfo("Asia/Shanghai")
MERCATOR_HALF = 20037508.342789244
MAX_LATITUDE = 85.0511287798066
MAX_ZOOM = 22
EXTENT = 4096
MAX_TILE_BYTES = 500 * 1024

CELL_ZOOMS = (12, 14, 16)          # zooms of the cell tables (migration 0003)
CELLS_PER_TILE_LOG2 = 4            # 16 x 16 cells a tile: a cell is 16 px on screen
# Tiles up to this zoom read the cell tables; zoomed in further, cells stay at the finest table
# zoom (larger on screen) rather than being counted from incidents.
MAX_TABLE_TILE_ZOOM = 14
# Cells beyond each tile edge: a count circle (at most 8 px across its centre, see
# gridmap.maps.vectortiles) of the next cell over can reach into the tile, one further cannot.
CELL_MARGIN = 1
POINTS_MIN_ZOOM = 13
MAX_POINTS = 5000
POINT_BUFFER_PX = 8
CLICK_RADIUS_PX = 10
# Changing what a tile holds for the same data must change its ETag too.
TILE_FORMAT_VERSION = 2


@dataclass(frozen=True)
class TileLayer:
    name: str
    min_zoom: int
    description: str


LAYERS: dict[str, TileLayer] = {
    "incidents": TileLayer("incidents", 0, "事件 incidents: points or counts per cell"),
    "grids": TileLayer("grids", 10, "网格 grids"),
    "villages": TileLayer("villages", 8, "村/社区 villages and communities"),
    "towns": TileLayer("towns", 0, "乡镇 towns"),
}


def layer_for(name: str) -> TileLayer:
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"no tile layer {name!r}; known: {', '.join(LAYERS)}", "layer")
    return layer


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise ValidationError(f"zoom must be between 0 and {MAX_ZOOM}", "z")
    if not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise ValidationError(f"x and y must be between 0 and {2 ** z - 1} at zoom {z}", "x")


# --- who asks and what they filter ------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """What a user may see, as plain codes: the rule of services.incidents.visible_condition
    (codes classified as services.scopes.coded_condition does, a grid worker's own reports,
    a mediator's mediation points)."""
    county_wide: bool
    codes: tuple[str, ...] = ()
    towns: tuple[str, ...] = ()
    villages: tuple[str, ...] = ()
    grids: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    reporter_id: int | None = None
    mediation_points: tuple[int, ...] = ()

    @classmethod
    def for_user(cls, role: str, scopes: Iterable[str], user_id: int | None = None) -> "Scope":
        if role in COUNTY_WIDE_ROLES:
            return cls(county_wide=True)
        codes = tuple(sorted(set(scopes or ())))
        if role == "mediator":
            return cls(False, codes, mediation_points=tuple(sorted(int(c) for c in codes
                                                                  if c.isdigit() and len(c) < 12)))
        towns = tuple(c for c in codes if len(c) == 12 and c.isdigit() and c.endswith("000") and c[6:9] != "000")
        villages = tuple(c for c in codes if len(c) == 12 and c.isdigit() and c not in towns)
        grids = tuple(c for c in codes if len(c) == 15 and c.isdigit())
        zones = tuple(c for c in codes if not c.isdigit())
        reporter = user_id if role == "grid_worker" else None
        return cls(False, codes, towns, villages, grids, zones, reporter)

    @property
    def counted_per_town(self) -> bool:
        """True when the cell tables (counted per town) can answer for this scope."""
        return self.county_wide or not (self.villages or self.grids or self.zones or self.reporter_id
                                        or self.mediation_points)

    def key(self) -> str:
        if self.county_wide:
            return "county"
        return f"scope:{','.join(self.codes)}:{self.reporter_id or ''}:{','.join(map(str, self.mediation_points))}"

    def params(self) -> dict:
        return {"county_wide": self.county_wide, "scope_codes": list(self.codes),
                "scope_towns": list(self.towns), "scope_villages": list(self.villages),
                "scope_grids": list(self.grids), "scope_zones": list(self.zones),
                "has_zones": bool(self.zones), "scope_shrink": SCOPE_SHRINK_DEGREES,
                "reporter_id": self.reporter_id,
                "mediation_points": list(self.mediation_points)}


def _split(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL_TIME_ZONE)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True)
class IncidentFilter:
    """Categories, statuses, a period of local dates (both ends included) and overdue or not
    (the rule of services.incidents.overdue_condition, judged at ``as_of``); empty = all."""
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    overdue: bool | None = None
    as_of: datetime | None = None

    @classmethod
    def parse(cls, categories=None, statuses=None, date_from: str | None = None,
              date_to: str | None = None, overdue: str | None = None) -> "IncidentFilter":
        """From query-string values (lists or comma-separated); raises ValidationError."""
        cats = sorted(set(_split(categories)))
        unknown = [c for c in cats if c not in CATEGORY_BY_CODE]
        if unknown:
            raise ValidationError(f"unknown category {unknown[0]!r}; known: {', '.join(CATEGORY_BY_CODE)}",
                                  "category")
        wanted: set[str] = set()
        for status in _split(statuses):
            if status == "open":
                wanted.update(OPEN_STATUSES)
            elif status in STATUSES:
                wanted.add(status)
            else:
                raise ValidationError(f"unknown status {status!r}; known: open, {', '.join(STATUSES)}", "status")
        start, end = _parse_date(date_from, "from"), _parse_date(date_to, "to")
        if start and end and start > end:
            raise ValidationError("the period's start is after its end", "from")
        late = parse_bool(overdue, "overdue")
        # Whole minutes: a tile filtered on overdue keeps its ETag for up to a minute.
        as_of = datetime.now(LOCAL_TIME_ZONE).replace(second=0, microsecond=0) if late is not None else None
        return cls(tuple(cats), tuple(s for s in STATUSES if s in wanted), start, end, late, as_of)

    @property
    def whole_time(self) -> bool:
        return self.date_from is None and self.date_to is None

    @property
    def counted_in_tables(self) -> bool:
        """True when the cell tables can answer (they count by category, status and month only)."""
        return self.overdue is None

    def key(self) -> str:
        parts = [",".join(self.categories), ",".join(self.statuses), str(self.date_from or ""),
                 str(self.date_to or "")]
        if self.overdue is not None:
            parts += [str(int(self.overdue)), self.as_of.isoformat()]
        return "|".join(parts)

    def params(self) -> dict:
        as_of = self.as_of or datetime.now(LOCAL_TIME_ZONE)
        return {"any_category": not self.categories, "categories": list(self.categories),
                "any_overdue": self.overdue is None, "overdue": bool(self.overdue), "as_of": as_of,
                "open_statuses": list(OPEN_STATUSES),
                "any_status": not self.statuses, "statuses": list(self.statuses),
                "from_ts": _local_midnight(self.date_from) if self.date_from else None,
                "to_ts": _local_midnight(self.date_to + timedelta(days=1)) if self.date_to else None}

    def month_params(self) -> dict:
        """The period as whole months (for incident_cell_months) plus up to two runs of days."""
        first_full = None
        if self.date_from is not None:
            first_full = self.date_from if self.date_from.day == 1 else _next_month(self.date_from)
        last_full = None
        if self.date_to is not None:
            after_end = self.date_to + timedelta(days=1)
            last_full = _month_start(self.date_to) if after_end.day == 1 else \
                _month_start(_month_start(self.date_to) - timedelta(days=1))
        edges: list[tuple[datetime | None, datetime | None]] = []
        if first_full and last_full and first_full > last_full:
            edges.append((_local_midnight(self.date_from), _local_midnight(self.date_to + timedelta(days=1))))
            month_from, month_to = date(9999, 12, 1), date(1, 1, 1)   # no whole month
        else:
            if self.date_from is not None and self.date_from < first_full:
                edges.append((_local_midnight(self.date_from), _local_midnight(first_full)))
            if self.date_to is not None and _next_month(last_full) <= self.date_to:
                edges.append((_local_midnight(_next_month(last_full)),
                              _local_midnight(self.date_to + timedelta(days=1))))
            month_from, month_to = first_full or date(1, 1, 1), last_full or date(9999, 12, 1)
        edges += [(None, None)] * (2 - len(edges))
        return {"whole_time": self.whole_time, "month_from": month_from, "month_to": month_to,
                "edge1_from": edges[0][0], "edge1_to": edges[0][1],
                "edge2_from": edges[1][0], "edge2_to": edges[1][1]}


def _parse_date(value: str | None, field: str) -> date | None:
    if value in (None, ""):
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValidationError(f"{field} must be a date YYYY-MM-DD", field)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{field} is not a valid date", field) from None


# --- SQL ---------------------------------------------------------------------------------------

_SECTION = re.compile(r"^-- (fragment|query): (\w+)\s*$", re.MULTILINE)


@lru_cache(maxsize=None)
def sql_queries(layer: str) -> dict[str, str]:
    """The named queries of ``<layer>.sql``, with their ``/*@fragment*/`` placeholders filled."""
    source = resources.files("gridmap.tiles").joinpath(f"{layer}.sql").read_text(encoding="utf-8")
    parts = _SECTION.split(source)
    fragments, queries = {}, {}
    for kind, name, body in zip(parts[1::3], parts[2::3], parts[3::3]):
        (fragments if kind == "fragment" else queries)[name] = body.strip()

    def fill(body: str) -> str:
        while "/*@" in body:
            body = re.sub(r"/\*@(\w+)\*/", lambda m: fragments[m.group(1)], body)
        return body

    return {name: fill(body) for name, body in queries.items()}


@lru_cache(maxsize=None)
def _statement(layer: str, query: str):
    return text(sql_queries(layer)[query])


def _run(session: Session, layer: str, query: str, params: dict):
    return session.execute(_statement(layer, query), params)


def _bytes(value) -> bytes:
    return bytes(value) if value is not None else b""


# --- tiles -------------------------------------------------------------------------------------

def tile_width_m(z: int) -> float:
    return 2 * MERCATOR_HALF / 2 ** z


_VERSIONS = text("SELECT layer, version FROM tile_versions")


def tile_etag(layer: str, z: int, x: int, y: int, flt: IncidentFilter, scope: Scope,
              versions: dict[str, int]) -> str:
    """Changes when the data, the filters, the user's scope or the tile format change."""
    parts = [TILE_FORMAT_VERSION, layer, z, x, y, versions.get("incidents"), versions.get("places"),
             flt.key() if layer == "incidents" else "", scope.key()]
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]


def render_tile(session: Session | Connection, layer: str, z: int, x: int, y: int,
                flt: IncidentFilter | None = None, scope: Scope | None = None) -> bytes:
    """The MVT bytes of one tile; an empty bytes object when the tile holds nothing.

    Tiles are made of short queries: give them a connection of ``gridmap.db.autocommit_engine``
    (JIT and parallel workers off), as the tile endpoint does."""
    flt, scope = _checked(layer, z, x, y, flt, scope)
    return _render(session, layer, z, x, y, flt, scope)


def conditional_tile(session: Session | Connection, layer: str, z: int, x: int, y: int,
                     flt: IncidentFilter | None, scope: Scope | None,
                     known: Callable[[str], bool]) -> tuple[str, bytes | None]:
    """The tile's ETag and its bytes, or None for the bytes when ``known(etag)`` (the client
    has them already). The data versions are read first: on an autocommit connection a write
    between the statements can only make the bytes newer than the ETag says, which the next
    revalidation corrects, never older."""
    flt, scope = _checked(layer, z, x, y, flt, scope)
    rows = session.execute(_VERSIONS).all()
    etag = tile_etag(layer, z, x, y, flt, scope, {r[0]: r[1] for r in rows})
    if known(etag):
        return etag, None
    return etag, _render(session, layer, z, x, y, flt, scope)


def _checked(layer, z, x, y, flt, scope) -> tuple[IncidentFilter, Scope]:
    layer_for(layer)
    check_tile(z, x, y)
    return flt or IncidentFilter(), scope or Scope(county_wide=True)


def _render(session: Session, layer: str, z: int, x: int, y: int, flt: IncidentFilter, scope: Scope) -> bytes:
    if z < LAYERS[layer].min_zoom:
        return b""
    if layer == "incidents":
        return incident_tile(session, z, x, y, flt, scope)
    return area_tile(session, layer, z, x, y, scope)


def area_tile(session: Session, layer: str, z: int, x: int, y: int, scope: Scope) -> bytes:
    """Polygons simplified to about a pixel; coarser again should a tile come out too big."""
    pixel = tile_width_m(z) / 256
    for factor in (1, 4, 16):
        params = {"z": z, "x": x, "y": y, "tolerance": pixel * factor, "buffer": 64,
                  "margin": 64 / EXTENT, **scope.params()}
        tile = _bytes(_run(session, layer, "tile", params).scalar())
        if len(tile) <= MAX_TILE_BYTES:
            return tile
    raise ValidationError(f"tile {layer}/{z}/{x}/{y} is over {MAX_TILE_BYTES} bytes", "z")


def incident_params(z: int, x: int, y: int, flt: IncidentFilter, scope: Scope) -> dict:
    return {"z": z, "x": x, "y": y, **flt.params(), **scope.params()}


def count_incidents(session: Session, z: int, x: int, y: int, flt: IncidentFilter, scope: Scope,
                    limit: int) -> int:
    """Incidents in the tile (with the point buffer), counting no further than ``limit``."""
    params = {**incident_params(z, x, y, flt, scope), "margin": POINT_BUFFER_PX / 256, "limit": limit}
    return _run(session, "incidents", "count", params).scalar_one()


def shows_points(session: Session, z: int, x: int, y: int, flt: IncidentFilter, scope: Scope) -> bool:
    """Raw points where the zoom is high enough and the tile holds few enough."""
    if z < POINTS_MIN_ZOOM:
        return False
    return count_incidents(session, z, x, y, flt, scope, MAX_POINTS + 1) <= MAX_POINTS


def cell_zoom(z: int, scope: Scope | None = None, flt: IncidentFilter | None = None) -> tuple[int, int | None]:
    """The zoom of the cells a tile at ``z`` is drawn with, and the zoom of the cell tables to
    read them from (None: count them from incidents, for scopes finer than a town or filters the
    tables do not count by, such as overdue)."""
    c = z + CELLS_PER_TILE_LOG2
    if (scope is not None and scope.counted_per_town and (flt is None or flt.counted_in_tables)
            and z <= MAX_TABLE_TILE_ZOOM):
        c = min(c, max(CELL_ZOOMS))
        return c, next(level for level in CELL_ZOOMS if level >= c)
    return c, None


def _raw_cell_params(c: int) -> dict:
    # Below the finest table zoom, cells are derived from the finest one as the tables are.
    base = max(max(CELL_ZOOMS), c)
    return {"base_zoom": base, "base_shift": base - c}


def cell_params(z: int, c: int) -> dict:
    """Parameters of the cell queries for a tile at ``z`` drawn with cells of zoom ``c``."""
    per_side = 1 << (c - z)
    return {**_raw_cell_params(c), "cell_size": tile_width_m(c), "margin": CELL_MARGIN / per_side,
            # Keeps the centres of the margin cells and drops the slop of the float4 boxes behind
            # && (a point a metre beyond the margin would add a cell otherwise).
            "buffer": CELL_MARGIN * EXTENT // per_side}


def _table_range(z: int, x: int, y: int, level: int, margin: int = 0) -> dict:
    span = 1 << (level - z)
    return {"level": level, "cx_min": x * span - margin, "cx_max": (x + 1) * span - 1 + margin,
            "cy_min": y * span - margin, "cy_max": (y + 1) * span - 1 + margin}


def incident_tile(session: Session, z: int, x: int, y: int, flt: IncidentFilter, scope: Scope) -> bytes:
    base = incident_params(z, x, y, flt, scope)
    c, level = cell_zoom(z, scope, flt)
    if z >= POINTS_MIN_ZOOM:
        busy = False
        if level is not None:   # the tables know a busy tile without a scan of incidents
            query = "count_from_totals" if flt.whole_time else "count_from_months"
            params = {**base, **flt.month_params(), **_table_range(z, x, y, max(CELL_ZOOMS))}
            busy = _run(session, "incidents", query, params).scalar_one() > MAX_POINTS
        if not busy:
            params = {**base, "margin": POINT_BUFFER_PX / 256, "buffer": POINT_BUFFER_PX * EXTENT // 256,
                      "limit": MAX_POINTS}
            tile = _run(session, "incidents", "points_if_few", params).scalar()
            if tile is not None and len(tile) <= MAX_TILE_BYTES:
                return bytes(tile)
    cells = {**base, **cell_params(z, c)}
    if level is not None:
        shift = level - c
        params = {**cells, **flt.month_params(), **_table_range(z, x, y, level, CELL_MARGIN << shift),
                  "shift": shift}
        query = "cells_from_totals" if flt.whole_time else "cells_from_months"
        return _bytes(_run(session, "incidents", query, params).scalar())
    return _bytes(_run(session, "incidents", "cells_from_incidents", cells).scalar())


# --- what is at a clicked point ------------------------------------------------------------------

def mercator(lon: float, lat: float) -> tuple[float, float]:
    return (lon * MERCATOR_HALF / 180.0,
            math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * MERCATOR_HALF / math.pi)


def tile_at(px: float, py: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return (min(n - 1, int((px + MERCATOR_HALF) / tile_width_m(z))),
            min(n - 1, int((MERCATOR_HALF - py) / tile_width_m(z))))


def _number(value, field: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a number", field) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValidationError(f"{field} must be between {low} and {high}", field)
    return number


def incidents_at(session: Session | Connection, lon, lat, z, flt: IncidentFilter | None = None,
                 scope: Scope | None = None, limit: int = 20) -> dict:
    """What the incidents tile shows at a clicked point at zoom ``z``.

    Where the tile shows points: the incidents within ``CLICK_RADIUS_PX`` pixels, nearest
    first. Where it shows counts: the cell's count by category and status.
    """
    flt = flt or IncidentFilter()
    scope = scope or Scope(county_wide=True)
    lon = _number(lon, "lon", -180, 180)
    lat = _number(lat, "lat", -MAX_LATITUDE, MAX_LATITUDE)
    z = int(_number(z, "z", 0, MAX_ZOOM))
    px, py = mercator(lon, lat)
    x, y = tile_at(px, py, z)
    base = incident_params(z, x, y, flt, scope)
    if shows_points(session, z, x, y, flt, scope):
        radius = CLICK_RADIUS_PX * tile_width_m(z) / 256
        rows = _run(session, "incidents", "nearest",
                    {**base, "px": px, "py": py, "radius": radius, "limit": limit}).mappings().all()
        return {"mode": "points", "lon": lon, "lat": lat, "z": z,
                "total": rows[0]["total"] if rows else 0,
                "incidents": [_incident_summary(r) for r in rows]}
    c, _ = cell_zoom(z, scope, flt)
    size = tile_width_m(c)
    gx, gy = tile_at(px, py, c)
    west, north = -MERCATOR_HALF + gx * size, MERCATOR_HALF - gy * size
    rows = _run(session, "incidents", "cell_summary",
                {**base, **_raw_cell_params(c), "gx": gx, "gy": gy, "west": west, "south": north - size,
                 "east": west + size, "north": north}).all()
    by_category: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for category, status, n in rows:
        by_category[category] = by_category.get(category, 0) + n
        by_status[status] = by_status.get(status, 0) + n
    return {"mode": "cell", "lon": lon, "lat": lat, "z": z, "n": sum(by_category.values()),
            "bounds": [_lon(west), _lat(north - size), _lon(west + size), _lat(north)],
            "by_category": [{"code": c.code, "name": c.name_zh, "colour": c.colour, "n": by_category[c.code]}
                            for c in CATEGORIES if c.code in by_category],
            "by_status": [{"code": s, "name": STATUS_ZH[s], "n": by_status[s]} for s in STATUSES if s in by_status]}


def _lon(px: float) -> float:
    return round(px * 180.0 / MERCATOR_HALF, 7)


def _lat(py: float) -> float:
    return round(math.degrees(2 * math.atan(math.exp(py * math.pi / MERCATOR_HALF)) - math.pi / 2), 7)


def _incident_summary(row) -> dict:
    category = CATEGORY_BY_CODE.get(row["category"])
    subcategories = {code: zh for code, zh, _ in category.subcategories} if category else {}
    return {
        "id": row["id"], "category": row["category"], "category_name": category.name_zh if category else "",
        "colour": category.colour if category else "#777",
        "subcategory": row["subcategory"], "subcategory_name": subcategories.get(row["subcategory"], ""),
        "status": row["status"], "status_name": STATUS_ZH.get(row["status"], row["status"]),
        "severity": row["severity"],
        "occurred_at": row["occurred_at"].isoformat() if row["occurred_at"] else None,
        "deadline_at": row["deadline_at"].isoformat() if row["deadline_at"] else None,
        "overdue": bool(row["overdue"]),
        "description": (row["description"] or "")[:300],
        "grid_code": row["grid_code"], "grid_name": row["grid_name"], "village_name": row["village_name"],
        "lon": row["lon"], "lat": row["lat"],
    }
