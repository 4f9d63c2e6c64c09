"""A user logs in, the county map draws with its grid layer, and the console stays clean."""
from tests.conftest import login


def test_login_and_see_grids_drawn(live_server, page):
    login(page, live_server, "county")
    assert page.url.rstrip("/") == live_server
    page.wait_for_selector(".leaflet-container")
    assert page.locator(".leaflet-control-layers").count() == 1
    assert "演示数据（合成）" in page.inner_text("nav")
    # Zoom in to where grids are fetched for the view and wait until they are on the map.
    page.evaluate("""() => { const map = Object.values(window).find(v => v instanceof L.Map);
                             map.setView([33.8545, 113.2166], 13); }""")
    page.wait_for_function("""() => Object.values(window).some(v => v && v.gmLoaded > 0 &&
                              v.getLayers && v.getLayers().length > 0)""", timeout=15000)
    assert page.locator("path.leaflet-interactive").count() > 20
    assert page.gm_console_errors == []


def test_vendor_assets_and_no_external_requests(live_server, page):
    external = []
    page.on("request", lambda r: r.url.startswith(live_server) or r.url.startswith("data:")
            or external.append(r.url))
    login(page, live_server, "leader")
    page.wait_for_selector(".leaflet-container")
    page.wait_for_load_state("networkidle")
    assert external == []
    assert page.gm_console_errors == []
