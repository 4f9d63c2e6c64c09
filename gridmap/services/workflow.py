"""The case workflow (after GB/T 30428): which action each role may take from each status.

reported → accepted | rejected | duplicate → dispatched → in_progress → resolved (with a
resolution level) → closed → followed_up (satisfaction 1–5). A dispute dispatched to a mediation
point comes back with the mediator's outcome: agreement resolves it; failed or transferred hands
it back to the town for dispatch elsewhere. Every action writes an incident_events row (who,
when, note) and an audit_log row, in the caller's transaction.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridmap.catalog import (DISPATCH_KIND_ZH, DISPATCH_KINDS, LEGAL_CLASSES, MEDIATION_KIND_ZH,
                             MEDIATION_OUTCOME_ZH, MEDIATION_OUTCOMES, RESOLUTION_LEVEL_ZH, RESOLUTION_LEVELS,
                             STATUSES)
from gridmap.errors import Conflict, Forbidden, NotFound, ValidationError
from gridmap.models import (Incident, IncidentCategory, IncidentEvent, MediationPoint, PoliceStation, Town,
                            User, Village)
from gridmap.services.accounts import audit
from gridmap.services.incidents import (get_visible_incident, incident_detail, mediation_point_scopes, utcnow,
                                        village_units)

SUPERVISING = ("town_supervisor", "county_officer", "admin")
NOTE_MAX = 2000


@dataclass(frozen=True)
class Action:
    name: str
    label_zh: str
    label_en: str
    from_statuses: tuple[str, ...]
    # None: the status stays (a note) or depends on what is recorded (a mediation outcome).
    to_status: str | None
    roles: tuple[str, ...]
    # Request fields the action needs besides the note.
    needs: tuple[str, ...] = ()
    note_required: bool = False


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("accept", "受理", "Accept", ("reported",), "accepted", SUPERVISING, ("legal_class?",)),
    Action("reject", "不予受理", "Reject", ("reported",), "rejected", SUPERVISING, note_required=True),
    Action("mark_duplicate", "标记重复", "Mark duplicate", ("reported",), "duplicate", SUPERVISING,
           ("duplicate_of",)),
    Action("dispatch", "派遣", "Dispatch", ("accepted", "dispatched"), "dispatched", SUPERVISING,
           ("target_kind", "target?")),
    Action("start", "开始处置", "Start work", ("dispatched",), "in_progress", SUPERVISING + ("mediator",)),
    Action("record_mediation", "记录调解结果", "Record mediation outcome", ("dispatched", "in_progress"), None,
           ("mediator", "county_officer", "admin"), ("outcome", "resolution_level?")),
    Action("resolve", "办结", "Resolve", ("dispatched", "in_progress"), "resolved", SUPERVISING,
           ("resolution_level",)),
    Action("reopen", "退回重办", "Send back", ("resolved",), "in_progress", SUPERVISING, note_required=True),
    Action("close", "核查结案", "Verify and close", ("resolved",), "closed", SUPERVISING),
    Action("follow_up", "回访", "Follow up", ("closed",), "followed_up", SUPERVISING + ("grid_worker",),
           ("satisfaction",)),
    Action("note", "添加跟进记录", "Add a note", STATUSES, None,
           ("grid_worker", "mediator") + SUPERVISING, note_required=True),
    Action("set_unit", "标注涉及单位", "Name the unit concerned", STATUSES, None, SUPERVISING, ("unit_id?",)),
)}


def referred_mediation_point(incident: Incident) -> int | None:
    """The mediation point the case currently waits on, if any."""
    if incident.dispatched_to_kind == "mediation_point" and incident.dispatched_to:
        return int(incident.dispatched_to)
    if incident.dispatched_to_kind is None:  # imported or demo cases carry only the point
        return incident.mediation_point_id
    return None


def _in_scope(user: User, incident: Incident) -> bool:
    codes = {incident.grid_code, incident.village_code, incident.town_code}
    return bool(codes & set(user.scopes or ()))


def may_act(user: User, incident: Incident, action: Action) -> bool:
    """Role and scope allow ``user`` to take ``action`` on ``incident`` (its status aside)."""
    if user.role not in action.roles:
        return False
    if user.role in ("county_officer", "admin"):
        return True
    if user.role == "town_supervisor":
        return _in_scope(user, incident)
    if user.role == "grid_worker":
        return incident.reporter_id == user.id or _in_scope(user, incident)
    if user.role == "mediator":
        points = mediation_point_scopes(user)
        if action.name == "note":
            return incident.mediation_point_id in points
        return incident.mediation_outcome is None and referred_mediation_point(incident) in points
    return False


def allowed_actions(user: User, incident: Incident) -> list[Action]:
    return [a for a in ACTIONS.values() if incident.status in a.from_statuses and may_act(user, incident, a)]


def _note(payload: Mapping, required: bool) -> str:
    note = payload.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise ValidationError("note must be text", "note")
    if len(note) > NOTE_MAX:
        raise ValidationError(f"note is too long ({len(note)} characters; at most {NOTE_MAX})", "note")
    if required and not note.strip():
        raise ValidationError("this action needs a note (请填写说明)", "note")
    return note.strip()


def _choice(payload: Mapping, name: str, choices, *, required: bool = True):
    value = payload.get(name)
    if value in (None, ""):
        if required:
            raise ValidationError(f"{name} is required; one of {', '.join(map(str, choices))}", name)
        return None
    if value not in choices:
        raise ValidationError(f"{name} must be one of {', '.join(map(str, choices))}", name)
    return value


def _whole_number(payload: Mapping, name: str) -> int:
    value = payload.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number", name)
    return value


def perform(session: Session, user: User, incident_id: int, payload, now: datetime | None = None) -> IncidentEvent:
    """Take one workflow action on a case, recording who, when and the note.

    ``payload``: ``action`` (see ACTIONS), ``note`` and what the action needs — ``resolution_level``,
    ``satisfaction``, ``duplicate_of``, ``target_kind``/``target``, ``outcome``, ``legal_class``,
    ``unit_id``.
    Raises NotFound (cannot see the case), Forbidden (role or scope), Conflict (not from this
    status) or ValidationError (a bad field); writes nothing then.
    """
    now = now or utcnow()
    if not isinstance(payload, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    name = payload.get("action")
    if name not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(ACTIONS)}", "action")
    action = ACTIONS[name]
    incident = get_visible_incident(session, user, incident_id, for_update=True)
    if not may_act(user, incident, action):
        raise Forbidden(f"a {user.role} may not {name} this case", "action")
    if incident.status not in action.from_statuses:
        raise Conflict(f"cannot {name} a case that is {incident.status}", "action", code="invalid_transition")
    note = _note(payload, action.note_required)
    from_status = incident.status
    data = _APPLY[name](session, user, incident, payload, now)
    to_status = action.to_status or data.pop("_to_status", from_status)
    incident.status = to_status
    event = IncidentEvent(incident_id=incident.id, from_status=from_status, to_status=to_status, actor_id=user.id,
                          at=now, note=note, data={"action": name, **data})
    session.add(event)
    audit(session, user.id, f"incident.{name}", "incident", incident.id,
          {"from": from_status, "to": to_status, **data}, note or None)
    session.flush()
    return event


def _accept(session, user, incident, payload, now):
    legal_class = _choice(payload, "legal_class", LEGAL_CLASSES, required=False)
    if legal_class:
        incident.legal_class = legal_class
    days = session.scalar(select(IncidentCategory.deadline_days).where(IncidentCategory.code == incident.category))
    incident.accepted_at = now
    incident.deadline_at = now + timedelta(days=days)
    return {"deadline_at": incident.deadline_at.isoformat(), "deadline_days": days,
            **({"legal_class": legal_class} if legal_class else {})}


def _reject(session, user, incident, payload, now):
    return {}


def _mark_duplicate(session, user, incident, payload, now):
    original_id = _whole_number(payload, "duplicate_of")
    if original_id == incident.id:
        raise ValidationError("a case cannot duplicate itself", "duplicate_of")
    try:
        original = get_visible_incident(session, user, original_id)
    except NotFound:
        raise ValidationError(f"no case {original_id} that you may see", "duplicate_of") from None
    if original.status == "duplicate" and original.duplicate_of:
        original = get_visible_incident(session, user, original.duplicate_of)
    if original.id == incident.id:
        raise ValidationError("a case cannot duplicate itself", "duplicate_of")
    incident.duplicate_of = original.id
    return {"duplicate_of": original.id}


def _dispatch(session, user, incident, payload, now):
    kind = _choice(payload, "target_kind", DISPATCH_KINDS)
    target = payload.get("target")
    target = None if target in (None, "") else str(target)
    if kind == "village":
        target = target or incident.village_code
        village = session.get(Village, target)
        if village is None or village.town_code != incident.town_code:
            raise ValidationError(f"no village {target} in this case's town", "target")
        label = village.name
    elif kind == "police_station":
        station = session.get(PoliceStation, target) if target else None
        if station is None:
            raise ValidationError("target must be a police-station code", "target")
        label = station.name
    elif kind == "mediation_point":
        point = session.get(MediationPoint, int(target)) if target and target.isdigit() else None
        if point is None:
            raise ValidationError("target must be a mediation-point id", "target")
        incident.mediation_point_id = point.id
        incident.mediation_outcome = None
        label = f"{point.name}（{MEDIATION_KIND_ZH.get(point.kind, point.kind)}）"
        target = str(point.id)
    else:  # town_office
        target = incident.town_code
        label = session.get(Town, target).name
    incident.dispatched_to_kind = kind
    incident.dispatched_to = target
    return {"target_kind": kind, "target": target, "target_name": f"{DISPATCH_KIND_ZH[kind]}：{label}"}


def dispatch_target_name(session: Session, kind: str | None, target: str | None) -> str | None:
    """A readable name for where a case was dispatched, e.g. "调解阵地：范营村摆理堂（摆理堂）"."""
    if not kind or not target:
        return None
    if kind == "village":
        found = session.get(Village, target)
        label = found.name if found else target
    elif kind == "police_station":
        found = session.get(PoliceStation, target)
        label = found.name if found else target
    elif kind == "mediation_point":
        found = session.get(MediationPoint, int(target)) if target.isdigit() else None
        label = f"{found.name}（{MEDIATION_KIND_ZH.get(found.kind, found.kind)}）" if found else target
    else:
        found = session.get(Town, target)
        label = found.name if found else target
    return f"{DISPATCH_KIND_ZH.get(kind, kind)}：{label}"


def _start(session, user, incident, payload, now):
    return {}


def _record_mediation(session, user, incident, payload, now):
    if referred_mediation_point(incident) is None:
        raise Conflict("this case is not referred to a mediation point", "action", code="invalid_transition")
    outcome = _choice(payload, "outcome", MEDIATION_OUTCOMES)
    incident.mediation_outcome = outcome
    if outcome == "agreement":
        level = _choice(payload, "resolution_level", RESOLUTION_LEVELS, required=False) or "village"
        incident.resolution_level = level
        incident.resolved_at = now
        return {"_to_status": "resolved", "outcome": outcome, "outcome_zh": MEDIATION_OUTCOME_ZH[outcome],
                "resolution_level": level}
    # Failed or transferred: back to the town to dispatch elsewhere.
    incident.dispatched_to_kind = None
    incident.dispatched_to = None
    return {"_to_status": "accepted", "outcome": outcome, "outcome_zh": MEDIATION_OUTCOME_ZH[outcome]}


def _resolve(session, user, incident, payload, now):
    level = _choice(payload, "resolution_level", RESOLUTION_LEVELS)
    incident.resolution_level = level
    incident.resolved_at = now
    return {"resolution_level": level, "resolution_level_zh": RESOLUTION_LEVEL_ZH[level]}


def _reopen(session, user, incident, payload, now):
    incident.resolved_at = None
    incident.resolution_level = None
    return {}


def _close(session, user, incident, payload, now):
    incident.closed_at = now
    return {}


def _follow_up(session, user, incident, payload, now):
    satisfaction = payload.get("satisfaction")
    if isinstance(satisfaction, str) and satisfaction.strip().isdigit():
        satisfaction = int(satisfaction)
    if isinstance(satisfaction, bool) or not isinstance(satisfaction, int) or not 1 <= satisfaction <= 5:
        raise ValidationError("satisfaction must be a whole number from 1 to 5", "satisfaction")
    incident.satisfaction = satisfaction
    return {"satisfaction": satisfaction}


def _add_note(session, user, incident, payload, now):
    return {}


def _set_unit(session, user, incident, payload, now):
    """Name (or, with no unit_id, clear) the enterprise or unit the case concerns."""
    if payload.get("unit_id") in (None, ""):
        incident.unit_id = None
        return {"unit_id": None, "unit_name": None}
    unit_id = _whole_number(payload, "unit_id")
    names = {u["id"]: u["name"] for u in village_units(session, incident.village_code)}
    if unit_id not in names:
        raise ValidationError(f"unit_id {unit_id} is no active enterprise of the registry in this case's village "
                              "(该村无此在册企业/单位)", "unit_id")
    incident.unit_id = unit_id
    return {"unit_id": unit_id, "unit_name": names[unit_id]}


_APPLY = {"accept": _accept, "reject": _reject, "mark_duplicate": _mark_duplicate, "dispatch": _dispatch,
          "start": _start, "record_mediation": _record_mediation, "resolve": _resolve, "reopen": _reopen,
          "close": _close, "follow_up": _follow_up, "note": _add_note, "set_unit": _set_unit}


def case_detail(session: Session, user: User, incident_id: int, now: datetime | None = None) -> dict:
    """The case as a GeoJSON Feature with its history and the actions ``user`` may take now."""
    feature = incident_detail(session, user, incident_id, now)
    incident = get_visible_incident(session, user, incident_id)
    point = session.get(MediationPoint, incident.mediation_point_id) if incident.mediation_point_id else None
    feature["properties"]["mediation_point_name"] = point.name if point else None
    feature["properties"]["dispatched_to_name"] = dispatch_target_name(session, incident.dispatched_to_kind,
                                                                       incident.dispatched_to)
    feature["properties"]["allowed_actions"] = [
        {"name": a.name, "label_zh": a.label_zh, "label_en": a.label_en,
         "needs": [n.rstrip("?") for n in a.needs], "note_required": a.note_required}
        for a in allowed_actions(user, incident)]
    return feature


def dispatch_targets(session: Session, incident: Incident) -> dict[str, list[dict]]:
    """Choices for the dispatch form: the town's villages, police stations, mediation points."""
    villages = session.execute(select(Village.code, Village.name).where(
        Village.town_code == incident.town_code).order_by(Village.code))
    stations = session.execute(select(PoliceStation.code, PoliceStation.name).order_by(
        PoliceStation.town_code != incident.town_code, PoliceStation.code))
    points = session.execute(select(MediationPoint.id, MediationPoint.name, MediationPoint.kind)
                             .outerjoin(Village, Village.code == MediationPoint.village_code)
                             .order_by(Village.town_code != incident.town_code,
                                       MediationPoint.village_code != incident.village_code, MediationPoint.id))
    return {
        "village": [{"value": c, "label": n} for c, n in villages],
        "police_station": [{"value": c, "label": n} for c, n in stations],
        "mediation_point": [{"value": str(i), "label": f"{n}（{MEDIATION_KIND_ZH.get(k, k)}）"} for i, n, k in points],
        "town_office": [{"value": incident.town_code, "label": session.get(Town, incident.town_code).name}],
    }
