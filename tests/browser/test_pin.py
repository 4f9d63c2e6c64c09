"""A grid worker pins incidents on a phone-sized screen: tap, fill, save, see the marker and its
popup; script in the description stays text; pins made offline are queued and arrive once."""
from __future__ import annotations


import pytest
from sqlalchemy import text

from tests.browser.conftest import FANYING_ENTERPRISE
from tests.conftest import login, watched_page
from tests.incident_helpers import FANYING, OTHER_TOWN_VILLAGE

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "locale": "zh-CN"}
SCRIPT = "<script>window.gmPwned = 1</script><img src=x onerror=\"window.gmPwned = 2\">"


@pytest.fixture
def phone(browser):
    page = watched_page(browser, **PHONE)
    yield page
    page.context.close()


def point_in(engine, village_code):
    with engine.connect() as conn:
        return conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
                                 "WHERE village_code = :v ORDER BY code LIMIT 1) s"), {"v": village_code}).one()


def count_with(engine, tag):
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM incidents WHERE description LIKE :t"),
                            {"t": f"%{tag}%"}).scalar_one()


def open_pin_page(page, base_url):
    login(page, base_url, "fanying")
    page.gm_console_errors = []  # login lands on the home map; only the pin page is under test here
    page.goto(f"{base_url}/incidents/new")
    page.wait_for_selector("#pin-map.leaflet-container")


def tap_at(page, lon, lat):
    page.evaluate("([lat, lon]) => window.gmPinMap.setView([lat, lon], 17, {animate: false})", [lat, lon])
    page.wait_for_load_state("networkidle")
    x, y = page.evaluate("""([lat, lon]) => {
        const p = window.gmPinMap.latLngToContainerPoint([lat, lon]);
        const r = document.getElementById('pin-map').getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }""", [lat, lon])
    page.touchscreen.tap(x, y)


def fill_form(page, description):
    page.select_option("#pin-category", "DSP")
    page.select_option("#pin-subcategory", "neighbour")
    page.select_option("#pin-severity", "3")
    page.fill("#pin-description", description)
    page.check("#pin-enterprise")


def test_worker_pins_from_a_phone_and_sees_the_marker(live_server, phone, engine, marker_text):
    page = phone
    open_pin_page(page, live_server)
    assert page.evaluate("window.innerWidth") == 390
    lon, lat = point_in(engine, FANYING)
    tap_at(page, lon, lat)
    page.wait_for_function("document.querySelector('#pin-place').textContent.includes('范营')", timeout=10000)
    assert "gm-good" in page.get_attribute("#pin-place", "class")
    description = f"{marker_text} {SCRIPT}"
    fill_form(page, description)
    page.click("#pin-save")
    popup = page.wait_for_selector(".leaflet-popup-content", timeout=10000)
    page.wait_for_function("document.querySelector('#pin-ok') && !document.querySelector('#pin-ok').hidden")
    assert "已上报" in page.inner_text("#pin-ok")
    shown = popup.inner_text()
    assert marker_text in shown and "<script>window.gmPwned = 1</script>" in shown
    assert "查看案件" in shown
    assert page.evaluate("window.gmPwned === undefined")
    assert page.locator(".leaflet-popup-content img").count() == 0
    assert count_with(engine, marker_text) == 1
    with engine.connect() as conn:
        row = conn.execute(text("SELECT i.village_code, i.severity, i.enterprise_involved, u.username FROM incidents i "
                                "JOIN users u ON u.id = i.reporter_id WHERE i.description LIKE :t"),
                           {"t": f"%{marker_text}%"}).one()
    assert tuple(row) == (FANYING, 3, True, "fanying")

    # A second pin at the same place and category shows the first as a possible duplicate.
    first_id = page.evaluate("Number(document.querySelector('.leaflet-popup-content a.gm-case-link')"
                             ".getAttribute('href').split('/').pop())")
    page.evaluate("window.gmPinMap.closePopup()")
    tap_at(page, lon + 0.0006, lat)  # about 55 m east, clear of the first marker
    page.select_option("#pin-category", "DSP")
    page.wait_for_selector("#pin-duplicates:not([hidden])", timeout=10000)
    same = page.locator("#pin-duplicate-list a.gm-same-case").first
    assert same.inner_text() == "这是同一事件"
    assert same.get_attribute("href") == f"/incidents/{first_id}"
    assert count_with(engine, marker_text) == 1

    page.evaluate("window.gmPinMap.setView([%r, %r], 17, {animate: false})" % (lat, lon))
    page.evaluate("() => { for (const l of Object.values(window.gmPinMap._layers)) {"
                  " if (l.gmIncidentId === %d) { l.openPopup(); } } }" % first_id)
    page.click(".leaflet-popup-content a.gm-case-link")
    page.wait_for_selector("#case-description")
    assert page.inner_text("#case-description") == description
    assert page.evaluate("window.gmPwned === undefined")
    assert page.locator("#case-history tbody tr").count() == 1
    assert page.gm_console_errors == []


def test_a_pin_outside_the_workers_area_is_refused_with_a_clear_message(live_server, phone, engine, marker_text):
    page = phone
    open_pin_page(page, live_server)
    lon, lat = point_in(engine, OTHER_TOWN_VILLAGE)
    tap_at(page, lon, lat)
    page.wait_for_function("document.querySelector('#pin-place').classList.contains('gm-bad')", timeout=10000)
    assert "不在您的辖区内" in page.inner_text("#pin-place")
    fill_form(page, marker_text)
    page.click("#pin-save")
    page.wait_for_function("!document.querySelector('#pin-error').hidden", timeout=10000)
    assert "辖区" in page.inner_text("#pin-error")
    assert count_with(engine, marker_text) == 0
    assert page.inner_text("#pin-queue-count") == "0"


def test_offline_pin_is_queued_and_arrives_once(live_server, phone, engine, marker_text):
    page = phone
    open_pin_page(page, live_server)
    lon, lat = point_in(engine, FANYING)
    page.context.set_offline(True)
    page.wait_for_function("navigator.onLine === false")
    tap_at(page, lon, lat)
    fill_form(page, f"{marker_text} 离线上报")
    page.click("#pin-save")
    page.wait_for_selector("#pin-queue:not([hidden])")
    assert page.inner_text("#pin-queue-count") == "1"
    assert marker_text in page.inner_text("#pin-queue-list")
    queued = page.evaluate("Object.keys(JSON.parse(localStorage.getItem('gridmap.pinQueue')))")
    assert len(queued) == 1
    assert count_with(engine, marker_text) == 0

    page.context.set_offline(False)
    page.wait_for_selector("#pin-queue[hidden]", state="attached", timeout=15000)
    assert count_with(engine, marker_text) == 1
    # The same pin sent again (a second "online", a manual resend of a stale copy) is still one incident.
    status = page.evaluate("""(id) => {
        const body = {client_id: id, lon: %r, lat: %r, category: 'DSP', description: 'resend'};
        return fetch('/api/incidents', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json',
                      'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
            body: JSON.stringify(body)}).then(r => r.status); }""" % (lon, lat), queued[0])
    assert status == 200
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_timeout(500)
    assert count_with(engine, marker_text) == 1
    assert page.locator(".leaflet-popup-content").inner_text().count(marker_text) == 1


def test_worker_names_the_enterprise_a_case_concerns(live_server, phone, engine, marker_text, fanying_enterprise):
    page = phone
    open_pin_page(page, live_server)
    assert page.locator("#pin-unit-label").is_hidden()
    lon, lat = point_in(engine, FANYING)
    tap_at(page, lon, lat)
    page.wait_for_selector("#pin-unit-label:not([hidden])", timeout=10000)
    assert FANYING_ENTERPRISE in page.inner_text("#pin-unit")
    fill_form(page, marker_text)
    page.select_option("#pin-unit", str(fanying_enterprise))
    page.click("#pin-save")
    page.wait_for_function("document.querySelector('#pin-ok') && !document.querySelector('#pin-ok').hidden")
    with engine.connect() as conn:
        incident, unit = conn.execute(text("SELECT id, unit_id FROM incidents WHERE description LIKE :t"),
                                      {"t": f"%{marker_text}%"}).one()
    assert unit == fanying_enterprise
    assert page.locator("#pin-unit-label").is_hidden()
    page.goto(f"{live_server}/incidents/{incident}")
    assert page.inner_text("#case-unit") == FANYING_ENTERPRISE
