"""Tests of the synthetic demo county generator (gridmap.demo.generator).

Two datasets are checked: the committed output in ``geodata/baofeng`` (seed 2023) and a fresh
build with seed 7 and fewer incidents. Structural properties hold for both; statistical patterns
are checked on the committed 24,000 incidents only.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.catalog import (
    CATEGORY_BY_CODE,
    LEGAL_CLASSES,
    MEDIATION_KINDS,
    RESOLUTION_LEVELS,
    STATUSES,
    SUBCATEGORY_CODES,
)
from gridmap.demo.generator import OUTPUT_FILES, SYNTHETIC_NOTE, build_demo, display_name

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "geodata" / "sources" / "baofeng"
COMMITTED = REPO / "geodata" / "baofeng"
METRIC = "EPSG:4547"
LAYERS = ("county", "towns", "villages", "grids", "stations", "patrol_zones", "mediation_points")
STAGE_COLUMNS = ("reported_at", "accepted_at", "dispatched_at", "in_progress_at", "resolved_at", "closed_at",
                 "followed_up_at")
STAGE_OF_STATUS = {"reported": 0, "rejected": 0, "duplicate": 0, "accepted": 1, "dispatched": 2, "in_progress": 3,
                   "resolved": 4, "closed": 5, "followed_up": 6}
TODAY = date(2026, 11, 1)
SMALL_INCIDENTS = 3000

pytestmark = pytest.mark.skipif(not SOURCE.is_dir(), reason="geodata/sources/baofeng is missing")


def read_dataset(folder: Path) -> dict:
    """All layers of one output folder, in WGS84 and in the metric CRS, plus the incidents."""
    layers = {name: gpd.read_file(folder / f"{name}.geojson") for name in LAYERS}
    incidents = pd.read_csv(folder / "incidents.csv.gz", dtype=str, keep_default_na=False)
    return {
        "folder": folder,
        "wgs84": layers,
        "metric": {name: frame.to_crs(METRIC) for name, frame in layers.items()},
        "incidents": incidents,
    }


@pytest.fixture(scope="module")
def fresh_builds(tmp_path_factory):
    """Two small builds with seed 7.

    The repeat runs through the command line in another process with another string-hash
    seed, so output that depended on set or dict iteration order would differ.
    """
    root = tmp_path_factory.mktemp("demo")
    folders = {name: root / name for name in ("first", "again")}
    build_demo(SOURCE, folders["first"], seed=7, n_incidents=SMALL_INCIDENTS, today=TODAY)
    subprocess.run(
        [sys.executable, "-m", "gridmap.demo.generator", "--source", str(SOURCE), "--out", str(folders["again"]),
         "--seed", "7", "--n-incidents", str(SMALL_INCIDENTS), "--today", TODAY.isoformat()],
        check=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True)
    return folders


@pytest.fixture(scope="module")
def committed():
    if not (COMMITTED / "manifest.json").exists():
        pytest.fail("geodata/baofeng is missing: run python -m gridmap.demo.generator")
    return read_dataset(COMMITTED)


@pytest.fixture(scope="module", params=["committed", "fresh"])
def dataset(request, fresh_builds):
    if request.param == "committed":
        return request.getfixturevalue("committed")
    return read_dataset(fresh_builds["first"])


def divisions() -> pd.DataFrame:
    return pd.read_csv(SOURCE / "divisions.csv", dtype=str)


def tiling_errors(parent, children: np.ndarray) -> tuple[float, float]:
    """Gap-or-excess area between a parent and its children's union, and summed pairwise overlaps (m²)."""
    union = shapely.union_all(children)
    mismatch = shapely.area(shapely.symmetric_difference(union, parent))
    left, right = shapely.STRtree(children).query(children, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(children[left[pairs]], children[right[pairs]])).sum()
    return float(mismatch), float(overlap)


def assert_tiles(parents: gpd.GeoDataFrame, children: gpd.GeoDataFrame, parent_key: str, child_key: str) -> None:
    for parent in parents.itertuples(index=False):
        members = children[children[child_key] == getattr(parent, parent_key)].geometry.to_numpy()
        assert len(members), f"{getattr(parent, parent_key)} has no children"
        mismatch, overlap = tiling_errors(parent.geometry, members)
        assert mismatch <= 1.0 and overlap <= 1.0, (getattr(parent, parent_key), mismatch, overlap)


def stage_times(incidents: pd.DataFrame) -> dict[str, pd.Series]:
    return {column: pd.to_datetime(incidents[column].replace("", None), format="ISO8601")
            for column in ("occurred_at", *STAGE_COLUMNS)}


def three_zero_breaking(incidents: pd.DataFrame) -> pd.Series:
    severity = incidents.severity.astype(int)
    return (((incidents.category == "PET") & (incidents.subcategory != "village")) | (incidents.category == "ACC")
            | (incidents.legal_class == "criminal") | ((incidents.legal_class == "public_order") & (severity >= 3)))


def incident_villages(data: dict) -> pd.Series:
    incidents = data["incidents"]
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(incidents.lon.astype(float), incidents.lat.astype(float)),
                              crs="EPSG:4326")
    joined = gpd.sjoin(points, data["wgs84"]["grids"][["village_code", "geometry"]], predicate="within", how="left")
    return joined.village_code


# --------------------------------------------------------------------------- names and codes

@pytest.mark.parametrize("full_name, expected", [
    ("范营村村民委员会", "范营村"), ("东中社区居委会", "东中社区"), ("丁楼社区居民委员会", "丁楼社区"),
    ("龙山居民委员会", "龙山社区"), ("东崔庄村民委员会委会", "东崔庄村"), ("刘湾村委会", "刘湾村"),
    ("西彭庄村民村委员会", "西彭庄村"), ("七里营村村委员会", "七里营村"), ("响潭营村民委员会", "响潭营村"),
])
def test_display_name_strips_committee_suffixes(full_name, expected):
    assert display_name(full_name) == expected


def test_towns_and_villages_carry_the_official_codes_and_names(dataset):
    official = divisions()
    towns, villages = dataset["wgs84"]["towns"], dataset["wgs84"]["villages"]
    official_towns = official[official.level == "town"].sort_values("code")
    official_villages = official[official.level == "village"].sort_values("code")
    assert len(towns) == 13 and len(villages) == 323
    assert towns.sort_values("code")[["code", "name"]].to_numpy().tolist() == \
        official_towns[["code", "name"]].to_numpy().tolist()
    villages = villages.sort_values("code")
    assert villages.code.tolist() == official_villages.code.tolist()
    assert villages.full_name.tolist() == official_villages.name.tolist()
    assert villages.town_code.tolist() == official_villages.parent_code.tolist()
    assert villages.name.tolist() == [display_name(n) for n in official_villages.name]
    assert villages.set_index("code").name["410421102204"] == "范营村"


def test_town_seats_are_real_where_known_and_inside_their_town(dataset):
    seats = pd.read_csv(SOURCE / "seats.csv", dtype={"code": str}).set_index("code")
    towns = dataset["wgs84"]["towns"]
    for town in towns.itertuples(index=False):
        if town.code in seats.index:
            assert (town.seat_lon, town.seat_lat) == (seats.lon[town.code], seats.lat[town.code])
        assert town.geometry.contains(shapely.Point(town.seat_lon, town.seat_lat)), town.code
    villages = dataset["wgs84"]["villages"].set_index("code")
    for code, seat in seats[seats.level == "village"].iterrows():
        assert villages.geometry[code].contains(shapely.Point(seat.lon, seat.lat)), code


# --------------------------------------------------------------------------- tiling

def test_county_is_the_real_outline(dataset):
    county = dataset["wgs84"]["county"]
    source = gpd.read_file(SOURCE / "county_outline.geojson")
    assert county.code.tolist() == ["410421000000"] and county.name.tolist() == ["宝丰县"]
    outline = shapely.MultiPolygon([source.geometry.iloc[0]])
    assert shapely.normalize(county.geometry.iloc[0]).equals_exact(shapely.normalize(outline), tolerance=0.0)


def test_towns_tile_the_outline(dataset):
    metric = dataset["metric"]
    assert (metric["towns"].geom_type == "MultiPolygon").all()
    mismatch, overlap = tiling_errors(metric["county"].geometry.iloc[0], metric["towns"].geometry.to_numpy())
    assert mismatch <= 1.0 and overlap <= 1.0


def test_villages_tile_their_town(dataset):
    metric = dataset["metric"]
    assert (metric["villages"].geom_type == "MultiPolygon").all()
    assert_tiles(metric["towns"], metric["villages"], "code", "town_code")


def test_grids_tile_their_village(dataset):
    metric = dataset["metric"]
    assert (metric["grids"].geom_type == "MultiPolygon").all()
    assert_tiles(metric["villages"], metric["grids"], "code", "village_code")


def test_patrol_zones_tile_the_county_one_to_three_per_station(dataset):
    metric = dataset["metric"]
    zones, stations = metric["patrol_zones"], metric["stations"]
    mismatch, overlap = tiling_errors(metric["county"].geometry.iloc[0], zones.geometry.to_numpy())
    assert mismatch <= 1.0 and overlap <= 1.0
    per_station = zones.groupby("station_code").size()
    assert set(per_station.index) == set(stations.code)
    assert per_station.between(1, 3).all()
    for zone in zones.itertuples(index=False):
        town_code = zone.station_code.removeprefix("PS")
        assert re.fullmatch(rf"{town_code}-Z[123]", zone.code)
        assert zone.name.endswith(f"第{zone.code[-1]}巡区")


# --------------------------------------------------------------------------- grids

def test_grid_codes_are_village_code_plus_contiguous_sequence(dataset):
    grids = dataset["wgs84"]["grids"]
    assert grids.code.is_unique
    assert grids.code.str.fullmatch(r"\d{15}").all()
    assert (grids.code.str[:12] == grids.village_code).all()
    assert set(grids.village_code) == set(dataset["wgs84"]["villages"].code)
    for village_code, members in grids.groupby("village_code"):
        sequences = sorted(int(code[12:]) for code in members.code)
        assert 1 <= len(sequences) <= 4, village_code
        assert sequences == list(range(1, len(sequences) + 1)), village_code


def test_grids_are_numbered_by_rows_north_to_south_then_west_to_east(dataset):
    grids = dataset["metric"]["grids"]
    villages = dataset["metric"]["villages"].set_index("code")
    checked = 0
    for village_code, members in grids.groupby("village_code"):
        members = members.sort_values("code")
        _, ymin, _, ymax = villages.geometry[village_code].bounds
        rows = max(1, math.ceil(math.sqrt(len(members))))
        centroids = members.geometry.centroid
        band = np.clip(((ymax - centroids.y) / (ymax - ymin) * rows).astype(int), 0, rows - 1).to_numpy()
        keys = list(zip(band, centroids.x, strict=True))
        assert keys == sorted(keys), village_code
        checked += len(members) > 1
    assert checked > 100


def test_grid_populations_and_households_are_plausible(dataset):
    grids = dataset["wgs84"]["grids"]
    villages = dataset["wgs84"]["villages"]
    assert grids.population.between(300, 1500).all()
    assert (grids.households / grids.population).between(1 / 3.6, 1 / 2.8).all()
    assert grids.name.str.fullmatch(r".+第[1-4]网格").all()
    population = grids.groupby("village_code").population.sum()
    community = villages.set_index("code").full_name.str.contains("居")
    assert population[community[community].index].between(2700, 8000).all()
    assert population[community[~community].index].between(500, 3000).all()
    assert population[community[community].index].mean() > 2 * population[community[~community].index].mean()
    metric = dataset["metric"]["grids"]
    assert np.allclose(metric.area / 1e6, grids.area_km2, atol=1e-3)


# --------------------------------------------------------------------------- police and mediation

def test_one_station_per_town_inside_it(dataset):
    stations = dataset["wgs84"]["stations"]
    towns = dataset["wgs84"]["towns"].set_index("code")
    assert sorted(stations.town_code) == sorted(towns.index)
    assert (stations.code == "PS" + stations.town_code).all()
    for station in stations.itertuples(index=False):
        assert towns.geometry[station.town_code].contains(station.geometry)
    names = stations.set_index("town_code").name
    assert names["410421102000"] == "闹店派出所" and names["410421001000"] == "铁路派出所"


def test_mediation_points(dataset):
    points = dataset["wgs84"]["mediation_points"]
    villages = dataset["wgs84"]["villages"].set_index("code")
    assert set(points.kind) <= set(MEDIATION_KINDS) and set(points.kind) == set(MEDIATION_KINDS)
    assert points.name.is_unique
    bailitang = points[points.kind == "bailitang"]
    assert bailitang[["name", "village_code"]].to_numpy().tolist() == [["范营村摆理堂", "410421102204"]]
    assert villages.town_code["410421102204"] == "410421102000"
    for point in points.itertuples(index=False):
        assert villages.geometry[point.village_code].contains(point.geometry), point.name
    assert points.contact.str.fullmatch(r"0375-6\d{6}").all() and points.contact.is_unique
    assert (points.mediators >= 1).all() and points.opening_hours.str.len().gt(0).all()
    town_of_point = points.village_code.map(villages.town_code)
    for kind in ("committee", "legal_station"):
        assert sorted(town_of_point[points.kind == kind]) == sorted(villages.town_code.unique())
    talk_hall_share = points[points.kind == "shuoshiting"].village_code.nunique() / len(villages)
    assert 0.18 <= talk_hall_share <= 0.32
    assert (points.kind == "police_office").sum() >= 5


def test_some_villages_have_no_mediation_point_within_two_km(dataset):
    metric = dataset["metric"]
    centres = metric["villages"].geometry.representative_point()
    points = metric["mediation_points"].geometry.to_numpy()
    nearest = shapely.STRtree(points).query_nearest(centres.to_numpy(), return_distance=True, all_matches=False)[1]
    uncovered = (nearest > 2000).sum()
    assert 5 <= uncovered <= 0.15 * len(centres)


# --------------------------------------------------------------------------- incidents

def test_every_incident_is_strictly_inside_one_grid(dataset):
    villages = incident_villages(dataset)
    assert not villages.index.duplicated().any()
    assert villages.notna().all()


def test_incident_vocabulary(dataset):
    incidents = dataset["incidents"]
    assert incidents.client_id.is_unique
    assert set(incidents.category) == set(CATEGORY_BY_CODE)
    for category, group in incidents.groupby("category"):
        assert set(group.subcategory) <= set(SUBCATEGORY_CODES[category]), category
    assert set(incidents.status) == set(STATUSES)
    assert set(incidents.severity) <= {"1", "2", "3", "4"}
    assert set(incidents.legal_class) <= set(LEGAL_CLASSES)
    assert set(incidents.enterprise_involved) == {"true", "false"}
    resolved = incidents.status.isin(["resolved", "closed", "followed_up"])
    assert set(incidents.resolution_level[resolved]) <= set(RESOLUTION_LEVELS)
    assert (incidents.resolution_level[~resolved] == "").all()
    followed = incidents.status == "followed_up"
    assert set(incidents.satisfaction[followed]) <= {"1", "2", "3", "4", "5"}
    assert (incidents.satisfaction[~followed] == "").all()
    assert incidents.description.str.len().between(6, 40).all()


def test_incident_timestamps_follow_the_workflow(dataset):
    incidents = dataset["incidents"]
    columns = ("occurred_at", *STAGE_COLUMNS)
    filled = np.column_stack([incidents[c] != "" for c in STAGE_COLUMNS])
    reached = incidents.status.map(STAGE_OF_STATUS).to_numpy()
    assert (filled == (np.arange(len(STAGE_COLUMNS))[None, :] <= reached[:, None])).all()
    for column in columns:
        values = incidents[column][incidents[column] != ""]
        assert values.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00").all(), column
    times = stage_times(incidents)
    for earlier, later in zip(columns[:-1], columns[1:], strict=True):
        both = times[earlier].notna() & times[later].notna()
        assert (times[earlier][both] <= times[later][both]).all(), (earlier, later)
    start = pd.Timestamp("2025-11-01T00:00:00+08:00")
    end = pd.Timestamp("2026-11-01T00:00:00+08:00")
    assert times["occurred_at"].min() >= start
    assert max(t.max() for t in times.values()) < end
    assert times["reported_at"].is_monotonic_increasing


def test_duplicates_point_to_an_earlier_report_of_the_same_category(dataset):
    incidents = dataset["incidents"]
    duplicates = incidents[incidents.status == "duplicate"]
    assert len(duplicates) and (incidents.duplicate_of_index[incidents.status != "duplicate"] == "").all()
    originals = duplicates.duplicate_of_index.astype(int).to_numpy()
    assert (originals < duplicates.index.to_numpy()).all()
    assert (incidents.category.to_numpy()[originals] == duplicates.category.to_numpy()).all()
    assert not incidents.status.iloc[originals].isin(["duplicate", "rejected"]).any()


def test_referrals_name_existing_mediation_points_for_disputes_only(dataset):
    incidents = dataset["incidents"]
    referred = incidents[incidents.mediation_point != ""]
    assert set(referred.mediation_point) <= set(dataset["wgs84"]["mediation_points"].name)
    assert (referred.category == "DSP").all()
    share = len(referred) / (incidents.category == "DSP").sum()
    assert 0.25 <= share <= 0.35


# --------------------------------------------------------------------------- incident patterns (24,000 rows)

def test_incident_category_mix(committed):
    incidents = committed["incidents"]
    assert len(incidents) >= 20000
    expected = {"DSP": 0.35, "SEC": 0.20, "FIR": 0.12, "TRF": 0.12, "LOG": 0.06, "HAZ": 0.04, "ACC": 0.04, "PET": 0.07}
    shares = incidents.category.value_counts(normalize=True)
    for category, share in expected.items():
        assert abs(shares[category] - share) < 0.015, category
    petitions = incidents.subcategory[incidents.category == "PET"].value_counts(normalize=True)
    assert petitions.loc[["village", "town"]].sum() > 0.85
    accidents = incidents.subcategory[incidents.category == "ACC"].value_counts(normalize=True)
    assert accidents["death"] < 0.15


def test_legal_class_and_enterprise_patterns(committed):
    incidents = committed["incidents"]
    with_class = incidents[incidents.legal_class != "none"]
    assert with_class.category.value_counts(normalize=True)["SEC"] > 0.6
    for category in ("FIR", "LOG", "PET", "DSP"):
        assert (incidents.legal_class[incidents.category == category] == "none").mean() > 0.9, category
    enterprise = incidents.enterprise_involved == "true"
    key = incidents.category + "." + incidents.subcategory
    assert enterprise[key == "DSP.enterprise"].mean() > 0.8 and enterprise[key == "DSP.wages"].mean() > 0.7
    assert enterprise[incidents.category.isin(["LOG", "HAZ"])].mean() > 0.6
    assert enterprise[key == "DSP.neighbour"].mean() < 0.1


def test_dispute_resolution_levels(committed):
    incidents = committed["incidents"]
    levels = incidents.resolution_level[(incidents.category == "DSP") & (incidents.resolution_level != "")]
    shares = levels.value_counts(normalize=True)
    assert 0.70 <= shares["village"] <= 0.80 and 0.15 <= shares["town"] <= 0.25 and 0.02 <= shares["county"] <= 0.08


def test_status_depends_on_age_and_overdue_cases_exist(committed):
    incidents = committed["incidents"]
    times = stage_times(incidents)
    now = pd.Timestamp("2026-11-01T00:00:00+08:00")
    age_days = (now - times["reported_at"]).dt.total_seconds() / 86400
    terminal = incidents.status.isin(["closed", "followed_up", "rejected", "duplicate"])
    assert terminal[age_days > 90].mean() > 0.9
    assert terminal[age_days < 2].mean() < 0.3
    deadline = pd.to_timedelta(incidents.category.map(lambda c: CATEGORY_BY_CODE[c].deadline_days), unit="D")
    open_cases = incidents.status.isin(["accepted", "dispatched", "in_progress"])
    overdue = open_cases & (times["accepted_at"] + deadline < now)
    assert overdue.sum() >= 100
    assert (overdue & (times["accepted_at"] + 3 * deadline < now)).sum() >= 50


def test_time_of_day_and_weekday_cycles(committed):
    incidents = committed["incidents"]
    occurred = stage_times(incidents)["occurred_at"]
    hours = occurred.dt.hour.value_counts()
    assert hours.loc[[0, 1, 2, 3, 4]].mean() * 3 < hours.loc[[9, 10, 11]].mean()
    assert hours.loc[[18, 19, 20]].mean() > 2 * hours.loc[[2, 3, 4]].mean()
    traffic = occurred[incidents.category == "TRF"].dt.hour.value_counts()
    assert traffic.loc[[7, 8, 17, 18]].mean() > 1.5 * traffic.loc[[11, 12, 13, 14]].mean()
    weekday = occurred[incidents.category == "DSP"].dt.day_of_week.value_counts()
    assert weekday.loc[[5, 6]].mean() > 1.15 * weekday.loc[[0, 1, 2, 3, 4]].mean()


def test_incidents_cluster_in_communities_and_near_seats(committed):
    villages = incident_villages(committed)
    counts = villages.value_counts().reindex(committed["wgs84"]["villages"].code, fill_value=0)
    population = committed["wgs84"]["grids"].groupby("village_code").population.sum()
    per_thousand = counts / population * 1000
    community = committed["wgs84"]["villages"].set_index("code").full_name.str.contains("居")
    assert per_thousand[community].median() > 1.3 * per_thousand[~community].median()
    def metric_points(lon, lat):
        return gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_crs(METRIC).to_numpy()

    incidents, towns = committed["incidents"], committed["wgs84"]["towns"]
    incident_points = metric_points(incidents.lon.astype(float), incidents.lat.astype(float))
    seat_points = metric_points(towns.seat_lon, towns.seat_lat)
    near_seat = shapely.dwithin(incident_points[:, None], seat_points[None, :], 1500.0).any(axis=1)
    seat_area = 13 * math.pi * 1.5 ** 2 / 730
    assert near_seat.mean() > 3 * seat_area


def test_three_zero_compliance_is_about_ninety_percent(committed):
    villages = incident_villages(committed)
    failing = villages[three_zero_breaking(committed["incidents"]).to_numpy()].nunique()
    compliance = 1 - failing / len(committed["wgs84"]["villages"])
    assert 0.85 <= compliance <= 0.92


# --------------------------------------------------------------------------- reproducibility and manifest

def test_same_seed_gives_byte_identical_files(fresh_builds):
    for name in (*OUTPUT_FILES, "manifest.json"):
        first = (fresh_builds["first"] / name).read_bytes()
        assert first == (fresh_builds["again"] / name).read_bytes(), name


def test_different_seed_gives_different_incidents(fresh_builds):
    def first_incidents(folder):
        with gzip.open(folder / "incidents.csv.gz", "rt", encoding="utf-8") as handle:
            return pd.read_csv(handle, usecols=["client_id", "lon", "lat"], dtype=str, nrows=SMALL_INCIDENTS)

    seven, committed_2023 = first_incidents(fresh_builds["first"]), first_incidents(COMMITTED)
    assert not set(seven.client_id) & set(committed_2023.client_id)
    def places(frame):
        return set(zip(frame.lon, frame.lat, strict=True))

    assert not places(seven) & places(committed_2023)
    grids = [(folder / "grids.geojson").read_bytes() for folder in (fresh_builds["first"], COMMITTED)]
    assert grids[0] != grids[1]


DECIMAL = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def same_but_for_last_digits(made: str, committed: str) -> bool:
    """Equal text, and equal decimals up to 1e-9: a CPU with other vector instructions may
    round a coordinate's last bit differently (seen: 1.4e-14 degrees), which no user can see."""
    if DECIMAL.split(made) != DECIMAL.split(committed):
        return False
    return np.allclose(np.array(DECIMAL.findall(made), dtype=float), np.array(DECIMAL.findall(committed), dtype=float),
                       rtol=0, atol=1e-9)


def test_committed_output_is_what_the_generator_makes(tmp_path):
    manifest = json.loads((COMMITTED / "manifest.json").read_text(encoding="utf-8"))
    build_demo(SOURCE, tmp_path, seed=manifest["seed"], n_incidents=manifest["counts"]["incidents"],
               today=date.fromisoformat(manifest["today"]))
    for name in OUTPUT_FILES:
        made, committed = (tmp_path / name).read_bytes(), (COMMITTED / name).read_bytes()
        if name.endswith(".gz"):
            made, committed = gzip.decompress(made), gzip.decompress(committed)
        assert made == committed or same_but_for_last_digits(made.decode(), committed.decode()), \
            f"geodata/baofeng/{name} is stale: run python -m gridmap.demo.generator (see geodata/README.md)"
    made = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert {**made, "sha256": None} == {**manifest, "sha256": None}


def test_the_output_check_sees_a_changed_coordinate():
    text_ = '{"coordinates":[113.23314491380853,33.84023294714054]}'
    assert same_but_for_last_digits(text_, text_.replace("853,", "854,"))
    assert not same_but_for_last_digits(text_, text_.replace("3314491380853", "3314591380853"))
    assert not same_but_for_last_digits(text_, text_.replace("coordinates", "coordinate"))


def test_manifest_describes_the_committed_files(committed):
    manifest = json.loads((COMMITTED / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["synthetic"] == SYNTHETIC_NOTE
    assert "only the outline, division names/codes and seats are real" in manifest["synthetic"]
    assert manifest["seed"] == 2023 and manifest["today"] == "2026-11-01"
    for name, frame in committed["wgs84"].items():
        assert manifest["counts"][name] == len(frame), name
    assert manifest["counts"]["incidents"] == len(committed["incidents"])
    for name in OUTPUT_FILES:
        assert hashlib.sha256((COMMITTED / name).read_bytes()).hexdigest() == manifest["sha256"][name], name


def test_geojson_is_utf8_with_readable_chinese_and_unrounded_coordinates():
    text = (COMMITTED / "villages.geojson").read_text(encoding="utf-8")
    assert "范营村" in text and "\\u" not in text
    decimals = [len(n.split(".")[1]) for n in re.findall(r"\d+\.\d+", text[:20000])]
    assert max(decimals) >= 12
