"""Police stations, patrol zones and mediation points."""
from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.catalog import MEDIATION_KINDS
from gridmap.models.base import Base, area_geometry, point_geometry


class PoliceStation(Base):
    __tablename__ = "police_stations"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    town_code: Mapped[str | None] = mapped_column(ForeignKey("towns.code", ondelete="SET NULL"))
    geom = mapped_column(point_geometry(), nullable=False)


class PatrolZone(Base):
    __tablename__ = "patrol_zones"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    station_code: Mapped[str | None] = mapped_column(
        ForeignKey("police_stations.code", ondelete="SET NULL"), index=True)
    geom = mapped_column(area_geometry(), nullable=False)


class MediationPoint(Base):
    __tablename__ = "mediation_points"
    __table_args__ = (
        CheckConstraint("kind IN (%s)" % ", ".join(f"'{k}'" for k in MEDIATION_KINDS), name="kind_known"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    village_code: Mapped[str | None] = mapped_column(ForeignKey("villages.code", ondelete="SET NULL"), index=True)
    contact: Mapped[str | None] = mapped_column(String(100))
    mediators: Mapped[int | None] = mapped_column(Integer)
    opening_hours: Mapped[str | None] = mapped_column(String(200))
    geom = mapped_column(point_geometry(), nullable=False)
