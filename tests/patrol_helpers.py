"""Shared by the patrol tests: places in the demo zones, track files in each format, row counts."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import gpxpy
import gpxpy.gpx
from sqlalchemy import text

from gridmap.services.incidents import CHINA_TZ

ZONE = "410421102000-Z1"        # 闹店派出所第1巡区 (holds the station)
OTHER_ZONE = "410421102000-Z2"  # 闹店派出所第2巡区
FAR_ZONE = "410421100000-Z1"    # 城关派出所第1巡区, another town
# The demo's tracks end on 2026-10-31; this day has none, so hand-made tracks are the only ones.
QUIET_DAY = datetime(2026, 11, 10, tzinfo=CHINA_TZ)


def grid_points(session, zone: str = ZONE) -> list[tuple[str, float, float]]:
    """(grid code, lon, lat) of a point well inside each grid of the zone, by grid code."""
    return [tuple(r) for r in session.execute(text(
        "SELECT g.code, ST_X(p), ST_Y(p) FROM (SELECT code, geom, ST_PointOnSurface(geom) p FROM grids) g "
        "JOIN patrol_zones z ON ST_Within(g.p, z.geom) WHERE z.code = :z ORDER BY g.code"), {"z": zone})]


def station_point(session, zone: str = ZONE) -> tuple[float, float]:
    return tuple(session.execute(text(
        "SELECT ST_X(s.geom), ST_Y(s.geom) FROM police_stations s JOIN patrol_zones z ON z.station_code = s.code "
        "WHERE z.code = :z"), {"z": zone}).one())


def stay(lon: float, lat: float, start: datetime, minutes: float, step_s: int = 30) -> list[tuple]:
    """Fixes standing still at (lon, lat) from ``start`` for ``minutes``, every ``step_s`` seconds."""
    n = int(minutes * 60 / step_s) + 1
    return [(start + timedelta(seconds=i * step_s), lon + (i % 3) * 1e-6, lat) for i in range(n)]


def gpx_bytes(fixes: list[tuple], with_times: bool = True) -> bytes:
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack(name="巡逻")
    segment = gpxpy.gpx.GPXTrackSegment()
    for t, lon, lat in fixes:
        segment.points.append(gpxpy.gpx.GPXTrackPoint(latitude=lat, longitude=lon, time=t if with_times else None))
    track.segments.append(segment)
    gpx.tracks.append(track)
    return gpx.to_xml().encode("utf-8")


def geojson_bytes(fixes: list[tuple]) -> bytes:
    feature = {"type": "Feature", "properties": {"times": [t.isoformat() for t, _, _ in fixes]},
               "geometry": {"type": "LineString", "coordinates": [[lon, lat] for _, lon, lat in fixes]}}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode("utf-8")


def csv_bytes(fixes: list[tuple], naive_local: bool = True) -> bytes:
    """CSV time,lon,lat; times written without an offset (Beijing time) unless ``naive_local`` is False."""
    out = io.StringIO()
    out.write("time,lon,lat\n")
    for t, lon, lat in fixes:
        stamp = t.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") if naive_local else t.isoformat()
        out.write(f"{stamp},{lon!r},{lat!r}\n")
    return out.getvalue().encode("utf-8")


def patrol_counts(session) -> tuple[int, int, int]:
    """(tracks, fixes, routes) stored."""
    return tuple(session.execute(text(
        "SELECT (SELECT count(*) FROM patrol_tracks), (SELECT count(*) FROM patrol_track_points), "
        "(SELECT count(*) FROM patrol_routes)")).one())
