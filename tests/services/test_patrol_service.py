"""Patrol services on the demo county in PostGIS: track upload and cleaning in every format, bad
files refused with nothing written, who may see and do what, coverage of hand-made tracks, route
planning (straight lines and roads, every refusal), roads import, GPX, the demo tracks and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import geopandas as gpd
import gpxpy
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, box
from sqlalchemy import text

from gridmap.analysis.tracks import clean_fixes
from gridmap.services import patrol
from gridmap.services.demo import DEMO_DIR
from gridmap.errors import Forbidden, ValidationError
from gridmap.services.importing import ImportRefused, SourceOptions
from gridmap.services.incidents import CHINA_TZ
from tests.incident_helpers import cheap_password_hashing
from tests.patrol_helpers import (FAR_ZONE, OTHER_ZONE, QUIET_DAY, ZONE, csv_bytes, geojson_bytes, gpx_bytes,
                                  grid_points, patrol_counts, station_point, stay)

SHIFT_START = "2026-11-01T08:00"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def police(make_user):
    return make_user("p_police", "police", [ZONE])[0]


def spoiled_fixes(lon: float, lat: float) -> list[tuple]:
    """A 12-minute stay with one repeated time, one fix outside the county and one 3 km jump."""
    fixes = stay(lon, lat, QUIET_DAY + timedelta(hours=8), 12)
    t5 = fixes[5][0]
    fixes.insert(6, (t5, lon + 2e-5, lat))                                  # same time as fix 5
    fixes.insert(10, (fixes[10][0] - timedelta(seconds=1), lon + 1.5, lat))  # far outside the county
    fixes.insert(15, (fixes[15][0] - timedelta(seconds=1), lon - 0.03, lat))  # 3 km in one second
    return fixes


@pytest.mark.parametrize("fmt, make", [("gpx", gpx_bytes), ("geojson", geojson_bytes), ("csv", csv_bytes)])
def test_upload_each_format_drops_and_counts_wrong_fixes(db_session, police, fmt, make):
    code, lon, lat = grid_points(db_session)[0]
    fixes = spoiled_fixes(lon, lat)
    before = patrol_counts(db_session)
    result = patrol.upload_track(db_session, police, make(fixes), zone_code=ZONE, filename=f"day.{fmt}")
    assert result.counts == {"read": 28, "kept": 25, "dropped": 3, "duplicate_time": 1, "outside": 1,
                             "too_fast": 1, "untimed": 0}
    track = result.track
    assert (track.zone_code, track.officer_user_id, track.unit_name) == (ZONE, police.id, None)
    assert track.source_format == fmt
    assert track.started_at == QUIET_DAY + timedelta(hours=8)
    assert track.ended_at == QUIET_DAY + timedelta(hours=8, minutes=12)
    assert patrol_counts(db_session)[:2] == (before[0] + 1, before[1] + 25)
    stored = db_session.execute(text("SELECT ST_NPoints(geom), ST_SRID(geom) FROM patrol_tracks WHERE id = :i"),
                                {"i": track.id}).one()
    assert tuple(stored) == (25, 4326)
    assert "保留 25 个" in result.message_zh() and "速度异常 1" in result.message_zh()


def test_a_named_unit_and_fixes_sent_as_json(db_session, police):
    _, lon, lat = grid_points(db_session)[1]
    body = {"zone": ZONE, "officer": "闹店派出所巡逻一组",
            "fixes": [{"time": t.isoformat(), "lon": x, "lat": y} for t, x, y in stay(lon, lat, QUIET_DAY, 3)]}
    result = patrol.upload_track_json(db_session, police, body)
    assert (result.track.unit_name, result.track.officer_user_id, result.counts["kept"]) == ("闹店派出所巡逻一组", None, 7)
    assert patrol.list_tracks(db_session, police, track_id=result.track.id)[0]["officer"] == "闹店派出所巡逻一组"


def test_untimed_points_are_counted(db_session, police):
    _, lon, lat = grid_points(db_session)[0]
    fixes = stay(lon, lat, QUIET_DAY, 2)
    feature = json.loads(geojson_bytes(fixes))
    feature["features"].append({"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                                                  "coordinates": [lon, lat]}})
    result = patrol.upload_track(db_session, police, json.dumps(feature).encode(), zone_code=ZONE, fmt="geojson")
    assert (result.counts["untimed"], result.counts["read"], result.counts["kept"]) == (1, 6, 5)
    assert result.track.dropped_untimed == 1


@pytest.mark.parametrize("content, name, message", [
    (b"", "empty.gpx", "empty"),
    (b"<gpx><trk><trkseg><trkpt lat=", "broken.gpx", "not a valid GPX"),
    (b'<?xml version="1.0"?><gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1"></gpx>',
     "nothing.gpx", "no track or route points"),
    ("untimed", "untimed.gpx", "none carries a timestamp"),
    (b"when,x,y\n2026-11-10 08:00,113.2,33.85\n", "cols.csv", "no 'time' column"),
    ("outside", "outside.csv", "only 0 remain"),
    ("single", "one.csv", "only 1 remain"),
    (b"time,lon,lat\n", "track.kml", "cannot tell the track's format"),
])
def test_bad_track_files_are_refused_and_nothing_is_written(db_session, police, content, name, message):
    _, lon, lat = grid_points(db_session)[0]
    if content == "untimed":
        content = gpx_bytes(stay(lon, lat, QUIET_DAY, 5), with_times=False)
    elif content == "outside":
        content = csv_bytes([(t, x + 2.0, y) for t, x, y in stay(lon, lat, QUIET_DAY, 5)])
    elif content == "single":
        content = csv_bytes(stay(lon, lat, QUIET_DAY, 0))
    before = patrol_counts(db_session)
    with pytest.raises(ValidationError, match=message) as err:
        patrol.upload_track(db_session, police, content, zone_code=ZONE, filename=name)
    assert err.value.field in ("file", "format")
    assert patrol_counts(db_session) == before


def test_who_may_see_which_zones(db_session, make_user):
    police, _ = make_user("z_police", "police", [ZONE])
    village_police, _ = make_user("z_vpolice", "police", ["410421102204"])  # 范营村
    town, _ = make_user("z_town", "town_supervisor", ["410421102000"])
    worker, _ = make_user("z_worker", "grid_worker", ["410421102204"])
    county, _ = make_user("z_county", "county_officer")
    viewer, _ = make_user("z_viewer", "viewer")
    assert patrol.visible_zone_codes(db_session, police) == {ZONE}
    fanying_zone = db_session.execute(text("SELECT z.code FROM patrol_zones z JOIN villages v ON ST_Within("
                                           "ST_PointOnSurface(v.geom), z.geom) WHERE v.code = '410421102204'")).scalar()
    assert patrol.visible_zone_codes(db_session, village_police) == {fanying_zone}
    assert patrol.visible_zone_codes(db_session, town) == {ZONE, OTHER_ZONE}
    assert patrol.visible_zone_codes(db_session, county) is None
    assert patrol.visible_zone_codes(db_session, viewer) is None
    with pytest.raises(Forbidden):
        patrol.visible_zone_codes(db_session, worker)
    assert patrol.is_named(police) and patrol.is_named(county)
    assert not patrol.is_named(viewer) and not patrol.is_named(town)


def test_uploads_only_in_own_zone_and_by_writers(db_session, make_user):
    police, _ = make_user("w_police", "police", [ZONE])
    viewer, _ = make_user("w_viewer", "viewer")
    town, _ = make_user("w_town", "town_supervisor", ["410421102000"])
    _, lon, lat = grid_points(db_session, OTHER_ZONE)[0]
    content = csv_bytes(stay(lon, lat, QUIET_DAY, 3))
    before = patrol_counts(db_session)
    with pytest.raises(Forbidden, match="not in your area"):
        patrol.upload_track(db_session, police, content, zone_code=OTHER_ZONE, filename="t.csv")
    for user in (viewer, town):
        with pytest.raises(Forbidden, match="only police and county officers"):
            patrol.upload_track(db_session, user, content, zone_code=OTHER_ZONE, filename="t.csv")
    with pytest.raises(ValidationError, match="no patrol zone"):
        patrol.upload_track(db_session, police, content, zone_code="nowhere", filename="t.csv")
    assert patrol_counts(db_session) == before


def test_viewers_and_town_supervisors_see_tracks_without_names(db_session, police, make_user):
    viewer, _ = make_user("n_viewer", "viewer")
    town, _ = make_user("n_town", "town_supervisor", ["410421102000"])
    _, lon, lat = grid_points(db_session)[0]
    track = patrol.upload_track(db_session, police, csv_bytes(stay(lon, lat, QUIET_DAY, 3)), zone_code=ZONE,
                                filename="t.csv").track
    period = patrol.risk.Period(QUIET_DAY, QUIET_DAY + timedelta(days=1))
    mine = patrol.list_tracks(db_session, police, period)
    assert [t["id"] for t in mine] == [track.id] and mine[0]["officer"] == "p_police"
    assert mine[0]["uploaded_by"] == "p_police"
    for user in (viewer, town):
        rows = patrol.list_tracks(db_session, user, period)
        assert [t["id"] for t in rows] == [track.id]
        assert "officer" not in rows[0] and "uploaded_by" not in rows[0]
        assert "p_police" not in json.dumps(patrol.tracks_geojson(db_session, user, period))


def test_coverage_of_a_hand_built_track(db_session, police):
    points = grid_points(db_session)
    (code, lon, lat), far = points[0], points[-1]
    start = QUIET_DAY + timedelta(hours=8)
    patrol.upload_track(db_session, police, csv_bytes(stay(lon, lat, start, 12)), zone_code=ZONE, filename="a.csv")
    period = patrol.risk.Period(QUIET_DAY, QUIET_DAY + timedelta(days=1))
    result = patrol.compute_coverage(db_session, police, period, ZONE)
    grids = result.grids.set_index("code")
    assert set(grids["zone_code"]) == {ZONE} and len(grids) == len(points)
    row = grids.loc[code]
    assert (row["visits"], row["dwell_minutes"], row["share_10_15"]) == (1, 12.0, 1.0)
    assert row["hours_since_last_visit"] == pytest.approx(24 - 8 - 12 / 60)
    assert row["longest_gap_hours"] == pytest.approx(24 - 8 - 12 / 60)
    assert row["last_visit_end"] == start + timedelta(minutes=12)
    assert grids.loc[far[0], "visits"] == 0 and np.isnan(grids.loc[far[0], "hours_since_last_visit"])
    assert grids.loc[far[0], "longest_gap_hours"] == pytest.approx(24)
    zone = result.zones.loc[ZONE]
    assert (zone["tracks"], zone["patrol_minutes"]) == (1, 12.0)
    assert zone["patrol_minutes_per_day"] == pytest.approx(12.0)
    assert result.daily["minutes"].sum() == pytest.approx(12.0)
    stale = patrol.not_visited(result, 24)
    assert code not in set(stale["code"]) and stale["high_risk"].all() and (stale["visits"] == 0).all()
    assert len(stale) >= grids["high_risk"].sum() - 1
    body = json.dumps(patrol.coverage_json(result))
    assert "p_police" not in body and code in body


def test_hotspot_clusters_merge_touching_hot_grids():
    grids = gpd.GeoDataFrame({
        "code": ["A", "B", "C", "D"], "gi_bin": [3, 1, 2, 0], "score": [5.0, 2.0, 4.0, 1.0],
        "zone_code": ["Z1", "Z2", "Z1", "Z1"],
    }, geometry=[box(113.0, 33.8, 113.01, 33.81), box(113.01, 33.8, 113.02, 33.81),
                 box(113.05, 33.8, 113.06, 33.81), box(113.02, 33.8, 113.03, 33.81)], crs="EPSG:4326")
    clusters = patrol.hotspot_clusters(grids).set_index("id")
    assert list(clusters.index) == ["HA", "HC"]
    assert clusters.loc["HA", "grid_codes"] == ["A", "B"] and clusters.loc["HA", "zone_codes"] == ["Z1", "Z2"]
    assert (clusters.loc["HA", "gi_bin"], clusters.loc["HA", "score"]) == (3, 7.0)
    assert clusters.loc["HA", "geometry"].area == pytest.approx(0.0002)


def test_cleaning_many_tracks_at_once_drops_what_one_pass_drops(db_session):
    rng = np.random.default_rng(5)
    frames = []
    for k in range(6):
        n = 200
        t = pd.Timestamp("2026-11-10T00:00Z") + pd.to_timedelta(np.sort(rng.integers(0, 3600, n)), unit="s")
        lon = 113.2 + np.cumsum(rng.normal(0, 0.0003, n))
        lat = 33.85 + np.cumsum(rng.normal(0, 0.0003, n))
        jumps = rng.random(n) < 0.05
        lon[jumps] += rng.choice([-0.5, 0.05], jumps.sum())
        frames.append(pd.DataFrame({"track_id": f"T{k}", "time": t, "lon": lon, "lat": lat}))
    fixes = pd.concat(frames, ignore_index=True)
    outline = patrol.county_outline(db_session)
    settings = patrol.PatrolSettings()
    kept, counts = patrol.clean_tracks(fixes, outline, settings)
    expected_kept, expected = clean_fixes(fixes, max_speed_kmh=settings.max_speed_kmh, boundary=outline)
    assert kept[["track_id", "time", "lon", "lat"]].equals(expected_kept[["track_id", "time", "lon", "lat"]])
    totals = counts[["duplicate_time", "outside", "too_fast", "kept"]].sum().to_dict()
    assert totals == expected and min(expected["duplicate_time"], expected["outside"], expected["too_fast"]) > 0
    assert (counts["read"] == 200).all() and (counts["read"] == counts["kept"] + counts["dropped"]).all()


# --- routes -----------------------------------------------------------------------------------

def plan(db_session, user, settings=None, **overrides):
    data = {"zone": ZONE, "shift_start": SHIFT_START, "shift_minutes": 240, "stops": 5, "stop_minutes": 12}
    data.update(overrides)
    return patrol.plan_patrol_route(db_session, user, data, settings)


def test_route_for_a_demo_zone(db_session, police):
    before = patrol_counts(db_session)
    route = plan(db_session, police)
    assert patrol_counts(db_session)[2] == before[2] + 1
    body = patrol.route_json(db_session, police, route)
    stops = body["stops"]
    zone_grids = {code for code, _, _ in grid_points(db_session)}
    assert 1 <= len(stops) <= 5 and [s["order"] for s in stops] == list(range(1, len(stops) + 1))
    assert all(s["grid_code"] in zone_grids and (s["risk_level"] >= 3 or s["hotspot"]) for s in stops)
    assert all(s["service_minutes"] == 12.0 for s in stops)
    arrivals = [s["arrival_minute"] for s in stops]
    assert arrivals == sorted(arrivals) and body["total_minutes"] <= 240
    assert stops[0]["arrival"].startswith("2026-11-01T08:")
    station = station_point(db_session)
    path = body["path"]["coordinates"]
    assert path[0] == pytest.approx(list(station)) and path[-1] == pytest.approx(list(station))
    assert (body["travel_mode"], body["speed_kmh"], body["station_name"]) == ("straight_line", 30.0, "闹店派出所")
    assert body["created_by"] == "p_police"


def test_prizes_favour_grids_left_alone(db_session, police):
    zone = db_session.get(patrol.PatrolZone, ZONE)
    settings, risk_settings = patrol.PatrolSettings(), patrol.risk.RiskSettings()
    shift = patrol.parse_moment(SHIFT_START, "shift_start")
    before = patrol.route_candidates(db_session, zone, shift, 12, settings, risk_settings).set_index("id")
    target = before.index[0]
    point = db_session.execute(text("SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
                                    "WHERE code = :c"), {"c": target}).one()
    patrol.upload_track(db_session, police, csv_bytes(stay(point[0], point[1], shift - timedelta(minutes=40), 10)),
                        zone_code=ZONE, filename="t.csv")
    after = patrol.route_candidates(db_session, zone, shift, 12, settings, risk_settings).set_index("id")
    assert after.loc[target, "hours_since_last_visit"] == pytest.approx(0.5)
    factor = 0.2 + 0.8 * (1 - 2 ** (-0.5 / 24))
    hot = 1.5 if after.loc[target, "hotspot"] else 1.0
    assert after.loc[target, "prize"] == pytest.approx(after.loc[target, "score"] * factor * hot)
    assert after.loc[target, "prize"] < before.loc[target, "prize"]


def test_gpx_of_a_route_opens_in_a_gpx_reader(db_session, police):
    route = plan(db_session, police)
    gpx = gpxpy.parse(patrol.route_gpx(db_session, route))
    names = [w.name for w in gpx.waypoints]
    assert names == [f"{s['order']:02d} {s['grid_code']}" for s in route.stops]
    shift = patrol.parse_moment(SHIFT_START, "shift_start")
    for waypoint, stop in zip(gpx.waypoints, route.stops):
        planned = shift + timedelta(minutes=stop["arrival_minute"])
        assert abs((waypoint.time - planned).total_seconds()) < 1
        assert (waypoint.longitude, waypoint.latitude) == pytest.approx((stop["lon"], stop["lat"]))
    assert len(gpx.routes[0].points) == len(route.stops)
    track = gpx.tracks[0].segments[0].points
    assert (track[0].longitude, track[0].latitude) == pytest.approx(station_point(db_session))
    assert "闹店派出所第1巡区" in gpx.name


def test_shift_too_short_for_one_stop(db_session, police):
    before = patrol_counts(db_session)
    with pytest.raises(ValidationError, match="too short for even one stop") as err:
        plan(db_session, police, shift_minutes=11, stop_minutes=12)
    assert err.value.field == "shift_minutes"
    slow = patrol.PatrolSettings(speed_kmh=0.5)  # walking pace: no stop is reachable and back in 20 minutes
    with pytest.raises(ValidationError, match="too short for even one stop") as err:
        plan(db_session, police, slow, shift_minutes=20)
    assert err.value.field == "shift_minutes"
    assert patrol_counts(db_session) == before


@pytest.mark.parametrize("data, field", [
    ({"zone": ""}, "zone"), ({"shift_start": "tomorrow"}, "shift_start"), ({"stops": 0}, "stops"),
    ({"stops": 2.5}, "stops"), ({"stop_minutes": 30}, "stop_minutes"), ({"shift_minutes": "x"}, "shift_minutes"),
])
def test_bad_route_requests_name_the_field(db_session, police, data, field):
    with pytest.raises(ValidationError) as err:
        plan(db_session, police, **data)
    assert err.value.field == field


def test_zone_without_risky_grids(db_session, make_user):
    county, _ = make_user("r_county", "county_officer")
    risk_result = patrol.risk_for(db_session, patrol.parse_moment(SHIFT_START, "s"), patrol.risk.RiskSettings())
    zones = patrol.grid_zones(db_session)
    hot_zones = set(zones.reindex(risk_result.grids.loc[risk_result.grids["gi_bin"] > 0, "code"]).dropna())
    quiet = sorted(set(zones.dropna()) - hot_zones)[0]
    before = patrol_counts(db_session)
    with pytest.raises(ValidationError, match="no risky grid") as err:
        plan(db_session, county, patrol.PatrolSettings(high_risk_level=6), zone=quiet)
    assert err.value.field == "zone"
    assert patrol_counts(db_session) == before


def test_police_plan_only_in_their_zone(db_session, police, make_user):
    viewer, _ = make_user("r_viewer", "viewer")
    with pytest.raises(Forbidden):
        plan(db_session, police, zone=FAR_ZONE)
    with pytest.raises(Forbidden):
        plan(db_session, viewer)
    route = plan(db_session, police)
    assert patrol.get_route(db_session, viewer, route.id).id == route.id
    assert "created_by" not in patrol.route_json(db_session, viewer, route)
    other, _ = make_user("r_other", "police", [FAR_ZONE])
    with pytest.raises(patrol.NotFound):
        patrol.get_route(db_session, other, route.id)


# --- roads ------------------------------------------------------------------------------------

def write_lines(path: Path, lines: list, **columns) -> Path:
    frame = gpd.GeoDataFrame(columns, geometry=lines, crs="EPSG:4326")
    frame.to_file(path, driver="GeoJSON")
    return path


def candidate_points(db_session) -> list[tuple[float, float]]:
    zone = db_session.get(patrol.PatrolZone, ZONE)
    candidates = patrol.route_candidates(db_session, zone, patrol.parse_moment(SHIFT_START, "s"), 12,
                                         patrol.PatrolSettings(), patrol.risk.RiskSettings())
    return list(zip(candidates["lon"], candidates["lat"]))


def test_routes_follow_the_roads_and_the_network_is_cached(db_session, police, tmp_path):
    station = station_point(db_session)
    # A star of roads from the station to every candidate stop.
    lines = [LineString([station, p]) for p in candidate_points(db_session)]
    path = write_lines(tmp_path / "roads.geojson", lines, highway=["residential"] * len(lines))
    report = patrol.import_roads(db_session, None, path, SourceOptions())
    assert report.inserted == len(lines) and any("1 connected part" in n for n in report.notes)
    network = patrol.road_network(db_session)
    assert network is patrol.road_network(db_session)  # built once, then kept
    route = plan(db_session, police)
    body = patrol.route_json(db_session, police, route)
    assert (body["travel_mode"], body["speed_kmh"]) == ("road", None)
    # Along a star, every leg runs through the station, and the path keeps to the roads.
    coordinates = np.array(body["path"]["coordinates"])
    near_station = np.hypot(*(coordinates - np.array(station)).T) < 1e-7
    starts = np.flatnonzero(near_station & ~np.r_[False, near_station[:-1]])
    assert len(starts) == len(body["stops"]) + 1
    roads = shapely.union_all(lines)
    assert max(roads.distance(shapely.Point(c)) for c in coordinates) < 1e-7
    patrol.import_roads(db_session, None, path, SourceOptions(), append=True)
    assert patrol.road_network(db_session) is not network  # the roads changed


def test_no_road_connects_the_stops(db_session, police, tmp_path):
    # Short roads at the station and at every stop, none joined to another.
    points = [station_point(db_session)] + candidate_points(db_session)
    lines = [LineString([(x - 0.001, y), (x + 0.001, y)]) for x, y in points]
    patrol.import_roads(db_session, None, write_lines(tmp_path / "bits.geojson", lines), SourceOptions())
    before = patrol_counts(db_session)
    with pytest.raises(ValidationError, match="no road connects start and grid") as err:
        plan(db_session, police)
    assert err.value.field == "roads"
    assert patrol_counts(db_session) == before


def test_roads_import_reads_osm_columns_and_replaces(db_session, tmp_path):
    x, y = station_point(db_session)
    lines = [LineString([(x, y), (x + 0.01, y)]),
             shapely.MultiLineString([[(x, y), (x, y + 0.01)], [(x, y + 0.01), (x + 0.01, y + 0.01)]]),
             LineString([(x + 0.01, y), (x + 0.01, y + 0.01)])]
    path = write_lines(tmp_path / "osm.geojson", lines, highway=["residential", "primary", None],
                       maxspeed=[None, "40", "30 mph"], name=["<b>路</b>", "宝丰大道", None])
    patrol.import_roads(db_session, None, path, SourceOptions())
    rows = db_session.execute(text("SELECT name, road_class, speed_kmh FROM roads ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("<b>路</b>", "residential", 25.0), ("宝丰大道", "primary", 40.0),
                                         ("宝丰大道", "primary", 40.0), (None, None, pytest.approx(48.28032))]
    patrol.import_roads(db_session, None, path, SourceOptions())
    assert db_session.execute(text("SELECT count(*) FROM roads")).scalar() == 4
    patrol.import_roads(db_session, None, path, SourceOptions(), append=True)
    assert db_session.execute(text("SELECT count(*) FROM roads")).scalar() == 8


def test_roads_import_is_all_or_nothing(db_session, tmp_path, make_user):
    x, y = station_point(db_session)
    frame = gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[LineString([(x, y), (x + 0.01, y)]),
                                                             shapely.Point(x, y)], crs="EPSG:4326")
    frame.to_file(tmp_path / "mixed.geojson", driver="GeoJSON")
    with pytest.raises(ImportRefused, match="row 2.*not a line"):
        patrol.import_roads(db_session, None, tmp_path / "mixed.geojson", SourceOptions())
    assert db_session.execute(text("SELECT count(*) FROM roads")).scalar() == 0
    police, _ = make_user("i_police", "police", [ZONE])
    with pytest.raises(Forbidden):
        patrol.import_roads(db_session, police, tmp_path / "mixed.geojson", SourceOptions())


# --- the demo ---------------------------------------------------------------------------------

def test_demo_tracks_are_loaded_with_their_dropped_fixes(db_session):
    raw = pd.read_csv(DEMO_DIR / "tracks.csv.gz", dtype=str)
    stored = db_session.execute(text(
        "SELECT count(*), sum(fixes_read), sum(dropped_duplicate_time), sum(dropped_outside), sum(dropped_too_fast), "
        "count(DISTINCT zone_code), count(*) FILTER (WHERE officer_user_id IS NULL AND unit_name LIKE '%巡逻%组') "
        "FROM patrol_tracks WHERE source_name LIKE 'tracks.csv.gz:%'")).one()
    tracks, read, duplicate, outside, too_fast, zones, units = stored
    assert tracks == raw["track_id"].nunique() == units
    assert read == len(raw) and min(duplicate, outside, too_fast) > 0
    assert zones == db_session.execute(text("SELECT count(*) FROM patrol_zones")).scalar()
    kept = db_session.execute(text("SELECT sum(fixes_kept) FROM patrol_tracks")).scalar()
    assert db_session.execute(text("SELECT count(*) FROM patrol_track_points")).scalar() == kept


def test_demo_has_well_covered_and_neglected_grids(db_session, make_user):
    county, _ = make_user("d_county", "county_officer")
    period = patrol.parse_coverage_period(db_session, county, {}, patrol.PatrolSettings())
    assert period.label() == "2026-10-18 至 2026-10-31"
    grids = patrol.compute_coverage(db_session, county, period).grids
    never = (grids["visits"] == 0).mean()
    often = (grids["visits"] >= 14).mean()
    assert 0.1 < never < 0.5 and often > 0.2
    risky_never = (grids["high_risk"] & (grids["visits"] == 0)).sum()
    assert risky_never > 5  # risky grids the patrols missed: what the page and the routes are for


def test_demo_track_file_comes_from_the_generator():
    from gridmap.demo.patrol import build_tracks, write_tracks

    tracks = build_tracks(DEMO_DIR)
    assert not tracks["officer"].str.contains("[A-Za-z]").any()
    assert set(tracks.columns) == {"track_id", "officer", "zone_code", "time", "lon", "lat"}
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_tracks(Path(folder) / "t.csv.gz", tracks)
        assert (Path(folder) / "t.csv.gz").read_bytes() == (DEMO_DIR / "tracks.csv.gz").read_bytes()


# --- the CLI ----------------------------------------------------------------------------------

def run_cli(database, *args):
    env = dict(os.environ, GRIDMAP_DATABASE_URL=database)
    return subprocess.run([sys.executable, "-m", "gridmap.cli", *args], capture_output=True, text=True, env=env,
                          timeout=180)


@pytest.fixture
def committed_cleanup(engine):
    """Removes what the CLI commits to the session database."""
    with engine.connect() as conn:
        last_track = conn.execute(text("SELECT coalesce(max(id), 0) FROM patrol_tracks")).scalar()
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM patrol_tracks WHERE id > :i"), {"i": last_track})
        conn.execute(text("DELETE FROM roads"))


def test_cli_imports_tracks_and_roads(database, engine, tmp_path, committed_cleanup):
    with engine.connect() as conn:
        _, lon, lat = conn.execute(text(
            "SELECT g.code, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)) FROM grids g "
            "JOIN patrol_zones z ON ST_Within(ST_PointOnSurface(g.geom), z.geom) WHERE z.code = :z ORDER BY g.code "
            "LIMIT 1"), {"z": ZONE}).one()
        before = conn.execute(text("SELECT count(*) FROM patrol_tracks")).scalar()
    good = tmp_path / "day.gpx"
    good.write_bytes(gpx_bytes(stay(lon, lat, QUIET_DAY - timedelta(days=3), 5)))
    result = run_cli(database, "import", "tracks", str(good), "--zone", ZONE, "--officer", "闹店派出所巡逻一组")
    assert result.returncode == 0, result.stderr
    assert "保留 11 个" in result.stdout

    broken = tmp_path / "broken.gpx"
    broken.write_bytes(b"<gpx><trk>")
    result = run_cli(database, "import", "tracks", str(broken), "--zone", ZONE, "--officer", "x")
    assert result.returncode == 2 and "not a valid GPX" in result.stderr
    result = run_cli(database, "import", "tracks", str(good), "--zone", "nowhere", "--officer", "x")
    assert result.returncode == 2 and "no patrol zone" in result.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM patrol_tracks")).scalar() == before + 1

    roads = write_lines(tmp_path / "roads.geojson", [LineString([(lon, lat), (lon + 0.01, lat)])], highway=["primary"])
    result = run_cli(database, "import", "roads", str(roads), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "roads: 1 rows read, 1 new" in result.stdout and "2 nodes, 1 edges" in result.stdout
    bad = tmp_path / "bad.geojson"
    gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(lon, lat)], crs="EPSG:4326").to_file(bad, driver="GeoJSON")
    result = run_cli(database, "import", "roads", str(bad), "--quiet")
    assert result.returncode == 2 and "not a line" in result.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM roads")).scalar() == 1


def test_settings_come_from_the_config():
    settings = patrol.PatrolSettings.from_config({"PATROL_SPEED_KMH": "25", "PATROL_HIGH_RISK_LEVEL": "4",
                                                  "METRIC_CRS": "EPSG:4547"})
    assert (settings.speed_kmh, settings.high_risk_level, settings.max_speed_kmh) == (25.0, 4, 120.0)
    with pytest.raises(ValueError, match="PATROL_"):
        patrol.PatrolSettings.from_config({"PATROL_SPEED_KMH": "0"})
    assert patrol.next_shift_start(QUIET_DAY + timedelta(hours=9)) == QUIET_DAY + timedelta(hours=20)
    assert patrol.next_shift_start(QUIET_DAY + timedelta(hours=21)) == QUIET_DAY + timedelta(days=1, hours=8)
    assert patrol.next_shift_start(QUIET_DAY.astimezone(CHINA_TZ)) == QUIET_DAY + timedelta(hours=8)


def test_roads_import_takes_mapped_columns_and_constants(db_session, tmp_path):
    x, y = station_point(db_session)
    path = write_lines(tmp_path / "roads.geojson", [LineString([(x, y), (x + 0.01, y)])], KIND=["primary"],
                       MPH=["25"])
    patrol.import_roads(db_session, None, path, SourceOptions(mapping={"road_class": "KIND"},
                                                              constants={"speed_kmh": "20", "name": "乡道"}))
    assert tuple(db_session.execute(text("SELECT name, road_class, speed_kmh FROM roads")).one()) == ("乡道", "primary",
                                                                                                      20.0)
    with pytest.raises(ValidationError, match="roads have the fields") as err:
        patrol.import_roads(db_session, None, path, SourceOptions(constants={"lanes": "2"}))
    assert err.value.field == "lanes"
    with pytest.raises(ValidationError, match="no such column"):
        patrol.import_roads(db_session, None, path, SourceOptions(mapping={"speed_kmh": "KMH"}))
