"""Registries and campaigns: places that must be inspected and their inspections, the staff of each
village ("一村一警一律师", grid workers, mediators, 五老), legal-publicity activities, and case-quality
reviews. Bulletins are computed, not stored.

Places and activities get their grid, village and town from the database (trigger
``gridmap_assign_point_place`` in migration 0005), like incidents.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Integer, SmallInteger,
                        String, Text, UniqueConstraint, func)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.catalog import ACTIVITY_KINDS, PLACE_KINDS, REVIEW_METHODS, STAFF_ROLES
from gridmap.models.base import Base, created_at_column, point_geometry


def _in(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Place(Base):
    """A place on the inspection registry: one of the 九小场所, a 危爆物品 site, a 寄递网点, an enterprise."""
    __tablename__ = "places"
    __table_args__ = (
        CheckConstraint(_in("kind", PLACE_KINDS), name="kind_known"),
        CheckConstraint("inspection_interval_days BETWEEN 1 AND 3660", name="interval_range"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(80), unique=True)  # the importing system's id
    kind: Mapped[str] = mapped_column(String(20), index=True)
    subkind: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    # The role of the person answerable for the place (店主, 法定代表人, 安全员); no names kept.
    responsible_role: Mapped[str] = mapped_column(String(60), default="", server_default="")
    inspection_interval_days: Mapped[int] = mapped_column(Integer)
    registered_on: Mapped[date] = mapped_column(Date, server_default=func.current_date())
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = created_at_column()
    # Set by the database trigger from geom, never by clients.
    grid_code: Mapped[str] = mapped_column(ForeignKey("grids.code"), index=True)
    village_code: Mapped[str] = mapped_column(ForeignKey("villages.code"), index=True)
    town_code: Mapped[str] = mapped_column(ForeignKey("towns.code"), index=True)
    geom = mapped_column(point_geometry(), nullable=False)


class Inspection(Base):
    """One inspection of a place. A hazard found may open an incident: ``incident_id`` links the two
    (one incident per inspection), and the incident's first event names the inspection."""
    __tablename__ = "inspections"
    __table_args__ = (
        CheckConstraint("char_length(hazard_description) <= 2000", name="hazard_description_length"),
        CheckConstraint("hazard_found OR incident_id IS NULL", name="incident_needs_hazard"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), index=True)
    inspected_on: Mapped[date] = mapped_column(Date, index=True)
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    inspector_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    checklist: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    passed: Mapped[bool] = mapped_column(Boolean)
    hazard_found: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    hazard_description: Mapped[str] = mapped_column(Text, default="", server_default="")
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), unique=True)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    recorded_at: Mapped[datetime] = created_at_column()


class StaffAssignment(Base):
    """A person serving a village (or, for grid workers, a grid): an account or a contact without login."""
    __tablename__ = "village_staff"
    __table_args__ = (
        CheckConstraint(_in("role", STAFF_ROLES), name="role_known"),
        CheckConstraint("(role = 'grid_worker') = (grid_code IS NOT NULL)", name="grid_for_grid_workers"),
        CheckConstraint("grid_code IS NULL OR left(grid_code, 12) = village_code", name="grid_in_village"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # A work telephone; hidden from the read-only viewer role like other personal details.
    phone: Mapped[str | None] = mapped_column(String(40))
    organisation: Mapped[str] = mapped_column(String(200), default="", server_default="")
    village_code: Mapped[str] = mapped_column(ForeignKey("villages.code", ondelete="CASCADE"), index=True)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grids.code", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    since: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = created_at_column()


class LegalActivity(Base):
    """A legal-publicity event (普法, one of the "法律六进") at a point on the map."""
    __tablename__ = "legal_activities"
    __table_args__ = (
        CheckConstraint(_in("kind", ACTIVITY_KINDS), name="kind_known"),
        CheckConstraint("audience >= 0", name="audience_nonnegative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    held_on: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    audience: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    organiser: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    grid_code: Mapped[str] = mapped_column(ForeignKey("grids.code"), index=True)
    village_code: Mapped[str] = mapped_column(ForeignKey("villages.code"), index=True)
    town_code: Mapped[str] = mapped_column(ForeignKey("towns.code"), index=True)
    geom = mapped_column(point_geometry(), nullable=False)


class CaseReview(Base):
    """A case-quality review (案件评查): a sample of closed cases drawn by a rule, reproducible from its seed."""
    __tablename__ = "case_reviews"
    __table_args__ = (
        CheckConstraint(_in("method", REVIEW_METHODS), name="method_known"),
        CheckConstraint("period_start <= period_end", name="period_order"),
        CheckConstraint("sample_size > 0", name="sample_size_positive"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(BigInteger)
    sample_size: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    town_code: Mapped[str | None] = mapped_column(ForeignKey("towns.code", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()


class CaseReviewItem(Base):
    """One sampled case, with the town and handling unit it had when drawn, and its scores."""
    __tablename__ = "case_review_items"
    __table_args__ = (
        UniqueConstraint("review_id", "incident_id"),
        CheckConstraint("total IS NULL OR total BETWEEN 0 AND 100", name="total_range"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("case_reviews.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    town_code: Mapped[str] = mapped_column(ForeignKey("towns.code"))
    handling_unit: Mapped[str] = mapped_column(String(200))
    scores: Mapped[dict | None] = mapped_column(JSONB)
    total: Mapped[int | None] = mapped_column(SmallInteger)
    findings: Mapped[str] = mapped_column(Text, default="", server_default="")
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
