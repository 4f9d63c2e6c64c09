"""Do the grids of a village tile it? Gaps, overlaps and parts sticking out, as polygons."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

PROBLEM_COLUMNS = ["kind", "village_code", "grid_codes", "area_m2", "geometry"]


def _check(frame: gpd.GeoDataFrame, columns: tuple[str, ...], what: str) -> None:
    if not isinstance(frame, gpd.GeoDataFrame):
        raise TypeError(f"{what} must be a GeoDataFrame")
    if frame.crs is None:
        raise ValueError(f"{what} has no CRS")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def _polygonal_parts(geometries: np.ndarray) -> np.ndarray:
    """Split (multi)polygons and collections into single polygons, dropping lines and points."""
    parts, index = shapely.get_parts(geometries, return_index=True)
    keep = shapely.get_type_id(parts) == 3
    return parts[keep], index[keep]


def grid_tiling_problems(grids: gpd.GeoDataFrame, villages: gpd.GeoDataFrame, metric_crs,
                         min_area_m2: float = 1.0) -> gpd.GeoDataFrame:
    """Find where the grids of each village fail to tile it.

    Three kinds of problem, each a polygon larger than ``min_area_m2``:

    - ``gap``: part of a village covered by none of its grids;
    - ``overlap``: part covered by two grids of the same village (one row per pair);
    - ``outside``: part of a grid lying outside its village.

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        Columns ``code``, ``village_code`` and polygon geometry.
    villages : geopandas.GeoDataFrame
        Columns ``code`` and polygon geometry; only villages with at least one grid are checked.
    metric_crs : str or pyproj.CRS
        Projected CRS in metres in which areas are measured.
    min_area_m2 : float
        Smaller slivers (rounding noise along shared edges) are ignored.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``kind``, ``village_code``, ``grid_codes`` (comma-separated), ``area_m2`` and the
        problem polygon, in the CRS of ``grids``; empty when the grids tile their villages.

    Examples
    --------
    >>> from shapely import box
    >>> villages = gpd.GeoDataFrame({"code": ["v"]}, geometry=[box(0, 0, 100, 100)], crs=3857)
    >>> grids = gpd.GeoDataFrame({"code": ["a", "b"], "village_code": ["v", "v"]},
    ...                          geometry=[box(0, 0, 60, 100), box(50, 0, 90, 100)], crs=3857)
    >>> grid_tiling_problems(grids, villages, 3857)[["kind", "grid_codes", "area_m2"]]
          kind grid_codes  area_m2
    0  overlap        a,b   1000.0
    1      gap              1000.0
    """
    _check(grids, ("code", "village_code"), "grids")
    _check(villages, ("code",), "villages")
    # Overlay in the data's own CRS, where shared edges coincide exactly; projecting first would
    # bend long straight edges differently from their split copies and invent slivers.
    villages = villages.to_crs(grids.crs).set_index("code")
    rows: list[dict] = []

    grid_geoms = grids.geometry.to_numpy()
    grid_codes = grids["code"].astype(str).to_numpy()
    grid_villages = grids["village_code"].astype(str).to_numpy()

    left, right = shapely.STRtree(grid_geoms).query(grid_geoms, predicate="intersects")
    pairs = (left < right) & (grid_villages[left] == grid_villages[right])
    left, right = left[pairs], right[pairs]
    for i, j, shape in zip(left, right, shapely.intersection(grid_geoms[left], grid_geoms[right])):
        for part in _polygonal_parts(np.array([shape]))[0]:
            rows.append({"kind": "overlap", "village_code": grid_villages[i],
                         "grid_codes": f"{grid_codes[i]},{grid_codes[j]}", "geometry": part})

    for village_code, members in pd.Series(np.arange(len(grid_geoms))).groupby(grid_villages):
        if village_code not in villages.index:
            continue
        village = villages.geometry.loc[village_code]
        covered = shapely.union_all(grid_geoms[members.to_numpy()])
        for part in _polygonal_parts(np.array([shapely.difference(village, covered)]))[0]:
            rows.append({"kind": "gap", "village_code": village_code, "grid_codes": "", "geometry": part})
        for member in members.to_numpy():
            for part in _polygonal_parts(np.array([shapely.difference(grid_geoms[member], village)]))[0]:
                rows.append({"kind": "outside", "village_code": village_code,
                             "grid_codes": grid_codes[member], "geometry": part})

    problems = gpd.GeoDataFrame(rows or {c: [] for c in PROBLEM_COLUMNS}, geometry="geometry", crs=grids.crs)
    problems["area_m2"] = problems.geometry.to_crs(metric_crs).area.round(1).to_numpy() if rows else []
    problems = problems[problems["area_m2"] > min_area_m2] if rows else problems
    return problems[PROBLEM_COLUMNS].reset_index(drop=True)
