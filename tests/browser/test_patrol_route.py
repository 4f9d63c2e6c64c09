"""A police officer of the demo county plans the next shift's route in headless Chromium: the stops
are drawn as numbered markers 1..n in visiting order along the path, and the GPX link downloads
the same stops. The coverage map outlines the grids not visited in N hours as N changes."""
import gpxpy
import pytest

from tests.conftest import login

ZONE = "410421102000-Z1"


def test_plan_a_route_and_see_the_numbered_stops(live_server, page, new_routes):
    login(page, live_server, "naodian_police")
    page.click("nav >> text=巡逻")
    page.click("#gm-patrol-nav >> text=规划巡逻路线")
    form = page.locator("#gm-route-form")
    assert form.locator("select[name=zone]").input_value() == ZONE
    assert "未加载道路网络" in page.inner_text("#gm-travel-mode")
    form.locator("input[name=shift_start]").fill("2026-11-01T08:00")
    form.locator("input[name=shift_minutes]").fill("240")
    form.locator("input[name=stops]").fill("5")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/patrol/routes/*")
    page.wait_for_function("() => window.gmRoute && window.gmRoute.gmStops")

    numbers = page.locator(".gm-stop-number").all_inner_texts()
    n = len(numbers)
    assert 1 <= n <= 5 and numbers == [str(i) for i in range(1, n + 1)]
    route_id = page.url.rstrip("/").rsplit("/", 1)[1]
    route = page.request.get(f"{live_server}/api/patrol/routes/{route_id}").json()
    drawn = page.evaluate("() => window.gmRoute.gmStops.map(m => [m.gmOrder, m.getLatLng().lat, m.getLatLng().lng])")
    assert [d[0] for d in drawn] == [s["order"] for s in route["stops"]]
    for (_, lat, lon), stop in zip(drawn, route["stops"]):
        assert (lat, lon) == pytest.approx((stop["lat"], stop["lon"]), abs=1e-7)
    # The path passes the stops in their order: each stop is a later vertex of the line than the one before.
    path = page.evaluate("() => window.gmRoute.gmPath.getLatLngs().map(p => [p.lat, p.lng])")
    positions = [min(range(len(path)), key=lambda i: (path[i][0] - lat) ** 2 + (path[i][1] - lon) ** 2)
                 for _, lat, lon in drawn]
    assert positions == sorted(positions) and len(set(positions)) == n
    rows = page.locator("#gm-route-stops tbody tr")
    assert rows.count() == n and rows.first.locator("td").first.inner_text() == "1"
    assert page.get_attribute("#gm-travel-mode", "data-mode") == "straight_line"

    page.locator('.gm-stop-number[data-order="1"]').dispatch_event("click")
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "第 1 站" in popup.inner_text() and route["stops"][0]["arrival"][11:16] in popup.inner_text()

    href = page.get_attribute("#gm-gpx-link", "href")
    download = page.request.get(f"{live_server}{href}")
    assert download.ok and download.headers["content-type"].startswith("application/gpx+xml")
    gpx = gpxpy.parse(download.text())
    assert [w.name for w in gpx.waypoints] == [f"{s['order']:02d} {s['grid_code']}" for s in route["stops"]]
    assert page.gm_console_errors == []


def test_coverage_highlight_follows_the_hours(live_server, page):
    login(page, live_server, "naodian_police")
    page.goto(f"{live_server}/patrol/coverage?zone={ZONE}")
    page.wait_for_function("() => Object.values(window).some(v => v && v.gmSetHours && v.gmLoaded > 0)")
    page.wait_for_function("() => Object.values(window).some(v => v && v.gmLoaded > 0 && v.getLayers && "
                           "!v.gmSetHours && !v.gmSetMeasure)", timeout=15000)  # the tracks
    stale = "() => Object.values(window).find(v => v && v.gmSetHours).gmStale.length"
    hours_box = page.locator("#gm-cov-hours")
    hours_box.fill("1")
    few_hours = page.evaluate(stale)
    hours_box.fill("2000")
    many_hours = page.evaluate(stale)
    assert few_hours > many_hours >= 0
    assert page.inner_text("#gm-cov-count").startswith(f"{many_hours} 个网格")
    page.uncheck("#gm-cov-high")
    assert page.evaluate(stale) >= many_hours
    assert page.locator("#gm-stale tbody tr").count() >= 1
    assert page.gm_console_errors == []
