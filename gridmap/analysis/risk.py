"""Per-grid risk: counts by category, a severity- and recency-weighted score, rates,
backlog, trend against the previous period and a risk level per grid; roll-ups to
villages and towns.

Inputs (as the app loads them from the database)
------------------------------------------------
grids : geopandas.GeoDataFrame, EPSG:4326
    ``code`` (15-digit str, unique), ``village_code``, ``town_code``, ``population``
    (int, may be 0), ``area_km2`` (float), geometry (MultiPolygon).
incidents : pandas.DataFrame
    ``id``, ``grid_code``, ``village_code``, ``town_code``, ``category`` (DSP, SEC, FIR,
    HAZ, LOG, TRF, ACC, PET), ``subcategory``, ``severity`` (1-4), ``legal_class``
    (none/public_order/criminal), ``enterprise_involved`` (bool), ``status``,
    ``occurred_at`` (timezone-aware datetime), ``deadline_at`` (timezone-aware,
    nullable), ``resolution_level`` (nullable village/town/county),
    ``mediation_point_id`` (nullable), ``mediation_outcome`` (nullable). The functions
    here need only ``grid_code``, ``category``, ``severity``, ``status``,
    ``occurred_at`` and ``deadline_at``.

Conventions
-----------
* A period is half-open: ``start <= occurred_at < end``; both ends timezone-aware.
* Incidents with status ``rejected`` (不予受理) or ``duplicate`` (重复) are not events
  and are left out of every count (:data:`NOT_COUNTED_STATUSES`).
* Incidents whose ``grid_code`` is not among ``grids`` are ignored, so a caller can
  pass county-wide incidents with the grids of one town.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
from pyproj import CRS

from gridmap.catalog import CATEGORIES, OPEN_STATUSES, SEVERITIES, STATUSES

__all__ = [
    "AnalysisInputError",
    "RiskWeights",
    "DEFAULT_RISK_WEIGHTS",
    "CATEGORY_CODES",
    "COUNT_COLUMNS",
    "NOT_COUNTED_STATUSES",
    "RISK_METHODS",
    "grid_risk_summary",
    "risk_levels",
    "fisher_jenks_upper_bounds",
    "rollup",
    "require_columns",
    "require_crs",
    "as_aware_timestamp",
    "period_bounds",
    "epoch_ns",
]

CATEGORY_CODES: tuple[str, ...] = tuple(c.code for c in CATEGORIES)
COUNT_COLUMNS: tuple[str, ...] = tuple(f"n_{code}" for code in CATEGORY_CODES)
NOT_COUNTED_STATUSES: tuple[str, ...] = ("rejected", "duplicate")
RISK_METHODS = ("natural_breaks", "quantiles")
GRID_COLUMNS = ("code", "population", "area_km2")
INCIDENT_COLUMNS = ("grid_code", "category", "severity", "status", "occurred_at", "deadline_at")
SUMMARY_COLUMNS = (*COUNT_COLUMNS, "n_total", "score", "per_km2", "per_1000", "open_backlog",
                   "overdue_backlog", "prev_total", "change", "change_pct", "risk_level")
_NS_PER_DAY = 86_400 * 10**9


class AnalysisInputError(ValueError):
    """Input that an analysis cannot be computed from: missing columns, wrong CRS,
    naive times, an empty period, out-of-range parameters."""


# --------------------------------------------------------------------------- input checks


def require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise :class:`AnalysisInputError` naming the columns ``frame`` lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisInputError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisInputError(f"{name} is missing column(s) {', '.join(missing)}")


def require_crs(frame: gpd.GeoDataFrame, name: str, expected: str = "EPSG:4326") -> None:
    """Raise :class:`AnalysisInputError` unless ``frame`` is a GeoDataFrame in ``expected``."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise AnalysisInputError(f"{name} must be a GeoDataFrame")
    if frame.crs is None:
        raise AnalysisInputError(f"{name} has no CRS; expected {expected}")
    if not CRS.from_user_input(frame.crs).equals(CRS.from_user_input(expected)):
        raise AnalysisInputError(f"{name} is in {frame.crs.to_string()}; expected {expected}")


def as_aware_timestamp(value, name: str) -> pd.Timestamp:
    """``value`` as a timezone-aware :class:`pandas.Timestamp`, or AnalysisInputError."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise AnalysisInputError(f"{name} is not a date/time: {value!r}") from exc
    if stamp is pd.NaT:
        raise AnalysisInputError(f"{name} is missing")
    if stamp.tzinfo is None:
        raise AnalysisInputError(f"{name} must be timezone-aware (e.g. 2024-05-01T00:00+08:00), got {value!r}")
    return stamp


def period_bounds(start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Check a half-open period ``[start, end)`` and return it as aware Timestamps."""
    start = as_aware_timestamp(start, "start")
    end = as_aware_timestamp(end, "end")
    if end <= start:
        raise AnalysisInputError(f"the period is empty: end {end} is not after start {start}")
    return start, end


def epoch_ns(frame: pd.DataFrame, column: str, name: str, *, nullable: bool) -> np.ndarray:
    """A timezone-aware datetime column as int64 nanoseconds since the epoch.

    Missing values come back as ``numpy.iinfo(int64).min`` (pandas' NaT); use
    ``frame[column].isna()`` to find them. An all-null column of any dtype is accepted
    when ``nullable``.
    """
    series = frame[column]
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        if not nullable and series.isna().any():
            raise AnalysisInputError(f"{name}.{column} has missing values")
        return series.dt.as_unit("ns").array.asi8
    if len(series) == 0 or (nullable and series.isna().all()):
        return np.full(len(series), np.iinfo(np.int64).min, dtype=np.int64)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        raise AnalysisInputError(f"{name}.{column} is timezone-naive; use timezone-aware datetimes "
                                 f"(e.g. pandas.to_datetime(..., utc=True))")
    raise AnalysisInputError(f"{name}.{column} must hold timezone-aware datetimes, got dtype {series.dtype}")


def _ns(stamp: pd.Timestamp) -> int:
    return int(stamp.as_unit("ns").value)


# --------------------------------------------------------------------------- weights


def _default_severity_weights() -> Mapping[int, float]:
    return MappingProxyType({1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0})


@dataclass(frozen=True)
class RiskWeights:
    """How incidents add up to a grid's risk score.

    Each incident in the period contributes
    ``severity[s] * 0.5 ** (age_days / half_life_days)``, where ``age_days`` is the
    time from ``occurred_at`` to the period's reference time ``min(end, now)``
    (never negative).

    Parameters
    ----------
    severity : mapping of int to float, default {1: 1, 2: 2, 3: 4, 4: 8}
        Weight of each severity 1-4; all four must be present and positive.
    half_life_days : float, default 30
        Days after which an incident counts half; must be positive. ``math.inf``
        turns the recency weighting off.
    """

    severity: Mapping[int, float] = field(default_factory=_default_severity_weights)
    half_life_days: float = 30.0

    def __post_init__(self) -> None:
        if set(self.severity) != set(SEVERITIES):
            raise AnalysisInputError(f"severity weights must be given for exactly {SEVERITIES}, "
                                     f"got {sorted(self.severity)}")
        if not all(math.isfinite(float(v)) and float(v) > 0 for v in self.severity.values()):
            raise AnalysisInputError("severity weights must be positive numbers")
        if not float(self.half_life_days) > 0:
            raise AnalysisInputError("half_life_days must be positive")
        object.__setattr__(self, "severity", MappingProxyType({int(k): float(v) for k, v in self.severity.items()}))

    @classmethod
    def from_mapping(cls, settings: Mapping) -> RiskWeights:
        """Build from config, e.g. ``{"severity": {"1": 1, "2": 2, "3": 4, "4": 8},
        "half_life_days": 30}``; keys may be strings, missing entries keep defaults."""
        severity = settings.get("severity")
        return cls(
            severity=_default_severity_weights() if severity is None
            else {int(k): float(v) for k, v in severity.items()},
            half_life_days=float(settings.get("half_life_days", 30.0)),
        )

    def severity_lookup(self) -> np.ndarray:
        """Array ``w`` with ``w[s]`` the weight of severity ``s`` (index 0 unused)."""
        lookup = np.zeros(max(SEVERITIES) + 1)
        for level, weight in self.severity.items():
            lookup[level] = weight
        return lookup


DEFAULT_RISK_WEIGHTS = RiskWeights()


# --------------------------------------------------------------------------- summary


def grid_risk_summary(grids: gpd.GeoDataFrame, incidents: pd.DataFrame, start, end, *, now,
                      weights: RiskWeights = DEFAULT_RISK_WEIGHTS, classes: int = 5,
                      method: str = "natural_breaks") -> pd.DataFrame:
    """Risk figures for every grid over the period ``[start, end)``.

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        EPSG:4326 grids with ``code`` (unique), ``population`` (may be 0) and
        ``area_km2`` (also ``village_code``/``town_code`` for :func:`rollup`).
    incidents : pandas.DataFrame
        Incidents with at least ``grid_code``, ``category``, ``severity``, ``status``,
        ``occurred_at`` and ``deadline_at`` (see the module docstring). Pass the
        incidents of both this and the previous period, and every still-open incident,
        for complete trend and backlog columns.
    start, end : datetime-like, timezone-aware
        The period, half-open. The previous period is the one of equal length ending
        at ``start``.
    now : datetime-like, timezone-aware
        The moment of the report: backlog and overdue are judged at ``now``, and the
        recency weighting counts ages back from ``min(end, now)``.
    weights : RiskWeights, default DEFAULT_RISK_WEIGHTS
        Severity weights and half-life of the score.
    classes : int, default 5
        Number of risk levels.
    method : {"natural_breaks", "quantiles"}, default "natural_breaks"
        How scores are cut into levels, see :func:`risk_levels`.

    Returns
    -------
    pandas.DataFrame
        One row per grid, indexed by grid code (index name ``grid_code``, in the order
        of ``grids``), grids without incidents included with zeros:

        ``n_DSP`` ... ``n_PET`` (int)
            incidents per category in the period;
        ``n_total`` (int)
            all incidents in the period;
        ``score`` (float)
            sum of severity weight times ``0.5 ** (age_days / half_life_days)``;
        ``per_km2`` (float)
            ``n_total / area_km2``, NaN where the area is 0 or missing;
        ``per_1000`` (float)
            ``1000 * n_total / population``, NaN where the population is 0 or missing;
        ``open_backlog`` (int)
            incidents that occurred before ``end`` and whose status is open
            (``catalog.OPEN_STATUSES``) now, whatever period they occurred in;
        ``overdue_backlog`` (int)
            those of them with ``deadline_at < now``;
        ``prev_total`` (int)
            incidents in the previous period;
        ``change`` (int), ``change_pct`` (float)
            ``n_total - prev_total`` and ``100 * change / prev_total`` (NaN when
            ``prev_total`` is 0);
        ``risk_level`` (int)
            1 (lowest) .. ``classes`` from ``score``, see :func:`risk_levels`.

        ``attrs`` holds ``start``, ``end``, ``previous_start``, ``now``, ``method`` and
        ``risk_classes`` (the highest level that occurs; below ``classes`` when there
        are few distinct scores).

    Raises
    ------
    AnalysisInputError
        (a ``ValueError``) for missing columns, a CRS other than EPSG:4326, duplicate
        grid codes, naive or missing times, an empty period, an unknown category,
        severity or status, or a bad ``classes``/``method``.

    Examples
    --------
    >>> summary = grid_risk_summary(grids, incidents, "2024-04-01T00:00+08:00",
    ...                             "2024-07-01T00:00+08:00", now=now)   # doctest: +SKIP
    >>> summary.sort_values("score", ascending=False).head()             # doctest: +SKIP
    """
    require_crs(grids, "grids")
    require_columns(grids, GRID_COLUMNS, "grids")
    require_columns(incidents, INCIDENT_COLUMNS, "incidents")
    if not isinstance(weights, RiskWeights):
        raise AnalysisInputError("weights must be a RiskWeights")
    _check_classification(classes, method)
    start, end = period_bounds(start, end)
    now = as_aware_timestamp(now, "now")
    codes = pd.Index(grids["code"].astype(str), name="grid_code")
    if not codes.is_unique:
        raise AnalysisInputError("grid codes are not unique")

    n = len(codes)
    occurred = epoch_ns(incidents, "occurred_at", "incidents", nullable=False)
    deadline = epoch_ns(incidents, "deadline_at", "incidents", nullable=True)
    deadline_known = incidents["deadline_at"].notna().to_numpy()
    category = pd.Index(CATEGORY_CODES).get_indexer(incidents["category"])
    if (category < 0).any():
        unknown = sorted(set(incidents["category"][category < 0].astype(str)))
        raise AnalysisInputError(f"incidents have unknown categories {unknown[:5]}; expected {CATEGORY_CODES}")
    severity = pd.to_numeric(incidents["severity"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not np.isin(severity, SEVERITIES).all():
        raise AnalysisInputError(f"incident severities must be one of {SEVERITIES}")
    severity = severity.astype(np.int64)
    status = pd.Index(STATUSES).get_indexer(incidents["status"])
    if (status < 0).any():
        unknown = sorted(set(incidents["status"][status < 0].astype(str)))
        raise AnalysisInputError(f"incidents have unknown statuses {unknown[:5]}; expected {STATUSES}")
    status_counted = np.isin(STATUSES, NOT_COUNTED_STATUSES, invert=True)[status]
    status_open = np.isin(STATUSES, OPEN_STATUSES)[status]
    grid_pos = codes.get_indexer(incidents["grid_code"].astype(str))

    counted = (grid_pos >= 0) & status_counted
    start_ns, end_ns, now_ns = _ns(start), _ns(end), _ns(now)
    length_ns = end_ns - start_ns
    previous_start_ns = start_ns - length_ns
    in_period = counted & (occurred >= start_ns) & (occurred < end_ns)
    in_previous = counted & (occurred >= previous_start_ns) & (occurred < start_ns)

    n_categories = len(CATEGORY_CODES)
    per_category = np.bincount(grid_pos[in_period] * n_categories + category[in_period],
                               minlength=n * n_categories).reshape(n, n_categories)
    n_total = per_category.sum(axis=1)

    reference_ns = min(end_ns, now_ns)
    age_days = np.maximum(reference_ns - occurred[in_period], 0) / _NS_PER_DAY
    decay = np.exp2(-age_days / float(weights.half_life_days))
    contribution = weights.severity_lookup()[severity[in_period]] * decay
    score = np.bincount(grid_pos[in_period], weights=contribution, minlength=n)

    is_open = counted & status_open & (occurred < end_ns)
    is_overdue = is_open & deadline_known & (deadline < now_ns)
    open_backlog = np.bincount(grid_pos[is_open], minlength=n)
    overdue_backlog = np.bincount(grid_pos[is_overdue], minlength=n)
    prev_total = np.bincount(grid_pos[in_previous], minlength=n)

    area = pd.to_numeric(grids["area_km2"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    population = pd.to_numeric(grids["population"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    summary = pd.DataFrame(per_category.astype(np.int64), index=codes, columns=list(COUNT_COLUMNS))
    summary["n_total"] = n_total.astype(np.int64)
    summary["score"] = score
    summary["per_km2"] = _safe_ratio(n_total, area)
    summary["per_1000"] = 1000.0 * _safe_ratio(n_total, population)
    summary["open_backlog"] = open_backlog.astype(np.int64)
    summary["overdue_backlog"] = overdue_backlog.astype(np.int64)
    summary["prev_total"] = prev_total.astype(np.int64)
    summary["change"] = (n_total - prev_total).astype(np.int64)
    summary["change_pct"] = 100.0 * _safe_ratio(n_total - prev_total, prev_total)
    levels = risk_levels(score, classes=classes, method=method)
    summary["risk_level"] = levels
    summary.attrs.update({
        "start": start, "end": end, "previous_start": start - (end - start), "now": now,
        "method": method, "risk_classes": int(levels.max()) if n else 0,
    })
    return summary


def _safe_ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 or missing (no warnings)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    ok = np.isfinite(denominator) & (denominator != 0)
    np.divide(numerator, denominator, out=out, where=ok)
    return out


# --------------------------------------------------------------------------- levels


def _check_classification(classes, method) -> None:
    if not isinstance(classes, (int, np.integer)) or isinstance(classes, bool) or classes < 1:
        raise AnalysisInputError("classes must be a positive integer")
    if method not in RISK_METHODS:
        raise AnalysisInputError(f"unknown method {method!r}; use one of {RISK_METHODS}")


def risk_levels(scores, *, classes: int = 5, method: str = "natural_breaks") -> np.ndarray:
    """Cut non-negative scores into levels 1 (lowest) .. ``classes``.

    Parameters
    ----------
    scores : array-like of float
        One score per grid (or village, town); finite and >= 0.
    classes : int, default 5
        Number of levels wanted.
    method : {"natural_breaks", "quantiles"}
        ``"natural_breaks"``: Fisher-Jenks optimal classes (minimum within-class sum of
        squares), the same breaks as :class:`mapclassify.FisherJenks`, computed with a
        vectorised dynamic programme over the distinct scores (see
        :func:`fisher_jenks_upper_bounds`; mapclassify's own needs numba to be fast).
        ``"quantiles"``: :class:`mapclassify.Quantiles`; tied quantiles merge, so fewer
        levels may be used and a level can be skipped (e.g. 1, 3, 4 when many grids
        score 0).

    Returns
    -------
    numpy.ndarray of int64
        Level per score. Classes are closed above (a score equal to a break belongs
        to the lower class). When there are no more distinct scores than ``classes``,
        each distinct score is its own level in increasing order, 1 .. number of
        distinct scores, so the top level can be below ``classes``; all scores equal
        (e.g. all zero, a period without incidents) gives every grid level 1.
        An empty input gives an empty array.
    """
    _check_classification(classes, method)
    values = np.asarray(scores, dtype=float).reshape(-1)
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise AnalysisInputError("risk scores must be finite and non-negative")
    distinct = np.unique(values)
    if len(distinct) <= classes:
        return np.searchsorted(distinct, values).astype(np.int64) + 1
    if method == "quantiles":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Not enough unique values", category=UserWarning)
            return np.asarray(mapclassify.Quantiles(values, k=classes).yb, dtype=np.int64) + 1
    bounds = fisher_jenks_upper_bounds(values, classes)
    return np.minimum(np.searchsorted(bounds, values, side="left"), classes - 1).astype(np.int64) + 1


def fisher_jenks_upper_bounds(values, classes: int) -> np.ndarray:
    """Upper bounds of the Fisher-Jenks natural-breaks classes of ``values``.

    Exact: the partition of the sorted values into ``classes`` runs with the least total
    within-class sum of squares, found by dynamic programming over the distinct values
    weighted by how often they occur. Each layer of the programme uses the monotone
    split points of this cost (it satisfies the quadrangle inequality) in a
    divide-and-conquer search, vectorised level by level: O(classes * m log m) for m
    distinct values, instead of the O(classes * n^2) loop of mapclassify without numba.
    Among equally good splits the leftmost is taken.

    Parameters
    ----------
    values : array-like of float
    classes : int
        Needs at least this many distinct values.

    Returns
    -------
    numpy.ndarray
        ``classes`` increasing upper bounds; the last is ``max(values)``.
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    distinct, weight = np.unique(values, return_counts=True)
    m = len(distinct)
    if m < classes:
        raise AnalysisInputError(f"{m} distinct values cannot form {classes} classes")
    centred = distinct - np.average(distinct, weights=weight)  # less cancellation in the sums
    cum_w = np.concatenate(([0.0], np.cumsum(weight, dtype=float)))
    cum_x = np.concatenate(([0.0], np.cumsum(weight * centred)))
    cum_xx = np.concatenate(([0.0], np.cumsum(weight * centred * centred)))

    def within(a, b):  # weighted sum of squares of the run distinct[a:b], a < b
        s = cum_x[b] - cum_x[a]
        return cum_xx[b] - cum_xx[a] - s * s / (cum_w[b] - cum_w[a])

    # best[b]: least cost of cutting distinct[:b] into the current number of classes
    best = np.full(m + 1, np.inf)
    best[1:] = within(np.zeros(m, dtype=np.int64), np.arange(1, m + 1))
    back = np.zeros((classes + 1, m + 1), dtype=np.int64)
    for c in range(2, classes + 1):
        best, back[c] = _jenks_layer(best, within, c, m)
    bounds = np.empty(classes)
    end_index = m
    for c in range(classes, 0, -1):
        bounds[c - 1] = distinct[end_index - 1]
        end_index = back[c, end_index] if c > 1 else 0
    bounds[-1] = values.max()
    return bounds


def _jenks_layer(best: np.ndarray, within, c: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """new[b] = min over c-1 <= a < b of best[a] + within(a, b), for b = c..m, with argmins.

    Divide and conquer on b (the optimal a is non-decreasing in b); all tasks of one
    recursion depth are evaluated together with flat numpy arrays.
    """
    new = np.full(m + 1, np.inf)
    argmin = np.zeros(m + 1, dtype=np.int64)
    b_lo, b_hi = np.array([c]), np.array([m])
    a_lo, a_hi = np.array([c - 1]), np.array([m - 1])
    while len(b_lo):
        mid = (b_lo + b_hi) // 2
        lengths = np.minimum(a_hi, mid - 1) - a_lo + 1
        offsets = np.cumsum(lengths) - lengths
        task = np.repeat(np.arange(len(mid)), lengths)
        a = np.arange(int(lengths.sum())) - offsets[task] + a_lo[task]
        cost = best[a] + within(a, mid[task])
        order = np.lexsort((a, cost, task))  # by task, then cost, then leftmost a
        first = order[offsets]
        opt = a[first]
        new[mid] = cost[first]
        argmin[mid] = opt
        left, right = mid - 1 >= b_lo, mid + 1 <= b_hi
        b_lo, b_hi = np.concatenate((b_lo[left], mid[right] + 1)), np.concatenate((mid[left] - 1, b_hi[right]))
        a_lo, a_hi = np.concatenate((a_lo[left], opt[right])), np.concatenate((opt[left], a_hi[right]))
    return new, argmin


# --------------------------------------------------------------------------- roll-ups

_SUMMED = (*COUNT_COLUMNS, "n_total", "score", "open_backlog", "overdue_backlog", "prev_total")


def rollup(summary: pd.DataFrame, grids: gpd.GeoDataFrame, by: str = "village_code", *, classes: int = 5,
           method: str = "natural_breaks") -> pd.DataFrame:
    """Add grid risk figures up to villages or towns.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`grid_risk_summary`, indexed by grid code.
    grids : geopandas.GeoDataFrame or pandas.DataFrame
        With ``code``, ``population``, ``area_km2`` and the ``by`` column; must cover
        every grid in ``summary``.
    by : {"village_code", "town_code"}, default "village_code"
    classes, method
        Risk levels of the roll-up units, as in :func:`risk_levels`.

    Returns
    -------
    pandas.DataFrame
        Indexed by the ``by`` codes (sorted), with ``n_grids``, ``population``,
        ``area_km2``, the summed counts, ``score``, backlog and ``prev_total``, and
        ``per_km2``, ``per_1000``, ``change``, ``change_pct`` and ``risk_level``
        recomputed from the sums (not averaged over grids).
    """
    if by not in ("village_code", "town_code"):
        raise AnalysisInputError("by must be 'village_code' or 'town_code'")
    require_columns(summary, _SUMMED, "summary")
    require_columns(grids, ("code", "population", "area_km2", by), "grids")
    _check_classification(classes, method)
    units = pd.DataFrame({
        by: grids[by].astype(str).to_numpy(),
        "population": pd.to_numeric(grids["population"], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
        "area_km2": pd.to_numeric(grids["area_km2"], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
    }, index=pd.Index(grids["code"].astype(str), name="grid_code"))
    if not units.index.is_unique:
        raise AnalysisInputError("grid codes are not unique")
    missing = summary.index.astype(str).difference(units.index)
    if len(missing):
        raise AnalysisInputError(f"{len(missing)} grid(s) of the summary are not in grids, e.g. {list(missing[:3])}")
    joined = units.reindex(summary.index.astype(str))
    frame = summary[list(_SUMMED)].set_axis(joined.index, axis=0).join(joined)
    grouped = frame.groupby(by, sort=True)
    out = grouped[list(_SUMMED)].sum()
    out.insert(0, "n_grids", grouped.size().astype(np.int64))
    # min_count=1: a unit whose grids all lack a population stays NaN, not 0
    out.insert(1, "population", grouped["population"].sum(min_count=1))
    out.insert(2, "area_km2", grouped["area_km2"].sum(min_count=1))
    out["per_km2"] = _safe_ratio(out["n_total"], out["area_km2"])
    out["per_1000"] = 1000.0 * _safe_ratio(out["n_total"], out["population"])
    out["change"] = (out["n_total"] - out["prev_total"]).astype(np.int64)
    out["change_pct"] = 100.0 * _safe_ratio(out["change"], out["prev_total"])
    out["risk_level"] = risk_levels(out["score"].to_numpy(), classes=classes, method=method)
    out.index.name = by
    return out
