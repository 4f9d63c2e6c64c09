"""GPS patrol tracks: read GPX / GeoJSON / CSV files and drop wrong fixes.

Tracks are plain :class:`pandas.DataFrame` objects with one row per fix and the
columns ``time`` (timezone-aware, UTC), ``lon`` and ``lat`` (WGS84 degrees).
Nothing here touches a database or the web layer.
"""
from __future__ import annotations

import functools
import io
import json
import math
import os
from collections.abc import Iterable
from typing import Any

import gpxpy
import gpxpy.gpx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

__all__ = ["TrackError", "read_track", "clean_fixes", "TRACK_COLUMNS", "DEFAULT_METRIC_CRS",
           "transformer", "project_geometries"]

#: Metric CRS used by default: CGCS2000 / 3-degree Gauss-Kruger CM 114E (fits Baofeng county).
DEFAULT_METRIC_CRS = "EPSG:4547"
#: Columns of a track as returned by :func:`read_track`.
TRACK_COLUMNS = ("time", "lon", "lat")

_FORMATS = ("gpx", "geojson", "csv")
_TIME_PROPERTIES = ("times", "coordTimes", "coordinateTimes")
_CSV_ALIASES = {
    "time": ("time", "timestamp", "datetime", "ts"),
    "lon": ("lon", "lng", "longitude"),
    "lat": ("lat", "latitude"),
}


class TrackError(ValueError):
    """A track file or table that cannot be used (empty, corrupt, no timestamps, bad columns)."""


@functools.lru_cache(maxsize=64)
def _cached_transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def transformer(src, dst) -> Transformer:
    """A cached ``always_xy`` :class:`pyproj.Transformer` from ``src`` to ``dst``.

    Building the WGS84 -> CGCS2000 transformation takes PROJ a few hundred milliseconds
    (it searches the datum operations), so every analysis function shares one per pair.

    Parameters
    ----------
    src, dst : str, int or pyproj.CRS
        Anything :meth:`pyproj.CRS.from_user_input` accepts.
    """
    return _cached_transformer(CRS.from_user_input(src).to_string(), CRS.from_user_input(dst).to_string())


def project_geometries(geoms, src, dst) -> np.ndarray:
    """Reproject an array of shapely geometries with the cached transformer.

    Parameters
    ----------
    geoms : array-like of shapely geometries (e.g. ``GeoSeries.to_numpy()``)
    src, dst : CRS-like

    Returns
    -------
    numpy.ndarray of shapely geometries in ``dst``.
    """
    geoms = np.asarray(geoms, dtype=object)
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geoms
    tr = transformer(src, dst)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


# --------------------------------------------------------------------------- reading


def read_track(source: str | os.PathLike | bytes | io.IOBase, fmt: str = "gpx", *,
               naive_tz: str = "UTC") -> pd.DataFrame:
    """Read one GPS track file into a table of timed fixes.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary/text file object
        A path to the file, or the file's content as bytes (e.g. an upload), or an
        open file object. A ``str`` is always taken as a path.
    fmt : {"gpx", "geojson", "csv"}
        File format.

        * ``"gpx"``: all track points of all tracks and segments (route points when the
          file has no track points), read with gpxpy.
        * ``"geojson"``: a FeatureCollection, Feature or bare geometry. LineString /
          MultiLineString features take their times from a ``times`` or ``coordTimes``
          property (one time per coordinate; nested per line for MultiLineString);
          Point features from a ``time`` (or ``timestamp``) property.
        * ``"csv"``: a header with ``time``, ``lon`` and ``lat`` columns (aliases
          ``timestamp``, ``lng``/``longitude``, ``latitude`` are accepted).
    naive_tz : str, default "UTC"
        Timezone assumed for timestamps that carry none (GPX times are UTC by its
        specification; a CSV exported in China may need ``"Asia/Shanghai"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``time`` (``datetime64[ns, UTC]``), ``lon``, ``lat`` (float64), in file
        order with a fresh ``RangeIndex``. Points that carry no timestamp are dropped;
        how many is kept in ``df.attrs["untimed_dropped"]``.

    Raises
    ------
    TrackError
        Unknown format, unreadable or empty file, corrupt content, missing columns, no
        point with a timestamp, unparsable times or coordinates out of range.

    Examples
    --------
    >>> csv = b"time,lon,lat\\n2024-05-01T08:00:00Z,113.05,33.87\\n"
    >>> read_track(csv, fmt="csv")[["lon", "lat"]].values.tolist()
    [[113.05, 33.87]]
    """
    if fmt not in _FORMATS:
        raise TrackError(f"unknown track format {fmt!r}; expected one of {', '.join(_FORMATS)}")
    raw = _read_bytes(source)
    if not raw.strip():
        raise TrackError("the track file is empty")
    if fmt == "gpx":
        times, lons, lats = _parse_gpx(raw)
    elif fmt == "geojson":
        times, lons, lats = _parse_geojson(raw)
    else:
        times, lons, lats = _parse_csv(raw)
    return _assemble(times, lons, lats, naive_tz=naive_tz)


def _read_bytes(source: Any) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise TrackError(f"cannot read track file {os.fspath(source)!r}: {exc.strerror or exc}") from exc
    if hasattr(source, "read"):
        data = source.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    raise TrackError(f"expected a path, bytes or a file object, got {type(source).__name__}")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrackError(f"the track file is not UTF-8 text (byte {exc.start})") from exc


def _parse_gpx(raw: bytes) -> tuple[list, list, list]:
    try:
        gpx = gpxpy.parse(_decode(raw))
    except TrackError:
        raise
    except Exception as exc:  # gpxpy raises GPXXMLSyntaxException, GPXException, ValueError...
        raise TrackError(f"not a valid GPX file: {exc}") from exc
    points = [p for t in gpx.tracks for s in t.segments for p in s.points]
    if not points:
        points = [p for r in gpx.routes for p in r.points]
    if not points:
        raise TrackError("the GPX file has no track or route points")
    return ([p.time for p in points], [p.longitude for p in points], [p.latitude for p in points])


def _parse_geojson(raw: bytes) -> tuple[list, list, list]:
    try:
        obj = json.loads(_decode(raw))
    except json.JSONDecodeError as exc:
        raise TrackError(f"not a valid GeoJSON file: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(obj, dict) or "type" not in obj:
        raise TrackError("not a GeoJSON object: the top level has no 'type'")
    if obj["type"] == "FeatureCollection":
        features = obj.get("features") or []
    elif obj["type"] == "Feature":
        features = [obj]
    else:
        features = [{"type": "Feature", "geometry": obj, "properties": {}}]
    times: list = []
    lons: list = []
    lats: list = []
    for n, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise TrackError(f"feature {n} is not an object")
        geom = feature.get("geometry") or {}
        props = feature.get("properties") or {}
        gtype = geom.get("type")
        coords = geom.get("coordinates")
        if gtype == "Point":
            t = props.get("time", props.get("timestamp"))
            _extend(times, lons, lats, [coords], [t], n)
        elif gtype == "MultiPoint":
            _extend(times, lons, lats, coords, _feature_times(props, len(coords or []), n), n)
        elif gtype == "LineString":
            _extend(times, lons, lats, coords, _feature_times(props, len(coords or []), n), n)
        elif gtype == "MultiLineString":
            lines = coords or []
            ftimes = _feature_times(props, sum(len(line) for line in lines), n, nested=len(lines))
            _extend(times, lons, lats, [c for line in lines for c in line], ftimes, n)
        elif gtype is None:
            continue
        else:
            raise TrackError(f"feature {n} has geometry type {gtype}; a track needs Points or LineStrings")
    if not times:
        raise TrackError("the GeoJSON file has no Point or LineString features")
    return times, lons, lats


def _feature_times(props: dict, n_coords: int, n: int, nested: int = 0) -> list:
    for key in _TIME_PROPERTIES:
        if key in props and props[key] is not None:
            values = props[key]
            if nested and values and all(isinstance(v, list) for v in values):
                values = [t for part in values for t in part]
            if not isinstance(values, list) or len(values) != n_coords:
                got = len(values) if isinstance(values, list) else type(values).__name__
                raise TrackError(f"feature {n}: property {key!r} has {got} times for {n_coords} coordinates")
            return values
    return [None] * n_coords


def _extend(times: list, lons: list, lats: list, coords: Iterable, ftimes: list, n: int) -> None:
    for c, t in zip(coords or [], ftimes):
        if not isinstance(c, (list, tuple)) or len(c) < 2:
            raise TrackError(f"feature {n} has a malformed coordinate {c!r}")
        lons.append(c[0])
        lats.append(c[1])
        times.append(t)


def _parse_csv(raw: bytes) -> tuple[list, list, list]:
    try:
        table = pd.read_csv(io.StringIO(_decode(raw)), dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise TrackError("the CSV file has no header or rows") from exc
    except pd.errors.ParserError as exc:
        raise TrackError(f"not a valid CSV file: {exc}") from exc
    lower = {str(c).strip().lower(): c for c in table.columns}
    picked = {}
    for want, aliases in _CSV_ALIASES.items():
        found = next((lower[a] for a in aliases if a in lower), None)
        if found is None:
            raise TrackError(f"the CSV file has no {want!r} column (columns: {', '.join(map(str, table.columns))}); "
                             "expected time,lon,lat")
        picked[want] = found
    if table.empty:
        raise TrackError("the CSV file has a header but no rows")
    times = [None if (isinstance(v, float) and math.isnan(v)) or v is None or str(v).strip() == "" else v
             for v in table[picked["time"]].tolist()]
    return times, table[picked["lon"]].tolist(), table[picked["lat"]].tolist()


def _assemble(times: list, lons: list, lats: list, *, naive_tz: str) -> pd.DataFrame:
    n_total = len(times)
    timed = [i for i, t in enumerate(times) if t is not None and not (isinstance(t, float) and math.isnan(t))]
    if not timed:
        raise TrackError(f"the track has {n_total} points but none carries a timestamp")
    parsed = [_parse_time(times[i], i, naive_tz) for i in timed]
    try:
        lon = np.asarray([float(lons[i]) for i in timed], dtype="float64")
        lat = np.asarray([float(lats[i]) for i in timed], dtype="float64")
    except (TypeError, ValueError) as exc:
        raise TrackError(f"a coordinate is not a number: {exc}") from exc
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        i = timed[int(np.flatnonzero(bad)[0])]
        raise TrackError(f"point {i} has coordinates out of range: lon={lons[i]!r}, lat={lats[i]!r}")
    df = pd.DataFrame({"time": pd.DatetimeIndex(parsed).as_unit("ns"), "lon": lon, "lat": lat})
    df.attrs["untimed_dropped"] = n_total - len(timed)
    return df


def _parse_time(value: Any, i: int, naive_tz: str) -> pd.Timestamp:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # epoch numbers: milliseconds when too large to be seconds (after year 5138)
            ts = pd.Timestamp(value, unit="ms" if abs(value) > 1e11 else "s")
        else:
            ts = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TrackError(f"point {i} has an unreadable time {value!r}") from exc
    if ts is pd.NaT:
        raise TrackError(f"point {i} has an unreadable time {value!r}")
    if ts.tzinfo is None:
        ts = ts.tz_localize(naive_tz)
    return ts.tz_convert("UTC")


# --------------------------------------------------------------------------- cleaning


def _require_fix_table(df: pd.DataFrame, what: str = "track") -> None:
    if not isinstance(df, pd.DataFrame):
        raise TrackError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in TRACK_COLUMNS if c not in df.columns]
    if missing:
        raise TrackError(f"{what} is missing column(s) {', '.join(missing)}; expected time, lon, lat")
    if df.empty:
        raise TrackError(f"{what} has no fixes")
    if not isinstance(df["time"].dtype, pd.DatetimeTZDtype):
        raise TrackError(f"{what} column 'time' must hold timezone-aware datetimes (got {df['time'].dtype}); "
                         "use read_track() or pd.to_datetime(..., utc=True)")
    if df["time"].isna().any():
        raise TrackError(f"{what} has {int(df['time'].isna().sum())} fix(es) without a time")
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(dtype="float64")
    if (~np.isfinite(lon) | ~np.isfinite(lat)).any():
        raise TrackError(f"{what} has fixes with missing or non-numeric lon/lat")


def clean_fixes(df: pd.DataFrame, *, max_speed_kmh: float = 120.0, boundary=None,
                metric_crs: str = DEFAULT_METRIC_CRS) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop wrong GPS fixes and count why each one went.

    The fixes are sorted by time (per ``track_id`` when that column exists) and then
    filtered in this order, each fix being counted under the first reason that hits it:

    1. ``duplicate_time``: a fix with the same timestamp as an earlier one of the same
       track (the first one in file order is kept);
    2. ``outside``: a fix not covered by ``boundary`` (points on the edge are inside);
    3. ``too_fast``: a fix that could only be reached from the last *kept* fix at more
       than ``max_speed_kmh`` (distance in ``metric_crs``). The first fix of a track is
       always kept, so a jump is judged against what came before it.

    Parameters
    ----------
    df : pandas.DataFrame
        Fixes with ``time`` (timezone-aware), ``lon``, ``lat``; an optional ``track_id``
        column makes each track be cleaned on its own. Other columns are carried along.
    max_speed_kmh : float, default 120
        Fastest believable speed between two kept fixes.
    boundary : shapely Polygon or MultiPolygon in EPSG:4326, optional
        Area the fixes must fall in (e.g. the county or the patrol zone, buffered).
    metric_crs : str, default "EPSG:4547"
        Metric CRS for distances.

    Returns
    -------
    clean : pandas.DataFrame
        The kept fixes, sorted, with a fresh index and the same columns.
    counts : dict
        ``{"duplicate_time": n, "outside": n, "too_fast": n, "kept": n}``; the four add
        up to ``len(df)``.

    Raises
    ------
    TrackError
        Missing columns, no fixes, naive or missing times, non-numeric coordinates,
        a non-positive speed or a boundary that is not a polygon.

    Examples
    --------
    >>> t = pd.to_datetime(["2024-05-01 08:00", "2024-05-01 08:00", "2024-05-01 08:01"], utc=True)
    >>> fixes = pd.DataFrame({"time": t, "lon": [113.0, 113.0, 113.5], "lat": [33.9, 33.9, 33.9]})
    >>> clean, counts = clean_fixes(fixes)
    >>> counts
    {'duplicate_time': 1, 'outside': 0, 'too_fast': 1, 'kept': 1}
    """
    _require_fix_table(df)
    if not (isinstance(max_speed_kmh, (int, float)) and max_speed_kmh > 0):
        raise TrackError(f"max_speed_kmh must be a positive number, got {max_speed_kmh!r}")
    if boundary is not None:
        if not isinstance(boundary, shapely.Geometry) or boundary.geom_type not in ("Polygon", "MultiPolygon"):
            raise TrackError("boundary must be a shapely Polygon or MultiPolygon in EPSG:4326")
        if boundary.is_empty:
            raise TrackError("boundary is an empty polygon")

    work = df.reset_index(drop=True)
    has_track = "track_id" in work.columns
    sort_keys = (["track_id", "time"] if has_track else ["time"])
    work = work.sort_values(sort_keys, kind="mergesort").reset_index(drop=True)
    keys = work["track_id"] if has_track else pd.Series(0, index=work.index)

    n = len(work)
    dup = work.assign(_k=keys.to_numpy()).duplicated(subset=["_k", "time"], keep="first").to_numpy()
    lon = pd.to_numeric(work["lon"]).to_numpy(dtype="float64")
    lat = pd.to_numeric(work["lat"]).to_numpy(dtype="float64")
    outside = np.zeros(n, dtype=bool)
    if boundary is not None:
        shapely.prepare(boundary)
        outside = ~shapely.contains_xy(boundary, lon, lat) & ~shapely.intersects_xy(boundary.boundary, lon, lat)
        outside &= ~dup
    candidate = ~dup & ~outside

    x, y = transformer("EPSG:4326", metric_crs).transform(lon, lat)
    seconds = (work["time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    max_mps = max_speed_kmh / 3.6
    too_fast = np.zeros(n, dtype=bool)
    track_codes = pd.factorize(keys)[0]
    # A fix is judged against the last *kept* fix, which makes this inherently
    # sequential; it is one pass over the fixes, not over pairs.
    last = -1
    last_track = -1
    for i in np.flatnonzero(candidate):
        if track_codes[i] != last_track:
            last, last_track = i, track_codes[i]
            continue
        dt = seconds[i] - seconds[last]
        dist = math.hypot(x[i] - x[last], y[i] - y[last])
        if dist > max_mps * dt:
            too_fast[i] = True
        else:
            last = i
    keep = candidate & ~too_fast
    counts = {
        "duplicate_time": int(dup.sum()),
        "outside": int(outside.sum()),
        "too_fast": int(too_fast.sum()),
        "kept": int(keep.sum()),
    }
    clean = work.loc[keep].reset_index(drop=True)
    clean.attrs = dict(df.attrs)
    return clean, counts
