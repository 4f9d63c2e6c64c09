"""Incidents, their workflow history, and the category table that holds deadlines."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer,
                        SmallInteger, String, Text, Uuid, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.catalog import DISPATCH_KINDS, LEGAL_CLASSES, MEDIATION_OUTCOMES, RESOLUTION_LEVELS, STATUSES
from gridmap.models.base import Base, created_at_column, point_geometry


def _in(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _where_set(column: str) -> Index:
    """An index over the rows where a mostly empty column is set: rows without it (most
    incidents, every imported one) cost no index entry, and lookups by value still use it."""
    return Index(f"ix_incidents_{column}", column, postgresql_where=text(f"{column} IS NOT NULL"))


# Columns that most incidents leave empty.
SPARSE_INDEXED = ("deadline_at", "reporter_id", "duplicate_of", "mediation_point_id", "unit_id")


class IncidentCategory(Base):
    __tablename__ = "incident_categories"
    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(50))
    name_en: Mapped[str] = mapped_column(String(80))
    deadline_days: Mapped[int] = mapped_column(Integer)
    colour: Mapped[str] = mapped_column(String(7))


class IncidentSubcategory(Base):
    __tablename__ = "incident_subcategories"
    category_code: Mapped[str] = mapped_column(ForeignKey("incident_categories.code"), primary_key=True)
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(50))
    name_en: Mapped[str] = mapped_column(String(80))


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity_range"),
        CheckConstraint(_in("status", STATUSES), name="status_known"),
        CheckConstraint(_in("legal_class", LEGAL_CLASSES), name="legal_class_known"),
        CheckConstraint("resolution_level IS NULL OR " + _in("resolution_level", RESOLUTION_LEVELS),
                        name="resolution_level_known"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        CheckConstraint("mediation_outcome IS NULL OR " + _in("mediation_outcome", MEDIATION_OUTCOMES),
                        name="mediation_outcome_known"),
        CheckConstraint("char_length(description) <= 2000", name="description_length"),
        CheckConstraint("dispatched_to_kind IS NULL OR " + _in("dispatched_to_kind", DISPATCH_KINDS),
                        name="dispatched_to_kind_known"),
        *(_where_set(column) for column in SPARSE_INDEXED),
        # A phone's report always carries its client_id; imports mostly don't. ON CONFLICT
        # (client_id) WHERE client_id IS NOT NULL names this index.
        Index("uq_incidents_client_id", "client_id", unique=True, postgresql_where=text("client_id IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    category: Mapped[str] = mapped_column(ForeignKey("incident_categories.code"), index=True)
    subcategory: Mapped[str | None] = mapped_column(String(20))
    severity: Mapped[int] = mapped_column(SmallInteger, default=1)
    legal_class: Mapped[str] = mapped_column(String(20), default="none", server_default="none")
    enterprise_involved: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[str] = mapped_column(String(20), default="reported", server_default="reported", index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Personal details: shown only to the roles handling the case.
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    parties: Mapped[str | None] = mapped_column(Text)
    resolution_level: Mapped[str | None] = mapped_column(String(10))
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    mediation_point_id: Mapped[int | None] = mapped_column(ForeignKey("mediation_points.id", ondelete="SET NULL"))
    mediation_outcome: Mapped[str | None] = mapped_column(String(20))
    # The enterprise or unit (an active "enterprise" place of the registry, in the incident's
    # village) the case concerns: its "三零" numbers count the case.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("places.id", ondelete="SET NULL"))
    # Whom the case is dispatched to: a village code, police-station code, mediation-point id or town code.
    dispatched_to_kind: Mapped[str | None] = mapped_column(String(20))
    dispatched_to: Mapped[str | None] = mapped_column(String(40))
    # Set by the database trigger from geom, never by clients.
    grid_code: Mapped[str] = mapped_column(ForeignKey("grids.code"), index=True)
    village_code: Mapped[str] = mapped_column(ForeignKey("villages.code"), index=True)
    town_code: Mapped[str] = mapped_column(ForeignKey("towns.code"), index=True)
    geom = mapped_column(point_geometry(), nullable=False)


class IncidentEvent(Base):
    __tablename__ = "incident_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    data: Mapped[dict | None] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = created_at_column()
