"""GCJ-02 ("Mars coordinates") to and from WGS84.

Consumer Chinese web maps (AMap/Gaode, Tencent, WeChat location picks) publish GCJ-02, an
obfuscated datum offset a few hundred metres from WGS84; gridmap stores WGS84. The forward
transform is the published GCJ-02 algorithm on the Krasovsky ellipsoid; the inverse has no closed
form and is found by fixed-point iteration, which converges to well under a millimetre.
"""
from __future__ import annotations

import numpy as np

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as GCJ-02 uses
_EE = 0.00669342162296594323  # its first eccentricity squared


def _offsets(lon, lat):
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def in_china(lon, lat):
    """Whether GCJ-02 applies: the rough mainland box the algorithm is defined for.

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 or GCJ-02 degrees (the box is coarse enough that either works).

    Returns
    -------
    bool or numpy.ndarray of bool
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    result = (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)
    return bool(result) if result.ndim == 0 else result


def wgs84_to_gcj02(lon, lat):
    """Shift WGS84 degrees to GCJ-02; points outside China are returned unchanged.

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 longitude and latitude in degrees.

    Returns
    -------
    tuple
        (lon, lat) in GCJ-02, floats for scalar input, arrays otherwise.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(121.5272106, 31.1774276)
    >>> round(lon, 6), round(lat, 6)
    (121.531542, 31.175304)
    """
    lon_a = np.asarray(lon, dtype=float)
    lat_a = np.asarray(lat, dtype=float)
    dlon, dlat = _offsets(lon_a, lat_a)
    inside = in_china(lon_a, lat_a)
    out_lon = np.where(inside, lon_a + dlon, lon_a)
    out_lat = np.where(inside, lat_a + dlat, lat_a)
    return _shape_like(lon_a, out_lon, out_lat)


def gcj02_to_wgs84(lon, lat, tolerance_deg: float = 1e-9, max_iterations: int = 30):
    """Shift GCJ-02 degrees back to WGS84 by fixed-point iteration of :func:`wgs84_to_gcj02`.

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 longitude and latitude in degrees (e.g. a pick on an AMap or WeChat map).
    tolerance_deg : float
        Stop when the forward transform of the estimate is this close to the input
        (1e-9° is about 0.1 mm).
    max_iterations : int
        Upper bound on iterations; a handful suffice in practice.

    Returns
    -------
    tuple
        (lon, lat) in WGS84, floats for scalar input, arrays otherwise.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(121.531541859215, 31.17530398364597)
    >>> round(lon, 6), round(lat, 6)
    (121.527211, 31.177428)
    """
    target_lon = np.asarray(lon, dtype=float)
    target_lat = np.asarray(lat, dtype=float)
    est_lon, est_lat = target_lon.copy(), target_lat.copy()
    for _ in range(max_iterations):
        fwd_lon, fwd_lat = wgs84_to_gcj02(est_lon, est_lat)
        err_lon = np.asarray(fwd_lon) - target_lon
        err_lat = np.asarray(fwd_lat) - target_lat
        est_lon = est_lon - err_lon
        est_lat = est_lat - err_lat
        if np.all(np.abs(err_lon) < tolerance_deg) and np.all(np.abs(err_lat) < tolerance_deg):
            break
    return _shape_like(target_lon, est_lon, est_lat)


def _shape_like(template: np.ndarray, lon: np.ndarray, lat: np.ndarray):
    if template.ndim == 0:
        return float(lon), float(lat)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
