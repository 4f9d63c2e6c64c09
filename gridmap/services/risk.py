"""Risk, hot spots, the heatmap and the county's numbers, computed from PostGIS.

The analysis lives in :mod:`gridmap.analysis` (pure functions on DataFrames); this module loads
its inputs, keeps the grid adjacency with the grids, applies who-sees-what, and writes the
results out as JSON, GeoJSON, CSV, GeoPackage and Excel.

Who sees what: scores, levels and hot spots are computed over the whole county, so a grid has
the same level and hot-spot bin whoever looks at it; each user then gets the rows of the grids
in their scope, and villages/towns only when all of their grids are in scope. Nothing here
carries personal details (phones, parties); the list of enterprise-related cases on the report
is left out for the read-only viewer, who sees aggregates only.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from esda import fdr
from sqlalchemy import and_, case, delete, func, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gridmap.analysis.county_numbers import (COUNTY_TOTAL, UNIT_COMPLIANCE_TARGET, VILLAGE_COMPLIANCE_TARGET,
                                             compliance_rate, enterprise_related, mediation_gaps, mediation_stats,
                                             resolution_levels, sanling_by_unit, sanling_by_village)
from gridmap.analysis.hotspots import DEFAULT_ALPHA_LEVELS, GridAdjacency, geometry_fingerprint, getis_ord_gi_star
from gridmap.analysis.risk import (CATEGORY_CODES, COUNT_COLUMNS, RISK_METHODS, AnalysisInputError, RiskWeights,
                                   grid_risk_summary, risk_levels, rollup)
from gridmap.catalog import (CATEGORY_BY_CODE, LEGAL_CLASS_ZH, MEDIATION_KIND_ZH, OPEN_STATUSES, PLACE_SUBKINDS,
                             RESOLUTION_LEVEL_ZH, SCOPE_SHRINK_DEGREES, STATUS_ZH)
from gridmap.config import Config
from gridmap.errors import ValidationError
from gridmap.models import (Grid, GridAdjacencyCache, Incident, Inspection, MediationPoint, PatrolZone, Place, Town,
                            User, Village)
from gridmap.services.incidents import CHINA_TZ, mediation_point_scopes, visible_condition
from gridmap.services.scopes import coded_condition, is_county_wide

RISK_FORMATS = ("json", "geojson", "csv")
FILE_FORMATS = ("csv", "geojson", "gpkg", "xlsx")
REPORT_FORMATS = ("json", "xlsx")
LEVELS = ("grids", "villages", "towns")
MAX_PERIOD_DAYS = 3660
MAX_MEDIATION_DISTANCE_M = 50_000
COUNTY_LABEL = "全县"
SCOPE_LABEL = "合计（可见范围）"
ENTERPRISE_CASE_LIMIT = 500
COORDINATE_DECIMALS = 6
# Roles that see figures but no lists of individual cases.
AGGREGATES_ONLY_ROLES = ("viewer",)

GI_BIN_ZH = {3: "热点（99%置信）", 2: "热点（95%置信）", 1: "热点（90%置信）", 0: "不显著",
             -1: "冷点（90%置信）", -2: "冷点（95%置信）", -3: "冷点（99%置信）"}
# What Gi* is run on. Grids differ a lot in size, so densities find clusters that raw counts hide.
HOTSPOT_VALUES = {"score_per_km2": "每平方公里风险评分", "score": "风险评分", "per_km2": "每平方公里事件数",
                  "per_1000": "每千人事件数", "n_total": "事件数"}
METHOD_ZH = {"natural_breaks": "自然断点（Fisher-Jenks）", "quantiles": "分位数"}

# Column labels of the exports (Chinese headers in Excel; the JSON, CSV and GeoPackage use the keys).
COLUMN_ZH: dict[str, str] = {
    "code": "编码", "grid_code": "网格编码", "name": "名称", "village_code": "村（社区）编码",
    "village_name": "村（社区）", "town_code": "乡镇编码", "town_name": "乡镇（街道）", "population": "人口",
    "area_km2": "面积（平方公里）", "n_grids": "网格数",
    **{f"n_{c.code}": c.name_zh for c in CATEGORY_BY_CODE.values()},
    "n_total": "事件合计", "score": "风险评分", "per_km2": "每平方公里事件数", "per_1000": "每千人事件数",
    "open_backlog": "未结事件", "overdue_backlog": "超期未结", "prev_total": "上期事件数", "change": "较上期增减",
    "change_pct": "较上期增减（%）", "risk_level": "风险等级", "level_per_km2": "密度等级（每平方公里）",
    "level_per_1000": "密度等级（每千人）", "gi_value": "Gi* 分析值", "gi": "Gi*", "gi_z": "Gi* z 值", "p_norm": "正态 p 值",
    "p_sim": "置换检验 p 值", "gi_bin": "热点分级", "gi_bin_zh": "热点判定", "n_hot_grids": "热点网格数",
    "n_escalated_petitions": "越级/上交信访", "n_accidents": "安全事故（伤亡）", "n_criminal_cases": "刑事案件",
    "n_serious_public_order_cases": "较重治安案件", "zero_petitions": "零上访", "zero_accidents": "零事故",
    "zero_cases": "零案件", "compliant": "“三零”达标", "n": "数量", "n_zero_petitions": "零上访数",
    "n_zero_accidents": "零事故数", "n_zero_cases": "零案件数", "n_compliant": "达标数", "rate": "达标率",
    "target": "目标", "target_met": "达到目标", "n_resolved": "办结纠纷", "n_village": "村级化解",
    "n_town": "乡镇化解", "n_county": "县级及以上化解", "share_village": "村级占比（小事不出村）",
    "share_town": "乡镇占比（大事不出乡）", "share_county": "上交占比", "n_enterprise_disputes": "涉企纠纷",
    "n_enterprise_cases": "涉企案件", "n_enterprise_criminal_cases": "涉企刑事案件",
    "n_enterprise_public_order_cases": "涉企治安案件", "nearest_point_id": "最近调解阵地编号",
    "nearest_point_name": "最近调解阵地", "distance_m": "距离（米）", "mediation_point_id": "调解阵地编号",
    "kind": "类型", "kind_zh": "类型", "n_referred": "受理转交纠纷", "n_agreement": "达成协议",
    "n_failed": "调解不成", "n_transferred": "转办", "n_pending": "待结果", "agreement_rate": "调解成功率",
    "unit_id": "单位编号", "subkind": "单位类别", "id": "编号", "occurred_at": "发生时间", "category": "类别",
    "category_zh": "类别", "subcategory_zh": "子类", "legal_class_zh": "案件性质", "status_zh": "状态",
    "kind_of_case": "类型",
}


# --- settings ---------------------------------------------------------------------------------

def _parse_severity_weights(value) -> dict[int, float]:
    """``"1:1,2:2,3:4,4:8"``, a JSON object or a mapping, as {severity: weight}."""
    if isinstance(value, Mapping):
        items = value.items()
    else:
        text = str(value).strip()
        if text.startswith("{"):
            items = json.loads(text).items()
        else:
            items = (part.split(":", 1) for part in text.split(",") if part.strip())
    return {int(str(k).strip()): float(str(v).strip()) for k, v in items}


@dataclass(frozen=True)
class RiskSettings:
    """Deployment settings of the risk map and report (``RISK_*`` and friends in gridmap.config)."""

    weights: RiskWeights = field(default_factory=RiskWeights)
    classes: int = 5
    method: str = "natural_breaks"
    default_days: int = 90
    adjacency: str = "queen"
    adjacency_distance_m: float | None = None
    hotspot_value: str = "score_per_km2"
    permutations: int = 999
    seed: int = 12345
    metric_crs: str = "EPSG:4547"
    inline_max_features: int = 3000
    heat_cell_m: float = 200.0
    mediation_distance_m: float = 2000.0

    @classmethod
    def from_config(cls, config: Mapping) -> RiskSettings:
        """From the Flask config (or any mapping of the same keys); raises ValueError on a bad setting."""
        def get(key, default):
            value = config.get(key)
            return default if value is None or value == "" else value

        try:
            weights = RiskWeights(severity=_parse_severity_weights(get("RISK_SEVERITY_WEIGHTS", "1:1,2:2,3:4,4:8")),
                                  half_life_days=float(get("RISK_HALF_LIFE_DAYS", 30)))
            adjacency = str(get("RISK_ADJACENCY", "queen")).strip()
            distance = None
            if adjacency.startswith("distance_band"):
                _, _, metres = adjacency.partition(":")
                distance = float(metres)
                adjacency = "distance_band"
            elif adjacency != "queen":
                raise ValueError("RISK_ADJACENCY must be 'queen' or 'distance_band:<metres>'")
            settings = cls(
                weights=weights, classes=int(get("RISK_CLASSES", 5)), method=str(get("RISK_CLASS_METHOD",
                                                                                    "natural_breaks")),
                default_days=int(get("RISK_DEFAULT_DAYS", 90)), adjacency=adjacency, adjacency_distance_m=distance,
                hotspot_value=str(get("RISK_HOTSPOT_VALUE", "score_per_km2")),
                permutations=int(get("RISK_PERMUTATIONS", 999)), seed=int(get("RISK_SEED", 12345)),
                metric_crs=str(get("METRIC_CRS", "EPSG:4547")),
                inline_max_features=int(get("RISK_INLINE_MAX_FEATURES", 3000)),
                heat_cell_m=float(get("HEATMAP_CELL_M", 200)),
                mediation_distance_m=float(get("MEDIATION_GAP_DISTANCE_M", 2000)))
        except (AnalysisInputError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"bad risk setting: {exc}") from exc
        if settings.hotspot_value not in HOTSPOT_VALUES:
            raise ValueError(f"RISK_HOTSPOT_VALUE must be one of {', '.join(HOTSPOT_VALUES)}")
        if settings.method not in RISK_METHODS:
            raise ValueError(f"RISK_CLASS_METHOD must be one of {RISK_METHODS}")
        if not 1 <= settings.classes <= 9 or settings.permutations < 0 or settings.default_days < 1:
            raise ValueError("RISK_CLASSES must be 1-9, RISK_PERMUTATIONS >= 0 and RISK_DEFAULT_DAYS >= 1")
        if settings.heat_cell_m < 10 or settings.mediation_distance_m < 0:
            raise ValueError("HEATMAP_CELL_M must be at least 10 and MEDIATION_GAP_DISTANCE_M non-negative")
        settings.metric_srid  # noqa: B018 -- fails early on a METRIC_CRS that is not EPSG:<n>
        return settings

    @classmethod
    def from_environment(cls) -> RiskSettings:
        """Defaults of gridmap.config.Config overridden by GRIDMAP_<KEY> variables (for the CLI)."""
        keys = [k for k in dir(Config) if k.isupper()]
        return cls.from_config({k: os.environ.get(f"GRIDMAP_{k}", getattr(Config, k)) for k in keys})

    @property
    def metric_srid(self) -> int:
        match = re.fullmatch(r"(?i)epsg:(\d+)", self.metric_crs.strip())
        if not match:
            raise ValueError(f"METRIC_CRS must look like EPSG:4547, not {self.metric_crs!r}")
        return int(match.group(1))

    @property
    def adjacency_rule(self) -> str:
        """The neighbour rule as stored with a cached adjacency."""
        if self.adjacency == "queen":
            return "queen"
        return f"distance_band:{self.adjacency_distance_m:g}@{self.metric_crs}"

    def as_dict(self) -> dict:
        return {
            "severity_weights": {str(k): v for k, v in sorted(self.weights.severity.items())},
            "half_life_days": self.weights.half_life_days, "classes": self.classes, "method": self.method,
            "adjacency": self.adjacency_rule, "hotspot_value": self.hotspot_value,
            "permutations": self.permutations, "seed": self.seed,
            "hot_spot_test": "Getis-Ord Gi* (binary weights, star), conditional permutations, FDR-corrected "
                             "90/95/99% bins; grids with nothing in or around them judged by the exact "
                             "permutation probability",
        }

    def description_zh(self) -> str:
        """One line for the page: how the score, the levels and the hot spots are made."""
        weights = "、".join(f"{k}级={v:g}" for k, v in sorted(self.weights.severity.items()))
        neighbours = ("共边或共点（Queen）相邻" if self.adjacency == "queen"
                      else f"{self.adjacency_distance_m:g} 米距离带")
        return (f"风险评分 = Σ 严重程度权重（{weights}）× 0.5^(距今天数 / {self.weights.half_life_days:g} 天半衰期)；"
                f"风险等级按{METHOD_ZH[self.method]}分 {self.classes} 级；"
                f"热点为{HOTSPOT_VALUES[self.hotspot_value]}的 Getis-Ord Gi*（{neighbours}，"
                f"{self.permutations} 次条件置换，FDR 校正，90/95/99% 置信）。")


# --- periods and filters ----------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """A half-open period ``[start, end)`` of timezone-aware datetimes."""

    start: datetime
    end: datetime

    @property
    def previous_start(self) -> datetime:
        return self.start - (self.end - self.start)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    @staticmethod
    def _text(moment: datetime) -> str:
        local = moment.astimezone(CHINA_TZ)
        if local.time() == time(0):
            return local.date().isoformat()
        return local.isoformat(timespec="minutes")

    def query_args(self) -> dict[str, str]:
        """``from``/``to`` as a URL gives them (dates when they are Beijing midnights)."""
        return {"from": self._text(self.start), "to": self._text(self.end)}

    def label(self) -> str:
        """E.g. ``2026-08-28 至 2026-11-26``: the last day shown is the last one included."""
        start, end = self.start.astimezone(CHINA_TZ), self.end.astimezone(CHINA_TZ)
        if start.time() == time(0) and end.time() == time(0):
            return f"{start.date().isoformat()} 至 {(end.date() - timedelta(days=1)).isoformat()}"
        return f"{start.isoformat(timespec='minutes')} 至 {end.isoformat(timespec='minutes')}（不含）"

    def as_dict(self) -> dict:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "previous_from": self.previous_start.isoformat(), "days": round(self.days, 4),
                "label": self.label()}


def _parse_moment(value, name: str) -> datetime:
    text = str(value).strip()
    message = f"{name} must be a date such as 2026-05-01 or a date-time such as 2026-05-01T08:00+08:00"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), time(0), CHINA_TZ)
        except ValueError:
            raise ValidationError(message, name) from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(message, name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA_TZ)


def end_of_today(now: datetime | None = None) -> datetime:
    """Midnight at the end of today, Beijing time: the latest end a period may have."""
    now = now or datetime.now(timezone.utc)
    return datetime.combine(now.astimezone(CHINA_TZ).date() + timedelta(days=1), time(0), CHINA_TZ)


def parse_period(args: Mapping, *, now: datetime | None = None, default_days: int = 90) -> Period:
    """The period ``[from, to)`` from query arguments; ValidationError naming ``from`` or ``to``.

    Dates are Beijing days (``to`` is the first day *not* included); date-times without an
    offset are Beijing time. Without ``to`` the period ends with today; without ``from`` it is
    ``default_days`` long. Periods may not reach past today or be longer than 10 years.
    """
    latest = end_of_today(now)
    raw_from, raw_to = args.get("from"), args.get("to")
    end = latest if raw_to in (None, "") else _parse_moment(raw_to, "to")
    start = end - timedelta(days=default_days) if raw_from in (None, "") else _parse_moment(raw_from, "from")
    if end > latest:
        raise ValidationError(f"to is in the future; the latest end is {latest.date()} (today included)", "to")
    if start >= latest:
        raise ValidationError(f"from is in the future; the period must start before {latest.date()}", "from")
    if end <= start:
        raise ValidationError("to must be after from: the period is [from, to), to not included", "to")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise ValidationError(f"the period may be at most {MAX_PERIOD_DAYS} days long", "from")
    return Period(start, end)


def parse_categories(args: Mapping) -> tuple[str, ...]:
    """``category`` as a comma list of category codes (empty: all)."""
    raw = args.get("category") or ""
    codes = tuple(dict.fromkeys(part.strip().upper() for part in str(raw).split(",") if part.strip()))
    unknown = [c for c in codes if c not in CATEGORY_CODES]
    if unknown:
        raise ValidationError(f"unknown category {unknown[0]!r}; use {', '.join(CATEGORY_CODES)}", "category")
    return codes


def parse_choice(value, name: str, choices, default: str) -> str:
    chosen = default if value in (None, "") else str(value).strip().lower()
    if chosen not in choices:
        raise ValidationError(f"{name} must be one of {', '.join(choices)}", name)
    return chosen


def parse_distance(value, default: float) -> float:
    if value in (None, ""):
        return float(default)
    try:
        distance = float(value)
    except (TypeError, ValueError):
        raise ValidationError("distance must be a number of metres", "distance") from None
    if not 0 <= distance <= MAX_MEDIATION_DISTANCE_M:
        raise ValidationError(f"distance must be between 0 and {MAX_MEDIATION_DISTANCE_M} metres", "distance")
    return distance


# --- loading ----------------------------------------------------------------------------------

def _from_wkb(values) -> np.ndarray:
    return shapely.from_wkb([bytes(v) for v in values]) if len(values) else np.array([], dtype=object)


def load_grids(session: Session) -> gpd.GeoDataFrame:
    """Every grid of the county, ORDER BY code (the adjacency and Gi*'s permutations depend on the
    order), with its village and town names, population and area."""
    rows = session.execute(
        select(Grid.code, Grid.name, Grid.village_code, Village.name.label("village_name"), Village.town_code,
               Town.name.label("town_name"), Grid.population, Grid.area_km2,
               func.ST_AsBinary(Grid.geom).label("wkb"))
        .join(Village, Village.code == Grid.village_code).join(Town, Town.code == Village.town_code)
        .order_by(Grid.code)).all()
    frame = pd.DataFrame([r._asdict() for r in rows],
                         columns=["code", "name", "village_code", "village_name", "town_code", "town_name",
                                  "population", "area_km2", "wkb"])
    geometry = _from_wkb(frame.pop("wkb"))
    frame["population"] = pd.to_numeric(frame["population"]).fillna(0).astype(np.int64)
    frame["area_km2"] = pd.to_numeric(frame["area_km2"]).astype(float)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")


INCIDENT_COLUMNS = ("id", "grid_code", "village_code", "town_code", "category", "subcategory", "severity",
                    "legal_class", "enterprise_involved", "status", "occurred_at", "deadline_at", "resolved_at",
                    "resolution_level", "mediation_point_id", "mediation_outcome", "unit_id")


def load_incidents(session: Session, period: Period, categories: tuple[str, ...] = ()) -> pd.DataFrame:
    """The incidents the summary and the report need, county-wide: those that occurred in this or the
    previous period, every one still open, and those resolved in the period.

    ``deadline_at`` is blanked for cases resolved by their deadline, so "overdue" means what it
    means on the incident pages (open and past the deadline at resolution, or now). ``unit_id`` is
    the enterprise (registry place) the incident names, or else the one whose inspection opened it.
    """
    previous_start = period.previous_start
    unit = (select(Inspection.incident_id, Place.id.label("unit_id"))
            .join(Place, Place.id == Inspection.place_id)
            .where(Place.kind == "enterprise", Inspection.incident_id.is_not(None)).subquery())
    deadline = case((and_(Incident.resolved_at.is_not(None), Incident.deadline_at.is_not(None),
                          Incident.resolved_at <= Incident.deadline_at), None), else_=Incident.deadline_at)
    query = (select(Incident.id, Incident.grid_code, Incident.village_code, Incident.town_code, Incident.category,
                    Incident.subcategory, Incident.severity, Incident.legal_class, Incident.enterprise_involved,
                    Incident.status, Incident.occurred_at, deadline.label("deadline_at"), Incident.resolved_at,
                    Incident.resolution_level, Incident.mediation_point_id, Incident.mediation_outcome,
                    func.coalesce(Incident.unit_id, unit.c.unit_id).label("unit_id"))
             .outerjoin(unit, unit.c.incident_id == Incident.id)
             .where(Incident.occurred_at < period.end,
                    or_(Incident.occurred_at >= previous_start, Incident.status.in_(OPEN_STATUSES),
                        and_(Incident.resolved_at >= period.start, Incident.resolved_at < period.end))))
    if categories:
        query = query.where(Incident.category.in_(categories))
    rows = session.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(INCIDENT_COLUMNS))
    for column in ("occurred_at", "deadline_at", "resolved_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["severity"] = pd.to_numeric(frame["severity"]).astype(np.int64)
    frame["enterprise_involved"] = frame["enterprise_involved"].astype(bool)
    return frame


def visible_grid_codes(session: Session, user: User | None) -> set[str] | None:
    """Codes of the grids in ``user``'s scope; None when the user sees the whole county."""
    if user is None or is_county_wide(user):
        return None
    condition = coded_condition(user, Village.town_code, Grid.village_code, Grid.code)
    zones = [code for code in user.scopes or () if not code.isdigit()]
    if zones:
        area = select(func.ST_Union(PatrolZone.geom)).where(PatrolZone.code.in_(zones)).scalar_subquery()
        condition = or_(condition, func.ST_Intersects(Grid.geom, func.ST_Buffer(area, -SCOPE_SHRINK_DEGREES)))
    return set(session.scalars(select(Grid.code).join(Village, Village.code == Grid.village_code)
                               .where(condition)))


def _fully_visible(codes: pd.Series, owners: pd.Series, visible: set[str] | None) -> set[str]:
    """Owners (villages, towns) all of whose grids are visible."""
    if visible is None:
        return set(owners.astype(str))
    inside = pd.Series(codes.astype(str).isin(visible).to_numpy(), index=owners.astype(str).to_numpy())
    whole = inside.groupby(level=0).all()
    return set(whole.index[whole.to_numpy()])


# --- adjacency kept with the grids ------------------------------------------------------------

def grid_adjacency(session: Session, grids: gpd.GeoDataFrame, settings: RiskSettings) -> tuple[GridAdjacency, bool]:
    """The neighbour relation of ``grids`` from the cache, built and stored when the grids changed.

    Returns the adjacency and whether it came from the cache. The new row is written in the
    caller's transaction (the caller commits); rows of older grid layers are removed.
    """
    fingerprint = geometry_fingerprint(grids[["code", "geometry"]])
    rule = settings.adjacency_rule
    blob = session.scalar(select(GridAdjacencyCache.data).where(GridAdjacencyCache.fingerprint == fingerprint,
                                                                GridAdjacencyCache.rule == rule))
    if blob is not None:
        try:
            adjacency = GridAdjacency.load(io.BytesIO(bytes(blob)))
            if adjacency.fingerprint == fingerprint and list(adjacency.codes) == list(grids["code"]):
                return adjacency, True
        except (AnalysisInputError, ValueError, OSError):
            pass  # an unreadable or foreign row: rebuild below and overwrite it
    if settings.adjacency == "queen":
        adjacency = GridAdjacency.from_grids(grids[["code", "geometry"]])
    else:
        adjacency = GridAdjacency.from_grids(grids[["code", "geometry"]], method="distance_band",
                                             distance_m=settings.adjacency_distance_m,
                                             metric_crs=settings.metric_crs)
    buffer = io.BytesIO()
    adjacency.save(buffer)
    session.execute(delete(GridAdjacencyCache).where(GridAdjacencyCache.rule == rule,
                                                     GridAdjacencyCache.fingerprint != fingerprint))
    statement = pg_insert(GridAdjacencyCache).values(fingerprint=fingerprint, rule=rule, n_grids=adjacency.n,
                                                     data=buffer.getvalue())
    session.execute(statement.on_conflict_do_update(
        index_elements=["fingerprint", "rule"],
        set_={"data": statement.excluded.data, "n_grids": statement.excluded.n_grids, "built_at": func.now()}))
    session.flush()
    return adjacency, False


# --- the risk summary -------------------------------------------------------------------------

@dataclass
class RiskResult:
    """Risk figures of the grids, villages and towns a user may see, for one period and filter."""

    period: Period
    categories: tuple[str, ...]
    settings: RiskSettings
    now: datetime
    county_wide: bool
    grids: gpd.GeoDataFrame
    villages: pd.DataFrame
    towns: pd.DataFrame
    legend: dict
    adjacency_cached: bool
    fdr_thresholds: dict = field(default_factory=dict)

    def meta(self) -> dict:
        return {"period": self.period.as_dict(), "categories": list(self.categories),
                "settings": self.settings.as_dict(), "scope": "county" if self.county_wide else "scoped",
                "generated_at": self.now.isoformat(), "count": {"grids": len(self.grids),
                                                                 "villages": len(self.villages),
                                                                 "towns": len(self.towns)}}


def hotspot_values(summary: pd.DataFrame, grids: gpd.GeoDataFrame, name: str) -> pd.Series:
    """The per-grid values Gi* tests; a rate without a denominator (no area, nobody living there) is 0."""
    if name == "score_per_km2":
        area = pd.to_numeric(grids.set_index("code")["area_km2"]).reindex(summary.index).to_numpy(dtype=float)
        score = summary["score"].to_numpy(dtype=float)
        values = np.zeros(len(score))
        np.divide(score, area, out=values, where=np.isfinite(area) & (area > 0))
        return pd.Series(values, index=summary.index)
    return summary[name].astype(float).fillna(0.0)


def tie_aware_bins(hot: pd.DataFrame, adjacency: GridAdjacency, permutations: int,
                   alpha_levels=DEFAULT_ALPHA_LEVELS) -> tuple[pd.Series, dict]:
    """Gi* bins that do not call a neighbourhood without any incident a cold spot by accident of ties.

    esda's pseudo p-value counts the simulations strictly below the observed Gi* for a low
    value. Where a grid and all its neighbours are 0, no simulation can be below, so with sparse
    data (a rare category, a short period) every such grid came out a "99 % cold spot". For those
    grids the probability of a simulation at or below the observed 0 is known exactly -- all k
    neighbours drawn from the other grids are zero: prod_j (z - j) / (n - 1 - j) for the z other
    zero grids -- and is used instead when larger; the bins are then recomputed as
    :func:`gridmap.analysis.hotspots.getis_ord_gi_star` does (two-sided p, FDR per level, sign of z).
    Other grids keep esda's p-value. Returns the bins and the p-value threshold of each level.
    """
    p_one_sided = hot["p_sim"].to_numpy(dtype=float, copy=True)
    gi = hot["gi"].to_numpy(dtype=float)
    silent = np.isfinite(gi) & (gi == 0)
    if not permutations or not silent.any():
        return hot["gi_bin"], dict(hot.attrs.get("fdr_thresholds", {}))
    values = hot["value"].to_numpy(dtype=float)
    n = len(values)
    other_zeros = int((values == 0).sum()) - 1
    cardinality = adjacency.cardinalities
    exact = np.ones(n)
    for k in np.unique(cardinality[silent]):
        draws = np.arange(int(k))
        exact[silent & (cardinality == k)] = np.prod(np.clip(other_zeros - draws, 0, None) / (n - 1 - draws))
    p_one_sided[silent] = np.maximum(p_one_sided[silent], exact[silent])
    z = hot["gi_z"].to_numpy(dtype=float)
    testable = np.isfinite(p_one_sided) & np.isfinite(z)
    p_two_sided = np.minimum(1.0, 2.0 * p_one_sided[testable])
    bins = np.zeros(int(testable.sum()), dtype=np.int64)
    thresholds = {}
    for level, alpha in enumerate(alpha_levels, start=1):
        thresholds[alpha] = float(fdr(p_two_sided, alpha)) if len(p_two_sided) else np.nan
        bins[p_two_sided <= thresholds[alpha]] = level
    out = np.zeros(n, dtype=np.int64)
    out[testable] = bins * np.sign(z[testable]).astype(np.int64)
    return pd.Series(out, index=hot.index), thresholds


def _class_legend(values: pd.Series, levels: pd.Series) -> list[dict]:
    """Per level that occurs: its value range, for the map legend."""
    frame = pd.DataFrame({"value": values.to_numpy(dtype=float), "level": levels.to_numpy()})
    frame = frame.loc[frame["level"] > 0]
    out = []
    for level, group in frame.groupby("level", sort=True):
        out.append({"level": int(level), "min": _round(group["value"].min()), "max": _round(group["value"].max()),
                    "n": int(len(group))})
    return out


def _levels_of(values: pd.Series, settings: RiskSettings) -> pd.Series:
    """Levels 1..classes of the finite values; 0 where there is no value (no population, no area)."""
    out = pd.Series(0, index=values.index, dtype=np.int64)
    known = np.isfinite(values.to_numpy(dtype=float))
    if known.any():
        out[known] = risk_levels(values[known].to_numpy(dtype=float), classes=settings.classes,
                                 method=settings.method)
    return out


def compute_risk(session: Session, user: User | None, period: Period, categories: tuple[str, ...] = (),
                 settings: RiskSettings | None = None, now: datetime | None = None) -> RiskResult:
    """Risk summary, Gi* hot spots and roll-ups for ``period``, shown for ``user``'s scope.

    ``user`` None means the whole county (the CLI). Writes the grid adjacency to its cache when
    the grids changed; the caller commits.
    """
    settings = settings or RiskSettings()
    now = now or datetime.now(timezone.utc)
    grids = load_grids(session)
    incidents = load_incidents(session, period, categories)
    try:
        summary = grid_risk_summary(grids, incidents, period.start, period.end, now=now, weights=settings.weights,
                                    classes=settings.classes, method=settings.method)
        adjacency, cached = grid_adjacency(session, grids, settings)
        hot = getis_ord_gi_star(hotspot_values(summary, grids, settings.hotspot_value), adjacency,
                                permutations=settings.permutations, seed=settings.seed)
        hot["gi_bin"], thresholds = tie_aware_bins(hot, adjacency, settings.permutations)
        villages = rollup(summary, grids, "village_code", classes=settings.classes, method=settings.method)
        towns = rollup(summary, grids, "town_code", classes=settings.classes, method=settings.method)
    except AnalysisInputError as exc:
        raise ValidationError(str(exc), None) from exc

    table = grids.set_index(pd.Index(grids["code"], name="grid_code"))
    table = table.join(summary).join(hot[["value", "gi", "gi_z", "p_norm", "p_sim", "gi_bin"]].rename(
        columns={"value": "gi_value"}))
    table["level_per_km2"] = _levels_of(table["per_km2"], settings)
    table["level_per_1000"] = _levels_of(table["per_1000"], settings)
    legend = {"score": _class_legend(table["score"], table["risk_level"]),
              "per_km2": _class_legend(table["per_km2"], table["level_per_km2"]),
              "per_1000": _class_legend(table["per_1000"], table["level_per_1000"]),
              "gi_bin": [{"bin": b, "label": GI_BIN_ZH[b], "n": int((table["gi_bin"] == b).sum())}
                         for b in sorted(GI_BIN_ZH, reverse=True)],
              "classes": settings.classes, "method": settings.method}
    hot_grids = (table["gi_bin"] > 0).groupby(table["village_code"]).sum()
    villages = villages.join(grids.drop_duplicates("village_code").set_index("village_code")[
        ["village_name", "town_code", "town_name"]]).rename(columns={"village_name": "name"})
    villages["n_hot_grids"] = hot_grids.reindex(villages.index).fillna(0).astype(np.int64)
    towns = towns.join(grids.drop_duplicates("town_code").set_index("town_code")[["town_name"]]
                       ).rename(columns={"town_name": "name"})
    towns["n_hot_grids"] = (table["gi_bin"] > 0).groupby(table["town_code"]).sum().reindex(towns.index).fillna(
        0).astype(np.int64)

    visible = visible_grid_codes(session, user)
    if visible is not None:
        table = table.loc[table.index.isin(visible)]
        villages = villages.loc[villages.index.isin(_fully_visible(grids["code"], grids["village_code"], visible))]
        towns = towns.loc[towns.index.isin(_fully_visible(grids["code"], grids["town_code"], visible))]
    table = gpd.GeoDataFrame(table[GRID_TABLE_COLUMNS + ["geometry"]], geometry="geometry", crs="EPSG:4326")
    return RiskResult(period=period, categories=categories, settings=settings, now=now,
                      county_wide=visible is None, grids=table, villages=villages[VILLAGE_TABLE_COLUMNS],
                      towns=towns[TOWN_TABLE_COLUMNS], legend=legend, adjacency_cached=cached,
                      fdr_thresholds={str(k): _round(v) for k, v in thresholds.items()})


SUMMARY_COLUMNS = [*COUNT_COLUMNS, "n_total", "score", "per_km2", "per_1000", "open_backlog", "overdue_backlog",
                   "prev_total", "change", "change_pct", "risk_level"]
GRID_TABLE_COLUMNS = ["code", "name", "village_code", "village_name", "town_code", "town_name", "population",
                      "area_km2", *SUMMARY_COLUMNS, "level_per_km2", "level_per_1000", "gi_value", "gi", "gi_z",
                      "p_norm", "p_sim", "gi_bin"]
ROLLUP_COLUMNS = ["n_grids", "population", "area_km2", *SUMMARY_COLUMNS, "n_hot_grids"]
VILLAGE_TABLE_COLUMNS = ["name", "town_code", "town_name", *ROLLUP_COLUMNS]
TOWN_TABLE_COLUMNS = ["name", *ROLLUP_COLUMNS]


# --- serialising ------------------------------------------------------------------------------

def _round(value, digits: int = 6):
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _plain(value):
    """A cell as JSON wants it: NaN and NaT to None, numpy scalars to Python, times to ISO text."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _round(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def records(frame: pd.DataFrame, index_name: str | None = None) -> list[dict]:
    """Rows of ``frame`` as plain dicts; the index becomes ``index_name`` (or its own name)."""
    frame = pd.DataFrame(frame)
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    columns = [c for c in frame.columns if c != geometry and c != "geometry"]
    name = index_name or frame.index.name
    out = []
    for key, row in zip(frame.index, frame[columns].itertuples(index=False, name=None)):
        item = {} if name is None or name in columns else {name: _plain(key)}
        item.update({c: _plain(v) for c, v in zip(columns, row)})
        out.append(item)
    return out


def _level_table(result: RiskResult, level: str) -> pd.DataFrame:
    if level == "grids":
        return pd.DataFrame(result.grids.drop(columns="geometry")).set_index("code", drop=False)
    if level == "villages":
        return result.villages
    return result.towns


def risk_json(result: RiskResult, level: str = "grids") -> dict:
    """The figures of ``level`` (grids, villages or towns) with the period, filter and settings."""
    index_name = {"grids": None, "villages": "code", "towns": "code"}[level]
    body = result.meta()
    body[level] = records(_level_table(result, level), index_name)
    if level == "grids":
        body["legend"] = result.legend
        body["fdr_thresholds"] = result.fdr_thresholds
    return body


def _rounded_geometry(geometry) -> list[dict | None]:
    geoms = shapely.transform(np.asarray(geometry, dtype=object),
                              lambda xy: np.round(xy, COORDINATE_DECIMALS))
    return [None if g is None else json.loads(g) for g in shapely.to_geojson(geoms)]


def feature_collection(frame: gpd.GeoDataFrame, id_column: str, extra: dict | None = None) -> dict:
    """A GeoDataFrame as a GeoJSON FeatureCollection with ids and plain properties."""
    properties = records(pd.DataFrame(frame.drop(columns=frame.geometry.name)), None)
    geometries = _rounded_geometry(frame.geometry.array)
    features = [{"type": "Feature", "id": props.get(id_column), "geometry": geom, "properties": props}
                for props, geom in zip(properties, geometries)]
    collection = {"type": "FeatureCollection", "features": features}
    collection.update(extra or {})
    return collection


def _areas(session: Session, level: str, codes, simplify_m: float = 0.0) -> gpd.GeoDataFrame:
    model = Village if level == "villages" else Town
    geom = model.geom if simplify_m <= 0 else func.ST_Multi(func.ST_SimplifyPreserveTopology(model.geom,
                                                                                     simplify_m / 111_000))
    rows = session.execute(select(model.code, func.ST_AsBinary(geom)).where(model.code.in_(list(codes)))).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["code", "wkb"])
    return gpd.GeoDataFrame({"code": frame["code"]}, geometry=_from_wkb(frame["wkb"]), crs="EPSG:4326")


def risk_layer(session: Session, result: RiskResult, level: str = "grids", simplify_m: float = 0.0
               ) -> gpd.GeoDataFrame:
    """The figures of ``level`` with their polygons."""
    if level == "grids":
        return result.grids
    table = _level_table(result, level)
    areas = _areas(session, level, table.index, simplify_m).set_index("code")
    frame = table.copy()
    frame.insert(0, "code", table.index.astype(str))
    return gpd.GeoDataFrame(frame, geometry=areas.geometry.reindex(table.index).array, crs="EPSG:4326")


def risk_geojson(session: Session, result: RiskResult, level: str = "grids") -> dict:
    extra = {key: value for key, value in result.meta().items()}
    if level == "grids":
        extra["legend"] = result.legend
    return feature_collection(risk_layer(session, result, level, simplify_m=2.0 if level != "grids" else 0),
                              "code", extra)


MAP_PROPERTIES = ("code", "name", "village_name", "town_name", "n_total", "score", "risk_level", "per_km2",
                  "level_per_km2", "per_1000", "level_per_1000", "open_backlog", "overdue_backlog", "prev_total",
                  "change", "change_pct", "gi_z", "gi_bin")


def risk_map_geojson(result: RiskResult) -> dict:
    """The grids for the risk map page: only what its tooltips and colours use (counts by category
    only where not zero, figures rounded), so a county's grids stay small enough to inline."""
    frame = result.grids
    geometries = _rounded_geometry(frame.geometry.simplify(1e-5, preserve_topology=True).array)
    counts = frame[list(COUNT_COLUMNS)].to_numpy()
    features = []
    for i, props in enumerate(records(pd.DataFrame(frame[list(MAP_PROPERTIES)]).set_axis(range(len(frame))))):
        props = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in props.items()}
        props.update({column: int(n) for column, n in zip(COUNT_COLUMNS, counts[i]) if n})
        features.append({"type": "Feature", "id": props["code"], "geometry": geometries[i], "properties": props})
    return {"type": "FeatureCollection", "features": features, "legend": result.legend}


def _csv_cell(value):
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    # Spreadsheets run cells starting with these as formulas.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def frame_csv(frame: pd.DataFrame, index_name: str | None = None) -> str:
    """CSV text with a BOM (so spreadsheet programs read the Chinese as UTF-8) and key headers."""
    rows = records(frame, index_name)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    columns = list(rows[0]) if rows else ([index_name] if index_name else []) + [
        c for c in frame.columns if c != "geometry"]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def risk_csv(result: RiskResult, level: str = "grids") -> str:
    return frame_csv(_level_table(result, level), {"grids": None, "villages": "code", "towns": "code"}[level])


# --- Excel and GeoPackage ---------------------------------------------------------------------

@dataclass(frozen=True)
class Sheet:
    title: str
    frame: pd.DataFrame
    index_name: str | None = None
    note: str = ""


def workbook_bytes(sheets: list[Sheet], cover: list[tuple[str, str]]) -> bytes:
    """An Excel workbook: a cover sheet of (label, value) rows, then one sheet per table with
    Chinese column headers (keys without a label keep their name)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    workbook = Workbook()
    first = workbook.active
    first.title = "说明"
    for label, value in cover:
        first.append([label, value])
    first.column_dimensions["A"].width = 18
    first.column_dimensions["B"].width = 100
    header_fill = PatternFill("solid", fgColor="DDE4EE")
    for sheet in sheets:
        ws = workbook.create_sheet(sheet.title[:31])
        rows = records(sheet.frame, sheet.index_name)
        columns = list(rows[0]) if rows else (
            ([sheet.index_name] if sheet.index_name else []) + [c for c in sheet.frame.columns if c != "geometry"])
        ws.append([COLUMN_ZH.get(c, c) for c in columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = header_fill
        for row in rows:
            ws.append([_excel_cell(row.get(c)) for c in columns])
        if sheet.note:
            ws.append([])
            ws.append([sheet.note])
        ws.freeze_panes = "A2"
        for letter in ("A", "B", "C"):
            ws.column_dimensions[letter].width = 18
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _excel_cell(value):
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not _is_number(value):
        return "'" + value
    return value


def _risk_cover(result: RiskResult) -> list[tuple[str, str]]:
    categories = "、".join(CATEGORY_BY_CODE[c].name_zh for c in result.categories) or "全部类别"
    return [("网格风险汇总", ""), ("统计期间", result.period.label()), ("事件类别", categories),
            ("范围", COUNTY_LABEL if result.county_wide else "本人辖区"),
            ("生成时间", result.now.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")),
            ("口径", result.settings.description_zh()),
            ("趋势", f"上期为 {result.period.previous_start.astimezone(CHINA_TZ).date()} 起等长期间"),
            ("热点判定", "热点分级 3/2/1 = 99%/95%/90% 置信热点，-1/-2/-3 为冷点，0 不显著")]


def risk_xlsx(result: RiskResult) -> bytes:
    """The risk tables as an Excel workbook: grids, villages, towns (Chinese headers)."""
    grids = pd.DataFrame(result.grids.drop(columns="geometry")).assign(
        gi_bin_zh=lambda f: f["gi_bin"].map(GI_BIN_ZH))
    return workbook_bytes([Sheet("网格风险", grids.set_index("code", drop=False)),
                           Sheet("村（社区）汇总", result.villages, "code"),
                           Sheet("乡镇汇总", result.towns, "code")], _risk_cover(result))


def write_atomically(out: Path, write) -> None:
    """Call ``write(temporary path)`` and move the file to ``out`` only when it succeeded."""
    out = Path(out)
    directory = out.resolve().parent
    if not directory.is_dir():
        raise ValidationError(f"directory {directory} does not exist", "out")
    handle, temporary = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=out.suffix, dir=directory)
    os.close(handle)
    os.unlink(temporary)
    try:
        write(Path(temporary))
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_risk_file(session: Session, result: RiskResult, fmt: str, out: Path) -> None:
    """Write the risk figures to ``out`` as csv (grids), geojson (grids), gpkg (grids, villages and
    towns layers) or xlsx (a sheet per table); nothing is left behind on an error."""
    fmt = parse_choice(fmt, "format", FILE_FORMATS, "csv")

    def write(path: Path) -> None:
        if fmt == "csv":
            path.write_text(risk_csv(result), encoding="utf-8")
        elif fmt == "geojson":
            path.write_text(json.dumps(risk_geojson(session, result), ensure_ascii=False), encoding="utf-8")
        elif fmt == "xlsx":
            path.write_bytes(risk_xlsx(result))
        else:
            import pyogrio

            for level in LEVELS:
                frame = risk_layer(session, result, level).reset_index(drop=True)
                pyogrio.write_dataframe(frame, path, layer=level, driver="GPKG",
                                        append=level != "grids")

    write_atomically(out, write)


# --- heatmap ----------------------------------------------------------------------------------

def _months(period: Period) -> list[str]:
    first = period.start.astimezone(CHINA_TZ).date().replace(day=1)
    last = (period.end - timedelta(microseconds=1)).astimezone(CHINA_TZ).date().replace(day=1)
    months = []
    while first <= last:
        months.append(f"{first:%Y-%m}")
        first = (first + timedelta(days=32)).replace(day=1)
    return months


def heat_cells(session: Session, user: User, period: Period, categories: tuple[str, ...] = (),
               settings: RiskSettings | None = None) -> dict:
    """Incidents the user may see, counted per month and per square cell of ``heat_cell_m`` metres
    (in the metric CRS), as ``[lat, lon, n]`` at the cell centres: the heatmap's size depends on
    the area and the months, not on the number of incidents."""
    settings = settings or RiskSettings()
    srid, cell = settings.metric_srid, float(settings.heat_cell_m)
    projected = func.ST_Transform(Incident.geom, srid)
    month = func.to_char(func.date_trunc("month", func.timezone("Asia/Shanghai", Incident.occurred_at)), "YYYY-MM")
    conditions = [visible_condition(user) if user is not None else true(),
                  Incident.occurred_at >= period.start, Incident.occurred_at < period.end,
                  Incident.status.not_in(("rejected", "duplicate"))]
    if categories:
        conditions.append(Incident.category.in_(categories))
    cx, cy = func.floor(func.ST_X(projected) / cell), func.floor(func.ST_Y(projected) / cell)
    cells = (select(month.label("month"), cx.label("cx"), cy.label("cy"), func.count().label("n"))
             .where(*conditions).group_by(month, cx, cy).subquery())
    centre = func.ST_Transform(func.ST_SetSRID(func.ST_MakePoint((cells.c.cx + 0.5) * cell,
                                                                 (cells.c.cy + 0.5) * cell), srid), 4326)
    rows = session.execute(select(cells.c.month, func.ST_Y(centre), func.ST_X(centre), cells.c.n)
                           .order_by(cells.c.month, cells.c.cx, cells.c.cy)).all()
    months = _months(period)
    points: dict[str, list] = {m: [] for m in months}
    counts = {m: 0 for m in months}
    for month_text, lat, lon, n in rows:
        points.setdefault(month_text, []).append([round(lat, 5), round(lon, 5), int(n)])
        counts[month_text] = counts.get(month_text, 0) + int(n)
    values = np.array([p[2] for cell_points in points.values() for p in cell_points], dtype=float)
    # Points near each other add up on the heat canvas, so the colour scale tops out above the
    # busiest single cell: twice its count keeps the hot centres from merging into one blob.
    scale = 2.0 * float(values.max()) if len(values) else 1.0
    return {"period": period.as_dict(), "categories": list(categories), "cell_m": cell, "months": months,
            "counts": counts, "total": int(sum(counts.values())), "max": int(values.max()) if len(values) else 0,
            "scale": max(1.0, scale), "points": points}


# --- the county's numbers ---------------------------------------------------------------------

@dataclass
class CountyReport:
    """The report page's tables for one period, limited to the user's scope."""

    period: Period
    now: datetime
    county_wide: bool
    distance_m: float
    villages: gpd.GeoDataFrame          # 三零 flags per village, with polygons
    compliance: pd.DataFrame            # by town + total, against 80 %
    units: pd.DataFrame                 # 三零 per enterprise/unit
    unit_compliance: pd.DataFrame       # by town + total, against 90 %
    unit_note: str
    resolution: pd.DataFrame            # by town + total
    enterprise: pd.DataFrame            # by town + total
    enterprise_cases: list[dict] | None  # None for the viewer: aggregates only
    gaps: gpd.GeoDataFrame              # villages without a mediation point within distance_m
    mediation: pd.DataFrame             # per mediation point
    points: gpd.GeoDataFrame            # mediation points for the map
    resolution_period_by: str = "resolved_at"

    @property
    def total_label(self) -> str:
        return COUNTY_LABEL if self.county_wide else SCOPE_LABEL


def _villages_frame(session: Session) -> gpd.GeoDataFrame:
    rows = session.execute(select(Village.code, Village.name, Village.town_code, Town.name.label("town_name"),
                                  func.ST_AsBinary(Village.geom)).join(Town, Town.code == Village.town_code)
                           .order_by(Village.code)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["code", "name", "town_code", "town_name", "wkb"])
    return gpd.GeoDataFrame(frame.drop(columns="wkb"), geometry=_from_wkb(frame["wkb"]), crs="EPSG:4326")


def _points_frame(session: Session) -> gpd.GeoDataFrame:
    rows = session.execute(select(MediationPoint.id, MediationPoint.name, MediationPoint.kind,
                                  MediationPoint.village_code, func.ST_AsBinary(MediationPoint.geom))
                           .order_by(MediationPoint.id)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["id", "name", "kind", "village_code", "wkb"])
    frame["kind_zh"] = frame["kind"].map(MEDIATION_KIND_ZH)
    return gpd.GeoDataFrame(frame.drop(columns="wkb"), geometry=_from_wkb(frame["wkb"]), crs="EPSG:4326")


def _units_frame(session: Session, villages: set[str]) -> pd.DataFrame:
    rows = session.execute(select(Place.id, Place.name, Place.subkind, Place.village_code, Place.town_code)
                           .where(Place.kind == "enterprise", Place.active.is_(True))
                           .where(Place.village_code.in_(villages) if villages is not None else true())
                           .order_by(Place.id)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["id", "name", "subkind", "village_code", "town_code"])
    subkinds = dict(PLACE_SUBKINDS["enterprise"])
    frame["subkind"] = frame["subkind"].map(lambda s: subkinds.get(s, s or ""))
    return frame


def _with_town_names(table: pd.DataFrame, towns: pd.Series, total_label: str, all_towns=None) -> pd.DataFrame:
    """A "by town" table with its town names; towns without rows filled with zeros when given."""
    table = table.copy()
    if all_towns is not None:
        body = table.drop(index=COUNTY_TOTAL, errors="ignore")
        order = sorted(set(all_towns) | set(body.index))
        body = body.reindex(order)
        for column in body.columns:
            if column.startswith("n_") or column == "n":
                body[column] = body[column].fillna(0).astype(np.int64)
        table = pd.concat([body, table.loc[[COUNTY_TOTAL]]]) if COUNTY_TOTAL in table.index else body
    names = [total_label if code == COUNTY_TOTAL else towns.get(code, code) for code in table.index]
    table.insert(0, "town_name", names)
    table.index.name = "town_code"
    return table


def _recompute_shares(table: pd.DataFrame) -> pd.DataFrame:
    for level in ("village", "town", "county"):
        numerator = table[f"n_{level}"].to_numpy(dtype=float)
        denominator = table["n_resolved"].to_numpy(dtype=float)
        share = np.full(len(table), np.nan)
        np.divide(numerator, denominator, out=share, where=denominator > 0)
        table[f"share_{level}"] = share
    return table


def county_report(session: Session, user: User | None, period: Period, settings: RiskSettings | None = None,
                  distance_m: float | None = None, now: datetime | None = None) -> CountyReport:
    """"三零" per village and unit, compliance by town, resolution levels, enterprise-related disputes
    and cases, and mediation coverage, for ``period`` and ``user``'s scope (None: the county)."""
    settings = settings or RiskSettings()
    now = now or datetime.now(timezone.utc)
    distance_m = settings.mediation_distance_m if distance_m is None else float(distance_m)
    grids = session.execute(select(Grid.code, Grid.village_code, Village.town_code)
                            .join(Village, Village.code == Grid.village_code)).all()
    grid_frame = pd.DataFrame([tuple(r) for r in grids], columns=["code", "village_code", "town_code"])
    visible = visible_grid_codes(session, user)
    county_wide = visible is None
    visible_villages = _fully_visible(grid_frame["code"], grid_frame["village_code"], visible)
    visible_towns = _fully_visible(grid_frame["code"], grid_frame["town_code"], visible)
    total_label = COUNTY_LABEL if county_wide else SCOPE_LABEL

    all_villages = _villages_frame(session)
    town_names = all_villages.drop_duplicates("town_code").set_index("town_code")["town_name"]
    # A town only partly in the user's scope is labelled so: its row covers the visible villages only.
    town_names = pd.Series([name if code in visible_towns else f"{name}（可见部分）"
                            for code, name in town_names.items()], index=town_names.index)
    villages = all_villages.loc[all_villages["code"].isin(visible_villages)].reset_index(drop=True)
    county_incidents = load_incidents(session, period)
    incidents = county_incidents.loc[county_incidents["village_code"].isin(visible_villages)]
    try:
        flags = sanling_by_village(villages.drop(columns="geometry"), incidents, period.start, period.end)
        compliance = compliance_rate(flags, "town_code", target=VILLAGE_COMPLIANCE_TARGET)
        units = _units_frame(session, visible_villages)
        unit_flags = sanling_by_unit(units, incidents, period.start, period.end)
        unit_compliance = compliance_rate(unit_flags, "town_code", target=UNIT_COMPLIANCE_TARGET)
        resolution = resolution_levels(incidents, period.start, period.end, by="town_code")
        enterprise = enterprise_related(incidents, period.start, period.end, by="town_code")
        points = _points_frame(session)
        gaps = mediation_gaps(villages[["code", "name", "town_code", "town_name", "geometry"]],
                              points[["id", "geometry"]], distance_m, metric_crs=settings.metric_crs)
        # A point's referrals may come from any village; a mediator sees the points they work at.
        if county_wide:
            scoped_points = points
        elif user.role == "mediator":
            scoped_points = points.loc[points["id"].isin(mediation_point_scopes(user))]
        else:
            scoped_points = points.loc[points["village_code"].isin(visible_villages)]
        mediation = mediation_stats(scoped_points.drop(columns="geometry"), county_incidents, start=period.start,
                                    end=period.end)
    except AnalysisInputError as exc:
        raise ValidationError(str(exc), None) from exc

    scope_towns = sorted(set(villages["town_code"]))
    village_names = all_villages.set_index("code")["name"]
    village_table = gpd.GeoDataFrame(flags.join(villages.set_index("code")[["geometry"]]), geometry="geometry",
                                     crs="EPSG:4326")
    unit_note = ("单位“三零”按事件所涉单位评定：上报或导入事件时注明的在册企业/单位，或发现该事件的企业巡检；"
                 f"未注明单位的事件不计入。共 {int(incidents['unit_id'].notna().sum())} 起期间相关事件与单位关联。")
    cases = None
    if user is None or user.role not in AGGREGATES_ONLY_ROLES:
        cases = _enterprise_cases(incidents, period, village_names, town_names)
    mediation = mediation.copy()
    mediation["village_name"] = mediation["village_code"].map(village_names)
    point_names = points.set_index("id")["name"]
    gaps = gaps.copy()
    gaps["nearest_point_name"] = gaps["nearest_point_id"].map(lambda i: point_names.get(i) if pd.notna(i) else None)
    return CountyReport(
        period=period, now=now, county_wide=county_wide, distance_m=distance_m, villages=village_table,
        compliance=_with_town_names(compliance, town_names, total_label, scope_towns),
        units=unit_flags.assign(town_name=lambda f: f["town_code"].map(town_names),
                                village_name=lambda f: f["village_code"].map(village_names)),
        unit_compliance=_with_town_names(unit_compliance, town_names, total_label),
        unit_note=unit_note,
        resolution=_recompute_shares(_with_town_names(resolution, town_names, total_label, scope_towns)),
        resolution_period_by=resolution.attrs.get("period_by", "resolved_at"),
        enterprise=_with_town_names(enterprise, town_names, total_label, scope_towns),
        enterprise_cases=cases, gaps=gaps, mediation=mediation,
        points=points.loc[points.geometry.notna()])


def _enterprise_cases(incidents: pd.DataFrame, period: Period, village_names, town_names) -> list[dict]:
    """Enterprise-related disputes and cases of the period (no descriptions, no personal details)."""
    counted = incidents.loc[~incidents["status"].isin(("rejected", "duplicate"))]
    occurred = counted["occurred_at"]
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    in_period = counted.loc[((occurred >= start) & (occurred < end)).to_numpy()]
    involved = in_period["enterprise_involved"].astype(bool)
    dispute = (in_period["category"] == "DSP") & (involved | (in_period["subcategory"] == "enterprise"))
    legal_case = involved & (in_period["legal_class"] != "none")
    chosen = in_period.loc[(dispute | legal_case).to_numpy()].sort_values("occurred_at", ascending=False)
    out = []
    for row in chosen.head(ENTERPRISE_CASE_LIMIT).itertuples():
        category = CATEGORY_BY_CODE[row.category]
        subcategories = {code: zh for code, zh, _ in category.subcategories}
        out.append({"id": int(row.id), "occurred_at": row.occurred_at.tz_convert("Asia/Shanghai").isoformat(),
                    "kind_of_case": "涉企案件" if row.legal_class != "none" else "涉企纠纷",
                    "category": row.category, "category_zh": category.name_zh,
                    "subcategory_zh": subcategories.get(row.subcategory, row.subcategory or ""),
                    "legal_class_zh": LEGAL_CLASS_ZH.get(row.legal_class, row.legal_class),
                    "status_zh": STATUS_ZH.get(row.status, row.status), "town_name": town_names.get(row.town_code),
                    "village_name": village_names.get(row.village_code)})
    return out


def report_json(report: CountyReport) -> dict:
    """The report as JSON; rates and shares are fractions 0-1."""
    villages = pd.DataFrame(report.villages.drop(columns="geometry"))
    return {
        "period": report.period.as_dict(), "scope": "county" if report.county_wide else "scoped",
        "generated_at": report.now.isoformat(),
        "sanling": {
            "target": VILLAGE_COMPLIANCE_TARGET, "villages": records(villages, "village_code"),
            "by_town": records(report.compliance, "town_code"),
            "unit_target": UNIT_COMPLIANCE_TARGET, "units": records(report.units, "unit_id"),
            "units_by_town": records(report.unit_compliance, "town_code"), "unit_note": report.unit_note,
        },
        "resolution_levels": {"by_town": records(report.resolution, "town_code"),
                              "period_by": report.resolution_period_by,
                              "levels": RESOLUTION_LEVEL_ZH},
        "enterprise": {"by_town": records(report.enterprise, "town_code"), "cases": report.enterprise_cases},
        "mediation": {"distance_m": report.distance_m,
                      "gaps": records(pd.DataFrame(report.gaps.drop(columns="geometry")), "village_code"),
                      "points": records(report.mediation, "mediation_point_id")},
    }


def report_villages_geojson(report: CountyReport) -> dict:
    """Villages with their "三零" status and whether they lack a mediation point in reach."""
    frame = report.villages.copy()
    frame.geometry = frame.geometry.simplify(5 / 111_000, preserve_topology=True)
    frame["mediation_gap"] = frame.index.isin(report.gaps.index)
    frame["distance_m"] = report.gaps["distance_m"].reindex(frame.index)
    frame.insert(0, "code", frame.index.astype(str))
    keep = ["code", "name", "town_name", "compliant", "zero_petitions", "zero_accidents", "zero_cases",
            "n_escalated_petitions", "n_accidents", "n_criminal_cases", "n_serious_public_order_cases",
            "mediation_gap", "distance_m", "geometry"]
    return feature_collection(gpd.GeoDataFrame(frame[keep], geometry="geometry", crs="EPSG:4326"), "code")


def report_points_geojson(report: CountyReport) -> dict:
    frame = report.points[["id", "name", "kind_zh", "village_code", "geometry"]]
    return feature_collection(frame, "id")


def report_xlsx(report: CountyReport) -> bytes:
    """The report as an Excel workbook, a sheet per table with Chinese headers."""
    villages = pd.DataFrame(report.villages.drop(columns="geometry"))
    sheets = [
        Sheet("三零村（社区）", villages, "village_code"),
        Sheet("三零达标率（乡镇）", report.compliance, "town_code",
              f"目标：村（社区）达标率 {VILLAGE_COMPLIANCE_TARGET:.0%}"),
        Sheet("三零单位", report.units, "unit_id", report.unit_note),
        Sheet("三零单位达标率", report.unit_compliance, "town_code",
              f"目标：单位达标率 {UNIT_COMPLIANCE_TARGET:.0%}"),
        Sheet("化解层级", report.resolution, "town_code", "小事不出村、大事不出乡、矛盾不上交：按办结时间统计期内办结的矛盾纠纷"),
        Sheet("涉企纠纷与案件", report.enterprise, "town_code"),
    ]
    if report.enterprise_cases is not None:
        sheets.append(Sheet("涉企纠纷案件清单", pd.DataFrame(report.enterprise_cases), None))
    sheets += [
        Sheet("调解阵地覆盖缺口", pd.DataFrame(report.gaps.drop(columns="geometry")), "village_code",
              f"{report.distance_m:g} 米内没有调解阵地的村（社区）"),
        Sheet("调解阵地", report.mediation, "mediation_point_id"),
    ]
    cover = [("“三零”创建与县级指标", ""), ("统计期间", report.period.label()),
             ("范围", COUNTY_LABEL if report.county_wide else "本人辖区"),
             ("生成时间", report.now.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")),
             ("“三零”", "零上访（无越级/上交信访）、零事故（无伤亡安全事故）、零案件（无刑事案件和较重治安案件）"),
             ("比率", "达标率、占比为 0-1 的小数")]
    return workbook_bytes(sheets, cover)


def write_report_file(report: CountyReport, fmt: str, out: Path) -> None:
    fmt = parse_choice(fmt, "format", REPORT_FORMATS, "json")

    def write(path: Path) -> None:
        if fmt == "json":
            path.write_text(json.dumps(report_json(report), ensure_ascii=False, indent=1), encoding="utf-8")
        else:
            path.write_bytes(report_xlsx(report))

    write_atomically(out, write)


__all__ = ["RiskSettings", "Period", "RiskResult", "CountyReport", "parse_period", "parse_categories",
           "parse_choice", "parse_distance", "load_grids", "load_incidents", "grid_adjacency", "compute_risk",
           "risk_json", "risk_geojson", "risk_csv", "risk_xlsx", "write_risk_file", "heat_cells", "county_report",
           "report_json", "report_xlsx", "report_villages_geojson", "report_points_geojson", "write_report_file",
           "feature_collection", "records", "end_of_today"]
