"""The pin page opens without a network after one online visit (its service worker keeps the page
and its files), takes a pin offline, and the pin arrives exactly once when the network returns.

The server here records every request it gets, so the test knows the offline reload was answered
by the service worker and not by the server."""
from __future__ import annotations

import json
import re
import threading

import pytest
from sqlalchemy import text

from tests.browser.test_pin import PHONE, count_with, fill_form, point_in, tap_at
from tests.conftest import free_port, login, watched_page
from tests.incident_helpers import FANYING

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def recording_server(database):
    """The app on a real port, with every request it answers ("METHOD /path") in ``.paths``."""
    from flask import request
    from werkzeug.serving import make_server

    from gridmap import create_app

    app = create_app({"SECRET_KEY": "offline-test"})
    paths: list[str] = []
    app.before_request(lambda: paths.append(f"{request.method} {request.path}"))
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.paths = paths
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()


@pytest.fixture
def phone(browser):
    page = watched_page(browser, **PHONE, service_workers="allow")
    yield page
    page.context.close()


KEPT = """async () => {
    const names = (await caches.keys()).filter(n => n.startsWith('gridmap-pin-'));
    const keys = [];
    for (const name of names) {
        for (const r of await (await caches.open(name)).keys()) { keys.push(new URL(r.url).pathname); }
    }
    return keys;
}"""


def wait_until_kept(page, paths, timeout_s=20):
    for _ in range(int(timeout_s * 4)):
        kept = set(page.evaluate(KEPT))
        if set(paths) <= kept:
            return kept
        page.wait_for_timeout(250)
    raise AssertionError(f"not kept by the service worker: {sorted(set(paths) - kept)}")


def test_pin_page_opens_offline_and_its_pin_arrives_once(recording_server, phone, engine, marker_text):
    page, base = phone, recording_server.url
    login(page, base, "fanying")
    page.goto(f"{base}/incidents/new")
    page.wait_for_selector("#pin-map.leaflet-container")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")

    # Everything the page loaded from this server is kept, and so are the marker images it loads later.
    loaded = page.evaluate("""() => performance.getEntriesByType('resource').map(e => new URL(e.name))
        .filter(u => u.origin === location.origin && /^\\/(static|vendor)\\//.test(u.pathname)).map(u => u.pathname)""")
    assert "/vendor/leaflet/dist/leaflet.js" in loaded and "/static/incidents/pin.js" in loaded
    wait_until_kept(page, loaded + ["/incidents/new", "/vendor/leaflet/dist/images/marker-icon.png"])

    page.context.set_offline(True)
    page.wait_for_function("navigator.onLine === false")
    answered_before = len(recording_server.paths)
    page.reload()
    page.wait_for_selector("#pin-map.leaflet-container")
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    assert recording_server.paths[answered_before:] == []  # the page, scripts and styles came from the worker
    assert page.evaluate("typeof L === 'object' && typeof window.gmPinMap === 'object'")

    lon, lat = point_in(engine, FANYING)
    tap_at(page, lon, lat)
    page.wait_for_function("document.querySelector('#pin-place').textContent.length > 0")
    assert page.locator(".leaflet-marker-icon").count() >= 1
    assert page.evaluate("document.querySelector('.leaflet-marker-icon').naturalWidth") > 0  # the image, offline
    fill_form(page, f"{marker_text} 离线打开后上报")
    page.click("#pin-save")
    page.wait_for_selector("#pin-queue:not([hidden])")
    queued = page.evaluate("Object.keys(JSON.parse(localStorage.getItem('gridmap.pinQueue')))")
    assert len(queued) == 1 and count_with(engine, marker_text) == 0
    assert recording_server.paths[answered_before:] == []

    page.context.set_offline(False)
    page.wait_for_selector("#pin-queue[hidden]", state="attached", timeout=15000)
    assert count_with(engine, marker_text) == 1
    with engine.connect() as conn:
        client_id = conn.execute(text("SELECT client_id::text FROM incidents WHERE description LIKE :t"),
                                 {"t": f"%{marker_text}%"}).scalar_one()
    assert client_id == queued[0]
    assert recording_server.paths[answered_before:].count("POST /api/incidents") == 1
    # Another "online" (flaky networks fire several) sends nothing twice.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_timeout(500)
    assert count_with(engine, marker_text) == 1
    assert page.gm_console_errors == []


def test_the_worker_lists_a_shell_the_server_serves(client):
    response = client.get("/pin-sw.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    shell = json.loads(re.search(r"self\.GM_PIN_SHELL = (.*);\n", body).group(1))
    version = re.search(r'self\.GM_PIN_VERSION = "([0-9a-f]{16})";', body).group(1)
    assert shell["page"] == "/incidents/new"
    for path in shell["assets"]:
        with client.get(path) as asset:
            assert asset.status_code == 200, path
    assert client.get("/pin-sw.js").get_data(as_text=True) == body  # stable while the files are
    assert version in body and "addEventListener('fetch'" in body
