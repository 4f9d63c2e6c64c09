"""The case workflow: allowed and refused actions by role and status, deadlines from the category
table, overdue, mediation outcomes, and a history row plus an audit row for every action."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from gridmap.models import Incident
from gridmap.services import incidents, workflow
from gridmap.errors import Forbidden, NotFound, ValidationError
from tests.incident_helpers import (FANYING, MATRIX, TRANSITION_FIELDS, cheap_password_hashing,
                                    interior_point, make_people, payload, row_counts)

SETTINGS = incidents.IncidentSettings()


def report(db_session, user, lon, lat) -> Incident:
    """A new case as the ORM object the workflow changes (the report returns its stored row)."""
    return db_session.get(Incident, incidents.create_incident(db_session, user, payload(lon, lat), SETTINGS).incident.id)


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def people(make_user, db_session):
    made = make_people(make_user, db_session, "wf")
    return {name: value if name == "point" else value[0] for name, value in made.items()}


@pytest.fixture
def case(db_session, people):
    _, lon, lat = interior_point(db_session, FANYING)
    return report(db_session, people["worker"], lon, lat)


def act(db_session, user, case, action, **fields):
    return workflow.perform(db_session, user, case.id, {"action": action, **fields})


def test_full_path_records_every_step(db_session, people, case):
    sup = people["supervisor"]
    db_session.execute(text("UPDATE incident_categories SET deadline_days = 9 WHERE code = 'DSP'"))
    before = row_counts(db_session)
    act(db_session, sup, case, "accept", note="受理")
    assert case.status == "accepted"
    assert case.deadline_at - case.accepted_at == timedelta(days=9)
    act(db_session, sup, case, "dispatch", target_kind="village", note="交村委会")
    assert (case.dispatched_to_kind, case.dispatched_to) == ("village", FANYING)
    act(db_session, sup, case, "start")
    act(db_session, sup, case, "resolve", resolution_level="village", note="已调解")
    assert case.resolved_at is not None and case.resolution_level == "village"
    act(db_session, sup, case, "close")
    assert case.closed_at is not None
    act(db_session, people["worker"], case, "follow_up", satisfaction=5, note="群众满意")
    assert (case.status, case.satisfaction) == ("followed_up", 5)
    after = row_counts(db_session)
    assert after == (before[0], before[1] + 6, before[2] + 6)
    history = incidents.incident_history(db_session, case.id)
    assert [h["to_status"] for h in history] == ["reported", "accepted", "dispatched", "in_progress", "resolved",
                                                 "closed", "followed_up"]
    assert history[1]["actor"] == "wf_supervisor" and history[1]["note"] == "受理"
    assert history[-1]["actor"] == "wf_worker"
    actions = db_session.execute(text("SELECT action FROM audit_log WHERE entity = 'incident' AND entity_id = :i "
                                      "ORDER BY id"), {"i": str(case.id)}).scalars().all()
    assert actions == ["incident.create", "incident.accept", "incident.dispatch", "incident.start",
                       "incident.resolve", "incident.close", "incident.follow_up"]


def put_in_status(db_session, case, status):
    db_session.execute(text("UPDATE incidents SET status = :s WHERE id = :i"), {"s": status, "i": case.id})
    db_session.expire(case)


@pytest.mark.parametrize("role, action, status, outcome", MATRIX)
def test_who_may_do_what(db_session, people, case, role, action, status, outcome):
    put_in_status(db_session, case, status)
    fields = dict(TRANSITION_FIELDS.get(action, {}))
    if action == "mark_duplicate":
        _, lon, lat = interior_point(db_session, FANYING)
        fields["duplicate_of"] = incidents.create_incident(db_session, people["worker"], payload(lon, lat),
                                                           SETTINGS).incident.id
    before = row_counts(db_session)
    if outcome == "ok":
        event = act(db_session, people[role], case, action, **fields)
        assert event.from_status == status
        assert row_counts(db_session) == (before[0], before[1] + 1, before[2] + 1)
    else:
        with pytest.raises(outcome):
            act(db_session, people[role], case, action, **fields)
        assert row_counts(db_session) == before
        db_session.expire(case)
        assert case.status == status


def test_allowed_actions_follow_role_and_status(db_session, people, case):
    names = lambda user: [a.name for a in workflow.allowed_actions(user, case)]  # noqa: E731
    assert names(people["supervisor"]) == ["accept", "reject", "mark_duplicate", "note", "set_unit"]
    assert names(people["worker"]) == ["note"]
    assert names(people["viewer"]) == []
    assert names(people["other_supervisor"]) == []


@pytest.mark.parametrize("action, fields, field", [
    ("resolve", {}, "resolution_level"), ("resolve", {"resolution_level": "province"}, "resolution_level"),
    ("follow_up", {"satisfaction": 6}, "satisfaction"), ("follow_up", {"satisfaction": 0}, "satisfaction"),
    ("follow_up", {}, "satisfaction"), ("reject", {}, "note"), ("reject", {"note": "x" * 2001}, "note"),
    ("dispatch", {}, "target_kind"), ("dispatch", {"target_kind": "court"}, "target_kind"),
    ("dispatch", {"target_kind": "police_station", "target": "nowhere"}, "target"),
    ("dispatch", {"target_kind": "village", "target": "410421100003"}, "target"),  # a village of another town
    ("dispatch", {"target_kind": "mediation_point", "target": "abc"}, "target"),
    ("mark_duplicate", {}, "duplicate_of"), ("accept", {"legal_class": "felony"}, "legal_class"),
    ("launch", {}, "action"),
])
def test_bad_transition_fields(db_session, people, case, action, fields, field):
    status = {"resolve": "in_progress", "follow_up": "closed", "dispatch": "accepted"}.get(action, "reported")
    put_in_status(db_session, case, status)
    before = row_counts(db_session)
    with pytest.raises(ValidationError) as info:
        act(db_session, people["supervisor"], case, action, **fields)
    assert info.value.field == field
    assert row_counts(db_session) == before


def test_duplicate_points_at_the_original(db_session, people, case):
    _, lon, lat = interior_point(db_session, FANYING)
    original = report(db_session, people["worker"], lon, lat)
    act(db_session, people["supervisor"], original, "mark_duplicate", duplicate_of=case.id)
    act(db_session, people["supervisor"], case, "accept")
    third = report(db_session, people["worker"], lon, lat)
    act(db_session, people["supervisor"], third, "mark_duplicate", duplicate_of=original.id)
    assert third.duplicate_of == case.id  # followed the chain to the case itself
    fourth = report(db_session, people["worker"], lon, lat)
    with pytest.raises(ValidationError) as info:
        act(db_session, people["supervisor"], fourth, "mark_duplicate", duplicate_of=fourth.id)
    assert info.value.field == "duplicate_of"


def test_mediation_agreement_resolves_the_case(db_session, people, case):
    sup, mediator = people["supervisor"], people["mediator"]
    act(db_session, sup, case, "accept")
    with pytest.raises(NotFound):  # not yet referred: the mediator does not see it
        act(db_session, mediator, case, "record_mediation", outcome="agreement")
    act(db_session, sup, case, "dispatch", target_kind="mediation_point", target=str(people["point"]))
    assert case.mediation_point_id == people["point"]
    with pytest.raises(NotFound):
        act(db_session, people["other_mediator"], case, "record_mediation", outcome="agreement")
    assert [a.name for a in workflow.allowed_actions(mediator, case)] == ["start", "record_mediation", "note"]
    act(db_session, mediator, case, "start")
    event = act(db_session, mediator, case, "record_mediation", outcome="agreement", note="双方签字")
    assert (case.status, case.mediation_outcome, case.resolution_level) == ("resolved", "agreement", "village")
    assert event.data["outcome"] == "agreement"
    with pytest.raises(Forbidden):  # the outcome is recorded; the mediator's part is done
        act(db_session, mediator, case, "record_mediation", outcome="failed")
    act(db_session, sup, case, "close")
    assert case.status == "closed"


@pytest.mark.parametrize("outcome", ["failed", "transferred"])
def test_failed_or_transferred_mediation_goes_back_to_the_town(db_session, people, case, outcome):
    sup = people["supervisor"]
    act(db_session, sup, case, "accept")
    act(db_session, sup, case, "dispatch", target_kind="mediation_point", target=str(people["point"]))
    act(db_session, people["mediator"], case, "record_mediation", outcome=outcome, note="调解不成")
    assert (case.status, case.mediation_outcome, case.dispatched_to_kind) == ("accepted", outcome, None)
    assert "dispatch" in [a.name for a in workflow.allowed_actions(sup, case)]
    act(db_session, sup, case, "dispatch", target_kind="police_station",
        target=db_session.execute(text("SELECT code FROM police_stations ORDER BY code LIMIT 1")).scalar_one())
    assert case.status == "dispatched"
    assert workflow.allowed_actions(people["mediator"], case) == [workflow.ACTIONS["note"]]


def test_overdue_open_cases_and_resolved_in_time(db_session, people, case):
    sup = people["supervisor"]
    long_ago = datetime.now(timezone.utc) - timedelta(days=40)
    workflow.perform(db_session, sup, case.id, {"action": "accept"}, now=long_ago)
    assert case.deadline_at == long_ago + timedelta(days=15)
    filters = incidents.IncidentFilters(overdue=True, village=FANYING)
    listed = incidents.list_incidents(db_session, sup, filters, page_size=5000)
    assert case.id in [f["id"] for f in listed["features"]]
    workflow.perform(db_session, sup, case.id, {"action": "dispatch", "target_kind": "town_office"}, now=long_ago)
    workflow.perform(db_session, sup, case.id, {"action": "resolve", "resolution_level": "town"},
                     now=long_ago + timedelta(days=3))
    listed = incidents.list_incidents(db_session, sup, filters, page_size=5000)
    assert case.id not in [f["id"] for f in listed["features"]]


def test_case_detail_lists_actions_and_history(db_session, people, case):
    detail = workflow.case_detail(db_session, people["supervisor"], case.id)
    props = detail["properties"]
    assert [a["name"] for a in props["allowed_actions"]] == ["accept", "reject", "mark_duplicate", "note", "set_unit"]
    assert props["history"][0]["to_status"] == "reported"
    assert props["contact_phone"] == "13800000000"
    targets = workflow.dispatch_targets(db_session, case)
    assert FANYING in [t["value"] for t in targets["village"]]
    assert targets["mediation_point"][0]["value"] == str(people["point"])
