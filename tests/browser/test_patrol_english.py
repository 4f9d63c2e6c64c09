"""The patrol maps speak the interface language: with ?lang=en the words their scripts build (the
highlight control, its count, grid tooltips, the legend, a planned stop's popup) are English."""
import re

import pytest

from tests.conftest import login

pytestmark = pytest.mark.browser

ZONE = "410421102000-Z1"
HAN = re.compile(r"[\u4e00-\u9fff]")


def test_coverage_map_labels_in_english(live_server, page):
    login(page, live_server, "naodian_police")
    page.goto(f"{live_server}/patrol/coverage?zone={ZONE}&lang=en")
    page.wait_for_function("() => Object.values(window).some(v => v && v.gmSetHours && v.gmLoaded > 0)")
    control = page.inner_text("#gm-cov-highlight")
    assert "Not patrolled for over" in control and "hours" in control and "High-risk grids only" in control
    count = page.inner_text("#gm-cov-count")
    assert re.fullmatch(r"\d+ grids \(\d+ high-risk\)", count), count
    legend = page.inner_text(".gm-legend")
    assert "Time since last patrol" in legend and "Within 6 hours" in legend and "Blue lines: patrol tracks" in legend
    assert not HAN.search(control + count + legend)
    # A grid's tooltip, built in the browser when the pointer is over it.
    page.evaluate("""() => { const layer = Object.values(window).find(v => v && v.gmSetHours);
        const first = layer.getLayers()[0]; first.openTooltip(first.getBounds().getCenter()); }""")
    tip = page.locator(".gm-cov-tip").first.inner_text()
    assert "Grid" in tip and "Time since last patrol" in tip and "Patrol visits" in tip
    assert page.gm_console_errors == []

    page.goto(f"{live_server}/patrol/coverage?zone={ZONE}&lang=zh_CN")
    page.wait_for_function("() => Object.values(window).some(v => v && v.gmSetHours && v.gmLoaded > 0)")
    assert "未巡逻超过" in page.inner_text("#gm-cov-highlight")
    assert re.fullmatch(r"\d+ 个网格（其中高风险 \d+ 个）", page.inner_text("#gm-cov-count"))


def test_route_stop_popup_in_english(live_server, page, new_routes):
    login(page, live_server, "naodian_police")
    page.goto(f"{live_server}/patrol/routes/new?lang=en")
    form = page.locator("#gm-route-form")
    form.locator("input[name=shift_start]").fill("2026-11-01T08:00")
    form.locator("input[name=shift_minutes]").fill("120")
    form.locator("input[name=stops]").fill("2")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/patrol/routes/*")
    page.wait_for_function("() => window.gmRoute && window.gmRoute.gmStops")
    page.locator('.gm-stop-number[data-order="1"]').dispatch_event("click")
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    shown = popup.inner_text()
    assert "Stop 1" in shown and "Arrive" in shown and "Risk level" in shown and "第 1 站" not in shown
    assert page.gm_console_errors == []
