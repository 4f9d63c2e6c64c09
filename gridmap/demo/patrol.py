"""Seeded synthetic patrol tracks for the demo county: two weeks of GPS fixes per patrol zone.

Pure: reads ``patrol_zones.geojson``, ``stations.geojson``, ``grids.geojson`` and ``county.geojson``
(and ``manifest.json``'s ``today``) written by :mod:`gridmap.demo.generator`, and writes
``tracks.csv.gz`` beside them. The same seed and inputs give a byte-identical file.

Every zone is patrolled by a unit of its station (``闹店派出所巡逻一组`` for zone Z1, ``…二组`` for
Z2, …; units, never people) once a day, and on some evenings a second time, over the 14 days
before ``today``. A patrol leaves the station, drives to a handful of grids, stops at each (most
stops 10-15 minutes, some shorter), and drives back; a fix is written every 30 seconds with a
few metres of GPS noise. Each zone has grids its patrols favour, grids they visit now and then,
and grids they never go to, so coverage maps show both well-covered and neglected grids. A few
fixes are wrong on purpose (jumps of several kilometres, repeated timestamps) so that the
cleaning on import has something to drop.

Run ``python -m gridmap.demo.patrol --dir geodata/baofeng``.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import zlib
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

from gridmap.demo.generator import to_metric, xy_to_lonlat

DEFAULT_TODAY = date(2026, 11, 1)
TRACKS_FILE = "tracks.csv.gz"
COLUMNS = ("track_id", "officer", "zone_code", "time", "lon", "lat")
DAYS = 14
FIX_SECONDS = 30
GPS_NOISE_M = 6.0
CHINA = timezone(timedelta(hours=8))
GROUP_NUMERALS = "一二三四五六七八九"
# Share of a zone's grids its patrols never visit, and of those they favour.
NEGLECTED_SHARE = 0.3
FAVOURED_SHARE = 0.35
# Per fix: chance of a wrong jump, and of a repeated timestamp.
JUMP_RATE = 0.002
DUPLICATE_RATE = 0.002


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent random stream per purpose (see :func:`gridmap.demo.generator.rng_for`)."""
    return np.random.default_rng([seed, zlib.crc32(("patrol:" + purpose).encode("utf-8"))])


def unit_name(station_name: str, zone_code: str) -> str:
    """``("闹店派出所", "410421102000-Z2")`` -> ``"闹店派出所巡逻二组"``."""
    number = int(zone_code.rsplit("Z", 1)[1])
    return f"{station_name}巡逻{GROUP_NUMERALS[number - 1]}组"


def read_today(directory: Path) -> date:
    manifest = directory / "manifest.json"
    if manifest.exists():
        return date.fromisoformat(json.loads(manifest.read_text(encoding="utf-8")).get("today", str(DEFAULT_TODAY)))
    return DEFAULT_TODAY


def _zone_grids(zones: pd.DataFrame, grids: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row indexes of the grids whose point on surface lies in each zone (metric geometries)."""
    points = shapely.point_on_surface(grids.geometry.to_numpy())
    grid_idx, zone_idx = shapely.STRtree(zones.geometry.to_numpy()).query(points, predicate="within")
    out = {}
    for k, code in enumerate(zones["code"]):
        out[code] = np.sort(grid_idx[zone_idx == k])
    return out


def _attention(distance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Weight of each grid in a zone's patrols: favoured grids lie nearer the station, neglected ones
    farther, but not strictly (a far grid may be favoured, a near one left out)."""
    n = len(distance)
    rank = np.argsort(np.argsort(distance + rng.normal(0, distance.std() * 0.6 + 1.0, n)))
    weight = np.ones(n)
    n_favoured = max(1, round(FAVOURED_SHARE * n))
    n_neglected = round(NEGLECTED_SHARE * n) if n >= 3 else 0
    weight[rank < n_favoured] = 6.0
    weight[rank >= n - n_neglected] = 0.0
    return weight


def _inside_point(grid, rng: np.random.Generator) -> np.ndarray:
    """A random point well inside a (metric) grid polygon, near its point on surface."""
    centre = np.asarray(shapely.get_coordinates(shapely.point_on_surface(grid))[0])
    inner = shapely.buffer(grid, -40.0)
    if inner.is_empty:
        return centre
    for _ in range(50):
        candidate = centre + rng.normal(0.0, 120.0, 2)
        if shapely.contains_xy(inner, *candidate):
            return candidate
    return centre


def _drive(start: np.ndarray, end: np.ndarray, speed_mps: float) -> np.ndarray:
    """Positions every FIX_SECONDS along the straight line (first excluded, last included)."""
    distance = float(np.hypot(*(end - start)))
    steps = max(1, int(np.ceil(distance / (speed_mps * FIX_SECONDS))))
    share = np.arange(1, steps + 1) / steps
    return start + share[:, None] * (end - start)


def _dwell(at: np.ndarray, minutes: float, rng: np.random.Generator) -> np.ndarray:
    """Positions during a stop: a slow walk of a few dozen metres around ``at``."""
    steps = max(1, int(round(minutes * 60 / FIX_SECONDS)))
    walk = np.cumsum(rng.normal(0.0, 4.0, (steps, 2)), axis=0)
    return at + walk - walk.mean(axis=0) * 0.5


def _patrol(station_xy: np.ndarray, stops: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Metric positions, one per fix, of one patrol: station -> stops -> station."""
    parts = [station_xy[None, :]]
    here = station_xy
    for target in stops:
        speed = rng.uniform(25, 40) / 3.6
        parts.append(_drive(here, target, speed))
        minutes = rng.uniform(10, 15) if rng.random() < 0.7 else rng.uniform(3, 8)
        parts.append(_dwell(target, minutes, rng))
        here = parts[-1][-1]
    parts.append(_drive(here, station_xy, rng.uniform(30, 45) / 3.6))
    xy = np.vstack(parts)
    return xy + rng.normal(0.0, GPS_NOISE_M, xy.shape)


def _order_nearest(start: np.ndarray, points: list[np.ndarray]) -> list[np.ndarray]:
    left = list(points)
    out = []
    here = start
    while left:
        k = int(np.argmin([np.hypot(*(p - here)) for p in left]))
        here = left.pop(k)
        out.append(here)
    return out


def _spoil(xy: np.ndarray, seconds: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add wrong fixes: a few jumps of 3-8 km, and a few fixes repeating the previous timestamp."""
    xy = xy.copy()
    jumps = np.flatnonzero(rng.random(len(xy)) < JUMP_RATE)
    jumps = jumps[(jumps > 0) & (jumps < len(xy) - 1)]
    angle = rng.uniform(0, 2 * np.pi, len(jumps))
    distance = rng.uniform(3000, 8000, len(jumps))
    xy[jumps] += np.column_stack([np.cos(angle), np.sin(angle)]) * distance[:, None]
    repeated = np.flatnonzero(rng.random(len(xy)) < DUPLICATE_RATE)
    repeated = repeated[repeated > 0]
    if len(repeated):
        extra_xy = xy[repeated] + rng.normal(0.0, 3.0, (len(repeated), 2))
        order = np.argsort(np.r_[np.arange(len(xy)), repeated], kind="stable")
        xy = np.vstack([xy, extra_xy])[order]
        seconds = np.r_[seconds, seconds[repeated]][order]
    return xy, seconds


def build_tracks(directory: Path, seed: int = 2023, today: date | None = None) -> pd.DataFrame:
    """Generate the demo tracks of every patrol zone.

    Parameters
    ----------
    directory : Path
        Holds the demo county's ``patrol_zones.geojson``, ``stations.geojson``, ``grids.geojson``
        and ``manifest.json``.
    seed : int, default 2023
    today : date, optional
        Tracks cover the 14 days before it; defaults to the manifest's ``today``.

    Returns
    -------
    pandas.DataFrame
        ``track_id``, ``officer`` (a unit name), ``zone_code``, ``time`` (ISO 8601 with the
        +08:00 offset), ``lon``, ``lat``; one row per fix, grouped by track, in time order
        within a track (a repeated timestamp follows the fix it repeats).
    """
    directory = Path(directory)
    today = today or read_today(directory)
    zones = pyogrio.read_dataframe(directory / "patrol_zones.geojson").sort_values("code", ignore_index=True)
    stations = pyogrio.read_dataframe(directory / "stations.geojson").set_index("code")
    grids = pyogrio.read_dataframe(directory / "grids.geojson").sort_values("code", ignore_index=True)
    zones["geometry"] = to_metric(zones.geometry.to_numpy())
    grids["geometry"] = to_metric(grids.geometry.to_numpy())
    grid_geoms = grids.geometry.to_numpy()
    in_zone = _zone_grids(zones, grids)
    first_day = today - timedelta(days=DAYS)

    frames = []
    for zone in zones.itertuples(index=False):
        rng = rng_for(seed, zone.code)
        station = stations.loc[zone.station_code]
        station_xy = np.asarray(shapely.get_coordinates(to_metric(station.geometry))[0])
        members = in_zone[zone.code]
        if len(members) == 0:
            continue
        centres = shapely.get_coordinates(shapely.point_on_surface(grid_geoms[members]))
        weight = _attention(np.hypot(*(centres - station_xy).T), rng)
        if weight.sum() == 0:
            weight[:] = 1.0
        unit = unit_name(station["name"], zone.code)
        for day in range(DAYS):
            when = first_day + timedelta(days=day)
            shifts = [("d", rng.uniform(8.5, 10.0), int(rng.integers(4, 8)))]
            if rng.random() < 0.5:
                shifts.append(("n", rng.uniform(19.5, 21.0), int(rng.integers(2, 5))))
            for label, hour, n_stops in shifts:
                p = weight / weight.sum()
                n_stops = min(n_stops, int((p > 0).sum()))
                chosen = rng.choice(len(members), size=n_stops, replace=False, p=p)
                stops = _order_nearest(station_xy, [_inside_point(grid_geoms[members[k]], rng) for k in chosen])
                xy = _patrol(station_xy, stops, rng)
                start = datetime.combine(when, time(0), CHINA) + timedelta(hours=hour)
                start = start.replace(second=0, microsecond=0)
                seconds = np.arange(len(xy)) * FIX_SECONDS
                xy, seconds = _spoil(xy, seconds, rng)
                lonlat = xy_to_lonlat(xy)
                times = pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")
                frames.append(pd.DataFrame({
                    "track_id": f"{zone.code}-{when:%Y%m%d}-{label}", "officer": unit, "zone_code": zone.code,
                    "time": times.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                    "lon": np.round(lonlat[:, 0], 7), "lat": np.round(lonlat[:, 1], 7)}))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def write_tracks(path: Path, tracks: pd.DataFrame) -> int:
    """Write the tracks as gzip-compressed UTF-8 CSV with a fixed gzip header (reproducible bytes)."""
    text = tracks.to_csv(index=False, lineterminator="\n", float_format="%.7f")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as packed:
        packed.write(text.encode("utf-8"))
    Path(path).write_bytes(buffer.getvalue())
    return len(tracks)


def build_demo_tracks(directory: Path, seed: int = 2023) -> dict[str, int]:
    """Write ``tracks.csv.gz`` into ``directory``; returns the number of fixes and tracks."""
    tracks = build_tracks(directory, seed)
    fixes = write_tracks(Path(directory) / TRACKS_FILE, tracks)
    return {"track_fixes": fixes, "tracks": int(tracks["track_id"].nunique())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("geodata/baofeng"))
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args(argv)
    for name, n in build_demo_tracks(args.dir, args.seed).items():
        print(f"{name}: {n}")


if __name__ == "__main__":
    main()
