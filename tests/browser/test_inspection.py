"""A county officer records an inspection with a hazard in the browser and sees the incident it
opened on the place's map and on the places map, linked back to the inspection."""
import re

import pytest
from sqlalchemy import text

from tests.conftest import login

FANYING = "410421102204"


@pytest.fixture
def demo_place(engine):
    """A delivery outlet of the demo in 范营村; the inspection and incident the test makes are removed after."""
    with engine.connect() as conn:
        place_id = conn.execute(text("SELECT id FROM places WHERE village_code = :v AND active "
                                     "ORDER BY (kind = 'delivery') DESC, id LIMIT 1"), {"v": FANYING}).scalar_one()
        known = set(conn.execute(text("SELECT id FROM inspections WHERE place_id = :p"), {"p": place_id}).scalars())
    yield place_id
    with engine.begin() as conn:
        new = [i for i in conn.execute(text("SELECT id FROM inspections WHERE place_id = :p"),
                                       {"p": place_id}).scalars() if i not in known]
        incidents = [i for i in conn.execute(text("SELECT incident_id FROM inspections WHERE id = ANY(:ids)"),
                                             {"ids": new}).scalars() if i]
        conn.execute(text("DELETE FROM inspections WHERE id = ANY(:ids)"), {"ids": new})
        conn.execute(text("DELETE FROM incidents WHERE id = ANY(:ids)"), {"ids": incidents})


def test_record_an_inspection_with_a_hazard_and_see_the_incident_on_the_map(live_server, page, demo_place):
    login(page, live_server, "county")
    page.gm_console_errors.clear()  # this test answers for the registry pages, not the home map
    page.goto(f"{live_server}/registries/places/{demo_place}")
    page.wait_for_function("() => window.gmLayers && window.gmLayers.hazards")
    page.wait_for_load_state("networkidle")
    before = page.evaluate("() => window.gmLayers.hazards.getLayers().map(l => l.gmId)")

    form = page.locator("#inspection-form")
    boxes = form.locator("input[type=checkbox][name^=check_]")
    assert boxes.count() >= 3
    boxes.nth(boxes.count() - 1).uncheck()
    form.locator("#hazard-found").check()
    form.locator("textarea[name=hazard_description]").fill("<b>安检机</b>故障，包裹未过机")
    form.locator("#open-incident").check()
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")

    flash = page.inner_text(".gm-flash")
    match = re.search(r"生成隐患事件 #(\d+)", flash)
    assert match, flash
    incident_id = int(match.group(1))
    page.wait_for_function(f"() => window.gmLayers.hazards.getLayers().some(l => l.gmId === {incident_id})",
                           timeout=15000)
    assert incident_id not in before
    # Open the new incident's popup: it names the category, the place and links to the case page.
    popup = page.evaluate(f"""() => {{
        const layer = window.gmLayers.hazards.getLayers().find(l => l.gmId === {incident_id});
        layer.openPopup();
        return document.querySelector('.leaflet-popup-content').innerHTML; }}""")
    assert "寄递物流" in popup or "消防隐患" in popup
    assert f"/incidents/{incident_id}" in popup
    # The inspection's row links to the incident; the typed markup stays text.
    row = page.locator("#inspections tbody tr").first
    assert row.locator("a.gm-incident-link").inner_text() == f"#{incident_id}"
    assert "<b>安检机</b>故障" in row.inner_text()

    # The county's places map shows it too.
    page.goto(f"{live_server}/registries/places")
    page.wait_for_function(f"() => window.gmLayers && window.gmLayers.hazards && "
                           f"window.gmLayers.hazards.getLayers().some(l => l.gmId === {incident_id})", timeout=15000)
    page.wait_for_function("() => window.gmLayers.places.gmLoaded > 100", timeout=15000)
    assert page.gm_console_errors == []
