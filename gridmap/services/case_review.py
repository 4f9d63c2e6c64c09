"""Case-quality review (案件评查): draw a sample of closed cases by a rule, reproducibly from a seed;
score each against the checklist; report scores by town and by handling unit.

The sample is drawn from the sorted ids of the cases the rule selects, with Python's
``random.Random(seed).sample`` -- the same seed over the same cases gives the same sample on any
machine. The seed is stored with the review, so anyone can draw it again.
"""
from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from sqlalchemy import String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from gridmap.catalog import (CATEGORY_BY_CODE, DISPATCH_KIND_ZH, RESOLUTION_LEVEL_ZH, REVIEW_CHECKLIST,
                             REVIEW_METHOD_ZH, REVIEW_METHODS, STATUS_ZH)
from gridmap.errors import Forbidden, NotFound, ValidationError
from gridmap.models import (CaseReview, CaseReviewItem, Incident, MediationPoint, PoliceStation, Town, User,
                            Village)
from gridmap.services.accounts import audit
from gridmap.services.incidents import CHINA_TZ
from gridmap.services.registries import _int, _text, parse_date, today_in_china

REVIEW_ROLES = ("admin", "county_officer")
# The viewer reads reports (scores, findings) but sees no case details beyond category and place.
REPORT_ROLES = REVIEW_ROLES + ("viewer",)
CLOSED_STATUSES = ("closed", "followed_up")
MAX_SAMPLE = 500
CHECKLIST_MAX = {code: points for code, _, points in REVIEW_CHECKLIST}


def require_reviewer(user: User) -> None:
    if user.role not in REVIEW_ROLES:
        raise Forbidden(f"role {user.role} may not run case reviews", "role")


def require_report_reader(user: User) -> None:
    if user.role not in REPORT_ROLES:
        raise Forbidden(f"role {user.role} may not read case reviews", "role")


def draw_sample(candidate_ids, size: int, seed: int) -> list[int]:
    """``size`` ids drawn without replacement from ``candidate_ids``; the same seed gives the same ids.

    The candidates are sorted first, so the answer depends on the set, not on the query's order.
    """
    population = sorted(set(int(i) for i in candidate_ids))
    if size >= len(population):
        return population
    return sorted(random.Random(seed).sample(population, size))


def _period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (datetime.combine(start, time(0), CHINA_TZ), datetime.combine(end + timedelta(days=1), time(0), CHINA_TZ))


def candidate_condition(method: str, start: date, end: date, town_code: str | None):
    """Closed cases closed in the period (in the town), narrowed by the method's rule."""
    lower, upper = _period_bounds(start, end)
    conditions = [Incident.status.in_(CLOSED_STATUSES), Incident.closed_at >= lower, Incident.closed_at < upper]
    if town_code:
        conditions.append(Incident.town_code == town_code)
    if method == "overdue":
        conditions.append(and_(Incident.deadline_at.is_not(None),
                               func.coalesce(Incident.resolved_at, Incident.closed_at) > Incident.deadline_at))
    elif method == "escalated":
        conditions.append(or_(Incident.resolution_level == "county",
                              and_(Incident.category == "PET", Incident.subcategory.in_(("county", "above_county")))))
    elif method == "complaints":
        conditions.append(Incident.satisfaction <= 2)
    return and_(*conditions)


def handling_unit_expression():
    """A readable name of who handled a case: where it was dispatched, else its mediation point, else
    the level it was resolved at."""
    station = select(PoliceStation.name).where(PoliceStation.code == Incident.dispatched_to).scalar_subquery()
    mediation = select(MediationPoint.name).where(
        MediationPoint.id == func.coalesce(Incident.mediation_point_id, -1)).scalar_subquery()
    village = select(Village.name).where(Village.code == Incident.village_code).scalar_subquery()
    town = select(Town.name).where(Town.code == Incident.town_code).scalar_subquery()
    dispatched_mediation = select(MediationPoint.name).where(
        cast(MediationPoint.id, String) == Incident.dispatched_to).scalar_subquery()
    return case(
        (Incident.dispatched_to_kind == "police_station", func.coalesce(station, DISPATCH_KIND_ZH["police_station"])),
        (Incident.dispatched_to_kind == "mediation_point",
         func.coalesce(dispatched_mediation, DISPATCH_KIND_ZH["mediation_point"])),
        (Incident.dispatched_to_kind == "village", village + "村（居）委会"),
        (Incident.dispatched_to_kind == "town_office", town + DISPATCH_KIND_ZH["town_office"]),
        (Incident.mediation_point_id.is_not(None), mediation),
        (Incident.resolution_level == "village", village + "村（居）委会"),
        (Incident.resolution_level == "town", town + "综治中心"),
        (Incident.resolution_level == "county", "县直部门"),
        else_=town + "综治中心")


def parse_review(session: Session, data: Mapping, today: date) -> dict:
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    method = data.get("method") or "random"
    if method not in REVIEW_METHODS:
        raise ValidationError(f"unknown method {method!r}; one of {', '.join(REVIEW_METHODS)}", "method")
    start = parse_date(data.get("period_start"), "period_start", latest=today)
    end = parse_date(data.get("period_end"), "period_end", latest=today)
    if start > end:
        raise ValidationError("period_start must not be after period_end", "period_start")
    town_code = _text(data, "town_code", 12) or None
    if town_code and session.get(Town, town_code) is None:
        raise ValidationError(f"no town {town_code!r}", "town_code")
    seed_raw = data.get("seed")
    seed = (secrets.randbits(31) if seed_raw in (None, "") else _int(data, "seed", 0, 2**53))
    incident_ids = None
    if method == "chosen":
        raw = data.get("incident_ids")
        if isinstance(raw, str):
            raw = [p for p in raw.replace("，", ",").replace(" ", ",").split(",") if p]
        if not isinstance(raw, list) or not raw:
            raise ValidationError("list the chosen cases' ids", "incident_ids")
        try:
            incident_ids = sorted({int(i) for i in raw})
        except (TypeError, ValueError):
            raise ValidationError("incident_ids must be whole numbers", "incident_ids") from None
    size = _int(data, "sample_size", 1, MAX_SAMPLE, default=len(incident_ids) if incident_ids else 10)
    title = _text(data, "title", 200) or f"{start:%Y年%m月}–{end:%Y年%m月}案件评查（{REVIEW_METHOD_ZH[method]}）"
    return {"title": title, "method": method, "seed": seed, "sample_size": size, "period_start": start,
            "period_end": end, "town_code": town_code, "incident_ids": incident_ids}


def create_review(session: Session, user: User, data: Mapping, today: date | None = None) -> CaseReview:
    """Draw a review's sample and store it (the review and one item per case), or nothing."""
    require_reviewer(user)
    values = parse_review(session, data, today or today_in_china())
    chosen = values.pop("incident_ids")
    condition = candidate_condition(values["method"], values["period_start"], values["period_end"],
                                    values["town_code"])
    if chosen is not None:
        found = set(session.scalars(select(Incident.id).where(Incident.id.in_(chosen), condition)))
        missing = [i for i in chosen if i not in found]
        if missing:
            raise ValidationError(f"case {missing[0]} is not a closed case of this period and town",
                                  "incident_ids")
        candidates = chosen
    else:
        candidates = session.scalars(select(Incident.id).where(condition)).all()
    if not candidates:
        raise ValidationError("no closed case matches the period, town and rule", "period_start")
    sample = draw_sample(candidates, values["sample_size"], values["seed"])
    with session.begin_nested():
        review = CaseReview(**values, created_by=user.id)
        session.add(review)
        session.flush()
        rows = session.execute(select(Incident.id, Incident.town_code, handling_unit_expression().label("unit"))
                               .where(Incident.id.in_(sample)).order_by(Incident.id)).all()
        session.add_all(CaseReviewItem(review_id=review.id, incident_id=r.id, town_code=r.town_code,
                                       handling_unit=(r.unit or "未知")[:200]) for r in rows)
        session.flush()
        audit(session, user.id, "review.create", "case_review", review.id,
              {"method": review.method, "seed": review.seed, "candidates": len(candidates), "sample": len(sample)})
    return review


def get_review(session: Session, user: User, review_id: int) -> CaseReview:
    require_report_reader(user)
    review = session.get(CaseReview, review_id)
    if review is None:
        raise NotFound(f"no case review {review_id}", "id")
    return review


def list_reviews(session: Session, user: User) -> list[dict]:
    require_report_reader(user)
    counts = (select(CaseReviewItem.review_id, func.count().label("n_items"),
                     func.count(CaseReviewItem.total).label("scored"), func.avg(CaseReviewItem.total).label("mean"))
              .group_by(CaseReviewItem.review_id).subquery())
    rows = session.execute(select(CaseReview, counts.c.n_items, counts.c.scored, counts.c.mean)
                           .outerjoin(counts, counts.c.review_id == CaseReview.id)
                           .order_by(CaseReview.created_at.desc(), CaseReview.id.desc()))
    return [{**review_dict(r), "items": int(items or 0), "scored": int(scored or 0),
             "mean_score": None if mean is None else round(float(mean), 1)} for r, items, scored, mean in rows]


def review_dict(review: CaseReview) -> dict:
    return {"id": review.id, "title": review.title, "method": review.method,
            "method_zh": REVIEW_METHOD_ZH[review.method], "seed": review.seed, "sample_size": review.sample_size,
            "period_start": review.period_start.isoformat(), "period_end": review.period_end.isoformat(),
            "town_code": review.town_code, "created_at": review.created_at.isoformat() if review.created_at else None}


def suggested_scores(incident: Incident) -> dict[str, int]:
    """What the record itself says for each checklist item, as a starting point for the reviewer."""
    facts = CHECKLIST_MAX["facts"] if len((incident.description or "").strip()) >= 10 else CHECKLIST_MAX["facts"] // 2
    on_time = (incident.deadline_at is None
               or (incident.resolved_at or incident.closed_at or incident.deadline_at) <= incident.deadline_at)
    level = CHECKLIST_MAX["level"] if incident.resolution_level else 0
    follow_up = CHECKLIST_MAX["follow_up"] if incident.satisfaction is not None or \
        incident.status == "followed_up" else 0
    return {"facts": facts, "deadline": CHECKLIST_MAX["deadline"] if on_time else 0, "level": level,
            "follow_up": follow_up}


def review_items(session: Session, user: User, review_id: int) -> list[dict]:
    get_review(session, user, review_id)
    rows = session.execute(select(CaseReviewItem, Incident, Town.name.label("town_name"),
                                  Village.name.label("village_name"))
                           .join(Incident, Incident.id == CaseReviewItem.incident_id)
                           .join(Town, Town.code == CaseReviewItem.town_code)
                           .join(Village, Village.code == Incident.village_code)
                           .where(CaseReviewItem.review_id == review_id).order_by(CaseReviewItem.incident_id))
    out = []
    for item, incident, town_name, village_name in rows:
        out.append({"id": item.id, "incident_id": incident.id, "category": incident.category,
                    "category_zh": CATEGORY_BY_CODE[incident.category].name_zh, "status": incident.status,
                    "status_zh": STATUS_ZH[incident.status], "town_code": item.town_code, "town_name": town_name,
                    "village_name": village_name, "handling_unit": item.handling_unit,
                    "resolution_level": incident.resolution_level,
                    "resolution_level_zh": RESOLUTION_LEVEL_ZH.get(incident.resolution_level or "", ""),
                    "deadline_at": incident.deadline_at.isoformat() if incident.deadline_at else None,
                    "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
                    "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
                    "satisfaction": incident.satisfaction, "scores": item.scores, "total": item.total,
                    "findings": item.findings, "suggested": suggested_scores(incident),
                    "reviewed_at": item.reviewed_at.isoformat() if item.reviewed_at else None})
    return out


def score_item(session: Session, user: User, review_id: int, item_id: int, data: Mapping) -> CaseReviewItem:
    """Score one sampled case: every checklist item from 0 to its maximum, and the findings."""
    require_reviewer(user)
    if not isinstance(data, Mapping):
        raise ValidationError("the body must be a JSON object", "body")
    item = session.scalar(select(CaseReviewItem).where(CaseReviewItem.id == item_id,
                                                       CaseReviewItem.review_id == review_id))
    if item is None:
        raise NotFound(f"no item {item_id} in review {review_id}", "item_id")
    if "scores" in data:
        raw = data["scores"]
        if not isinstance(raw, Mapping):
            raise ValidationError("scores must be an object of item: points", "scores")
        unknown = [k for k in raw if k not in CHECKLIST_MAX]
        if unknown:
            raise ValidationError(f"unknown checklist item {unknown[0]!r}; items: {', '.join(CHECKLIST_MAX)}",
                                  f"scores.{unknown[0]}")
        given = {code: raw.get(code) for code in CHECKLIST_MAX}
    else:  # a form: one field score_<item> per checklist item
        given = {code: data.get(f"score_{code}") for code in CHECKLIST_MAX}
    scores = {code: _int({f"scores.{code}": given[code]}, f"scores.{code}", 0, points)
              for code, _, points in REVIEW_CHECKLIST}
    findings = _text(data, "findings", 2000)
    with session.begin_nested():
        item.scores = scores
        item.total = sum(scores.values())
        item.findings = findings
        item.reviewer_id = user.id
        item.reviewed_at = datetime.now(CHINA_TZ)
        session.flush()
        audit(session, user.id, "review.score", "case_review_item", item.id, {"total": item.total})
    return item


def review_report(session: Session, user: User, review_id: int) -> dict:
    """Mean scores (total and per checklist item) by town and by handling unit, over scored items."""
    review = get_review(session, user, review_id)
    items = review_items(session, user, review_id)

    def group(key: str, name_key: str) -> list[dict]:
        groups: dict[str, dict] = {}
        for item in items:
            g = groups.setdefault(item[key], {"code": item[key], "name": item[name_key], "items": 0, "scored": 0,
                                              "_totals": [], "_scores": {c: [] for c in CHECKLIST_MAX}})
            g["items"] += 1
            if item["total"] is not None:
                g["scored"] += 1
                g["_totals"].append(item["total"])
                for code in CHECKLIST_MAX:
                    g["_scores"][code].append(item["scores"][code])
        out = []
        for g in groups.values():
            totals, scores = g.pop("_totals"), g.pop("_scores")
            g["mean_total"] = round(sum(totals) / len(totals), 1) if totals else None
            g["mean_scores"] = {c: (round(sum(v) / len(v), 1) if v else None) for c, v in scores.items()}
            out.append(g)
        return sorted(out, key=lambda g: (g["mean_total"] is None, -(g["mean_total"] or 0), g["code"]))

    scored = [i["total"] for i in items if i["total"] is not None]
    return {"review": review_dict(review), "items": len(items), "scored": len(scored),
            "mean_total": round(sum(scored) / len(scored), 1) if scored else None,
            "checklist": [{"code": c, "label": label, "max": m} for c, label, m in REVIEW_CHECKLIST],
            "by_town": group("town_code", "town_name"), "by_unit": group("handling_unit", "handling_unit")}
