"""Headless Chromium on the incidents map (/incidents/map, drawn from vector tiles): counts per
cell at county zoom, single incidents coloured by category when zoomed in, the filter form
changing what is drawn, a click that opens what is there with a link to the case, and a grid
worker who sees only their own village."""
from sqlalchemy import text

from gridmap.catalog import CATEGORY_BY_CODE
from tests.conftest import login

LAYER = "Object.values(window).find(v => v && v.gmStats && v.gmQuery)"
MAP = "Object.values(window).find(v => v instanceof L.Map)"


def wait_for_tiles(page):
    page.wait_for_function(f"() => {{ const l = {LAYER}; return l && l.gmLoadedAt !== null; }}", timeout=20000)


def reset_stats(page):
    page.evaluate(f"""() => {{ const layer = {LAYER};
        Object.keys(layer.gmStats).forEach(k => delete layer.gmStats[k]); layer.gmLoadedAt = null; }}""")


def stats(page):
    return page.evaluate(f"() => Object.assign({{}}, {LAYER}.gmStats)")


def view(page, lat, lon, zoom):
    reset_stats(page)
    page.evaluate(f"() => {MAP}.setView([{lat}, {lon}], {zoom}, {{animate: false}})")
    wait_for_tiles(page)
    return stats(page)


def click_at(page, lat, lon, keep_open=False):
    point = page.evaluate(f"() => {MAP}.latLngToContainerPoint([{lat}, {lon}])")
    box = page.locator(".folium-map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    popup = page.wait_for_selector(".leaflet-popup-content .gm-at", timeout=10000)
    text_ = popup.inner_text()
    links = [a.get_attribute("href") for a in popup.query_selector_all("a.gm-case-link")]
    if not keep_open:
        page.evaluate(f"() => {MAP}.closePopup()")
    return text_, links


def test_counts_at_low_zoom_points_at_high_zoom_filters_and_click_to_open_a_case(live_server, page, engine):
    with engine.connect() as conn:
        incident = conn.execute(text("""
            WITH dense AS (SELECT ST_SnapToGrid(geom, 0.005) AS centre, count(*) AS n
                             FROM incidents GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1)
            SELECT i.id, i.category, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
              FROM incidents AS i, dense ORDER BY i.geom <-> dense.centre, i.id LIMIT 1""")).mappings().one()
    tile_requests = []
    page.on("request", lambda r: "/tiles/incidents/" in r.url and ".pbf" in r.url and tile_requests.append(r.url))
    geojson_requests = []
    page.on("request", lambda r: "/api/incidents" in r.url and geojson_requests.append(r.url))
    login(page, live_server, "county")
    page.goto(f"{live_server}/incidents/map")
    page.wait_for_selector(".leaflet-container")
    wait_for_tiles(page)
    assert tile_requests
    assert page.locator("#gm-incident-filters select[name=category]").count() == 1
    assert "矛盾纠纷" in page.inner_text(".gm-legend")

    low = view(page, incident["lat"], incident["lon"], 10)
    assert low.get("10:incident_cells", 0) > 20
    assert "10:incidents" not in low
    answer, _ = click_at(page, incident["lat"], incident["lon"])
    assert "本格共" in answer

    high = view(page, incident["lat"], incident["lon"], 17)
    assert high.get("17:incidents", 0) > 0
    assert "17:incident_cells" not in high
    answer, links = click_at(page, incident["lat"], incident["lon"], keep_open=True)
    assert CATEGORY_BY_CODE[incident["category"]].name_zh in answer and "查看案件" in answer
    assert links[0] == f"/incidents/{incident['id']}"
    with page.expect_navigation():
        page.locator(".leaflet-popup-content a.gm-case-link").first.click()
    assert page.url.endswith(links[0]) and page.locator("#case-status").count() == 1
    page.go_back()
    page.wait_for_selector(".leaflet-container")
    wait_for_tiles(page)

    # A filter from the form: the layer asks for filtered tiles and draws fewer incidents.
    before = view(page, incident["lat"], incident["lon"], 17)["17:incidents"]
    other = next(code for code in CATEGORY_BY_CODE if code != incident["category"])
    reset_stats(page)
    page.select_option("#gm-incident-filters select[name=category]", incident["category"])
    wait_for_tiles(page)
    same = stats(page).get("17:incidents", 0)
    assert 0 < same <= before
    assert any(f"category={incident['category']}" in url for url in tile_requests)
    assert f"category={incident['category']}" in page.url            # a reload keeps the filter
    reset_stats(page)
    page.select_option("#gm-incident-filters select[name=category]", other)
    wait_for_tiles(page)
    assert stats(page).get("17:incidents", 0) < before
    answer = page.evaluate(f"() => {LAYER}.gmQuery(L.latLng({incident['lat']}, {incident['lon']}), 17)")
    assert incident["id"] not in [i["id"] for i in answer["incidents"]]
    reset_stats(page)
    page.check("#gm-incident-filters input[name=overdue]")
    wait_for_tiles(page)
    assert any("overdue=1" in url for url in tile_requests)
    assert geojson_requests == []
    assert page.gm_console_errors == []


def test_a_grid_worker_sees_only_own_village(live_server, page, engine):
    with engine.connect() as conn:
        own = conn.execute(text("SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                                "FROM villages WHERE code = '410421102204'")).one()
        other = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM incidents "
                                  "WHERE town_code <> '410421102000' ORDER BY id LIMIT 1")).one()
    login(page, live_server, "fanying")
    page.goto(f"{live_server}/incidents/map")
    page.wait_for_selector(".leaflet-container")
    wait_for_tiles(page)
    assert view(page, own[0], own[1], 12).get("12:incident_cells", 0) > 0
    elsewhere = view(page, other[0], other[1], 17)
    assert "17:incident_cells" not in elsewhere and "17:incidents" not in elsewhere
    answer = page.evaluate(f"() => {LAYER}.gmQuery(L.latLng({other[0]}, {other[1]}), 18)")
    assert answer["mode"] == "points" and answer["total"] == 0
    assert page.gm_console_errors == []


def test_the_map_in_english(live_server, page):
    login(page, live_server, "county")
    page.goto(f"{live_server}/incidents/map?lang=en")
    page.wait_for_selector("#gm-incident-filters")
    form = page.inner_text("#gm-incident-filters")
    assert "Category" in form and "Overdue only" in form
    assert "Dispute" in page.inner_text(".gm-legend")
    assert page.gm_console_errors == []
