"""Patrol: recorded GPS tracks and their fixes, the road network, and planned routes.

A track is one uploaded file of one officer or unit in one patrol zone, kept after its wrong
fixes were dropped: its line (for drawing and spatial selection) in ``patrol_tracks`` and every
kept fix with its time in ``patrol_track_points``, which is what coverage reads (visits need
the times). How many fixes were dropped, and why, stays with the track.
"""
from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base, created_at_column, point_geometry

TRACK_FORMATS = ("gpx", "geojson", "csv")
TRAVEL_MODES = ("road", "straight_line")


def line_geometry() -> Geometry:
    return Geometry("LINESTRING", srid=4326, spatial_index=True)


def _in(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class PatrolTrack(Base):
    __tablename__ = "patrol_tracks"
    __table_args__ = (
        CheckConstraint("officer_user_id IS NOT NULL OR unit_name IS NOT NULL", name="has_officer"),
        CheckConstraint("ended_at >= started_at", name="time_order"),
        CheckConstraint(_in("source_format", TRACK_FORMATS), name="format_known"),
        CheckConstraint("fixes_kept >= 2 AND dropped_duplicate_time >= 0 AND dropped_outside >= 0 "
                        "AND dropped_too_fast >= 0 AND dropped_untimed >= 0", name="counts_valid"),
        CheckConstraint("fixes_read = fixes_kept + dropped_duplicate_time + dropped_outside + dropped_too_fast "
                        "+ dropped_untimed", name="counts_add_up"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The officer's account, or the unit (派出所巡逻组) the track belongs to; at least one of the two.
    officer_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    unit_name: Mapped[str | None] = mapped_column(String(100))
    zone_code: Mapped[str] = mapped_column(ForeignKey("patrol_zones.code"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    fixes_read: Mapped[int] = mapped_column(Integer)
    fixes_kept: Mapped[int] = mapped_column(Integer)
    dropped_duplicate_time: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dropped_outside: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dropped_too_fast: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dropped_untimed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    length_m: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    source_format: Mapped[str] = mapped_column(String(10))
    source_name: Mapped[str | None] = mapped_column(String(200))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime] = created_at_column()
    geom = mapped_column(line_geometry(), nullable=False)


class PatrolTrackPoint(Base):
    """A kept GPS fix of a track."""
    __tablename__ = "patrol_track_points"
    track_id: Mapped[int] = mapped_column(ForeignKey("patrol_tracks.id", ondelete="CASCADE"), primary_key=True)
    t: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom = mapped_column(point_geometry(), nullable=False)


class Road(Base):
    """A road segment of the network routes are planned on (e.g. from an OSM extract)."""
    __tablename__ = "roads"
    __table_args__ = (CheckConstraint("speed_kmh IS NULL OR speed_kmh > 0", name="speed_positive"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    road_class: Mapped[str | None] = mapped_column(String(40))
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = created_at_column()
    geom = mapped_column(line_geometry(), nullable=False)


class PatrolRoute(Base):
    """A planned patrol route: ordered stops with planned arrival times, and the path between them."""
    __tablename__ = "patrol_routes"
    __table_args__ = (
        CheckConstraint(_in("travel_mode", TRAVEL_MODES), name="travel_mode_known"),
        CheckConstraint("shift_minutes > 0 AND stop_minutes > 0 AND requested_stops > 0", name="plan_positive"),
        CheckConstraint("total_minutes <= shift_minutes + 0.001", name="within_shift"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_code: Mapped[str] = mapped_column(ForeignKey("patrol_zones.code"), index=True)
    station_code: Mapped[str | None] = mapped_column(ForeignKey("police_stations.code", ondelete="SET NULL"))
    shift_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    shift_minutes: Mapped[float] = mapped_column(Float)
    stop_minutes: Mapped[float] = mapped_column(Float)
    requested_stops: Mapped[int] = mapped_column(Integer)
    # [{"order", "grid_code", "name", "lon", "lat", "arrival", "departure", "prize", ...}, ...] in visiting order
    stops: Mapped[list] = mapped_column(JSONB)
    travel_mode: Mapped[str] = mapped_column(String(20))
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    candidates: Mapped[int] = mapped_column(Integer)
    total_prize: Mapped[float] = mapped_column(Float)
    total_minutes: Mapped[float] = mapped_column(Float)
    travel_minutes: Mapped[float] = mapped_column(Float)
    solver_status: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    # Where the route starts (the station), and the whole path from it through the stops and back.
    start_lon: Mapped[float] = mapped_column(Float)
    start_lat: Mapped[float] = mapped_column(Float)
    geom = mapped_column(line_geometry(), nullable=False)
