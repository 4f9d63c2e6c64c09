"""Patrol route planning: pick and order stops that earn the most risk-weighted prize in a shift.

The planner solves a prize-collecting routing problem (an orienteering problem): each
candidate stop may be visited or skipped, travel plus service time must fit the shift,
and the route collects as much prize as it can. A few stops are solved exactly; larger
cases by an iterated local search (:mod:`gridmap.analysis.routing_search`) whose work is
budgeted in rounds, with the wall clock as a safety net, then by OR-Tools' routing solver
(the model of issue 5: disjunctions for the prizes, a time dimension for the shift) started
from the search's route, whose route is taken only when it is feasible and better.

Travel times come from a :class:`TravelTimes` matrix built either along straight lines
(:func:`straight_line_travel`) or over a road network (:func:`road_network_travel`, with
shortest paths by Dijkstra over a sparse graph). Coordinates are WGS84 lon/lat; all
distances are computed in a metric CRS (default EPSG:4547, CGCS2000 GK CM 114E).
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import geopandas as gpd
import gpxpy
import gpxpy.gpx
import numpy as np
import pandas as pd
import shapely
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util import optional_boolean_pb2
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from gridmap.analysis.routing_search import OrienteeringSearch
from gridmap.analysis.tracks import DEFAULT_METRIC_CRS, project_geometries, transformer

__all__ = [
    "RoutingError",
    "TravelTimes",
    "RoadNetwork",
    "RoutePlan",
    "straight_line_travel",
    "build_road_network",
    "road_network_travel",
    "plan_route",
    "choose_candidates",
    "route_to_gpx",
]

#: Service minutes used when the stops table has no ``service_minutes`` column.
DEFAULT_SERVICE_MINUTES = 12.0
#: The solver counts time in integer milliseconds.
_TICKS_PER_MINUTE = 60_000
#: Up to this many stops (that fit the shift) the route is found exactly, by enumeration.
_EXACT_MAX_STOPS = 12
#: Search rounds (perturbations) per second of ``time_limit_s``. The search is budgeted in
#: rounds so that a busy machine gets the same route, only later; a round is 3-7 ms of CPU
#: with 300 candidates, so the 80 rounds of a 2 s limit take a quarter of it on one core
#: and leave room for the travel matrix and for a machine shared with other work.
_ROUNDS_PER_SECOND = 40
#: The search stops when this share of its rounds (and at least _MIN_STALL_ROUNDS) in a row
#: found nothing better.
_STALL_SHARE = 0.4
_MIN_STALL_ROUNDS = 20
#: Rounds done even when the clock has run out (a few tens of ms): on a machine so busy
#: that the matrix alone used the limit, they still lift the route by 2-3 %.
_MIN_ROUNDS = 10
#: Stands for a model time not computed yet (a road row the search has not needed).
_UNKNOWN_TICKS = 2**40
#: Share of ``time_limit_s`` kept for turning the route into a plan (the legs' paths).
_PLAN_RESERVE_SHARE = 0.1
#: OR-Tools' solve after the search gets what is left of the limit (minus the plan's
#: reserve), at most this share of ``time_limit_s``...
_ORTOOLS_SHARE = 0.15
#: ...and is skipped when less than this many seconds are left.
_ORTOOLS_MIN_S = 0.05
#: Prizes become integer disjunction penalties: the smallest positive prize is worth this
#: many times the whole budget, so that OR-Tools trades no prize for time.
_PENALTY_PER_BUDGET = 10
#: Cap on the sum of the penalties (int64 with room to spare).
_PENALTY_SUM_MAX = 2**60
#: Operators off by default in OR-Tools that help a prize-collecting route: swaps of an
#: unvisited stop for a visited one, relocations that make room for one, and LNS over the
#: unvisited stops. From a one-stop start, on 12 ten-stop cases, 0.3 s of guided local
#: search reach the enumerated best on 10 (the defaults: 8); on the other two it stays at
#: 97 % and 90 %, which is why it runs after the search and not instead of it.
_ORTOOLS_EXTRA_OPERATORS: tuple[str, ...] = (
    "use_extended_swap_active", "use_relocate_and_make_active", "use_exchange_and_make_active",
    "use_inactive_lns", "use_path_lns", "use_global_cheapest_insertion_close_nodes_lns",
    "use_local_cheapest_insertion_close_nodes_lns")


class RoutingError(ValueError):
    """A route cannot be planned: bad inputs, unreachable stops, or a shift too short."""


# --------------------------------------------------------------------------- travel times


def _points_array(points_lonlat, what: str = "points_lonlat") -> np.ndarray:
    try:
        pts = np.asarray(points_lonlat, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise RoutingError(f"{what} must be a sequence of (lon, lat) pairs") from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise RoutingError(f"{what} must be a non-empty sequence of (lon, lat) pairs, got shape {pts.shape}")
    bad = ~np.isfinite(pts).all(axis=1) | (np.abs(pts[:, 0]) > 180) | (np.abs(pts[:, 1]) > 90)
    if bad.any():
        raise RoutingError(f"{what}[{int(np.flatnonzero(bad)[0])}] is not a valid lon/lat pair")
    return pts


def _labels(labels, n: int) -> tuple[str, ...]:
    if labels is None:
        return tuple(f"point {i}" for i in range(n))
    labels = tuple(str(x) for x in labels)
    if len(labels) != n:
        raise RoutingError(f"got {len(labels)} labels for {n} points")
    return labels


def _speed_m_per_min(speed_kmh: float, name: str) -> float:
    if not isinstance(speed_kmh, (int, float, np.integer, np.floating)) or not speed_kmh > 0:
        raise RoutingError(f"{name} must be a positive number of km/h, got {speed_kmh!r}")
    return float(speed_kmh) * 1000.0 / 60.0


class TravelTimes:
    """Travel minutes between a fixed list of points, and the path of each leg.

    Road travel computes its rows on demand, one shortest-path search per point:
    :func:`plan_route` asks only for the rows of the stops its search puts on a route
    (about a quarter of 300 candidates), and ``minutes`` computes whatever is missing.

    Attributes
    ----------
    minutes : numpy.ndarray
        ``(n, n)`` float array; ``minutes[i, j]`` is the travel time from point ``i`` to
        point ``j`` (0 on the diagonal).
    points : numpy.ndarray
        ``(n, 2)`` lon/lat of the points, in the order the matrix uses.
    mode : str
        ``"road"`` or ``"straight_line"``.
    labels : tuple of str
        A name per point, used in error messages.
    symmetric : bool
        Whether ``minutes[i, j] == minutes[j, i]`` (two-way roads, straight lines), so that
        a row also gives the column.
    """

    def __init__(self, minutes: np.ndarray | None, points: np.ndarray, mode: str, labels: Sequence[str],
                 _path_fn: Callable[[int, int], list[tuple[float, float]]] | None = None, *,
                 symmetric: bool = False, _rows_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        self.points = np.asarray(points)
        self.mode = mode
        self.labels = tuple(labels)
        self.symmetric = bool(symmetric)
        self._path_fn = _path_fn
        self._rows_fn = _rows_fn
        if minutes is None:
            n = len(self.points)
            self._matrix = np.full((n, n), np.nan)
            self._known: np.ndarray | None = np.zeros(n, dtype=bool)
        else:
            self._matrix = np.asarray(minutes)
            self._known = None

    @property
    def minutes(self) -> np.ndarray:
        if self._known is not None:
            self.rows(np.flatnonzero(~self._known))
        return self._matrix

    @property
    def complete(self) -> bool:
        """Whether every row is already computed."""
        return self._known is None

    @property
    def computed_rows(self) -> int:
        """How many rows are computed so far."""
        return len(self.points) if self._known is None else int(self._known.sum())

    @property
    def shape(self) -> tuple[int, ...]:
        return self._matrix.shape

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``indices`` of ``minutes``, computing only those not yet known."""
        idx = np.asarray(indices, dtype=np.intp)
        if self._known is not None:
            missing = np.unique(idx[~self._known[idx]])
            if len(missing):
                self._matrix[missing] = self._rows_fn(missing)
                self._known[missing] = True
                if self._known.all():
                    self._known = None
        return self._matrix[idx]

    def __len__(self) -> int:
        return len(self.points)

    def __repr__(self) -> str:
        return f"TravelTimes(mode={self.mode!r}, points={len(self.points)}, complete={self.complete})"

    def path(self, i: int, j: int) -> list[tuple[float, float]]:
        """Lon/lat coordinates of the leg from point ``i`` to point ``j`` (both ends included)."""
        if self._path_fn is None:
            return [tuple(self.points[i]), tuple(self.points[j])]
        return self._path_fn(i, j)


def straight_line_travel(points_lonlat: Sequence[tuple[float, float]], speed_kmh: float = 30.0,
                         metric_crs: str = DEFAULT_METRIC_CRS, *, labels: Sequence[str] | None = None) -> TravelTimes:
    """Travel times along straight lines at a constant speed.

    Parameters
    ----------
    points_lonlat : sequence of (lon, lat)
        The points, e.g. the start followed by the candidate stops.
    speed_kmh : float, default 30
        Travel speed.
    metric_crs : str, default "EPSG:4547"
        CRS the distances are measured in.
    labels : sequence of str, optional
        Names of the points for messages.

    Returns
    -------
    TravelTimes
        ``mode == "straight_line"``; each leg's path is its two end points.

    Examples
    --------
    >>> tt = straight_line_travel([(113.0, 33.9), (113.0, 33.9)], speed_kmh=30)
    >>> float(tt.minutes[0, 1])
    0.0
    """
    pts = _points_array(points_lonlat)
    m_per_min = _speed_m_per_min(speed_kmh, "speed_kmh")
    x, y = transformer("EPSG:4326", metric_crs).transform(pts[:, 0], pts[:, 1])
    xy = np.column_stack([x, y])
    dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    return TravelTimes(minutes=dist / m_per_min, points=pts, mode="straight_line", labels=_labels(labels, len(pts)),
                       symmetric=True)


@dataclass(eq=False)
class RoadNetwork:
    """A road graph ready for shortest paths; build it once with :func:`build_road_network`.

    Attributes
    ----------
    graph : scipy.sparse.csr_matrix
        Symmetric ``(N, N)`` matrix of edge travel minutes.
    node_xy : numpy.ndarray
        ``(N, 2)`` node coordinates in ``metric_crs``.
    component : numpy.ndarray
        Connected-component label of every node.
    metric_crs : str
    default_speed_kmh : float
        Speed for edges without one, and for the leg between a point and its road node.
    """

    graph: sparse.csr_matrix
    node_xy: np.ndarray
    component: np.ndarray
    metric_crs: str
    default_speed_kmh: float
    tree: cKDTree = field(repr=False)

    @property
    def n_nodes(self) -> int:
        return self.graph.shape[0]

    @property
    def n_edges(self) -> int:
        return self.graph.nnz // 2

    @functools.cached_property
    def two_way(self) -> bool:
        """Whether every edge has the same time both ways (as build_road_network makes them)."""
        return abs(self.graph - self.graph.T).nnz == 0


def build_road_network(roads: gpd.GeoDataFrame, *, speed_column: str = "speed_kmh",
                       default_speed_kmh: float = 30.0, metric_crs: str = DEFAULT_METRIC_CRS) -> RoadNetwork:
    """Turn road lines into a graph whose edges weigh their travel minutes.

    Every vertex of every line is a node (vertices closer than 1 cm are merged), every
    segment between consecutive vertices an edge usable both ways. Lines that cross
    without sharing a vertex are not connected (bridges, flyovers), as in most road data.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        LineStrings or MultiLineStrings with a CRS; optional speed column in km/h.
    speed_column : str, default "speed_kmh"
        Column with each road's speed; missing values and a missing column use
        ``default_speed_kmh``.
    default_speed_kmh : float, default 30
    metric_crs : str, default "EPSG:4547"

    Returns
    -------
    RoadNetwork

    Raises
    ------
    RoutingError
        Not a GeoDataFrame, no CRS, no lines, non-line geometries, non-positive speeds.
    """
    if not isinstance(roads, gpd.GeoDataFrame):
        raise RoutingError(f"roads must be a GeoDataFrame, got {type(roads).__name__}")
    if roads.crs is None:
        raise RoutingError("roads have no CRS; set it (storage CRS is EPSG:4326)")
    _speed_m_per_min(default_speed_kmh, "default_speed_kmh")
    geoms = roads.geometry
    keep = geoms.notna().to_numpy() & ~geoms.is_empty.to_numpy()
    if not keep.any():
        raise RoutingError("the road network has no lines")
    kinds = set(geoms[keep].geom_type)
    if not kinds <= {"LineString", "MultiLineString"}:
        raise RoutingError(f"roads must be LineStrings, got {', '.join(sorted(kinds))}")
    if speed_column in roads.columns:
        speed = pd.to_numeric(roads[speed_column], errors="coerce").to_numpy(dtype="float64")
        speed = np.where(np.isnan(speed), default_speed_kmh, speed)
        if (speed[keep] <= 0).any():
            raise RoutingError(f"roads have non-positive values in {speed_column!r}")
    else:
        speed = np.full(len(roads), float(default_speed_kmh))
    metric = project_geometries(geoms[keep].to_numpy(), roads.crs, metric_crs)
    speed = speed[keep]
    parts, part_of = shapely.get_parts(metric, return_index=True)
    coords, line_of = shapely.get_coordinates(parts, return_index=True)
    # node identity: coordinates rounded to 1 cm
    key = np.round(coords * 100.0).astype(np.int64)
    _, first, node_of = np.unique(key, axis=0, return_index=True, return_inverse=True)
    node_of = node_of.ravel()
    node_xy = coords[first]
    same_line = line_of[1:] == line_of[:-1]
    u, v = node_of[:-1][same_line], node_of[1:][same_line]
    seg_len = np.hypot(*(coords[1:][same_line] - coords[:-1][same_line]).T)
    seg_speed = speed[part_of[line_of[:-1][same_line]]] * 1000.0 / 60.0
    real = u != v
    u, v, w = u[real], v[real], seg_len[real] / seg_speed[real]
    n = len(node_xy)
    # parallel edges: keep the fastest (a csr built from duplicates would add them up)
    a, b = np.minimum(u, v), np.maximum(u, v)
    order = np.lexsort((w, b, a))
    a, b, w = a[order], b[order], w[order]
    uniq = np.ones(len(a), dtype=bool)
    uniq[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, w = a[uniq], b[uniq], w[uniq]
    graph = sparse.csr_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    _, component = csgraph.connected_components(graph, directed=False)
    return RoadNetwork(graph=graph, node_xy=node_xy, component=component, metric_crs=metric_crs,
                       default_speed_kmh=float(default_speed_kmh), tree=cKDTree(node_xy))


def road_network_travel(roads: gpd.GeoDataFrame | RoadNetwork, points_lonlat: Sequence[tuple[float, float]],
                        default_speed_kmh: float = 30.0, metric_crs: str = DEFAULT_METRIC_CRS,
                        snap_max_m: float = 500.0, *, labels: Sequence[str] | None = None,
                        speed_column: str = "speed_kmh") -> TravelTimes:
    """Travel times over a road network.

    Each point is snapped to its nearest road node; the leg between a point and its node
    is covered in a straight line at ``default_speed_kmh``. Rows of the matrix are
    computed when first asked for (``TravelTimes.rows``, or all of them by ``minutes``),
    by Dijkstra over the sparse graph from the points' nodes only.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame or RoadNetwork
        Road lines (see :func:`build_road_network`), or a network built before (faster
        when planning many routes on the same roads; its own CRS and default speed win).
    points_lonlat : sequence of (lon, lat)
        The points, e.g. the start followed by the candidate stops.
    default_speed_kmh : float, default 30
    metric_crs : str, default "EPSG:4547"
    snap_max_m : float, default 500
        A point farther than this from every road node is an error.
    labels : sequence of str, optional
        Names of the points for messages (``plan_route`` passes "start" and the stop ids).
    speed_column : str, default "speed_kmh"

    Returns
    -------
    TravelTimes
        ``mode == "road"``; ``path(i, j)`` follows the roads.

    Raises
    ------
    RoutingError
        A point farther than ``snap_max_m`` from any road ("stop X is 812 m from the
        nearest road"), or two points with no road between them ("no road connects
        start and stop X").
    """
    net = roads if isinstance(roads, RoadNetwork) else build_road_network(
        roads, speed_column=speed_column, default_speed_kmh=default_speed_kmh, metric_crs=metric_crs)
    pts = _points_array(points_lonlat)
    names = _labels(labels, len(pts))
    if not isinstance(snap_max_m, (int, float)) or not snap_max_m >= 0:
        raise RoutingError(f"snap_max_m must be a non-negative number, got {snap_max_m!r}")
    to_metric = transformer("EPSG:4326", net.metric_crs)
    to_lonlat = transformer(net.metric_crs, "EPSG:4326")
    x, y = to_metric.transform(pts[:, 0], pts[:, 1])
    xy = np.column_stack([x, y])
    snap_dist, node = net.tree.query(xy)
    far = np.flatnonzero(snap_dist > snap_max_m)
    if len(far):
        i = int(far[0])
        raise RoutingError(f"{names[i]} is {snap_dist[i]:.0f} m from the nearest road "
                           f"(at most {snap_max_m:.0f} m allowed)", )
    comp = net.component[node]
    other = np.flatnonzero(comp != comp[0])
    if len(other):
        j = int(other[0])
        raise RoutingError(f"no road connects {names[0]} and {names[j]}")
    access = snap_dist / _speed_m_per_min(net.default_speed_kmh, "default_speed_kmh")

    def rows(indices: np.ndarray) -> np.ndarray:
        # one Dijkstra run per distinct road node, distances only (the plan rebuilds the
        # few paths it needs from short searches, below)
        sources, source_of = np.unique(node[indices], return_inverse=True)
        dist = csgraph.dijkstra(net.graph, directed=True, indices=sources)
        out = dist[source_of][:, node] + access[indices][:, None] + access[None, :]
        out[np.arange(len(indices)), indices] = 0.0
        return out

    trees: dict[int, tuple[float, np.ndarray]] = {}

    def path(i: int, j: int) -> list[tuple[float, float]]:
        s, t = int(node[i]), int(node[j])
        # a search from s that stops just past t's distance: a small area for a short leg
        reach = float(tt.rows([i])[0, j] - access[i] - access[j]) * (1 + 1e-9) + 1e-9
        if s not in trees or trees[s][0] < reach:
            _, pred = csgraph.dijkstra(net.graph, directed=True, indices=s, limit=reach, return_predecessors=True)
            if t != s and pred[t] < 0:  # rounding put t just past the limit: search everything
                reach = np.inf
                _, pred = csgraph.dijkstra(net.graph, directed=True, indices=s, return_predecessors=True)
            trees[s] = (reach, pred)
        pred = trees[s][1]
        chain = [t]
        while chain[-1] != s:
            chain.append(int(pred[chain[-1]]))
        chain.reverse()
        lon, lat = to_lonlat.transform(net.node_xy[chain, 0], net.node_xy[chain, 1])
        coords = [tuple(pts[i])] + list(zip(np.asarray(lon).tolist(), np.asarray(lat).tolist())) + [tuple(pts[j])]
        return _dedupe(coords)

    tt = TravelTimes(None, pts, "road", names, path, symmetric=net.two_way, _rows_fn=rows)
    return tt


def _dedupe(coords: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = [coords[0]]
    for c in coords[1:]:
        if abs(c[0] - out[-1][0]) > 1e-12 or abs(c[1] - out[-1][1]) > 1e-12:
            out.append(c)
    return out


# --------------------------------------------------------------------------- the plan


@dataclass
class RoutePlan:
    """A planned patrol route.

    Attributes
    ----------
    stops : pandas.DataFrame
        The stops in visiting order: ``order`` (1-based), ``id``, ``lon``, ``lat``,
        ``prize``, ``service_minutes``, ``travel_minutes`` (from the previous stop or the
        start), ``arrival_minute`` and ``departure_minute`` (minutes after the shift starts).
    total_prize : float
        Sum of the visited stops' prizes.
    total_minutes : float
        From leaving the start to leaving the last stop, plus the way back when
        ``return_to_start``; never more than ``shift_minutes``.
    travel_minutes, service_minutes : float
        The two parts of ``total_minutes``.
    shift_minutes : float
    path : list of (lon, lat)
        The whole route as one line (start, stops, and back when ``return_to_start``).
    travel_mode : str
        ``"road"`` or ``"straight_line"``.
    status : str
        How the route was found: ``"ROUTING_OPTIMAL"`` (exact, few stops), or the
        search's end — ``"SEARCH_CONVERGED (n rounds)"`` (it stopped improving),
        ``"SEARCH_ROUNDS_DONE (n rounds)"`` (it used its rounds), ``"SEARCH_TIME_LIMIT
        (n rounds)"`` (the clock stopped it first: a busy machine) — followed by what
        OR-Tools did from its route: ``"; OR-Tools improved"`` (the route is OR-Tools'),
        ``"; OR-Tools checked, no better route"`` or ``"; OR-Tools skipped"`` (no time
        left), e.g. ``"SEARCH_CONVERGED (54 rounds); OR-Tools checked, no better route"``.
    start : (lon, lat)
    return_to_start : bool
    skipped : list
        Ids of candidate stops left out.
    """

    stops: pd.DataFrame
    total_prize: float
    total_minutes: float
    travel_minutes: float
    service_minutes: float
    shift_minutes: float
    path: list[tuple[float, float]]
    travel_mode: str
    status: str
    start: tuple[float, float]
    return_to_start: bool
    skipped: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form: plain numbers and lists, the path as a GeoJSON LineString."""
        stops = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
                 for row in self.stops.to_dict(orient="records")]
        return {
            "stops": stops,
            "total_prize": float(self.total_prize),
            "total_minutes": float(self.total_minutes),
            "travel_minutes": float(self.travel_minutes),
            "service_minutes": float(self.service_minutes),
            "shift_minutes": float(self.shift_minutes),
            "path": {"type": "LineString", "coordinates": [list(c) for c in self.path]},
            "travel_mode": self.travel_mode,
            "status": self.status,
            "start": list(self.start),
            "return_to_start": self.return_to_start,
            "skipped": [s.item() if isinstance(s, np.generic) else s for s in self.skipped],
        }


def _check_stops(stops: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(stops, pd.DataFrame):
        raise RoutingError(f"stops must be a pandas DataFrame, got {type(stops).__name__}")
    missing = [c for c in ("id", "lon", "lat", "prize") if c not in stops.columns]
    if missing:
        raise RoutingError(f"stops are missing column(s) {', '.join(missing)}; expected id, lon, lat, prize "
                           "and optionally service_minutes")
    if stops.empty:
        raise RoutingError("no candidate stops: the zone has no grid with a positive risk score to visit")
    out = stops.reset_index(drop=True).copy()
    if out["id"].duplicated().any():
        repeated = out["id"][out["id"].duplicated()].unique()[:5]
        raise RoutingError(f"stop ids are not unique: {', '.join(map(str, repeated))}")
    for col in ("lon", "lat", "prize"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
        if not np.isfinite(out[col].to_numpy(dtype="float64")).all():
            raise RoutingError(f"stops have missing or non-numeric {col!r} values")
    if (out["prize"] < 0).any():
        raise RoutingError(f"stop {out['id'][out['prize'] < 0].iloc[0]} has a negative prize")
    if "service_minutes" not in out.columns:
        out["service_minutes"] = DEFAULT_SERVICE_MINUTES
    out["service_minutes"] = pd.to_numeric(out["service_minutes"], errors="coerce")
    sm = out["service_minutes"].to_numpy(dtype="float64")
    if not np.isfinite(sm).all() or (sm < 0).any():
        raise RoutingError("stops have missing or negative service_minutes")
    _points_array(out[["lon", "lat"]].to_numpy(), "stop coordinates")
    return out


def _exact_route(cost: np.ndarray, prize: np.ndarray, budget: int, max_stops: int | None) -> list[int]:
    """Best route by dynamic programming over subsets (Held-Karp), for a few stops only.

    Same conventions as :class:`~gridmap.analysis.routing_search.OrienteeringSearch`;
    ``k`` stops cost ``2**k * k`` states.
    Ties in prize go to the shorter route.
    """
    k = cost.shape[0] - 2
    end = k + 1
    inf = np.iinfo(np.int64).max // 4
    c = cost[1:end, 1:end]
    size = 1 << k
    best_time = np.full((size, k), inf, dtype=np.int64)
    parent = np.full((size, k), -1, dtype=np.int8)
    singles = 1 << np.arange(k)
    best_time[singles, np.arange(k)] = cost[0, 1:end]
    for subset in range(1, size):
        row = best_time[subset]
        if row.min() > budget:
            continue
        reach = row[:, None] + c                     # (last stop, next stop)
        prev = reach.argmin(axis=0)
        t = reach[prev, np.arange(k)]
        new = (subset & singles) == 0
        targets = (subset | singles)[new]
        better = t[new] < best_time[targets, np.flatnonzero(new)]
        idx = np.flatnonzero(new)[better]
        best_time[targets[better], idx] = t[new][better]
        parent[targets[better], idx] = prev[idx]
    total = best_time + cost[1:end, end][None, :]
    total_min = total.min(axis=1)
    bits = ((np.arange(size)[:, None] >> np.arange(k)) & 1).astype(bool)
    value = bits @ prize[1:end]
    ok = total_min <= budget
    if max_stops is not None:
        ok &= bits.sum(axis=1) <= max_stops
    ok[0] = False
    if not ok.any():
        return []
    cand = np.flatnonzero(ok)
    top = value[cand].max()
    if top <= 0:
        return []
    cand = cand[value[cand] >= top - 1e-12]
    subset = int(cand[np.argmin(total_min[cand])])
    last = int(total[subset].argmin())
    route = []
    while subset:
        route.append(last + 1)
        p = int(parent[subset, last])
        subset &= ~(1 << last)
        last = p
    return route[::-1]


def _search_route(search: OrienteeringSearch, time_limit_s: float, deadline: float) -> tuple[list[int], str]:
    """Iterated local search with a round budget; returns model nodes and a status."""
    rounds = max(1, int(round(_ROUNDS_PER_SECOND * time_limit_s)))
    stall = max(_MIN_STALL_ROUNDS, int(_STALL_SHARE * rounds))
    route = search.run(rounds, deadline=deadline, stall_rounds=stall, min_rounds=min(_MIN_ROUNDS, rounds))
    if search.stalled:
        status = f"SEARCH_CONVERGED ({search.rounds} rounds)"
    elif search.rounds >= rounds:
        status = f"SEARCH_ROUNDS_DONE ({search.rounds} rounds)"
    else:
        status = f"SEARCH_TIME_LIMIT ({search.rounds} rounds)"
    return route, status


def _feasible(search: OrienteeringSearch, route: Sequence[int]) -> bool:
    """Whether ``route`` is a route of the search's model: distinct known stops, within the
    stop limit and, by the search's own cost matrix, within the budget."""
    nodes = list(route)
    if len(set(nodes)) != len(nodes) or len(nodes) > search.limit:
        return False
    if any(not (1 <= v < search.end) or not search.known[v] for v in nodes):
        return False
    return search.time(nodes) <= search.budget


def _ortools_parameters():
    """Guided local search, with the operators that trade unvisited stops for visited ones."""
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    ops = params.local_search_operators
    for name in _ORTOOLS_EXTRA_OPERATORS:
        setattr(ops, name, optional_boolean_pb2.BOOL_TRUE)
    return params


def _ortools_route(search: OrienteeringSearch, initial: Sequence[int], until: float) -> list[int] | None:
    """OR-Tools' routing solver on the search's model, started from ``initial``.

    The model holds the start, the end and the stops whose costs are known (those the
    search fetched: no new travel rows), one disjunction per stop with its prize as the
    penalty for leaving it out, a time dimension whose transit is ``search.c`` (travel
    plus the service at the node left, integer ticks) and whose capacity is the budget,
    and a count dimension for ``max_stops``. Guided local search runs until ``until``
    (a ``time.perf_counter()`` value). Returns the best route found, as model nodes, or
    None when no time is left once the model is built or OR-Tools finds no solution.
    """
    stops = np.flatnonzero(search.known[1:search.end]) + 1
    nodes = np.r_[0, stops, search.end]
    sub = {int(v): i for i, v in enumerate(nodes)}
    n, end = len(nodes), len(nodes) - 1
    transit = search.c[np.ix_(nodes, nodes)].copy()
    transit[:, 0] = 0                   # nothing goes back into the start
    transit[end, :] = 0                 # the end goes nowhere
    np.fill_diagonal(transit, 0)
    if transit.max() >= _UNKNOWN_TICKS:
        raise RoutingError("solver failure: the OR-Tools model has a travel time the search never computed")
    prize = search.prize[stops]
    positive = prize[prize > 0]
    scale = _PENALTY_PER_BUDGET * (search.budget + 1) / positive.min() if len(positive) else 0.0
    if len(positive):
        scale = min(scale, _PENALTY_SUM_MAX / positive.sum())
    penalty = np.round(prize * scale).astype(np.int64)

    manager = pywrapcp.RoutingIndexManager(n, 1, [0], [end])
    model = pywrapcp.RoutingModel(manager)
    arc = model.RegisterTransitMatrix(transit.tolist())
    model.SetArcCostEvaluatorOfAllVehicles(arc)
    model.AddDimension(arc, 0, search.budget, True, "Time")
    if search.limit < len(stops):
        one_per_stop = model.RegisterUnaryTransitVector([0] + [1] * len(stops) + [0])
        model.AddDimension(one_per_stop, 0, int(search.limit), True, "Stops")
    for i in range(1, end):
        model.AddDisjunction([manager.NodeToIndex(i)], int(penalty[i - 1]))
    params = _ortools_parameters()
    params.time_limit.FromMilliseconds(max(1, int((until - time.perf_counter()) * 1000)))
    model.CloseModelWithParameters(params)
    start = model.ReadAssignmentFromRoutes([[sub[int(v)] for v in initial]], True)
    left = until - time.perf_counter()
    if start is None or left < _ORTOOLS_MIN_S:
        return None
    params.time_limit.FromMilliseconds(max(1, int(left * 1000)))
    solution = model.SolveFromAssignmentWithParameters(start, params)
    if solution is None:
        return None
    route, index = [], model.Start(0)
    while not model.IsEnd(index):
        node = manager.IndexToNode(index)
        if node != 0:
            route.append(int(nodes[node]))
        index = solution.Value(model.NextVar(index))
    return route


def _ortools_step(search: OrienteeringSearch, route: list[int], until: float) -> tuple[list[int], str]:
    """OR-Tools from the search's route until ``until``; its route only if feasible by the
    search's cost matrix and better (more prize, or the same prize in less time)."""
    if _ORTOOLS_SHARE <= 0 or until - time.perf_counter() < _ORTOOLS_MIN_S:
        return route, "OR-Tools skipped"
    found = _ortools_route(search, route, until)
    if found is None:
        return route, "OR-Tools skipped"
    if _feasible(search, found) and search.better(found, route):
        return found, "OR-Tools improved"
    return route, "OR-Tools checked, no better route"


def plan_route(stops: pd.DataFrame, start: tuple[float, float], shift_minutes: float,
               travel: TravelTimes | Callable[..., TravelTimes], *, max_stops: int | None = None,
               time_limit_s: float = 2.0, return_to_start: bool = True) -> RoutePlan:
    """Plan the patrol route that collects the most prize within a shift.

    Parameters
    ----------
    stops : pandas.DataFrame
        Candidate stops: ``id`` (unique), ``lon``, ``lat``, ``prize`` (float >= 0) and
        ``service_minutes`` (time spent at the stop, 10-15 minutes deters best; 12 when
        the column is missing). :func:`choose_candidates` builds this table.
    start : (lon, lat)
        Where the patrol starts (the police station).
    shift_minutes : float
        Time budget: travel plus service, and the way back when ``return_to_start``.
    travel : TravelTimes or callable
        Either a matrix over ``[start] + stops`` in this order (as built by
        ``straight_line_travel([start, *zip(stops.lon, stops.lat)])``), or a function
        ``f(points_lonlat, labels=...) -> TravelTimes`` that plan_route calls with those
        points, e.g. ``functools.partial(road_network_travel, network)``.
    max_stops : int, optional
        Visit at most this many stops.
    time_limit_s : float, default 2
        Wall-clock limit of the whole call: the travel matrix when ``travel`` is a
        function, the search and the plan. The search's work is counted in rounds, 40
        per second of the limit (80 for 2 s), and it stops earlier once 40 % of them in
        a row found nothing better; the clock only cuts it short (after at least 10
        rounds) when the machine is too busy to do them in time. OR-Tools then gets
        what is left until 90 % of the limit, at most 15 % of it (0.3 s of 2 s), and is
        skipped below 50 ms; the last 10 % are for the plan. With 300 candidates on a
        20,000-edge road network, the road rows the search needs (about 80 of 301) take
        0.1-0.15 s and the rounds 0.1-0.35 s of CPU.
    return_to_start : bool, default True
        Whether the route must end back at ``start``.

    Returns
    -------
    RoutePlan

    Raises
    ------
    RoutingError
        No candidate stops, bad columns or values, a travel matrix that does not match
        the points, a stop unreachable by road, a shift too short for even one stop, or
        a solver failure.

    Notes
    -----
    The model is an orienteering problem: one vehicle from ``start`` to ``start`` (or to
    a free end), each stop visited at most once and worth its prize, travel plus service
    within ``shift_minutes``; most prize first, then the shortest route. Travel and
    service times are rounded *up* to whole milliseconds, so the plan's real total time
    never exceeds ``shift_minutes``. Stops that cannot fit the shift even alone are left
    out of the model.

    Up to 12 stops that fit the shift the route is exact (dynamic programming over
    subsets). Beyond, an iterated local search
    (:class:`~gridmap.analysis.routing_search.OrienteeringSearch`): greedy insertion by
    prize per added minute, 2-opt and or-opt, swaps of a visited stop for a larger
    unvisited prize, and perturbations with record-to-record acceptance. The search is
    seeded, so the same inputs give the same route.

    Then OR-Tools' routing solver, the model issue 5 names, starts from the search's
    route: the start, the end and the stops whose travel rows the search computed (no
    new rows), one disjunction per stop with its prize as the penalty, a time dimension
    over the same integer costs with the shift as capacity, ``max_stops`` as a count
    dimension, guided local search. Its route replaces the search's only when it fits
    the shift by the search's own costs and collects more prize (or the same in less
    time); ``status`` says which. Alone, OR-Tools stalls 2-6 % below the search on
    300-stop cases (bench/bench_routing.py), so it checks and polishes, it does not lead.
    Its solve is cut by the clock, so unlike the search it may differ between a busy
    and an idle machine when it does improve the route.
    """
    began = time.perf_counter()
    table = _check_stops(stops)
    start_pt = _points_array([start], "start")[0]
    if not isinstance(shift_minutes, (int, float, np.integer, np.floating)) or not shift_minutes > 0:
        raise RoutingError(f"shift_minutes must be a positive number, got {shift_minutes!r}")
    if not isinstance(time_limit_s, (int, float)) or not time_limit_s > 0:
        raise RoutingError(f"time_limit_s must be a positive number of seconds, got {time_limit_s!r}")
    if max_stops is not None and (not isinstance(max_stops, (int, np.integer)) or max_stops < 1):
        raise RoutingError(f"max_stops must be a positive integer, got {max_stops!r}")

    points = np.vstack([start_pt, table[["lon", "lat"]].to_numpy(dtype="float64")])
    labels = ["start"] + [f"stop {i}" for i in table["id"]]
    if isinstance(travel, TravelTimes):
        tt = travel
    elif callable(travel):
        tt = travel(points, labels=labels)
        if not isinstance(tt, TravelTimes):
            raise RoutingError(f"the travel function returned {type(tt).__name__}, not TravelTimes")
    else:
        raise RoutingError(f"travel must be TravelTimes or a function building it, got {type(travel).__name__}")
    if tt.shape != (len(points), len(points)):
        raise RoutingError(f"the travel matrix is {tt.shape[0]}x{tt.shape[1]} but there are "
                           f"{len(points)} points (start + {len(table)} stops); build it over [start, *stops]")
    if not np.allclose(tt.points, points, atol=1e-9, rtol=0):
        raise RoutingError("the travel matrix was built for other points; build it over [start, *stops] in order")
    # Road travel computes rows on demand: only the start's row now, then the rows of the
    # stops the search puts on a route. Its times are the same both ways, so a stop's row
    # is also its column. Any other matrix is read whole, as given.
    lazy = not tt.complete and tt.symmetric

    def travel_rows(idx: np.ndarray) -> np.ndarray:
        minutes = np.asarray(tt.rows(idx), dtype="float64")
        bad = ~np.isfinite(minutes) | (minutes < 0)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise RoutingError(f"no route connects {tt.labels[idx[r]]} and {tt.labels[c]}")
        return minutes

    if not lazy:
        travel_rows(np.arange(len(points)))
        to_point = np.asarray(tt.minutes, dtype="float64").T   # to_point[j] = minutes[:, j]

    def ticks(minutes: np.ndarray) -> np.ndarray:
        # integer milliseconds, rounded up so that the real time never exceeds the budget
        return np.maximum(np.ceil(minutes * _TICKS_PER_MINUTE - 1e-6).astype(np.int64), 0)

    n = len(table)
    service = table["service_minutes"].to_numpy(dtype="float64")
    prize = table["prize"].to_numpy(dtype="float64")
    budget = int(math.floor(float(shift_minutes) * _TICKS_PER_MINUTE + 1e-6))
    service_s = np.zeros(n + 1, dtype=np.int64)
    service_s[1:] = np.ceil(service * _TICKS_PER_MINUTE - 1e-6).astype(np.int64)
    from_start = ticks(travel_rows(np.array([0]))[0])
    if return_to_start:
        back = from_start if lazy else ticks(to_point[0])       # back[i]: from point i to the start
    else:
        back = np.zeros(n + 1, dtype=np.int64)

    # stops that fit the shift on their own; the rest stay out of the model
    alone = from_start[1:] + service_s[1:] + back[1:]
    fits = np.flatnonzero(alone <= budget) + 1
    if len(fits) == 0:
        need = float(alone.min()) / _TICKS_PER_MINUTE
        raise RoutingError(f"the shift of {float(shift_minutes):g} minutes is too short for even one stop: "
                           f"the quickest needs {need:.1f} minutes")

    # Model nodes: 0 = start, 1..k = stops that fit, k+1 = end. cost[i, j] is the travel
    # from i to j plus the service at i; nothing goes back into the start node, the end
    # goes nowhere. Rows and columns of stops are filled when the search needs them.
    k = len(fits)
    cost = np.full((k + 2, k + 2), _UNKNOWN_TICKS, dtype=np.int64)
    cost[0, 1:k + 1] = from_start[fits]
    cost[1:k + 1, k + 1] = back[fits] + service_s[fits]
    cost[:, 0] = 0
    cost[0, k + 1] = 0
    cost[k + 1, :] = 0
    np.fill_diagonal(cost, 0)

    def stop_costs(model_nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """cost[x, :] and cost[:, x] for model nodes x (stops)."""
        points_of = fits[model_nodes - 1]
        out_of = travel_rows(points_of)                           # from each x to every point
        into = out_of if lazy else to_point[points_of]            # to each x from every point
        rows = np.empty((len(model_nodes), k + 2), dtype=np.int64)
        cols = np.empty((len(model_nodes), k + 2), dtype=np.int64)
        rows[:, 0] = 0
        rows[:, 1:k + 1] = ticks(out_of[:, fits]) + service_s[points_of][:, None]
        rows[:, k + 1] = back[points_of] + service_s[points_of]
        cols[:, 0] = from_start[points_of]
        cols[:, 1:k + 1] = ticks(into[:, fits]) + service_s[fits][None, :]
        cols[:, k + 1] = 0
        at = np.arange(len(model_nodes))
        rows[at, model_nodes] = 0
        cols[at, model_nodes] = 0
        return rows, cols

    prize_model = np.r_[0.0, prize[fits - 1], 0.0]
    search = OrienteeringSearch(cost, prize_model, budget, max_stops, seed=0, fetch=stop_costs)
    if not lazy or k <= _EXACT_MAX_STOPS:
        search.ready(np.arange(1, k + 1))
    if k <= _EXACT_MAX_STOPS:
        route, status = _exact_route(search.c, prize_model, budget, max_stops), "ROUTING_OPTIMAL"
    else:
        deadline = began + (1.0 - _PLAN_RESERVE_SHARE) * time_limit_s
        route, status = _search_route(search, time_limit_s, deadline)
        until = min(deadline, time.perf_counter() + _ORTOOLS_SHARE * time_limit_s)
        route, checked = _ortools_step(search, route, until)
        status = f"{status}; {checked}"
    order = [int(fits[i - 1]) for i in route]
    return _build_plan(table, tt, order, start_pt, float(shift_minutes), return_to_start, status)


def _build_plan(table: pd.DataFrame, tt: TravelTimes, order: list[int],
                start_pt: np.ndarray, shift_minutes: float, return_to_start: bool, status: str) -> RoutePlan:
    minutes = tt.rows([0, *order])            # the route's rows only (known already)
    row_of = {node: r for r, node in enumerate([0, *order])}
    rows = []
    clock = 0.0
    prev = 0
    travel_total = 0.0
    for rank, node in enumerate(order, start=1):
        leg = float(minutes[row_of[prev], node])
        stop = table.iloc[node - 1]
        arrival = clock + leg
        departure = arrival + float(stop["service_minutes"])
        rows.append({"order": rank, "id": stop["id"], "lon": float(stop["lon"]), "lat": float(stop["lat"]),
                     "prize": float(stop["prize"]), "service_minutes": float(stop["service_minutes"]),
                     "travel_minutes": leg, "arrival_minute": arrival, "departure_minute": departure})
        travel_total += leg
        clock = departure
        prev = node
    if return_to_start and order:
        back = float(minutes[row_of[prev], 0])
        travel_total += back
        clock += back
    legs = [0, *order] + ([0] if return_to_start and order else [])
    path: list[tuple[float, float]] = [tuple(map(float, start_pt))]
    for a, b in zip(legs[:-1], legs[1:]):
        path.extend(tt.path(a, b)[1:])
    path = _dedupe([(float(x), float(y)) for x, y in path])
    stops_df = pd.DataFrame(rows, columns=["order", "id", "lon", "lat", "prize", "service_minutes",
                                           "travel_minutes", "arrival_minute", "departure_minute"])
    visited = set(order)
    skipped = [table["id"].iloc[i - 1] for i in range(1, len(table) + 1) if i not in visited]
    return RoutePlan(stops=stops_df, total_prize=float(stops_df["prize"].sum()), total_minutes=clock,
                     travel_minutes=travel_total, service_minutes=float(stops_df["service_minutes"].sum()),
                     shift_minutes=shift_minutes, path=path, travel_mode=tt.mode, status=status,
                     start=(float(start_pt[0]), float(start_pt[1])), return_to_start=return_to_start,
                     skipped=skipped)


# --------------------------------------------------------------------------- candidates


def choose_candidates(grid_risk: gpd.GeoDataFrame, *, score_column: str = "score",
                      hours_column: str = "hours_since_last_visit", hotspot_column: str | None = "hotspot",
                      service_minutes: float = DEFAULT_SERVICE_MINUTES, half_life_hours: float = 24.0,
                      floor: float = 0.2, hotspot_bonus: float = 1.5,
                      max_candidates: int | None = None) -> pd.DataFrame:
    """Turn per-grid risk into candidate patrol stops with prizes.

    The prize of a grid is ``score × time_factor × hotspot_factor`` where

    * ``time_factor = floor + (1 − floor) × (1 − 2^(−h / half_life_hours))`` with ``h`` the
      hours since the last patrol visit: a grid visited just now is still worth ``floor``
      (0.2) of its score, one left alone for ``half_life_hours`` (24 h) is worth 0.6, and
      the factor approaches 1 the longer it is neglected. A grid never visited (``h`` is
      NaN) gets the full factor 1;
    * ``hotspot_factor`` is ``hotspot_bonus`` (1.5) for a significant hot spot, else 1.

    Only grids with a positive score become candidates; each stop is the grid's point on
    surface (always inside the grid).

    Parameters
    ----------
    grid_risk : geopandas.GeoDataFrame
        ``code``, polygons, the score, the hours since the last visit and the hot-spot flag.
    score_column, hours_column, hotspot_column : str
        Column names. The hot-spot column is either boolean or numeric, numbers above 0
        meaning a hot spot, so ``hotspot_column="gi_bin"`` takes the output of
        :func:`gridmap.analysis.hotspots.getis_ord_gi_star` as it is;
        ``hotspot_column=None`` gives no hot-spot bonus.
    service_minutes : float, default 12
        Stop length written into every candidate.
    half_life_hours, floor, hotspot_bonus : float
        Shape of the prize, see above.
    max_candidates : int, optional
        Keep only the highest prizes (keeps the solver fast in very large zones).

    Returns
    -------
    pandas.DataFrame
        ``id`` (grid code), ``lon``, ``lat``, ``prize``, ``service_minutes``, ``score``,
        ``hours_since_last_visit``, ``hotspot``; sorted by prize, highest first.

    Raises
    ------
    RoutingError
        Missing columns or CRS, bad values, or no grid with a positive score.
    """
    if not isinstance(grid_risk, gpd.GeoDataFrame):
        raise RoutingError(f"grid_risk must be a GeoDataFrame, got {type(grid_risk).__name__}")
    if grid_risk.crs is None:
        raise RoutingError("grid_risk has no CRS; set it (storage CRS is EPSG:4326)")
    needed = ["code", score_column, hours_column] + ([hotspot_column] if hotspot_column else [])
    missing = [c for c in needed if c not in grid_risk.columns]
    if missing:
        raise RoutingError(f"grid_risk is missing column(s) {', '.join(missing)}")
    if not (0 <= floor <= 1) or not half_life_hours > 0 or not hotspot_bonus > 0:
        raise RoutingError("need 0 <= floor <= 1, half_life_hours > 0 and hotspot_bonus > 0")
    score = pd.to_numeric(grid_risk[score_column], errors="coerce")
    if score.isna().any():
        raise RoutingError(f"grid_risk has missing or non-numeric {score_column!r} values")
    hours = pd.to_numeric(grid_risk[hours_column], errors="coerce")
    if (hours < 0).any():
        raise RoutingError(f"grid_risk has negative {hours_column!r} values")
    if hotspot_column:
        flag = grid_risk[hotspot_column]
        if pd.api.types.is_bool_dtype(flag) or flag.dtype == object:
            hot = flag.fillna(False).astype(bool)
        else:  # e.g. hotspots.getis_ord_gi_star's gi_bin: +1..+3 hot, -1..-3 cold, 0 neither
            hot = pd.to_numeric(flag, errors="coerce").fillna(0) > 0
    else:
        hot = pd.Series(False, index=grid_risk.index)
    time_factor = floor + (1.0 - floor) * (1.0 - np.power(2.0, -hours.to_numpy(dtype="float64") / half_life_hours))
    time_factor = np.where(np.isnan(time_factor), 1.0, time_factor)
    prize = score.to_numpy(dtype="float64") * time_factor * np.where(hot.to_numpy(), hotspot_bonus, 1.0)
    positive = score.to_numpy(dtype="float64") > 0
    if grid_risk.geometry.isna().any() or grid_risk.geometry.is_empty.any():
        raise RoutingError("grid_risk has missing or empty geometries")
    if not positive.any():
        raise RoutingError("no candidate stops: no grid in the zone has a positive risk score")
    pts = gpd.GeoSeries(shapely.point_on_surface(
        project_geometries(grid_risk.geometry.to_numpy(), grid_risk.crs, "EPSG:4326")))
    out = pd.DataFrame({
        "id": grid_risk["code"].to_numpy(),
        "lon": pts.x.to_numpy(),
        "lat": pts.y.to_numpy(),
        "prize": prize,
        "service_minutes": float(service_minutes),
        "score": score.to_numpy(dtype="float64"),
        "hours_since_last_visit": hours.to_numpy(dtype="float64"),
        "hotspot": hot.to_numpy(),
    })[positive]
    out = out.sort_values("prize", ascending=False, kind="mergesort").reset_index(drop=True)
    if max_candidates is not None:
        out = out.head(int(max_candidates))
    return out


# --------------------------------------------------------------------------- GPX


def route_to_gpx(plan: RoutePlan, name: str, *, start_time: datetime | None = None) -> str:
    """Write a plan as GPX 1.1 for a phone or a handheld GPS.

    The file holds one waypoint per stop (name ``"01 <id>"`` in visiting order, its
    planned arrival as ``time`` when ``start_time`` is given and always in the
    description), a route (``rte``) through the stops in order, and a track (``trk``)
    along the whole path (the roads, for road travel).

    Parameters
    ----------
    plan : RoutePlan
    name : str
        Name of the route and track.
    start_time : datetime, optional
        When the shift starts (tz-aware); turns the planned minutes into clock times.

    Returns
    -------
    str
        The GPX document (XML).
    """
    if not isinstance(plan, RoutePlan):
        raise RoutingError(f"plan must be a RoutePlan, got {type(plan).__name__}")
    if start_time is not None and (not isinstance(start_time, datetime) or start_time.tzinfo is None):
        raise RoutingError("start_time must be a timezone-aware datetime")
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "gridmap"
    gpx.name = str(name)
    route = gpxpy.gpx.GPXRoute(name=str(name))
    for row in plan.stops.itertuples(index=False):
        when = start_time + timedelta(minutes=row.arrival_minute) if start_time is not None else None
        label = f"{row.order:02d} {row.id}"
        desc = (f"stop {row.order}: arrive +{row.arrival_minute:.0f} min, stay {row.service_minutes:g} min, "
                f"prize {row.prize:.3g}")
        gpx.waypoints.append(gpxpy.gpx.GPXWaypoint(latitude=row.lat, longitude=row.lon, time=when,
                                                   name=label, description=desc))
        route.points.append(gpxpy.gpx.GPXRoutePoint(latitude=row.lat, longitude=row.lon, time=when, name=label))
    gpx.routes.append(route)
    track = gpxpy.gpx.GPXTrack(name=str(name))
    segment = gpxpy.gpx.GPXTrackSegment()
    for lon, lat in plan.path:
        segment.points.append(gpxpy.gpx.GPXTrackPoint(latitude=lat, longitude=lon))
    track.segments.append(segment)
    gpx.tracks.append(track)
    return gpx.to_xml(version="1.1")
