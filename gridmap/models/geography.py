"""The county's territory: county outline, towns, villages, grids."""
from __future__ import annotations

from sqlalchemy import CheckConstraint, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base, area_geometry


class County(Base):
    __tablename__ = "counties"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    geom = mapped_column(area_geometry(), nullable=False)


class Town(Base):
    __tablename__ = "towns"
    __table_args__ = (CheckConstraint("code ~ '^[0-9]{12}$'", name="code_digits"),)
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    geom = mapped_column(area_geometry(), nullable=False)


class Village(Base):
    __tablename__ = "villages"
    __table_args__ = (CheckConstraint("code ~ '^[0-9]{12}$'", name="code_digits"),)
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str | None] = mapped_column(String(200))
    town_code: Mapped[str] = mapped_column(ForeignKey("towns.code", ondelete="RESTRICT"), index=True)
    geom = mapped_column(area_geometry(), nullable=False)


class Grid(Base):
    __tablename__ = "grids"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{15}$'", name="code_digits"),
        CheckConstraint("left(code, 12) = village_code", name="code_in_village"),
        CheckConstraint("population >= 0 AND households >= 0", name="counts_nonnegative"),
    )
    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    village_code: Mapped[str] = mapped_column(ForeignKey("villages.code", ondelete="RESTRICT"), index=True)
    population: Mapped[int] = mapped_column(Integer, default=0)
    households: Mapped[int] = mapped_column(Integer, default=0)
    area_km2: Mapped[float] = mapped_column(Float, default=0.0)
    geom = mapped_column(area_geometry(), nullable=False)
