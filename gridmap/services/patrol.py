"""Patrol: GPS tracks (upload, clean, store), coverage of grids, hot spots and zones, route planning,
GPX export, and the road network routes are planned on.

The analysis lives in :mod:`gridmap.analysis.tracks`, :mod:`gridmap.analysis.coverage` and
:mod:`gridmap.analysis.routing`; this module loads their inputs from PostGIS, applies who may see
and do what, stores results, and writes them out as JSON, GeoJSON, CSV and GPX. Risk scores and
hot spots come from :func:`gridmap.services.risk.compute_risk` (computed county-wide, so a grid
has the same level whoever looks at it).

Who sees what:

* police work in their own patrol zones (the zone codes in their scopes, and zones touching a
  town, village or grid in their scopes): they upload tracks and plan routes there, and see the
  tracks with the officer or unit;
* county officers and admins do the same county-wide;
* town supervisors and viewers see coverage (aggregates) and tracks without officer or uploader
  (town supervisors in the zones of their town, viewers county-wide); they upload and plan nothing;
* grid workers and mediators have no patrol data.

Visits as :func:`~gridmap.analysis.coverage.find_visits` lists them carry the officer; only
their per-grid summaries leave this module.
"""
from __future__ import annotations

import functools
import io
import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from psycopg2.extras import execute_values
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gridmap.analysis.coverage import (CoverageError, daily_patrol_minutes, grid_coverage, hotspot_coverage,
                                       patrol_intervals, zone_coverage)
from gridmap.analysis.routing import (RoadNetwork, RoutePlan, RoutingError, build_road_network, choose_candidates,
                                      plan_route, road_network_travel, route_to_gpx, straight_line_travel)
from gridmap.analysis.tracks import TrackError, clean_fixes, project_geometries, read_track
from gridmap.catalog import COUNTY_WIDE_ROLES, SCOPE_SHRINK_DEGREES
from gridmap.errors import Forbidden, NotFound, ValidationError
from gridmap.models import (County, Grid, PatrolRoute, PatrolTrack, PatrolZone, PoliceStation, Road, Town, User,
                            Village)
from gridmap.models.patrol import TRACK_FORMATS
from gridmap.services import risk
from gridmap.services.accounts import audit
from gridmap.services.importing import (ImportRefused, ImportReport, RowProblem, SourceOptions, check_coordinates,
                                        expected_extent, read_features)
from gridmap.services.incidents import CHINA_TZ

# Roles and what they may do with patrol data.
TRACK_WRITERS = ("police", "county_officer", "admin")
PATROL_READERS = ("police", "town_supervisor", "county_officer", "admin", "viewer")
# Roles that see who walked a track (officer or unit, uploader).
NAMED_ROLES = ("police", "county_officer", "admin")

COVERAGE_FORMATS = ("json", "geojson", "csv")
COVERAGE_LEVELS = ("grids", "hotspots", "zones")
TRACK_SUFFIXES = {".gpx": "gpx", ".geojson": "geojson", ".json": "geojson", ".csv": "csv", ".txt": "csv"}
MAX_TRACK_FIXES = 200_000
MAX_PERIOD_DAYS = 93
MAX_SHIFT_MINUTES = 24 * 60
MAX_STOPS = 40
# A stop of 10-15 minutes deters best; the planner keeps to that.
STOP_MINUTES_RANGE = (10.0, 15.0)
DEFAULT_STOP_MINUTES = 12.0
SHIFT_STARTS = (time(8, 0), time(20, 0))
# Tracks are drawn on maps simplified to about this many metres.
TRACK_SIMPLIFY_M = 5.0
# Speeds (km/h) of OSM road classes, for roads whose file gives none.
ROAD_CLASS_SPEEDS = {
    "motorway": 90, "trunk": 70, "primary": 60, "secondary": 50, "tertiary": 40, "unclassified": 30,
    "residential": 25, "living_street": 10, "service": 15, "track": 15, "motorway_link": 50, "trunk_link": 40,
    "primary_link": 40, "secondary_link": 35, "tertiary_link": 30, "road": 30,
}
ROAD_CLASS_COLUMNS = ("road_class", "class", "highway", "fclass", "type")
ROAD_SPEED_COLUMNS = ("speed_kmh", "maxspeed", "speed")
TRAVEL_MODE_ZH = {"road": "沿道路网络行驶时间", "straight_line": "直线距离按设定车速估算"}


# --- settings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatrolSettings:
    """Deployment settings of patrol coverage and route planning (``PATROL_*`` in gridmap.config)."""

    speed_kmh: float = 30.0            # straight-line travel when no roads are loaded
    max_speed_kmh: float = 120.0       # a fix reachable only faster than this is dropped
    visit_distance_m: float = 50.0     # a fix this close to a grid is a visit
    gap_minutes: float = 10.0          # fixes farther apart split a visit
    high_risk_level: int = 3           # risk level from which a grid is high-risk (and a route candidate)
    lookback_days: int = 14            # default coverage period; last visits before a shift
    route_time_limit_s: float = 2.0
    max_candidates: int = 300
    road_snap_m: float = 500.0
    track_timezone: str = "Asia/Shanghai"  # times written without an offset
    metric_crs: str = "EPSG:4547"

    @classmethod
    def from_config(cls, config: Mapping) -> PatrolSettings:
        def get(key, default, kind=float):
            value = config.get(key)
            return default if value is None or value == "" else kind(value)

        try:
            settings = cls(
                speed_kmh=get("PATROL_SPEED_KMH", 30.0), max_speed_kmh=get("PATROL_MAX_SPEED_KMH", 120.0),
                visit_distance_m=get("PATROL_VISIT_DISTANCE_M", 50.0), gap_minutes=get("PATROL_GAP_MINUTES", 10.0),
                high_risk_level=get("PATROL_HIGH_RISK_LEVEL", 3, int),
                lookback_days=get("PATROL_LOOKBACK_DAYS", 14, int),
                route_time_limit_s=get("PATROL_ROUTE_TIME_LIMIT_S", 2.0),
                max_candidates=get("PATROL_MAX_CANDIDATES", 300, int), road_snap_m=get("PATROL_ROAD_SNAP_M", 500.0),
                track_timezone=get("PATROL_TRACK_TIMEZONE", "Asia/Shanghai", str),
                metric_crs=get("METRIC_CRS", "EPSG:4547", str))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad patrol setting: {exc}") from exc
        if min(settings.speed_kmh, settings.max_speed_kmh, settings.route_time_limit_s) <= 0 \
                or settings.visit_distance_m < 0 or settings.gap_minutes <= 0 or settings.lookback_days < 1:
            raise ValueError("PATROL_* speeds, time limit, gap and look-back must be positive")
        return settings

    @classmethod
    def from_environment(cls) -> PatrolSettings:
        """Defaults of gridmap.config.Config overridden by GRIDMAP_<KEY> variables (for the CLI)."""
        import os

        from gridmap.config import Config

        keys = [k for k in dir(Config) if k.isupper()]
        return cls.from_config({k: os.environ.get(f"GRIDMAP_{k}", getattr(Config, k)) for k in keys})

    def as_dict(self) -> dict:
        return {"speed_kmh": self.speed_kmh, "max_speed_kmh": self.max_speed_kmh,
                "visit_distance_m": self.visit_distance_m, "gap_minutes": self.gap_minutes,
                "high_risk_level": self.high_risk_level, "lookback_days": self.lookback_days}


# --- who may see and do what ------------------------------------------------------------------

def is_named(user: User | None) -> bool:
    """Whether ``user`` sees officers and uploaders (None: the CLI)."""
    return user is None or user.role in NAMED_ROLES


def require_reader(user: User | None) -> None:
    if user is not None and user.role not in PATROL_READERS:
        raise Forbidden("patrol data is for police, town supervisors and county roles", "role")


def visible_zone_codes(session: Session, user: User | None) -> set[str] | None:
    """Codes of the patrol zones ``user`` works in or may look at; None when county-wide."""
    require_reader(user)
    if user is None or user.role in COUNTY_WIDE_ROLES:
        return None
    scopes = list(user.scopes or [])
    named = set(session.scalars(select(PatrolZone.code).where(PatrolZone.code.in_(scopes))))
    divisions = [code for code in scopes if code.isdigit()]
    if divisions:
        parts = [select(model.geom).where(model.code.in_(divisions)) for model in (Town, Village, Grid)]
        union = parts[0].union_all(*parts[1:]).subquery()
        area = select(func.ST_Union(union.c.geom)).scalar_subquery()
        named |= set(session.scalars(select(PatrolZone.code).where(
            func.ST_Intersects(PatrolZone.geom, func.ST_Buffer(area, -SCOPE_SHRINK_DEGREES)))))
    return named


def _check_zone(session: Session, user: User | None, zone_code, *, write: bool, field_name: str = "zone") -> PatrolZone:
    if zone_code in (None, ""):
        raise ValidationError("choose a patrol zone", field_name)
    zone = session.get(PatrolZone, str(zone_code).strip())
    if zone is None:
        raise ValidationError(f"no patrol zone {zone_code!r}", field_name)
    visible = visible_zone_codes(session, user)
    if visible is not None and zone.code not in visible:
        raise Forbidden(f"patrol zone {zone.code} is not in your area", field_name)
    if write and user is not None and user.role not in TRACK_WRITERS:
        raise Forbidden("only police and county officers upload tracks and plan routes", "role")
    return zone


def zone_choices(session: Session, user: User | None) -> list[dict]:
    """The zones a user may pick, with their station names, in code order."""
    visible = visible_zone_codes(session, user)
    query = (select(PatrolZone.code, PatrolZone.name, PoliceStation.name.label("station_name"))
             .outerjoin(PoliceStation, PoliceStation.code == PatrolZone.station_code).order_by(PatrolZone.code))
    if visible is not None:
        query = query.where(PatrolZone.code.in_(visible))
    return [dict(r._mapping) for r in session.execute(query)]


def default_zone(session: Session, user: User | None) -> str | None:
    """The user's zone when there is exactly one to choose."""
    choices = zone_choices(session, user)
    return choices[0]["code"] if len(choices) == 1 else None


# --- parsing ----------------------------------------------------------------------------------

def parse_moment(value, name: str) -> datetime:
    """An ISO date-time; without an offset it is Beijing time."""
    text_value = str(value).strip() if value is not None else ""
    try:
        parsed = datetime.fromisoformat(text_value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be a date-time such as 2026-11-01T08:00 (Beijing time) "
                              "or 2026-11-01T08:00+08:00", name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA_TZ)


def _number(value, name: str, low: float, high: float, *, default=None, integer: bool = False) -> float:
    if value in (None, ""):
        if default is None:
            raise ValidationError(f"{name} is required", name)
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number", name) from None
    if integer and number != int(number):
        raise ValidationError(f"{name} must be a whole number", name)
    if not (low <= number <= high) or not math.isfinite(number):
        raise ValidationError(f"{name} must be between {low:g} and {high:g}", name)
    return int(number) if integer else number


def latest_track_end(session: Session, user: User | None) -> datetime | None:
    """End of the latest track the user may see (None when there is none)."""
    visible = visible_zone_codes(session, user)
    query = select(func.max(PatrolTrack.ended_at))
    if visible is not None:
        query = query.where(PatrolTrack.zone_code.in_(visible))
    return session.scalar(query)


def default_period_end(session: Session, user: User | None, now: datetime | None = None) -> datetime:
    """Midnight after the latest day with tracks the user may see, or the end of today when none (or
    when today is that day): coverage pages open on the most recent data."""
    latest = latest_track_end(session, user)
    today_end = risk.end_of_today(now)
    if latest is None:
        return today_end
    day_end = datetime.combine(latest.astimezone(CHINA_TZ).date() + timedelta(days=1), time(0), CHINA_TZ)
    return min(day_end, today_end)


def parse_coverage_period(session: Session, user: User | None, args: Mapping, settings: PatrolSettings,
                          now: datetime | None = None) -> risk.Period:
    """``from``/``to`` (dates are Beijing days, ``to`` excluded); by default the ``lookback_days``
    up to the latest day with tracks. At most 93 days."""
    args = dict(args)
    if args.get("to") in (None, ""):
        args["to"] = default_period_end(session, user, now).isoformat()
    period = risk.parse_period(args, now=now, default_days=settings.lookback_days)
    if period.days > MAX_PERIOD_DAYS:
        raise ValidationError(f"a coverage period may be at most {MAX_PERIOD_DAYS} days long", "from")
    return period


# --- tracks: upload ---------------------------------------------------------------------------

@dataclass
class TrackUpload:
    """A stored track and what happened to its fixes."""

    track: PatrolTrack
    counts: dict[str, int]

    def message_zh(self) -> str:
        c = self.counts
        return (f"已保存轨迹 #{self.track.id}：读取 {c['read']} 个定位点，保留 {c['kept']} 个，剔除 {c['dropped']} 个"
                f"（时间重复 {c['duplicate_time']}，县界外 {c['outside']}，速度异常 {c['too_fast']}，无时间 {c['untimed']}）。")


def track_format(filename: str | None, fmt: str | None) -> str:
    """The format named, or the one the file name's suffix says."""
    if fmt not in (None, ""):
        fmt = str(fmt).strip().lower()
        if fmt == "json":
            fmt = "geojson"
        if fmt not in TRACK_FORMATS:
            raise ValidationError(f"format must be one of {', '.join(TRACK_FORMATS)}", "format")
        return fmt
    suffix = Path(filename or "").suffix.lower()
    if suffix not in TRACK_SUFFIXES:
        raise ValidationError("cannot tell the track's format from its file name; use a .gpx, .geojson or .csv "
                              "file or name the format", "format")
    return TRACK_SUFFIXES[suffix]


def county_outline(session: Session):
    """The county's outline (a shapely MultiPolygon), or None when no county is loaded."""
    wkb = session.scalar(select(func.ST_AsBinary(func.ST_Union(County.geom))))
    return None if wkb is None else shapely.from_wkb(bytes(wkb))


def _officer(session: Session, user: User | None, officer) -> tuple[int | None, str | None]:
    """(officer user id, unit name): a typed unit name, or the uploading user."""
    name = (str(officer).strip() if officer is not None else "")
    if len(name) > 100:
        raise ValidationError("the officer or unit name is at most 100 characters", "officer")
    if name:
        return None, name
    if user is None:
        raise ValidationError("name the officer or unit the track belongs to (--officer)", "officer")
    return user.id, None


def _line_length_m(lon: np.ndarray, lat: np.ndarray, metric_crs: str) -> float:
    line = shapely.linestrings(np.column_stack([lon, lat]))
    return float(shapely.length(project_geometries([line], "EPSG:4326", metric_crs)[0]))


def _line_wkb(lon: np.ndarray, lat: np.ndarray) -> str:
    """Hex WKB of a line (PostGIS reads it faster than WKT); SQL sets its SRID."""
    return shapely.to_wkb(shapely.linestrings(np.column_stack([lon, lat])), hex=True)


def _copy_points(cur, track_ids: np.ndarray, times: pd.Series, lon: np.ndarray, lat: np.ndarray) -> None:
    """COPY fixes into patrol_track_points (an order of magnitude faster than INSERTs)."""
    stamps = pd.DatetimeIndex(times).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S.%f+00")
    points = shapely.to_wkb(shapely.set_srid(shapely.points(lon, lat), 4326), hex=True, include_srid=True)
    buffer = io.StringIO("".join(f"{i}\t{t}\t{g}\n" for i, t, g in zip(track_ids.tolist(), stamps, points.tolist())))
    cur.copy_expert("COPY patrol_track_points (track_id, t, geom) FROM STDIN", buffer)


def clean_track(fixes: pd.DataFrame, boundary, settings: PatrolSettings) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop wrong fixes of one track; counts as stored with a track (read, kept, dropped and per reason)."""
    kept, counts = clean_tracks(fixes.assign(track_id=0), boundary, settings)
    counts = {k: int(v) for k, v in counts.iloc[0].items()}
    untimed = int(fixes.attrs.get("untimed_dropped", 0))
    counts["untimed"] = untimed
    counts["read"] += untimed
    counts["dropped"] += untimed
    return kept.drop(columns="track_id"), counts


def clean_tracks(fixes: pd.DataFrame, boundary, settings: PatrolSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean many tracks at once (fixes with a ``track_id`` column): the kept fixes, and per track the
    counts stored with it (``read``, ``kept``, ``dropped``, per reason).

    clean_fixes counts its reasons over the whole table only. Cleaning in three passes -- repeated
    times only, then fixes outside the boundary, then jumps -- drops exactly what one pass drops
    (each reason is judged on the fixes the earlier reasons kept), and the rows each pass removes
    give every track's count per reason."""
    unlimited = 1e12
    kw = {"metric_crs": settings.metric_crs}
    try:
        distinct, _ = clean_fixes(fixes, max_speed_kmh=unlimited, **kw)
        inside = distinct
        if boundary is not None:
            # Whether a fix is outside depends on that fix alone: clean_fixes only needs to judge the
            # few not strictly inside (testing every fix against the outline's edge is the slow part).
            shapely.prepare(boundary)
            sure = shapely.contains_xy(boundary, distinct["lon"].to_numpy(dtype=float),
                                       distinct["lat"].to_numpy(dtype=float))
            edge = distinct.loc[~sure]
            on_edge = np.zeros(len(edge), dtype=bool)
            if len(edge):
                judged, _ = clean_fixes(edge.assign(_row=np.arange(len(edge))), max_speed_kmh=unlimited,
                                        boundary=boundary, **kw)
                on_edge[judged["_row"].to_numpy(dtype=int)] = True
            keep = sure.copy()
            keep[np.flatnonzero(~sure)[on_edge]] = True
            inside = distinct.loc[keep].reset_index(drop=True)
        kept = clean_fixes(inside, max_speed_kmh=settings.max_speed_kmh, **kw)[0] if len(inside) else inside
    except TrackError as exc:
        raise ValidationError(str(exc), "file") from exc
    sizes = pd.DataFrame({name: frame.groupby("track_id").size() for name, frame in
                          (("read", fixes), ("distinct", distinct), ("inside", inside), ("kept", kept))})
    sizes = sizes.fillna(0).astype(int)
    counts = pd.DataFrame({"read": sizes["read"], "kept": sizes["kept"],
                           "duplicate_time": sizes["read"] - sizes["distinct"],
                           "outside": sizes["distinct"] - sizes["inside"], "too_fast": sizes["inside"] - sizes["kept"],
                           "untimed": 0})
    counts["dropped"] = counts["read"] - counts["kept"]
    return kept, counts


def store_tracks(session: Session, tracks: list[dict], *, uploaded_by: int | None) -> list[int]:
    """Insert tracks and their fixes in one go; each item holds ``fixes`` (kept, sorted), ``counts``,
    ``zone_code``, ``officer_user_id``, ``unit_name``, ``source_format``, ``source_name``."""
    rows = []
    for item in tracks:
        fixes, counts = item["fixes"], {k: int(v) for k, v in item["counts"].items()}
        lon, lat = fixes["lon"].to_numpy(dtype=float), fixes["lat"].to_numpy(dtype=float)
        rows.append((item.get("officer_user_id"), item.get("unit_name"), item["zone_code"],
                     fixes["time"].iloc[0].to_pydatetime(), fixes["time"].iloc[-1].to_pydatetime(),
                     counts["read"], counts["kept"], counts["duplicate_time"], counts["outside"],
                     counts["too_fast"], counts["untimed"], float(item["length_m"]), item["source_format"],
                     item.get("source_name"), uploaded_by, _line_wkb(lon, lat)))
    conn = session.connection().connection.dbapi_connection
    with conn.cursor() as cur:
        returned = execute_values(
            cur, "INSERT INTO patrol_tracks (officer_user_id, unit_name, zone_code, started_at, ended_at, fixes_read, "
                 "fixes_kept, dropped_duplicate_time, dropped_outside, dropped_too_fast, dropped_untimed, length_m, "
                 "source_format, source_name, uploaded_by, geom) VALUES %s RETURNING id",
            rows, template="(" + "%s, " * 15 + "ST_SetSRID(%s::geometry, 4326))",
            page_size=500, fetch=True)
        ids = [i for (i,) in returned]
        all_ids = np.concatenate([np.full(len(item["fixes"]), i) for i, item in zip(ids, tracks)])
        frames = pd.concat([item["fixes"][["time", "lon", "lat"]] for item in tracks], ignore_index=True)
        _copy_points(cur, all_ids, frames["time"], frames["lon"].to_numpy(dtype=float),
                     frames["lat"].to_numpy(dtype=float))
    return ids


def upload_track(session: Session, user: User | None, content: bytes, *, zone_code, filename: str | None = None,
                 fmt: str | None = None, officer=None, settings: PatrolSettings | None = None) -> TrackUpload:
    """Read a GPX, GeoJSON or CSV track, drop its wrong fixes (outside the county, jumps faster than
    ``max_speed_kmh``, repeated timestamps) and store it in ``zone_code`` for ``officer`` (a unit
    name; by default the uploading user). Written in the caller's transaction; nothing is written
    when the file is refused."""
    settings = settings or PatrolSettings()
    zone = _check_zone(session, user, zone_code, write=True)
    officer_user_id, unit = _officer(session, user, officer)
    fmt = track_format(filename, fmt)
    if not content:
        raise ValidationError("the track file is empty", "file")
    try:
        fixes = read_track(bytes(content), fmt, naive_tz=settings.track_timezone)
    except TrackError as exc:
        raise ValidationError(str(exc), "file") from exc
    if len(fixes) > MAX_TRACK_FIXES:
        raise ValidationError(f"the track has {len(fixes):,} fixes; at most {MAX_TRACK_FIXES:,} per file", "file")
    kept, counts = clean_track(fixes, county_outline(session), settings)
    if counts["kept"] < 2:
        raise ValidationError(
            f"of {counts['read']} fixes only {counts['kept']} remain after dropping wrong ones (repeated time "
            f"{counts['duplicate_time']}, outside the county {counts['outside']}, too fast {counts['too_fast']}, "
            f"no time {counts['untimed']}); a track needs at least 2", "file")
    length = _line_length_m(kept["lon"].to_numpy(), kept["lat"].to_numpy(), settings.metric_crs)
    name = Path(filename).name[:200] if filename else None
    [track_id] = store_tracks(session, [{"fixes": kept, "counts": counts, "zone_code": zone.code,
                                         "officer_user_id": officer_user_id, "unit_name": unit,
                                         "length_m": length, "source_format": fmt, "source_name": name}],
                              uploaded_by=user.id if user is not None else None)
    audit(session, user.id if user is not None else None, "patrol.track_upload", "patrol_track", track_id,
          {k: int(v) for k, v in counts.items()} | {"zone": zone.code})
    session.flush()
    return TrackUpload(session.get(PatrolTrack, track_id), counts)


def fixes_geojson(fixes) -> bytes:
    """A list of ``{"time", "lon", "lat"}`` objects (a phone's upload) as GeoJSON bytes for read_track."""
    if not isinstance(fixes, list) or not fixes:
        raise ValidationError("fixes must be a non-empty list of {time, lon, lat} objects", "fixes")
    features = []
    for n, fix in enumerate(fixes):
        if not isinstance(fix, dict) or "lon" not in fix or "lat" not in fix:
            raise ValidationError(f"fix {n} is not a {{time, lon, lat}} object", "fixes")
        features.append({"type": "Feature", "properties": {"time": fix.get("time")},
                         "geometry": {"type": "Point", "coordinates": [fix["lon"], fix["lat"]]}})
    return json.dumps({"type": "FeatureCollection", "features": features}).encode("utf-8")


def upload_track_json(session: Session, user: User | None, body: Mapping,
                      settings: PatrolSettings | None = None) -> TrackUpload:
    """``{"zone", "officer", "fixes": [{"time", "lon", "lat"}, …]}`` or ``{"zone", "officer",
    "geojson": {…}}`` or ``{"zone", "officer", "format", "content": "<file text>"}``."""
    zone = body.get("zone") or body.get("zone_code")
    if "fixes" in body:
        content, fmt = fixes_geojson(body["fixes"]), "geojson"
    elif "geojson" in body:
        content, fmt = json.dumps(body["geojson"]).encode("utf-8"), "geojson"
    elif "content" in body:
        if not isinstance(body["content"], str):
            raise ValidationError("content must be the track file as text", "content")
        content, fmt = body["content"].encode("utf-8"), track_format(None, body.get("format") or "gpx")
    else:
        raise ValidationError("send fixes (a list of {time, lon, lat}), geojson, or content with format", "fixes")
    return upload_track(session, user, content, zone_code=zone, fmt=fmt, officer=body.get("officer"),
                        settings=settings, filename=body.get("name"))


# --- tracks: reading --------------------------------------------------------------------------

def _track_conditions(visible: set[str] | None, period: risk.Period | None, zone: str | None) -> list:
    conds = []
    if visible is not None:
        conds.append(PatrolTrack.zone_code.in_(visible))
    if zone:
        conds.append(PatrolTrack.zone_code == zone)
    if period is not None:
        conds += [PatrolTrack.started_at < period.end, PatrolTrack.ended_at >= period.start]
    return conds


def _zone_filter(session: Session, user: User | None, zone: str | None) -> tuple[set[str] | None, str | None]:
    visible = visible_zone_codes(session, user)
    if zone:
        _check_zone(session, user, zone, write=False)
    return visible, (zone or None)


def list_tracks(session: Session, user: User | None, period: risk.Period | None = None, zone: str | None = None,
                limit: int = 500, track_id: int | None = None) -> list[dict]:
    """Tracks the user may see, latest first; officers and uploaders only for the roles handling them."""
    visible, zone = _zone_filter(session, user, zone)
    officer_name = func.coalesce(PatrolTrack.unit_name, User.display_name, User.username)
    uploader = User.__table__.alias("uploader")
    query = (select(PatrolTrack.id, PatrolTrack.zone_code, PatrolZone.name.label("zone_name"),
                    officer_name.label("officer"), uploader.c.username.label("uploaded_by"),
                    PatrolTrack.started_at, PatrolTrack.ended_at, PatrolTrack.fixes_read, PatrolTrack.fixes_kept,
                    PatrolTrack.dropped_duplicate_time, PatrolTrack.dropped_outside, PatrolTrack.dropped_too_fast,
                    PatrolTrack.dropped_untimed, PatrolTrack.length_m, PatrolTrack.source_format,
                    PatrolTrack.uploaded_at)
             .join(PatrolZone, PatrolZone.code == PatrolTrack.zone_code)
             .outerjoin(User, User.id == PatrolTrack.officer_user_id)
             .outerjoin(uploader, uploader.c.id == PatrolTrack.uploaded_by)
             .where(*_track_conditions(visible, period, zone))
             .order_by(PatrolTrack.started_at.desc(), PatrolTrack.id.desc()).limit(limit))
    if track_id is not None:
        query = query.where(PatrolTrack.id == track_id)
    named = is_named(user)
    out = []
    for row in session.execute(query):
        item = dict(row._mapping)
        if not named:
            item.pop("officer")
            item.pop("uploaded_by")
        for key in ("started_at", "ended_at", "uploaded_at"):
            item[key] = item[key].astimezone(CHINA_TZ).isoformat()
        item["length_m"] = round(float(item["length_m"]), 1)
        out.append(item)
    return out


def get_track(session: Session, user: User | None, track_id: int) -> dict:
    rows = list_tracks(session, user, track_id=track_id)
    if not rows:
        raise NotFound(f"no track #{track_id} that you may see", "track")
    return rows[0]


def tracks_geojson(session: Session, user: User | None, period: risk.Period | None = None, zone: str | None = None,
                   simplify_m: float = TRACK_SIMPLIFY_M, limit: int = 5000) -> dict:
    """Tracks as simplified lines for a map, with the same properties as :func:`list_tracks`."""
    visible, zone = _zone_filter(session, user, zone)
    geom = func.ST_SimplifyPreserveTopology(PatrolTrack.geom, simplify_m / 111_000.0) if simplify_m > 0 \
        else PatrolTrack.geom
    rows = session.execute(select(PatrolTrack.id, func.ST_AsGeoJSON(geom, 6).label("g"))
                           .where(*_track_conditions(visible, period, zone))
                           .order_by(PatrolTrack.started_at.desc(), PatrolTrack.id.desc()).limit(limit)).all()
    props = {t["id"]: t for t in list_tracks(session, user, period, zone, limit=limit)}
    features = [{"type": "Feature", "id": r.id, "geometry": json.loads(r.g), "properties": props[r.id]}
                for r in rows if r.id in props]
    return {"type": "FeatureCollection", "features": features}


def load_fixes(session: Session, start: datetime, end: datetime, *, zones: set[str] | None = None,
               near_zones: set[str] | None = None, distance_m: float = 50.0) -> pd.DataFrame:
    """Kept fixes in ``[start, end]`` as the coverage functions want them: ``track_id``, ``zone_code``
    (the track's zone), ``time`` (UTC), ``lon``, ``lat``. ``zones`` keeps the tracks of these zones;
    ``near_zones`` the tracks passing within ``distance_m`` of these zones (any officer's)."""
    where = ["t.started_at <= :end", "t.ended_at >= :start"]
    params: dict = {"start": start, "end": end}
    if zones is not None:
        where.append("t.zone_code = ANY(:zones)")
        params["zones"] = sorted(zones)
    if near_zones is not None:
        where.append("ST_DWithin(t.geom, (SELECT ST_Union(z.geom) FROM patrol_zones z WHERE z.code = ANY(:near)), "
                     ":deg)")
        params["near"] = sorted(near_zones)
        params["deg"] = (distance_m + 50.0) / 90_000.0  # degrees, generous: a selection, not the measure
    # The tracks first (a handful of rows), then their fixes by primary key.
    sql = (f"WITH chosen AS MATERIALIZED (SELECT t.id, t.zone_code FROM patrol_tracks t WHERE {' AND '.join(where)}) "
           "SELECT p.track_id, c.zone_code, p.t AS time, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat "
           "FROM chosen c JOIN patrol_track_points p ON p.track_id = c.id "
           "WHERE p.t BETWEEN :start AND :end ORDER BY p.track_id, p.t")
    rows = [tuple(r) for r in session.execute(text(sql), params)]  # plain tuples: pandas probes Rows slowly
    frame = pd.DataFrame.from_records(rows, columns=["track_id", "zone_code", "time", "lon", "lat"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["lon"] = frame["lon"].astype(float)
    frame["lat"] = frame["lat"].astype(float)
    return frame


# --- coverage ---------------------------------------------------------------------------------

def grid_zones(session: Session) -> pd.Series:
    """Zone code of every grid (by its point on surface; NaN where no zone holds it), indexed by code."""
    rows = session.execute(text(
        "SELECT g.code, z.code FROM grids g LEFT JOIN patrol_zones z "
        "ON ST_Within(ST_PointOnSurface(g.geom), z.geom) ORDER BY g.code")).all()
    series = pd.Series({code: zone for code, zone in rows}, dtype=object, name="zone_code")
    series.index.name = "code"
    return series[~series.index.duplicated()]


def risk_for(session: Session, end: datetime, risk_settings: risk.RiskSettings) -> risk.RiskResult:
    """County-wide risk and Gi* hot spots over the ``default_days`` before ``end``."""
    end = min(end, risk.end_of_today())
    period = risk.Period(end - timedelta(days=risk_settings.default_days), end)
    return risk.compute_risk(session, None, period, (), risk_settings, now=end)


def hotspot_clusters(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Hot spots as areas: touching hot grids (``gi_bin > 0``) merged into one polygon each.

    ``id`` is ``H`` + the lowest grid code in the cluster (stable while the cluster is), with the
    member ``grid_codes``, their zones, the highest ``gi_bin`` and the summed ``score``.
    """
    hot = grids.loc[grids["gi_bin"] > 0]
    columns = ["id", "grid_codes", "zone_codes", "n_grids", "gi_bin", "score", "geometry"]
    if hot.empty:
        return gpd.GeoDataFrame({c: [] for c in columns[:-1]}, geometry=[], crs="EPSG:4326")
    merged = shapely.get_parts(shapely.union_all(shapely.buffer(hot.geometry.to_numpy(), 1e-7)))
    tree = shapely.STRtree(merged)
    cluster_of = tree.query(shapely.point_on_surface(hot.geometry.to_numpy()), predicate="within")
    owner = pd.Series(cluster_of[1], index=cluster_of[0]).groupby(level=0).first()
    rows = []
    for k, geometry in enumerate(merged):
        members = hot.iloc[owner.index[owner.to_numpy() == k]]
        if members.empty:
            continue
        codes = sorted(members["code"])
        rows.append({"id": f"H{codes[0]}", "grid_codes": codes,
                     "zone_codes": sorted(set(members["zone_code"].dropna())), "n_grids": len(codes),
                     "gi_bin": int(members["gi_bin"].max()), "score": float(members["score"].sum()),
                     "geometry": shapely.union_all(members.geometry.to_numpy())})
    return gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs="EPSG:4326").sort_values(
        "id", ignore_index=True)


def _shifts(period: risk.Period) -> list[tuple[datetime, datetime]]:
    """Day (08-20) and night (20-08) shifts, Beijing time, that overlap the period."""
    first = period.start.astimezone(CHINA_TZ).date() - timedelta(days=1)
    out = []
    day = first
    while True:
        for start_time in SHIFT_STARTS:
            start = datetime.combine(day, start_time, CHINA_TZ)
            end = start + timedelta(hours=12)
            if start >= period.end:
                return out
            if end > period.start:
                out.append((max(start, period.start), min(end, period.end)))
        day += timedelta(days=1)


@dataclass
class CoverageResult:
    """Coverage of the grids, hot spots and zones a user may see, for one period."""

    period: risk.Period
    now: datetime
    settings: PatrolSettings
    zone: str | None
    zones: pd.DataFrame           # per zone: names, zone_coverage figures
    grids: gpd.GeoDataFrame       # per grid: risk and coverage
    hotspots: gpd.GeoDataFrame    # per hot-spot cluster: coverage
    daily: pd.DataFrame           # zone_code, date, minutes
    n_tracks: int
    n_fixes: int
    risk_period: risk.Period

    def meta(self) -> dict:
        return {"period": self.period.as_dict(), "now": self.now.isoformat(), "zone": self.zone,
                "risk_period": self.risk_period.as_dict(), "settings": self.settings.as_dict(),
                "tracks": self.n_tracks, "fixes": self.n_fixes,
                "definitions": {
                    "visit": f"fixes of one track within {self.settings.visit_distance_m:g} m of the grid, split where "
                             f"fixes are more than {self.settings.gap_minutes:g} minutes apart",
                    "high_risk": f"risk level >= {self.settings.high_risk_level} or a Gi* hot spot",
                    "patrol_minutes_per_day": "minutes on patrol (gaps over the gap limit left out) per day "
                                              "of the period: the 见警率 proxy"}}


GRID_COLUMNS = ["code", "name", "village_name", "town_name", "zone_code", "risk_level", "score", "gi_bin", "hotspot",
                "high_risk", "visits", "dwell_minutes", "mean_dwell_minutes", "share_10_15", "last_visit_end",
                "hours_since_last_visit", "longest_gap_hours"]
ZONE_COLUMNS = ["name", "station_name", "grids", "high_risk_grids", "share_high_risk_visited_per_shift",
                "patrol_minutes", "patrol_minutes_per_day", "high_risk_time_share", "high_risk_risk_share",
                "risk_time_ratio", "tracks"]


def compute_coverage(session: Session, user: User | None, period: risk.Period, zone: str | None = None,
                     settings: PatrolSettings | None = None, risk_settings: risk.RiskSettings | None = None,
                     now: datetime | None = None) -> CoverageResult:
    """Visits, dwell, time since the last visit and longest gap per grid and hot spot, and per zone
    the share of high-risk grids visited per shift, patrol minutes per day and time against risk."""
    settings = settings or PatrolSettings()
    risk_settings = risk_settings or risk.RiskSettings()
    now = min(now or datetime.now(timezone.utc), period.end)
    visible, zone = _zone_filter(session, user, zone)
    wanted = {zone} if zone else visible

    risk_result = risk_for(session, period.end, risk_settings)
    all_grids = risk_result.grids.copy()
    zone_of = grid_zones(session)
    all_grids["zone_code"] = zone_of.reindex(all_grids["code"]).to_numpy()
    all_grids["hotspot"] = all_grids["gi_bin"] > 0
    all_grids["high_risk"] = high_risk_grids(all_grids, settings)
    grids = all_grids if wanted is None else all_grids.loc[all_grids["zone_code"].isin(wanted)]
    grids = grids.reset_index(drop=True)
    hotspots = hotspot_clusters(all_grids)
    if wanted is not None:
        hotspots = hotspots.loc[[bool(set(z) & wanted) for z in hotspots["zone_codes"]]].reset_index(drop=True)

    fixes = load_fixes(session, period.start, period.end, near_zones=wanted, distance_m=settings.visit_distance_m)
    kw = {"visit_distance_m": settings.visit_distance_m, "gap_minutes": settings.gap_minutes,
          "metric_crs": settings.metric_crs}
    try:
        per_grid = grid_coverage(fixes, grids[["code", "geometry"]], start=period.start, end=period.end, now=now,
                                 **kw)
        per_hotspot = hotspot_coverage(fixes, hotspots[["id", "geometry"]], id_column="id", start=period.start,
                                       end=period.end, now=now, **kw)
        zone_grids = grids.loc[grids["zone_code"].notna(), ["code", "zone_code", "risk_level", "score",
                                                            "geometry"]].copy()
        # zone_coverage calls a grid high-risk from its level; hot spots count as high-risk too.
        zone_grids["risk_level"] = np.where(grids.loc[zone_grids.index, "high_risk"], settings.high_risk_level,
                                            0)
        own = fixes if wanted is None else fixes.loc[fixes["zone_code"].isin(wanted)]
        per_zone = zone_coverage(fixes, zone_grids, start=period.start, end=period.end, shifts=_shifts(period),
                                 high_risk_threshold=settings.high_risk_level, **kw) if len(zone_grids) else None
        daily = daily_patrol_minutes(own, start=period.start, end=period.end, gap_minutes=settings.gap_minutes) \
            if len(own) else pd.DataFrame(columns=["zone_code", "date", "minutes"])
    except CoverageError as exc:
        raise ValidationError(str(exc), None) from exc

    grids = grids.join(per_grid, on="code")
    hotspots = hotspots.join(per_hotspot, on="id")
    for frame in (grids, hotspots):
        frame["last_visit_end"] = frame["last_visit_end"].dt.tz_convert(CHINA_TZ)
    zones = _zone_table(session, wanted, per_zone, fixes, period)
    out_grids = gpd.GeoDataFrame(grids[GRID_COLUMNS + ["geometry"]], geometry="geometry", crs="EPSG:4326")
    return CoverageResult(period=period, now=now, settings=settings, zone=zone, zones=zones, grids=out_grids,
                          hotspots=hotspots, daily=daily, n_tracks=int(fixes["track_id"].nunique()),
                          n_fixes=len(fixes), risk_period=risk_result.period)


def _zone_table(session: Session, wanted: set[str] | None, per_zone: pd.DataFrame | None, fixes: pd.DataFrame,
                period: risk.Period) -> pd.DataFrame:
    query = (select(PatrolZone.code, PatrolZone.name, PoliceStation.name.label("station_name"))
             .outerjoin(PoliceStation, PoliceStation.code == PatrolZone.station_code).order_by(PatrolZone.code))
    if wanted is not None:
        query = query.where(PatrolZone.code.in_(wanted))
    names = pd.DataFrame([tuple(r) for r in session.execute(query)], columns=["code", "name", "station_name"]
                         ).set_index("code")
    names.index.name = "zone_code"
    table = names.join(per_zone) if per_zone is not None else names
    for column in ZONE_COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    table["tracks"] = fixes.groupby("zone_code")["track_id"].nunique().reindex(table.index).fillna(0).astype(int)
    for column in ("grids", "high_risk_grids"):
        table[column] = table[column].fillna(0).astype(int)
    table["patrol_minutes"] = table["patrol_minutes"].fillna(0.0)
    table["patrol_minutes_per_day"] = table["patrol_minutes"] / period.days
    return table[ZONE_COLUMNS]


def not_visited(result: CoverageResult, hours: float, *, high_risk_only: bool = True) -> pd.DataFrame:
    """Grids not visited in the last ``hours`` (or never in the period), most at risk first."""
    grids = pd.DataFrame(result.grids.drop(columns="geometry"))
    since = grids["hours_since_last_visit"]
    stale = since.isna() | (since >= hours)
    if high_risk_only:
        stale &= grids["high_risk"]
    return grids.loc[stale].sort_values(["risk_level", "score"], ascending=False)


def high_risk_grids(grids: pd.DataFrame, settings: PatrolSettings) -> pd.Series:
    """Whether each grid of a risk table is high-risk: its level at least ``high_risk_level``, or a Gi*
    hot spot. One definition for the coverage page and the bulletins."""
    return (grids["risk_level"] >= settings.high_risk_level) | (grids["gi_bin"] > 0)


DIVISION_PATROL_COLUMNS = ["name", "grids", "high_risk_grids", "high_risk_visited", "high_risk_visited_share",
                           "high_risk_not_visited", "patrol_minutes", "patrol_minutes_per_day"]


def division_patrol_summary(session: Session, start: datetime, end: datetime, *, town: str | None = None,
                            stale_hours: float = 24.0, settings: PatrolSettings | None = None,
                            risk_settings: risk.RiskSettings | None = None,
                            now: datetime | None = None) -> pd.DataFrame:
    """Patrol coverage per town (county-wide), or per village of ``town``, over ``[start, end)``.

    Figures, every division included (zeros where nobody patrolled):

    * ``patrol_minutes``: patrol time (:func:`~gridmap.analysis.coverage.patrol_intervals`, gaps over
      ``gap_minutes`` left out) of every track, each interval placed in the division holding its
      first fix; ``patrol_minutes_per_day`` divides by the days of the period up to ``now``;
    * ``high_risk_grids``: grids at risk level ``high_risk_level`` or more, or Gi* hot spots, by the
      county-wide risk of the ``default_days`` before ``end`` (as on the coverage page);
    * ``high_risk_visited`` / ``high_risk_visited_share``: of those, visited at least once in the
      period (:func:`~gridmap.analysis.coverage.grid_coverage`; NaN share without high-risk grids);
    * ``high_risk_not_visited``: of those, not visited in the ``stale_hours`` before
      ``min(end, now)`` (or not at all in the period).

    Aggregates only: no officer, unit or track leaves this function.
    """
    settings = settings or PatrolSettings()
    if not 0 < stale_hours <= 2400:
        raise ValidationError("patrol_hours must be between 1 and 2400 hours", "patrol_hours")
    now = min(now or datetime.now(timezone.utc), end)
    if now <= start:
        raise ValidationError("the period has not begun", "start")
    grids = risk_for(session, end, risk_settings or risk.RiskSettings()).grids
    if town is None:
        key = "town_code"
        units_query = select(Town.code, Town.name, Town.geom).order_by(Town.code)
    else:
        key = "village_code"
        units_query = select(Village.code, Village.name, Village.geom).where(Village.town_code == town) \
            .order_by(Village.code)
        grids = grids.loc[grids["town_code"] == town]
    units = gpd.read_postgis(units_query, session.connection(), geom_col="geom").set_index("code")
    grids = grids.assign(high_risk=high_risk_grids(grids, settings).to_numpy())
    high = grids.loc[grids["high_risk"], ["code", key, "geometry"]].reset_index(drop=True)

    fixes = load_fixes(session, start, now)
    try:
        visits = grid_coverage(fixes, high[["code", "geometry"]], start=start, end=end, now=now,
                               visit_distance_m=settings.visit_distance_m, gap_minutes=settings.gap_minutes,
                               metric_crs=settings.metric_crs)
        intervals = patrol_intervals(fixes, gap_minutes=settings.gap_minutes, start=start, end=now)
    except CoverageError as exc:
        raise ValidationError(str(exc), None) from exc
    high = high.join(visits[["visits", "hours_since_last_visit"]], on="code")
    since = high["hours_since_last_visit"]
    high["visited"] = high["visits"] > 0
    high["stale"] = since.isna() | (since >= stale_hours)

    # Each interval goes to the division holding its first fix (divisions tile the county). A few dozen
    # prepared polygons tested against all points at once are several times faster than an STRtree query.
    lon, lat = intervals["lon"].to_numpy(dtype=float), intervals["lat"].to_numpy(dtype=float)
    unit_of = np.full(len(intervals), -1)
    for k, geometry in enumerate(units.geometry.to_numpy()):
        shapely.prepare(geometry)
        unit_of[(unit_of < 0) & shapely.contains_xy(geometry, lon, lat)] = k
    placed = unit_of >= 0
    minutes = pd.Series(intervals["minutes"].to_numpy()[placed], index=units.index.to_numpy()[unit_of[placed]])

    out = pd.DataFrame(index=pd.Index(units.index, name="code"))
    out["name"] = units["name"]
    out["grids"] = grids.groupby(key).size().reindex(out.index, fill_value=0).astype("int64")
    by_unit = high.groupby(key)
    out["high_risk_grids"] = by_unit.size().reindex(out.index, fill_value=0).astype("int64")
    out["high_risk_visited"] = by_unit["visited"].sum().reindex(out.index, fill_value=0).astype("int64")
    out["high_risk_visited_share"] = (out["high_risk_visited"]
                                      / out["high_risk_grids"].where(out["high_risk_grids"] > 0)).astype("float64")
    out["high_risk_not_visited"] = by_unit["stale"].sum().reindex(out.index, fill_value=0).astype("int64")
    out["patrol_minutes"] = minutes.groupby(level=0).sum().reindex(out.index, fill_value=0.0).astype("float64")
    out["patrol_minutes_per_day"] = out["patrol_minutes"] / ((now - start).total_seconds() / 86400)
    return out[DIVISION_PATROL_COLUMNS]


def coverage_json(result: CoverageResult) -> dict:
    body = result.meta()
    body["zones"] = risk.records(result.zones, "zone_code")
    body["grids"] = risk.records(pd.DataFrame(result.grids.drop(columns="geometry")).set_index("code", drop=False))
    hotspots = pd.DataFrame(result.hotspots.drop(columns="geometry"))
    body["hotspots"] = risk.records(hotspots.set_index("id", drop=False))
    body["daily"] = risk.records(result.daily.reset_index(drop=True))
    return body


def _map_properties(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ("score", "dwell_minutes", "mean_dwell_minutes", "share_10_15", "hours_since_last_visit",
                   "longest_gap_hours"):
        if column in out.columns:
            out[column] = out[column].astype(float).round(2)
    return out


def coverage_geojson(result: CoverageResult, level: str = "grids", simplify: bool = False) -> dict:
    """Grids (or hot spots) with their coverage as a FeatureCollection with the period and settings."""
    frame = result.grids if level == "grids" else result.hotspots
    if level == "hotspots":
        frame = frame.assign(grid_codes=[",".join(c) for c in frame["grid_codes"]],
                             zone_codes=[",".join(c) for c in frame["zone_codes"]])
    frame = gpd.GeoDataFrame(_map_properties(pd.DataFrame(frame)), geometry="geometry", crs="EPSG:4326")
    if simplify:
        frame = frame.set_geometry(frame.geometry.simplify(1e-5, preserve_topology=True))
    return risk.feature_collection(frame, "code" if level == "grids" else "id", {"meta": result.meta()})


def coverage_csv(result: CoverageResult, level: str = "grids") -> str:
    if level == "grids":
        frame = pd.DataFrame(result.grids.drop(columns="geometry"))
        return risk.frame_csv(frame.set_index("code", drop=False))
    if level == "hotspots":
        frame = pd.DataFrame(result.hotspots.drop(columns="geometry"))
        frame = frame.assign(grid_codes=[",".join(c) for c in frame["grid_codes"]],
                             zone_codes=[",".join(c) for c in frame["zone_codes"]])
        return risk.frame_csv(frame.set_index("id", drop=False))
    return risk.frame_csv(result.zones, "zone_code")


# --- roads ------------------------------------------------------------------------------------

_network_lock = threading.Lock()
_networks: dict[str, tuple[tuple, RoadNetwork | None]] = {}


def _roads_key(session: Session) -> tuple:
    return tuple(session.execute(text(
        "SELECT count(*), coalesce(max(id), 0), coalesce(sum(id), 0), max(created_at) FROM roads")).one())


def _database_key(session: Session) -> str:
    bind = session.get_bind()
    engine = getattr(bind, "engine", bind)
    return engine.url.render_as_string(hide_password=True)


def road_network(session: Session, settings: PatrolSettings | None = None) -> RoadNetwork | None:
    """The stored roads as a routable network, or None when no roads are loaded.

    Built once per process and database and kept until the roads change (their count and ids
    are checked on every call, which costs one small query)."""
    settings = settings or PatrolSettings()
    key = _roads_key(session) + (settings.speed_kmh, settings.metric_crs)
    database = _database_key(session)
    with _network_lock:
        cached = _networks.get(database)
        if cached is not None and cached[0] == key:
            return cached[1]
    network = None
    if key[0]:
        rows = session.execute(select(Road.speed_kmh, func.ST_AsBinary(Road.geom))).all()
        roads = gpd.GeoDataFrame({"speed_kmh": [r[0] for r in rows]},
                                 geometry=shapely.from_wkb([bytes(r[1]) for r in rows]), crs="EPSG:4326")
        try:
            network = build_road_network(roads, default_speed_kmh=settings.speed_kmh, metric_crs=settings.metric_crs)
        except RoutingError as exc:
            raise ValidationError(f"the stored roads cannot be used: {exc}", "roads") from exc
    with _network_lock:
        _networks[database] = (key, network)
    return network


def _road_speed(value) -> float | None:
    """``50``, ``"50"``, ``"30 mph"``, ``"50;60"`` (the first) -> km/h; None when not given or unreadable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    match = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(mph)?", str(value))
    if not match:
        return None
    speed = float(match.group(1))
    return speed * 1.609344 if match.group(2) else speed


def _first_column(frame: pd.DataFrame, names) -> str | None:
    lowered = {str(c).strip().lower(): c for c in frame.columns if c != "geometry"}
    return next((lowered[str(n).strip().lower()] for n in names if str(n).strip().lower() in lowered), None)


def import_roads(session: Session, user: User | None, path, options: SourceOptions, *, append: bool = False,
                 settings: PatrolSettings | None = None) -> ImportReport:
    """Load road lines (GeoPackage, Shapefile, GeoJSON; e.g. an OSM extract) as the routing network.

    ``name``, ``road_class`` (or OSM ``highway``/``fclass``) and ``speed_kmh`` (or ``maxspeed``)
    are read where present; a road without a speed gets its class's usual speed, or the
    configured default. The roads replace the stored ones unless ``append``. All or nothing."""
    settings = settings or PatrolSettings()
    if user is not None and user.role not in ("county_officer", "admin"):
        raise Forbidden("only county officers and admins load roads", "role")
    frame = read_features(path, options, allow_csv=False)
    mapping = dict(options.mapping)
    name_col = _first_column(frame, [mapping.get("name", "name")])
    class_col = _first_column(frame, [mapping["road_class"]] if "road_class" in mapping else ROAD_CLASS_COLUMNS)
    speed_col = _first_column(frame, [mapping["speed_kmh"]] if "speed_kmh" in mapping else ROAD_SPEED_COLUMNS)
    for option, given in (("--map", mapping), ("--set", options.constants)):
        for target in given:
            if target not in ("name", "road_class", "speed_kmh"):
                raise ValidationError(f"{option} {target}=…: roads have the fields name, road_class, speed_kmh", target)
    for target, column in mapping.items():
        if _first_column(frame, [column.lower()]) is None:
            raise ValidationError(f"--map {target}={column}: the file has no such column", target)

    problems: list[RowProblem] = []
    problems += check_coordinates(frame, expected_extent(session, options.metric_crs))
    rows = []
    for i, geometry in enumerate(frame.geometry):
        if geometry is None or geometry.is_empty:
            problems.append(RowProblem(i + 1, None, "has no geometry"))
            continue
        if geometry.geom_type not in ("LineString", "MultiLineString"):
            problems.append(RowProblem(i + 1, None, f"the geometry is a {geometry.geom_type}, not a line"))
            continue
        road_class = options.constants.get("road_class") or (None if class_col is None else frame[class_col].iloc[i])
        road_class = None if road_class is None or (isinstance(road_class, float) and math.isnan(road_class)) \
            else str(road_class).strip()[:40] or None
        speed = options.constants.get("speed_kmh")
        speed = _road_speed(speed if speed is not None else (frame[speed_col].iloc[i] if speed_col else None))
        if speed is not None and speed <= 0:
            problems.append(RowProblem(i + 1, None, f"speed {speed:g} km/h is not positive"))
            continue
        if speed is None and road_class in ROAD_CLASS_SPEEDS:
            speed = float(ROAD_CLASS_SPEEDS[road_class])
        name = options.constants.get("name") or (None if name_col is None else frame[name_col].iloc[i])
        name = None if name is None or (isinstance(name, float) and math.isnan(name)) else str(name).strip()[:200]
        for part in shapely.get_parts(geometry):
            if len(part.coords) >= 2 and part.length > 0:
                rows.append((name or None, road_class, speed, part.wkt))
    if problems:
        raise ImportRefused(f"roads from {Path(path).name}", problems)
    if not rows:
        raise ValidationError(f"{Path(path).name} holds no usable road lines", "file")

    replaced = 0
    if not append:
        replaced = session.execute(text("DELETE FROM roads")).rowcount
    conn = session.connection().connection.dbapi_connection
    with conn.cursor() as cur:
        execute_values(cur, "INSERT INTO roads (name, road_class, speed_kmh, geom) VALUES %s", rows,
                       template="(%s, %s, %s, ST_GeomFromText(%s, 4326))", page_size=2000)
    session.flush()
    report = ImportReport(layer="roads", rows=len(frame), inserted=len(rows))
    network = road_network(session, settings)
    parts = int(np.bincount(network.component).size) if network is not None else 0
    largest = int(np.bincount(network.component).max()) if network is not None else 0
    report.notes.append(f"network: {network.n_nodes:,} nodes, {network.n_edges:,} edges, {parts:,} connected "
                        f"part{'s' if parts != 1 else ''} (the largest has {largest:,} nodes)")
    if replaced:
        report.notes.append(f"replaced {replaced:,} roads loaded before")
    audit(session, user.id if user is not None else None, "patrol.roads_import", "roads", None,
          {"file": Path(path).name, "roads": len(rows), "replaced": replaced})
    return report


# --- route planning ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteRequest:
    zone: str
    shift_start: datetime
    shift_minutes: float
    stops: int
    stop_minutes: float


def next_shift_start(after: datetime) -> datetime:
    """The first 08:00 or 20:00 (Beijing) at or after ``after``."""
    local = after.astimezone(CHINA_TZ)
    for day in (local.date(), local.date() + timedelta(days=1)):
        for start in SHIFT_STARTS:
            moment = datetime.combine(day, start, CHINA_TZ)
            if moment >= local:
                return moment
    raise AssertionError("unreachable")


def default_shift_start(session: Session, user: User | None, zone: str | None = None,
                        now: datetime | None = None) -> datetime:
    """The next shift after the latest track of the zone (the day just uploaded), else after now."""
    query = select(func.max(PatrolTrack.ended_at))
    if zone:
        query = query.where(PatrolTrack.zone_code == zone)
    else:
        visible = visible_zone_codes(session, user)
        if visible is not None:
            query = query.where(PatrolTrack.zone_code.in_(visible))
    latest = session.scalar(query)
    return next_shift_start(latest or now or datetime.now(timezone.utc))


def parse_route_request(data: Mapping) -> RouteRequest:
    zone = data.get("zone") or data.get("zone_code")
    if zone in (None, ""):
        raise ValidationError("choose a patrol zone", "zone")
    if data.get("shift_start") in (None, ""):
        raise ValidationError("shift_start is required (e.g. 2026-11-01T08:00)", "shift_start")
    shift_start = parse_moment(data.get("shift_start"), "shift_start")
    shift_minutes = _number(data.get("shift_minutes"), "shift_minutes", 1, MAX_SHIFT_MINUTES)
    stops = _number(data.get("stops"), "stops", 1, MAX_STOPS, integer=True)
    stop_minutes = _number(data.get("stop_minutes"), "stop_minutes", *STOP_MINUTES_RANGE,
                           default=DEFAULT_STOP_MINUTES)
    if shift_minutes < stop_minutes:
        raise ValidationError(f"a shift of {shift_minutes:g} minutes is too short for even one stop of "
                              f"{stop_minutes:g} minutes", "shift_minutes")
    return RouteRequest(str(zone).strip(), shift_start, float(shift_minutes), int(stops), float(stop_minutes))


def route_candidates(session: Session, zone: PatrolZone, shift_start: datetime, stop_minutes: float,
                     settings: PatrolSettings, risk_settings: risk.RiskSettings) -> pd.DataFrame:
    """Risky grids and hot spots of the zone as candidate stops, prizes weighted by time since their
    last visit (from the tracks of the ``lookback_days`` before the shift)."""
    risk_result = risk_for(session, shift_start, risk_settings)
    grids = risk_result.grids.copy()
    zone_of = grid_zones(session)
    grids = grids.loc[zone_of.reindex(grids["code"]).to_numpy() == zone.code]
    risky = grids.loc[(grids["risk_level"] >= settings.high_risk_level) | (grids["gi_bin"] > 0)].reset_index(drop=True)
    if risky.empty:
        raise ValidationError(
            f"{zone.name} ({zone.code}) has no risky grid (risk level {settings.high_risk_level} or above, or a hot "
            f"spot) in {risk_result.period.label()}; there is nothing to route to", "zone")
    start = shift_start - timedelta(days=settings.lookback_days)
    fixes = load_fixes(session, start, shift_start, near_zones={zone.code}, distance_m=settings.visit_distance_m)
    try:
        coverage = grid_coverage(fixes, risky[["code", "geometry"]], start=start, end=shift_start,
                                 visit_distance_m=settings.visit_distance_m, gap_minutes=settings.gap_minutes,
                                 metric_crs=settings.metric_crs)
    except CoverageError as exc:
        raise ValidationError(str(exc), None) from exc
    risky = risky.join(coverage[["hours_since_last_visit", "visits"]], on="code")
    try:
        candidates = choose_candidates(risky, hotspot_column="gi_bin", service_minutes=stop_minutes,
                                       max_candidates=settings.max_candidates)
    except RoutingError as exc:
        raise ValidationError(f"{zone.name}: {exc}", "zone") from exc
    info = risky.set_index("code")
    candidates["name"] = info["name"].reindex(candidates["id"]).to_numpy()
    candidates["village_name"] = info["village_name"].reindex(candidates["id"]).to_numpy()
    candidates["risk_level"] = info["risk_level"].reindex(candidates["id"]).to_numpy()
    candidates["gi_bin"] = info["gi_bin"].reindex(candidates["id"]).to_numpy()
    candidates["visits"] = info["visits"].reindex(candidates["id"]).to_numpy()
    candidates.attrs["risk_period"] = risk_result.period
    return candidates


def _station_start(session: Session, zone: PatrolZone) -> tuple[PoliceStation, tuple[float, float]]:
    if zone.station_code is None:
        raise ValidationError(f"{zone.name} ({zone.code}) has no police station to start from", "zone")
    row = session.execute(select(PoliceStation, func.ST_X(PoliceStation.geom), func.ST_Y(PoliceStation.geom))
                          .where(PoliceStation.code == zone.station_code)).one_or_none()
    if row is None:
        raise ValidationError(f"the station {zone.station_code} of {zone.name} is missing", "zone")
    return row[0], (float(row[1]), float(row[2]))


def _routing_field(message: str) -> str | None:
    if "shift" in message:
        return "shift_minutes"
    if "road" in message:
        return "roads"
    return None


def plan_patrol_route(session: Session, user: User | None, data: Mapping, settings: PatrolSettings | None = None,
                      risk_settings: risk.RiskSettings | None = None) -> PatrolRoute:
    """Plan and store the route of one shift in a zone: start at the zone's station, stop 10-15 minutes
    at up to ``stops`` risky grids, chosen and ordered to collect the most risk weighted by time since
    the last visit, back within the shift. Travels on the stored roads when there are any, else in
    straight lines at ``speed_kmh``. Nothing is written when no route can be planned."""
    settings = settings or PatrolSettings()
    risk_settings = risk_settings or risk.RiskSettings()
    request = parse_route_request(data)
    zone = _check_zone(session, user, request.zone, write=True)
    station, start = _station_start(session, zone)
    candidates = route_candidates(session, zone, request.shift_start, request.stop_minutes, settings, risk_settings)
    network = road_network(session, settings)
    if network is not None:
        travel = functools.partial(road_network_travel, network, snap_max_m=settings.road_snap_m)
    else:
        travel = functools.partial(straight_line_travel, speed_kmh=settings.speed_kmh,
                                   metric_crs=settings.metric_crs)
    try:
        plan = plan_route(candidates, start, request.shift_minutes, travel, max_stops=request.stops,
                          time_limit_s=settings.route_time_limit_s)
    except RoutingError as exc:
        message = str(exc).replace("stop ", "grid ")
        raise ValidationError(message, _routing_field(message)) from exc
    info = candidates.set_index("id")
    stops = []
    for row in plan.stops.itertuples(index=False):
        arrival = request.shift_start + timedelta(minutes=row.arrival_minute)
        departure = request.shift_start + timedelta(minutes=row.departure_minute)
        hours = info.at[row.id, "hours_since_last_visit"]
        stops.append({
            "order": int(row.order), "grid_code": str(row.id), "name": info.at[row.id, "name"],
            "village_name": info.at[row.id, "village_name"], "lon": round(float(row.lon), 7),
            "lat": round(float(row.lat), 7), "arrival": arrival.astimezone(CHINA_TZ).isoformat(timespec="minutes"),
            "departure": departure.astimezone(CHINA_TZ).isoformat(timespec="minutes"),
            "arrival_minute": round(float(row.arrival_minute), 2),
            "travel_minutes": round(float(row.travel_minutes), 2),
            "service_minutes": float(row.service_minutes), "prize": round(float(row.prize), 4),
            "score": round(float(info.at[row.id, "score"]), 4), "risk_level": int(info.at[row.id, "risk_level"]),
            "hotspot": bool(info.at[row.id, "gi_bin"] > 0),
            "hours_since_last_visit": None if pd.isna(hours) else round(float(hours), 1)})
    path = plan.path if len(plan.path) >= 2 else [plan.path[0], plan.path[0]]
    route = PatrolRoute(
        zone_code=zone.code, station_code=station.code, shift_start=request.shift_start,
        shift_minutes=request.shift_minutes, stop_minutes=request.stop_minutes, requested_stops=request.stops,
        stops=stops, travel_mode=plan.travel_mode,
        speed_kmh=settings.speed_kmh if plan.travel_mode == "straight_line" else None,
        candidates=len(candidates), total_prize=float(plan.total_prize), total_minutes=float(plan.total_minutes),
        travel_minutes=float(plan.travel_minutes), solver_status=plan.status[:120],
        created_by=user.id if user is not None else None, start_lon=start[0], start_lat=start[1],
        geom=func.ST_SetSRID(func.ST_GeomFromWKB(func.decode(
            _line_wkb(np.array([p[0] for p in path]), np.array([p[1] for p in path])), "hex")), 4326))
    session.add(route)
    session.flush()
    audit(session, user.id if user is not None else None, "patrol.route_plan", "patrol_route", route.id,
          {"zone": zone.code, "stops": len(stops), "travel_mode": plan.travel_mode})
    return route


def get_route(session: Session, user: User | None, route_id: int) -> PatrolRoute:
    route = session.get(PatrolRoute, route_id)
    if route is None:
        raise NotFound(f"no route #{route_id}", "route")
    visible = visible_zone_codes(session, user)
    if visible is not None and route.zone_code not in visible:
        raise NotFound(f"no route #{route_id} in your area", "route")
    return route


def list_routes(session: Session, user: User | None, zone: str | None = None, limit: int = 20) -> list[dict]:
    visible, zone = _zone_filter(session, user, zone)
    query = select(PatrolRoute).order_by(PatrolRoute.created_at.desc(), PatrolRoute.id.desc()).limit(limit)
    if visible is not None:
        query = query.where(PatrolRoute.zone_code.in_(visible))
    if zone:
        query = query.where(PatrolRoute.zone_code == zone)
    return [{"id": r.id, "zone_code": r.zone_code, "shift_start": r.shift_start.astimezone(CHINA_TZ).isoformat(
        timespec="minutes"), "stops": len(r.stops), "travel_mode": r.travel_mode} for r in session.scalars(query)]


def route_path(session: Session, route: PatrolRoute) -> list[tuple[float, float]]:
    geojson = session.scalar(select(func.ST_AsGeoJSON(PatrolRoute.geom, 7)).where(PatrolRoute.id == route.id))
    return [tuple(c) for c in json.loads(geojson)["coordinates"]]


def route_json(session: Session, user: User | None, route: PatrolRoute) -> dict:
    zone = session.get(PatrolZone, route.zone_code)
    station = session.get(PoliceStation, route.station_code) if route.station_code else None
    body = {
        "id": route.id, "zone_code": route.zone_code, "zone_name": zone.name if zone else None,
        "station_code": route.station_code, "station_name": station.name if station else None,
        "start": [route.start_lon, route.start_lat],
        "shift_start": route.shift_start.astimezone(CHINA_TZ).isoformat(timespec="minutes"),
        "shift_minutes": route.shift_minutes, "stop_minutes": route.stop_minutes,
        "requested_stops": route.requested_stops, "candidates": route.candidates, "stops": route.stops,
        "travel_mode": route.travel_mode, "travel_mode_zh": TRAVEL_MODE_ZH[route.travel_mode],
        "speed_kmh": route.speed_kmh, "total_prize": round(route.total_prize, 4),
        "total_minutes": round(route.total_minutes, 2), "travel_minutes": round(route.travel_minutes, 2),
        "solver_status": route.solver_status, "created_at": route.created_at.isoformat() if route.created_at else None,
        "path": {"type": "LineString", "coordinates": [list(c) for c in route_path(session, route)]},
    }
    if is_named(user) and route.created_by is not None:
        creator = session.get(User, route.created_by)
        body["created_by"] = creator.username if creator else None
    return body


def route_grids_geojson(session: Session, route: PatrolRoute) -> dict:
    """The grids of the route's stops (code, name), slightly simplified, for its map."""
    codes = [s["grid_code"] for s in route.stops]
    rows = session.execute(select(Grid.code, Grid.name, func.ST_AsGeoJSON(
        func.ST_SimplifyPreserveTopology(Grid.geom, 2 / 111_000.0), 6).label("g")).where(Grid.code.in_(codes))).all()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r.code, "geometry": json.loads(r.g), "properties": {"code": r.code, "name": r.name}}
        for r in rows]}


def route_plan(session: Session, route: PatrolRoute) -> RoutePlan:
    """The stored route as the analysis' RoutePlan (for GPX)."""
    stops = pd.DataFrame([{"order": s["order"], "id": s["grid_code"], "lon": s["lon"], "lat": s["lat"],
                           "prize": s["prize"], "service_minutes": s["service_minutes"],
                           "travel_minutes": s["travel_minutes"], "arrival_minute": s["arrival_minute"],
                           "departure_minute": s["arrival_minute"] + s["service_minutes"]} for s in route.stops],
                         columns=["order", "id", "lon", "lat", "prize", "service_minutes", "travel_minutes",
                                  "arrival_minute", "departure_minute"])
    return RoutePlan(stops=stops, total_prize=route.total_prize, total_minutes=route.total_minutes,
                     travel_minutes=route.travel_minutes, service_minutes=float(stops["service_minutes"].sum()),
                     shift_minutes=route.shift_minutes, path=route_path(session, route),
                     travel_mode=route.travel_mode, status=route.solver_status,
                     start=(route.start_lon, route.start_lat), return_to_start=True)


def route_gpx(session: Session, route: PatrolRoute) -> str:
    """GPX 1.1: a waypoint per stop in visiting order (planned arrival as its time), the route through
    them, and the whole path as a track."""
    zone = session.get(PatrolZone, route.zone_code)
    local = route.shift_start.astimezone(CHINA_TZ)
    name = f"{zone.name if zone else route.zone_code} {local:%Y-%m-%d %H:%M} 巡逻路线 #{route.id}"
    return route_to_gpx(route_plan(session, route), name, start_time=route.shift_start)


__all__ = ["PatrolSettings", "TrackUpload", "CoverageResult", "RouteRequest", "upload_track", "upload_track_json",
           "list_tracks", "tracks_geojson", "load_fixes", "compute_coverage", "coverage_json", "coverage_geojson",
           "coverage_csv", "not_visited", "road_network", "import_roads", "plan_patrol_route", "get_route",
           "route_json", "route_gpx", "visible_zone_codes", "zone_choices", "parse_coverage_period",
           "default_shift_start", "hotspot_clusters"]
