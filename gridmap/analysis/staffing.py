"""Coverage of "一村一警一律师" and grid workers: which villages lack a police officer or a lawyer,
which grids have no grid worker. Pure functions on pandas frames (GeoDataFrames keep their geometry)."""
from __future__ import annotations

import pandas as pd

from gridmap.catalog import STAFF_ROLES

# Roles every village must have; grid workers are required per grid instead.
REQUIRED_VILLAGE_ROLES = ("police", "lawyer")


def _require(frame: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(missing)}")


def _active(staff: pd.DataFrame) -> pd.DataFrame:
    if "active" in staff.columns:
        return staff[staff["active"].astype(bool)]
    return staff


def village_coverage(villages: pd.DataFrame, grids: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """Staff per village and role, the village's grids without a grid worker, and its gaps.

    Parameters
    ----------
    villages : pandas.DataFrame
        Column ``code`` (others, such as ``name``, ``town_code`` or ``geometry``, are kept).
    grids : pandas.DataFrame
        Columns ``code`` and ``village_code``.
    staff : pandas.DataFrame
        Columns ``role``, ``village_code`` and ``grid_code`` (grid workers only); rows with a false
        ``active`` column are ignored.

    Returns
    -------
    pandas.DataFrame
        ``villages`` with one count column per role in :data:`STAFF_ROLES`, ``grids``,
        ``grids_without_worker``, ``missing_police``, ``missing_lawyer`` and ``gaps`` (a list of
        what is missing: ``"police"``, ``"lawyer"``, ``"grid_worker"``), in the order given.

    Examples
    --------
    >>> villages = pd.DataFrame({"code": ["V1", "V2"]})
    >>> grids = pd.DataFrame({"code": ["G1", "G2", "G3"], "village_code": ["V1", "V1", "V2"]})
    >>> staff = pd.DataFrame({"role": ["police", "lawyer", "grid_worker"],
    ...                       "village_code": ["V1", "V1", "V1"], "grid_code": [None, None, "G1"]})
    >>> village_coverage(villages, grids, staff)["gaps"].tolist()
    [['grid_worker'], ['police', 'lawyer', 'grid_worker']]
    """
    _require(villages, ("code",), "villages")
    _require(grids, ("code", "village_code"), "grids")
    _require(staff, ("role", "village_code", "grid_code"), "staff")
    unknown = set(staff["role"]) - set(STAFF_ROLES)
    if unknown:
        raise ValueError(f"unknown staff role(s): {', '.join(sorted(map(str, unknown)))}")
    active = _active(staff)
    out = villages.copy()
    counts = pd.crosstab(active["village_code"], active["role"]).reindex(columns=list(STAFF_ROLES), fill_value=0)
    for role in STAFF_ROLES:
        out[role] = out["code"].map(counts[role]).fillna(0).astype("int64")
    per_grid = grid_coverage(grids, staff)
    out["grids"] = out["code"].map(per_grid.groupby("village_code").size()).fillna(0).astype("int64")
    uncovered = per_grid[per_grid["missing_grid_worker"]].groupby("village_code").size()
    out["grids_without_worker"] = out["code"].map(uncovered).fillna(0).astype("int64")
    out["missing_police"] = out["police"] == 0
    out["missing_lawyer"] = out["lawyer"] == 0
    out["gaps"] = [
        [name for name, missing in (("police", p), ("lawyer", law), ("grid_worker", g > 0)) if missing]
        for p, law, g in zip(out["missing_police"], out["missing_lawyer"], out["grids_without_worker"])
    ]
    return out


def grid_coverage(grids: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """Grid workers per grid and whether the grid has none.

    Parameters
    ----------
    grids : pandas.DataFrame
        Columns ``code`` and ``village_code`` (others are kept).
    staff : pandas.DataFrame
        As for :func:`village_coverage`.

    Returns
    -------
    pandas.DataFrame
        ``grids`` with ``grid_workers`` (int) and ``missing_grid_worker`` (bool).
    """
    _require(grids, ("code", "village_code"), "grids")
    _require(staff, ("role", "grid_code"), "staff")
    active = _active(staff)
    workers = active[(active["role"] == "grid_worker") & active["grid_code"].notna()]
    out = grids.copy()
    out["grid_workers"] = out["code"].map(workers.groupby("grid_code").size()).fillna(0).astype("int64")
    out["missing_grid_worker"] = out["grid_workers"] == 0
    return out


def gap_summary(coverage: pd.DataFrame, by: str = "town_code") -> pd.DataFrame:
    """Villages and their gaps per ``by`` value (a town, usually).

    Parameters
    ----------
    coverage : pandas.DataFrame
        Output of :func:`village_coverage` with the column ``by``.
    by : str, default "town_code"

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by``: ``villages``, ``missing_police``, ``missing_lawyer``, ``grids``,
        ``grids_without_worker`` and ``complete`` (villages with no gap), all integers.
    """
    _require(coverage, (by, "missing_police", "missing_lawyer", "grids", "grids_without_worker"), "coverage")
    frame = coverage.assign(complete=~coverage["missing_police"] & ~coverage["missing_lawyer"]
                            & (coverage["grids_without_worker"] == 0), villages=1)
    table = frame.groupby(by)[["villages", "missing_police", "missing_lawyer", "grids", "grids_without_worker",
                               "complete"]].sum()
    return table.sort_index().astype("int64")
