"""In the browser: a town supervisor accepts a dispute and dispatches it to the mediation point,
the mediator records an agreement, the supervisor verifies and closes it, and the case page
shows the whole history; the supervisor's list is sorted by deadline."""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.models import User
from gridmap.services import incidents
from gridmap.services.accounts import create_user
from tests.browser.conftest import FANYING_ENTERPRISE
from tests.conftest import PASSWORD, login
from tests.incident_helpers import FANYING, interior_point, mediation_point_in, payload

pytestmark = pytest.mark.browser


@pytest.fixture
def dispute(engine):
    """A reported dispute in 范营村 by the demo grid worker, committed for the live server; deleted after."""
    tag = f"浏览器流程-{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        worker = session.query(User).filter_by(username="fanying").one()
        _, lon, lat = interior_point(session, FANYING)
        created = incidents.create_incident(session, worker, payload(lon, lat, description=f"{tag} 邻里纠纷",
                                                                     contact_phone="13700000000"))
        session.commit()
        incident_id = created.incident.id
    yield incident_id
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM incidents WHERE id = :i"), {"i": incident_id})


@pytest.fixture
def mediator(engine):
    """A mediator of 范营村's mediation point. Users stay (the audit log keeps their actions)."""
    username = f"mediator_{uuid.uuid4().hex[:6]}"
    with Session(engine) as session:
        point = mediation_point_in(session, FANYING)
        create_user(session, username, PASSWORD, "mediator", [str(point)], "范营村调解员")
        session.commit()
    return username, point


def act(page, action, fields=None, note=""):
    form = page.locator(f"form.gm-action[data-action={action}]")
    for name, value in (fields or {}).items():
        form.locator(f"select[name={name}]").select_option(value)
    if note:
        form.locator("textarea[name=note]").fill(note)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.wait_for_selector("#case-status")


def test_supervisor_and_mediator_work_a_case_in_the_browser(live_server, browser, dispute, mediator):
    username, point = mediator
    supervisor = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900}).new_page()
    login(supervisor, live_server, "naodian")
    errors = []  # from the incident pages (login lands on the home map, which is not under test here)
    supervisor.on("pageerror", lambda err: errors.append(str(err)))

    supervisor.goto(f"{live_server}/incidents?status=reported&village={FANYING}")
    assert supervisor.locator(f"#incident-table tr[data-id='{dispute}']").count() == 1
    supervisor.click(f"#incident-table tr[data-id='{dispute}'] a")
    supervisor.wait_for_selector("#case-status")
    assert supervisor.inner_text("#case-status") == "上报"
    assert supervisor.inner_text("#case-phone") == "13700000000"
    assert supervisor.locator("form.gm-action[data-action=close]").count() == 0

    act(supervisor, "accept", note="受理，转摆理堂调解")
    assert supervisor.inner_text("#case-status") == "受理"
    act(supervisor, "dispatch", {"target_kind": "mediation_point", "target": str(point)}, "请摆理堂调解")
    assert supervisor.inner_text("#case-status") == "派遣"
    assert "摆理堂" in supervisor.inner_text("#case-dispatched-to")

    mediator_page = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900}).new_page()
    login(mediator_page, live_server, username)
    mediator_page.on("pageerror", lambda err: errors.append(str(err)))
    mediator_page.goto(f"{live_server}/incidents/{dispute}")
    mediator_page.wait_for_selector("#case-status")
    assert mediator_page.locator("form.gm-action[data-action=accept]").count() == 0
    act(mediator_page, "record_mediation", {"outcome": "agreement"}, "双方达成协议，签订调解书")
    assert mediator_page.inner_text("#case-status") == "办结"

    supervisor.reload()
    act(supervisor, "close", note="回访核实，结案")
    assert supervisor.inner_text("#case-status") == "核查结案"
    history = supervisor.locator("#case-history tbody tr")
    assert [history.nth(i).get_attribute("data-to") for i in range(history.count())] == [
        "reported", "accepted", "dispatched", "resolved", "closed"]
    rows = supervisor.inner_text("#case-history")
    for text_shown in ("闹店镇综治中心", "范营村调解员", "范营村网格员", "受理，转摆理堂调解", "双方达成协议，签订调解书",
                       "达成协议", "回访核实，结案"):
        assert text_shown in rows, text_shown
    assert errors == []
    supervisor.context.close()
    mediator_page.context.close()


def test_refused_action_shows_the_reason(live_server, page, dispute):
    login(page, live_server, "naodian")
    page.goto(f"{live_server}/incidents/{dispute}")
    form = page.locator("form.gm-action[data-action=reject]")
    form.locator("button[type=submit]").click()  # a rejection needs a note
    page.wait_for_selector("#case-error:not([hidden])")
    assert "note" in page.inner_text("#case-error")
    assert page.inner_text("#case-status") == "上报"


def test_supervisor_list_is_sorted_by_deadline(live_server, page):
    login(page, live_server, "naodian")
    page.goto(f"{live_server}/incidents?status=accepted")
    cells = page.locator("#incident-table tbody tr td:nth-child(7)").all_inner_texts()
    deadlines = [c.split()[0] for c in cells if c.strip()]
    assert len(deadlines) > 5
    assert deadlines == sorted(deadlines, key=lambda d: datetime.fromisoformat(d))
    assert page.locator("#incident-table .gm-overdue-tag").count() > 0


def test_supervisor_names_then_clears_the_unit_of_a_case(live_server, browser, engine, dispute,
                                                          fanying_enterprise):
    page = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900}).new_page()
    login(page, live_server, "naodian")
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{live_server}/incidents/{dispute}")
    page.wait_for_selector("#case-status")
    assert page.locator("#case-unit").count() == 0

    act(page, "set_unit", {"unit_id": str(fanying_enterprise)})
    assert page.inner_text("#case-unit") == FANYING_ENTERPRISE
    assert f"涉及单位：{FANYING_ENTERPRISE}" in page.inner_text("#case-history")

    act(page, "set_unit", {"unit_id": ""})
    assert page.locator("#case-unit").count() == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT unit_id FROM incidents WHERE id = :i"), {"i": dispute}).scalar_one() is None
    assert errors == []
    page.context.close()
