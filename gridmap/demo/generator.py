"""Seeded generator of the synthetic demo county Baofeng (宝丰县, 410421).

Only three things are real: the county outline, the official division names and codes
(13 towns, 323 villages/communities) and 29 seat points. Everything else -- town, village
and grid polygons, populations, police stations, patrol zones, mediation points and
incidents -- is generated here, deterministically from a seed: the same seed, inputs and
``today`` give byte-identical files.

Geometry is computed in the metric CRS EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E)
and written as GeoJSON in EPSG:4326 with full coordinate precision, so neighbouring polygons
keep sharing their vertices.

How the layers are made:

* towns: a few thousand blue-noise nodes over the outline are claimed by the towns in a
  multi-source Dijkstra growth on their Delaunay graph, starting from each town's seat and its
  villages' known seats; each town spreads at its own speed, tuned so that town areas follow
  their number of villages (communities count less). A town is the union of the Voronoi cells
  of its nodes, its shared edges smoothed by coverage simplification.
* villages: generator points inside the town -- known seats fixed, communities packed around
  the town seat, rural villages spread by density-weighted Lloyd relaxation (denser near the
  seat) -- then Voronoi cells clipped to the town.
* grids: 1-4 per village, driven by a generated population; Lloyd-relaxed points, Voronoi,
  clipped to the village. Grid codes are the village code plus a 3-digit sequence: grids are
  put in rows by their centroid -- the village's bounding box cut into ceil(sqrt(n))
  equal-height bands numbered from the north -- and numbered row by row, north to south, and
  within a row by centroid x, west to east.
* patrol zones: 1-3 per town, unions of whole villages grown from seed villages over the
  village adjacency graph (so each zone is connected); Z1 holds the station, the others are
  numbered west to east.
* incidents: see :func:`build_incidents`.

Run ``python -m gridmap.demo.generator --source geodata/sources/baofeng --out geodata/baofeng``.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import heapq
import json
import math
import re
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import mapping

from gridmap.catalog import CATEGORY_BY_CODE, MEDIATION_KINDS

GENERATOR_VERSION = "1.0.0"
METRIC_CRS = "EPSG:4547"
COUNTY_CODE = "410421000000"
SYNTHETIC_NOTE = (
    "synthetic: polygons, grids, stations, zones, mediation points and incidents are generated; "
    "only the outline, division names/codes and seats are real"
)
# No public seat points exist for these two; 铁路街道 (the railway subdistrict) lies just east
# of the county seat, 赵庄镇 about 15 km north of it, between 肖旗乡 and the Ru river.
INVENTED_TOWN_SEATS = {
    "410421001000": (113.0715, 33.8765),
    "410421108000": (113.0680, 33.9820),
}
FANYING_VILLAGE_CODE = "410421102204"
FANYING_TOWN_CODE = "410421102000"
TOWN_NODE_COUNT = 2500
COMMUNITY_AREA_WEIGHT = 0.35
MIN_TOWN_AREA_WEIGHT = 1.5
TOWN_EDGE_SMOOTHING_M = 250.0
REMOTE_VILLAGE_RADIUS_M = 2000.0
LOCAL_UTC_OFFSET = "+08:00"

_TO_METRIC = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
_TO_WGS84 = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)


# --------------------------------------------------------------------------- small helpers

def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """Return an independent random stream for one purpose.

    Parameters
    ----------
    seed : int
        The build's seed.
    purpose : str
        A label such as ``"towns"``; each label gets its own stream, so changing how one
        layer draws numbers leaves the others untouched.

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([seed, zlib.crc32(purpose.encode("utf-8"))])


def to_metric(geometries):
    """Project shapely geometries from EPSG:4326 to :data:`METRIC_CRS`."""
    return shapely.transform(geometries, lambda xy: np.column_stack(_TO_METRIC.transform(xy[:, 0], xy[:, 1])))


def to_wgs84(geometries):
    """Project shapely geometries from :data:`METRIC_CRS` to EPSG:4326."""
    return shapely.transform(geometries, lambda xy: np.column_stack(_TO_WGS84.transform(xy[:, 0], xy[:, 1])))


def lonlat_to_xy(lonlat: np.ndarray) -> np.ndarray:
    """Project an (n, 2) array of lon/lat to metric x/y."""
    lonlat = np.atleast_2d(np.asarray(lonlat, dtype=float))
    return np.column_stack(_TO_METRIC.transform(lonlat[:, 0], lonlat[:, 1]))


def xy_to_lonlat(xy: np.ndarray) -> np.ndarray:
    """Project an (n, 2) array of metric x/y to lon/lat."""
    xy = np.atleast_2d(np.asarray(xy, dtype=float))
    return np.column_stack(_TO_WGS84.transform(xy[:, 0], xy[:, 1]))


def as_multipolygon(geometry):
    """Return ``geometry`` as a MultiPolygon, dropping any non-polygonal pieces."""
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type == "Polygon" and not p.is_empty]
    return shapely.MultiPolygon(parts)


# --------------------------------------------------------------------------- inputs

_COMMUNITY_SUFFIX = re.compile(r"(?:社区)?(?:居民委员会|居委会)$")
_VILLAGE_SUFFIX = re.compile(r"村?(?:村民村委员会|村民委员会委会|村民委员会|村委员会|村委会)$")


def display_name(full_name: str) -> str:
    """Strip the committee suffix from an official village name.

    Parameters
    ----------
    full_name : str
        For example ``"范营村村民委员会"`` or ``"东中社区居委会"``; a few official names carry
        typos such as ``"东崔庄村民委员会委会"``.

    Returns
    -------
    str
        ``"范营村"``, ``"东中社区"``; residents' committees always end in 社区 and villages in 村.
    """
    base = _COMMUNITY_SUFFIX.sub("", full_name)
    if base != full_name:
        return base + "社区"
    base = _VILLAGE_SUFFIX.sub("", full_name)
    if base != full_name:
        return base + "村"
    return full_name


def town_short_name(name: str) -> str:
    """Return a town's name without 镇/乡/街道, e.g. ``"闹店"`` for ``"闹店镇"``."""
    return re.sub(r"(街道|镇|乡)$", "", name)


def is_community_code(code: str) -> bool:
    """True for residents' committees (社区/居委会): statistical codes 001-199 in the last group."""
    return int(code[-3:]) < 200


def read_divisions(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the official division list.

    Parameters
    ----------
    path : Path
        ``divisions.csv`` with columns ``code,name,level,parent_code``.

    Returns
    -------
    towns, villages : pandas.DataFrame
        Towns with ``code, name``; villages with ``code, name, full_name, town_code,
        is_community``, both sorted by code.
    """
    divisions = pd.read_csv(path, dtype=str)
    towns = divisions[divisions.level == "town"][["code", "name"]].sort_values("code").reset_index(drop=True)
    villages = divisions[divisions.level == "village"].sort_values("code").reset_index(drop=True)
    villages = pd.DataFrame({
        "code": villages.code,
        "name": villages.name.map(display_name),
        "full_name": villages.name,
        "town_code": villages.parent_code,
        "is_community": villages.code.map(is_community_code),
    })
    return towns, villages


def read_seats(path: Path) -> dict[str, tuple[float, float]]:
    """Read the real seat points as ``{code: (lon, lat)}``."""
    seats = pd.read_csv(path, dtype={"code": str})
    return {row.code: (float(row.lon), float(row.lat)) for row in seats.itertuples()}


def read_outline(path: Path) -> shapely.Polygon:
    """Read the county outline polygon (EPSG:4326)."""
    collection = json.loads(Path(path).read_text(encoding="utf-8"))
    return shapely.geometry.shape(collection["features"][0]["geometry"])


# --------------------------------------------------------------------------- geometry tools

def sample_points_in(polygon, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` uniform points strictly inside ``polygon``.

    Returns
    -------
    numpy.ndarray
        An (count, 2) array of x/y.
    """
    shapely.prepare(polygon)
    xmin, ymin, xmax, ymax = polygon.bounds
    fill = max(polygon.area / ((xmax - xmin) * (ymax - ymin)), 0.05)
    found: list[np.ndarray] = []
    missing = count
    while missing > 0:
        batch = int(missing / fill * 1.3) + 16
        xy = np.column_stack([rng.uniform(xmin, xmax, batch), rng.uniform(ymin, ymax, batch)])
        xy = xy[shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])][:missing]
        found.append(xy)
        missing -= len(xy)
    return np.concatenate(found)


def voronoi_cells(points: np.ndarray, region) -> np.ndarray:
    """Voronoi cells of ``points`` clipped to ``region``, in the order of ``points``.

    Parameters
    ----------
    points : numpy.ndarray
        (n, 2) distinct x/y, n >= 1.
    region : shapely Polygon or MultiPolygon

    Returns
    -------
    numpy.ndarray of shapely geometries
    """
    if len(points) == 1:
        return np.array([region], dtype=object)
    frame = shapely.buffer(shapely.envelope(region), 10_000.0)
    diagram = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=frame, ordered=True)
    cells = np.asarray(shapely.get_parts(diagram), dtype=object)
    if len(cells) != len(points):
        raise ValueError("voronoi_cells needs distinct points")
    shapely.prepare(region)
    crossing = ~shapely.contains(region, cells)
    cells[crossing] = shapely.intersection(cells[crossing], region)
    return cells


def relax_points(points: np.ndarray, fixed: np.ndarray, region, samples: np.ndarray,
                 sample_weights: np.ndarray, iterations: int) -> np.ndarray:
    """Density-weighted Lloyd relaxation, computed on sample points.

    Each free point moves to the weighted mean of the samples nearest to it; points whose
    mean falls outside ``region`` take the nearest of their own samples instead.

    Parameters
    ----------
    points : numpy.ndarray
        (n, 2) starting positions.
    fixed : numpy.ndarray of bool
        Points that do not move (known seats).
    region : shapely geometry
        Where the points must stay.
    samples, sample_weights : numpy.ndarray
        (m, 2) points covering ``region`` uniformly, and the density at each.
    iterations : int

    Returns
    -------
    numpy.ndarray
        (n, 2) relaxed positions.
    """
    points = points.copy()
    sample_geoms = shapely.points(samples)
    for _ in range(iterations):
        owner = shapely.STRtree(shapely.points(points)).query_nearest(sample_geoms, all_matches=False)[1]
        weight_sum = np.bincount(owner, sample_weights, minlength=len(points))
        mean_x = np.bincount(owner, sample_weights * samples[:, 0], minlength=len(points))
        mean_y = np.bincount(owner, sample_weights * samples[:, 1], minlength=len(points))
        movable = ~fixed & (weight_sum > 0)
        new = points.copy()
        new[movable, 0] = mean_x[movable] / weight_sum[movable]
        new[movable, 1] = mean_y[movable] / weight_sum[movable]
        outside = movable & ~shapely.contains_xy(region, new[:, 0], new[:, 1])
        for index in np.flatnonzero(outside):
            own = samples[owner == index]
            new[index] = own[np.argmin(np.hypot(*(own - new[index]).T))]
        points = new
    return points


def merge_stray_parts(cells: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Give detached pieces of cells to the neighbour they share the longest border with.

    Clipping Voronoi cells to a non-convex region can leave a cell in several pieces; only
    the piece holding the cell's anchor point stays with it.

    Parameters
    ----------
    cells : numpy.ndarray of geometries
        A polygonal coverage.
    anchors : numpy.ndarray
        (n, 2) a point inside each cell's main piece.

    Returns
    -------
    numpy.ndarray of geometries
    """
    parts, owner = shapely.get_parts(cells, return_index=True)
    parts = np.asarray(parts, dtype=object)
    holds_anchor = shapely.contains_xy(parts, anchors[owner, 0], anchors[owner, 1])
    is_main = holds_anchor.copy()
    for cell in range(len(cells)):
        mine = np.flatnonzero(owner == cell)
        if not is_main[mine].any() and len(mine):
            is_main[mine[np.argmax(shapely.area(parts[mine]))]] = True
    if is_main.all():
        return cells
    new_owner = owner.copy()
    tree = shapely.STRtree(parts)
    for stray in np.flatnonzero(~is_main):
        neighbours = [n for n in tree.query(parts[stray], predicate="intersects") if owner[n] != owner[stray]]
        if not neighbours:
            continue
        shared = shapely.length(shapely.intersection(shapely.boundary(parts[neighbours]),
                                                     shapely.boundary(parts[stray])))
        new_owner[stray] = owner[neighbours[int(np.argmax(shared))]]
    return np.array([shapely.union_all(parts[new_owner == cell]) for cell in range(len(cells))], dtype=object)


def delaunay_edges(points: np.ndarray, region) -> np.ndarray:
    """Edges of the Delaunay triangulation of ``points`` that run inside ``region``.

    Returns
    -------
    numpy.ndarray
        (e, 3) rows of ``(i, j, length)``.
    """
    lines = shapely.get_parts(shapely.delaunay_triangles(shapely.multipoints(points), only_edges=True))
    shapely.prepare(region)
    lines = lines[shapely.covers(region, lines)]
    index_of = {tuple(p): i for i, p in enumerate(points)}
    coords = shapely.get_coordinates(lines).reshape(-1, 2, 2)
    i = np.array([index_of[tuple(c)] for c in coords[:, 0]])
    j = np.array([index_of[tuple(c)] for c in coords[:, 1]])
    return np.column_stack([i, j, shapely.length(lines)])


def grow_regions(node_count: int, edges: np.ndarray, sources: list[tuple[int, int]],
                 speeds: np.ndarray) -> np.ndarray:
    """Label graph nodes by multi-source growth where each label spreads at its own speed.

    A node goes to the label whose front reaches it first, travelling only through nodes
    that label already holds, so every label's region is connected to one of its sources.

    Parameters
    ----------
    node_count : int
    edges : numpy.ndarray
        (e, 3) rows of ``(i, j, length)``.
    sources : list of (node, label)
    speeds : numpy.ndarray
        Speed per label.

    Returns
    -------
    numpy.ndarray of int
        Label per node; nodes the growth cannot reach take their nearest neighbour's label
        in a later pass (``-1`` if isolated).
    """
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(node_count)]
    for i, j, length in edges:
        neighbours[int(i)].append((int(j), float(length)))
        neighbours[int(j)].append((int(i), float(length)))
    labels = np.full(node_count, -1)
    heap = [(0.0, node, label) for node, label in sources]
    heapq.heapify(heap)
    while heap:
        arrival, node, label = heapq.heappop(heap)
        if labels[node] >= 0:
            continue
        labels[node] = label
        for neighbour, length in neighbours[node]:
            if labels[neighbour] < 0:
                heapq.heappush(heap, (arrival + length / speeds[label], neighbour, label))
    return labels


def balanced_growth(node_areas: np.ndarray, edges: np.ndarray, sources: list[tuple[int, int]],
                    target_shares: np.ndarray, rounds: int = 12) -> np.ndarray:
    """Run :func:`grow_regions`, tuning speeds until region areas approach their targets.

    Parameters
    ----------
    node_areas : numpy.ndarray
        Area each node stands for.
    edges, sources
        As for :func:`grow_regions`.
    target_shares : numpy.ndarray
        Wanted share of the total area per label.
    rounds : int

    Returns
    -------
    numpy.ndarray of int
        Label per node.
    """
    speeds = np.sqrt(target_shares / target_shares.mean())
    targets = target_shares / target_shares.sum() * node_areas.sum()
    for _ in range(rounds):
        labels = grow_regions(len(node_areas), edges, sources, speeds)
        areas = np.bincount(labels[labels >= 0], node_areas[labels >= 0], minlength=len(target_shares))
        speeds = speeds * np.clip((targets / np.maximum(areas, 1.0)) ** 0.35, 0.7, 1.4)
    return labels


def spaced_points_near(centre: np.ndarray, count: int, spread: float, spacing: float, region,
                       taken: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` points scattered around ``centre``, at least ``spacing`` apart.

    Parameters
    ----------
    centre : numpy.ndarray
        (2,) x/y.
    count : int
    spread : float
        Standard deviation of the scatter in metres.
    spacing : float
        Minimum distance to each other and to ``taken``; shrinks if the room runs out.
    region : shapely geometry
        Points must fall strictly inside.
    taken : numpy.ndarray
        (k, 2) points already placed.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        (count, 2).
    """
    placed = [p for p in np.atleast_2d(taken).reshape(-1, 2)]
    new: list[np.ndarray] = []
    attempts = 0
    while len(new) < count:
        candidate = centre + rng.normal(0.0, spread, 2)
        attempts += 1
        if attempts % 200 == 0:
            spacing *= 0.8
            spread *= 1.2
        if not shapely.contains_xy(region, candidate[0], candidate[1]):
            continue
        if placed and np.min(np.hypot(*(np.array(placed) - candidate).T)) < spacing:
            continue
        placed.append(candidate)
        new.append(candidate)
    return np.array(new).reshape(-1, 2)


def clean_coverage(cells: np.ndarray) -> np.ndarray:
    """Make a coverage edge-matched (identical shared vertices, no slivers)."""
    return np.asarray(shapely.coverage_clean(np.asarray(cells, dtype=object)), dtype=object)


# --------------------------------------------------------------------------- towns

def town_seats(towns: pd.DataFrame, seats: dict[str, tuple[float, float]]) -> np.ndarray:
    """Return each town's seat as metric x/y, using the invented seats where none is known."""
    lonlat = np.array([seats.get(code, INVENTED_TOWN_SEATS.get(code)) for code in towns.code], dtype=float)
    if np.isnan(lonlat).any():
        missing = towns.code[np.isnan(lonlat).any(axis=1)].tolist()
        raise ValueError(f"no seat for towns {missing}")
    return lonlat_to_xy(lonlat)


def town_area_weights(towns: pd.DataFrame, villages: pd.DataFrame) -> np.ndarray:
    """Wanted relative town areas: one per rural village, less per community."""
    weight = villages.is_community.map({True: COMMUNITY_AREA_WEIGHT, False: 1.0})
    per_town = weight.groupby(villages.town_code).sum()
    return np.maximum(towns.code.map(per_town).to_numpy(dtype=float), MIN_TOWN_AREA_WEIGHT)


def build_towns(outline, towns: pd.DataFrame, villages: pd.DataFrame,
                seats: dict[str, tuple[float, float]], seed: int) -> pd.DataFrame:
    """Tile the outline with the 13 towns.

    Parameters
    ----------
    outline : shapely Polygon
        The county, metric CRS.
    towns, villages : pandas.DataFrame
        From :func:`read_divisions`.
    seats : dict
        Real seat points (lon, lat) by division code.
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``towns`` plus ``seat_xy`` (metric) and ``geometry`` (metric).
    """
    rng = rng_for(seed, "towns")
    seat_xy = town_seats(towns, seats)
    known = villages[villages.code.isin(seats)]
    known_xy = lonlat_to_xy(np.array([seats[c] for c in known.code]))
    town_index = {code: i for i, code in enumerate(towns.code)}

    fixed_xy = np.vstack([seat_xy, known_xy])
    fixed_labels = np.concatenate([np.arange(len(towns)), known.town_code.map(town_index).to_numpy()])
    free_xy = sample_points_in(outline, TOWN_NODE_COUNT, rng)
    nodes = np.vstack([fixed_xy, free_xy])
    fixed = np.arange(len(nodes)) < len(fixed_xy)
    samples = sample_points_in(outline, TOWN_NODE_COUNT * 10, rng)
    nodes = relax_points(nodes, fixed, outline, samples, np.ones(len(samples)), iterations=5)

    cells = voronoi_cells(nodes, outline)
    edges = delaunay_edges(nodes, outline)
    sources = [(int(node), int(label)) for node, label in enumerate(fixed_labels)]
    shares = town_area_weights(towns, villages)
    labels = balanced_growth(shapely.area(cells), edges, sources, shares)
    labels = fill_unreached(labels, nodes)

    geometries = np.array([shapely.union_all(cells[labels == t]) for t in range(len(towns))], dtype=object)
    geometries = clean_coverage(merge_stray_parts(geometries, seat_xy))
    geometries = smooth_shared_edges(geometries, fixed_xy, fixed_labels)
    result = towns.copy()
    result["seat_xy"] = list(seat_xy)
    result["geometry"] = geometries
    return result


def fill_unreached(labels: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Give nodes the growth never reached the label of their nearest labelled node."""
    reached = labels >= 0
    if reached.all():
        return labels
    tree = shapely.STRtree(shapely.points(nodes[reached]))
    nearest = tree.query_nearest(shapely.points(nodes[~reached]), all_matches=False)[1]
    labels = labels.copy()
    labels[~reached] = labels[reached][nearest]
    return labels


def smooth_shared_edges(geometries: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Simplify the shared edges of a coverage, keeping every labelled point in its polygon.

    The tolerance halves until no point ends up outside its own polygon; the outer boundary
    is never touched.
    """
    tolerance = TOWN_EDGE_SMOOTHING_M
    while tolerance > 1.0:
        smoothed = np.asarray(shapely.coverage_simplify(geometries, tolerance, simplify_boundary=False), dtype=object)
        if shapely.contains_xy(smoothed[labels], points[:, 0], points[:, 1]).all():
            return smoothed
        tolerance /= 2
    return geometries


# --------------------------------------------------------------------------- villages

def village_generators(town: pd.Series, town_villages: pd.DataFrame, seats: dict[str, tuple[float, float]],
                       rng: np.random.Generator) -> np.ndarray:
    """Place one generator point per village of a town.

    Known seats are used as they are. In towns with rural villages the communities and the
    seat village (the one named after the town) are packed around the town seat; the rural
    villages are spread by Lloyd relaxation over a density that peaks at the seat, so
    villages near the seat come out smaller.

    Returns
    -------
    numpy.ndarray
        (len(town_villages), 2) metric x/y, in the order of ``town_villages``.
    """
    region = town.geometry
    area = region.area
    seat = np.asarray(town.seat_xy)
    count = len(town_villages)
    points = np.full((count, 2), np.nan)
    fixed = np.zeros(count, dtype=bool)
    for i, code in enumerate(town_villages.code):
        if code in seats:
            points[i] = lonlat_to_xy(np.array([seats[code]]))[0]
            fixed[i] = True

    has_rural = not town_villages.is_community.all()
    seat_village = town_villages.name.eq(town_short_name(town["name"]) + "村").to_numpy()
    if seat_village.any() and not fixed[seat_village].any():
        i = int(np.flatnonzero(seat_village)[0])
        points[i] = spaced_points_near(seat, 1, 150.0, 0.0, region, np.empty((0, 2)), rng)[0]
        fixed[i] = True
    core = town_villages.is_community.to_numpy() & ~fixed & has_rural
    if core.any():
        points[core] = spaced_points_near(seat, int(core.sum()), 700.0, 380.0, region, points[fixed], rng)
        fixed |= core

    spread = np.flatnonzero(~fixed)
    samples = sample_points_in(region, max(60 * count, 1500), rng)
    reach = 0.35 * math.sqrt(area)
    density = 1.0 + 6.0 * np.exp(-((np.hypot(*(samples - seat).T) / reach) ** 2))
    if len(spread):
        start = rng.choice(len(samples), size=len(spread), replace=False, p=density / density.sum())
        points[spread] = samples[start]
        points = relax_points(points, fixed, region, samples, density, iterations=8)
    return points


def build_villages(towns: pd.DataFrame, villages: pd.DataFrame,
                   seats: dict[str, tuple[float, float]], seed: int) -> pd.DataFrame:
    """Tile each town with its villages.

    Returns
    -------
    pandas.DataFrame
        ``villages`` plus ``seat_xy`` (the generator point, metric) and ``geometry`` (metric).
    """
    pieces = []
    for town in towns.itertuples(index=False):
        town_row = pd.Series(town._asdict())
        rng = rng_for(seed, f"villages:{town.code}")
        members = villages[villages.town_code == town.code].reset_index(drop=True)
        points = village_generators(town_row, members, seats, rng)
        cells = voronoi_cells(points, town.geometry)
        cells = clean_coverage(merge_stray_parts(cells, points))
        members = members.copy()
        members["seat_xy"] = list(points)
        members["geometry"] = cells
        pieces.append(members)
    return pd.concat(pieces, ignore_index=True).sort_values("code").reset_index(drop=True)


# --------------------------------------------------------------------------- grids

def grid_populations(village: pd.Series, distance_to_seat: float, rng: np.random.Generator) -> np.ndarray:
    """Draw the population of each grid of a village.

    Communities hold 3-4 grids of 900-1,500 people (more near the seat); rural villages
    1-3 grids of 500-1,500, giving villages of roughly 800-3,000 people.

    Returns
    -------
    numpy.ndarray of int
        One population per grid.
    """
    if village.is_community:
        count = 4 if rng.random() < (0.8 if distance_to_seat < 1500 else 0.5) else 3
        return rng.integers(900, 1501, count)
    count = int(rng.choice([1, 2, 3], p=[0.42, 0.43, 0.15]))
    low = {1: 800, 2: 600, 3: 500}[count]
    high = {1: 1500, 2: 1500, 3: 1000}[count]
    return rng.integers(low, high + 1, count)


def split_village(region, count: int, rng: np.random.Generator) -> np.ndarray:
    """Split a village polygon into ``count`` compact pieces tiling it."""
    if count == 1:
        return np.array([region], dtype=object)
    samples = sample_points_in(region, 40 * count, rng)
    start = samples[rng.choice(len(samples), size=count, replace=False)]
    points = relax_points(start, np.zeros(count, dtype=bool), region, samples, np.ones(len(samples)), 8)
    cells = voronoi_cells(points, region)
    return clean_coverage(merge_stray_parts(cells, points))


def grid_order(cells: np.ndarray, village_region) -> np.ndarray:
    """Order grids north to south by row, west to east within a row.

    Rows are ceil(sqrt(n)) equal-height bands of the village's bounding box, numbered from
    the north; a grid's row is the band holding its centroid.

    Returns
    -------
    numpy.ndarray of int
        Indices of ``cells`` in numbering order.
    """
    centroids = shapely.get_coordinates(shapely.centroid(cells))
    _, ymin, _, ymax = village_region.bounds
    rows = max(1, math.ceil(math.sqrt(len(cells))))
    band = np.clip(((ymax - centroids[:, 1]) / max(ymax - ymin, 1e-9) * rows).astype(int), 0, rows - 1)
    return np.lexsort((centroids[:, 0], band))


def build_grids(towns: pd.DataFrame, villages: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Split every village into 1-4 grids with populations and households.

    Returns
    -------
    pandas.DataFrame
        ``code, name, village_code, population, households, area_km2, geometry`` (metric).
    """
    seat_of_town = dict(zip(towns.code, towns.seat_xy, strict=True))
    rows = []
    for village in villages.itertuples(index=False):
        rng = rng_for(seed, f"grids:{village.code}")
        distance = float(np.hypot(*(np.asarray(village.seat_xy) - seat_of_town[village.town_code])))
        populations = grid_populations(pd.Series(village._asdict()), distance, rng)
        cells = split_village(village.geometry, len(populations), rng)
        for sequence, cell_index in enumerate(grid_order(cells, village.geometry), start=1):
            population = int(populations[sequence - 1])
            rows.append({
                "code": f"{village.code}{sequence:03d}",
                "name": f"{village.name}第{sequence}网格",
                "village_code": village.code,
                "population": population,
                "households": int(round(population / rng.uniform(2.9, 3.5))),
                "geometry": cells[cell_index],
            })
    grids = pd.DataFrame(rows)
    grids["area_km2"] = np.round(shapely.area(grids.geometry.to_numpy()) / 1e6, 4)
    return grids[["code", "name", "village_code", "population", "households", "area_km2", "geometry"]]


# --------------------------------------------------------------------------- police

def station_name(town_name: str) -> str:
    """``"闹店镇"`` -> ``"闹店派出所"``; ``"铁路街道"`` -> ``"铁路派出所"``."""
    return town_short_name(town_name) + "派出所"


def point_near(centre: np.ndarray, region, rng: np.random.Generator, spread: float,
               margin: float = 30.0) -> np.ndarray:
    """A random point around ``centre`` at least ``margin`` metres inside ``region``."""
    inner = shapely.buffer(region, -margin)
    if inner.is_empty:
        inner = region
    for attempt in range(2000):
        candidate = centre + rng.normal(0.0, spread * (1 + attempt / 100), 2)
        if shapely.contains_xy(inner, candidate[0], candidate[1]):
            return candidate
    return np.asarray(shapely.get_coordinates(shapely.point_on_surface(inner))[0])


def build_stations(towns: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One police station per town, a few hundred metres from the town seat.

    Returns
    -------
    pandas.DataFrame
        ``code, name, town_code, geometry`` (metric Points).
    """
    rng = rng_for(seed, "stations")
    rows = []
    for town in towns.itertuples(index=False):
        xy = point_near(np.asarray(town.seat_xy), town.geometry, rng, spread=250.0)
        rows.append({"code": f"PS{town.code}", "name": station_name(town.name),
                     "town_code": town.code, "geometry": shapely.Point(xy)})
    return pd.DataFrame(rows)


def village_adjacency(geometries: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Edges between polygons sharing a border longer than 1 m.

    Returns
    -------
    numpy.ndarray
        (e, 3) rows of ``(i, j, distance between centres)``.
    """
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(geometries[left]),
                                                 shapely.boundary(geometries[right])))
    keep = shared > 1.0
    left, right = left[keep], right[keep]
    return np.column_stack([left, right, np.hypot(*(centres[left] - centres[right]).T)])


def patrol_zone_count(village_count: int) -> int:
    """How many patrol zones a town with this many villages gets (1-3)."""
    return 1 if village_count <= 10 else 2 if village_count <= 26 else 3


def zone_seed_villages(centres: np.ndarray, station_village: int, count: int) -> list[int]:
    """Seed villages for the zones: the station's village, then farthest-point picks."""
    seeds = [station_village]
    while len(seeds) < count:
        distance = np.min(np.hypot(centres[:, None, 0] - centres[None, seeds, 0],
                                   centres[:, None, 1] - centres[None, seeds, 1]), axis=1)
        seeds.append(int(np.argmax(distance)))
    return seeds


def build_patrol_zones(towns: pd.DataFrame, villages: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """Split each town into 1-3 patrol zones made of whole villages.

    Zones grow from seed villages over the village adjacency graph with balanced areas, so
    each zone is one connected piece. ``Z1`` holds the station; the others are numbered
    west to east by centroid.

    Returns
    -------
    pandas.DataFrame
        ``code, name, station_code, geometry`` (metric MultiPolygons).
    """
    rows = []
    for town, station in zip(towns.itertuples(index=False), stations.itertuples(index=False), strict=True):
        members = villages[villages.town_code == town.code]
        geometries = members.geometry.to_numpy()
        centres = shapely.get_coordinates(shapely.point_on_surface(geometries))
        count = patrol_zone_count(len(members))
        station_xy = shapely.get_coordinates(station.geometry)[0]
        station_village = int(np.flatnonzero(shapely.contains_xy(geometries, *station_xy))[0])
        if count == 1:
            labels = np.zeros(len(members), dtype=int)
        else:
            seeds = zone_seed_villages(centres, station_village, count)
            edges = village_adjacency(geometries, centres)
            labels = balanced_growth(shapely.area(geometries), edges, [(s, k) for k, s in enumerate(seeds)],
                                     np.ones(count))
            labels = fill_unreached(labels, centres)
        zones = [shapely.union_all(geometries[labels == k]) for k in range(count)]
        others = sorted(range(1, count), key=lambda k: shapely.centroid(zones[k]).x)
        for number, k in enumerate([0, *others], start=1):
            rows.append({"code": f"{town.code}-Z{number}", "name": f"{station.name}第{number}巡区",
                         "station_code": station.code, "geometry": zones[k]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- mediation points

MEDIATION_HOURS = {
    "bailitang": "周一至周日 8:00-18:00",
    "shuoshiting": ("每周三、周六 9:00-11:30", "周一至周五 8:30-17:30", "逢集日 8:00-12:00"),
    "committee": "周一至周五 8:30-17:30",
    "police_office": "24小时",
    "legal_station": ("周一至周五 8:30-17:30", "周一至周五 9:00-17:00"),
}
MEDIATOR_RANGE = {"bailitang": (10, 15), "shuoshiting": (3, 7), "committee": (5, 9),
                  "police_office": (2, 3), "legal_station": (2, 4)}
MEDIATION_SUFFIX = {"bailitang": "摆理堂", "shuoshiting": "说事厅", "committee": "人民调解委员会",
                    "police_office": "警务室", "legal_station": "法律服务站"}


def seat_villages(towns: pd.DataFrame, villages: pd.DataFrame) -> dict[str, int]:
    """Row index in ``villages`` of the village holding each town's seat."""
    geometries = villages.geometry.to_numpy()
    result = {}
    for town in towns.itertuples(index=False):
        inside = np.flatnonzero(shapely.contains_xy(geometries, *town.seat_xy))
        result[town.code] = int(inside[0])
    return result


def remote_villages(towns: pd.DataFrame, villages: pd.DataFrame, share: float = 0.05) -> set[int]:
    """The villages farthest from any town seat, left without a nearby mediation point."""
    centres = shapely.get_coordinates(shapely.point_on_surface(villages.geometry.to_numpy()))
    seats = np.vstack(towns.seat_xy)
    offsets = centres[:, None, :] - seats[None, :, :]
    distance = np.min(np.hypot(offsets[..., 0], offsets[..., 1]), axis=1)
    count = int(round(share * len(villages)))
    return set(np.argsort(-distance, kind="stable")[:count].tolist())


def point_name(kind: str, village_name: str, town_name: str, taken: set[str]) -> str:
    """Name a mediation point, unique within ``taken``.

    Town-level kinds are named after the town (``"闹店镇人民调解委员会"``), the others after the
    village (``"范营村说事厅"``), with the town in front when two villages share a name.
    """
    if kind in ("committee", "legal_station"):
        name = town_name + MEDIATION_SUFFIX[kind]
    else:
        name = village_name + MEDIATION_SUFFIX[kind]
        if name in taken:
            name = town_name + name
    taken.add(name)
    return name


def build_mediation_points(towns: pd.DataFrame, villages: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Place the mediation points (调解阵地).

    The 摆理堂 at 范营村; a people's mediation committee and a legal-service station in each
    town's seat village; 说事厅 in about a quarter of the other villages and 警务室 in about
    half the communities and a few large villages. The villages farthest from the town seats
    (:func:`remote_villages`) and villages whose seat lies near them get none, so those
    villages have no point within :data:`REMOTE_VILLAGE_RADIUS_M` of their point-on-surface.

    Returns
    -------
    pandas.DataFrame
        ``name, kind, village_code, contact, mediators, opening_hours, geometry`` (metric Points).
    """
    rng = rng_for(seed, "mediation")
    town_name = dict(zip(towns.code, towns.name, strict=True))
    seat_rows = seat_villages(towns, villages)
    remote = remote_villages(towns, villages)
    remote_centres = shapely.point_on_surface(villages.geometry.to_numpy()[sorted(remote)])
    remote_zone = shapely.union_all(shapely.buffer(remote_centres, REMOTE_VILLAGE_RADIUS_M + 500.0))
    near_remote = set(np.flatnonzero(shapely.contains_xy(remote_zone, *np.vstack(villages.seat_xy).T)).tolist())
    near_remote -= set(seat_rows.values())
    fanying = int(np.flatnonzero(villages.code == FANYING_VILLAGE_CODE)[0])
    if villages.town_code.iat[fanying] != FANYING_TOWN_CODE:
        raise ValueError("范营村 is expected in 闹店镇")

    wanted: list[tuple[int, str]] = [(fanying, "bailitang")]
    for town in towns.itertuples(index=False):
        wanted += [(seat_rows[town.code], "committee"), (seat_rows[town.code], "legal_station")]
    special = {fanying, *seat_rows.values()}
    centres = np.vstack(villages.seat_xy)
    others = np.array([row for row in range(len(villages)) if row not in special])
    allowed = np.array([row for row in others if row not in near_remote])
    talk_halls = spread_out_selection(centres, allowed, int(round(0.25 * len(others))),
                                      centres[sorted(special)], rng)
    wanted += [(int(row), "shuoshiting") for row in talk_halls]
    community = villages.is_community.to_numpy()
    for row in allowed:
        if rng.random() < (0.5 if community[row] else 0.03):
            wanted.append((int(row), "police_office"))

    rows, names, phones = [], set(), set()
    for row, kind in sorted(wanted, key=lambda item: (villages.code.iat[item[0]], MEDIATION_KINDS.index(item[1]))):
        village = villages.iloc[row]
        centre = np.asarray(village.seat_xy)
        if kind in ("committee", "legal_station"):
            centre = np.asarray(towns.loc[towns.code == village.town_code, "seat_xy"].iat[0])
        xy = point_near(centre, village.geometry, rng, spread=150.0)
        hours = MEDIATION_HOURS[kind]
        low, high = MEDIATOR_RANGE[kind]
        rows.append({
            "name": point_name(kind, village["name"], town_name[village.town_code], names),
            "kind": kind,
            "village_code": village.code,
            "contact": fake_office_phone(rng, phones),
            "mediators": int(rng.integers(low, high + 1)),
            "opening_hours": hours if isinstance(hours, str) else str(rng.choice(hours)),
            "geometry": shapely.Point(xy),
        })
    return pd.DataFrame(rows)


def spread_out_selection(centres: np.ndarray, candidates: np.ndarray, count: int, existing: np.ndarray,
                         rng: np.random.Generator) -> list[int]:
    """Pick ``count`` candidates one at a time, each among the three farthest from all picked so far.

    Parameters
    ----------
    centres : numpy.ndarray
        (n, 2) a point per village.
    candidates : numpy.ndarray of int
        Rows of ``centres`` that may be picked.
    count : int
    existing : numpy.ndarray
        (k, 2) points already there, which the picks keep away from too.
    rng : numpy.random.Generator

    Returns
    -------
    list of int
    """
    taken = [p for p in existing]
    left = list(candidates)
    picked: list[int] = []
    while left and len(picked) < count:
        offsets = centres[left][:, None, :] - np.array(taken)[None, :, :]
        gaps = np.hypot(offsets[..., 0], offsets[..., 1]).min(axis=1)
        choice = int(rng.choice(np.argsort(-gaps, kind="stable")[:3]))
        row = left.pop(choice)
        picked.append(row)
        taken.append(centres[row])
    return picked


def fake_office_phone(rng: np.random.Generator, taken: set[str]) -> str:
    """A made-up Baofeng office number such as ``"0375-6123456"``, unique in ``taken``."""
    while True:
        phone = f"0375-6{int(rng.integers(0, 1_000_000)):06d}"
        if phone not in taken:
            taken.add(phone)
            return phone


# --------------------------------------------------------------------------- incidents: vocabulary

CATEGORY_SHARES = {"DSP": 0.35, "SEC": 0.20, "FIR": 0.12, "TRF": 0.12, "LOG": 0.06, "HAZ": 0.04,
                   "ACC": 0.04, "PET": 0.07}
SUBCATEGORY_WEIGHTS = {
    "DSP": {"neighbour": 28, "family": 18, "land": 16, "wages": 10, "enterprise": 6, "property": 7,
            "demolition": 5, "other": 10},
    "SEC": {"theft": 30, "fraud": 22, "fight": 20, "gang_tip": 5, "vice": 8, "other": 15},
    "FIR": {"nine_small": 35, "ebike": 35, "blocked_exit": 18, "other": 12},
    "HAZ": {"storage": 45, "transport": 25, "sale": 30},
    "LOG": {"real_name": 40, "inspection": 35, "xray": 25},
    "TRF": {"hazard_spot": 55, "accident": 45},
    "ACC": {"injury": 92, "death": 8},
    "PET": {"village": 62, "town": 28, "county": 8, "above_county": 2},
}
SEVERITY_WEIGHTS = {
    "DSP": (45, 38, 14, 3), "SEC": (30, 40, 22, 8), "FIR": (30, 45, 20, 5), "HAZ": (20, 40, 30, 10),
    "LOG": (50, 40, 10, 0), "TRF": (35, 40, 20, 5),
    ("ACC", "injury"): (0, 25, 65, 10), ("ACC", "death"): (0, 0, 0, 1),
    ("PET", "village"): (40, 40, 20, 0), ("PET", "town"): (20, 50, 30, 0),
    ("PET", "county"): (0, 40, 50, 10), ("PET", "above_county"): (0, 10, 60, 30),
}
# (none, public_order, criminal)
LEGAL_CLASS_WEIGHTS = {
    ("SEC", "theft"): (35, 50, 15), ("SEC", "fraud"): (45, 20, 35), ("SEC", "fight"): (20, 70, 10),
    ("SEC", "gang_tip"): (75, 10, 15), ("SEC", "vice"): (20, 75, 5), ("SEC", "other"): (50, 48, 2),
    "DSP": (98, 2, 0), "FIR": (97, 3, 0), "HAZ": (75, 22, 3), "LOG": (95, 5, 0),
    ("TRF", "hazard_spot"): (100, 0, 0), ("TRF", "accident"): (95, 0, 5),
    ("ACC", "injury"): (97, 0, 3), ("ACC", "death"): (85, 0, 15), "PET": (99, 1, 0),
}
ENTERPRISE_SHARE = {
    ("DSP", "enterprise"): 0.95, ("DSP", "wages"): 0.85, ("DSP", "property"): 0.30, ("DSP", "demolition"): 0.20,
    "DSP": 0.03, "LOG": 0.90, "HAZ": 0.75, "ACC": 0.55, ("SEC", "fraud"): 0.08, "SEC": 0.03,
    ("FIR", "nine_small"): 0.60, "FIR": 0.10, "TRF": 0.08, "PET": 0.10,
}
# Where incidents happen: a share per location mode (see sample_locations).
LOCATION_MODES = {
    "DSP": {"village": 50, "market": 12, "seat": 10, "community": 10, "spread": 18},
    "SEC": {"seat": 25, "market": 15, "village": 30, "community": 10, "spread": 20},
    "FIR": {"seat": 25, "market": 20, "community": 15, "village": 25, "spread": 15},
    "TRF": {"road": 70, "seat": 20, "spread": 10},
    "LOG": {"seat": 55, "market": 25, "community": 20},
    "HAZ": {"site": 65, "village": 20, "seat": 15},
    "ACC": {"site": 50, "village": 50},
    "PET": {"village": 75, "community": 10, "spread": 15},
    ("DSP", "property"): {"community": 90, "seat": 10},
    ("DSP", "enterprise"): {"site": 60, "seat": 40},
    ("DSP", "wages"): {"site": 50, "seat": 30, "village": 20},
    ("DSP", "land"): {"village": 80, "spread": 20},
}
HOUR_PROFILES = {
    "daily": (1, .6, .4, .3, .3, .5, 1.2, 2.5, 4, 5.5, 6.5, 6.8, 5, 4, 4.5, 5, 5.2, 5.5, 6, 6.5, 6, 4.5, 3, 1.8),
    "commute": (.8, .5, .4, .4, .5, 1, 3, 7, 7.5, 4, 3.5, 3.8, 4.2, 3.8, 3.6, 4, 5, 7.5, 7, 5, 3.5, 2.5, 1.8, 1.2),
    "night": (3, 2.5, 2, 1.5, 1, .8, 1, 1.5, 2.5, 3.5, 4, 4.5, 4, 3.8, 4, 4.3, 4.5, 5, 5.5, 6.5, 7, 6.5, 5.5, 4),
    "fire": (1.5, 1, .8, .6, .5, .6, 1, 2, 4, 5.5, 6, 5.5, 3, 3.5, 5, 5.5, 5, 4, 3.5, 4, 4.5, 4, 3, 2),
    "office": (.2, .1, .1, .1, .1, .2, .5, 2, 6, 8, 8.5, 7, 3, 4, 7, 8, 7.5, 5, 2, 1, .6, .4, .3, .2),
}
CATEGORY_HOURS = {"DSP": "daily", "SEC": "night", "FIR": "fire", "TRF": "commute", "LOG": "office",
                  "HAZ": "office", "ACC": "office", "PET": "office"}
WEEKDAY_FACTORS = {  # Monday .. Sunday
    "DSP": (1, .95, .95, .95, 1, 1.25, 1.3), "SEC": (.95, .95, .95, 1, 1.1, 1.2, 1.15),
    "FIR": (1.2, 1.2, 1.2, 1.2, 1.1, .5, .4), "TRF": (1.1, 1.05, 1.05, 1.05, 1.15, .8, .8),
    "LOG": (1.2, 1.2, 1.2, 1.2, 1.1, .5, .4), "HAZ": (1.2, 1.2, 1.2, 1.2, 1.1, .5, .4),
    "ACC": (1.1, 1.1, 1.1, 1.1, 1.1, .8, .7), "PET": (1.3, 1.2, 1.1, 1.1, 1, .4, .3),
}
MONTH_FACTORS = {  # Spring Festival returnees and harvest for disputes, heating season for fires
    "DSP": {1: 1.3, 2: 1.35, 6: 1.15}, "FIR": {11: 1.3, 12: 1.35, 1: 1.4, 2: 1.3, 3: 1.15},
    "TRF": {12: 1.15, 1: 1.15}, "ACC": {6: 1.2, 7: 1.2, 8: 1.2}, "SEC": {1: 1.15, 2: 1.1},
}
MARKET_DAY_DIGITS = ((1, 4, 7), (2, 5, 8), (3, 6, 9), (1, 6), (2, 7), (3, 8), (4, 9), (5, 0))
REPORT_DELAY_MINUTES = {"DSP": 90, "SEC": 45, "FIR": 20, "TRF": 30, "LOG": 15, "HAZ": 20, "ACC": 20, "PET": 1440}
FOLLOW_UP_SHARE = {"DSP": 0.8, "PET": 0.9, "SEC": 0.6, "ACC": 0.7}
RESOLUTION_LEVEL_WEIGHTS = {  # village, town, county
    "DSP": (75, 20, 5), "SEC": (10, 70, 20), "FIR": (30, 60, 10), "HAZ": (20, 65, 15), "LOG": (30, 60, 10),
    "TRF": (10, 50, 40), "ACC": (0, 40, 60), ("PET", "village"): (80, 20, 0), ("PET", "town"): (0, 90, 10),
    ("PET", "county"): (0, 0, 100), ("PET", "above_county"): (0, 0, 100),
}
SATISFACTION_WEIGHTS = (2, 4, 12, 34, 48)
LATE_SATISFACTION_WEIGHTS = (10, 18, 30, 27, 15)
# Share of incidents whose workflow stops for good at a stage (backlog and overdue cases).
STUCK_SHARES = {"reported": 0.002, "accepted": 0.008, "dispatched": 0.008, "in_progress": 0.012, "resolved": 0.005}
REJECTED_SHARE = 0.03
DUPLICATE_SHARE = 0.025
PROBLEM_VILLAGE_SHARE = 0.12
MEDIATED_DISPUTE_SHARE = 0.30
STAGES = ("reported", "accepted", "dispatched", "in_progress", "resolved", "closed", "followed_up")
INCIDENT_COLUMNS = (
    "client_id", "lon", "lat", "category", "subcategory", "severity", "legal_class", "enterprise_involved",
    "status", "occurred_at", "reported_at", "accepted_at", "dispatched_at", "in_progress_at", "resolved_at",
    "closed_at", "followed_up_at", "resolution_level", "satisfaction", "description", "mediation_point",
    "duplicate_of_index",
)
CLIENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "gridmap/demo/baofeng/incidents")
DESCRIPTIONS = {
    ("DSP", "neighbour"): ("{v}两户村民因宅基地边界发生争执", "{v}邻里因排水沟堵塞引发纠纷",
                           "{v}村民因房屋漏水影响邻居发生矛盾", "{v}邻里因树木遮挡采光产生纠纷"),
    ("DSP", "family"): ("{v}一对夫妻因家庭琐事发生争吵，请求调解", "{v}兄弟因老人赡养问题产生矛盾",
                        "{v}村民因离婚财产分割发生纠纷", "{v}家庭成员因房屋继承发生争执"),
    ("DSP", "land"): ("{v}两户村民因承包地边界发生争执", "{v}村民因土地流转租金发生纠纷",
                      "{v}村民小组因林地权属产生矛盾", "{v}村民因灌溉用水发生争执"),
    ("DSP", "wages"): ("{v}附近工地务工人员反映工资被拖欠", "{v}一家加工厂拖欠工人工资引发纠纷",
                       "{t}一建筑项目农民工讨要工资"),
    ("DSP", "enterprise"): ("{v}村民与养殖企业因异味扰民发生纠纷", "{t}一企业与周边群众因道路占用发生矛盾",
                            "{v}村民与砖厂因噪音扰民产生纠纷"),
    ("DSP", "property"): ("{v}小区业主与物业公司因收费问题发生纠纷", "{v}小区业主反映物业停车管理不规范",
                          "{v}小区电梯维修费用分摊产生矛盾"),
    ("DSP", "demolition"): ("{v}村民对征地补偿标准有异议", "{v}群众反映拆迁安置房分配问题",
                            "{t}道路拓宽项目涉及房屋拆迁补偿纠纷"),
    ("DSP", "other"): ("{v}村民因借款纠纷请求调解", "{v}村民因买卖合同发生纠纷", "{v}村民因车辆剐蹭赔偿发生争执"),
    ("SEC", "theft"): ("{v}村民反映电动车被盗", "{v}一农户家中财物被盗", "{v}村民反映农用机械配件被盗",
                       "{t}集市发生扒窃"),
    ("SEC", "fraud"): ("{v}村民接到冒充客服电话被骗", "{v}群众反映遭遇网络刷单诈骗",
                       "{v}老人被以保健品名义骗取钱财", "{v}村民反映遭遇冒充公检法诈骗"),
    ("SEC", "fight"): ("{v}两名村民因口角发生肢体冲突", "{t}一饭店内发生打架斗殴", "{v}村民酒后滋事"),
    ("SEC", "gang_tip"): ("群众反映{t}有人强揽工程", "群众反映{v}附近有人放贷后暴力催收",
                          "群众举报{t}市场有人欺行霸市"),
    ("SEC", "vice"): ("群众举报{v}有人聚众赌博", "群众反映{t}一场所涉嫌违法经营", "群众举报{v}有人涉嫌吸毒"),
    ("SEC", "other"): ("{v}群众反映有可疑人员出没", "{v}村民反映夜间有人无故滋扰", "{t}发现一起寻衅滋事苗头"),
    ("FIR", "nine_small"): ("{t}一小餐馆液化气瓶存放不规范", "{v}一小作坊私拉乱接电线", "{t}一小旅馆消防设施不全",
                            "{v}一小超市灭火器过期"),
    ("FIR", "ebike"): ("{v}居民楼道内电动车违规充电", "{v}居民飞线为电动车充电", "{v}电动车停放在楼梯间充电"),
    ("FIR", "blocked_exit"): ("{v}楼道堆放杂物堵塞消防通道", "{t}商铺占用消防通道", "{v}小区消防车通道被车辆占用"),
    ("FIR", "other"): ("{v}村民在田间焚烧秸秆", "{v}柴草堆放靠近住房存在火灾隐患", "{v}废弃厂房堆积易燃物"),
    ("HAZ", "storage"): ("{v}一门市违规存放烟花爆竹", "{t}一修理厂违规储存汽油", "{v}农资店农药存放不规范"),
    ("HAZ", "transport"): ("{t}发现一辆车违规运输液化气瓶", "{v}附近发现无资质运输危化品车辆"),
    ("HAZ", "sale"): ("{t}一商店无证销售烟花爆竹", "{v}一小卖部散装销售汽油", "{t}一门市违规销售管制刀具"),
    ("LOG", "real_name"): ("{t}一快递网点未落实实名收寄", "{v}快递代收点收寄未登记身份信息"),
    ("LOG", "inspection"): ("{t}一快递网点未开箱验视", "{v}物流点收寄物品未验视"),
    ("LOG", "xray"): ("{t}一物流公司包裹未过机安检", "{t}快递分拣点安检机未正常使用"),
    ("TRF", "hazard_spot"): ("{v}路口缺少减速带和警示标志", "{v}乡道急弯处视线不良", "{t}道路路面塌陷存在安全隐患",
                             "{v}村口路灯损坏夜间照明不足"),
    ("TRF", "accident"): ("{v}路口发生两车剐蹭事故", "{t}道路发生电动车与轿车碰撞事故", "{v}附近发生农用车侧翻事故"),
    ("ACC", "injury"): ("{v}一工地发生高处坠落致人受伤", "{v}一加工厂工人操作机械受伤",
                        "{t}一企业发生机械伤害事故致一人受伤"),
    ("ACC", "death"): ("{v}一工地发生坍塌事故致一人死亡", "{t}一企业发生安全生产事故致一人死亡"),
    ("PET", "village"): ("{v}村民反映村务公开不及时", "{v}群众反映低保评定不公", "{v}村民反映道路修建占地补偿问题"),
    ("PET", "town"): ("{v}村民到{t}反映土地确权问题", "{v}群众到{t}反映集体资金使用问题",
                      "{v}村民到{t}反映宅基地审批问题"),
    ("PET", "county"): ("{v}村民到县信访局反映征地补偿问题", "{v}群众到县里反映养老保险问题"),
    ("PET", "above_county"): ("{v}村民越级到市里反映征地拆迁问题", "{v}群众越级上访反映历史遗留问题"),
}


def table_lookup(table: dict, category: str, subcategory: str):
    """Look up ``(category, subcategory)`` in a table, falling back to ``category``."""
    return table.get((category, subcategory), table.get(category))


def weighted_choice(rng: np.random.Generator, options, weights, size: int) -> np.ndarray:
    """Draw ``size`` of ``options`` with the given (unnormalised) weights."""
    weights = np.asarray(weights, dtype=float)
    picks = rng.choice(len(options), size=size, p=weights / weights.sum())
    return np.asarray(options)[picks]


# --------------------------------------------------------------------------- incidents: where

@dataclass
class IncidentGeography:
    """The places incidents are drawn around (metric CRS unless named ``_wgs84``)."""
    grid_geoms: np.ndarray
    grid_geoms_wgs84: np.ndarray
    grid_village: np.ndarray       # village row per grid
    grid_population: np.ndarray
    village_geoms: np.ndarray
    village_seat_xy: np.ndarray
    village_population: np.ndarray
    village_is_community: np.ndarray
    village_town: np.ndarray       # town row per village
    village_names: np.ndarray
    town_seat_xy: np.ndarray
    town_population: np.ndarray
    town_names: np.ndarray
    problem_villages: np.ndarray   # bool per village
    market_xy: np.ndarray
    market_digits: tuple[tuple[int, ...], ...]
    site_xy: np.ndarray
    road_ends: np.ndarray          # (r, 2, 2)


def incident_geography(towns: pd.DataFrame, villages: pd.DataFrame, grids: pd.DataFrame,
                       outline, seed: int) -> IncidentGeography:
    """Collect the geography and draw the problem villages, markets, sites and roads.

    Problem villages (:data:`PROBLEM_VILLAGE_SHARE` of them, larger villages likelier) are the
    only places with incidents that break "三零"; markets sit near the seats of rural towns;
    enterprise sites lie half in problem villages; roads join neighbouring town seats.
    """
    rng = rng_for(seed, "incident-geography")
    village_row = {code: i for i, code in enumerate(villages.code)}
    town_row = {code: i for i, code in enumerate(towns.code)}
    grid_village = grids.village_code.map(village_row).to_numpy()
    village_population = np.bincount(grid_village, grids.population.to_numpy(), minlength=len(villages))
    village_town = villages.town_code.map(town_row).to_numpy()
    town_population = np.bincount(village_town, village_population, minlength=len(towns))

    problem_count = int(round(PROBLEM_VILLAGE_SHARE * len(villages)))
    problem = np.zeros(len(villages), dtype=bool)
    likelihood = village_population / village_population.sum()
    problem[rng.choice(len(villages), problem_count, replace=False, p=likelihood)] = True

    town_geoms = towns.geometry.to_numpy()
    seat_xy = np.vstack(towns.seat_xy)
    rural_towns = [i for i in range(len(towns)) if not villages.is_community[village_town == i].all()]
    market_towns = sorted(rng.choice(rural_towns, size=min(len(MARKET_DAY_DIGITS), len(rural_towns)), replace=False))
    market_xy = np.array([point_near(seat_xy[t], town_geoms[t], rng, spread=300.0) for t in market_towns])

    rural = ~villages.is_community.to_numpy()
    site_villages = np.concatenate([
        rng.choice(np.flatnonzero(problem & rural), 7, replace=False),
        rng.choice(np.flatnonzero(~problem & rural), 7, replace=False),
    ])
    village_geoms = villages.geometry.to_numpy()
    site_xy = np.array([sample_points_in(village_geoms[v], 1, rng)[0] for v in sorted(site_villages)])

    roads = shapely.get_parts(shapely.delaunay_triangles(shapely.multipoints(seat_xy), only_edges=True))
    roads = roads[shapely.covered_by(roads, outline)]
    return IncidentGeography(
        grid_geoms=grids.geometry.to_numpy(), grid_geoms_wgs84=to_wgs84(grids.geometry.to_numpy()),
        grid_village=grid_village, grid_population=grids.population.to_numpy(dtype=float),
        village_geoms=village_geoms, village_seat_xy=np.vstack(villages.seat_xy),
        village_population=village_population, village_is_community=villages.is_community.to_numpy(),
        village_town=village_town, village_names=villages.name.to_numpy(), town_seat_xy=seat_xy,
        town_population=town_population, town_names=towns.name.to_numpy(), problem_villages=problem,
        market_xy=market_xy, market_digits=MARKET_DAY_DIGITS[:len(market_xy)], site_xy=site_xy,
        road_ends=shapely.get_coordinates(roads).reshape(-1, 2, 2),
    )


def uniform_in(geometries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniform point strictly inside each geometry of an array (rejection sampling)."""
    shapely.prepare(geometries)
    bounds = shapely.bounds(geometries)
    xy = np.full((len(geometries), 2), np.nan)
    pending = np.arange(len(geometries))
    while len(pending):
        b = bounds[pending]
        candidate = np.column_stack([rng.uniform(b[:, 0], b[:, 2]), rng.uniform(b[:, 1], b[:, 3])])
        inside = shapely.contains_xy(geometries[pending], candidate[:, 0], candidate[:, 1])
        xy[pending[inside]] = candidate[inside]
        pending = pending[~inside]
    return xy


def grid_of_points(xy: np.ndarray, tree: shapely.STRtree) -> np.ndarray:
    """Index of the grid strictly containing each point, -1 where none does."""
    found = np.full(len(xy), -1)
    point_index, grid_index = tree.query(shapely.points(xy), predicate="within")
    found[point_index] = grid_index
    return found


def choose_anchors(modes: np.ndarray, geo: IncidentGeography, rng: np.random.Generator) -> np.ndarray:
    """Pick the place each incident is drawn around: a village, town, market, site or road."""
    anchors = np.full(len(modes), -1)
    village_pool = {
        "village": np.arange(len(geo.village_geoms)),
        "community": np.flatnonzero(geo.village_is_community),
        "problem": np.flatnonzero(geo.problem_villages),
    }
    for mode, pool in village_pool.items():
        rows = np.flatnonzero(modes == mode)
        weights = geo.village_population[pool]
        anchors[rows] = rng.choice(pool, size=len(rows), p=weights / weights.sum())
    counts = {"seat": geo.town_population, "market": np.ones(len(geo.market_xy)), "site": np.ones(len(geo.site_xy)),
              "road": np.hypot(*(geo.road_ends[:, 1] - geo.road_ends[:, 0]).T), "spread": geo.grid_population}
    for mode, weights in counts.items():
        rows = np.flatnonzero(modes == mode)
        anchors[rows] = rng.choice(len(weights), size=len(rows), p=weights / weights.sum())
    return anchors


def candidate_points(modes: np.ndarray, anchors: np.ndarray, geo: IncidentGeography,
                     rng: np.random.Generator) -> np.ndarray:
    """Draw one candidate location per incident around its anchor."""
    xy = np.zeros((len(modes), 2))
    for mode in ("village", "community", "problem"):
        rows = np.flatnonzero(modes == mode)
        spread = np.where(geo.village_is_community[anchors[rows]], 250.0, 380.0)
        xy[rows] = geo.village_seat_xy[anchors[rows]] + rng.normal(0.0, 1.0, (len(rows), 2)) * spread[:, None]
    rows = np.flatnonzero(modes == "seat")
    xy[rows] = geo.town_seat_xy[anchors[rows]] + rng.normal(0.0, 650.0, (len(rows), 2))
    rows = np.flatnonzero(modes == "market")
    xy[rows] = geo.market_xy[anchors[rows]] + rng.normal(0.0, 220.0, (len(rows), 2))
    rows = np.flatnonzero(modes == "site")
    xy[rows] = geo.site_xy[anchors[rows]] + rng.normal(0.0, 160.0, (len(rows), 2))
    rows = np.flatnonzero(modes == "road")
    ends = geo.road_ends[anchors[rows]]
    along = rng.uniform(0.0, 1.0, len(rows))[:, None]
    xy[rows] = ends[:, 0] + along * (ends[:, 1] - ends[:, 0]) + rng.normal(0.0, 35.0, (len(rows), 2))
    rows = np.flatnonzero(modes == "spread")
    xy[rows] = uniform_in(geo.grid_geoms[anchors[rows]], rng)
    return xy


def sample_locations(modes: np.ndarray, geo: IncidentGeography, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw incident locations strictly inside a grid.

    Village-bound modes must land in their village; others anywhere in the county. Points
    are checked again after projection to WGS84 and rounding to 7 decimals (about 1 cm), so
    the written coordinates are strictly inside the written grids.

    Returns
    -------
    lonlat : numpy.ndarray
        (n, 2) rounded WGS84 coordinates.
    grid : numpy.ndarray of int
        Grid row per incident.
    anchors : numpy.ndarray of int
        The anchor per incident (market index for ``"market"`` rows).
    """
    anchors = choose_anchors(modes, geo, rng)
    village_bound = np.isin(modes, ("village", "community", "problem"))
    metric_tree = shapely.STRtree(geo.grid_geoms)
    wgs84_tree = shapely.STRtree(geo.grid_geoms_wgs84)
    xy = np.zeros((len(modes), 2))
    grid = np.full(len(modes), -1)
    pending = np.arange(len(modes))
    for attempt in range(60):
        if not len(pending):
            break
        candidate = candidate_points(modes[pending], anchors[pending], geo, rng)
        if attempt == 59:
            candidate = fallback_points(modes[pending], anchors[pending], geo, rng)
        found = grid_of_points(candidate, metric_tree)
        ok = found >= 0
        bound = village_bound[pending]
        ok[bound] &= geo.grid_village[found[bound]] == anchors[pending][bound]
        xy[pending[ok]] = candidate[ok]
        grid[pending[ok]] = found[ok]
        pending = pending[~ok]
    lonlat = np.round(xy_to_lonlat(xy), 7)
    mismatch = np.flatnonzero(grid_of_points(lonlat, wgs84_tree) != grid)
    while len(mismatch):
        xy[mismatch] = uniform_in(geo.grid_geoms[grid[mismatch]], rng)
        lonlat[mismatch] = np.round(xy_to_lonlat(xy[mismatch]), 7)
        mismatch = mismatch[grid_of_points(lonlat[mismatch], wgs84_tree) != grid[mismatch]]
    return lonlat, grid, anchors


def fallback_points(modes: np.ndarray, anchors: np.ndarray, geo: IncidentGeography,
                    rng: np.random.Generator) -> np.ndarray:
    """Uniform points in a grid of the anchor's village (or any populated grid) for stragglers."""
    grids = np.empty(len(modes), dtype=int)
    for i, (mode, anchor) in enumerate(zip(modes, anchors, strict=True)):
        pool = np.flatnonzero(geo.grid_village == anchor) if mode in ("village", "community", "problem") \
            else np.arange(len(geo.grid_geoms))
        grids[i] = rng.choice(pool)
    return uniform_in(geo.grid_geoms[grids], rng)


# --------------------------------------------------------------------------- incidents: what

def draw_attributes(count: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw category, subcategory, severity, legal class and enterprise involvement.

    Returns
    -------
    pandas.DataFrame
        ``category, subcategory, severity, legal_class, enterprise_involved``.
    """
    categories = weighted_choice(rng, list(CATEGORY_SHARES), list(CATEGORY_SHARES.values()), count)
    subcategories = np.empty(count, dtype=object)
    severity = np.zeros(count, dtype=int)
    legal_class = np.empty(count, dtype=object)
    enterprise = np.zeros(count, dtype=bool)
    for category in CATEGORY_SHARES:
        rows = np.flatnonzero(categories == category)
        weights = SUBCATEGORY_WEIGHTS[category]
        subcategories[rows] = weighted_choice(rng, list(weights), list(weights.values()), len(rows))
    for category, subcategory in sorted(set(zip(categories, subcategories, strict=True))):
        rows = np.flatnonzero((categories == category) & (subcategories == subcategory))
        severity[rows] = weighted_choice(rng, (1, 2, 3, 4), table_lookup(SEVERITY_WEIGHTS, category, subcategory),
                                         len(rows))
        legal_class[rows] = weighted_choice(rng, ("none", "public_order", "criminal"),
                                            table_lookup(LEGAL_CLASS_WEIGHTS, category, subcategory), len(rows))
        enterprise[rows] = rng.random(len(rows)) < table_lookup(ENTERPRISE_SHARE, category, subcategory)
    severity = np.where(legal_class == "criminal", np.maximum(severity, 3), severity)
    return pd.DataFrame({"category": categories.astype(object), "subcategory": subcategories, "severity": severity,
                         "legal_class": legal_class, "enterprise_involved": enterprise})


def breaks_three_zeros(attributes: pd.DataFrame) -> np.ndarray:
    """Incidents that cost a village its "三零" status.

    A petition escalated beyond the village (subcategory town, county or above_county), any
    safety accident (all have injury or death), a criminal case, or a serious public-order
    case (legal_class public_order with severity >= 3).
    """
    category, subcategory = attributes.category.to_numpy(), attributes.subcategory.to_numpy()
    legal, severity = attributes.legal_class.to_numpy(), attributes.severity.to_numpy()
    return (((category == "PET") & (subcategory != "village")) | (category == "ACC") | (legal == "criminal")
            | ((legal == "public_order") & (severity >= 3)))


def choose_modes(attributes: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Pick a location mode per incident; incidents breaking "三零" go to problem villages."""
    modes = np.empty(len(attributes), dtype=object)
    pairs = attributes[["category", "subcategory"]].drop_duplicates().itertuples(index=False)
    for category, subcategory in sorted(pairs):
        rows = np.flatnonzero(((attributes.category == category) & (attributes.subcategory == subcategory)).to_numpy())
        shares = table_lookup(LOCATION_MODES, category, subcategory)
        modes[rows] = weighted_choice(rng, list(shares), list(shares.values()), len(rows))
    modes[breaks_three_zeros(attributes)] = "problem"
    return modes.astype(str)


# --------------------------------------------------------------------------- incidents: when

def day_weights(category: str, first_day: date, days: int, market_digits: tuple[int, ...] | None) -> np.ndarray:
    """Relative chance of each day for a category (weekday, season, market days)."""
    dates = [first_day + timedelta(days=d) for d in range(days)]
    weekday = np.array([WEEKDAY_FACTORS[category][d.weekday()] for d in dates])
    month = np.array([MONTH_FACTORS.get(category, {}).get(d.month, 1.0) for d in dates])
    weights = weekday * month
    if market_digits is not None:
        weights = weights * np.array([3.0 if d.day % 10 in market_digits else 1.0 for d in dates])
    return weights / weights.sum()


def draw_times(attributes: pd.DataFrame, modes: np.ndarray, anchors: np.ndarray, geo: IncidentGeography,
               first_day: date, days: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw occurrence and report times in seconds since ``first_day`` 00:00 local time.

    Days follow the category's weekday and seasonal factors (market incidents favour their
    market's days); hours follow the category's daily profile; report delays are lognormal
    around a per-category median. Everything happens before the end of the last day.
    """
    count = len(attributes)
    category = attributes.category.to_numpy()
    market = np.where(modes == "market", anchors, -1)
    day = np.zeros(count, dtype=np.int64)
    for c in CATEGORY_SHARES:
        for m in np.unique(market[category == c]):
            rows = np.flatnonzero((category == c) & (market == m))
            digits = geo.market_digits[m] if m >= 0 else None
            day[rows] = rng.choice(days, size=len(rows), p=day_weights(c, first_day, days, digits))
    hour = np.zeros(count, dtype=np.int64)
    for c in CATEGORY_SHARES:
        rows = np.flatnonzero(category == c)
        profile = np.asarray(HOUR_PROFILES[CATEGORY_HOURS[c]])
        hour[rows] = rng.choice(24, size=len(rows), p=profile / profile.sum())
    occurred = day * 86400 + hour * 3600 + rng.integers(0, 3600, count)
    median = np.array([REPORT_DELAY_MINUTES[c] for c in category], dtype=float) * 60
    reported = occurred + np.maximum(60, median * np.exp(rng.normal(0.0, 1.0, count))).astype(np.int64)
    horizon = days * 86400
    late = reported >= horizon
    shift = reported[late] - horizon + rng.integers(600, 6 * 3600, late.sum())
    occurred[late] -= shift
    reported[late] -= shift
    return occurred, reported


def stage_durations(attributes: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Seconds spent before each workflow stage after ``reported`` (accepted .. followed_up).

    Returns
    -------
    numpy.ndarray
        (n, 6) durations, all positive.
    """
    count = len(attributes)
    deadline_days = attributes.category.map(lambda c: CATEGORY_BY_CODE[c].deadline_days).to_numpy(dtype=float)
    petition = (attributes.category == "PET").to_numpy()

    def lognormal(median_seconds, sigma):
        return median_seconds * np.exp(rng.normal(0.0, sigma, count))

    accept = lognormal(np.where(petition, 86400.0, 5400.0), 0.9)
    dispatch = lognormal(7200.0, 0.9)
    start = lognormal(6 * 3600.0, 0.9)
    resolve = np.maximum(1800.0, lognormal(0.35 * deadline_days * 86400, 0.6))
    close = lognormal(1.5 * 86400, 0.5)
    follow = rng.uniform(1, 7, count) * 86400
    return np.column_stack([accept, dispatch, start, resolve, close, follow]).astype(np.int64) + 60


def plan_outcomes(attributes: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The status each incident ends in once time has run its course.

    Most end closed or followed up (per-category follow-up share); a few are rejected or
    duplicates, and a few stop for good at an open stage (the backlog, mostly overdue).
    """
    count = len(attributes)
    follow_share = attributes.category.map(lambda c: FOLLOW_UP_SHARE.get(c, 0.55)).to_numpy()
    plan = np.where(rng.random(count) < follow_share, "followed_up", "closed").astype(object)
    roll = rng.random(count)
    edge = 0.0
    for outcome, share in [("rejected", REJECTED_SHARE), ("duplicate", DUPLICATE_SHARE), *STUCK_SHARES.items()]:
        plan[(roll >= edge) & (roll < edge + share)] = outcome
        edge += share
    return plan


def run_workflow(reported: np.ndarray, durations: np.ndarray, plan: np.ndarray, horizon: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Replay the workflow up to ``horizon``.

    Returns
    -------
    stage_times : numpy.ndarray
        (n, 7) seconds for reported .. followed_up; -1 where the stage was not reached.
    status : numpy.ndarray of str
    """
    planned_times = np.column_stack([reported, reported[:, None] + np.cumsum(durations, axis=1)])
    decided = planned_times[:, 1] <= horizon
    terminal_early = np.isin(plan, ("rejected", "duplicate"))
    last_planned = np.array([STAGES.index(p) if p in STAGES else 0 for p in plan])
    reached = (planned_times <= horizon) & (np.arange(len(STAGES))[None, :] <= last_planned[:, None])
    last_reached = reached.sum(axis=1) - 1
    stage_times = np.where(reached, planned_times, -1)
    status = np.array(STAGES, dtype=object)[last_reached]
    status[terminal_early & decided] = plan[terminal_early & decided]
    return stage_times, status.astype(str)


# --------------------------------------------------------------------------- incidents: follow-on

def pick_duplicate_originals(category: np.ndarray, reported: np.ndarray, village: np.ndarray, town: np.ndarray,
                             status: np.ndarray) -> np.ndarray:
    """For each duplicate, the row of the earlier report it repeats (-1 where none fits).

    The original is the latest earlier non-duplicate, non-rejected report of the same
    category within 7 days, preferring the same village, then the same town.
    """
    original = np.full(len(category), -1)
    usable = ~np.isin(status, ("duplicate", "rejected"))
    for row in np.flatnonzero(status == "duplicate"):
        earlier = np.flatnonzero(usable[:row] & (category[:row] == category[row])
                                 & (reported[:row] >= reported[row] - 7 * 86400) & (reported[:row] < reported[row]))
        for same_place in (village[earlier] == village[row], town[earlier] == town[row]):
            if same_place.any():
                original[row] = earlier[same_place][-1]
                break
    return original


def resolution_levels(attributes: pd.DataFrame, status: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Level a case was resolved at (village/town/county), empty until resolved."""
    levels = np.full(len(status), "", dtype=object)
    resolved = np.isin(status, ("resolved", "closed", "followed_up"))
    for (category, subcategory), group in attributes[resolved].groupby(["category", "subcategory"], sort=True):
        weights = table_lookup(RESOLUTION_LEVEL_WEIGHTS, category, subcategory)
        levels[group.index.to_numpy()] = weighted_choice(rng, ("village", "town", "county"), weights, len(group))
    return levels


def satisfaction_scores(status: np.ndarray, late: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Follow-up satisfaction 1-5 (0 where not followed up); late cases score lower."""
    scores = np.zeros(len(status), dtype=int)
    for is_late, weights in ((False, SATISFACTION_WEIGHTS), (True, LATE_SATISFACTION_WEIGHTS)):
        rows = np.flatnonzero((status == "followed_up") & (late == is_late))
        scores[rows] = weighted_choice(rng, (1, 2, 3, 4, 5), weights, len(rows))
    return scores


def refer_disputes(category: np.ndarray, status: np.ndarray, lonlat: np.ndarray, village: np.ndarray,
                   geo: IncidentGeography, points: pd.DataFrame, village_codes: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Name the mediation point about :data:`MEDIATED_DISPUTE_SHARE` of disputes were referred to.

    Only disputes dispatched or further can be referred. A dispute goes to a point in its own
    village when there is one, otherwise to the nearest point in its town (the 摆理堂 takes a
    share of all of 闹店镇's referrals).
    """
    names = np.full(len(category), "", dtype=object)
    disputes = category == "DSP"
    eligible = np.flatnonzero(disputes & np.isin(status, STAGES[2:]))
    chosen = rng.choice(eligible, size=min(len(eligible), int(round(MEDIATED_DISPUTE_SHARE * disputes.sum()))),
                        replace=False)
    point_village = points.village_code.map({c: i for i, c in enumerate(village_codes)}).to_numpy()
    point_town = geo.village_town[point_village]
    point_xy = shapely.get_coordinates(points.geometry.to_numpy())
    incident_xy = lonlat_to_xy(lonlat)
    bailitang = np.flatnonzero(points.kind.to_numpy() == "bailitang")
    for row in np.sort(chosen):
        town = geo.village_town[village[row]]
        if len(bailitang) and town == point_town[bailitang[0]] and rng.random() < 0.4:
            names[row] = points.name.iat[bailitang[0]]
            continue
        local = np.flatnonzero(point_village == village[row])
        if not len(local):
            local = np.flatnonzero(point_town == town)
            local = local[[np.argmin(np.hypot(*(point_xy[local] - incident_xy[row]).T))]]
        names[row] = points.name.iat[int(rng.choice(local))]
    return names


def describe(attributes: pd.DataFrame, village: np.ndarray, geo: IncidentGeography,
             rng: np.random.Generator) -> np.ndarray:
    """A short Chinese description per incident; places by village/town name, never people."""
    text = np.empty(len(attributes), dtype=object)
    pick = rng.random(len(attributes))
    for row, (category, subcategory) in enumerate(zip(attributes.category, attributes.subcategory, strict=True)):
        templates = DESCRIPTIONS[(category, subcategory)]
        template = templates[int(pick[row] * len(templates))]
        text[row] = template.format(v=geo.village_names[village[row]], t=geo.town_names[geo.village_town[village[row]]])
    return text


def copy_from_originals(frame: pd.DataFrame, original: np.ndarray, geo: IncidentGeography,
                        rng: np.random.Generator) -> None:
    """Make each duplicate repeat its original: same event, time and place (within ~15 m)."""
    wgs84_tree = shapely.STRtree(geo.grid_geoms_wgs84)
    columns = ["subcategory", "severity", "legal_class", "enterprise_involved", "occurred", "description"]
    for row in np.flatnonzero(original >= 0):
        source = original[row]
        for column in columns:
            frame.iat[row, frame.columns.get_loc(column)] = frame.iat[source, frame.columns.get_loc(column)]
        lonlat = frame.loc[source, ["lon", "lat"]].to_numpy(dtype=float)
        grid = frame.grid.iat[source]
        for _ in range(10):
            moved = np.round(xy_to_lonlat(lonlat_to_xy(lonlat) + rng.normal(0.0, 15.0, 2)), 7)
            if grid_of_points(moved, wgs84_tree)[0] == grid:
                lonlat = moved[0]
                break
        frame.loc[row, ["lon", "lat"]] = lonlat
        frame.iat[row, frame.columns.get_loc("grid")] = grid


def format_times(seconds: np.ndarray, first_day: date) -> np.ndarray:
    """ISO 8601 local times with ``+08:00``; empty where ``seconds`` is negative."""
    stamps = np.datetime64(first_day.isoformat(), "s") + np.maximum(seconds, 0).astype("timedelta64[s]")
    text = np.char.add(np.datetime_as_string(stamps, unit="s"), LOCAL_UTC_OFFSET).astype(object)
    text[seconds < 0] = ""
    return text


def build_incidents(towns: pd.DataFrame, villages: pd.DataFrame, grids: pd.DataFrame, points: pd.DataFrame,
                    outline, seed: int, count: int, today: date) -> pd.DataFrame:
    """Generate ``count`` incidents over the 365 days before ``today``.

    Patterns built in: clusters around town seats, markets (busier on their market days),
    enterprise sites and roads between seats; more incidents in communities; daily and
    weekly cycles per category; a backlog of open cases, many past their deadline; incidents
    that break "三零" (see :func:`breaks_three_zeros`) only in problem villages, so about
    88 % of villages meet it; duplicates that repeat an earlier report.

    Returns
    -------
    pandas.DataFrame
        Rows ordered by ``reported_at``, columns :data:`INCIDENT_COLUMNS`.
    """
    rng = rng_for(seed, "incidents")
    geo = incident_geography(towns, villages, grids, outline, seed)
    days = 365
    first_day = today - timedelta(days=days)
    horizon = days * 86400

    attributes = draw_attributes(count, rng)
    modes = choose_modes(attributes, rng)
    lonlat, grid, anchors = sample_locations(modes, geo, rng)
    occurred, reported = draw_times(attributes, modes, anchors, geo, first_day, days, rng)
    order = np.lexsort((occurred, reported))
    frame = attributes.iloc[order].reset_index(drop=True)
    frame["lon"], frame["lat"] = lonlat[order, 0], lonlat[order, 1]
    frame["grid"], frame["occurred"], frame["reported"] = grid[order], occurred[order], reported[order]

    stage_times, status = run_workflow(frame.reported.to_numpy(), stage_durations(frame, rng),
                                       plan_outcomes(frame, rng), horizon)
    village = geo.grid_village[frame.grid.to_numpy()]
    category = frame.category.to_numpy()
    original = pick_duplicate_originals(category, frame.reported.to_numpy(), village, geo.village_town[village], status)
    status[(status == "duplicate") & (original < 0)] = "rejected"
    frame["description"] = describe(frame, village, geo, rng)
    copy_from_originals(frame, original, geo, rng)
    village = geo.grid_village[frame.grid.to_numpy()]

    deadline = frame.category.map(lambda c: CATEGORY_BY_CODE[c].deadline_days * 86400).to_numpy()
    late = (stage_times[:, 4] >= 0) & (stage_times[:, 4] > stage_times[:, 1] + deadline)
    satisfaction = satisfaction_scores(status, late, rng)
    result = pd.DataFrame({
        "client_id": [str(uuid.uuid5(CLIENT_ID_NAMESPACE, f"{seed}:{i}")) for i in range(count)],
        "lon": frame.lon.to_numpy(), "lat": frame.lat.to_numpy(),
        "category": category, "subcategory": frame.subcategory.to_numpy(),
        "severity": frame.severity.to_numpy(dtype=int), "legal_class": frame.legal_class.to_numpy(),
        "enterprise_involved": np.where(frame.enterprise_involved.to_numpy(dtype=bool), "true", "false"),
        "status": status,
        "occurred_at": format_times(frame.occurred.to_numpy(dtype=np.int64), first_day),
    })
    for stage, column in enumerate(STAGES):
        result[f"{column}_at"] = format_times(stage_times[:, stage], first_day)
    result["resolution_level"] = resolution_levels(frame, status, rng)
    result["satisfaction"] = np.where(satisfaction > 0, satisfaction.astype(str), "")
    result["description"] = frame.description.to_numpy()
    lonlat = frame[["lon", "lat"]].to_numpy(dtype=float)
    result["mediation_point"] = refer_disputes(category, status, lonlat, village, geo, points,
                                               villages.code.to_numpy(), rng)
    result["duplicate_of_index"] = np.where(status == "duplicate", original.astype(str), "")
    return result[list(INCIDENT_COLUMNS)]


# --------------------------------------------------------------------------- output

def python_value(value):
    """Turn numpy scalars into plain Python values for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def write_geojson(path: Path, frame: pd.DataFrame, properties: list[str], metric: bool = True) -> int:
    """Write a FeatureCollection in EPSG:4326, one feature per line, full precision.

    Parameters
    ----------
    path : Path
    frame : pandas.DataFrame
        With a ``geometry`` column and the ``properties`` columns.
    properties : list of str
    metric : bool
        Whether ``geometry`` is in :data:`METRIC_CRS` (projected here) or already WGS84.

    Returns
    -------
    int
        The number of features written.
    """
    geometries = frame.geometry.to_numpy()
    if metric:
        geometries = to_wgs84(geometries)
    geometries = shapely.orient_polygons(geometries, exterior_cw=False)
    features = []
    for record, geometry in zip(frame[properties].to_dict("records"), geometries, strict=True):
        feature = {"type": "Feature", "properties": {k: python_value(v) for k, v in record.items()},
                   "geometry": mapping(geometry)}
        features.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(features) + "\n]}\n"
    path.write_text(text, encoding="utf-8")
    return len(features)


def write_incidents(path: Path, incidents: pd.DataFrame) -> int:
    """Write the incidents as gzip-compressed UTF-8 CSV with a fixed gzip header."""
    text = incidents.to_csv(index=False, lineterminator="\n", float_format="%.7f")
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
        packed.write(text.encode("utf-8"))
    return len(incidents)


def file_digest(path: Path) -> str:
    """SHA-256 of a file, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_demo(source_dir: Path, out_dir: Path, seed: int = 2023, n_incidents: int = 24000,
               today: date = date(2026, 11, 1)) -> dict[str, int]:
    """Generate the whole demo county into ``out_dir``.

    Parameters
    ----------
    source_dir : Path
        Folder with ``divisions.csv``, ``seats.csv`` and ``county_outline.geojson``.
    out_dir : Path
        Created if missing; existing files of the same names are replaced.
    seed : int
    n_incidents : int
    today : date
        Incidents cover the 365 days before it; cases are replayed up to its midnight.

    Returns
    -------
    dict of str to int
        Feature or row count per layer.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    towns, villages = read_divisions(source_dir / "divisions.csv")
    seats = read_seats(source_dir / "seats.csv")
    outline_wgs84 = read_outline(source_dir / "county_outline.geojson")
    outline = to_metric(outline_wgs84)

    towns = build_towns(outline, towns, villages, seats, seed)
    villages = build_villages(towns, villages, seats, seed)
    grids = build_grids(towns, villages, seed)
    stations = build_stations(towns, seed)
    zones = build_patrol_zones(towns, villages, stations)
    points = build_mediation_points(towns, villages, seed)
    incidents = build_incidents(towns, villages, grids, points, outline, seed, n_incidents, today)

    seat_lonlat = [seats.get(code, INVENTED_TOWN_SEATS.get(code)) for code in towns.code]
    towns["seat_lon"] = [lon for lon, _ in seat_lonlat]
    towns["seat_lat"] = [lat for _, lat in seat_lonlat]
    county = pd.DataFrame({"code": [COUNTY_CODE], "name": ["宝丰县"], "geometry": [as_multipolygon(outline_wgs84)]})
    for frame in (towns, villages, grids, zones):
        frame["geometry"] = [as_multipolygon(g) for g in frame.geometry]

    counts = {
        "county": write_geojson(out_dir / "county.geojson", county, ["code", "name"], metric=False),
        "towns": write_geojson(out_dir / "towns.geojson", towns, ["code", "name", "seat_lon", "seat_lat"]),
        "villages": write_geojson(out_dir / "villages.geojson", villages, ["code", "name", "full_name", "town_code"]),
        "grids": write_geojson(out_dir / "grids.geojson", grids,
                               ["code", "name", "village_code", "population", "households", "area_km2"]),
        "stations": write_geojson(out_dir / "stations.geojson", stations, ["code", "name", "town_code"]),
        "patrol_zones": write_geojson(out_dir / "patrol_zones.geojson", zones, ["code", "name", "station_code"]),
        "mediation_points": write_geojson(out_dir / "mediation_points.geojson", points,
                                          ["name", "kind", "village_code", "contact", "mediators", "opening_hours"]),
        "incidents": write_incidents(out_dir / "incidents.csv.gz", incidents),
    }
    write_manifest(out_dir, seed, today, counts)
    return counts


OUTPUT_FILES = ("county.geojson", "towns.geojson", "villages.geojson", "grids.geojson", "stations.geojson",
                "patrol_zones.geojson", "mediation_points.geojson", "incidents.csv.gz")


def write_manifest(out_dir: Path, seed: int, today: date, counts: dict[str, int]) -> None:
    """Write ``manifest.json``: what was generated, from which seed, and file digests."""
    manifest = {
        "generator": "gridmap.demo.generator",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "today": today.isoformat(),
        "incident_period": {"from": (today - timedelta(days=365)).isoformat(),
                            "to": (today - timedelta(days=1)).isoformat()},
        "crs": "EPSG:4326",
        "metric_crs": METRIC_CRS,
        "counts": counts,
        "synthetic": SYNTHETIC_NOTE,
        "sha256": {name: file_digest(out_dir / name) for name in OUTPUT_FILES},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m gridmap.demo.generator --source DIR --out DIR [--seed N]``."""
    parser = argparse.ArgumentParser(description="Generate the synthetic demo county Baofeng (宝丰县).")
    parser.add_argument("--source", type=Path, required=True,
                        help="folder with divisions.csv, seats.csv and county_outline.geojson")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--n-incidents", type=int, default=24000)
    parser.add_argument("--today", type=date.fromisoformat, default=date(2026, 11, 1),
                        help="incidents cover the 365 days before this date (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = build_demo(args.source, args.out, seed=args.seed, n_incidents=args.n_incidents, today=args.today)
    print(json.dumps(counts, ensure_ascii=False), f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
