"""What vector tiles read instead of scanning incidents: counts per web-Mercator cell, and data
versions for ETags. Triggers written by migration 0003 keep both current as incidents and
boundaries are written; nothing in Python writes to them.

A cell at ``zoom`` L is square ``(cx, cy)`` of the 2^L x 2^L grid over EPSG:3857, numbered
from the west and from the north like XYZ tiles: a cell at zoom L is a tile at zoom L, so a
tile at zoom z holds whole cells of every zoom >= z. Counts are kept at zooms 12, 14 and 16.
The cell tables are created with fillfactor 60 (migration 0003), so the triggers' updates stay
on the page (HOT).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Integer, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base


class IncidentCellTotal(Base):
    """Incidents of all time per cell, category, status and town."""
    __tablename__ = "incident_cell_totals"
    zoom: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cx: Mapped[int] = mapped_column(Integer, primary_key=True)
    cy: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(3), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    town_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class IncidentCellMonth(Base):
    """Incidents per calendar month (China Standard Time) of ``occurred_at``, cell, category,
    status and town; ``month`` is the month's first day."""
    __tablename__ = "incident_cell_months"
    zoom: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    cx: Mapped[int] = mapped_column(Integer, primary_key=True)
    cy: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(3), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    town_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class TileVersion(Base):
    """A counter per kind of data ('incidents', 'places') bumped by every change to it."""
    __tablename__ = "tile_versions"
    layer: Mapped[str] = mapped_column(String(20), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
