"""Incidents: report one (validated, scoped, idempotent by client id), find where a point falls,
find possible duplicates, list and export what a user may see."""
from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, case, false, func, literal, or_, select, text, true
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gridmap.analysis.gcj02 import gcj02_to_wgs84
from gridmap.catalog import LEGAL_CLASSES, OPEN_STATUSES, STATUS_ZH, STATUSES
from gridmap.db import PreparedStatement
from gridmap.errors import Conflict, Forbidden, NotFound, ValidationError, parse_bool
from gridmap.models import (County, Grid, Incident, IncidentCategory, IncidentEvent, IncidentSubcategory,
                            PatrolZone, Town, User, Village)
from gridmap.models import Place as RegistryPlace  # this module's Place is a location
from gridmap.services.layers import parse_bbox
from gridmap.services.scopes import coded_condition, is_county_wide

# Roles that handle cases and may therefore see a case's personal details (phone, parties).
HANDLING_ROLES = ("grid_worker", "mediator", "town_supervisor", "county_officer", "admin")
REPORTING_ROLES = ("grid_worker", "police", "town_supervisor", "county_officer", "admin")
PERSONAL_FIELDS = ("contact_phone", "parties")

DESCRIPTION_MAX = 2000
PARTIES_MAX = 2000
PHONE_MAX = 40
# China has one time zone; a timestamp without an offset is read as Beijing time.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
# Phones' clocks drift; a few minutes ahead is not "in the future".
CLOCK_SKEW = timedelta(minutes=5)
CRS_NAMES = ("wgs84", "gcj02")
SORTS = {
    "-reported_at": (Incident.reported_at.desc(), Incident.id.desc()),
    "reported_at": (Incident.reported_at.asc(), Incident.id.asc()),
    "-occurred_at": (Incident.occurred_at.desc(), Incident.id.desc()),
    "occurred_at": (Incident.occurred_at.asc(), Incident.id.asc()),
    "deadline": (Incident.deadline_at.asc().nulls_last(), Incident.reported_at.asc(), Incident.id.asc()),
    "-severity": (Incident.severity.desc(), Incident.reported_at.desc(), Incident.id.desc()),
}
SHORT_DESCRIPTION = 140


@dataclass(frozen=True)
class IncidentSettings:
    """Deployment settings the incident services need (from the Flask config or the CLI)."""

    metric_srid: int = 4547
    duplicate_distance_m: float = 200.0
    duplicate_window_hours: float = 72.0
    page_size: int = 500
    max_page_size: int = 5000
    # Above this many incidents in view, the map layer gets server-side clusters instead of points.
    map_feature_cap: int = 2000

    @classmethod
    def from_config(cls, config: Mapping) -> IncidentSettings:
        crs = str(config.get("METRIC_CRS", "EPSG:4547"))
        match = re.fullmatch(r"(?i)epsg:(\d+)", crs.strip())
        if not match:
            raise ValueError(f"METRIC_CRS must look like EPSG:4547, not {crs!r}")
        return cls(metric_srid=int(match.group(1)),
                   duplicate_distance_m=float(config.get("DUPLICATE_DISTANCE_M", cls.duplicate_distance_m)),
                   duplicate_window_hours=float(config.get("DUPLICATE_WINDOW_HOURS", cls.duplicate_window_hours)),
                   page_size=int(config.get("API_PAGE_SIZE", cls.page_size)),
                   max_page_size=int(config.get("API_MAX_FEATURES", cls.max_page_size)))


@dataclass(frozen=True)
class Place:
    grid_code: str
    grid_name: str
    village_code: str
    village_name: str
    town_code: str
    town_name: str

    def label(self) -> str:
        return f"{self.town_name} {self.village_name} {self.grid_name}"

    def as_dict(self) -> dict:
        return {"grid": {"code": self.grid_code, "name": self.grid_name},
                "village": {"code": self.village_code, "name": self.village_name},
                "town": {"code": self.town_code, "name": self.town_name}}


@dataclass
class CreateResult:
    """``incident``: the stored incident (the row the report's statement returned, or the ORM
    object of a replayed one); ``case``: the new case as ``workflow.case_detail`` gives it (None
    for a replay, which reads it again)."""
    incident: Incident
    created: bool
    duplicates: list[dict] = field(default_factory=list)
    case: dict | None = None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def point(lon: float, lat: float):
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)


# --- who sees what ----------------------------------------------------------------------------

def mediation_point_scopes(user: User) -> list[int]:
    """A mediator's scopes hold the ids of their mediation points (short digit strings)."""
    return [int(s) for s in user.scopes or () if s.isdigit() and len(s) < 12]


def visible_condition(user: User):
    """SQL condition for the incidents ``user`` may see."""
    if is_county_wide(user):
        return true()
    if user.role == "mediator":
        ids = mediation_point_scopes(user)
        return Incident.mediation_point_id.in_(ids) if ids else false()
    condition = coded_condition(user, Incident.town_code, Incident.village_code, Incident.grid_code,
                                Incident.geom)
    if user.role == "grid_worker":
        condition = or_(condition, Incident.reporter_id == user.id)
    return condition


def can_see_personal_details(user: User) -> bool:
    """Phone numbers and parties: only for roles handling cases (never the viewer or police)."""
    return user.role in HANDLING_ROLES


def get_visible_incident(session: Session, user: User, incident_id: int, *, for_update: bool = False) -> Incident:
    query = select(Incident).where(Incident.id == incident_id, visible_condition(user))
    if for_update:
        query = query.with_for_update(of=Incident)
    incident = session.scalar(query)
    if incident is None:
        raise NotFound(f"no incident {incident_id} that you may see", "id")
    return incident


# --- where a point falls ----------------------------------------------------------------------

def locate(session: Session, lon: float, lat: float) -> Place | None:
    """The grid, village and town a WGS84 point falls in (the same rule as the database trigger)."""
    row = session.execute(
        select(Grid.code, Grid.name, Village.code, Village.name, Town.code, Town.name)
        .join(Village, Village.code == Grid.village_code).join(Town, Town.code == Village.town_code)
        .where(func.ST_Intersects(Grid.geom, point(lon, lat)))
        .order_by(Grid.code).limit(1)).first()
    return Place(*row) if row else None


def in_county(session: Session, lon: float, lat: float) -> bool:
    return session.scalar(select(func.count()).select_from(County).where(
        func.ST_Intersects(County.geom, point(lon, lat)))) > 0


def in_user_scope(session: Session, user: User, place: Place, lon: float, lat: float) -> bool:
    """Whether ``user`` may report at ``place``: their town, village or grid (or patrol zone)."""
    if is_county_wide(user):
        return True
    if {place.grid_code, place.village_code, place.town_code} & set(user.scopes or ()):
        return True
    zones = [s for s in user.scopes or () if not s.isdigit()]
    if zones:
        return session.scalar(select(func.count()).select_from(PatrolZone).where(
            PatrolZone.code.in_(zones), func.ST_Intersects(PatrolZone.geom, point(lon, lat)))) > 0
    return False


def locate_in_scope(session: Session, user: User, lon: float, lat: float) -> Place:
    """The place a point falls in, refusing a point in no grid, outside the county or outside the
    user's area with an error naming ``lon``."""
    place = locate(session, lon, lat)
    if place is None:
        if in_county(session, lon, lat):
            raise ValidationError("the point lies in no grid of the county", "lon")
        raise ValidationError("the point is outside the county (该位置在本县之外)", "lon")
    if not in_user_scope(session, user, place, lon, lat):
        raise Forbidden(f"该位置（{place.label()}）不在您的辖区内 / the point is outside your area", "lon")
    return place


def describe_location(session: Session, user: User, lon, lat, crs="wgs84") -> dict:
    """What the pin page shows at once: the place a point falls in and whether the user may pin there."""
    lon, lat = parse_coordinates(lon, lat, crs, from_text=True)
    place = locate(session, lon, lat)
    body = {"lon": lon, "lat": lat, "inside_county": place is not None or in_county(session, lon, lat),
            "place": place.as_dict() if place else None, "in_scope": False}
    if place is None:
        body["message"] = ("该位置不在本县任何网格内 / the point lies in no grid of the county"
                           if body["inside_county"] else "该位置在本县之外 / the point is outside the county")
    elif user.role not in REPORTING_ROLES:
        body["message"] = "您的角色不能上报事件 / your role cannot report incidents"
    elif not in_user_scope(session, user, place, lon, lat):
        body["message"] = f"该位置（{place.label()}）不在您的辖区内 / the point is outside your area"
    else:
        body["in_scope"] = True
        body["message"] = place.label()
        body["units"] = village_units(session, place.village_code)
    return body


def village_units(session: Session, village_code: str) -> list[dict]:
    """The active enterprises/units of the registry in a village, which a report there may name."""
    rows = session.execute(select(RegistryPlace.id, RegistryPlace.name)
                           .where(RegistryPlace.kind == "enterprise", RegistryPlace.active.is_(True),
                                  RegistryPlace.village_code == village_code)
                           .order_by(RegistryPlace.name, RegistryPlace.id)).all()
    return [{"id": r.id, "name": r.name} for r in rows]


# --- validating input -------------------------------------------------------------------------

def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a number (decimal degrees)", name)
    return float(value)


def parse_coordinates(lon, lat, crs="wgs84", *, from_text: bool = False) -> tuple[float, float]:
    """Numbers in range, converted from GCJ-02 when ``crs`` says so. JSON must carry numbers;
    ``from_text`` parses query-string values."""
    if from_text and isinstance(lon, str):
        lon = _float_text(lon, "lon")
    if from_text and isinstance(lat, str):
        lat = _float_text(lat, "lat")
    if lon is None:
        raise ValidationError("lon is required", "lon")
    if lat is None:
        raise ValidationError("lat is required", "lat")
    lon, lat = _number(lon, "lon"), _number(lat, "lat")
    if not -180 <= lon <= 180:
        raise ValidationError("lon must be between -180 and 180", "lon")
    if not -90 <= lat <= 90:
        raise ValidationError("lat must be between -90 and 90", "lat")
    crs = (crs or "wgs84")
    if not isinstance(crs, str) or crs.lower() not in CRS_NAMES:
        raise ValidationError("crs must be wgs84 or gcj02", "crs")
    if crs.lower() == "gcj02":
        lon, lat = gcj02_to_wgs84(lon, lat)
    return lon, lat


def _float_text(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValidationError(f"{name} must be a number (decimal degrees)", name) from None


def parse_client_id(value) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError("client_id must be a UUID string", "client_id")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError("client_id must be a UUID", "client_id") from None


def parse_timestamp(value, name: str) -> datetime:
    """ISO 8601 date-time; without an offset it is Beijing time."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be an ISO 8601 date-time such as 2026-11-26T09:30+08:00", name)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 date-time such as 2026-11-26T09:30+08:00",
                              name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA_TZ)


def _optional_text(data: Mapping, name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text", name)
    if len(value) > limit:
        raise ValidationError(f"{name} is too long ({len(value)} characters; at most {limit})", name)
    return value.strip() or None


# Known (category, subcategory) codes per database, read once and again only on a miss: a code
# added to the tables later is found, and an unknown one is refused only after the tables say so.
_known_kinds: dict[str, tuple[frozenset, frozenset]] = {}


def _kinds(session: Session, refresh: bool = False) -> tuple[frozenset, frozenset]:
    key = str(session.get_bind().engine.url)
    if refresh or key not in _known_kinds:
        categories = frozenset(session.scalars(select(IncidentCategory.code)))
        subcategories = frozenset(session.execute(select(IncidentSubcategory.category_code,
                                                         IncidentSubcategory.code)).tuples())
        _known_kinds[key] = (categories, subcategories)
    return _known_kinds[key]


def _known_kind(session: Session, category: str, subcategory: str | None) -> bool:
    for refresh in (False, True):
        categories, subcategories = _kinds(session, refresh)
        if category in categories and (subcategory is None or (category, subcategory) in subcategories):
            return True
    return False


def validate_category(session: Session, category, subcategory) -> tuple[str, str | None]:
    """Category and subcategory codes checked against the database tables; returns the codes."""
    if category is None or category == "":
        raise ValidationError("category is required", "category")
    if subcategory == "":
        subcategory = None
    if isinstance(category, str) and (subcategory is None or isinstance(subcategory, str)) \
            and _known_kind(session, category, subcategory):
        return category, subcategory
    categories, subcategories = _kinds(session)
    if not isinstance(category, str) or category not in categories:
        raise ValidationError(f"unknown category {category!r}; one of {', '.join(sorted(categories))}", "category")
    known = ", ".join(sorted(code for cat, code in subcategories if cat == category))
    raise ValidationError(f"unknown subcategory {subcategory!r} of {category}; one of {known}", "subcategory")


def validate_new_incident(session: Session, user: User, data: Mapping, now: datetime) -> dict:
    """Check every field of a new incident that needs no spatial query; returns the column values
    (WGS84 lon/lat included). Where the point falls (a grid, the user's area) is checked by the
    statement that writes the incident (``create_incident``).

    Raises ValidationError naming the first bad field, or Forbidden for a role that may not
    report. Writes nothing.
    """
    if user.role not in REPORTING_ROLES:
        raise Forbidden(f"role {user.role} may not report incidents", "role")
    lon, lat = parse_coordinates(data.get("lon"), data.get("lat"), data.get("crs", "wgs84"))
    category, subcategory = validate_category(session, data.get("category"), data.get("subcategory"))

    severity = data.get("severity", 1)
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 4:
        raise ValidationError("severity must be a whole number from 1 to 4", "severity")

    occurred_raw = data.get("occurred_at")
    occurred_at = now if occurred_raw in (None, "") else parse_timestamp(occurred_raw, "occurred_at")
    if occurred_at > now + CLOCK_SKEW:
        raise ValidationError("occurred_at is in the future", "occurred_at")

    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ValidationError("description must be text", "description")
    if len(description) > DESCRIPTION_MAX:
        raise ValidationError(f"description is too long ({len(description)} characters; at most "
                              f"{DESCRIPTION_MAX})", "description")

    enterprise = data.get("enterprise_involved", False)
    if not isinstance(enterprise, bool):
        raise ValidationError("enterprise_involved must be true or false", "enterprise_involved")
    legal_class = data.get("legal_class", "none") or "none"
    if legal_class not in LEGAL_CLASSES:
        raise ValidationError(f"legal_class must be one of {', '.join(LEGAL_CLASSES)}", "legal_class")
    contact_phone = _optional_text(data, "contact_phone", PHONE_MAX)
    parties = _optional_text(data, "parties", PARTIES_MAX)
    unit_id = data.get("unit_id")
    if unit_id == "":
        unit_id = None
    if unit_id is not None and (isinstance(unit_id, bool) or not isinstance(unit_id, int) or unit_id < 1):
        raise ValidationError("unit_id must be the id of an enterprise of the registry", "unit_id")

    return {"lon": lon, "lat": lat, "category": category, "subcategory": subcategory,
            "severity": severity, "occurred_at": occurred_at, "description": description.strip(),
            "enterprise_involved": enterprise, "legal_class": legal_class,
            "contact_phone": contact_phone, "parties": parties, "unit_id": unit_id}


# --- reporting --------------------------------------------------------------------------------

def create_incident(session: Session, user: User, data, settings: IncidentSettings = IncidentSettings(),
                    now: datetime | None = None, *, commit: bool = False) -> CreateResult:
    """Report an incident for ``user``.

    The fields are checked in Python first; then one statement (``REPORT_SQL``) finds the grid the
    point falls in, checks the user's area, writes the incident, its first history event and an
    audit entry, and finds possible duplicates. The client's ``client_id`` makes this idempotent:
    sending the same pin again returns the first incident (``created`` False), also when two
    copies race (INSERT ... ON CONFLICT DO NOTHING). Writes all three rows or nothing.

    ``commit``: the report is committed when this returns. On a session that has not begun a
    transaction (a web request) the statement then runs as its own transaction, so BEGIN, the
    statement and COMMIT are one round trip to the database.
    """
    now = now or utcnow()
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    client_id = parse_client_id(data.get("client_id"))
    try:
        values = validate_new_incident(session, user, data, now)
    except (ValidationError, Forbidden):
        # A pin sent again after it was stored is answered with the stored incident, as before
        # any check (only looked up when the checks fail, so a new report costs no extra query).
        existing = _stored(session, client_id)
        if existing is not None:
            return _replayed(user, existing)
        raise
    window = timedelta(hours=settings.duplicate_window_hours)
    params = {
        **values, **_here_params(values["lon"], values["lat"], settings), **_scope_params(user),
        **visibility_params(user), "client_id": str(client_id or uuid.uuid4()),
        "client_id_text": str(client_id or ""), "now": now, "user_id": user.id, "crs": data.get("crs") or "wgs84",
        "open_statuses": list(OPEN_STATUSES), "dup_from": values["occurred_at"] - window,
        "dup_to": values["occurred_at"] + window, "exclude_id": None, "dup_limit": DUPLICATES_LIMIT,
    }
    # A statement is atomic: run alone (autocommit), it is a transaction of its own.
    own_transaction = commit and not session.in_transaction() and isinstance(session.get_bind(), Engine)
    try:
        if own_transaction:
            row = REPORT.run_alone(session.get_bind(), params)
        else:
            row = REPORT.execute(session.connection(), params).one()
    except DBAPIError as err:
        if getattr(err.orig, "pgcode", None) == "GM001":
            raise ValidationError("the point lies in no grid of the county", "lon") from None
        raise
    if not row.in_grid:
        if row.in_county:
            raise ValidationError("the point lies in no grid of the county", "lon")
        raise ValidationError("the point is outside the county (该位置在本县之外)", "lon")
    if not row.unit_ok:
        raise ValidationError(f"unit_id {values['unit_id']} is no active enterprise of the registry in "
                              f"{row.village_name} (该村无此在册企业/单位)", "unit_id")
    if not row.known_kind:   # the codes' tables changed since they were read
        _kinds(session, refresh=True)
        validate_category(session, values["category"], values["subcategory"])
    if not row.in_scope:
        label = f"{row.town_name} {row.village_name} {row.grid_name}"
        raise Forbidden(f"该位置（{label}）不在您的辖区内 / the point is outside your area", "lon")
    if row.id is None:  # the client_id is stored already (maybe by a copy of this request racing it)
        return _replayed(user, _stored(session, client_id))
    if commit and not own_transaction:
        session.commit()
    return CreateResult(row, True, [_duplicate_dict(d) for d in row.duplicates], _reported_case(user, row))


def _stored(session: Session, client_id: uuid.UUID | None) -> Incident | None:
    if client_id is None:
        return None
    return session.scalar(select(Incident).where(Incident.client_id == client_id))


def _replayed(user: User, existing: Incident) -> CreateResult:
    if existing.reporter_id != user.id:
        raise Conflict("client_id is already used by another report", "client_id")
    return CreateResult(existing, False, [])


def _reported_case(user: User, row) -> dict:
    """The new case as ``incident_detail`` + ``workflow.case_detail`` show it, from what the
    report's statement returned (no second read)."""
    from gridmap.services.workflow import allowed_actions  # workflow builds on this module

    personal = can_see_personal_details(user)
    props = _summary_properties(row, full_description=True, personal=personal)
    props.update({"grid_name": row.grid_name, "dispatched_to_kind": row.dispatched_to_kind,
                  "dispatched_to": row.dispatched_to, "client_id": str(row.client_id) if row.client_id else None,
                  "personal_details_shown": personal})
    name = getattr(user, "display_name", None) or user.username
    props["reporter"] = name
    props["history"] = [{"from_status": None, "to_status": "reported", "to_status_zh": STATUS_ZH["reported"],
                         "from_status_zh": None, "at": _iso(row.event_at), "actor": name, "actor_role": user.role,
                         "note": "", "data": row.event_data or {}}]
    props["mediation_point_name"] = None
    props["dispatched_to_name"] = None
    props["allowed_actions"] = [
        {"name": a.name, "label_zh": a.label_zh, "label_en": a.label_en,
         "needs": [n.rstrip("?") for n in a.needs], "note_required": a.note_required}
        for a in allowed_actions(user, row)]
    return _feature(row, props)


def _duplicate_dict(found: dict) -> dict:
    return {"id": found["id"], "category": found["category"], "subcategory": found["subcategory"],
            "status": found["status"], "status_zh": STATUS_ZH[found["status"]],
            "occurred_at": _iso(datetime.fromisoformat(found["occurred_at"])),
            "description": _short(found["description"]), "village_name": found["village_name"],
            "distance_m": round(float(found["distance_m"]), 1)}


DUPLICATES_LIMIT = 10


def _here_params(lon: float, lat: float, settings: IncidentSettings) -> dict:
    # A bounding box in degrees lets the GiST index narrow the duplicate search before the metric test.
    distance = settings.duplicate_distance_m
    dlat = distance / 110_000 * 1.1
    dlon = distance / (111_320 * max(math.cos(math.radians(lat)), 0.01)) * 1.1
    return {"lon": lon, "lat": lat, "srid": settings.metric_srid, "distance": distance,
            "west": lon - dlon, "south": lat - dlat, "east": lon + dlon, "north": lat + dlat}


def _scope_params(user: User) -> dict:
    """Where ``user`` may report, for REPORT_SQL (the rule of ``in_user_scope``)."""
    scopes = list(user.scopes or ())
    return {"scope_county_wide": is_county_wide(user), "scopes": scopes,
            "scope_zones": [s for s in scopes if not s.isdigit()]}


def visibility_params(user: User) -> dict:
    """What ``user`` may see, as the parameters of VISIBLE_SQL (the rule of ``visible_condition``)."""
    county_wide, mediator = is_county_wide(user), user.role == "mediator"
    grids, towns, villages, zones = [], [], [], []
    if not county_wide and not mediator:
        for code in user.scopes or ():
            if len(code) == 15:
                grids.append(code)
            elif len(code) == 12 and code.endswith("000") and code[6:9] != "000":
                towns.append(code)
                villages.append(code)
            elif len(code) == 12:
                villages.append(code)
        zones = [c for c in user.scopes or () if not c.isdigit()]
    return {"vis_county_wide": county_wide, "vis_mediator": mediator,
            "vis_points": mediation_point_scopes(user) if mediator else [], "vis_grids": grids,
            "vis_towns": towns, "vis_villages": villages, "vis_zones": zones,
            "vis_reporter": user.id if user.role == "grid_worker" else None}


# Incidents (as ``i``) the user may see: ``visible_condition`` as SQL text over visibility_params.
VISIBLE_SQL = """
    (CAST(:vis_county_wide AS boolean)
     OR (CAST(:vis_mediator AS boolean) AND i.mediation_point_id = ANY(CAST(:vis_points AS integer[])))
     OR (NOT CAST(:vis_mediator AS boolean)
         AND (i.grid_code = ANY(CAST(:vis_grids AS text[])) OR i.town_code = ANY(CAST(:vis_towns AS text[]))
              OR i.village_code = ANY(CAST(:vis_villages AS text[]))
              OR i.reporter_id = CAST(:vis_reporter AS integer)
              OR (cardinality(CAST(:vis_zones AS text[])) > 0
                  AND ST_Intersects(i.geom, (SELECT ST_Union(z.geom) FROM patrol_zones AS z
                                               WHERE z.code = ANY(CAST(:vis_zones AS text[]))))))))"""

# The point, and the same point in the deployment's metric CRS.
HERE_CTE = """
    here AS (
        SELECT p.geom, ST_Transform(p.geom, CAST(:srid AS integer)) AS metric
          FROM (SELECT ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326) AS geom) AS p)"""

# Possible duplicates: open incidents of the category within the distance (metric CRS) and the time
# window, nearest first. The bounding box in degrees (&&, constants so the planner sees them) is
# what the GiST index on geom answers; the other conditions filter its few rows.
DUPLICATES_CTE = """
    duplicates AS (
        SELECT i.id, i.category, i.subcategory, i.status, i.occurred_at, i.description,
               v.name AS village_name, ST_Distance(ST_Transform(i.geom, CAST(:srid AS integer)), here.metric) AS distance_m
          FROM incidents AS i JOIN villages AS v ON v.code = i.village_code, here
         WHERE i.category = :category AND i.status = ANY(CAST(:open_statuses AS text[]))
           AND i.geom && ST_MakeEnvelope(CAST(:west AS float8), CAST(:south AS float8),
                                         CAST(:east AS float8), CAST(:north AS float8), 4326)
           AND ST_DWithin(ST_Transform(i.geom, CAST(:srid AS integer)), here.metric, CAST(:distance AS float8))
           AND i.occurred_at BETWEEN :dup_from AND :dup_to
           AND i.id IS DISTINCT FROM CAST(:exclude_id AS bigint)
           AND {guard} AND """ + VISIBLE_SQL + """
         ORDER BY distance_m, i.id
         LIMIT CAST(:dup_limit AS integer))"""

DUPLICATES_JSON = """
    (SELECT coalesce(json_agg(json_build_object(
                'id', d.id, 'category', d.category, 'subcategory', d.subcategory, 'status', d.status,
                'occurred_at', d.occurred_at, 'description', d.description, 'village_name', d.village_name,
                'distance_m', d.distance_m) ORDER BY d.distance_m, d.id), '[]')
       FROM duplicates AS d)"""

# A report in one statement (prepared once per connection, one plan for all: see REPORT). place: the grid the point falls in (the lowest code, the placement
# trigger's rule) with its village and town; kind: the category and subcategory rows; allowed: the
# place when the user may report there (a scope code, or a patrol zone holding the point). Only
# then are the incident, its first event and the audit entry written. ``duplicates`` reads the
# statement's snapshot, which does not hold the new incident.
REPORT_SQL = text("WITH" + HERE_CTE + """,
    place AS (
        SELECT g.code AS grid_code, g.name AS grid_name, v.code AS village_code, v.name AS village_name,
               t.code AS town_code, t.name AS town_name
          FROM grids AS g JOIN villages AS v ON v.code = g.village_code JOIN towns AS t ON t.code = v.town_code, here
         WHERE ST_Intersects(g.geom, here.geom)
         ORDER BY g.code
         LIMIT 1),
    kind AS (
        SELECT c.name_zh AS category_zh, c.colour, s.name_zh AS subcategory_zh
          FROM incident_categories AS c
          LEFT JOIN incident_subcategories AS s ON s.category_code = c.code AND s.code = CAST(:subcategory AS text)
         WHERE c.code = :category AND (CAST(:subcategory AS text) IS NULL OR s.code IS NOT NULL)),
    unit AS (
        SELECT p.id, p.name FROM places AS p, place
         WHERE p.id = CAST(:unit_id AS integer) AND p.kind = 'enterprise' AND p.active
           AND p.village_code = place.village_code),
    allowed AS (
        SELECT place.* FROM place, here
         WHERE EXISTS (SELECT 1 FROM kind)
           AND (CAST(:unit_id AS integer) IS NULL OR EXISTS (SELECT 1 FROM unit))
           AND (CAST(:scope_county_wide AS boolean)
                OR place.grid_code = ANY(CAST(:scopes AS text[])) OR place.village_code = ANY(CAST(:scopes AS text[]))
                OR place.town_code = ANY(CAST(:scopes AS text[]))
                OR EXISTS (SELECT 1 FROM patrol_zones AS z
                            WHERE z.code = ANY(CAST(:scope_zones AS text[])) AND ST_Intersects(z.geom, here.geom)))),
    added AS (
        INSERT INTO incidents (client_id, category, subcategory, severity, legal_class, enterprise_involved, status,
                               occurred_at, reported_at, reporter_id, description, contact_phone, parties, geom,
                               grid_code, village_code, town_code, unit_id)
        SELECT CAST(:client_id AS uuid), :category, CAST(:subcategory AS text), CAST(:severity AS smallint),
               :legal_class, CAST(:enterprise_involved AS boolean), 'reported', CAST(:occurred_at AS timestamptz),
               CAST(:now AS timestamptz), CAST(:user_id AS integer), :description, CAST(:contact_phone AS text),
               CAST(:parties AS text), here.geom, allowed.grid_code, allowed.village_code, allowed.town_code,
               (SELECT id FROM unit)
          FROM allowed, here
        ON CONFLICT (client_id) WHERE client_id IS NOT NULL DO NOTHING
        RETURNING *),
    first_event AS (
        INSERT INTO incident_events (incident_id, from_status, to_status, actor_id, at, note, data)
        SELECT added.id, NULL, 'reported', CAST(:user_id AS integer), CAST(:now AS timestamptz), '',
               jsonb_build_object('place', jsonb_build_object(
                   'grid', jsonb_build_object('code', allowed.grid_code, 'name', allowed.grid_name),
                   'village', jsonb_build_object('code', allowed.village_code, 'name', allowed.village_name),
                   'town', jsonb_build_object('code', allowed.town_code, 'name', allowed.town_name)),
                   'crs', CAST(:crs AS text))
          FROM added, allowed
        RETURNING at, data),
    audited AS (
        INSERT INTO audit_log (user_id, action, entity, entity_id, detail)
        SELECT CAST(:user_id AS integer), 'incident.create', 'incident', CAST(added.id AS text),
               jsonb_build_object('category', added.category, 'grid', allowed.grid_code,
                                  'client_id', CAST(:client_id_text AS text))
          FROM added, allowed),""" + DUPLICATES_CTE.format(guard="EXISTS (SELECT 1 FROM added)") + """
SELECT added.id, added.client_id, added.category, added.subcategory, added.severity, added.legal_class,
       added.enterprise_involved, added.status, added.occurred_at, added.reported_at, added.accepted_at,
       added.deadline_at, added.resolved_at, added.closed_at, added.reporter_id, added.description,
       added.contact_phone, added.parties, added.resolution_level, added.satisfaction, added.duplicate_of,
       added.mediation_point_id, added.mediation_outcome, added.dispatched_to_kind, added.dispatched_to,
       added.unit_id, unit.name AS unit_name, (CAST(:unit_id AS integer) IS NULL OR unit.id IS NOT NULL) AS unit_ok,
       added.grid_code, added.village_code, added.town_code, ST_X(added.geom) AS lon, ST_Y(added.geom) AS lat,
       false AS overdue,
       place.grid_code IS NOT NULL AS in_grid, kind.category_zh IS NOT NULL AS known_kind,
       allowed.grid_code IS NOT NULL AS in_scope, place.grid_name, place.village_name, place.town_name,
       kind.category_zh, kind.colour, kind.subcategory_zh, first_event.at AS event_at, first_event.data AS event_data,
       CASE WHEN place.grid_code IS NULL THEN EXISTS (
           SELECT 1 FROM counties AS c, here WHERE ST_Intersects(c.geom, here.geom)) END AS in_county,
       """ + DUPLICATES_JSON + """ AS duplicates
  FROM (SELECT 1) AS one
  LEFT JOIN place ON true LEFT JOIN kind ON true LEFT JOIN unit ON true LEFT JOIN allowed ON true
  LEFT JOIN added ON true LEFT JOIN first_event ON true""")

REPORT = PreparedStatement("gridmap_report_incident", REPORT_SQL.text, {
    "lon": "float8", "lat": "float8", "srid": "integer", "distance": "float8", "west": "float8", "south": "float8",
    "east": "float8", "north": "float8", "category": "text", "subcategory": "text", "scope_county_wide": "boolean",
    "scopes": "text[]", "scope_zones": "text[]", "client_id": "uuid", "client_id_text": "text", "severity": "smallint",
    "legal_class": "text", "enterprise_involved": "boolean", "occurred_at": "timestamptz", "now": "timestamptz",
    "user_id": "integer", "description": "text", "contact_phone": "text", "parties": "text", "crs": "text",
    "open_statuses": "text[]", "dup_from": "timestamptz", "dup_to": "timestamptz", "exclude_id": "bigint",
    "dup_limit": "integer", "vis_county_wide": "boolean", "vis_mediator": "boolean", "vis_points": "integer[]",
    "vis_grids": "text[]", "vis_towns": "text[]", "vis_villages": "text[]", "vis_zones": "text[]",
    "vis_reporter": "integer", "unit_id": "integer"}, generic_plan=True)

FIND_DUPLICATES_SQL = text("WITH" + HERE_CTE + "," + DUPLICATES_CTE.format(guard="true") + "\nSELECT"
                           + DUPLICATES_JSON)


def possible_duplicates(session: Session, user: User, category: str, lon: float, lat: float,
                        occurred_at: datetime, settings: IncidentSettings = IncidentSettings(),
                        exclude_id: int | None = None, limit: int = DUPLICATES_LIMIT) -> list[dict]:
    """Open incidents of the same category within the configured distance and time window, nearest first."""
    window = timedelta(hours=settings.duplicate_window_hours)
    params = {**_here_params(lon, lat, settings), **visibility_params(user), "category": category,
              "open_statuses": list(OPEN_STATUSES), "dup_from": occurred_at - window, "dup_to": occurred_at + window,
              "exclude_id": exclude_id, "dup_limit": limit}
    return [_duplicate_dict(d) for d in session.execute(FIND_DUPLICATES_SQL, params).scalar_one()]


def find_duplicates(session: Session, user: User, args: Mapping, settings: IncidentSettings = IncidentSettings(),
                    now: datetime | None = None) -> list[dict]:
    """Possible duplicates for a pin not yet saved (query-string arguments, as the pin page sends them)."""
    lon, lat = parse_coordinates(args.get("lon"), args.get("lat"), args.get("crs", "wgs84"), from_text=True)
    category, _ = validate_category(session, args.get("category"), None)
    raw = args.get("occurred_at")
    occurred_at = parse_timestamp(raw, "occurred_at") if raw else (now or utcnow())
    exclude = args.get("exclude")
    exclude_id = _int_arg(exclude, "exclude") if exclude else None
    return possible_duplicates(session, user, category, lon, lat, occurred_at, settings, exclude_id)


# --- listing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class IncidentFilters:
    bbox: tuple[float, float, float, float] | None = None
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    town: str | None = None
    village: str | None = None
    grid: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    overdue: bool | None = None
    mine: bool = False
    sort: str = "-reported_at"

    def query_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for links to exports and further pages)."""
        args: dict[str, str] = {}
        if self.bbox:
            args["bbox"] = ",".join(f"{v:.6f}" for v in self.bbox)
        if self.categories:
            args["category"] = ",".join(self.categories)
        if self.statuses:
            args["status"] = ",".join(self.statuses)
        for name in ("town", "village", "grid"):
            if getattr(self, name):
                args[name] = getattr(self, name)
        if self.occurred_from:
            args["from"] = _date_text(self.occurred_from, end_of_day=False)
        if self.occurred_to:
            args["to"] = _date_text(self.occurred_to, end_of_day=True)
        if self.overdue is not None:
            args["overdue"] = "1" if self.overdue else "0"
        if self.mine:
            args["mine"] = "1"
        if self.sort != "-reported_at":
            args["sort"] = self.sort
        return args


def _int_arg(value, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ValidationError(f"{name} must be a whole number", name) from None


def _list_arg(args: Mapping, name: str) -> tuple[str, ...]:
    raw = args.get(name) or ""
    return tuple(dict.fromkeys(p.strip() for p in str(raw).split(",") if p.strip()))


def _date_arg(value, name: str, end_of_day: bool) -> datetime | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0), CHINA_TZ)
    return parse_timestamp(text, name)


def _date_text(value: datetime, end_of_day: bool) -> str:
    """The inverse of ``_date_arg``: a whole Beijing day back as its date."""
    local = value.astimezone(CHINA_TZ)
    if local.time() == time(0):
        return (local.date() - timedelta(days=1) if end_of_day else local.date()).isoformat()
    return value.isoformat()


def parse_filters(session: Session, args: Mapping, default_sort: str = "-reported_at") -> IncidentFilters:
    """Filters from query-string arguments; every bad value raises ValidationError naming it.

    ``category`` and ``status`` take comma lists (``status=open`` means every open status);
    ``from``/``to`` take dates (``to`` includes its whole day) or date-times.
    """
    categories = _list_arg(args, "category")
    if categories:
        known = set(session.scalars(select(IncidentCategory.code)))
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise ValidationError(f"unknown category {unknown[0]!r}", "category")
    statuses: list[str] = []
    for status in _list_arg(args, "status"):
        if status == "open":
            statuses.extend(OPEN_STATUSES)
        elif status in STATUSES:
            statuses.append(status)
        else:
            raise ValidationError(f"unknown status {status!r}; one of open, {', '.join(STATUSES)}", "status")
    codes = {}
    for name, digits in (("town", 12), ("village", 12), ("grid", 15)):
        value = args.get(name) or None
        if value is not None and not re.fullmatch(rf"\d{{{digits}}}", str(value)):
            raise ValidationError(f"{name} must be a {digits}-digit code", name)
        codes[name] = value
    occurred_from = _date_arg(args.get("from"), "from", end_of_day=False)
    occurred_to = _date_arg(args.get("to"), "to", end_of_day=True)
    if occurred_from and occurred_to and occurred_from >= occurred_to:
        raise ValidationError("from must be before to", "from")
    sort = args.get("sort") or default_sort
    if sort not in SORTS:
        raise ValidationError(f"sort must be one of {', '.join(SORTS)}", "sort")
    return IncidentFilters(bbox=parse_bbox(args.get("bbox")), categories=categories,
                           statuses=tuple(dict.fromkeys(statuses)), occurred_from=occurred_from,
                           occurred_to=occurred_to, overdue=parse_bool(args.get("overdue"), "overdue"),
                           mine=bool(parse_bool(args.get("mine"), "mine")), sort=sort, **codes)


def overdue_condition(now: datetime):
    """Open and past its deadline (a case resolved in time is not overdue while awaiting closure)."""
    return and_(Incident.status.in_(OPEN_STATUSES), Incident.deadline_at.is_not(None),
                Incident.deadline_at < func.coalesce(Incident.resolved_at, literal(now)))


def filter_conditions(user: User, filters: IncidentFilters, now: datetime) -> list:
    conditions = [visible_condition(user)]
    if filters.bbox:
        conditions.append(Incident.geom.intersects(func.ST_MakeEnvelope(*filters.bbox, 4326)))
    if filters.categories:
        conditions.append(Incident.category.in_(filters.categories))
    if filters.statuses:
        conditions.append(Incident.status.in_(filters.statuses))
    if filters.town:
        conditions.append(Incident.town_code == filters.town)
    if filters.village:
        conditions.append(Incident.village_code == filters.village)
    if filters.grid:
        conditions.append(Incident.grid_code == filters.grid)
    if filters.occurred_from:
        conditions.append(Incident.occurred_at >= filters.occurred_from)
    if filters.occurred_to:
        conditions.append(Incident.occurred_at < filters.occurred_to)
    if filters.overdue is not None:
        overdue = overdue_condition(now)
        conditions.append(overdue if filters.overdue else ~overdue)
    if filters.mine:
        conditions.append(Incident.reporter_id == user.id)
    return conditions


def _short(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= SHORT_DESCRIPTION else text[:SHORT_DESCRIPTION - 1] + "…"


def _summary_query(now: datetime):
    sub = IncidentSubcategory
    return (select(Incident.id, Incident.category, Incident.subcategory, Incident.severity, Incident.status,
                   Incident.occurred_at, Incident.reported_at, Incident.accepted_at, Incident.deadline_at,
                   Incident.resolved_at, Incident.closed_at, Incident.grid_code, Incident.village_code,
                   Incident.town_code, Incident.description, Incident.enterprise_involved, Incident.legal_class,
                   Incident.resolution_level, Incident.satisfaction, Incident.duplicate_of,
                   Incident.mediation_point_id, Incident.mediation_outcome, Incident.reporter_id,
                   Incident.contact_phone, Incident.parties, Incident.unit_id,
                   RegistryPlace.name.label("unit_name"),
                   IncidentCategory.name_zh.label("category_zh"), IncidentCategory.colour,
                   sub.name_zh.label("subcategory_zh"), Village.name.label("village_name"),
                   Town.name.label("town_name"),
                   func.ST_X(Incident.geom).label("lon"), func.ST_Y(Incident.geom).label("lat"),
                   case((overdue_condition(now), True), else_=False).label("overdue"))
            .join(IncidentCategory, IncidentCategory.code == Incident.category)
            .outerjoin(sub, and_(sub.category_code == Incident.category, sub.code == Incident.subcategory))
            .join(Village, Village.code == Incident.village_code)
            .join(Town, Town.code == Incident.town_code)
            .outerjoin(RegistryPlace, RegistryPlace.id == Incident.unit_id))


def _iso(value: datetime | None) -> str | None:
    """Times go out in Beijing time, as users read them."""
    return value.astimezone(CHINA_TZ).isoformat() if value else None


def _summary_properties(row, *, full_description: bool = False, personal: bool = False) -> dict:
    props = {
        "id": row.id, "category": row.category, "category_zh": row.category_zh, "colour": row.colour,
        "subcategory": row.subcategory, "subcategory_zh": row.subcategory_zh, "severity": row.severity,
        "status": row.status, "status_zh": STATUS_ZH[row.status], "overdue": bool(row.overdue),
        "occurred_at": _iso(row.occurred_at), "reported_at": _iso(row.reported_at),
        "accepted_at": _iso(row.accepted_at), "deadline_at": _iso(row.deadline_at),
        "resolved_at": _iso(row.resolved_at), "closed_at": _iso(row.closed_at),
        "grid_code": row.grid_code, "village_code": row.village_code, "village_name": row.village_name,
        "town_code": row.town_code, "town_name": row.town_name,
        "description": row.description if full_description else _short(row.description),
        "enterprise_involved": row.enterprise_involved, "legal_class": row.legal_class,
        "resolution_level": row.resolution_level, "satisfaction": row.satisfaction,
        "duplicate_of": row.duplicate_of, "mediation_point_id": row.mediation_point_id,
        "mediation_outcome": row.mediation_outcome, "unit_id": row.unit_id, "unit_name": row.unit_name,
    }
    if personal:
        props.update({name: getattr(row, name) for name in PERSONAL_FIELDS})
    return props


def _feature(row, properties: dict) -> dict:
    return {"type": "Feature", "id": row.id,
            "geometry": {"type": "Point", "coordinates": [round(row.lon, 7), round(row.lat, 7)]},
            "properties": properties}


def list_incidents(session: Session, user: User, filters: IncidentFilters, page: int = 1,
                   page_size: int | None = None, settings: IncidentSettings = IncidentSettings(),
                   now: datetime | None = None) -> dict:
    """One page of the incidents ``user`` may see, as a GeoJSON FeatureCollection.

    ``numberMatched`` counts every match; ``next_page`` is None on the last page. No personal
    details: those are on the case (``incident_detail``) and in exports for handling roles.
    """
    now = now or utcnow()
    page_size = settings.page_size if page_size is None else page_size
    if page < 1:
        raise ValidationError("page must be 1 or more", "page")
    if not 1 <= page_size <= settings.max_page_size:
        raise ValidationError(f"page_size must be from 1 to {settings.max_page_size}", "page_size")
    conditions = filter_conditions(user, filters, now)
    matched = session.scalar(select(func.count()).select_from(Incident).where(*conditions))
    query = (_summary_query(now).where(*conditions).order_by(*SORTS[filters.sort])
             .offset((page - 1) * page_size).limit(page_size))
    features = [_feature(row, _summary_properties(row)) for row in session.execute(query)]
    return {"type": "FeatureCollection", "features": features, "numberMatched": matched,
            "numberReturned": len(features), "page": page, "page_size": page_size,
            "next_page": page + 1 if page * page_size < matched else None}


# What a marker and its popup need; the rest is on the case page.
MAP_PROPERTIES = ("id", "category", "category_zh", "subcategory_zh", "severity", "status", "status_zh", "overdue",
                  "occurred_at", "town_name", "village_name", "description")


def map_layer(session: Session, user: User, filters: IncidentFilters, zoom: int,
              settings: IncidentSettings = IncidentSettings(), now: datetime | None = None) -> dict:
    """What the incidents map shows for one view: the incidents themselves, or, when more than
    ``settings.map_feature_cap`` are in view, server-side clusters (one feature per grid cell with
    its count), so the response never grows with the number of incidents."""
    now = now or utcnow()
    if not 0 <= zoom <= 24:
        raise ValidationError("zoom must be from 0 to 24", "zoom")
    conditions = filter_conditions(user, filters, now)
    cap = settings.map_feature_cap
    in_view = session.scalar(select(func.count()).select_from(
        select(Incident.id).where(*conditions).limit(cap + 1).subquery()))
    if in_view <= cap:
        query = _summary_query(now).where(*conditions).order_by(*SORTS[filters.sort]).limit(cap)
        features = [_feature(row, {k: v for k, v in _summary_properties(row).items() if k in MAP_PROPERTIES})
                    for row in session.execute(query)]
        return {"type": "FeatureCollection", "features": features, "clustered": False,
                "numberMatched": in_view, "numberReturned": len(features)}
    # Cells of about 60 screen pixels at this zoom (256-pixel tiles).
    cell = 360.0 / (256 * 2 ** zoom) * 60
    snapped = func.ST_SnapToGrid(Incident.geom, cell)
    centre = func.ST_Centroid(func.ST_Collect(Incident.geom))
    query = (select(func.count().label("n"), func.ST_X(centre).label("lon"), func.ST_Y(centre).label("lat"),
                    func.sum(case((overdue_condition(now), 1), else_=0)).label("overdue"),
                    func.mode().within_group(Incident.category).label("category"))
             .where(*conditions).group_by(snapped))
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                 "properties": {"cluster": True, "count": r.n, "overdue": int(r.overdue),
                                "category": r.category}} for r in session.execute(query)]
    matched = sum(f["properties"]["count"] for f in features)
    return {"type": "FeatureCollection", "features": features, "clustered": True, "numberMatched": matched,
            "numberReturned": len(features)}


# --- one case ---------------------------------------------------------------------------------

def incident_detail(session: Session, user: User, incident_id: int, now: datetime | None = None) -> dict:
    """One incident as a GeoJSON Feature with every field the user may see and its history."""
    now = now or utcnow()
    get_visible_incident(session, user, incident_id)
    row = session.execute(_summary_query(now).add_columns(
        Incident.dispatched_to_kind, Incident.dispatched_to, Incident.client_id,
        Grid.name.label("grid_name")).join(Grid, Grid.code == Incident.grid_code)
        .where(Incident.id == incident_id)).one()
    props = _summary_properties(row, full_description=True, personal=can_see_personal_details(user))
    props.update({"grid_name": row.grid_name, "dispatched_to_kind": row.dispatched_to_kind,
                  "dispatched_to": row.dispatched_to, "client_id": str(row.client_id) if row.client_id else None,
                  "personal_details_shown": can_see_personal_details(user)})
    reporter = session.get(User, row.reporter_id) if row.reporter_id else None
    props["reporter"] = (reporter.display_name or reporter.username) if reporter else None
    props["history"] = incident_history(session, incident_id)
    return _feature(row, props)


def incident_history(session: Session, incident_id: int) -> list[dict]:
    rows = session.execute(
        select(IncidentEvent, User.username, User.display_name, User.role)
        .outerjoin(User, User.id == IncidentEvent.actor_id)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.at, IncidentEvent.id))
    return [{"from_status": e.from_status, "to_status": e.to_status,
             "to_status_zh": STATUS_ZH.get(e.to_status, e.to_status),
             "from_status_zh": STATUS_ZH.get(e.from_status, e.from_status), "at": _iso(e.at),
             "actor": (display or username) if username else None, "actor_role": role,
             "note": e.note, "data": e.data or {}}
            for e, username, display, role in rows]


# --- exports ----------------------------------------------------------------------------------

EXPORT_COLUMNS = ("id", "category", "category_zh", "subcategory", "subcategory_zh", "severity", "status",
                  "status_zh", "overdue", "occurred_at", "reported_at", "accepted_at", "deadline_at",
                  "resolved_at", "closed_at", "town_code", "town_name", "village_code", "village_name",
                  "grid_code", "enterprise_involved", "legal_class", "resolution_level", "satisfaction",
                  "duplicate_of", "mediation_point_id", "mediation_outcome", "unit_id", "unit_name", "description",
                  "lon", "lat")


def export_columns(user: User) -> tuple[str, ...]:
    """Columns of an export for ``user``: personal details only for roles handling cases."""
    return EXPORT_COLUMNS + (PERSONAL_FIELDS if can_see_personal_details(user) else ())


def export_rows(session: Session, user: User, filters: IncidentFilters,
                now: datetime | None = None) -> Iterator[dict]:
    """Every incident matching ``filters`` that ``user`` may see, streamed in batches."""
    now = now or utcnow()
    personal = can_see_personal_details(user)
    query = (_summary_query(now).where(*filter_conditions(user, filters, now)).order_by(*SORTS[filters.sort])
             .execution_options(yield_per=1000))
    for row in session.execute(query):
        props = _summary_properties(row, full_description=True, personal=personal)
        props["lon"], props["lat"] = round(row.lon, 7), round(row.lat, 7)
        yield props


def export_geojson_chunks(session: Session, user: User, filters: IncidentFilters,
                          now: datetime | None = None) -> Iterator[str]:
    """A GeoJSON FeatureCollection as text chunks, so a large export is never held in memory."""
    yield '{"type": "FeatureCollection", "features": ['
    first = True
    for props in export_rows(session, user, filters, now):
        lon, lat = props.pop("lon"), props.pop("lat")
        feature = {"type": "Feature", "id": props["id"],
                   "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}
        yield ("" if first else ",\n") + json.dumps(feature, ensure_ascii=False)
        first = False
    yield "]}\n"


def scope_bounds(session: Session, user: User) -> tuple[float, float, float, float] | None:
    """(minlon, minlat, maxlon, maxlat) of the user's area, for the pin page's first view."""
    if is_county_wide(user) or not user.scopes:
        extent = session.scalar(select(func.ST_Extent(County.geom)))
    else:
        parts = [select(model.geom).where(model.code.in_(user.scopes)) for model in (Town, Village, Grid, PatrolZone)]
        union = parts[0].union_all(*parts[1:]).subquery()
        extent = session.scalar(select(func.ST_Extent(union.c.geom)))
    if not extent:
        return None
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", extent)]
    return tuple(numbers[:4]) if len(numbers) >= 4 else None
