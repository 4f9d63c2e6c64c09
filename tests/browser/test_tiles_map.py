"""Headless Chromium on the incidents map drawn from vector tiles: counts per cell at county
zoom, single incidents (coloured by category) when zoomed in, and a click that says what is
there."""
from sqlalchemy import text

from gridmap.catalog import CATEGORY_BY_CODE
from tests.conftest import login

LAYER = "Object.values(window).find(v => v && v.gmStats && v.gmQuery)"
MAP = "Object.values(window).find(v => v instanceof L.Map)"


def wait_for_tiles(page):
    page.wait_for_function(f"() => {{ const l = {LAYER}; return l && l.gmLoadedAt !== null; }}", timeout=20000)


def view(page, lat, lon, zoom):
    page.evaluate(f"""() => {{ const layer = {LAYER};
        Object.keys(layer.gmStats).forEach(k => delete layer.gmStats[k]);
        layer.gmLoadedAt = null;
        {MAP}.setView([{lat}, {lon}], {zoom}, {{animate: false}}); }}""")
    wait_for_tiles(page)
    return page.evaluate(f"() => Object.assign({{}}, {LAYER}.gmStats)")


def click_at(page, lat, lon):
    point = page.evaluate(f"() => {MAP}.latLngToContainerPoint([{lat}, {lon}])")
    box = page.locator(".folium-map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_selector(".leaflet-popup-content .gm-at", timeout=10000)
    text_ = page.inner_text(".leaflet-popup-content")
    page.evaluate(f"() => {MAP}.closePopup()")
    return text_


def test_cells_at_low_zoom_points_at_high_zoom_and_click_to_query(live_server, page, engine):
    with engine.connect() as conn:
        incident = conn.execute(text("""
            WITH dense AS (SELECT ST_SnapToGrid(geom, 0.005) AS centre, count(*) AS n
                             FROM incidents GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1)
            SELECT i.id, i.category, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
              FROM incidents AS i, dense ORDER BY i.geom <-> dense.centre, i.id LIMIT 1""")).mappings().one()
    tile_requests = []
    page.on("request", lambda r: "/tiles/incidents/" in r.url and ".pbf" in r.url and tile_requests.append(r.url))
    login(page, live_server, "county")
    page.goto(f"{live_server}/map/incidents-tiles")
    page.wait_for_selector(".leaflet-container")
    wait_for_tiles(page)
    assert tile_requests

    low = view(page, incident["lat"], incident["lon"], 10)
    assert low.get("10:incident_cells", 0) > 20
    assert "10:incidents" not in low
    answer = click_at(page, incident["lat"], incident["lon"])
    assert "本格共" in answer

    high = view(page, incident["lat"], incident["lon"], 17)
    assert high.get("17:incidents", 0) > 0
    assert "17:incident_cells" not in high
    answer = click_at(page, incident["lat"], incident["lon"])
    assert CATEGORY_BY_CODE[incident["category"]].name_zh in answer

    # Filters change the tiles the layer asks for.
    page.evaluate(f"() => {{ {LAYER}.gmLoadedAt = null; {LAYER}.gmSetFilters({{category: 'DSP'}}); }}")
    wait_for_tiles(page)
    assert any("category=DSP" in url for url in tile_requests)
    assert page.gm_console_errors == []


def test_a_grid_worker_sees_only_own_village_on_the_tiles_map(live_server, page, engine):
    with engine.connect() as conn:
        own = conn.execute(text("SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                                "FROM villages WHERE code = '410421102204'")).one()
        other = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM incidents "
                                  "WHERE town_code <> '410421102000' ORDER BY id LIMIT 1")).one()
    login(page, live_server, "fanying")
    page.goto(f"{live_server}/map/incidents-tiles")
    page.wait_for_selector(".leaflet-container")
    wait_for_tiles(page)
    assert view(page, own[0], own[1], 12).get("12:incident_cells", 0) > 0
    elsewhere = view(page, other[0], other[1], 17)
    assert "17:incident_cells" not in elsewhere and "17:incidents" not in elsewhere
    assert page.gm_console_errors == []
