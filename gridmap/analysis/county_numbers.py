"""The numbers the county reports: "三零" compliance per village and per unit, the
"小事不出村、大事不出乡、矛盾不上交" resolution levels, enterprise-related disputes
and cases, and mediation coverage.

Inputs are the DataFrames described in :mod:`gridmap.analysis.risk` (``incidents``
with ``category``, ``subcategory``, ``severity``, ``legal_class``,
``enterprise_involved``, ``status``, ``occurred_at``, ``resolution_level``,
``mediation_point_id``, ``mediation_outcome`` and the geography codes), plus villages,
units and mediation points described per function.

Conventions shared by every function here
-----------------------------------------
* Periods are half-open, ``start <= t < end``, timezone-aware.
* Incidents with status ``rejected`` or ``duplicate`` are not counted
  (:data:`gridmap.analysis.risk.NOT_COUNTED_STATUSES`).
* Tables "by town" end with one row labelled :data:`COUNTY_TOTAL` for the whole input.
* Rates and shares are fractions in 0..1 (0.89 means 89 %); NaN when the denominator
  is 0.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from gridmap.analysis.risk import (NOT_COUNTED_STATUSES, AnalysisInputError, epoch_ns, period_bounds,
                                   require_columns)
from gridmap.catalog import MEDIATION_OUTCOMES, RESOLUTION_LEVELS

__all__ = [
    "COUNTY_TOTAL",
    "VILLAGE_COMPLIANCE_TARGET",
    "UNIT_COMPLIANCE_TARGET",
    "SANLING_COLUMNS",
    "sanling_by_village",
    "sanling_by_unit",
    "compliance_rate",
    "resolution_levels",
    "enterprise_related",
    "mediation_gaps",
    "mediation_stats",
]

COUNTY_TOTAL = "county_total"
# Provincial targets for 2023: share of villages / units meeting all of "三零".
VILLAGE_COMPLIANCE_TARGET = 0.80
UNIT_COMPLIANCE_TARGET = 0.90
ESCALATED_PETITION_SUBCATEGORIES = ("town", "county", "above_county")
ESCALATED_RESOLUTION_LEVELS = ("town", "county")
SERIOUS_SEVERITY = 3
SANLING_INCIDENT_COLUMNS = ("category", "subcategory", "severity", "legal_class", "status", "resolution_level",
                            "occurred_at")
SANLING_COLUMNS = ("n_escalated_petitions", "n_accidents", "n_criminal_cases", "n_serious_public_order_cases",
                   "zero_petitions", "zero_accidents", "zero_cases", "compliant")


def _counted(incidents: pd.DataFrame) -> pd.DataFrame:
    return incidents.loc[~incidents["status"].astype(str).isin(NOT_COUNTED_STATUSES).to_numpy()]


def _in_period(incidents: pd.DataFrame, column: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    times = epoch_ns(incidents, column, "incidents", nullable=True)
    known = incidents[column].notna().to_numpy()
    keep = known & (times >= start.as_unit("ns").value) & (times < end.as_unit("ns").value)
    return incidents.loc[keep]


def _sanling_flags(owners: pd.Index, incidents: pd.DataFrame, owner_column: str) -> pd.DataFrame:
    """Counts and flags per owner (village code or unit id) from period incidents."""
    category = incidents["category"].astype(str)
    legal = incidents["legal_class"].astype(str)
    severity = pd.to_numeric(incidents["severity"], errors="coerce")
    escalated = (category == "PET") & (
        incidents["subcategory"].astype(str).isin(ESCALATED_PETITION_SUBCATEGORIES)
        | incidents["resolution_level"].isin(ESCALATED_RESOLUTION_LEVELS))
    kinds = pd.DataFrame({
        "n_escalated_petitions": escalated,
        "n_accidents": category == "ACC",
        "n_criminal_cases": legal == "criminal",
        "n_serious_public_order_cases": (legal == "public_order") & (severity >= SERIOUS_SEVERITY),
    })
    kinds["owner"] = _as_ids_of(incidents[owner_column], owners)
    counts = kinds.groupby("owner").sum().reindex(owners, fill_value=0).astype(np.int64)
    counts.index = owners
    flags = counts.copy()
    flags["zero_petitions"] = counts["n_escalated_petitions"] == 0
    flags["zero_accidents"] = counts["n_accidents"] == 0
    flags["zero_cases"] = (counts["n_criminal_cases"] == 0) & (counts["n_serious_public_order_cases"] == 0)
    flags["compliant"] = flags["zero_petitions"] & flags["zero_accidents"] & flags["zero_cases"]
    return flags


def sanling_by_village(villages_df: pd.DataFrame, incidents: pd.DataFrame, start, end) -> pd.DataFrame:
    """"三零" flags of every village over ``[start, end)``.

    A village is

    * ``zero_petitions`` when none of its petitions (``PET``) was escalated beyond the
      village: subcategory ``town``/``county``/``above_county``, or resolved at
      ``town``/``county`` level;
    * ``zero_accidents`` when it had no safety accident (``ACC``: with injury or death);
    * ``zero_cases`` when it had no criminal case (``legal_class == "criminal"``) and no
      serious public-order case (``public_order`` with severity >= 3);
    * ``compliant`` when all three hold.

    Parameters
    ----------
    villages_df : pandas.DataFrame
        One row per village: ``code`` (12 digits, unique) and ``town_code``; other
        columns (``name`` ...) are carried over. A GeoDataFrame is fine.
    incidents : pandas.DataFrame
        With ``village_code``, ``category``, ``subcategory``, ``severity``,
        ``legal_class``, ``status``, ``resolution_level`` and ``occurred_at``.
    start, end : datetime-like, timezone-aware
        The period (incidents by ``occurred_at``).

    Returns
    -------
    pandas.DataFrame
        Indexed by village code (``village_code``), every village included: the carried
        columns (``town_code`` ...), the counts ``n_escalated_petitions``,
        ``n_accidents``, ``n_criminal_cases``, ``n_serious_public_order_cases`` (int)
        and the flags ``zero_petitions``, ``zero_accidents``, ``zero_cases``,
        ``compliant`` (bool). Feed it to :func:`compliance_rate`.
    """
    require_columns(villages_df, ("code", "town_code"), "villages_df")
    require_columns(incidents, ("village_code", *SANLING_INCIDENT_COLUMNS), "incidents")
    start, end = period_bounds(start, end)
    codes = pd.Index(villages_df["code"].astype(str), name="village_code")
    if not codes.is_unique:
        raise AnalysisInputError("village codes are not unique")
    period = _in_period(_counted(incidents), "occurred_at", start, end)
    flags = _sanling_flags(codes, period, "village_code")
    carried = _carried_columns(villages_df, codes, exclude=("code",))
    return carried.join(flags)


def sanling_by_unit(units_df: pd.DataFrame, incidents: pd.DataFrame, start, end) -> pd.DataFrame:
    """"三零" flags of every enterprise/unit over ``[start, end)``.

    Same rules as :func:`sanling_by_village`, applied to the incidents linked to a unit
    through an optional ``unit_id`` column of ``incidents``.

    Parameters
    ----------
    units_df : pandas.DataFrame
        One row per unit: ``id`` (unique); other columns (``name``, ``town_code``,
        ``village_code`` ...) are carried over.
    incidents : pandas.DataFrame
        As for :func:`sanling_by_village`, plus ``unit_id`` (nullable).
    start, end : datetime-like, timezone-aware

    Returns
    -------
    pandas.DataFrame
        Indexed by unit id (``unit_id``), columns as :func:`sanling_by_village`.
        Empty (with those columns) when ``incidents`` has no ``unit_id`` column: the
        incidents do not say which unit they concern, so no unit can be judged.
    """
    require_columns(units_df, ("id",), "units_df")
    start, end = period_bounds(start, end)
    carried_names = [c for c in units_df.columns if c not in ("id", "geometry")]
    if "unit_id" not in incidents.columns:
        empty = pd.DataFrame(columns=[*carried_names, *SANLING_COLUMNS], index=pd.Index([], name="unit_id"))
        return empty.astype({c: ("bool" if c.startswith(("zero_", "compliant")) else "int64")
                             for c in SANLING_COLUMNS})
    require_columns(incidents, ("unit_id", *SANLING_INCIDENT_COLUMNS), "incidents")
    ids = pd.Index(units_df["id"], name="unit_id")
    if not ids.is_unique:
        raise AnalysisInputError("unit ids are not unique")
    period = _in_period(_counted(incidents), "occurred_at", start, end)
    period = period.loc[period["unit_id"].notna().to_numpy()]
    flags = _sanling_flags(ids, period, "unit_id")
    carried = _carried_columns(units_df, ids, exclude=("id",))
    return carried.join(flags)


def _carried_columns(frame: pd.DataFrame, index: pd.Index, exclude) -> pd.DataFrame:
    """The columns of ``frame`` other than ``exclude`` and its geometry, re-indexed."""
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    columns = [c for c in frame.columns if c not in exclude and c != geometry]
    return pd.DataFrame(frame[columns]).set_axis(index, axis=0)


def _as_ids_of(values, ids: pd.Index) -> np.ndarray:
    """``values`` converted to the dtype of ``ids`` so that 7, 7.0 and "7" match 7."""
    values = pd.Index(values)
    if not len(values):
        return values.to_numpy()
    try:
        return values.astype(ids.dtype).to_numpy()
    except (TypeError, ValueError) as exc:
        raise AnalysisInputError(f"ids {list(values[:3])} cannot be matched to ids of type {ids.dtype}") from exc


def compliance_rate(flags: pd.DataFrame, by: str | None = "town_code", *,
                    target: float = VILLAGE_COMPLIANCE_TARGET) -> pd.DataFrame:
    """Share of villages (or units) meeting all of "三零", per group and county-wide.

    Parameters
    ----------
    flags : pandas.DataFrame
        Output of :func:`sanling_by_village` or :func:`sanling_by_unit`.
    by : str or None, default "town_code"
        Column to group by; None gives only the county total.
    target : float, default VILLAGE_COMPLIANCE_TARGET (0.80)
        Use :data:`UNIT_COMPLIANCE_TARGET` (0.90) for units.

    Returns
    -------
    pandas.DataFrame
        Indexed by the ``by`` values (sorted), then a last row :data:`COUNTY_TOTAL`;
        columns ``n`` (villages/units), ``n_zero_petitions``, ``n_zero_accidents``,
        ``n_zero_cases``, ``n_compliant`` (int), ``rate`` (``n_compliant / n``, NaN
        when ``n`` is 0), ``target`` and ``target_met`` (``rate >= target``; False when
        the rate is NaN).
    """
    require_columns(flags, ("zero_petitions", "zero_accidents", "zero_cases", "compliant"), "flags")
    if by is not None:
        require_columns(flags, (by,), "flags")
    if not 0 <= float(target) <= 1:
        raise AnalysisInputError("target is a fraction between 0 and 1 (e.g. 0.8 for 80 %)")
    counted = pd.DataFrame({
        "n_zero_petitions": flags["zero_petitions"].astype(bool).to_numpy(),
        "n_zero_accidents": flags["zero_accidents"].astype(bool).to_numpy(),
        "n_zero_cases": flags["zero_cases"].astype(bool).to_numpy(),
        "n_compliant": flags["compliant"].astype(bool).to_numpy(),
    }).astype(np.int64)
    total = counted.sum().to_frame(COUNTY_TOTAL).T
    total.insert(0, "n", len(counted))
    if by is not None:
        counted["group"] = flags[by].astype(str).to_numpy()
        grouped = counted.groupby("group", sort=True)
        per_group = grouped.sum()
        per_group.insert(0, "n", grouped.size())
        table = pd.concat([per_group, total])
    else:
        table = total
    table = table.astype(np.int64)
    table.index.name = by or "scope"
    table["rate"] = _fraction(table["n_compliant"], table["n"])
    table["target"] = float(target)
    table["target_met"] = (table["rate"] >= float(target)).fillna(False).astype(bool)
    return table


def _fraction(numerator, denominator) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _by_group_with_total(values: pd.DataFrame, groups: pd.Series | None, by: str | None) -> pd.DataFrame:
    """Sum the columns of ``values`` per group (sorted) plus a COUNTY_TOTAL row."""
    total = values.sum().to_frame(COUNTY_TOTAL).T
    if by is None:
        table = total
    else:
        per_group = values.groupby(groups.astype(str).to_numpy(), sort=True).sum()
        table = pd.concat([per_group, total])
    table = table.astype(np.int64)
    table.index.name = by or "scope"
    return table


def resolution_levels(incidents: pd.DataFrame, start, end, by: str | None = "town_code", *,
                      period_by: str | None = None) -> pd.DataFrame:
    """Where disputes were resolved: "小事不出村、大事不出乡、矛盾不上交".

    Counts the disputes (``DSP``) resolved in ``[start, end)`` -- those with a
    ``resolution_level`` -- by level, and the share of each level.

    Parameters
    ----------
    incidents : pandas.DataFrame
        With ``category``, ``status``, ``resolution_level``, the ``by`` column, and the
        time column chosen by ``period_by``.
    start, end : datetime-like, timezone-aware
    by : str or None, default "town_code"
        Group column (e.g. ``"town_code"``, ``"village_code"``); None: county only.
    period_by : str, optional
        Time column that places a dispute in the period. Default: ``resolved_at`` when
        the column exists (resolved in the period), else ``occurred_at`` (occurred in
        the period and resolved by now). The choice is in ``attrs["period_by"]``.

    Returns
    -------
    pandas.DataFrame
        Indexed by the ``by`` values (sorted; groups without a resolved dispute are
        absent) plus a last row :data:`COUNTY_TOTAL`; columns ``n_resolved``,
        ``n_village``, ``n_town``, ``n_county`` (int) and ``share_village``,
        ``share_town``, ``share_county`` (fractions of ``n_resolved``; NaN when it is 0).
    """
    if period_by is None:
        period_by = "resolved_at" if "resolved_at" in incidents.columns else "occurred_at"
    require_columns(incidents, ("category", "status", "resolution_level", period_by), "incidents")
    if by is not None:
        require_columns(incidents, (by,), "incidents")
    start, end = period_bounds(start, end)
    disputes = _counted(incidents)
    disputes = disputes.loc[(disputes["category"].astype(str) == "DSP").to_numpy()
                            & disputes["resolution_level"].notna().to_numpy()]
    disputes = _in_period(disputes, period_by, start, end)
    unknown = set(disputes["resolution_level"].astype(str)) - set(RESOLUTION_LEVELS)
    if unknown:
        raise AnalysisInputError(f"unknown resolution levels {sorted(unknown)}; expected {RESOLUTION_LEVELS}")
    level = disputes["resolution_level"].astype(str)
    values = pd.DataFrame({f"n_{lv}": (level == lv).to_numpy() for lv in RESOLUTION_LEVELS})
    values.insert(0, "n_resolved", np.ones(len(values), dtype=np.int64))
    table = _by_group_with_total(values.astype(np.int64), disputes[by] if by else None, by)
    for lv in RESOLUTION_LEVELS:
        table[f"share_{lv}"] = _fraction(table[f"n_{lv}"], table["n_resolved"])
    table.attrs["period_by"] = period_by
    return table


def enterprise_related(incidents: pd.DataFrame, start, end, by: str | None = None) -> pd.DataFrame:
    """Enterprise-related (涉企) disputes and cases that occurred in ``[start, end)``.

    A dispute is enterprise-related when it is a ``DSP`` incident with
    ``enterprise_involved`` true or subcategory ``enterprise`` (涉企纠纷); a case is any
    incident with ``enterprise_involved`` true and a legal class other than ``none``.

    Parameters
    ----------
    incidents : pandas.DataFrame
        With ``category``, ``subcategory``, ``legal_class``, ``enterprise_involved``,
        ``status``, ``occurred_at`` (and the ``by`` column).
    start, end : datetime-like, timezone-aware
    by : str or None, default None
        Optional group column, e.g. ``"town_code"``.

    Returns
    -------
    pandas.DataFrame
        The :data:`COUNTY_TOTAL` row (after one row per group when ``by`` is given) with
        ``n_enterprise_disputes``, ``n_enterprise_cases``, ``n_enterprise_criminal_cases``
        and ``n_enterprise_public_order_cases`` (int).
    """
    require_columns(incidents, ("category", "subcategory", "legal_class", "enterprise_involved", "status",
                                "occurred_at"), "incidents")
    if by is not None:
        require_columns(incidents, (by,), "incidents")
    start, end = period_bounds(start, end)
    period = _in_period(_counted(incidents), "occurred_at", start, end)
    involved = period["enterprise_involved"].fillna(False).astype(bool).to_numpy()
    category = period["category"].astype(str).to_numpy()
    subcategory = period["subcategory"].astype(str).to_numpy()
    legal = period["legal_class"].astype(str).to_numpy()
    values = pd.DataFrame({
        "n_enterprise_disputes": (category == "DSP") & (involved | (subcategory == "enterprise")),
        "n_enterprise_cases": involved & (legal != "none"),
        "n_enterprise_criminal_cases": involved & (legal == "criminal"),
        "n_enterprise_public_order_cases": involved & (legal == "public_order"),
    }).astype(np.int64)
    return _by_group_with_total(values, period[by] if by else None, by)


def mediation_gaps(villages_gdf: gpd.GeoDataFrame, points_gdf: gpd.GeoDataFrame, max_distance_m: float,
                   metric_crs: str = "EPSG:4547") -> gpd.GeoDataFrame:
    """Villages with no mediation point within ``max_distance_m``.

    The distance is from the village polygon to the nearest point (0 for a point
    inside the village), computed in ``metric_crs`` with
    :func:`geopandas.sjoin_nearest`.

    Parameters
    ----------
    villages_gdf : geopandas.GeoDataFrame
        Village polygons with ``code`` (unique); other columns are carried over. Any CRS.
    points_gdf : geopandas.GeoDataFrame
        Mediation points with ``id``. Any CRS; rows without geometry are ignored.
    max_distance_m : float
        Distance in metres (>= 0). A point exactly at this distance counts as within.
    metric_crs : str, default "EPSG:4547"
        Projected CRS in metres (CGCS2000 / 3-degree GK CM 114E).

    Returns
    -------
    geopandas.GeoDataFrame
        The villages without a point in reach, indexed by ``village_code``, in the
        villages' CRS, farthest first, with the carried columns, ``nearest_point_id``
        and ``distance_m`` (both NaN when there are no points at all).
    """
    for frame, name in ((villages_gdf, "villages_gdf"), (points_gdf, "points_gdf")):
        if not isinstance(frame, gpd.GeoDataFrame):
            raise AnalysisInputError(f"{name} must be a GeoDataFrame")
        if frame.crs is None:
            raise AnalysisInputError(f"{name} has no CRS")
    require_columns(villages_gdf, ("code",), "villages_gdf")
    require_columns(points_gdf, ("id",), "points_gdf")
    try:
        distance = float(max_distance_m)
    except (TypeError, ValueError) as exc:
        raise AnalysisInputError("max_distance_m must be a number of metres") from exc
    if not np.isfinite(distance) or distance < 0:
        raise AnalysisInputError("max_distance_m must be a non-negative number of metres")
    if not CRS.from_user_input(metric_crs).is_projected:
        raise AnalysisInputError(f"metric_crs {metric_crs!r} is not a projected CRS in metres")
    codes = pd.Index(villages_gdf["code"].astype(str), name="village_code")
    if not codes.is_unique:
        raise AnalysisInputError("village codes are not unique")
    if villages_gdf.geometry.isna().any() or villages_gdf.geometry.is_empty.any():
        raise AnalysisInputError("some villages have no geometry")

    villages = villages_gdf.set_axis(codes, axis=0)
    points = points_gdf.loc[points_gdf.geometry.notna().to_numpy() & ~points_gdf.geometry.is_empty.to_numpy()]
    nearest_id = pd.Series(np.nan, index=codes, dtype=object)
    nearest_distance = pd.Series(np.nan, index=codes, dtype=float)
    if len(points) and len(villages):
        left = gpd.GeoDataFrame(geometry=villages.geometry.to_crs(metric_crs).to_numpy(), index=codes,
                                crs=metric_crs)
        right = gpd.GeoDataFrame({"point_id": points["id"].to_numpy()},
                                 geometry=points.geometry.to_crs(metric_crs).to_numpy(), crs=metric_crs)
        joined = gpd.sjoin_nearest(left, right, how="left", distance_col="distance_m")
        # ties give several rows per village: keep the first (same distance)
        joined = joined.loc[~joined.index.duplicated(keep="first")]
        nearest_id = joined["point_id"].reindex(codes)
        nearest_distance = joined["distance_m"].reindex(codes).astype(float)
    gap = ~(nearest_distance <= distance)
    out = villages.loc[gap.to_numpy()].drop(columns=["code"])
    out = out.assign(nearest_point_id=nearest_id[gap].to_numpy(), distance_m=nearest_distance[gap].to_numpy())
    out.index.name = "village_code"
    return out.sort_values("distance_m", ascending=False, na_position="first", kind="stable")


def mediation_stats(points: pd.DataFrame, incidents: pd.DataFrame, *, start=None, end=None) -> pd.DataFrame:
    """Cases referred to each mediation point (访调对接) and its agreement rate.

    Parameters
    ----------
    points : pandas.DataFrame
        Mediation points with ``id`` (unique); other columns except the geometry
        (``name``, ``kind``, ``village_code`` ...) are carried over.
    incidents : pandas.DataFrame
        With ``mediation_point_id`` (nullable), ``mediation_outcome`` (nullable:
        agreement/failed/transferred) and ``status``; ``occurred_at`` when a period is
        given. Incidents referred to a point not in ``points`` are ignored.
    start, end : datetime-like, timezone-aware, optional
        Count only incidents that occurred in ``[start, end)``; both or neither.

    Returns
    -------
    pandas.DataFrame
        Indexed by point id (``mediation_point_id``), every point included:
        ``n_referred``, ``n_agreement``, ``n_failed``, ``n_transferred``, ``n_pending``
        (no outcome yet) (int) and ``agreement_rate`` = agreements / referrals with an
        outcome (NaN when none has one).
    """
    require_columns(points, ("id",), "points")
    require_columns(incidents, ("mediation_point_id", "mediation_outcome", "status"), "incidents")
    ids = pd.Index(points["id"], name="mediation_point_id")
    if not ids.is_unique:
        raise AnalysisInputError("mediation point ids are not unique")
    referred = _counted(incidents)
    if (start is None) != (end is None):
        raise AnalysisInputError("give both start and end, or neither")
    if start is not None:
        require_columns(incidents, ("occurred_at",), "incidents")
        referred = _in_period(referred, "occurred_at", *period_bounds(start, end))
    referred = referred.loc[referred["mediation_point_id"].notna().to_numpy()]
    outcome = referred["mediation_outcome"]
    unknown = set(outcome.dropna().astype(str)) - set(MEDIATION_OUTCOMES)
    if unknown:
        raise AnalysisInputError(f"unknown mediation outcomes {sorted(unknown)}; expected {MEDIATION_OUTCOMES}")
    values = pd.DataFrame({"n_referred": np.ones(len(referred), dtype=np.int64)})
    for name in MEDIATION_OUTCOMES:
        values[f"n_{name}"] = (outcome == name).fillna(False).to_numpy()
    values["n_pending"] = outcome.isna().to_numpy()
    values = values.astype(np.int64)
    point_of = _as_ids_of(referred["mediation_point_id"], ids)
    counts = values.groupby(point_of).sum().reindex(ids, fill_value=0).astype(np.int64)
    counts.index = ids
    concluded = counts[[f"n_{name}" for name in MEDIATION_OUTCOMES]].sum(axis=1)
    counts["agreement_rate"] = _fraction(counts["n_agreement"], concluded)
    carried = _carried_columns(points, ids, exclude=("id", "geometry"))
    return carried.join(counts)
