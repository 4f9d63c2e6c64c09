"""Reading GPS tracks and dropping wrong fixes."""
from __future__ import annotations

import json

import gpxpy
import gpxpy.gpx
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon, box
import shapely

from gridmap.analysis.tracks import TrackError, clean_fixes, read_track

T0 = pd.Timestamp("2024-05-01T08:00:00Z")
TO_LONLAT = Transformer.from_crs("EPSG:4547", "EPSG:4326", always_xy=True)
# a point in Baofeng county, in EPSG:4547 metres
X0, Y0 = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(113.06, 33.87)


def fixes(xy_minutes: list[tuple[float, float, float]]) -> pd.DataFrame:
    """Fixes from (x offset m, y offset m, minutes after T0)."""
    x = np.array([X0 + p[0] for p in xy_minutes])
    y = np.array([Y0 + p[1] for p in xy_minutes])
    lon, lat = TO_LONLAT.transform(x, y)
    return pd.DataFrame({"time": [T0 + pd.Timedelta(minutes=p[2]) for p in xy_minutes], "lon": lon, "lat": lat})


def metric_box(x0: float, y0: float, x1: float, y1: float):
    """A box given in metre offsets, as a lon/lat polygon."""
    return shapely.transform(box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1),
                             lambda c: np.column_stack(TO_LONLAT.transform(c[:, 0], c[:, 1])))


# --------------------------------------------------------------------------- read_track


def gpx_bytes(times: list) -> bytes:
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack()
    seg = gpxpy.gpx.GPXTrackSegment()
    for i, t in enumerate(times):
        seg.points.append(gpxpy.gpx.GPXTrackPoint(latitude=33.87 + i * 0.001, longitude=113.06, time=t))
    track.segments.append(seg)
    gpx.tracks.append(track)
    return gpx.to_xml().encode()


def test_read_gpx_gives_utc_times_and_coordinates():
    times = [T0.to_pydatetime() + pd.Timedelta(minutes=i) for i in range(3)]
    df = read_track(gpx_bytes(times), fmt="gpx")
    assert list(df.columns) == ["time", "lon", "lat"]
    assert str(df["time"].dt.tz) == "UTC"
    assert df["time"].tolist() == [T0 + pd.Timedelta(minutes=i) for i in range(3)]
    assert df["lat"].tolist() == pytest.approx([33.870, 33.871, 33.872])
    assert df.attrs["untimed_dropped"] == 0


def test_read_gpx_from_path_and_drops_untimed_points(tmp_path):
    times = [T0.to_pydatetime(), None, T0.to_pydatetime() + pd.Timedelta(minutes=2)]
    path = tmp_path / "t.gpx"
    path.write_bytes(gpx_bytes(times))
    df = read_track(str(path))
    assert len(df) == 2
    assert df.attrs["untimed_dropped"] == 1


def test_read_gpx_without_any_time_is_an_error():
    with pytest.raises(TrackError, match="none carries a timestamp"):
        read_track(gpx_bytes([None, None]), fmt="gpx")


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"<gpx><trk><trkseg><trkpt lat='33' lon=", "not a valid GPX"),
    (b"<?xml version='1.0'?><gpx version='1.1' creator='x'></gpx>", "no track or route points"),
])
def test_read_gpx_rejects_empty_and_corrupt_files(content, message):
    with pytest.raises(TrackError, match=message):
        read_track(content, fmt="gpx")


def test_read_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(TrackError, match="cannot read"):
        read_track(str(tmp_path / "nope.gpx"))
    with pytest.raises(TrackError, match="unknown track format"):
        read_track(b"x", fmt="kml")


def test_read_geojson_linestring_with_coord_times_and_points():
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[113.0, 33.8], [113.1, 33.9]]},
         "properties": {"coordTimes": ["2024-05-01T08:00:00Z", "2024-05-01T16:01:00+08:00"]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.2, 33.95]},
         "properties": {"time": "2024-05-01T08:05:00Z"}},
        {"type": "Feature", "geometry": {"type": "MultiLineString",
                                         "coordinates": [[[113.3, 33.7]], [[113.4, 33.6]]]},
         "properties": {"times": [["2024-05-01T08:06:00Z"], ["2024-05-01T08:07:00Z"]]}},
    ]}
    df = read_track(json.dumps(doc).encode(), fmt="geojson")
    assert df["lon"].tolist() == [113.0, 113.1, 113.2, 113.3, 113.4]
    assert [t.strftime("%H:%M") for t in df["time"]] == ["08:00", "08:01", "08:05", "08:06", "08:07"]


def test_read_geojson_errors():
    line = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[113.0, 33.8], [113.1, 33.9]]},
            "properties": {"times": ["2024-05-01T08:00:00Z"]}}
    with pytest.raises(TrackError, match="1 times for 2 coordinates"):
        read_track(json.dumps(line).encode(), fmt="geojson")
    line["properties"] = {}
    with pytest.raises(TrackError, match="none carries a timestamp"):
        read_track(json.dumps(line).encode(), fmt="geojson")
    with pytest.raises(TrackError, match="not a valid GeoJSON"):
        read_track(b"{not json", fmt="geojson")
    poly = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    with pytest.raises(TrackError, match="Polygon"):
        read_track(json.dumps(poly).encode(), fmt="geojson")


def test_read_csv_with_local_naive_times():
    csv = b"Time,Lon,Lat,speed\n2024-05-01 16:00:00,113.06,33.87,3\n2024-05-01 16:01:00,113.061,33.871,4\n"
    df = read_track(csv, fmt="csv", naive_tz="Asia/Shanghai")
    assert df["time"].tolist() == [T0, T0 + pd.Timedelta(minutes=1)]
    assert df["lon"].tolist() == [113.06, 113.061]


@pytest.mark.parametrize("content, message", [
    (b"time,lon\n2024-05-01T08:00Z,113\n", "no 'lat' column"),
    (b"time,lon,lat\n", "no rows"),
    (b"time,lon,lat\nyesterday-ish,113,33\n", "unreadable time"),
    (b"time,lon,lat\n2024-05-01T08:00Z,213,33\n", "out of range"),
    (b"time,lon,lat\n,113,33\n", "none carries a timestamp"),
])
def test_read_csv_errors(content, message):
    with pytest.raises(TrackError, match=message):
        read_track(content, fmt="csv")


# --------------------------------------------------------------------------- clean_fixes


def test_clean_fixes_counts_each_reason():
    # a walk east at 60 m/min (3.6 km/h) for 10 minutes
    walk = [(60.0 * m, 0.0, m) for m in range(11)]
    dup = [(60.0 * 3 + 5, 0.0, 3)]                    # same time as minute 3: duplicate
    outside = [(5000.0, 5000.0, 4.5)]                  # outside the boundary (and far)
    jump1 = [(60.0 * 6, 3000.0, 6.5)]                  # 3 km in 30 s: too fast
    jump2 = [(60.0 * 6, 3010.0, 6.8)]                  # near jump1 but far from the last kept fix
    df = fixes(walk + dup + outside + jump1 + jump2)
    boundary = metric_box(-100, -100, 1000, 4000)
    shuffled = df.drop(index=11).sample(frac=1, random_state=3)
    shuffled = pd.concat([shuffled, df.loc[[11]]])  # the duplicate comes last in the file
    clean, counts = clean_fixes(shuffled, max_speed_kmh=120, boundary=boundary)
    assert counts == {"duplicate_time": 1, "outside": 1, "too_fast": 2, "kept": 11}
    assert sum(counts.values()) == len(df)
    assert clean["time"].tolist() == [T0 + pd.Timedelta(minutes=m) for m in range(11)]
    assert clean["lon"].tolist() == df["lon"].iloc[:11].tolist()


def test_clean_fixes_keeps_the_first_of_duplicate_times_in_file_order():
    df = fixes([(0, 0, 0), (30, 0, 1), (0, 30, 1)])
    clean, counts = clean_fixes(df)
    assert counts["duplicate_time"] == 1
    assert clean["lon"].tolist() == df["lon"].iloc[:2].tolist()


def test_clean_fixes_speed_is_judged_against_the_last_kept_fix():
    # 0 m, then a 1 km jump after 1 min (60 km/h), then back near 0 after 1 more minute
    df = fixes([(0, 0, 0), (1000, 0, 1), (10, 0, 2)])
    _, fast_ok = clean_fixes(df, max_speed_kmh=70)
    assert fast_ok["too_fast"] == 0
    clean, slow = clean_fixes(df, max_speed_kmh=50)
    assert slow == {"duplicate_time": 0, "outside": 0, "too_fast": 1, "kept": 2}
    assert clean["time"].tolist() == [T0, T0 + pd.Timedelta(minutes=2)]


def test_clean_fixes_cleans_each_track_on_its_own():
    a = fixes([(0, 0, 0), (60, 0, 1)]).assign(track_id="a")
    b = fixes([(5000, 0, 0), (5060, 0, 1)]).assign(track_id="b")  # same times, far away
    clean, counts = clean_fixes(pd.concat([a, b]))
    assert counts == {"duplicate_time": 0, "outside": 0, "too_fast": 0, "kept": 4}
    assert clean["track_id"].tolist() == ["a", "a", "b", "b"]


def test_clean_fixes_keeps_points_on_the_boundary_edge():
    df = fixes([(0, 0, 0), (0, 0, 1)])
    edge_lon = df["lon"].iloc[0]
    boundary = Polygon([(edge_lon, 33.0), (114.0, 33.0), (114.0, 34.5), (edge_lon, 34.5)])
    _, counts = clean_fixes(df, boundary=boundary)
    assert counts["outside"] == 0
    shifted = Polygon([(edge_lon + 1e-6, 33.0), (114.0, 33.0), (114.0, 34.5), (edge_lon + 1e-6, 34.5)])
    _, counts = clean_fixes(df, boundary=shifted)
    assert counts["outside"] == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.drop(columns="lat"), "missing column"),
    (lambda d: d.iloc[0:0], "no fixes"),
    (lambda d: d.assign(time=d["time"].dt.tz_localize(None)), "timezone-aware"),
    (lambda d: d.assign(lon=[np.nan, 1.0]), "non-numeric lon/lat"),
])
def test_clean_fixes_checks_its_input(mutate, message):
    df = fixes([(0, 0, 0), (60, 0, 1)])
    with pytest.raises(TrackError, match=message):
        clean_fixes(mutate(df))


def test_clean_fixes_rejects_bad_parameters():
    df = fixes([(0, 0, 0), (60, 0, 1)])
    with pytest.raises(TrackError, match="max_speed_kmh"):
        clean_fixes(df, max_speed_kmh=0)
    with pytest.raises(TrackError, match="boundary"):
        clean_fixes(df, boundary="county")
