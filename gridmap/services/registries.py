"""Registries: places that must be inspected and their inspections, village staff ("一村一警一律师"),
legal-publicity activities; who may see and edit each, and the importer for places.

Every function takes the Session first and the acting user second, validates everything before it
writes, and writes inside a savepoint, so an error leaves nothing behind.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
from sqlalchemy import func, insert, select, true
from sqlalchemy.orm import Session

from gridmap.analysis.inspections import count_by_status, inspection_status
from gridmap.analysis.staffing import gap_summary, grid_coverage, village_coverage
from gridmap.catalog import (ACTIVITY_KIND_ZH, ACTIVITY_KINDS, CATEGORY_BY_CODE, DEFAULT_INSPECTION_INTERVAL_DAYS,
                             INSPECTION_CHECKLISTS, INSPECTION_STATUS_ZH, PLACE_KIND_ZH, PLACE_KINDS,
                             PLACE_SUBKINDS, ROLES, STAFF_ROLE_ZH, STAFF_ROLES, STATUS_ZH)
from gridmap.errors import Conflict, Forbidden, NotFound, ValidationError, parse_bool
from gridmap.models import (Grid, Incident, IncidentEvent, Inspection, LegalActivity, Place, StaffAssignment, Town,
                            User, Village)
from gridmap.services.accounts import audit
from gridmap.services.incidents import (CHINA_TZ, create_incident, locate_in_scope, parse_coordinates,
                                       visible_condition)
from gridmap.services.layers import parse_bbox
from gridmap.services.scopes import coded_condition, is_county_wide

# --- who may do what --------------------------------------------------------------------------

REGISTRIES = ("places", "inspections", "staff", "activities")
# Mediators work at a mediation point, not an area: the registries are not theirs to see.
VIEW_ROLES = tuple(r for r in ROLES if r != "mediator")
EDIT_ROLES: dict[str, tuple[str, ...]] = {
    "places": ("admin", "county_officer", "town_supervisor"),
    "inspections": ("admin", "county_officer", "town_supervisor", "grid_worker", "police"),
    "staff": ("admin", "county_officer", "town_supervisor"),
    "activities": ("admin", "county_officer", "town_supervisor", "grid_worker", "police"),
}
# The read-only viewer sees no staff telephone numbers (personal details).
PERSONAL_VIEW_ROLES = tuple(r for r in ROLES if r != "viewer")

NAME_MAX, ADDRESS_MAX, ROLE_MAX, REF_MAX = 200, 300, 60, 80
TEXT_MAX = 2000
PHONE_PATTERN = re.compile(r"^[0-9+\- ()]{3,40}$")


def permissions(user: User) -> dict[str, dict[str, bool]]:
    """What ``user`` may do with each registry (for pages and the API's ``/api/me``-style answers)."""
    return {name: {"view": user.role in VIEW_ROLES, "edit": user.role in EDIT_ROLES[name]} for name in REGISTRIES}


def require_view(user: User, registry: str) -> None:
    if user.role not in VIEW_ROLES:
        raise Forbidden(f"role {user.role} may not see the {registry} registry", "role")


def require_edit(user: User, registry: str) -> None:
    if user.role not in EDIT_ROLES[registry]:
        raise Forbidden(f"role {user.role} may not change the {registry} registry", "role")


def shows_personal_details(user: User) -> bool:
    return user.role in PERSONAL_VIEW_ROLES


def _coded(user: User, model):
    return coded_condition(user, model.town_code, model.village_code, model.grid_code,
                           getattr(model, "geom", None))


def _staff_visible(user: User):
    if is_county_wide(user):
        return true()
    return coded_condition(user, Village.town_code, StaffAssignment.village_code,
                           func.coalesce(StaffAssignment.grid_code, ""), None)


# --- parsing input (JSON values or form strings) ----------------------------------------------

def today_in_china() -> date:
    return datetime.now(CHINA_TZ).date()


def _text(data: Mapping, name: str, limit: int, *, required: bool = False, default: str = "") -> str:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{name} is required", name)
        return default
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text", name)
    value = value.strip()
    if len(value) > limit:
        raise ValidationError(f"{name} is too long ({len(value)} characters; at most {limit})", name)
    return value


def _int(data: Mapping, name: str, low: int, high: int, *, default: int | None = None) -> int:
    value = data.get(name)
    if value is None or value == "":
        if default is None:
            raise ValidationError(f"{name} is required", name)
        return default
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a whole number", name)
    if isinstance(value, str):
        if not re.fullmatch(r"\s*-?\d+\s*", value):
            raise ValidationError(f"{name} must be a whole number", name)
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number", name)
    if not low <= value <= high:
        raise ValidationError(f"{name} must be from {low} to {high}", name)
    return value


def _bool(data: Mapping, name: str, default: bool = False) -> bool:
    value = parse_bool(data.get(name), name)
    return default if value is None else value


def parse_date(value, name: str, *, required: bool = True, default: date | None = None,
               latest: date | None = None) -> date | None:
    """An ISO date (``2023-05-01``); ``latest`` refuses later days (e.g. the future)."""
    if value is None or value == "":
        if required and default is None:
            raise ValidationError(f"{name} is required (a date such as 2023-05-01)", name)
        return default
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        if not isinstance(value, str) or not re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
            raise ValidationError(f"{name} must be a date such as 2023-05-01", name)
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(f"{name} is no valid date", name) from None
    if latest is not None and value > latest:
        raise ValidationError(f"{name} is in the future", name)
    return value


def _choice(data: Mapping, name: str, choices, *, required: bool = True, default=None):
    value = data.get(name)
    if value is None or value == "":
        if required and default is None:
            raise ValidationError(f"{name} is required; one of {', '.join(choices)}", name)
        return default
    if value not in choices:
        raise ValidationError(f"unknown {name} {value!r}; one of {', '.join(choices)}", name)
    return value


def _coordinates(lon, lat, crs="wgs84") -> tuple[float, float]:
    """WGS84 lon/lat from numbers or (forms, CSV files) their text."""
    def number(value, name):
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise ValidationError(f"{name} must be a number (decimal degrees)", name) from None
        return value

    return parse_coordinates(number(lon, "lon"), number(lat, "lat"), crs or "wgs84")


def _locate_in_scope(session: Session, user: User, data: Mapping):
    """The WGS84 point of ``data`` (lon, lat, crs), checked to lie in a grid and in the user's area."""
    lon, lat = _coordinates(data.get("lon"), data.get("lat"), data.get("crs") or "wgs84")
    return lon, lat, locate_in_scope(session, user, lon, lat)


def _ewkt(lon: float, lat: float) -> str:
    return f"SRID=4326;POINT({lon!r} {lat!r})"


# --- places -----------------------------------------------------------------------------------

def parse_place(data: Mapping, today: date) -> dict:
    """The column values of a place from user input; raises ValidationError naming the first bad field."""
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    kind = _choice(data, "kind", PLACE_KINDS)
    subkinds = tuple(code for code, _ in PLACE_SUBKINDS[kind])
    return {
        "kind": kind,
        "subkind": _choice(data, "subkind", subkinds, required=False),
        "name": _text(data, "name", NAME_MAX, required=True),
        "address": _text(data, "address", ADDRESS_MAX),
        "responsible_role": _text(data, "responsible_role", ROLE_MAX),
        "inspection_interval_days": _int(data, "inspection_interval_days", 1, 3660,
                                         default=DEFAULT_INSPECTION_INTERVAL_DAYS[kind]),
        "registered_on": parse_date(data.get("registered_on"), "registered_on", default=today, latest=today),
        "ref": _text(data, "ref", REF_MAX) or None,
    }


def create_place(session: Session, user: User, data: Mapping, today: date | None = None) -> Place:
    """Register a place; its grid, village and town come from its point (in the user's area)."""
    require_edit(user, "places")
    today = today or today_in_china()
    values = parse_place(data, today)
    lon, lat, _ = _locate_in_scope(session, user, data)
    if values["ref"] and session.scalar(select(Place.id).where(Place.ref == values["ref"])):
        raise Conflict(f"a place with ref {values['ref']!r} exists", "ref")
    with session.begin_nested():
        place = Place(**values, geom=_ewkt(lon, lat))
        session.add(place)
        session.flush()
        audit(session, user.id, "place.create", "place", place.id, {"kind": place.kind, "ref": place.ref})
    session.refresh(place)
    return place


def update_place(session: Session, user: User, place_id: int, data: Mapping, today: date | None = None) -> Place:
    """Change a place's fields (those given) or deactivate it (``active: false``)."""
    require_edit(user, "places")
    today = today or today_in_china()
    place = get_place(session, user, place_id)
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    merged = {"kind": place.kind, "subkind": place.subkind, "name": place.name, "address": place.address,
              "responsible_role": place.responsible_role, "inspection_interval_days": place.inspection_interval_days,
              "registered_on": place.registered_on, "ref": place.ref}
    merged.update({k: v for k, v in data.items() if k in merged})
    values = parse_place(merged, today)
    active = _bool(data, "active", place.active)
    geom = None
    if "lon" in data or "lat" in data:
        lon, lat, _ = _locate_in_scope(session, user, data)
        geom = _ewkt(lon, lat)
    if values["ref"] and session.scalar(select(Place.id).where(Place.ref == values["ref"], Place.id != place.id)):
        raise Conflict(f"a place with ref {values['ref']!r} exists", "ref")
    with session.begin_nested():
        for key, value in values.items():
            setattr(place, key, value)
        place.active = active
        if geom is not None:
            place.geom = geom
        session.flush()
        audit(session, user.id, "place.update", "place", place.id, {"fields": sorted(data)})
    session.refresh(place)
    return place


def get_place(session: Session, user: User, place_id: int) -> Place:
    require_view(user, "places")
    place = session.scalar(select(Place).where(Place.id == place_id, _coded(user, Place)))
    if place is None:
        raise NotFound(f"no place {place_id} that you may see", "id")
    return place


@dataclass(frozen=True)
class PlaceFilters:
    town: str | None = None
    village: str | None = None
    grid: str | None = None
    kind: str | None = None
    status: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    include_inactive: bool = False
    place_id: int | None = None


def parse_place_filters(args: Mapping) -> PlaceFilters:
    codes = {}
    for name, digits in (("town", 12), ("village", 12), ("grid", 15)):
        value = args.get(name) or None
        if value is not None and not re.fullmatch(rf"\d{{{digits}}}", str(value)):
            raise ValidationError(f"{name} must be a {digits}-digit code", name)
        codes[name] = value
    return PlaceFilters(kind=_choice(args, "kind", PLACE_KINDS, required=False),
                        status=_choice(args, "status", tuple(INSPECTION_STATUS_ZH), required=False),
                        bbox=parse_bbox(args.get("bbox")),
                        include_inactive=_bool(args, "inactive", False), **codes)


def places_frame(session: Session, user: User, filters: PlaceFilters = PlaceFilters(), today: date | None = None,
                 due_within_days: int = 7) -> pd.DataFrame:
    """Places the user may see with their last inspection, next due date and status."""
    require_view(user, "places")
    today = today or today_in_china()
    last = (select(Inspection.place_id, func.max(Inspection.inspected_on).label("last_inspected"),
                   func.count().label("inspections"))
            .group_by(Inspection.place_id).subquery())
    query = (select(Place.id, Place.ref, Place.kind, Place.subkind, Place.name, Place.address, Place.responsible_role,
                    Place.inspection_interval_days, Place.registered_on, Place.active, Place.grid_code,
                    Place.village_code, Place.town_code, Village.name.label("village_name"),
                    Town.name.label("town_name"), func.ST_X(Place.geom).label("lon"),
                    func.ST_Y(Place.geom).label("lat"), last.c.last_inspected,
                    func.coalesce(last.c.inspections, 0).label("inspections"))
             .join(Village, Village.code == Place.village_code).join(Town, Town.code == Place.town_code)
             .outerjoin(last, last.c.place_id == Place.id)
             .where(_coded(user, Place)).order_by(Place.id))
    if not filters.include_inactive:
        query = query.where(Place.active.is_(True))
    for name in ("town", "village", "grid"):
        if getattr(filters, name):
            query = query.where(getattr(Place, f"{name}_code") == getattr(filters, name))
    if filters.kind:
        query = query.where(Place.kind == filters.kind)
    if filters.place_id is not None:
        query = query.where(Place.id == filters.place_id)
    if filters.bbox:
        query = query.where(Place.geom.intersects(func.ST_MakeEnvelope(*filters.bbox, 4326)))
    rows = session.execute(query).mappings().all()
    frame = pd.DataFrame(rows, columns=list(query.selected_columns.keys()))
    frame = inspection_status(frame, today, due_within_days)
    if filters.status:
        frame = frame[frame["status"] == filters.status]
    return frame.reset_index(drop=True)


def place_properties(row) -> dict:
    last = row["last_inspected"]
    return {
        "id": int(row["id"]), "ref": row["ref"], "kind": row["kind"], "kind_zh": PLACE_KIND_ZH[row["kind"]],
        "subkind": row["subkind"], "subkind_zh": dict(PLACE_SUBKINDS[row["kind"]]).get(row["subkind"]),
        "name": row["name"], "address": row["address"], "responsible_role": row["responsible_role"],
        "inspection_interval_days": int(row["inspection_interval_days"]),
        "registered_on": row["registered_on"].isoformat(), "active": bool(row["active"]),
        "grid_code": row["grid_code"], "village_code": row["village_code"], "village_name": row["village_name"],
        "town_code": row["town_code"], "town_name": row["town_name"],
        "last_inspected": None if pd.isna(last) else pd.Timestamp(last).date().isoformat(),
        "inspections": int(row["inspections"]), "next_due": row["next_due"].isoformat(),
        "days_until_due": int(row["days_until_due"]), "status": row["status"],
        "status_zh": INSPECTION_STATUS_ZH[row["status"]],
    }


def place_feature(session: Session, user: User, place_id: int, today: date | None = None) -> dict:
    """One place the user may see as a GeoJSON Feature with its inspection status."""
    frame = places_frame(session, user, PlaceFilters(include_inactive=True, place_id=place_id), today)
    if frame.empty:
        raise NotFound(f"no place {place_id} that you may see", "id")
    row = frame.iloc[0]
    return {"type": "Feature", "id": place_id,
            "geometry": {"type": "Point", "coordinates": [round(row["lon"], 7), round(row["lat"], 7)]},
            "properties": place_properties(row)}


def places_geojson(session: Session, user: User, filters: PlaceFilters = PlaceFilters(), today: date | None = None,
                   limit: int = 5000, fields: tuple[str, ...] | None = None) -> dict:
    """Places as GeoJSON; ``fields`` keeps only those properties (a map needs few)."""
    frame = places_frame(session, user, filters, today)

    def properties(row) -> dict:
        props = place_properties(row)
        return {k: props[k] for k in fields if k in props} if fields else props

    features = [{"type": "Feature", "id": int(row["id"]),
                 "geometry": {"type": "Point", "coordinates": [round(row["lon"], 6), round(row["lat"], 6)]},
                 "properties": properties(row)} for _, row in frame.head(limit).iterrows()]
    return {"type": "FeatureCollection", "features": features, "numberMatched": len(frame),
            "numberReturned": len(features)}


def place_list(session: Session, user: User, filters: PlaceFilters = PlaceFilters(), today: date | None = None,
               statuses=("overdue", "due")) -> list[dict]:
    """Places with one of ``statuses``, most overdue first (then by town, grid, id)."""
    frame = places_frame(session, user, filters, today)
    if statuses:
        frame = frame[frame["status"].isin(statuses)]
    frame = frame.sort_values(["days_until_due", "town_code", "grid_code", "id"])
    return [place_properties(row) for _, row in frame.iterrows()]


def due_summary(session: Session, user: User, by: str = "town", filters: PlaceFilters = PlaceFilters(),
                today: date | None = None) -> list[dict]:
    """Places per town (or grid) and status: ``[{code, name, ok, due, overdue, total}]``."""
    if by not in ("town", "grid"):
        raise ValidationError("by must be town or grid", "by")
    frame = places_frame(session, user, filters, today)
    column = f"{by}_code"
    if frame.empty:
        return []
    table = count_by_status(frame, column)
    if by == "town":
        names = dict(zip(frame["town_code"], frame["town_name"]))
    else:
        names = {g: f"{v} {g[-3:]}" for g, v in zip(frame["grid_code"], frame["village_name"])}
    return [{"code": code, "name": names.get(code, code), **{k: int(v) for k, v in row.items()}}
            for code, row in table.iterrows()]


# --- inspections ------------------------------------------------------------------------------

def checklist_items(kind: str) -> tuple[tuple[str, str], ...]:
    return INSPECTION_CHECKLISTS[kind]


def parse_checklist(kind: str, raw) -> dict[str, bool]:
    """Every item of the place kind's checklist, true (passed) or false; unknown items are refused.

    A form sends only the ticked boxes, so missing items count as not passed.
    """
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValidationError("checklist must be an object of item: true/false", "checklist") from None
    if not isinstance(raw, Mapping):
        raise ValidationError("checklist must be an object of item: true/false", "checklist")
    codes = [code for code, _ in checklist_items(kind)]
    unknown = [k for k in raw if k not in codes]
    if unknown:
        raise ValidationError(f"unknown checklist item {unknown[0]!r} for {kind}; items: {', '.join(codes)}",
                              f"checklist.{unknown[0]}")
    return {code: _bool(raw, code, False) for code in codes}


def hazard_category(place: Place, checklist: Mapping[str, bool]) -> tuple[str, str]:
    """The incident category and subcategory a hazard at ``place`` is reported under by default."""
    failed = [code for code, ok in checklist.items() if not ok]
    if place.kind == "delivery":
        return "LOG", failed[0] if failed else "inspection"
    if place.kind == "hazardous":
        return "HAZ", place.subkind if place.subkind in ("storage", "transport", "sale") else "storage"
    if place.kind == "nine_small":
        if "ebike" in failed:
            return "FIR", "ebike"
        if "exits" in failed:
            return "FIR", "blocked_exit"
        return "FIR", "nine_small"
    return "FIR", "other"


def record_inspection(session: Session, user: User, place_id: int, data: Mapping, *, today: date | None = None,
                      now: datetime | None = None) -> Inspection:
    """Record an inspection of a place; with ``hazard_found`` and ``open_incident`` it also reports the
    hazard as an incident at the place, linked both ways (``inspections.incident_id`` and the incident's
    first event naming the inspection). One transaction: all of it or nothing."""
    require_edit(user, "inspections")
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    today = today or today_in_china()
    place = get_place(session, user, place_id)
    if not place.active:
        raise ValidationError("this place is no longer active", "place_id")
    inspected_on = parse_date(data.get("inspected_on"), "inspected_on", default=today, latest=today)
    if inspected_on < place.registered_on:
        raise ValidationError("inspected_on is before the place was registered", "inspected_on")
    checklist = parse_checklist(place.kind, data.get("checklist"))
    hazard_found = _bool(data, "hazard_found")
    hazard_text = _text(data, "hazard_description", TEXT_MAX)
    if hazard_found and not hazard_text:
        raise ValidationError("describe the hazard found", "hazard_description")
    open_incident = _bool(data, "open_incident")
    if open_incident and not hazard_found:
        raise ValidationError("an incident can only be opened for a hazard found", "open_incident")
    inspector_name = _text(data, "inspector_name", 100) or (user.display_name or user.username)
    note = _text(data, "note", TEXT_MAX)
    incident_input = None
    if open_incident:
        category, subcategory = hazard_category(place, checklist)
        if data.get("category"):
            category, subcategory = data.get("category"), data.get("subcategory") or None
        severity = _int(data, "severity", 1, 4, default=2)
        now = now or datetime.now(CHINA_TZ)
        occurred = min(datetime.combine(inspected_on, time(12), CHINA_TZ), now)
        text = f"【巡检发现隐患】{place.name}（{PLACE_KIND_ZH[place.kind]}）：{hazard_text}"
        incident_input = {"lon": session.scalar(func.ST_X(place.geom)), "lat": session.scalar(func.ST_Y(place.geom)),
                          "category": category, "subcategory": subcategory, "severity": severity,
                          "occurred_at": occurred.isoformat(), "description": text[:TEXT_MAX],
                          "enterprise_involved": place.kind == "enterprise"}
    with session.begin_nested():
        inspection = Inspection(place_id=place.id, inspected_on=inspected_on, inspector_id=user.id,
                                inspector_name=inspector_name, checklist=checklist,
                                passed=all(checklist.values()) and not hazard_found, hazard_found=hazard_found,
                                hazard_description=hazard_text, note=note)
        session.add(inspection)
        session.flush()
        if incident_input is not None:
            incident = create_incident(session, user, incident_input, now=now).incident
            inspection.incident_id = incident.id
            event = session.scalar(select(IncidentEvent).where(IncidentEvent.incident_id == incident.id)
                                   .order_by(IncidentEvent.id).limit(1))
            if event is not None:
                event.data = {**(event.data or {}), "source": "inspection", "inspection_id": inspection.id,
                              "place_id": place.id}
                event.note = event.note or f"巡检发现隐患（巡检记录 #{inspection.id}，场所 {place.name}）"
        session.flush()
        audit(session, user.id, "inspection.create", "inspection", inspection.id,
              {"place_id": place.id, "hazard": hazard_found, "incident_id": inspection.incident_id})
    return inspection


def inspection_dict(inspection: Inspection, place: Place | None = None) -> dict:
    body = {"id": inspection.id, "place_id": inspection.place_id, "inspected_on": inspection.inspected_on.isoformat(),
            "inspector_name": inspection.inspector_name, "checklist": inspection.checklist,
            "passed": inspection.passed, "hazard_found": inspection.hazard_found,
            "hazard_description": inspection.hazard_description, "incident_id": inspection.incident_id,
            "note": inspection.note}
    if place is not None:
        body["place_name"] = place.name
        body["place_kind"] = place.kind
    return body


def list_inspections(session: Session, user: User, *, place_id: int | None = None, incident_id: int | None = None,
                     start: date | None = None, end: date | None = None, limit: int = 500) -> list[dict]:
    """Inspections of the places the user may see, newest first; by place, by linked incident or by period."""
    require_view(user, "inspections")
    query = (select(Inspection, Place).join(Place, Place.id == Inspection.place_id).where(_coded(user, Place))
             .order_by(Inspection.inspected_on.desc(), Inspection.id.desc()).limit(limit))
    if place_id is not None:
        query = query.where(Inspection.place_id == place_id)
    if incident_id is not None:
        query = query.where(Inspection.incident_id == incident_id)
    if start is not None:
        query = query.where(Inspection.inspected_on >= start)
    if end is not None:
        query = query.where(Inspection.inspected_on <= end)
    return [inspection_dict(i, p) for i, p in session.execute(query)]


def hazard_incidents_geojson(session: Session, user: User, bbox=None, place_id: int | None = None) -> dict:
    """Incidents opened from inspections, as points with the place and inspection they came from."""
    require_view(user, "inspections")
    query = (select(Incident.id, Incident.category, Incident.subcategory, Incident.status, Incident.occurred_at,
                    func.ST_X(Incident.geom).label("lon"), func.ST_Y(Incident.geom).label("lat"),
                    Inspection.id.label("inspection_id"), Place.id.label("place_id"), Place.name.label("place_name"))
             .join(Inspection, Inspection.incident_id == Incident.id).join(Place, Place.id == Inspection.place_id)
             .where(visible_condition(user)).order_by(Incident.id))
    if bbox:
        query = query.where(Incident.geom.intersects(func.ST_MakeEnvelope(*bbox, 4326)))
    if place_id is not None:
        query = query.where(Place.id == place_id)
    features = []
    for r in session.execute(query):
        features.append({"type": "Feature", "id": r.id,
                         "geometry": {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
                         "properties": {"id": r.id, "category": r.category,
                                        "category_zh": CATEGORY_BY_CODE[r.category].name_zh,
                                        "subcategory": r.subcategory, "status": r.status,
                                        "status_zh": STATUS_ZH[r.status], "occurred_at": r.occurred_at.isoformat(),
                                        "inspection_id": r.inspection_id, "place_id": r.place_id,
                                        "place_name": r.place_name}})
    return {"type": "FeatureCollection", "features": features}


# --- village staff ----------------------------------------------------------------------------

def parse_staff(session: Session, data: Mapping) -> dict:
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    role = _choice(data, "role", STAFF_ROLES)
    name = _text(data, "name", 100, required=True)
    phone = _text(data, "phone", 40) or None
    if phone and not PHONE_PATTERN.match(phone):
        raise ValidationError("phone may hold digits, spaces, +, - and brackets only", "phone")
    grid_code = _text(data, "grid_code", 15) or None
    village_code = _text(data, "village_code", 12) or None
    if role == "grid_worker":
        if not grid_code:
            raise ValidationError("a grid worker needs grid_code", "grid_code")
        grid = session.get(Grid, grid_code)
        if grid is None:
            raise ValidationError(f"no grid {grid_code!r}", "grid_code")
        if village_code and village_code != grid.village_code:
            raise ValidationError(f"grid {grid_code} is not in village {village_code}", "grid_code")
        village_code = grid.village_code
    else:
        if grid_code:
            raise ValidationError("only grid workers are assigned to a grid; give village_code", "grid_code")
        if not village_code:
            raise ValidationError("village_code is required", "village_code")
        if session.get(Village, village_code) is None:
            raise ValidationError(f"no village {village_code!r}", "village_code")
    user_id = None
    username = _text(data, "username", 80)
    if username:
        account = session.scalar(select(User).where(User.username == username))
        if account is None:
            raise ValidationError(f"no user {username!r}", "username")
        user_id = account.id
    return {"role": role, "name": name, "phone": phone, "organisation": _text(data, "organisation", 200),
            "village_code": village_code, "grid_code": grid_code if role == "grid_worker" else None,
            "user_id": user_id, "since": parse_date(data.get("since"), "since", required=False,
                                                    latest=today_in_china())}


def _require_staff_scope(user: User, village: Village, grid_code: str | None) -> None:
    if is_county_wide(user):
        return
    if {village.code, village.town_code, grid_code} & set(user.scopes or ()):
        return
    raise Forbidden(f"{village.name}不在您的辖区内 / the village is outside your area", "village_code")


def create_staff(session: Session, user: User, data: Mapping) -> StaffAssignment:
    """Assign a person (an account or a contact without login) to a village, or a grid worker to a grid."""
    require_edit(user, "staff")
    values = parse_staff(session, data)
    village = session.get(Village, values["village_code"])
    _require_staff_scope(user, village, values["grid_code"])
    with session.begin_nested():
        staff = StaffAssignment(**values)
        session.add(staff)
        session.flush()
        audit(session, user.id, "staff.create", "village_staff", staff.id,
              {"role": staff.role, "village": staff.village_code, "grid": staff.grid_code})
    return staff


def remove_staff(session: Session, user: User, staff_id: int) -> None:
    """End an assignment (kept, marked inactive, so the history stays)."""
    require_edit(user, "staff")
    staff = session.scalar(select(StaffAssignment).join(Village, Village.code == StaffAssignment.village_code)
                           .where(StaffAssignment.id == staff_id, _staff_visible(user)))
    if staff is None:
        raise NotFound(f"no staff assignment {staff_id} that you may see", "id")
    _require_staff_scope(user, session.get(Village, staff.village_code), staff.grid_code)
    with session.begin_nested():
        staff.active = False
        audit(session, user.id, "staff.remove", "village_staff", staff.id)


def list_staff(session: Session, user: User, *, town: str | None = None, village: str | None = None,
               role: str | None = None, include_inactive: bool = False) -> list[dict]:
    require_view(user, "staff")
    if role is not None and role not in STAFF_ROLES:
        raise ValidationError(f"unknown role {role!r}; one of {', '.join(STAFF_ROLES)}", "role")
    query = (select(StaffAssignment, Village.name.label("village_name"), Town.code.label("town_code"),
                    Town.name.label("town_name"), User.username)
             .join(Village, Village.code == StaffAssignment.village_code)
             .join(Town, Town.code == Village.town_code)
             .outerjoin(User, User.id == StaffAssignment.user_id)
             .where(_staff_visible(user))
             .order_by(Town.code, StaffAssignment.village_code, StaffAssignment.role, StaffAssignment.id))
    if not include_inactive:
        query = query.where(StaffAssignment.active.is_(True))
    if town:
        query = query.where(Village.town_code == town)
    if village:
        query = query.where(StaffAssignment.village_code == village)
    if role:
        query = query.where(StaffAssignment.role == role)
    personal = shows_personal_details(user)
    out = []
    for staff, village_name, town_code, town_name, username in session.execute(query):
        out.append({"id": staff.id, "role": staff.role, "role_zh": STAFF_ROLE_ZH[staff.role], "name": staff.name,
                    "phone": staff.phone if personal else None, "organisation": staff.organisation,
                    "village_code": staff.village_code, "village_name": village_name, "grid_code": staff.grid_code,
                    "town_code": town_code, "town_name": town_name, "username": username,
                    "has_login": username is not None, "since": staff.since.isoformat() if staff.since else None,
                    "active": staff.active})
    return out


def _visible_villages(session: Session, user: User, town: str | None):
    query = (select(Village.code, Village.name, Village.town_code, Town.name.label("town_name"))
             .join(Town, Town.code == Village.town_code).order_by(Village.code))
    if not is_county_wide(user):
        query = query.where(coded_condition(user, Village.town_code, Village.code, Village.code, Village.geom))
    if town:
        query = query.where(Village.town_code == town)
    return pd.DataFrame(session.execute(query).mappings().all(), columns=["code", "name", "town_code", "town_name"])


def staff_coverage(session: Session, user: User, town: str | None = None) -> dict:
    """Villages lacking a police officer or a lawyer, grids without a grid worker, and a summary per town."""
    require_view(user, "staff")
    villages = _visible_villages(session, user, town)
    grids = pd.DataFrame(session.execute(
        select(Grid.code, Grid.name, Grid.village_code).where(Grid.village_code.in_(list(villages["code"])))
        .order_by(Grid.code)).mappings().all(), columns=["code", "name", "village_code"])
    staff = pd.DataFrame(session.execute(
        select(StaffAssignment.role, StaffAssignment.village_code, StaffAssignment.grid_code)
        .where(StaffAssignment.active.is_(True), StaffAssignment.village_code.in_(list(villages["code"]))))
        .mappings().all(), columns=["role", "village_code", "grid_code"])
    coverage = village_coverage(villages, grids, staff)
    per_grid = grid_coverage(grids, staff)
    village_names = dict(zip(villages["code"], villages["name"]))
    summary = gap_summary(coverage) if len(coverage) else pd.DataFrame()
    town_names = dict(zip(villages["town_code"], villages["town_name"]))
    return {
        "villages": [{k: _plain(v) for k, v in row.items()} for row in coverage.to_dict("records")],
        "grids_without_worker": [{"code": r["code"], "name": r["name"], "village_code": r["village_code"],
                                  "village_name": village_names.get(r["village_code"])}
                                 for r in per_grid[per_grid["missing_grid_worker"]].to_dict("records")],
        "summary": [{"town_code": code, "town_name": town_names.get(code, code),
                     **{k: int(v) for k, v in row.items()}} for code, row in summary.iterrows()],
        "totals": {"villages": int(len(coverage)), "missing_police": int(coverage["missing_police"].sum()),
                   "missing_lawyer": int(coverage["missing_lawyer"].sum()), "grids": int(len(per_grid)),
                   "grids_without_worker": int(per_grid["missing_grid_worker"].sum())},
    }


def coverage_geojson(session: Session, user: User, layer: str, bbox=None, simplify_m: float = 5.0) -> dict:
    """Villages with their gaps (``layer="villages"``), or grids without a grid worker (``"grids"``)."""
    require_view(user, "staff")
    if layer not in ("villages", "grids"):
        raise ValidationError("layer must be villages or grids", "layer")
    coverage = staff_coverage(session, user)
    model = Village if layer == "villages" else Grid
    if layer == "villages":
        rows = {v["code"]: v for v in coverage["villages"]}
    else:
        rows = {g["code"]: g for g in coverage["grids_without_worker"]}
    if not rows:
        return {"type": "FeatureCollection", "features": []}
    geom = func.ST_SimplifyPreserveTopology(model.geom, simplify_m / 111_000.0) if simplify_m > 0 else model.geom
    query = select(model.code, func.ST_AsGeoJSON(geom, 6).label("g")).where(model.code.in_(list(rows)))
    if bbox:
        query = query.where(func.ST_Intersects(model.geom, func.ST_MakeEnvelope(*bbox, 4326)))
    features = []
    for code, text in session.execute(query.order_by(model.code)):
        row = rows[code]
        if layer == "villages":
            props = {"code": code, "name": row["name"], "town_name": row["town_name"],
                     "police": row["police"], "lawyer": row["lawyer"], "grid_worker": row["grid_worker"],
                     "mediator": row["mediator"], "elder": row["elder"],
                     "grids_without_worker": row["grids_without_worker"],
                     "gap": _gap_label(row["missing_police"], row["missing_lawyer"])}
        else:
            props = {"code": code, "name": row["name"], "village_name": row["village_name"], "gap": "no_grid_worker"}
        features.append({"type": "Feature", "id": code, "geometry": json.loads(text), "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _plain(value):
    """numpy scalars as Python ones, for JSON."""
    return value.item() if hasattr(value, "item") else value


def _gap_label(missing_police: bool, missing_lawyer: bool) -> str:
    if missing_police and missing_lawyer:
        return "both"
    if missing_police:
        return "police"
    if missing_lawyer:
        return "lawyer"
    return "none"


# --- legal-publicity activities ---------------------------------------------------------------

def create_activity(session: Session, user: User, data: Mapping, today: date | None = None) -> LegalActivity:
    """Record a legal-publicity activity held at a point (its village and town come from the point)."""
    require_edit(user, "activities")
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    today = today or today_in_china()
    values = {"held_on": parse_date(data.get("held_on"), "held_on", latest=today),
              "kind": _choice(data, "kind", ACTIVITY_KINDS), "title": _text(data, "title", NAME_MAX, required=True),
              "audience": _int(data, "audience", 0, 1_000_000, default=0),
              "organiser": _text(data, "organiser", NAME_MAX)}
    lon, lat, _ = _locate_in_scope(session, user, data)
    with session.begin_nested():
        activity = LegalActivity(**values, created_by=user.id, geom=_ewkt(lon, lat))
        session.add(activity)
        session.flush()
        audit(session, user.id, "activity.create", "legal_activity", activity.id, {"kind": activity.kind})
    session.refresh(activity)
    return activity


def activities_geojson(session: Session, user: User, *, start: date | None = None, end: date | None = None,
                       town: str | None = None, bbox=None, limit: int = 5000) -> dict:
    require_view(user, "activities")
    query = (select(LegalActivity, Village.name.label("village_name"), Town.name.label("town_name"),
                    func.ST_X(LegalActivity.geom).label("lon"), func.ST_Y(LegalActivity.geom).label("lat"))
             .join(Village, Village.code == LegalActivity.village_code)
             .join(Town, Town.code == LegalActivity.town_code)
             .where(_coded(user, LegalActivity)).order_by(LegalActivity.held_on.desc(), LegalActivity.id.desc())
             .limit(limit))
    if start:
        query = query.where(LegalActivity.held_on >= start)
    if end:
        query = query.where(LegalActivity.held_on <= end)
    if town:
        query = query.where(LegalActivity.town_code == town)
    if bbox:
        query = query.where(LegalActivity.geom.intersects(func.ST_MakeEnvelope(*bbox, 4326)))
    features = []
    for a, village_name, town_name, lon, lat in session.execute(query):
        features.append({"type": "Feature", "id": a.id,
                         "geometry": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
                         "properties": {"id": a.id, "held_on": a.held_on.isoformat(), "kind": a.kind,
                                        "kind_zh": ACTIVITY_KIND_ZH[a.kind], "title": a.title,
                                        "audience": a.audience, "organiser": a.organiser,
                                        "village_code": a.village_code, "village_name": village_name,
                                        "town_code": a.town_code, "town_name": town_name}})
    return {"type": "FeatureCollection", "features": features}


def activities_per_village(session: Session, user: User, start: date, end: date,
                           town: str | None = None) -> list[dict]:
    """Activities and audience per village in ``[start, end]`` (villages with none are left out)."""
    require_view(user, "activities")
    query = (select(LegalActivity.village_code, Village.name, LegalActivity.town_code, Town.name.label("town_name"),
                    func.count().label("activities"), func.sum(LegalActivity.audience).label("audience"))
             .join(Village, Village.code == LegalActivity.village_code)
             .join(Town, Town.code == LegalActivity.town_code)
             .where(_coded(user, LegalActivity), LegalActivity.held_on.between(start, end))
             .group_by(LegalActivity.village_code, Village.name, LegalActivity.town_code, Town.name)
             .order_by(LegalActivity.town_code, LegalActivity.village_code))
    if town:
        query = query.where(LegalActivity.town_code == town)
    return [{"village_code": r.village_code, "village_name": r.name, "town_code": r.town_code,
             "town_name": r.town_name, "activities": int(r.activities), "audience": int(r.audience or 0)}
            for r in session.execute(query)]


# --- importing places -------------------------------------------------------------------------

PLACE_FIELDS = ("ref", "kind", "subkind", "name", "address", "responsible_role", "inspection_interval_days",
                "registered_on")


@dataclass
class ImportReport:
    rows: int
    imported: int
    by_kind: dict[str, int]

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.by_kind.items()))
        return [f"places: {self.rows:,} rows read, {self.imported:,} new ({kinds})"]


def import_places(session: Session, user: User | None, path: Path | str, options=None, *,
                  today: date | None = None) -> ImportReport:
    """Import places from a CSV (lon/lat columns), GeoPackage, Shapefile, GeoJSON or KML, read and
    reprojected by :func:`gridmap.services.importing.read_features` (``options`` as for the other
    importers: layer, CRS, GCJ-02, ``--map``/``--set`` of the fields in :data:`PLACE_FIELDS`).

    Every row is checked first (fields, a point in a grid, in the user's area, ``ref`` unique) and
    either all rows are written or, on any problem, none: ImportRefused lists each refused row
    (1-based, as in the other importers). ``user`` None is the operator at the command line, who may
    import anywhere in the county."""
    from tqdm import tqdm

    from gridmap.services.importing import ImportRefused, RowProblem, SourceOptions, read_features

    if user is not None:
        require_edit(user, "places")
    options = options or SourceOptions()
    today = today or today_in_china()
    frame = read_features(path, options, allow_csv=True)
    columns = {field: _source_column(frame.columns, options.mapping.get(field, field)) for field in PLACE_FIELDS}
    problems: list[RowProblem] = []
    values: list[dict] = []
    refs: dict[str, int] = {}
    records = frame.drop(columns=frame.geometry.name).to_dict("records")
    with tqdm(total=len(frame), desc="places", unit="row", disable=not options.progress, leave=False) as bar:
        for number, (record, geometry) in enumerate(zip(records, frame.geometry), start=1):
            data = {field: _cell(record.get(column)) for field, column in columns.items() if column is not None}
            data.update(options.constants)
            ref = data.get("ref") or None
            try:
                if geometry is None or geometry.is_empty:
                    raise ValidationError("no point (lon/lat missing or not numbers)", "lon")
                if geometry.geom_type != "Point":
                    raise ValidationError(f"the geometry is a {geometry.geom_type}, not a point", "geometry")
                parsed = parse_place(data, today)
                lon, lat = parse_coordinates(float(geometry.x), float(geometry.y))
                if parsed["ref"]:
                    if parsed["ref"] in refs:
                        raise ValidationError(f"ref repeats row {refs[parsed['ref']]}", "ref")
                    refs[parsed["ref"]] = number
                values.append({**parsed, "lon": lon, "lat": lat, "_row": number})
            except ValidationError as err:
                problems.append(RowProblem(number, ref, f"{err.field}: {err.message}"))
            bar.update(1)
    if values:
        problems.extend(_place_location_problems(session, user, values))
    if refs:
        taken = session.scalars(select(Place.ref).where(Place.ref.in_(list(refs)))).all()
        problems.extend(RowProblem(refs[r], r, "ref: a place with this ref exists") for r in taken)
    if problems:
        raise ImportRefused(Path(path).name, sorted(problems, key=lambda p: p.row))
    with session.begin_nested():
        session.execute(insert(Place), [
            {k: v for k, v in row.items() if k not in ("lon", "lat", "_row")} | {"geom": _ewkt(row["lon"], row["lat"])}
            for row in values])
        audit(session, user.id if user else None, "place.import", "place", None,
              {"rows": len(values), "file": Path(path).name})
    by_kind: dict[str, int] = {}
    for row in values:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
    return ImportReport(rows=len(frame), imported=len(values), by_kind=by_kind)


def _source_column(columns, wanted: str):
    lowered = {str(c).strip().lower(): c for c in columns}
    return lowered.get(wanted.strip().lower())


def _cell(value):
    """A file's cell as the text a form would send (numbers from GeoPackages included)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return str(value)


def _place_location_problems(session: Session, user: User | None, values: list[dict]) -> list:
    """One query per 5,000 points: which lie in no grid, and which outside the user's area."""
    from gridmap.services.importing import RowProblem

    located = {}
    for start in range(0, len(values), 5000):
        chunk = list(enumerate(values))[start:start + 5000]
        table = select(func.unnest([i for i, _ in chunk]).label("i"),
                       func.unnest([row["lon"] for _, row in chunk]).label("x"),
                       func.unnest([row["lat"] for _, row in chunk]).label("y")).subquery()
        pt = func.ST_SetSRID(func.ST_MakePoint(table.c.x, table.c.y), 4326)
        first_grid = (select(Grid.code, Grid.village_code, Village.town_code)
                      .join(Village, Village.code == Grid.village_code)
                      .where(func.ST_Intersects(Grid.geom, pt)).order_by(Grid.code).limit(1).lateral())
        for i, grid_code, village_code, town_code in session.execute(
                select(table.c.i, first_grid.c.code, first_grid.c.village_code, first_grid.c.town_code)
                .select_from(table).join(first_grid, true())):
            located[i] = (grid_code, village_code, town_code)
    county_wide = user is None or is_county_wide(user)
    scopes = set(user.scopes or ()) if user is not None else set()
    problems = []
    for i, row in enumerate(values):
        if i not in located:
            problems.append(RowProblem(row["_row"], row.get("ref"), "lon: the point lies in no grid of the county"))
        elif not county_wide and not (set(located[i]) & scopes):
            problems.append(RowProblem(row["_row"], row.get("ref"), "lon: the point is outside your area"))
    return problems
