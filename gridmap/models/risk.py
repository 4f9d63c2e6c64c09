"""Risk: the grid adjacency Gi* hot spots need, kept with the grids.

Building the neighbour relation of the grid layer is the slow part of a hot-spot analysis at
province scale, and it only changes when the grids do. The service stores it here as a
numpy ``.npz`` blob (``GridAdjacency.save``) keyed by the grids' geometry fingerprint and the
neighbour rule, and builds a new one only when the fingerprint of the grids it loads differs.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base


class GridAdjacencyCache(Base):
    __tablename__ = "grid_adjacency"
    __table_args__ = (CheckConstraint("n_grids >= 0", name="n_grids_nonnegative"),)
    # SHA-256 of the grid codes (in code order) and their geometries: gridmap.analysis.hotspots.geometry_fingerprint.
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The neighbour rule: "queen" or "distance_band:<metres>@<metric CRS>".
    rule: Mapped[str] = mapped_column(String(80), primary_key=True)
    n_grids: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
