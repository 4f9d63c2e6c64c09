"""GridAdjacency and getis_ord_gi_star: by hand on a 3x3 lattice, and equal to esda."""
from __future__ import annotations

import math
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from esda import G_Local
from libpysal.weights import Queen

from gridmap.analysis.hotspots import GridAdjacency, getis_ord_gi_star


def grid_code(k: int) -> str:
    return f"410421102201{k:03d}"


def lattice(nx: int, ny: int, *, cell_m: float = 1000.0, jitter: float = 0.0, seed: int = 0,
            gap_m: float = 0.0) -> gpd.GeoDataFrame:
    """nx*ny quadrilaterals (row by row from the south-west) in EPSG:4547, returned in 4326.
    Neighbours share exact corners (jitter moves shared corners). ``gap_m`` leaves a gap
    between every column instead."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(nx + 1, dtype=float), np.arange(ny + 1, dtype=float))
    gx += rng.uniform(-jitter, jitter, gx.shape)
    gy += rng.uniform(-jitter, jitter, gy.shape)
    x, y = 400_000 + gx * cell_m, 3_740_000 + gy * cell_m
    polygons = []
    for j in range(ny):
        for i in range(nx):
            corners = [(x[j, i], y[j, i]), (x[j, i + 1] - gap_m, y[j, i + 1]), (x[j + 1, i + 1] - gap_m, y[j + 1, i + 1]),
                       (x[j + 1, i], y[j + 1, i])]
            polygons.append(shapely.MultiPolygon([shapely.Polygon(corners)]))
    codes = [grid_code(k) for k in range(1, len(polygons) + 1)]
    return gpd.GeoDataFrame({"code": codes}, geometry=polygons, crs="EPSG:4547").to_crs("EPSG:4326")


def esda_g_local(grids, y, permutations, seed):
    """esda's reference: Queen weights from the polygons, G_Local star, binary weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands, esda's 'alternative' DeprecationWarning
        w = Queen.from_dataframe(grids, use_index=False)
        return w, G_Local(np.asarray(y, dtype=float), w, transform="B", star=True, permutations=permutations,
                          seed=seed, n_jobs=1)


# --------------------------------------------------------------------------- adjacency


def test_queen_neighbours_on_three_by_three():
    # 7 8 9
    # 4 5 6
    # 1 2 3
    adjacency = GridAdjacency.from_grids(lattice(3, 3))
    assert adjacency.cardinalities.tolist() == [3, 5, 3, 5, 8, 5, 3, 5, 3]
    assert adjacency.neighbours(grid_code(1)) == [grid_code(k) for k in (2, 4, 5)]
    assert adjacency.neighbours(grid_code(5)) == [grid_code(k) for k in (1, 2, 3, 4, 6, 7, 8, 9)]
    matrix = adjacency.matrix.toarray()
    assert (matrix == matrix.T).all() and (np.diag(matrix) == 0).all()


def test_queen_equals_libpysal_on_jittered_lattice():
    grids = lattice(12, 9, jitter=0.25, seed=3)
    adjacency = GridAdjacency.from_grids(grids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = Queen.from_dataframe(grids, use_index=False)
    assert (adjacency.matrix != w.sparse).nnz == 0
    assert adjacency.matrix.nnz == w.sparse.nnz > 0
    as_w = adjacency.to_libpysal()
    assert as_w.id_order == adjacency.codes.tolist()
    assert (as_w.sparse != w.sparse).nnz == 0


def test_distance_band_bridges_slivers():
    grids = lattice(3, 1, gap_m=0.5)  # 0.5 m gaps between the columns
    assert GridAdjacency.from_grids(grids).cardinalities.tolist() == [0, 0, 0]
    band = GridAdjacency.from_grids(grids, method="distance_band", distance_m=1.0)
    assert band.cardinalities.tolist() == [1, 2, 1]
    assert band.method == "distance_band" and band.distance_m == 1.0
    with pytest.raises(ValueError, match="distance_m"):
        GridAdjacency.from_grids(grids, method="distance_band")


def test_save_load_and_fingerprint(tmp_path):
    grids = lattice(4, 3, jitter=0.2, seed=1)
    adjacency = GridAdjacency.from_grids(grids)
    path = tmp_path / "adjacency.npz"
    adjacency.save(path)
    loaded = GridAdjacency.load(path)
    assert loaded.codes.tolist() == adjacency.codes.tolist()
    assert (loaded.matrix != adjacency.matrix).nnz == 0
    assert loaded.fingerprint == adjacency.fingerprint and loaded.method == "queen" and loaded.distance_m is None
    assert loaded.is_current(grids)
    # a re-shaped grid, a re-ordered layer and a removed grid all need a rebuild
    moved = grids.copy()
    moved.loc[0, "geometry"] = shapely.affinity.translate(moved.geometry.iloc[0], 1e-5, 0)
    assert not loaded.is_current(moved)
    assert not loaded.is_current(grids.iloc[::-1])
    assert not loaded.is_current(grids.iloc[1:])


def test_adjacency_input_checks():
    grids = lattice(2, 2)
    with pytest.raises(ValueError, match="EPSG:4326"):
        GridAdjacency.from_grids(grids.to_crs("EPSG:4547"))
    duplicated = grids.copy()
    duplicated.loc[1, "code"] = duplicated.loc[0, "code"]
    with pytest.raises(ValueError, match="unique"):
        GridAdjacency.from_grids(duplicated)
    with pytest.raises(ValueError, match="code"):
        GridAdjacency.from_grids(grids.drop(columns=["code"]))
    with pytest.raises(ValueError, match="method"):
        GridAdjacency.from_grids(grids, method="rook")


def test_empty_grid_layer():
    adjacency = GridAdjacency.from_grids(lattice(2, 2).iloc[0:0])
    assert adjacency.n == 0
    result = getis_ord_gi_star(pd.Series([], dtype=float), adjacency)
    assert len(result) == 0 and "gi_bin" in result.columns


# --------------------------------------------------------------------------- Gi* by hand


def test_gi_star_by_hand_on_three_by_three():
    adjacency = GridAdjacency.from_grids(lattice(3, 3))
    values = pd.Series(np.arange(1.0, 10.0), index=[grid_code(k) for k in range(1, 10)])
    result = getis_ord_gi_star(values, adjacency, permutations=0)
    # grid 1 (value 1) with neighbours 2, 4, 5: Gi* = (1 + 2 + 4 + 5) / 45
    assert result.loc[grid_code(1), "gi"] == pytest.approx(12 / 45)
    # E = k/n = 4/9; mean 5, mean of squares 285/9, variance 285/9 - 25 = 20/3
    # V = k (n - k) / (n - 1) / n^2 * s^2 / mean^2 = 4 * 5 / 8 / 81 * (20/3) / 25
    expected_z = (12 / 45 - 4 / 9) / math.sqrt(4 * 5 / 8 / 81 * (20 / 3) / 25)
    assert result.loc[grid_code(1), "gi_z"] == pytest.approx(expected_z)  # about -1.96
    assert result.loc[grid_code(1), "p_norm"] == pytest.approx(0.5 * math.erfc(abs(expected_z) / math.sqrt(2)))
    # grid 5 touches all nine: Gi* = 45/45 = E, variance 0 -> undefined, not significant
    assert result.loc[grid_code(5), "gi"] == pytest.approx(1.0)
    assert math.isnan(result.loc[grid_code(5), "gi_z"])
    assert result.loc[grid_code(5), "gi_bin"] == 0
    assert result["p_sim"].isna().all()  # no permutations asked for


def test_constant_values_give_nan_not_warnings():
    adjacency = GridAdjacency.from_grids(lattice(3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for constant in (0.0, 2.0):
            result = getis_ord_gi_star(np.full(9, constant), adjacency, permutations=99)
            assert result["gi_z"].isna().all() and result["p_sim"].isna().all()
            assert (result["gi_bin"] == 0).all()


def test_values_must_match_the_adjacency():
    adjacency = GridAdjacency.from_grids(lattice(3, 3))
    values = pd.Series(np.ones(9), index=[grid_code(k) for k in range(1, 10)])
    with pytest.raises(ValueError, match="without a value"):
        getis_ord_gi_star(values.iloc[1:], adjacency)
    with pytest.raises(ValueError, match="non-negative"):
        getis_ord_gi_star(values - 2, adjacency)
    with pytest.raises(ValueError, match="NaN"):
        getis_ord_gi_star(values.where(values.index != grid_code(3)), adjacency)
    with pytest.raises(ValueError, match="entries"):
        getis_ord_gi_star(np.ones(8), adjacency)
    # a Series is matched by code, not by position
    shuffled = pd.Series(np.arange(9.0), index=[grid_code(k) for k in range(1, 10)]).iloc[::-1]
    assert getis_ord_gi_star(shuffled, adjacency, permutations=0)["value"].tolist() == list(np.arange(9.0))


# --------------------------------------------------------------------------- equal to esda


def assert_equal_to_esda(result, reference, permutations, islands=()):
    """Gs, Zs, p_norm equal everywhere; p_sim equal (same permutation counts) except on
    islands, where gridmap reports NaN."""
    np.testing.assert_allclose(result["gi"].to_numpy(), reference.Gs, rtol=1e-12)
    np.testing.assert_allclose(result["gi_z"].to_numpy(), reference.Zs, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(result["p_norm"].to_numpy(), reference.p_norm, rtol=1e-9, equal_nan=True)
    mask = np.ones(len(result), dtype=bool)
    mask[list(islands)] = False
    ours = result["p_sim"].to_numpy()[mask]
    theirs = np.asarray(reference.p_sim, dtype=float)[mask]  # esda stores float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_array_equal(np.rint(ours * (permutations + 1)), np.rint(theirs * (permutations + 1)))


def test_equal_to_esda_on_small_lattice_with_integer_counts():
    # counts: many ties (zeros), the hardest case for >= comparisons
    grids = lattice(7, 6)
    y = np.random.default_rng(11).poisson(1.2, len(grids)).astype(float)
    w, reference = esda_g_local(grids, y, permutations=999, seed=42)
    adjacency = GridAdjacency.from_grids(grids)
    assert (adjacency.matrix != w.sparse).nnz == 0
    result = getis_ord_gi_star(y, adjacency, permutations=999, seed=42)
    assert_equal_to_esda(result, reference, 999)


def test_equal_to_esda_on_medium_random_lattice():
    grids = lattice(25, 20, jitter=0.3, seed=5)
    rng = np.random.default_rng(5)
    y = rng.gamma(0.8, 2.0, len(grids)) + 4.0 * (np.arange(len(grids)) % 25 < 6)  # a hot western strip
    w, reference = esda_g_local(grids, y, permutations=499, seed=2024)
    result = getis_ord_gi_star(y, GridAdjacency.from_grids(grids), permutations=499, seed=2024)
    assert_equal_to_esda(result, reference, 499)
    assert (result["gi_bin"] > 0).any()


def test_equal_to_esda_with_an_island():
    grids = lattice(5, 4)
    far = gpd.GeoDataFrame({"code": [grid_code(99)]}, geometry=[shapely.MultiPolygon([shapely.box(
        412_000, 3_760_000, 413_000, 3_761_000)])], crs="EPSG:4547").to_crs("EPSG:4326")
    grids = pd.concat([grids, far], ignore_index=True)
    y = np.random.default_rng(8).gamma(1.0, 1.0, len(grids))
    _, reference = esda_g_local(grids, y, permutations=199, seed=9)
    result = getis_ord_gi_star(y, GridAdjacency.from_grids(grids), permutations=199, seed=9)
    island = len(grids) - 1
    assert_equal_to_esda(result, reference, 199, islands=[island])
    # esda reports 1/(R+1) for the island; a lone grid is no cluster: NaN and bin 0
    assert reference.p_sim[island] == pytest.approx(1 / 200)
    assert math.isnan(result["p_sim"].iloc[island]) and result["gi_bin"].iloc[island] == 0


def test_seed_controls_the_permutations():
    grids = lattice(6, 6)
    y = np.random.default_rng(3).gamma(1.0, 1.0, len(grids))
    adjacency = GridAdjacency.from_grids(grids)
    first = getis_ord_gi_star(y, adjacency, permutations=199, seed=1)
    again = getis_ord_gi_star(y, adjacency, permutations=199, seed=1)
    other = getis_ord_gi_star(y, adjacency, permutations=199, seed=2)
    assert first["p_sim"].tolist() == again["p_sim"].tolist()
    assert first["p_sim"].tolist() != other["p_sim"].tolist()
    # and the global numpy random state is left alone
    np.random.seed(5)
    expected = np.random.random()
    np.random.seed(5)
    getis_ord_gi_star(y, adjacency, permutations=9, seed=1)
    assert np.random.random() == expected


# --------------------------------------------------------------------------- FDR bins


def benjamini_hochberg_threshold(p: np.ndarray, alpha: float) -> float:
    """Largest p_(k) with p_(k) < k * alpha / n (esda's strict form), else alpha / n."""
    ordered = np.sort(p)
    n = len(p)
    passing = np.flatnonzero(ordered < np.arange(1, n + 1) * alpha / n)
    return (passing[-1] + 1) * alpha / n if len(passing) else alpha / n


def test_fdr_bins():
    # a 20 x 20 lattice: a hot block in the south-west, a cold block in the north-east
    grids = lattice(20, 20)
    rng = np.random.default_rng(21)
    row, col = np.divmod(np.arange(400), 20)
    y = rng.gamma(2.0, 1.0, 400)
    y[(row < 6) & (col < 6)] += 6.0
    y[(row >= 12) & (col >= 12)] *= 0.05
    for p_value in ("norm", "sim"):
        result = getis_ord_gi_star(y, GridAdjacency.from_grids(grids), permutations=999, seed=3, p_value=p_value)
        p_two = np.minimum(1.0, 2 * result["p_norm" if p_value == "norm" else "p_sim"].to_numpy())
        expected = np.zeros(400, dtype=int)
        for level, alpha in ((1, 0.10), (2, 0.05), (3, 0.01)):
            threshold = benjamini_hochberg_threshold(p_two, alpha)
            assert result.attrs["fdr_thresholds"][alpha] == pytest.approx(threshold)
            expected[p_two <= threshold] = level
        expected *= np.sign(result["gi_z"].to_numpy()).astype(int)
        np.testing.assert_array_equal(result["gi_bin"].to_numpy(), expected)
        # the hot block's centre is a hot spot, the cold block's centre a cold spot
        assert result["gi_bin"].iloc[2 * 20 + 2] > 0
        assert result["gi_bin"].iloc[16 * 20 + 16] < 0
        # the correction bites: some grids significant at 10 % before it are not after
        assert (p_two < 0.10).sum() > (result["gi_bin"] != 0).sum()
    assert set(result["gi_bin"].unique()) <= {-3, -2, -1, 0, 1, 2, 3}


def test_alpha_levels_are_checked():
    adjacency = GridAdjacency.from_grids(lattice(3, 3))
    with pytest.raises(ValueError, match="alpha"):
        getis_ord_gi_star(np.arange(9.0), adjacency, alpha_levels=(0.01, 0.05, 0.10))
