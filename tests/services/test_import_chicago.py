"""A real, externally produced data set imported as a user setting gridmap up for another city
would: Chicago's police districts (KML) as the areas incidents are counted in, and 148,636
aggravated assaults (CSV) as incidents; per-district counts checked against the CSV's own
`district` column."""
from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest

from tests.conftest import create_scratch_database, drop_database, migrate
from tests.services.import_support import gridmap, rows

# The shared test data lies beside the repository; GRIDMAP_SHARED_DIR names another place.
CHICAGO = Path(os.environ.get("GRIDMAP_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared") \
    / "testdata" / "chicago"
DISTRICTS = CHICAGO / "chicago_police_districts.kml"
ASSAULTS = CHICAGO / "chicago_aggravated_assaults.csv.gz"
METRIC_CRS = "EPSG:26916"  # UTM 16N, for areas in Chicago
# Each district becomes a town, a village and a grid: 990000 + district (3 digits) + 000 / 001 / 001001.
TEMPLATES = {"towns": "990000###000", "villages": "990000###001", "grids": "990000###001001"}

# Found by running this import once and, independently, a geopandas point-in-polygon join of the
# CSV's points with the district polygons (the database's rule: on a shared edge the lower code
# wins): 91 points lie in no district, and 2,248 lie in a district other than the CSV's `district`.
# The CSV's coordinates are rounded to 4 decimals (±5.6 m here); every one of these points lies
# within 6 m of its CSV district, i.e. on that district's boundary at the data's precision.
OUTSIDE_EVERY_DISTRICT = 91
IN_ANOTHER_DISTRICT = 2_248
ROUNDING_M = 6.0


@pytest.fixture(scope="module")
def chicago_db():
    url = create_scratch_database("gm_chicago")
    try:
        migrate(url)
        yield url
    finally:
        drop_database(url)


def test_chicago_assaults_counted_per_police_district(chicago_db, tmp_path):
    assert DISTRICTS.exists() and ASSAULTS.exists(), f"test data missing in {CHICAGO}"
    for layer, template in TEMPLATES.items():
        extra = ["--report", tmp_path / "grid-check.geojson"] if layer == "grids" else []
        result = gridmap(chicago_db, "import", layer, DISTRICTS, "--map", "code=Name", "--map", "name=description",
                         "--code-template", template, "--dissolve", "--quiet", *extra, metric_crs=METRIC_CRS)
        assert result.exit_code == 0, result.output
        # 25 placemarks; district 31 (unincorporated areas) comes in three parts
        assert "25 rows read, 23 new" in result.stdout and "dissolved rows 3, 4, 8" in result.stdout

    result = gridmap(chicago_db, "import", "incidents", ASSAULTS, "--map", "occurred_at=date",
                     "--map", "description=loc_cat", "--set", "category=SEC", "--set", "subcategory=fight",
                     "--set", "severity=3", "--set", "status=closed", "--timezone", "America/Chicago",
                     "--skip-outside", "--quiet", metric_crs=METRIC_CRS)

    assert result.exit_code == 0, result.output
    assert f"148,636 rows read, {148_636 - OUTSIDE_EVERY_DISTRICT:,} imported" in result.stdout
    assert f"left out {OUTSIDE_EVERY_DISTRICT} rows lying in no grid" in result.stdout
    stored = {int(code[6:9]): n for code, n in rows(
        chicago_db, "SELECT grid_code, count(*) FROM incidents GROUP BY grid_code")}
    first = rows(chicago_db, "SELECT min(occurred_at), max(occurred_at) FROM incidents")[0]
    assert first[0].isoformat() == "2010-01-01T06:05:00+00:00"  # 00:05 in Chicago, UTC-6 in winter

    assaults = pd.read_csv(ASSAULTS)
    polygons = pyogrio.read_dataframe(DISTRICTS)
    polygons["polygon_district"] = polygons["Name"].astype(int)
    polygons = polygons.dissolve("polygon_district").reset_index()[["polygon_district", "geometry"]]
    points = gpd.GeoDataFrame(assaults, geometry=gpd.points_from_xy(assaults.longitude, assaults.latitude),
                              crs=4326)
    joined = gpd.sjoin(points, polygons, predicate="intersects", how="left")
    placed = joined.sort_values("polygon_district").groupby(level=0)["polygon_district"].first()
    assaults["polygon_district"] = placed.reindex(assaults.index)

    # The database's assignment agrees with an independent point-in-polygon join, district by district.
    assert stored == assaults["polygon_district"].dropna().astype(int).value_counts().to_dict()

    outside = assaults["polygon_district"].isna()
    elsewhere = ~outside & (assaults["polygon_district"] != assaults["district"])
    assert outside.sum() == OUTSIDE_EVERY_DISTRICT
    assert elsewhere.sum() == IN_ANOTHER_DISTRICT

    # …and every disagreement with the CSV is a point on its CSV district's boundary.
    differing = points[outside | elsewhere].to_crs(METRIC_CRS)
    outlines = polygons.set_index("polygon_district").to_crs(METRIC_CRS).geometry
    distance = np.array([outlines[d].distance(p) if d in outlines.index else np.inf
                         for d, p in zip(differing["district"], differing.geometry)])
    assert distance.max() < ROUNDING_M

    # The CSV's per-district counts, corrected by exactly those points, are the stored ones.
    csv_counts = assaults["district"].value_counts()
    gained = assaults.loc[elsewhere, "polygon_district"].astype(int).value_counts()
    lost = assaults.loc[outside | elsewhere, "district"].value_counts()
    for district in sorted(set(csv_counts.index) | set(stored)):
        assert stored.get(district, 0) == csv_counts.get(district, 0) + gained.get(district, 0) \
            - lost.get(district, 0), district
    assert len(stored) == 23
