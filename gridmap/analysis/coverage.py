"""Patrol coverage: visits, dwell time and gaps per grid or hot spot, and per-zone figures.

Inputs are cleaned tracks (see :func:`gridmap.analysis.tracks.clean_fixes`): a
:class:`pandas.DataFrame` with one row per GPS fix and the columns ``track_id``,
``time`` (timezone-aware), ``lon``, ``lat`` (EPSG:4326) and, where known,
``officer`` and ``zone_code``. Polygons come as GeoDataFrames in any CRS; all
distances are computed in a metric CRS (default EPSG:4547).

Definitions used throughout
---------------------------
visit
    A run of consecutive fixes of one track that all lie within ``visit_distance_m``
    of the polygon (inside counts as distance 0). The run ends at the first fix that
    is farther away, or where two consecutive fixes are more than ``gap_minutes``
    apart (the device was off, or the officer left and came back unseen). A visit
    lasts from its first to its last fix, so a single-fix drive-by is a visit of
    0 minutes. Polygons that tile (grids) share edges, so a fix near an edge can be
    part of visits to two neighbours.
patrol time
    The sum over consecutive fixes of one track of the time between them, leaving out
    intervals longer than ``gap_minutes``: time the officer was out with a working
    device. Each interval is placed at its first fix.
"""
from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap.analysis.tracks import DEFAULT_METRIC_CRS, project_geometries, transformer

__all__ = [
    "CoverageError",
    "find_visits",
    "polygon_coverage",
    "grid_coverage",
    "hotspot_coverage",
    "shift_coverage",
    "zone_coverage",
    "daily_patrol_minutes",
    "patrol_intervals",
]

_TRACK_REQUIRED = ("track_id", "time", "lon", "lat")
_NS_PER_MIN = 60 * 10**9


class CoverageError(ValueError):
    """Inputs that coverage cannot be computed from (columns, CRS, times, parameters)."""


# --------------------------------------------------------------------------- input checks


def _timestamp(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise CoverageError(f"{name} is not a date/time: {value!r}") from exc
    if ts is pd.NaT:
        raise CoverageError(f"{name} is missing")
    if ts.tzinfo is None:
        raise CoverageError(f"{name} must be timezone-aware (e.g. '2024-05-01T08:00+08:00'), got {value!r}")
    return ts.tz_convert("UTC")


def _period(start, end, now) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """Return start, end, now and the effective end min(end, now)."""
    start = _timestamp(start, "start")
    end = _timestamp(end, "end")
    if end <= start:
        raise CoverageError(f"the period is empty: end {end} is not after start {start}")
    now = end if now is None else _timestamp(now, "now")
    if now <= start:
        raise CoverageError(f"now ({now}) is not after the period start ({start})")
    return start, end, now, min(end, now)


def _check_tracks(tracks: pd.DataFrame, required: Sequence[str] = _TRACK_REQUIRED) -> pd.DataFrame:
    if not isinstance(tracks, pd.DataFrame):
        raise CoverageError(f"tracks must be a pandas DataFrame, got {type(tracks).__name__}")
    missing = [c for c in required if c not in tracks.columns]
    if missing:
        raise CoverageError(f"tracks are missing column(s) {', '.join(missing)}; "
                            f"expected {', '.join(required)}")
    if not isinstance(tracks["time"].dtype, pd.DatetimeTZDtype):
        raise CoverageError(f"tracks column 'time' must be timezone-aware datetimes, got {tracks['time'].dtype}")
    if tracks["time"].isna().any():
        raise CoverageError("tracks have fixes without a time")
    lon = pd.to_numeric(tracks["lon"], errors="coerce")
    lat = pd.to_numeric(tracks["lat"], errors="coerce")
    if lon.isna().any() or lat.isna().any():
        raise CoverageError("tracks have fixes with missing or non-numeric lon/lat")
    out = tracks.assign(lon=lon.astype("float64"), lat=lat.astype("float64"),
                        time=tracks["time"].dt.tz_convert("UTC"))
    return out.sort_values(["track_id", "time"], kind="mergesort").reset_index(drop=True)


def _check_polygons(polygons: gpd.GeoDataFrame, id_column: str | None, what: str,
                    metric_crs: str) -> tuple[pd.Index, np.ndarray]:
    """Return the polygon ids and their geometries in the metric CRS."""
    if not isinstance(polygons, gpd.GeoDataFrame):
        raise CoverageError(f"{what} must be a GeoDataFrame, got {type(polygons).__name__}")
    if polygons.crs is None:
        raise CoverageError(f"{what} have no CRS; set it (storage CRS is EPSG:4326)")
    if id_column is not None and id_column not in polygons.columns:
        raise CoverageError(f"{what} have no {id_column!r} column")
    ids = pd.Index(polygons.index if id_column is None else polygons[id_column], name=id_column or "id")
    if ids.has_duplicates:
        raise CoverageError(f"{what} have duplicate ids: {', '.join(map(str, ids[ids.duplicated()].unique()[:5]))}")
    geoms = polygons.geometry
    if geoms.isna().any() or geoms.is_empty.any():
        raise CoverageError(f"{what} have missing or empty geometries")
    kinds = set(geoms.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise CoverageError(f"{what} must be polygons, got {', '.join(sorted(kinds))}")
    return ids, project_geometries(geoms.to_numpy(), polygons.crs, metric_crs)


def _positive(value, name: str) -> float:
    if not isinstance(value, (int, float, np.integer, np.floating)) or not value >= 0:
        raise CoverageError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _metric_xy(lon: np.ndarray, lat: np.ndarray, metric_crs: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = transformer("EPSG:4326", metric_crs).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


# --------------------------------------------------------------------------- visits


def _visits(tr: pd.DataFrame, ids: pd.Index, geoms: np.ndarray, *, id_name: str,
            visit_distance_m: float, gap_minutes: float, metric_crs: str) -> pd.DataFrame:
    """Visits from sorted, checked fixes (``tr``) to metric polygons (``geoms``)."""
    extra = [c for c in ("officer", "zone_code") if c in tr.columns]
    columns = [id_name, "track_id", *extra, "start", "end", "dwell_minutes", "fixes"]
    if tr.empty:
        return _empty_visits(columns, ids)
    x, y = _metric_xy(tr["lon"].to_numpy(), tr["lat"].to_numpy(), metric_crs)
    tree = shapely.STRtree(geoms)
    fix_idx, poly_idx = tree.query(shapely.points(x, y), predicate="dwithin", distance=visit_distance_m)
    if len(fix_idx) == 0:
        return _empty_visits(columns, ids)
    order = np.lexsort((fix_idx, poly_idx))
    fix_idx, poly_idx = fix_idx[order], poly_idx[order]
    track_code = pd.factorize(tr["track_id"])[0][fix_idx]
    t_ns = tr["time"].to_numpy(dtype="datetime64[ns]").astype("int64")[fix_idx]
    new = np.ones(len(fix_idx), dtype=bool)
    new[1:] = ((poly_idx[1:] != poly_idx[:-1]) | (fix_idx[1:] != fix_idx[:-1] + 1)
               | (track_code[1:] != track_code[:-1])
               | (t_ns[1:] - t_ns[:-1] > gap_minutes * _NS_PER_MIN))
    visit_id = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(fix_idx) - 1]
    first_fix = fix_idx[first]
    out = pd.DataFrame({id_name: ids.to_numpy()[poly_idx[first]]})
    out["track_id"] = tr["track_id"].to_numpy()[first_fix]
    for c in extra:
        out[c] = tr[c].to_numpy()[first_fix]
    out["start"] = pd.to_datetime(t_ns[first], utc=True)
    out["end"] = pd.to_datetime(t_ns[last], utc=True)
    out["dwell_minutes"] = (t_ns[last] - t_ns[first]) / _NS_PER_MIN
    out["fixes"] = np.bincount(visit_id)
    return out.sort_values([id_name, "start", "track_id"], kind="mergesort").reset_index(drop=True)


def _empty_visits(columns: list[str], ids: pd.Index) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    out[columns[0]] = pd.Series(dtype=ids.dtype)
    out["start"] = pd.Series(dtype="datetime64[ns, UTC]")
    out["end"] = pd.Series(dtype="datetime64[ns, UTC]")
    out["dwell_minutes"] = pd.Series(dtype="float64")
    out["fixes"] = pd.Series(dtype="int64")
    return out


def find_visits(tracks: pd.DataFrame, polygons: gpd.GeoDataFrame, *, id_column: str | None = "code",
                start=None, end=None, visit_distance_m: float = 50.0, gap_minutes: float = 10.0,
                metric_crs: str = DEFAULT_METRIC_CRS) -> pd.DataFrame:
    """List every patrol visit to every polygon.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Cleaned fixes with ``track_id``, ``time`` (tz-aware), ``lon``, ``lat``; ``officer``
        and ``zone_code`` are carried into the result when present.
    polygons : geopandas.GeoDataFrame
        Grids, hot spots or any polygons, with a CRS.
    id_column : str or None, default "code"
        Column naming each polygon; ``None`` uses the index.
    start, end : datetime-like, tz-aware, optional
        Only fixes with ``start <= time <= end`` are used.
    visit_distance_m : float, default 50
        A fix within this distance of the polygon counts as being there.
    gap_minutes : float, default 10
        Consecutive fixes farther apart than this split a visit.
    metric_crs : str, default "EPSG:4547"

    Returns
    -------
    pandas.DataFrame
        One row per visit: the polygon id (column named ``id_column``, or ``"id"``),
        ``track_id``, [``officer``, ``zone_code``], ``start``, ``end`` (UTC),
        ``dwell_minutes`` (float) and ``fixes`` (count), sorted by polygon and start.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> grids = gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(113.0, 33.9, 113.01, 33.91)], crs=4326)
    >>> t = pd.date_range("2024-05-01 08:00", periods=3, freq="5min", tz="UTC")
    >>> fixes = pd.DataFrame({"track_id": 1, "time": t, "lon": 113.005, "lat": 33.905})
    >>> find_visits(fixes, grids)[["code", "dwell_minutes", "fixes"]].values.tolist()
    [['A', 10.0, 3]]
    """
    visit_distance_m = _positive(visit_distance_m, "visit_distance_m")
    gap_minutes = _positive(gap_minutes, "gap_minutes")
    tr = _check_tracks(tracks)
    ids, geoms = _check_polygons(polygons, id_column, "polygons", metric_crs)
    if start is not None:
        tr = tr[tr["time"] >= _timestamp(start, "start")]
    if end is not None:
        tr = tr[tr["time"] <= _timestamp(end, "end")]
    return _visits(tr.reset_index(drop=True), ids, geoms, id_name=ids.name,
                   visit_distance_m=visit_distance_m, gap_minutes=gap_minutes, metric_crs=metric_crs)


def _summarise(visits: pd.DataFrame, ids: pd.Index, *, start: pd.Timestamp, now: pd.Timestamp,
               window_end: pd.Timestamp) -> pd.DataFrame:
    key = ids.name
    out = pd.DataFrame(index=ids)
    g = visits.groupby(key, sort=False)
    out["visits"] = g.size().reindex(ids, fill_value=0).astype("int64")
    out["dwell_minutes"] = g["dwell_minutes"].sum().reindex(ids, fill_value=0.0)
    out["mean_dwell_minutes"] = g["dwell_minutes"].mean().reindex(ids)
    deterrent = visits["dwell_minutes"].between(10.0, 15.0)
    out["share_10_15"] = deterrent.groupby(visits[key], sort=False).mean().reindex(ids)
    last_end = g["end"].max().reindex(ids)
    out["last_visit_end"] = last_end
    out["hours_since_last_visit"] = (now - last_end).dt.total_seconds() / 3600.0

    # Longest stretch without anyone there: visits of several officers may overlap, so
    # each gap is measured from the latest end so far (a running max), not the previous end.
    v = visits.sort_values([key, "start"], kind="mergesort")
    end_ns = v["end"].to_numpy(dtype="datetime64[ns]").astype("int64")
    start_ns = v["start"].to_numpy(dtype="datetime64[ns]").astype("int64")
    running_end = pd.Series(end_ns, index=v.index).groupby(v[key].to_numpy(), sort=False).cummax().to_numpy()
    prev_end = pd.Series(running_end).groupby(v[key].to_numpy(), sort=False).shift(1)
    prev_end = prev_end.fillna(start.value).clip(lower=start.value).to_numpy(dtype="int64")
    inner_gap = pd.Series(np.maximum(start_ns - prev_end, 0), index=v.index)
    longest_inner = inner_gap.groupby(v[key].to_numpy(), sort=False).max().reindex(ids)
    tail = (window_end.value - pd.Series(running_end).groupby(v[key].to_numpy(), sort=False).max()).clip(lower=0)
    tail = tail.reindex(ids)
    whole = window_end.value - start.value
    longest = np.fmax(longest_inner.to_numpy(dtype="float64"), tail.to_numpy(dtype="float64"))
    longest = np.where(out["visits"].to_numpy() == 0, whole, longest)
    out["longest_gap_hours"] = longest / 3.6e12
    return out


def polygon_coverage(tracks: pd.DataFrame, polygons: gpd.GeoDataFrame, *, start, end, now=None,
                     id_column: str | None = "code", visit_distance_m: float = 50.0,
                     gap_minutes: float = 10.0, metric_crs: str = DEFAULT_METRIC_CRS) -> pd.DataFrame:
    """Patrol coverage of each polygon over a period.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Cleaned fixes (``track_id``, ``time``, ``lon``, ``lat``).
    polygons : geopandas.GeoDataFrame
        Polygons with a CRS and an id column (or index, with ``id_column=None``).
    start, end : datetime-like, tz-aware
        The period. Fixes outside ``[start, min(end, now)]`` are ignored.
    now : datetime-like, tz-aware, optional
        The moment the report is made; defaults to ``end``. When ``now`` falls inside the
        period, the period is treated as running only up to ``now``.
    id_column, visit_distance_m, gap_minutes, metric_crs
        As in :func:`find_visits`.

    Returns
    -------
    pandas.DataFrame
        Indexed by polygon id, one row for every polygon (visited or not):

        ``visits`` (int)
            number of visits;
        ``dwell_minutes`` (float)
            total time there, 0 when never visited;
        ``mean_dwell_minutes`` (float)
            average visit length (NaN when never visited); the single visits are in
            :func:`find_visits`;
        ``share_10_15`` (float)
            share of visits lasting 10 to 15 minutes inclusive, the stops that deter best
            (NaN when never visited);
        ``last_visit_end`` (datetime64, UTC)
            end of the latest visit (NaT when never visited);
        ``hours_since_last_visit`` (float)
            ``now - last_visit_end`` in hours (NaN when never visited in the period);
        ``longest_gap_hours`` (float)
            longest time in ``[start, min(end, now)]`` with no visit, counting from the
            period start to the first visit and from the last visit to the end; the whole
            period when never visited.

    Raises
    ------
    CoverageError
        Missing columns, naive times, an empty period, polygons without CRS, duplicate ids
        or non-polygon geometries, negative parameters.
    """
    start, end, now, window_end = _period(start, end, now)
    visits = find_visits(tracks, polygons, id_column=id_column, start=start, end=window_end,
                         visit_distance_m=visit_distance_m, gap_minutes=gap_minutes, metric_crs=metric_crs)
    ids = pd.Index(polygons.index if id_column is None else polygons[id_column], name=id_column or "id")
    return _summarise(visits, ids, start=start, now=now, window_end=window_end)


def grid_coverage(tracks: pd.DataFrame, grids: gpd.GeoDataFrame, *, start, end, now=None,
                  visit_distance_m: float = 50.0, gap_minutes: float = 10.0,
                  metric_crs: str = DEFAULT_METRIC_CRS) -> pd.DataFrame:
    """Patrol coverage per grid: :func:`polygon_coverage` keyed by the grids' ``code``.

    Returns
    -------
    pandas.DataFrame
        Indexed by grid ``code``; columns as in :func:`polygon_coverage`.
    """
    return polygon_coverage(tracks, grids, start=start, end=end, now=now, id_column="code",
                            visit_distance_m=visit_distance_m, gap_minutes=gap_minutes, metric_crs=metric_crs)


def hotspot_coverage(tracks: pd.DataFrame, hotspots: gpd.GeoDataFrame, *, start, end, now=None,
                     id_column: str | None = None, visit_distance_m: float = 50.0, gap_minutes: float = 10.0,
                     metric_crs: str = DEFAULT_METRIC_CRS) -> pd.DataFrame:
    """Patrol coverage per hot-spot polygon (any polygons; keyed by the index by default).

    Returns
    -------
    pandas.DataFrame
        Indexed by hot-spot id; columns as in :func:`polygon_coverage`.
    """
    return polygon_coverage(tracks, hotspots, start=start, end=end, now=now, id_column=id_column,
                            visit_distance_m=visit_distance_m, gap_minutes=gap_minutes, metric_crs=metric_crs)


# --------------------------------------------------------------------------- patrol time


def patrol_intervals(tracks: pd.DataFrame, *, gap_minutes: float = 10.0, start=None, end=None) -> pd.DataFrame:
    """Intervals between consecutive fixes that count as patrol time.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Cleaned fixes (``track_id``, ``time``, ``lon``, ``lat``; ``zone_code`` and
        ``officer`` are carried along when present).
    gap_minutes : float, default 10
        Intervals longer than this are not patrol time (device off, break).
    start, end : datetime-like, tz-aware, optional
        Clip the intervals to this window.

    Returns
    -------
    pandas.DataFrame
        One row per counted interval: ``track_id``, [``zone_code``, ``officer``], ``lon``,
        ``lat`` (of the interval's first fix), ``start``, ``end`` (clipped) and ``minutes``.
    """
    gap_minutes = _positive(gap_minutes, "gap_minutes")
    tr = _check_tracks(tracks)
    t = tr["time"].to_numpy(dtype="datetime64[ns]").astype("int64")
    same = tr["track_id"].to_numpy()[1:] == tr["track_id"].to_numpy()[:-1]
    dt = t[1:] - t[:-1]
    ok = same & (dt <= gap_minutes * _NS_PER_MIN) & (dt > 0)
    idx = np.flatnonzero(ok)
    t0, t1 = t[idx], t[idx + 1]
    if start is not None:
        t0 = np.maximum(t0, _timestamp(start, "start").value)
    if end is not None:
        t1 = np.minimum(t1, _timestamp(end, "end").value)
    keep = t1 > t0
    idx, t0, t1 = idx[keep], t0[keep], t1[keep]
    cols = ["track_id"] + [c for c in ("zone_code", "officer") if c in tr.columns] + ["lon", "lat"]
    out = tr.iloc[idx][cols].reset_index(drop=True)
    out["start"] = pd.to_datetime(t0, utc=True)
    out["end"] = pd.to_datetime(t1, utc=True)
    out["minutes"] = (t1 - t0) / _NS_PER_MIN
    return out


def daily_patrol_minutes(tracks: pd.DataFrame, *, start, end, tz: str = "Asia/Shanghai",
                         gap_minutes: float = 10.0) -> pd.DataFrame:
    """Patrol minutes per zone and local calendar day (the 见警率 series).

    Each interval is counted on the local day its first fix falls in.

    Returns
    -------
    pandas.DataFrame
        Columns ``zone_code``, ``date`` (local ``datetime.date``), ``minutes``; every day
        of the period appears for every zone that has tracks (0 when nobody was out).
    """
    start, end, _, _ = _period(start, end, None)
    tr = _check_tracks(tracks, (*_TRACK_REQUIRED, "zone_code"))
    iv = patrol_intervals(tr, gap_minutes=gap_minutes, start=start, end=end)
    days = pd.date_range(start.tz_convert(tz).normalize(), (end - pd.Timedelta(1, "ns")).tz_convert(tz).normalize(),
                         freq="D").date
    zones = pd.unique(tr["zone_code"])
    full = pd.MultiIndex.from_product([zones, days], names=["zone_code", "date"])
    local_day = iv["start"].dt.tz_convert(tz).dt.date
    sums = iv.groupby([iv["zone_code"], local_day.rename("date")])["minutes"].sum()
    return sums.reindex(full, fill_value=0.0).rename("minutes").reset_index()


# --------------------------------------------------------------------------- zones


def _grid_zones(grids: gpd.GeoDataFrame, zones: gpd.GeoDataFrame | None, metric_crs: str) -> pd.Series:
    """Zone code of each grid (index: grid code)."""
    if zones is None:
        if "zone_code" not in grids.columns:
            raise CoverageError("grids need a 'zone_code' column, or pass zones (a GeoDataFrame with "
                                "'zone_code' and polygons) to place each grid in a zone")
        return pd.Series(grids["zone_code"].to_numpy(), index=pd.Index(grids["code"], name="code"))
    zone_ids, zone_geoms = _check_polygons(zones, "zone_code", "zones", metric_crs)
    grid_points = shapely.point_on_surface(project_geometries(grids.geometry.to_numpy(), grids.crs, metric_crs))
    g_idx, z_idx = shapely.STRtree(zone_geoms).query(grid_points, predicate="within")
    zone_of = pd.Series(np.asarray(zone_ids)[z_idx], index=g_idx)
    zone_of = zone_of[~zone_of.index.duplicated()]  # a point on a shared edge: first zone wins
    return pd.Series(zone_of.reindex(range(len(grids))).to_numpy(), index=pd.Index(grids["code"], name="code"))


def _risk_columns(grids: gpd.GeoDataFrame, high_risk_threshold: float) -> tuple[pd.Series, pd.Series]:
    if "risk_level" not in grids.columns:
        raise CoverageError("grids need a numeric 'risk_level' column to tell high-risk grids")
    level = pd.to_numeric(grids["risk_level"], errors="coerce")
    if level.isna().any():
        raise CoverageError("grids have missing or non-numeric risk_level values")
    weight = level
    if "score" in grids.columns:
        weight = pd.to_numeric(grids["score"], errors="coerce")
        if weight.isna().any() or (weight < 0).any():
            raise CoverageError("grids have missing, non-numeric or negative score values")
    index = pd.Index(grids["code"], name="code")
    high = pd.Series((level >= high_risk_threshold).to_numpy(), index=index)
    return high, pd.Series(weight.to_numpy(dtype="float64"), index=index)


def shift_coverage(tracks: pd.DataFrame, grids: gpd.GeoDataFrame, shifts: Sequence[tuple], *,
                   high_risk_threshold: float = 3, zones: gpd.GeoDataFrame | None = None,
                   visit_distance_m: float = 50.0, gap_minutes: float = 10.0,
                   metric_crs: str = DEFAULT_METRIC_CRS) -> pd.DataFrame:
    """Share of each zone's high-risk grids visited in each shift.

    A grid counts as visited in a shift when one of its visits (by any officer) overlaps
    the shift.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Cleaned fixes.
    grids : geopandas.GeoDataFrame
        ``code``, polygons, numeric ``risk_level`` and a ``zone_code`` column unless
        ``zones`` is given.
    shifts : sequence of (start, end)
        Tz-aware shift windows.
    high_risk_threshold : float, default 3
        Grids with ``risk_level >= high_risk_threshold`` are high-risk.
    zones : geopandas.GeoDataFrame, optional
        Patrol zones (``zone_code``, polygons); each grid goes to the zone holding its
        point on surface.

    Returns
    -------
    pandas.DataFrame
        One row per zone and shift: ``zone_code``, ``shift_start``, ``shift_end``,
        ``high_risk_grids``, ``visited`` and ``share`` (NaN for a zone without high-risk grids).
    """
    windows = _shifts(shifts)
    ids, geoms = _check_polygons(grids, "code", "grids", metric_crs)
    high, _ = _risk_columns(grids, high_risk_threshold)
    zone_of = _grid_zones(grids, zones, metric_crs)
    tr = _check_tracks(tracks)
    lo = min(s for s, _ in windows)
    hi = max(e for _, e in windows)
    tr = tr[(tr["time"] >= lo) & (tr["time"] <= hi)].reset_index(drop=True)
    hr_ids = ids[high.to_numpy()]
    visits = _visits(tr, ids[high.to_numpy()], geoms[high.to_numpy()], id_name="code",
                     visit_distance_m=_positive(visit_distance_m, "visit_distance_m"),
                     gap_minutes=_positive(gap_minutes, "gap_minutes"), metric_crs=metric_crs)
    hr_zone = zone_of.reindex(hr_ids)
    n_high = hr_zone.value_counts()
    zone_list = pd.unique(zone_of.dropna())
    rows = []
    for s, e in windows:  # a handful of shifts, not per fix
        hit = visits[(visits["start"] <= e) & (visits["end"] >= s)]["code"].unique()
        visited = hr_zone.reindex(hit).value_counts()
        for z in zone_list:
            n = int(n_high.get(z, 0))
            v = int(visited.get(z, 0))
            rows.append({"zone_code": z, "shift_start": s, "shift_end": e, "high_risk_grids": n,
                         "visited": v, "share": v / n if n else np.nan})
    return pd.DataFrame(rows, columns=["zone_code", "shift_start", "shift_end", "high_risk_grids",
                                       "visited", "share"])


def _shifts(shifts) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if shifts is None or len(shifts) == 0:
        raise CoverageError("shifts must be a non-empty list of (start, end) pairs")
    out = []
    for i, pair in enumerate(shifts):
        try:
            s, e = pair
        except (TypeError, ValueError) as exc:
            raise CoverageError(f"shift {i} is not a (start, end) pair: {pair!r}") from exc
        s, e = _timestamp(s, f"shift {i} start"), _timestamp(e, f"shift {i} end")
        if e <= s:
            raise CoverageError(f"shift {i} ends ({e}) before it starts ({s})")
        out.append((s, e))
    return out


def zone_coverage(tracks: pd.DataFrame, grids: gpd.GeoDataFrame, *, start, end, shifts: Sequence[tuple],
                  high_risk_threshold: float = 3, zones: gpd.GeoDataFrame | None = None,
                  visit_distance_m: float = 50.0, gap_minutes: float = 10.0,
                  metric_crs: str = DEFAULT_METRIC_CRS) -> pd.DataFrame:
    """Per patrol zone: high-risk grids visited per shift, street presence and risk focus.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Cleaned fixes with ``track_id``, ``zone_code`` (the officer's own zone), ``time``,
        ``lon``, ``lat``.
    grids : geopandas.GeoDataFrame
        ``code``, polygons, numeric ``risk_level``, optional ``score`` (risk weight; falls
        back to ``risk_level``) and ``zone_code`` unless ``zones`` is given.
    start, end : datetime-like, tz-aware
        The period for the patrol-time figures.
    shifts : sequence of (start, end)
        Shifts for ``share_high_risk_visited_per_shift`` (see :func:`shift_coverage`).
    high_risk_threshold : float, default 3
        ``risk_level`` from which a grid is high-risk.
    zones : geopandas.GeoDataFrame, optional
        Patrol zone polygons, used when grids carry no ``zone_code``.
    visit_distance_m, gap_minutes, metric_crs
        As in :func:`find_visits`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``zone_code``:

        ``grids``, ``high_risk_grids`` (int)
            grids in the zone, and how many are high-risk;
        ``share_high_risk_visited_per_shift`` (float)
            mean over the shifts of the share of the zone's high-risk grids visited;
        ``patrol_minutes`` (float)
            patrol time in the period of the tracks whose ``zone_code`` is this zone
            (gaps over ``gap_minutes`` left out);
        ``patrol_minutes_per_day`` (float)
            ``patrol_minutes`` / length of the period in days: the 见警率 proxy;
        ``high_risk_time_share`` (float)
            of the patrol time (any officer) spent inside the zone's grids, the share spent
            inside its high-risk grids;
        ``high_risk_risk_share`` (float)
            the high-risk grids' share of the zone's total risk weight;
        ``risk_time_ratio`` (float)
            ``high_risk_time_share / high_risk_risk_share``: 1 means patrol time follows
            risk, below 1 that high-risk grids get less than their share. NaN when
            undefined (no high-risk grid, no risk or no patrol time in the zone).
    """
    start, end, _, _ = _period(start, end, None)
    ids, geoms = _check_polygons(grids, "code", "grids", metric_crs)
    high, weight = _risk_columns(grids, high_risk_threshold)
    zone_of = _grid_zones(grids, zones, metric_crs)
    tr = _check_tracks(tracks, (*_TRACK_REQUIRED, "zone_code"))

    per_shift = shift_coverage(tr, grids, shifts, high_risk_threshold=high_risk_threshold, zones=zones,
                               visit_distance_m=visit_distance_m, gap_minutes=gap_minutes,
                               metric_crs=metric_crs)
    zone_index = pd.Index(pd.unique(pd.concat([zone_of.dropna(), tr["zone_code"]], ignore_index=True)),
                          name="zone_code")
    out = pd.DataFrame(index=zone_index)
    out["grids"] = zone_of.value_counts().reindex(zone_index, fill_value=0).astype("int64")
    out["high_risk_grids"] = zone_of[high.to_numpy()].value_counts().reindex(zone_index, fill_value=0).astype("int64")
    out["share_high_risk_visited_per_shift"] = per_shift.groupby("zone_code")["share"].mean().reindex(zone_index)

    iv = patrol_intervals(tr, gap_minutes=gap_minutes, start=start, end=end)
    days = (end - start) / pd.Timedelta(days=1)
    out["patrol_minutes"] = iv.groupby("zone_code")["minutes"].sum().reindex(zone_index, fill_value=0.0)
    out["patrol_minutes_per_day"] = out["patrol_minutes"] / days

    # Where was each interval spent? The grid holding its first fix (grids tile, so a
    # point lies in at most one; a point on a shared edge goes to the first match).
    x, y = _metric_xy(iv["lon"].to_numpy(), iv["lat"].to_numpy(), metric_crs)
    p_idx, g_idx = shapely.STRtree(geoms).query(shapely.points(x, y), predicate="intersects")
    first = ~pd.Series(p_idx).duplicated().to_numpy()
    p_idx, g_idx = p_idx[first], g_idx[first]
    minutes = iv["minutes"].to_numpy()[p_idx]
    grid_zone = zone_of.to_numpy()[g_idx]
    grid_high = high.to_numpy()[g_idx]
    spent = pd.DataFrame({"zone_code": grid_zone, "high": grid_high, "minutes": minutes}).dropna(subset=["zone_code"])
    in_zone = spent.groupby("zone_code")["minutes"].sum().reindex(zone_index, fill_value=0.0)
    in_high = spent[spent["high"]].groupby("zone_code")["minutes"].sum().reindex(zone_index, fill_value=0.0)
    risk_total = weight.groupby(zone_of.to_numpy()).sum().reindex(zone_index, fill_value=0.0)
    risk_high = weight[high.to_numpy()].groupby(zone_of[high.to_numpy()].to_numpy()).sum()
    risk_high = risk_high.reindex(zone_index, fill_value=0.0)
    time_share = (in_high / in_zone.where(in_zone > 0)).astype("float64")
    risk_share = (risk_high / risk_total.where(risk_total > 0)).astype("float64")
    out["high_risk_time_share"] = time_share
    out["high_risk_risk_share"] = risk_share
    out["risk_time_ratio"] = time_share / risk_share.where(risk_share > 0)
    return out
