"""Campaign bulletins (定期通报): for a period and a set of measures, a bulletin for a town or the
county -- incidents by category, cases accepted/closed/overdue, "三零" status, inspections done
against owed, patrol coverage where recorded, legal-publicity activities per village, and the
ranking of towns -- as data for a page, an Excel workbook and a printable PDF with a map image.

Definitions (stated on every bulletin):

* incidents are counted by the day they were reported; duplicates are left out;
* accepted / resolved / closed count cases whose acceptance / resolution / closure falls in the
  period; "on time" means resolved no later than the deadline;
* overdue: accepted, past its deadline at the end of the period (or now, if earlier), and not
  resolved by then;
* "三零" by the day incidents happened, leaving out rejected and duplicate reports, as
  :func:`gridmap.analysis.county_numbers.sanling_by_village` defines it: no petition escalated beyond
  the village (to the town, county or above, or resolved there), no safety accident, no criminal
  case and no serious public-order case (severity 3 or more);
* inspections: see :func:`gridmap.analysis.inspections.inspections_due_in_period`;
* patrol: see :func:`gridmap.services.patrol.division_patrol_summary` -- patrol minutes placed
  where they were spent, and the high-risk grids (as on the coverage page) visited in the period
  and not visited in the ``patrol_hours`` before its end;
* the town score is 100 × (0.4 × "三零" rate + 0.3 × on-time rate + 0.3 × inspection rate), a rate
  with nothing to count being 1.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

import geopandas as gpd
import pandas as pd
from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.orm import Session

from gridmap.analysis.county_numbers import SANLING_INCIDENT_COLUMNS, sanling_by_village
from gridmap.analysis.inspections import inspections_due_in_period
from gridmap.catalog import BULLETIN_SECTION_ZH, BULLETIN_SECTIONS, CATEGORIES, ROLE_ZH
from gridmap.errors import Forbidden, ValidationError
from gridmap.maps.registries import render_bulletin_map
from gridmap.models import County, Incident, Inspection, LegalActivity, Place, Town, User, Village
from gridmap.services import patrol, risk
from gridmap.services.incidents import CHINA_TZ

BULLETIN_ROLES = ("admin", "county_officer", "viewer")
THREE_ZERO_TARGET = 0.80
SCORE_WEIGHTS = {"three_zero": 0.4, "on_time": 0.3, "inspections": 0.3}
DEFAULT_PATROL_HOURS = 24.0
DEFINITIONS = (
    "事件数按上报日期统计，不含重复上报；受理、办结、结案数按各环节发生日期统计；按期办结指办结时间不晚于办理期限。",
    "超期：已受理、期末（或当前，取较早者）已过办理期限且尚未办结的案件。",
    "“三零”按事件发生日期统计（不含不予受理和重复）：无上交到乡镇及以上（或在乡镇及以上化解）的信访、无安全事故、"
    "无刑事案件和严重治安案件（严重程度≥3）。",
    "巡检：期初之前最近一次检查（无检查则登记日）加检查周期，落在期末之前的场所为应检场所；期内有检查记录即为已检。",
    "巡逻：巡逻时长为各轨迹相邻定位点的间隔之和（超过断档阈值的间隔不计），计入前一定位点所在的乡镇或村（社区）；"
    "高风险网格为期末前风险等级达到阈值或为热点（Gi*）的网格，期内有定位点到达网格边界阈值距离内即为已到访；"
    "“超时未巡逻”指期末（或当前）前所设小时数内没有到访。",
    "乡镇得分 = 100 ×（0.4 × “三零”达标率 + 0.3 × 按期办结率 + 0.3 × 巡检完成率）；分母为零时该率按 1 计。",
)


@dataclass
class Section:
    key: str
    title: str
    columns: list[tuple[str, str]]  # (key, header)
    rows: list[dict]
    total: dict | None = None
    note: str = ""


@dataclass
class Bulletin:
    title: str
    level: str  # "county" or "town"
    scope_code: str
    scope_name: str
    start: date
    end: date
    sections: list[Section]
    summary: list[tuple[str, str]]
    generated_at: datetime
    definitions: tuple[str, ...] = DEFINITIONS
    numbers: dict = field(default_factory=dict)

    @property
    def period_label(self) -> str:
        if self.start.day == 1 and self.end == _month_end(self.start):
            return f"{self.start:%Y年%m月}"
        return f"{self.start:%Y-%m-%d} 至 {self.end:%Y-%m-%d}"

    @property
    def filename(self) -> str:
        return f"bulletin-{self.scope_code}-{self.start:%Y%m%d}-{self.end:%Y%m%d}"

    def as_dict(self) -> dict:
        body = asdict(self)
        body["start"], body["end"] = self.start.isoformat(), self.end.isoformat()
        body["generated_at"] = self.generated_at.isoformat()
        body["period_label"] = self.period_label
        body["summary"] = [{"label": k, "value": v} for k, v in self.summary]
        body["definitions"] = list(self.definitions)
        for section in body["sections"]:
            section["columns"] = [{"key": k, "header": h} for k, h in section["columns"]]
        return body


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


# --- parameters -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BulletinRequest:
    start: date
    end: date
    town: str | None
    title: str
    sections: tuple[str, ...]
    patrol_hours: float = DEFAULT_PATROL_HOURS


def parse_request(session: Session, args: Mapping, today: date) -> BulletinRequest:
    """``period=2023-05`` (a month) or ``start``/``end`` dates; ``town`` (12 digits) or the county;
    ``title`` (the campaign, e.g. “六防六促”专项行动); ``sections`` a comma list of BULLETIN_SECTIONS;
    ``patrol_hours`` (1-2400, default 24): high-risk grids not visited in so many hours before the
    period's end are counted in the patrol section."""
    from gridmap.services.registries import _text, parse_date

    period = (args.get("period") or "").strip()
    if period:
        try:
            start = datetime.strptime(period, "%Y-%m").date()
        except ValueError:
            raise ValidationError("period must be a month such as 2023-05", "period") from None
        end = _month_end(start)
    else:
        start = parse_date(args.get("start"), "start", required=False)
        end = parse_date(args.get("end"), "end", required=False)
        if start is None or end is None:
            raise ValidationError("give period (a month such as 2023-05) or start and end dates", "period")
    if start > end:
        raise ValidationError("start must not be after end", "start")
    if start > today:
        raise ValidationError("the period has not begun", "period")
    if (end - start).days > 366:
        raise ValidationError("a bulletin covers at most a year", "end")
    town = (args.get("town") or "").strip() or None
    if town is not None and session.get(Town, town) is None:
        raise ValidationError(f"no town {town!r}", "town")
    raw_sections = args.get("sections") or ""
    if isinstance(raw_sections, (list, tuple)):
        chosen = [s for s in raw_sections if s]
    else:
        chosen = [s.strip() for s in str(raw_sections).split(",") if s.strip()]
    unknown = [s for s in chosen if s not in BULLETIN_SECTIONS]
    if unknown:
        raise ValidationError(f"unknown section {unknown[0]!r}; sections: {', '.join(BULLETIN_SECTIONS)}",
                              "sections")
    sections = tuple(s for s in BULLETIN_SECTIONS if s in chosen) if chosen else BULLETIN_SECTIONS
    title = _text(args, "title", 100) or "定期通报"
    raw_hours = str(args.get("patrol_hours") or "").strip()
    try:
        patrol_hours = float(raw_hours) if raw_hours else DEFAULT_PATROL_HOURS
    except ValueError:
        raise ValidationError("patrol_hours must be a number of hours", "patrol_hours") from None
    if not 1 <= patrol_hours <= 2400:
        raise ValidationError("patrol_hours must be between 1 and 2400", "patrol_hours")
    return BulletinRequest(start, end, town, title, sections, patrol_hours)


def require_bulletin_access(user: User, town: str | None) -> None:
    """County bulletins: county officers, admins and leaders; a town's: also its own supervisor."""
    if user.role in BULLETIN_ROLES:
        return
    if town and user.role == "town_supervisor" and town in (user.scopes or ()):
        return
    what = f"the bulletin of town {town}" if town else "the county bulletin"
    raise Forbidden(f"role {ROLE_ZH.get(user.role, user.role)} may not read {what}", "town")


# --- the numbers ------------------------------------------------------------------------------

def _bounds(start: date, end: date, now: datetime) -> tuple[datetime, datetime, datetime]:
    lower = datetime.combine(start, time(0), CHINA_TZ)
    upper = datetime.combine(end + timedelta(days=1), time(0), CHINA_TZ)
    return lower, upper, min(upper, now)


def _villages(session: Session) -> pd.DataFrame:
    rows = session.execute(select(Village.code, Village.name, Village.town_code, Town.name.label("town_name"))
                           .join(Town, Town.code == Village.town_code).order_by(Village.code)).mappings().all()
    return pd.DataFrame(rows, columns=["code", "name", "town_code", "town_name"])


def incident_numbers(session: Session, start: date, end: date, now: datetime) -> pd.DataFrame:
    """Per village: incidents reported by category, cases accepted/resolved/closed/overdue, and the
    incidents that break "三零" -- every village, zeros included."""
    lower, upper, cut = _bounds(start, end, now)
    reported = and_(Incident.reported_at >= lower, Incident.reported_at < upper, Incident.status != "duplicate")
    occurred = and_(Incident.occurred_at >= lower, Incident.occurred_at < upper,
                    Incident.status.not_in(("duplicate", "rejected")))

    def within(column):
        return and_(column >= lower, column < upper)

    def count(condition):
        return func.count().filter(condition)

    columns = [count(reported).label("reported")]
    columns += [count(and_(reported, Incident.category == c.code)).label(f"cat_{c.code}") for c in CATEGORIES]
    columns += [
        count(within(Incident.accepted_at)).label("accepted"),
        count(within(Incident.resolved_at)).label("resolved"),
        count(and_(within(Incident.resolved_at), or_(Incident.deadline_at.is_(None),
                                                     Incident.resolved_at <= Incident.deadline_at))).label("on_time"),
        count(within(Incident.closed_at)).label("closed"),
        count(and_(Incident.accepted_at < cut, Incident.deadline_at < cut,
                   or_(Incident.resolved_at.is_(None), Incident.resolved_at >= cut),
                   Incident.status.not_in(("duplicate", "rejected")))).label("overdue"),
    ]
    query = (select(Incident.village_code, *columns)
             .where(or_(within(Incident.reported_at), within(Incident.accepted_at), within(Incident.resolved_at),
                        within(Incident.closed_at), within(Incident.occurred_at),
                        and_(Incident.accepted_at < cut, Incident.deadline_at < cut)))
             .group_by(Incident.village_code))
    counts = pd.DataFrame(session.execute(query).mappings().all(),
                          columns=["village_code"] + [c.name for c in columns])
    villages = _villages(session)
    frame = villages.merge(counts, how="left", left_on="code", right_on="village_code").drop(columns="village_code")
    numeric = [c.name for c in columns]
    frame[numeric] = frame[numeric].fillna(0).astype("int64")
    # "三零" by the county's definition, shared with the risk report (gridmap.analysis.county_numbers).
    happened = pd.DataFrame(session.execute(
        select(Incident.village_code, Incident.category, Incident.subcategory, Incident.severity,
               Incident.legal_class, Incident.status, Incident.resolution_level, Incident.occurred_at)
        .where(occurred)).mappings().all(), columns=["village_code", *SANLING_INCIDENT_COLUMNS])
    flags = sanling_by_village(villages[["code", "town_code"]], happened, lower, upper)
    frame["petitions"] = frame["code"].map(flags["n_escalated_petitions"]).astype("int64")
    frame["accidents"] = frame["code"].map(flags["n_accidents"]).astype("int64")
    frame["serious_cases"] = frame["code"].map(
        flags["n_criminal_cases"] + flags["n_serious_public_order_cases"]).astype("int64")
    frame["three_zero"] = frame["code"].map(flags["compliant"]).astype(bool)
    return frame


def inspection_numbers(session: Session, start: date, end: date) -> pd.DataFrame:
    """Per village: active places, places owed an inspection in the period, those inspected, all
    inspections in the period, hazards found and incidents opened from them."""
    places = pd.DataFrame(session.execute(
        select(Place.id, Place.inspection_interval_days, Place.registered_on, Place.village_code)
        .where(Place.active.is_(True), Place.registered_on <= end)).mappings().all(),
        columns=["id", "inspection_interval_days", "registered_on", "village_code"])
    inspections = pd.DataFrame(session.execute(
        select(Inspection.place_id, Inspection.inspected_on, Inspection.hazard_found, Inspection.incident_id)
        .join(Place, Place.id == Inspection.place_id)
        .where(Place.active.is_(True), Inspection.inspected_on <= end)).mappings().all(),
        columns=["place_id", "inspected_on", "hazard_found", "incident_id"])
    owed = inspections_due_in_period(places, inspections, start, end)
    per_village = owed.groupby("village_code").agg(places=("id", "size"), owed=("owed", "sum"),
                                                    done=("done", "sum"), inspections=("inspections", "sum"))
    in_period = inspections[(pd.to_datetime(inspections["inspected_on"]).dt.date >= start)
                            & (pd.to_datetime(inspections["inspected_on"]).dt.date <= end)]
    in_period = in_period.merge(places[["id", "village_code"]], left_on="place_id", right_on="id")
    hazards = in_period.groupby("village_code").agg(hazards=("hazard_found", "sum"),
                                                     incidents_opened=("incident_id", "count"))
    villages = _villages(session)
    frame = villages.join(per_village, on="code").join(hazards, on="code")
    numeric = ["places", "owed", "done", "inspections", "hazards", "incidents_opened"]
    frame[numeric] = frame[numeric].fillna(0).astype("int64")
    return frame


def activity_numbers(session: Session, start: date, end: date) -> pd.DataFrame:
    """Per village: legal-publicity activities and their audience in the period."""
    rows = session.execute(select(LegalActivity.village_code, func.count().label("activities"),
                                  func.coalesce(func.sum(LegalActivity.audience), 0).label("audience"))
                           .where(LegalActivity.held_on.between(start, end))
                           .group_by(LegalActivity.village_code)).mappings().all()
    counts = pd.DataFrame(rows, columns=["village_code", "activities", "audience"]).set_index("village_code")
    frame = _villages(session).join(counts, on="code")
    frame[["activities", "audience"]] = frame[["activities", "audience"]].fillna(0).astype("int64")
    return frame


def patrol_numbers(session: Session, start: date, end: date, now: datetime, *, town: str | None = None,
                   hours: float = DEFAULT_PATROL_HOURS, settings: patrol.PatrolSettings | None = None,
                   risk_settings: risk.RiskSettings | None = None) -> pd.DataFrame:
    """Per town (or per village of ``town``): patrol minutes, high-risk grids, how many were visited
    in the period and how many not in the ``hours`` before its end (or now, if earlier)."""
    lower, upper, cut = _bounds(start, end, now)
    return patrol.division_patrol_summary(session, lower, upper, town=town, stale_hours=hours, settings=settings,
                                          risk_settings=risk_settings, now=cut)


def patrol_section(frame: pd.DataFrame, unit_label: str, hours: float) -> Section:
    """The patrol table of a bulletin, with its total (the share from the summed grids)."""
    columns = [("name", unit_label), ("patrol_minutes", "巡逻时长（分钟）"), ("patrol_minutes_per_day", "日均巡逻（分钟）"),
               ("high_risk_grids", "高风险网格"), ("high_risk_visited", "期内已到访"),
               ("high_risk_visited_share", "到访率"), ("high_risk_not_visited", f"超过 {hours:g} 小时未巡逻")]
    rows = _records(frame, columns)
    for row in rows:
        row["patrol_minutes"] = round(float(row["patrol_minutes"]), 1)
        row["patrol_minutes_per_day"] = round(float(row["patrol_minutes_per_day"]), 1)
        share = row["high_risk_visited_share"]
        row["high_risk_visited_share"] = "—" if share is None or pd.isna(share) else _pct(share)
    grids, visited = int(frame["high_risk_grids"].sum()), int(frame["high_risk_visited"].sum())
    total = {"code": "", "name": "合计", "patrol_minutes": round(float(frame["patrol_minutes"].sum()), 1),
             "patrol_minutes_per_day": round(float(frame["patrol_minutes_per_day"].sum()), 1),
             "high_risk_grids": grids,
             "high_risk_visited": visited, "high_risk_visited_share": _pct(visited / grids) if grids else "—",
             "high_risk_not_visited": int(frame["high_risk_not_visited"].sum())}
    note = (f"巡逻时长计入定位点所在的{unit_label}；高风险网格含热点网格；“超过 {hours:g} 小时未巡逻”按期末"
            "（或当前，取较早者）计，含期内从未到访的网格。")
    return Section("patrol", BULLETIN_SECTION_ZH["patrol"], columns, rows, total, note=note)


def _rate(numerator, denominator) -> float:
    return float(numerator) / float(denominator) if denominator else 1.0


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def town_table(villages: pd.DataFrame) -> pd.DataFrame:
    """Village numbers summed per town, with the rates and score."""
    sums = villages.drop(columns=["code", "name", "town_name"]).groupby("town_code").sum(numeric_only=True)
    sums["villages"] = villages.groupby("town_code").size()
    sums["three_zero_villages"] = villages.groupby("town_code")["three_zero"].sum()
    sums = sums.drop(columns=["three_zero"])
    names = villages.drop_duplicates("town_code").set_index("town_code")["town_name"]
    sums.insert(0, "name", names)
    return _with_rates(sums)


def _with_rates(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["three_zero_rate"] = [_rate(a, b) for a, b in zip(frame["three_zero_villages"], frame["villages"])]
    frame["on_time_rate"] = [_rate(a, b) for a, b in zip(frame["on_time"], frame["resolved"])]
    frame["inspection_rate"] = [_rate(a, b) for a, b in zip(frame["done"], frame["owed"])]
    frame["score"] = 100 * (SCORE_WEIGHTS["three_zero"] * frame["three_zero_rate"]
                            + SCORE_WEIGHTS["on_time"] * frame["on_time_rate"]
                            + SCORE_WEIGHTS["inspections"] * frame["inspection_rate"])
    return frame


def rank_towns(towns: pd.DataFrame) -> pd.DataFrame:
    """Towns by score, best first; equal scores share the better rank (1, 2, 2, 4)."""
    ordered = towns.assign(score=towns["score"].round(2)).sort_values(["score"], ascending=False, kind="stable")
    ordered["rank"] = ordered["score"].rank(method="min", ascending=False).astype("int64")
    return ordered.sort_values(["rank"], kind="stable")


# --- building the bulletin --------------------------------------------------------------------

CATEGORY_COLUMNS = [(f"cat_{c.code}", c.name_zh) for c in CATEGORIES]


def _records(frame: pd.DataFrame, columns: list[tuple[str, str]], key_name: str = "name") -> list[dict]:
    keys = [k for k, _ in columns]
    out = []
    for code, row in frame.iterrows():
        record = {"code": row.get("code", code)}
        for key in keys:
            value = row[key] if key in row else None
            if hasattr(value, "item"):
                value = value.item()
            record[key] = value
        out.append(record)
    return out


def _total(frame: pd.DataFrame, columns: list[tuple[str, str]], label: str = "合计") -> dict:
    record = {"code": "", "name": label}
    for key, _ in columns[1:]:
        if key in frame and pd.api.types.is_numeric_dtype(frame[key]) and not key.endswith("_rate"):
            record[key] = int(frame[key].sum())
    return record


def build_bulletin(session: Session, user: User | None, request: BulletinRequest,
                   now: datetime | None = None, *, patrol_settings: patrol.PatrolSettings | None = None,
                   risk_settings: risk.RiskSettings | None = None) -> Bulletin:
    """Compute a bulletin for ``request`` (a town, or the county when ``request.town`` is None);
    ``user`` None is the operator at the command line. ``patrol_settings`` and ``risk_settings``
    (the deployment's, by default their defaults) define visits and high-risk grids."""
    if user is not None:
        require_bulletin_access(user, request.town)
    now = now or datetime.now(CHINA_TZ)
    incidents = incident_numbers(session, request.start, request.end, now)
    inspections = inspection_numbers(session, request.start, request.end)
    activities = activity_numbers(session, request.start, request.end)
    villages = incidents.merge(inspections[["code", "places", "owed", "done", "inspections", "hazards",
                                            "incidents_opened"]], on="code")
    villages = villages.merge(activities[["code", "activities", "audience"]], on="code")
    towns = rank_towns(town_table(villages))

    if request.town:
        level, scope_code = "town", request.town
        scope_name = session.get(Town, request.town).name
        units = _with_rates(villages[villages["town_code"] == request.town].assign(
            villages=1, three_zero_villages=lambda f: f["three_zero"].astype("int64")).set_index("code", drop=False))
        unit_label = "村（社区）"
    else:
        level = "county"
        county = session.scalar(select(County).limit(1))
        scope_code, scope_name = (county.code, county.name) if county else ("", "全县")
        units = towns.sort_index()
        units["code"] = units.index
        unit_label = "乡镇（街道）"
    scope_units = units
    totals_source = villages if level == "county" else villages[villages["town_code"] == request.town]

    sections: list[Section] = []
    if "incidents" in request.sections:
        columns = [("name", unit_label)] + CATEGORY_COLUMNS + [("reported", "合计")]
        sections.append(Section("incidents", BULLETIN_SECTION_ZH["incidents"], columns,
                                _records(scope_units, columns), _total(totals_source, columns)))
    if "cases" in request.sections:
        columns = [("name", unit_label), ("accepted", "受理"), ("resolved", "办结"), ("on_time", "按期办结"),
                   ("closed", "结案"), ("overdue", "期末超期"), ("on_time_rate", "按期办结率")]
        rows = _records(scope_units, columns)
        for row in rows:
            row["on_time_rate"] = _pct(row["on_time_rate"])
        total = _total(totals_source, columns)
        total["on_time_rate"] = _pct(_rate(total["on_time"], total["resolved"]))
        sections.append(Section("cases", BULLETIN_SECTION_ZH["cases"], columns, rows, total))
    if "three_zero" in request.sections:
        if level == "county":
            columns = [("name", unit_label), ("villages", "村（社区）数"), ("three_zero_villages", "达标数"),
                       ("three_zero_rate", "达标率"), ("petitions", "越级信访"), ("accidents", "安全事故"),
                       ("serious_cases", "刑事及严重治安案件")]
        else:
            columns = [("name", unit_label), ("three_zero_label", "是否达标"), ("petitions", "越级信访"),
                       ("accidents", "安全事故"), ("serious_cases", "刑事及严重治安案件")]
        rows = _records(scope_units.assign(three_zero_label=scope_units.get("three_zero", True)), columns)
        for row in rows:
            if "three_zero_rate" in row:
                row["three_zero_rate"] = _pct(row["three_zero_rate"])
            if "three_zero_label" in row:
                row["three_zero_label"] = "达标" if row["three_zero_label"] else "未达标"
        met, total_villages = int(totals_source["three_zero"].sum()), len(totals_source)
        total = _total(totals_source, columns)
        if level == "county":
            total.update({"villages": total_villages, "three_zero_villages": met,
                          "three_zero_rate": _pct(_rate(met, total_villages))})
        else:
            total["three_zero_label"] = f"{met}/{total_villages}（{_pct(_rate(met, total_villages))}）"
        sections.append(Section("three_zero", BULLETIN_SECTION_ZH["three_zero"], columns, rows, total,
                                note=f"目标达标率 {THREE_ZERO_TARGET:.0%}。"))
    if "inspections" in request.sections:
        columns = [("name", unit_label), ("places", "在册场所"), ("owed", "应检"), ("done", "已检"),
                   ("inspection_rate", "完成率"), ("inspections", "检查次数"), ("hazards", "发现隐患"),
                   ("incidents_opened", "转事件")]
        rows = _records(scope_units, columns)
        for row in rows:
            row["inspection_rate"] = _pct(row["inspection_rate"])
        total = _total(totals_source, columns)
        total["inspection_rate"] = _pct(_rate(total["done"], total["owed"]))
        sections.append(Section("inspections", BULLETIN_SECTION_ZH["inspections"], columns, rows, total))
    patrol_frame = None
    if "patrol" in request.sections:
        patrol_frame = patrol_numbers(session, request.start, request.end, now, town=request.town,
                                      hours=request.patrol_hours, settings=patrol_settings,
                                      risk_settings=risk_settings)
        sections.append(patrol_section(patrol_frame, unit_label, request.patrol_hours))
    if "publicity" in request.sections:
        columns = [("name", unit_label), ("activities", "活动次数"), ("audience", "受众人数")]
        rows = _records(scope_units, columns)
        total = _total(totals_source, columns)
        sections.append(Section("publicity", BULLETIN_SECTION_ZH["publicity"], columns, rows, total))
        if level == "county":
            reached = villages[villages["activities"] > 0].set_index("code", drop=False)
            village_columns = [("name", "村（社区）"), ("town_name", "乡镇"), ("activities", "活动次数"),
                               ("audience", "受众人数")]
            sections.append(Section("publicity_villages", "普法活动分村统计", village_columns,
                                    _records(reached, village_columns),
                                    note=f"开展活动的村（社区）{len(reached)} 个，共 {len(villages)} 个。"))
    if "ranking" in request.sections:
        columns = [("rank", "名次"), ("name", "乡镇（街道）"), ("score", "得分"), ("three_zero_rate", "“三零”达标率"),
                   ("on_time_rate", "按期办结率"), ("inspection_rate", "巡检完成率")]
        rows = _records(towns, columns)
        for row in rows:
            row["score"] = f"{row['score']:.1f}"
            for key in ("three_zero_rate", "on_time_rate", "inspection_rate"):
                row[key] = _pct(row[key])
            row["highlight"] = bool(request.town and row["code"] == request.town)
        sections.append(Section("ranking", BULLETIN_SECTION_ZH["ranking"], columns, rows,
                                note="得分 = 100 ×（0.4 × “三零”达标率 + 0.3 × 按期办结率 + 0.3 × 巡检完成率）。"))

    met, total_villages = int(totals_source["three_zero"].sum()), len(totals_source)
    owed, done = int(totals_source["owed"].sum()), int(totals_source["done"].sum())
    numbers = {
        "reported": int(totals_source["reported"].sum()), "accepted": int(totals_source["accepted"].sum()),
        "resolved": int(totals_source["resolved"].sum()), "on_time": int(totals_source["on_time"].sum()),
        "closed": int(totals_source["closed"].sum()), "overdue": int(totals_source["overdue"].sum()),
        "villages": total_villages, "three_zero_villages": met, "owed": owed, "done": done,
        "inspections": int(totals_source["inspections"].sum()), "hazards": int(totals_source["hazards"].sum()),
        "activities": int(totals_source["activities"].sum()), "audience": int(totals_source["audience"].sum()),
        "by_category": {c.code: int(totals_source[f"cat_{c.code}"].sum()) for c in CATEGORIES},
        "ranking": [{"town_code": code, "rank": int(r["rank"]), "score": round(float(r["score"]), 2)}
                    for code, r in towns.iterrows()],
    }
    summary = [("上报事件", f"{numbers['reported']} 件"), ("受理案件", f"{numbers['accepted']} 件"),
               ("办结案件", f"{numbers['resolved']} 件（按期 {numbers['on_time']} 件）"),
               ("期末超期", f"{numbers['overdue']} 件"),
               ("“三零”达标", f"{met}/{total_villages} 个村（社区），{_pct(_rate(met, total_villages))}"),
               ("重点场所巡检", f"应检 {owed} 处，已检 {done} 处，完成率 {_pct(_rate(done, owed))}"),
               ("普法活动", f"{numbers['activities']} 场，受众 {numbers['audience']} 人次")]
    if patrol_frame is not None:
        grids, visited = int(patrol_frame["high_risk_grids"].sum()), int(patrol_frame["high_risk_visited"].sum())
        stale = int(patrol_frame["high_risk_not_visited"].sum())
        minutes = float(patrol_frame["patrol_minutes"].sum())
        numbers["patrol"] = {"patrol_minutes": round(minutes, 1), "high_risk_grids": grids,
                             "high_risk_visited": visited, "high_risk_not_visited": stale,
                             "hours": request.patrol_hours}
        summary.append(("巡逻覆盖", f"巡逻 {minutes / 60:,.1f} 小时；高风险网格 {grids} 个，期内到访 {visited} 个"
                        f"（{_pct(visited / grids) if grids else '—'}），超过 {request.patrol_hours:g} 小时未巡逻 "
                        f"{stale} 个"))
    if request.town:
        rank = int(towns.loc[request.town, "rank"])
        numbers["rank"] = rank
        summary.append(("全县排名", f"第 {rank} 名（共 {len(towns)} 个乡镇街道）"))
    return Bulletin(title=request.title, level=level, scope_code=scope_code, scope_name=scope_name,
                    start=request.start, end=request.end, sections=sections, summary=summary, generated_at=now,
                    numbers=numbers)


# --- the map image ----------------------------------------------------------------------------

def bulletin_map_png(session: Session, bulletin: Bulletin) -> bytes:
    """The bulletin's map: villages by "三零" status, town outlines, the publicity activities, and
    (county bulletins) each town's rank at its centre."""
    lower, upper, _ = _bounds(bulletin.start, bulletin.end, bulletin.generated_at)
    condition = Village.town_code == bulletin.scope_code if bulletin.level == "town" else literal(True)
    connection = session.connection()
    villages = gpd.read_postgis(select(Village.code, Village.town_code,
                                       func.ST_SimplifyPreserveTopology(Village.geom, 0.0003).label("geom"))
                                .where(condition), connection, geom_col="geom")
    town_condition = Town.code == bulletin.scope_code if bulletin.level == "town" else literal(True)
    towns = gpd.read_postgis(select(Town.code, func.ST_SimplifyPreserveTopology(Town.geom, 0.0003).label("geom"))
                             .where(town_condition), connection, geom_col="geom")
    activity_condition = LegalActivity.held_on.between(bulletin.start, bulletin.end)
    if bulletin.level == "town":
        activity_condition = and_(activity_condition, LegalActivity.town_code == bulletin.scope_code)
    activities = gpd.read_postgis(select(LegalActivity.id, LegalActivity.geom).where(activity_condition),
                                  connection, geom_col="geom")
    numbers = incident_numbers(session, bulletin.start, bulletin.end, bulletin.generated_at)
    villages = villages.merge(numbers[["code", "three_zero"]], on="code", how="left")
    labels = []
    if bulletin.level == "county":
        ranks = {r["town_code"]: r["rank"] for r in bulletin.numbers.get("ranking", [])}
        for code, geom in zip(towns["code"], towns.geometry):
            point = geom.representative_point()
            labels.append((point.x, point.y, str(ranks.get(code, ""))))
    return render_bulletin_map(villages, towns, activities, labels)


# --- files ------------------------------------------------------------------------------------

def _cell(value):
    return "" if value is None else value


def bulletin_xlsx(bulletin: Bulletin, map_png: bytes | None = None) -> bytes:
    """The bulletin as an Excel workbook: a summary sheet (with the map) and one sheet per table."""
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image
    from openpyxl.styles import Alignment, Font, PatternFill

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "通报"
    sheet.append([f"{bulletin.scope_name}{bulletin.title}"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(["统计期间", bulletin.period_label])
    sheet.append(["生成时间", bulletin.generated_at.strftime("%Y-%m-%d %H:%M")])
    sheet.append([])
    for label, value in bulletin.summary:
        sheet.append([label, value])
    sheet.append([])
    sheet.append(["口径说明"])
    for text in bulletin.definitions:
        sheet.append([text])
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 60
    if map_png:
        image = Image(io.BytesIO(map_png))
        image.width, image.height = 480, int(480 * image.height / image.width)
        sheet.add_image(image, "D2")
    header_fill = PatternFill("solid", fgColor="DDE4EE")
    for section in bulletin.sections:
        ws = workbook.create_sheet(section.title[:31].replace("/", "-"))
        ws.append([section.title])
        ws["A1"].font = Font(bold=True, size=12)
        ws.append([header for _, header in section.columns])
        for cell in ws[2]:
            cell.font = Font(bold=True)
            cell.fill = header_fill
            cell.alignment = Alignment(horizontal="center")
        for row in section.rows:
            ws.append([_cell(row.get(key)) for key, _ in section.columns])
        if section.total:
            ws.append([_cell(section.total.get(key)) for key, _ in section.columns])
            for cell in ws[ws.max_row]:
                cell.font = Font(bold=True)
        if not section.rows and section.note:
            ws.append([section.note])
        elif section.note:
            ws.append([])
            ws.append([section.note])
        ws.column_dimensions["A"].width = 22
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


PDF_FONT = "STSong-Light"


def bulletin_pdf(bulletin: Bulletin, map_png: bytes | None = None) -> bytes:
    """The bulletin as a printable A4 PDF with the map image.

    Chinese text uses the Adobe-GB1 font STSong-Light, which every PDF reader carries, so no font
    file is needed on the server.
    """
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if PDF_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))
    title_style = ParagraphStyle("title", fontName=PDF_FONT, fontSize=18, leading=24, alignment=TA_CENTER)
    sub_style = ParagraphStyle("sub", fontName=PDF_FONT, fontSize=10, leading=14, alignment=TA_CENTER)
    heading = ParagraphStyle("heading", fontName=PDF_FONT, fontSize=13, leading=18, spaceBefore=8, spaceAfter=4)
    body = ParagraphStyle("body", fontName=PDF_FONT, fontSize=9, leading=13)
    small = ParagraphStyle("small", fontName=PDF_FONT, fontSize=8, leading=11, textColor=colors.HexColor("#444444"))

    def escape(text) -> str:
        return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))

    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                                 bottomMargin=15 * mm, title=f"{bulletin.scope_name}{bulletin.title}",
                                 author="gridmap")
    story = [Paragraph(escape(f"{bulletin.scope_name}{bulletin.title}"), title_style),
             Paragraph(escape(f"统计期间：{bulletin.period_label}　生成时间：{bulletin.generated_at:%Y-%m-%d %H:%M}"),
                       sub_style), Spacer(1, 6 * mm)]
    summary = Table([[Paragraph(escape(k), body), Paragraph(escape(v), body)] for k, v in bulletin.summary],
                    colWidths=[35 * mm, 140 * mm])
    summary.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                                 ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eef2f7"))]))
    story += [summary, Spacer(1, 4 * mm)]
    if map_png:
        image = Image(io.BytesIO(map_png))
        width = 150 * mm
        height = width * image.imageHeight / image.imageWidth
        if height > 120 * mm:
            width, height = width * 120 * mm / height, 120 * mm
        image.drawHeight, image.drawWidth = height, width
        story += [image, Paragraph(escape("图例：绿色为“三零”达标村（社区），红色为未达标，蓝点为普法活动地点"
                                          + ("，数字为乡镇排名。" if bulletin.level == "county" else "。")), small)]
    for section in bulletin.sections:
        story.append(Paragraph(escape(section.title), heading))
        if section.rows:
            data = [[Paragraph(escape(h), small) for _, h in section.columns]]
            for row in section.rows + ([section.total] if section.total else []):
                data.append([Paragraph(escape(_cell(row.get(key))), small) for key, _ in section.columns])
            first_width = 32 * mm
            rest = (180 * mm - first_width) / max(len(section.columns) - 1, 1)
            table = Table(data, colWidths=[first_width] + [rest] * (len(section.columns) - 1), repeatRows=1)
            style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                     ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
                     ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
            if section.total:
                style.append(("BACKGROUND", (0, len(data) - 1), (-1, len(data) - 1), colors.HexColor("#f3f3f3")))
            for index, row in enumerate(section.rows, start=1):
                if row.get("highlight"):
                    style.append(("BACKGROUND", (0, index), (-1, index), colors.HexColor("#fff3cd")))
            table.setStyle(TableStyle(style))
            story.append(table)
        if section.note:
            story.append(Paragraph(escape(section.note), small))
    story.append(Paragraph("口径说明", heading))
    story += [Paragraph(escape(text), small) for text in bulletin.definitions]
    document.build(story)
    return buffer.getvalue()
