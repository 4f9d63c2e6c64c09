"""The demo registries (seeded, byte-identical, loaded idempotently), the maps and the pages."""
import hashlib
import io
import shutil

from sqlalchemy import text

from gridmap.demo.registries import FILES, build_registries
from gridmap.maps.registries import build_places_map, render_bulletin_map
from gridmap.maps.render import map_parts
from gridmap.services.demo import DEMO_DIR
from gridmap.services.demo_registries import load_demo_registries
from tests.registries.conftest import counts


def _digests(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_generator_is_seeded_and_matches_the_committed_files(tmp_path):
    for name in ("villages.geojson", "grids.geojson", "towns.geojson", "manifest.json"):
        shutil.copy(DEMO_DIR / name, tmp_path / name)
    made = build_registries(tmp_path, seed=2023)
    assert made["places"] > 500 and made["inspections"] > made["places"] and made["staff"] > 1000
    assert _digests(tmp_path) == _digests(DEMO_DIR)
    build_registries(tmp_path, seed=7)
    assert _digests(tmp_path)["places.geojson"] != _digests(DEMO_DIR)["places.geojson"]


def test_demo_load_is_idempotent_and_complete(db_session):
    tables = ("places", "inspections", "village_staff", "legal_activities")
    before = counts(db_session, *tables)
    loaded = load_demo_registries(db_session, DEMO_DIR)
    assert counts(db_session, *tables) == before == (loaded["places"], loaded["inspections"], loaded["village_staff"],
                                                     loaded["legal_activities"])
    # Every police officer and lawyer of the demo serves villages; some villages are left without, on purpose.
    missing = db_session.execute(text(
        "SELECT count(*) FROM villages v WHERE NOT EXISTS (SELECT 1 FROM village_staff s "
        "WHERE s.village_code = v.code AND s.role = 'police')")).scalar_one()
    assert 0 < missing < 40


def test_places_map_loads_by_url_with_local_assets_and_escapes():
    county = {"type": "FeatureCollection", "features": []}
    m = build_places_map(bounds=(113.0, 33.8, 113.2, 34.0), county=county, towns=county,
                         places_url="/api/places?kind=<x>", hazards_url="/api/inspections/incidents",
                         place_link="/registries/places/__ID__", case_link="/incidents/__ID__")
    parts = map_parts(m)
    page = str(parts.header) + str(parts.html) + str(parts.script)
    assert "cdn" not in page.lower() and "/vendor/leaflet/dist/leaflet.js" in page
    assert "gmEscape(" in page and "window.gmLayers" in page
    assert "/api/places?kind=\\u003cx\\u003e" in page and "<x>" not in page  # JSON in a script is made inert
    assert "超期未检" in page


def test_bulletin_map_png():
    import geopandas as gpd
    from shapely.geometry import Point, box

    villages = gpd.GeoDataFrame({"three_zero": [True, False]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)],
                                crs=4326)
    towns = gpd.GeoDataFrame(geometry=[box(0, 0, 2, 1)], crs=4326)
    activities = gpd.GeoDataFrame(geometry=[Point(0.5, 0.5)], crs=4326)
    png = render_bulletin_map(villages, towns, activities, [(1.0, 0.5, "1")], width_px=400)
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == 400 and 150 < image.height < 250   # two square degrees at the equator: 2:1
    colours = {colour for _, colour in image.getcolors(maxcolors=100_000)}
    assert (0xa6, 0xd9, 0x6a) in colours and (0xf4, 0x6d, 0x43) in colours   # met and not met


def test_pages_render_for_a_county_officer(client, users):
    with client.session_transaction() as session:
        session["_user_id"] = str(users["county_officer"][0].id)
        session["_fresh"] = True
    for url, expected in (("/registries/", "重点场所巡检"), ("/registries/places", "超期和即将到期的场所"),
                          ("/registries/staff", "缺驻村民警或法律顾问的村（社区）"),
                          ("/registries/activities", "各村（社区）活动统计"),
                          ("/registries/bulletins?period=2026-09&town=410421102000", "闹店镇定期通报"),
                          ("/registries/reviews", "发起评查")):
        response = client.get(url)
        assert response.status_code == 200, url
        assert expected in response.get_data(as_text=True), url
    assert client.get("/registries/places/99999999").status_code == 404
    assert client.get("/registries/bulletins?period=1999-13").status_code == 400


def test_pages_refuse_roles(client, users):
    with client.session_transaction() as session:
        session["_user_id"] = str(users["mediator"][0].id)
        session["_fresh"] = True
    assert client.get("/registries/places").status_code == 403
    assert client.get("/registries/reviews").status_code == 403


def test_town_supervisor_bulletin_page_offers_only_the_town(client, users):
    with client.session_transaction() as session:
        session["_user_id"] = str(users["town_supervisor"][0].id)
        session["_fresh"] = True
    html = client.get("/registries/bulletins").get_data(as_text=True)
    assert '<option value="">全县</option>' not in html and 'value="410421102000"' in html
    assert 'value="410421100000"' not in html


def test_registration_forms_take_coordinates_from_a_map_click(client, users):
    with client.session_transaction() as session:
        session["_user_id"] = str(users["county_officer"][0].id)
        session["_fresh"] = True
    for url, form_id in (("/registries/places", "place-form"), ("/registries/activities", "activity-form")):
        html = client.get(url).get_data(as_text=True)
        assert f'id="{form_id}"' in html and 'name="lon"' in html and 'name="lat"' in html, url
        assert f'document.getElementById("{form_id}")' in html and "e.latlng.lng.toFixed(6)" in html, url
