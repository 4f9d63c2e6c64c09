"""GCJ-02 against published pairs (eviltransform's Shanghai/Shenzhen/Beijing, gcoord's 123E 45N)."""
import numpy as np
import pytest

from gridmap.analysis.gcj02 import gcj02_to_wgs84, in_china, wgs84_to_gcj02

# wgs lon, wgs lat, gcj lon, gcj lat
PAIRS = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),   # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),   # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),   # Beijing
]


@pytest.mark.parametrize("wgs_lon, wgs_lat, gcj_lon, gcj_lat", PAIRS)
def test_forward_matches_published_pairs(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert lon == pytest.approx(gcj_lon, abs=1e-9)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)


@pytest.mark.parametrize("wgs_lon, wgs_lat, gcj_lon, gcj_lat", PAIRS)
def test_inverse_recovers_wgs84_to_a_millimetre(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    lon, lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert lon == pytest.approx(wgs_lon, abs=1e-8)
    assert lat == pytest.approx(wgs_lat, abs=1e-8)


def test_gcoord_reference_point():
    lon, lat = gcj02_to_wgs84(123.0, 45.0)
    assert lon == pytest.approx(122.99395597, abs=1e-6)
    assert lat == pytest.approx(44.99804071, abs=1e-6)


def test_offset_in_baofeng_is_about_600_m_east_and_south():
    lon, lat = wgs84_to_gcj02(113.054, 33.868)
    assert 0.005 < lon - 113.054 < 0.008
    assert -0.002 < lat - 33.868 < -0.0005


def test_arrays_and_outside_china_unchanged():
    lons = np.array([113.054, 2.35])
    lats = np.array([33.868, 48.85])
    out_lon, out_lat = wgs84_to_gcj02(lons, lats)
    assert out_lon.shape == (2,)
    assert out_lon[1] == 2.35 and out_lat[1] == 48.85
    assert out_lon[0] != 113.054
    assert list(in_china(lons, lats)) == [True, False]
    back_lon, back_lat = gcj02_to_wgs84(out_lon, out_lat)
    np.testing.assert_allclose(back_lon, lons, atol=1e-8)
    np.testing.assert_allclose(back_lat, lats, atol=1e-8)
