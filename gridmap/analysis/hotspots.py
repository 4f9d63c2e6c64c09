"""Getis-Ord Gi* hot spots over the grid lattice, with FDR-corrected confidence bins.

Two pieces:

:class:`GridAdjacency`
    Which grids neighbour which, built once from the grid polygons (Queen contiguity,
    or a distance band in a metric CRS) and kept as a CSR sparse matrix plus the grid
    codes in row order. It can be saved to / loaded from a numpy ``.npz`` file and
    carries a fingerprint of the grid codes and geometries, so a cache can tell when
    the grid layer changed and the adjacency must be rebuilt.

:func:`getis_ord_gi_star`
    The Gi* statistic with binary weights and the focal grid included (``star=True``),
    its normal-approximation z-score and p-value, a conditional-permutation pseudo
    p-value, and the ArcGIS-style confidence bins (+3/+2/+1 hot at 99/95/90 %,
    -1/-2/-3 cold, 0 not significant) after a false-discovery-rate correction.

The numbers ``gi``, ``gi_z``, ``p_norm`` and ``p_sim`` equal those of
``esda.G_Local(y, w, transform="B", star=True, permutations=n, seed=s)`` for the same
weights, values, permutation count and seed (esda 2.9 without numba, which draws its
permutations from the legacy ``numpy.random`` stream; see ``tests/analysis/test_hotspots.py``).
The permutation step is vectorised instead of esda's per-grid Python loop.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from esda import fdr
from pyproj import CRS
from scipy import stats

from gridmap.analysis.risk import AnalysisInputError, require_columns, require_crs

__all__ = [
    "GridAdjacency",
    "geometry_fingerprint",
    "getis_ord_gi_star",
    "DEFAULT_SEED",
    "DEFAULT_ALPHA_LEVELS",
    "ADJACENCY_METHODS",
]

DEFAULT_SEED = 12345
DEFAULT_ALPHA_LEVELS = (0.10, 0.05, 0.01)
ADJACENCY_METHODS = ("queen", "distance_band")
DEFAULT_METRIC_CRS = "EPSG:4547"
_FORMAT_VERSION = 1
# Upper bound on the number of simulated statistics held in memory at once (float64).
_SIMULATION_BLOCK = 4_000_000


def geometry_fingerprint(grids: gpd.GeoDataFrame) -> str:
    """SHA-256 over the grid codes (in row order) and their geometries' WKB.

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        Grid polygons with a ``code`` column.

    Returns
    -------
    str
        64 hexadecimal digits. It changes when a grid is added, removed, re-ordered,
        re-coded or re-shaped, and when the CRS changes.
    """
    require_columns(grids, ("code",), "grids")
    digest = hashlib.sha256()
    digest.update(str(grids.crs.to_string() if grids.crs is not None else "").encode())
    for code in grids["code"].astype(str):
        digest.update(code.encode())
        digest.update(b"\x00")
    wkb = shapely.to_wkb(np.asarray(grids.geometry.array), output_dimension=2, include_srid=False)
    for item in wkb:
        digest.update(b"" if item is None else item)
        digest.update(b"\x01")
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class GridAdjacency:
    """Binary neighbour relation between grids, as a CSR matrix without self-links.

    Build it with :meth:`from_grids`; keep it (in memory or with :meth:`save` /
    :meth:`load`) and rebuild it when :meth:`is_current` says the grid layer changed.

    Attributes
    ----------
    codes : numpy.ndarray of str
        Grid codes in row order. Statistics computed with this adjacency come out in
        this order; the permutation stream of :func:`getis_ord_gi_star` depends on it.
    indptr, indices : numpy.ndarray of int
        CSR structure: the neighbours of row ``i`` are
        ``indices[indptr[i]:indptr[i + 1]]`` (sorted, never ``i`` itself). The relation
        is symmetric.
    fingerprint : str
        :func:`geometry_fingerprint` of the grids it was built from.
    method : str
        ``"queen"`` or ``"distance_band"``.
    distance_m : float or None
        The band for ``"distance_band"``; None for Queen.
    metric_crs : str or None
        CRS the distance band was measured in; None for Queen.
    """

    codes: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    fingerprint: str
    method: str = "queen"
    distance_m: float | None = None
    metric_crs: str | None = None

    def __post_init__(self) -> None:
        n = len(self.codes)
        if self.indptr.shape != (n + 1,) or self.indptr[0] != 0 or self.indptr[-1] != len(self.indices):
            raise AnalysisInputError("adjacency CSR structure does not match its codes")
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise AnalysisInputError("adjacency refers to rows that do not exist")
        if self.method not in ADJACENCY_METHODS:
            raise AnalysisInputError(f"unknown adjacency method {self.method!r}; use one of {ADJACENCY_METHODS}")

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_grids(cls, grids: gpd.GeoDataFrame, *, method: str = "queen", distance_m: float | None = None,
                   metric_crs: str = DEFAULT_METRIC_CRS) -> GridAdjacency:
        """Build the neighbour relation of a grid layer.

        Parameters
        ----------
        grids : geopandas.GeoDataFrame
            Grid polygons in EPSG:4326 with a unique 15-digit ``code`` column and
            (Multi)Polygon geometries, as the app loads them from the ``grids`` table.
            Row order is kept.
        method : {"queen", "distance_band"}, default "queen"
            ``"queen"``: grids whose polygons touch, at an edge or a single corner
            (found with a shapely ``STRtree`` ``intersects`` query, so exact shared
            boundaries are needed). ``"distance_band"``: grids whose polygons are at
            most ``distance_m`` metres apart, measured in ``metric_crs``; a band of a
            metre or two also joins grids separated by digitising slivers.
        distance_m : float, optional
            Required for ``"distance_band"``, must be >= 0.
        metric_crs : str, default "EPSG:4547"
            Projected CRS in metres for the distance band (CGCS2000 / 3-degree GK CM 114E).

        Returns
        -------
        GridAdjacency

        Raises
        ------
        AnalysisInputError
            (a ``ValueError``) when ``code`` is missing or not unique, the CRS is not
            EPSG:4326, a geometry is missing or empty, or the method/distance is invalid.

        Examples
        --------
        >>> adjacency = GridAdjacency.from_grids(grids)            # doctest: +SKIP
        >>> adjacency.save("instance/adjacency.npz")                # doctest: +SKIP
        >>> cached = GridAdjacency.load("instance/adjacency.npz")   # doctest: +SKIP
        >>> cached.is_current(grids)                               # doctest: +SKIP
        True
        """
        if not isinstance(grids, gpd.GeoDataFrame):
            raise AnalysisInputError("grids must be a GeoDataFrame")
        require_columns(grids, ("code",), "grids")
        require_crs(grids, "grids")
        if method not in ADJACENCY_METHODS:
            raise AnalysisInputError(f"unknown adjacency method {method!r}; use one of {ADJACENCY_METHODS}")
        codes = grids["code"].astype(str).to_numpy()
        if len(codes) != len(set(codes)):
            raise AnalysisInputError("grid codes are not unique")
        geoms = np.asarray(grids.geometry.array)
        if len(geoms) and (shapely.is_missing(geoms).any() or shapely.is_empty(geoms).any()):
            raise AnalysisInputError("some grids have no geometry")
        fingerprint = geometry_fingerprint(grids)
        n = len(codes)
        if method == "queen":
            if distance_m is not None:
                raise AnalysisInputError("distance_m only applies to method='distance_band'")
            tree = shapely.STRtree(geoms)
            left, right = tree.query(geoms, predicate="intersects") if n else (np.empty(0, int),) * 2
            metric = None
        else:
            if distance_m is None or not np.isfinite(distance_m) or distance_m < 0:
                raise AnalysisInputError("method='distance_band' needs distance_m >= 0 (metres)")
            if not CRS.from_user_input(metric_crs).is_projected:
                raise AnalysisInputError(f"metric_crs {metric_crs!r} is not a projected CRS in metres")
            projected = np.asarray(grids.geometry.to_crs(metric_crs).array)
            tree = shapely.STRtree(projected)
            left, right = (tree.query(projected, predicate="dwithin", distance=float(distance_m))
                           if n else (np.empty(0, int),) * 2)
            metric = str(metric_crs)
        keep = left != right
        matrix = sp.csr_array((np.ones(int(keep.sum()), dtype=np.int8), (left[keep], right[keep])), shape=(n, n))
        matrix.sum_duplicates()
        matrix.sort_indices()
        # make the relation symmetric even if a predicate were not (it is for both methods)
        matrix = ((matrix + matrix.T) > 0).astype(np.int8).tocsr()
        matrix.sort_indices()
        return cls(codes=codes, indptr=matrix.indptr.astype(np.int64), indices=matrix.indices.astype(np.int64),
                   fingerprint=fingerprint, method=method,
                   distance_m=None if distance_m is None else float(distance_m), metric_crs=metric)

    # ------------------------------------------------------------------ cache

    def is_current(self, grids: gpd.GeoDataFrame) -> bool:
        """True when ``grids`` (codes, order, geometries, CRS) are what this was built from."""
        return geometry_fingerprint(grids) == self.fingerprint

    def save(self, path: str | os.PathLike) -> None:
        """Write to a numpy ``.npz`` file (no pickles; load with :meth:`load`)."""
        np.savez_compressed(
            path, format_version=np.int64(_FORMAT_VERSION), codes=self.codes.astype(str),
            indptr=self.indptr, indices=self.indices, fingerprint=np.str_(self.fingerprint),
            method=np.str_(self.method),
            distance_m=np.float64(np.nan if self.distance_m is None else self.distance_m),
            metric_crs=np.str_(self.metric_crs or ""))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GridAdjacency:
        """Read a file written by :meth:`save`.

        Raises
        ------
        AnalysisInputError
            When the file is not a gridmap adjacency of a known format version.
        """
        with np.load(path, allow_pickle=False) as data:
            if "format_version" not in data or int(data["format_version"]) != _FORMAT_VERSION:
                raise AnalysisInputError(f"{os.fspath(path)} is not a gridmap adjacency file of version "
                                         f"{_FORMAT_VERSION}")
            distance = float(data["distance_m"])
            return cls(codes=data["codes"].astype(str), indptr=data["indptr"].astype(np.int64),
                       indices=data["indices"].astype(np.int64), fingerprint=str(data["fingerprint"]),
                       method=str(data["method"]), distance_m=None if np.isnan(distance) else distance,
                       metric_crs=str(data["metric_crs"]) or None)

    # ------------------------------------------------------------------ views

    @property
    def n(self) -> int:
        """Number of grids."""
        return len(self.codes)

    @property
    def cardinalities(self) -> np.ndarray:
        """Number of neighbours of each grid (self not counted), in row order."""
        return np.diff(self.indptr)

    @property
    def matrix(self) -> sp.csr_array:
        """Binary ``n x n`` CSR matrix (int8) of the relation, zero diagonal."""
        return sp.csr_array((np.ones(len(self.indices), dtype=np.int8), self.indices, self.indptr),
                            shape=(self.n, self.n))

    def neighbours(self, code: str) -> list[str]:
        """Codes of the grids next to ``code``."""
        where = np.flatnonzero(self.codes == code)
        if not len(where):
            raise KeyError(code)
        i = int(where[0])
        return self.codes[self.indices[self.indptr[i]:self.indptr[i + 1]]].tolist()

    def to_libpysal(self):
        """The same relation as a :class:`libpysal.weights.W` with the grid codes as ids."""
        from libpysal.weights import W

        codes = self.codes.tolist()
        neighbours = {codes[i]: [codes[j] for j in self.indices[self.indptr[i]:self.indptr[i + 1]]]
                      for i in range(self.n)}
        return W(neighbours, id_order=codes, silence_warnings=True)


# ---------------------------------------------------------------------- Gi*


def getis_ord_gi_star(values, adjacency: GridAdjacency, *, permutations: int = 999,
                      seed: int = DEFAULT_SEED, alpha_levels: Sequence[float] = DEFAULT_ALPHA_LEVELS,
                      p_value: str = "sim") -> pd.DataFrame:
    """Getis-Ord Gi* per grid, with binary weights and FDR-corrected confidence bins.

    For grid *i* with value :math:`y_i`, neighbours :math:`N(i)` and
    :math:`k_i = |N(i)| + 1` (the grid itself counts, ``star=True``):

    * ``gi`` :math:`G_i^* = (y_i + \\sum_{j\\in N(i)} y_j) / \\sum_j y_j`;
    * ``gi_z``: :math:`(G_i^* - k_i/n) / \\sqrt{V_i}` with
      :math:`V_i = k_i (n - k_i) / ((n-1) n^2) \\cdot s^2 / \\bar y^2`, where
      :math:`s^2` is the population variance of *y* -- esda's normal approximation;
    * ``p_norm``: one-sided normal p-value of ``|gi_z|``;
    * ``p_sim``: conditional-permutation pseudo p-value, esda's "directed" form:
      with :math:`L` = number of the ``permutations`` simulated statistics at or above
      the observed one, :math:`L' = \\min(L, R - L)`, ``p_sim`` :math:`= (L'+1)/(R+1)`.
      Each simulation keeps :math:`y_i` and draws :math:`|N(i)|` values without
      replacement from the other grids. The draws replicate esda's exactly: one
      ``numpy.random.RandomState(seed)``, and for each permutation
      ``choice(n - 1, size=max_neighbours, replace=False)``, indices into the values
      with grid *i* removed, shared by all grids.
    * ``gi_bin``: +3/+2/+1 for hot spots significant at 99/95/90 % confidence, -3/-2/-1
      for cold spots, 0 otherwise. The p-value chosen by ``p_value`` is made two-sided
      (doubled, capped at 1: both esda p-values are one-sided), then for each level
      :math:`\\alpha` a grid is significant when its two-sided p is
      ``<= esda.fdr(p, alpha)`` (Benjamini-Hochberg; esda falls back to the Bonferroni
      bound when nothing passes). The sign is that of ``gi_z``.

    Parameters
    ----------
    values : pandas.Series or array-like
        Non-negative values per grid, e.g. ``grid_risk_summary(...)["score"]`` or a
        count column. A Series is matched to ``adjacency.codes`` by its index, which
        must hold exactly those codes; an array must already be in ``adjacency.codes``
        order.
    adjacency : GridAdjacency
        Neighbour relation from :meth:`GridAdjacency.from_grids`.
    permutations : int, default 999
        Number of conditional permutations; 0 skips them (``p_sim`` is NaN and the bins
        use ``p_norm``).
    seed : int, default 12345
        Seed of the permutation stream; the same seed, values and adjacency give the
        same ``p_sim``.
    alpha_levels : sequence of 3 floats, default (0.10, 0.05, 0.01)
        Two-sided significance levels of bins 1, 2 and 3 (strictly decreasing).
    p_value : {"sim", "norm"}, default "sim"
        Which p-value the bins use.

    Returns
    -------
    pandas.DataFrame
        Indexed by grid code (``adjacency.codes`` order, index name ``grid_code``) with
        columns ``value`` (float), ``n_neighbours`` (int), ``gi``, ``gi_z``, ``p_norm``,
        ``p_sim`` (float) and ``gi_bin`` (int, -3..3). ``attrs["fdr_thresholds"]``
        maps each alpha to the two-sided p-value threshold used.

        Undefined cases give NaN statistics and bin 0 rather than warnings: all values
        equal (including all zero: no variation to test), and ``p_sim`` of a grid
        without neighbours (esda reports 1/(R+1) for such an island because its
        simulated statistic is forced to 0; a lone grid is no cluster, so gridmap
        reports NaN there -- the only place its numbers differ from esda's).

    Raises
    ------
    AnalysisInputError
        (a ``ValueError``) when values are missing, negative or not aligned with the
        adjacency, or a parameter is out of range.

    Examples
    --------
    >>> summary = grid_risk_summary(grids, incidents, start, end, now=now)   # doctest: +SKIP
    >>> hot = getis_ord_gi_star(summary["score"], adjacency)                  # doctest: +SKIP
    >>> hot.loc[hot["gi_bin"] >= 2].index                                     # doctest: +SKIP
    """
    if not isinstance(adjacency, GridAdjacency):
        raise AnalysisInputError("adjacency must be a GridAdjacency (GridAdjacency.from_grids(grids))")
    if not isinstance(permutations, (int, np.integer)) or permutations < 0:
        raise AnalysisInputError("permutations must be a non-negative integer")
    if p_value not in ("sim", "norm"):
        raise AnalysisInputError("p_value must be 'sim' or 'norm'")
    if p_value == "sim" and permutations == 0:
        p_value = "norm"
    alphas = tuple(float(a) for a in alpha_levels)
    if len(alphas) != 3 or not all(0 < a < 1 for a in alphas) or not alphas[0] > alphas[1] > alphas[2]:
        raise AnalysisInputError("alpha_levels must be three strictly decreasing levels in (0, 1), "
                                 "e.g. (0.10, 0.05, 0.01)")
    y = _aligned_values(values, adjacency)
    n = adjacency.n
    index = pd.Index(adjacency.codes, name="grid_code", dtype=str)
    cardinality = adjacency.cardinalities
    result = pd.DataFrame({
        "value": y,
        "n_neighbours": cardinality.astype(np.int64),
        "gi": np.full(n, np.nan),
        "gi_z": np.full(n, np.nan),
        "p_norm": np.full(n, np.nan),
        "p_sim": np.full(n, np.nan),
        "gi_bin": np.zeros(n, dtype=np.int64),
    }, index=index)
    result.attrs["fdr_thresholds"] = {a: np.nan for a in alphas}
    total = y.sum()
    if n < 2 or total <= 0 or np.all(y == y[0]):
        return result

    gi, gi_z = _gi_star_normal(y, adjacency)
    result["gi"] = gi
    result["gi_z"] = gi_z
    result["p_norm"] = stats.norm.sf(np.abs(gi_z))
    if permutations:
        larger = _count_simulations_at_or_above(y, total, gi, adjacency, permutations, seed)
        folded = np.where(permutations - larger < larger, permutations - larger, larger)
        p_sim = (folded + 1.0) / (permutations + 1.0)
        p_sim[cardinality == 0] = np.nan
        result["p_sim"] = p_sim

    p_one_sided = result["p_sim" if p_value == "sim" else "p_norm"].to_numpy()
    testable = np.isfinite(p_one_sided) & np.isfinite(gi_z)
    p_two_sided = np.minimum(1.0, 2.0 * p_one_sided[testable])
    bins = np.zeros(int(testable.sum()), dtype=np.int64)
    thresholds = {}
    for level, alpha in enumerate(alphas, start=1):
        threshold = float(fdr(p_two_sided, alpha)) if len(p_two_sided) else np.nan
        thresholds[alpha] = threshold
        bins[p_two_sided <= threshold] = level
    sign = np.sign(gi_z[testable]).astype(np.int64)
    gi_bin = np.zeros(n, dtype=np.int64)
    gi_bin[testable] = bins * sign
    result["gi_bin"] = gi_bin
    result.attrs["fdr_thresholds"] = thresholds
    return result


def _aligned_values(values, adjacency: GridAdjacency) -> np.ndarray:
    if isinstance(values, pd.Series):
        index = values.index.astype(str)
        if not index.is_unique:
            raise AnalysisInputError("values have duplicate grid codes in their index")
        codes = pd.Index(adjacency.codes)
        missing = codes.difference(index)
        extra = index.difference(codes)
        if len(missing) or len(extra):
            raise AnalysisInputError(
                f"values and adjacency cover different grids ({len(missing)} grid(s) without a value, e.g. "
                f"{list(missing[:3])}; {len(extra)} value(s) for grids not in the adjacency, e.g. "
                f"{list(extra[:3])}); rebuild the adjacency if the grid layer changed")
        aligned = pd.Series(values.to_numpy(), index=index).reindex(codes)
        array = pd.to_numeric(aligned, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            array = np.asarray(values, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise AnalysisInputError("values must be numeric") from exc
        if len(array) != adjacency.n:
            raise AnalysisInputError(f"values have {len(array)} entries but the adjacency has {adjacency.n} grids")
    if not np.isfinite(array).all():
        raise AnalysisInputError("values must be finite numbers (no NaN) for every grid")
    if (array < 0).any():
        raise AnalysisInputError("Gi* needs non-negative values (counts, scores)")
    return array


def _gi_star_normal(y: np.ndarray, adjacency: GridAdjacency) -> tuple[np.ndarray, np.ndarray]:
    """Gi* and its z-score, written as esda's ``G_Local.calc`` for binary star weights."""
    n = adjacency.n
    # W @ y with the self-weight 1 on the diagonal
    rows = np.repeat(np.arange(n), adjacency.cardinalities)
    neighbour_sum = np.bincount(rows, weights=y[adjacency.indices], minlength=n)
    statistic = (neighbour_sum + y) / y.sum()
    empirical_mean = y.sum() / n
    mean_of_squares = (y ** 2).sum() / n
    empirical_variance = mean_of_squares - empirical_mean ** 2
    cardinality = (adjacency.cardinalities + 1).astype(float)
    expected_value = cardinality / n
    expected_variance = cardinality * (n - cardinality)
    expected_variance /= n - 1
    expected_variance *= 1 / n ** 2
    expected_variance *= empirical_variance / (empirical_mean ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_scores = (statistic - expected_value) / np.sqrt(expected_variance)
    z_scores[~np.isfinite(z_scores)] = np.nan
    return statistic, z_scores


def _esda_permutation_ids(n: int, max_neighbours: int, permutations: int, seed: int) -> np.ndarray:
    """The draws of ``esda.crand.vec_permutations`` (pure-numpy path), without touching
    the global ``numpy.random`` state."""
    stream = np.random.RandomState(seed)
    ids = np.empty((permutations, max_neighbours), dtype=np.int64)
    for p in range(permutations):
        ids[p] = stream.choice(n - 1, size=max_neighbours, replace=False)
    return ids


def _count_simulations_at_or_above(y: np.ndarray, total: float, gi: np.ndarray, adjacency: GridAdjacency,
                                   permutations: int, seed: int) -> np.ndarray:
    """For every grid, how many simulated Gi* are >= the observed one.

    esda draws, per permutation p, ids ``q_p0..q_pK`` into ``z_i`` = the values with
    grid i removed, so ``z_i[q] = y[q]`` when ``q < i`` and ``y[q + 1]`` otherwise; grid
    i with k neighbours uses the first k ids. For fixed p and k the simulated sum is
    therefore a step function of i with at most k + 1 steps (breaks at the sorted ids).
    We compute the k + 1 step values once per permutation and expand them over the
    grids with k neighbours with ``np.repeat``, instead of gathering k values per grid.
    """
    n = len(y)
    cardinality = adjacency.cardinalities
    larger = np.zeros(n, dtype=np.int64)
    max_neighbours = int(cardinality.max())
    if max_neighbours == 0:
        return larger
    ids = _esda_permutation_ids(n, max_neighbours, permutations, seed)
    for k in np.unique(cardinality):
        k = int(k)
        if k == 0:
            continue
        sites = np.flatnonzero(cardinality == k)
        chosen = ids[:, :k]
        value_below = y[chosen]        # used by grids i > q
        value_at_or_above = y[chosen + 1]  # used by grids i <= q
        order = np.argsort(chosen, axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(k)[None, :].repeat(permutations, axis=0), axis=1)
        steps = np.arange(k + 1)
        # step m: exactly m of the chosen ids are below i; sum in draw order as esda does
        step_sums = np.zeros((permutations, k + 1))
        for j in range(k):
            below = rank[:, j, None] < steps[None, :]
            step_sums += np.where(below, value_below[:, j, None], value_at_or_above[:, j, None])
        sorted_ids = np.take_along_axis(chosen, order, axis=1)
        # sites with at most m ids below them: i <= sorted_ids[m]
        cumulative = np.empty((permutations, k + 1), dtype=np.int64)
        cumulative[:, :k] = np.searchsorted(sites, sorted_ids, side="right")
        cumulative[:, k] = len(sites)
        counts = np.diff(cumulative, axis=1, prepend=0)
        own = y[sites]
        observed = gi[sites]
        block = max(1, _SIMULATION_BLOCK // len(sites))
        for start in range(0, permutations, block):
            stop = min(permutations, start + block)
            expanded = np.repeat(step_sums[start:stop].ravel(), counts[start:stop].ravel())
            expanded = expanded.reshape(stop - start, len(sites))
            simulated = (expanded + own) / total
            larger[sites] += (simulated >= observed).sum(axis=0)
    return larger
