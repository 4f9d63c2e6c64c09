"""Patrol tracks, roads and planned routes (issue 5)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

patrol_tracks holds one uploaded GPS track each (officer or unit, patrol zone, time span, how
many fixes were kept and dropped per reason, its line); patrol_track_points every kept fix with
its time, which is what coverage reads. roads is the network routes are planned on (lines with
a speed and class), patrol_routes the planned routes (ordered stops as JSONB, the path).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_geospatial_table('roads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('road_class', sa.String(length=40), nullable=True),
    sa.Column('speed_kmh', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('geom', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('speed_kmh IS NULL OR speed_kmh > 0', name=op.f('ck_roads_speed_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roads'))
    )
    op.create_geospatial_index('idx_roads_geom', 'roads', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_table('patrol_routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zone_code', sa.String(length=40), nullable=False),
    sa.Column('station_code', sa.String(length=40), nullable=True),
    sa.Column('shift_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('shift_minutes', sa.Float(), nullable=False),
    sa.Column('stop_minutes', sa.Float(), nullable=False),
    sa.Column('requested_stops', sa.Integer(), nullable=False),
    sa.Column('stops', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('travel_mode', sa.String(length=20), nullable=False),
    sa.Column('speed_kmh', sa.Float(), nullable=True),
    sa.Column('candidates', sa.Integer(), nullable=False),
    sa.Column('total_prize', sa.Float(), nullable=False),
    sa.Column('total_minutes', sa.Float(), nullable=False),
    sa.Column('travel_minutes', sa.Float(), nullable=False),
    sa.Column('solver_status', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('start_lon', sa.Float(), nullable=False),
    sa.Column('start_lat', sa.Float(), nullable=False),
    sa.Column('geom', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("travel_mode IN ('road', 'straight_line')", name=op.f('ck_patrol_routes_travel_mode_known')),
    sa.CheckConstraint('shift_minutes > 0 AND stop_minutes > 0 AND requested_stops > 0', name=op.f('ck_patrol_routes_plan_positive')),
    sa.CheckConstraint('total_minutes <= shift_minutes + 0.001', name=op.f('ck_patrol_routes_within_shift')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_patrol_routes_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['station_code'], ['police_stations.code'], name=op.f('fk_patrol_routes_station_code_police_stations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['zone_code'], ['patrol_zones.code'], name=op.f('fk_patrol_routes_zone_code_patrol_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patrol_routes'))
    )
    op.create_geospatial_index('idx_patrol_routes_geom', 'patrol_routes', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_patrol_routes_zone_code'), 'patrol_routes', ['zone_code'], unique=False)
    op.create_geospatial_table('patrol_tracks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('officer_user_id', sa.Integer(), nullable=True),
    sa.Column('unit_name', sa.String(length=100), nullable=True),
    sa.Column('zone_code', sa.String(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fixes_read', sa.Integer(), nullable=False),
    sa.Column('fixes_kept', sa.Integer(), nullable=False),
    sa.Column('dropped_duplicate_time', sa.Integer(), server_default='0', nullable=False),
    sa.Column('dropped_outside', sa.Integer(), server_default='0', nullable=False),
    sa.Column('dropped_too_fast', sa.Integer(), server_default='0', nullable=False),
    sa.Column('dropped_untimed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('length_m', sa.Float(), server_default='0', nullable=False),
    sa.Column('source_format', sa.String(length=10), nullable=False),
    sa.Column('source_name', sa.String(length=200), nullable=True),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('geom', Geometry(geometry_type='LINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("source_format IN ('gpx', 'geojson', 'csv')", name=op.f('ck_patrol_tracks_format_known')),
    sa.CheckConstraint('ended_at >= started_at', name=op.f('ck_patrol_tracks_time_order')),
    sa.CheckConstraint('fixes_kept >= 2 AND dropped_duplicate_time >= 0 AND dropped_outside >= 0 AND dropped_too_fast >= 0 AND dropped_untimed >= 0', name=op.f('ck_patrol_tracks_counts_valid')),
    sa.CheckConstraint('fixes_read = fixes_kept + dropped_duplicate_time + dropped_outside + dropped_too_fast + dropped_untimed', name=op.f('ck_patrol_tracks_counts_add_up')),
    sa.CheckConstraint('officer_user_id IS NOT NULL OR unit_name IS NOT NULL', name=op.f('ck_patrol_tracks_has_officer')),
    sa.ForeignKeyConstraint(['officer_user_id'], ['users.id'], name=op.f('fk_patrol_tracks_officer_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_patrol_tracks_uploaded_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['zone_code'], ['patrol_zones.code'], name=op.f('fk_patrol_tracks_zone_code_patrol_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patrol_tracks'))
    )
    op.create_geospatial_index('idx_patrol_tracks_geom', 'patrol_tracks', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_patrol_tracks_ended_at'), 'patrol_tracks', ['ended_at'], unique=False)
    op.create_index(op.f('ix_patrol_tracks_officer_user_id'), 'patrol_tracks', ['officer_user_id'], unique=False)
    op.create_index(op.f('ix_patrol_tracks_started_at'), 'patrol_tracks', ['started_at'], unique=False)
    op.create_index(op.f('ix_patrol_tracks_zone_code'), 'patrol_tracks', ['zone_code'], unique=False)
    op.create_geospatial_table('patrol_track_points',
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('t', sa.DateTime(timezone=True), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['patrol_tracks.id'], name=op.f('fk_patrol_track_points_track_id_patrol_tracks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('track_id', 't', name=op.f('pk_patrol_track_points'))
    )
    op.create_geospatial_index('idx_patrol_track_points_geom', 'patrol_track_points', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})


def downgrade() -> None:
    op.drop_geospatial_index('idx_patrol_track_points_geom', table_name='patrol_track_points', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('patrol_track_points')
    op.drop_index(op.f('ix_patrol_tracks_zone_code'), table_name='patrol_tracks')
    op.drop_index(op.f('ix_patrol_tracks_started_at'), table_name='patrol_tracks')
    op.drop_index(op.f('ix_patrol_tracks_officer_user_id'), table_name='patrol_tracks')
    op.drop_index(op.f('ix_patrol_tracks_ended_at'), table_name='patrol_tracks')
    op.drop_geospatial_index('idx_patrol_tracks_geom', table_name='patrol_tracks', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('patrol_tracks')
    op.drop_index(op.f('ix_patrol_routes_zone_code'), table_name='patrol_routes')
    op.drop_geospatial_index('idx_patrol_routes_geom', table_name='patrol_routes', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('patrol_routes')
    op.drop_geospatial_index('idx_roads_geom', table_name='roads', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('roads')
