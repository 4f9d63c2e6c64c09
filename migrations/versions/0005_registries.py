"""Inspected places, village staff, bulletins, case review, legal publicity (issue 7)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Places that must be inspected and their inspections (an inspection may open one incident), staff
assigned to villages and grids, legal-publicity activities, case-quality reviews and their items.
Places and activities get their grid, village and town from their point in the database, by the
same rule as incidents (lowest grid code on a shared boundary; SQLSTATE GM001 outside every grid).
Bulletins are computed on request and need no table.
"""
from typing import Sequence, Union

import geoalchemy2  # noqa: F401
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

POINT_TABLES = ("places", "legal_activities")


def upgrade() -> None:
    op.create_table('case_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('sample_size', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('town_code', sa.String(length=12), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("method IN ('random', 'overdue', 'escalated', 'complaints', 'chosen')", name=op.f('ck_case_reviews_method_known')),
    sa.CheckConstraint('period_start <= period_end', name=op.f('ck_case_reviews_period_order')),
    sa.CheckConstraint('sample_size > 0', name=op.f('ck_case_reviews_sample_size_positive')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_case_reviews_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['town_code'], ['towns.code'], name=op.f('fk_case_reviews_town_code_towns'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_reviews'))
    )
    op.create_geospatial_table('legal_activities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('held_on', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('audience', sa.Integer(), server_default='0', nullable=False),
    sa.Column('organiser', sa.String(length=200), server_default='', nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('grid_code', sa.String(length=15), nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=False),
    sa.Column('town_code', sa.String(length=12), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("kind IN ('agencies', 'villages', 'communities', 'schools', 'enterprises', 'units')", name=op.f('ck_legal_activities_kind_known')),
    sa.CheckConstraint('audience >= 0', name=op.f('ck_legal_activities_audience_nonnegative')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_legal_activities_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['grid_code'], ['grids.code'], name=op.f('fk_legal_activities_grid_code_grids')),
    sa.ForeignKeyConstraint(['town_code'], ['towns.code'], name=op.f('fk_legal_activities_town_code_towns')),
    sa.ForeignKeyConstraint(['village_code'], ['villages.code'], name=op.f('fk_legal_activities_village_code_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_activities'))
    )
    op.create_geospatial_index('idx_legal_activities_geom', 'legal_activities', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_legal_activities_grid_code'), 'legal_activities', ['grid_code'], unique=False)
    op.create_index(op.f('ix_legal_activities_held_on'), 'legal_activities', ['held_on'], unique=False)
    op.create_index(op.f('ix_legal_activities_town_code'), 'legal_activities', ['town_code'], unique=False)
    op.create_index(op.f('ix_legal_activities_village_code'), 'legal_activities', ['village_code'], unique=False)
    op.create_geospatial_table('places',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=80), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subkind', sa.String(length=20), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), server_default='', nullable=False),
    sa.Column('responsible_role', sa.String(length=60), server_default='', nullable=False),
    sa.Column('inspection_interval_days', sa.Integer(), nullable=False),
    sa.Column('registered_on', sa.Date(), server_default=sa.text('CURRENT_DATE'), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('grid_code', sa.String(length=15), nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=False),
    sa.Column('town_code', sa.String(length=12), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("kind IN ('nine_small', 'hazardous', 'delivery', 'enterprise')", name=op.f('ck_places_kind_known')),
    sa.CheckConstraint('inspection_interval_days BETWEEN 1 AND 3660', name=op.f('ck_places_interval_range')),
    sa.ForeignKeyConstraint(['grid_code'], ['grids.code'], name=op.f('fk_places_grid_code_grids')),
    sa.ForeignKeyConstraint(['town_code'], ['towns.code'], name=op.f('fk_places_town_code_towns')),
    sa.ForeignKeyConstraint(['village_code'], ['villages.code'], name=op.f('fk_places_village_code_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_places')),
    sa.UniqueConstraint('ref', name=op.f('uq_places_ref'))
    )
    op.create_geospatial_index('idx_places_geom', 'places', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_places_grid_code'), 'places', ['grid_code'], unique=False)
    op.create_index(op.f('ix_places_kind'), 'places', ['kind'], unique=False)
    op.create_index(op.f('ix_places_town_code'), 'places', ['town_code'], unique=False)
    op.create_index(op.f('ix_places_village_code'), 'places', ['village_code'], unique=False)
    op.create_table('village_staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('organisation', sa.String(length=200), server_default='', nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=False),
    sa.Column('grid_code', sa.String(length=15), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('since', sa.Date(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(role = 'grid_worker') = (grid_code IS NOT NULL)", name=op.f('ck_village_staff_grid_for_grid_workers')),
    sa.CheckConstraint("role IN ('grid_worker', 'police', 'lawyer', 'mediator', 'elder')", name=op.f('ck_village_staff_role_known')),
    sa.CheckConstraint('grid_code IS NULL OR left(grid_code, 12) = village_code', name=op.f('ck_village_staff_grid_in_village')),
    sa.ForeignKeyConstraint(['grid_code'], ['grids.code'], name=op.f('fk_village_staff_grid_code_grids'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_village_staff_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['village_code'], ['villages.code'], name=op.f('fk_village_staff_village_code_villages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_village_staff'))
    )
    op.create_index(op.f('ix_village_staff_grid_code'), 'village_staff', ['grid_code'], unique=False)
    op.create_index(op.f('ix_village_staff_role'), 'village_staff', ['role'], unique=False)
    op.create_index(op.f('ix_village_staff_user_id'), 'village_staff', ['user_id'], unique=False)
    op.create_index(op.f('ix_village_staff_village_code'), 'village_staff', ['village_code'], unique=False)
    op.create_table('case_review_items',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=False),
    sa.Column('town_code', sa.String(length=12), nullable=False),
    sa.Column('handling_unit', sa.String(length=200), nullable=False),
    sa.Column('scores', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('total', sa.SmallInteger(), nullable=True),
    sa.Column('findings', sa.Text(), server_default='', nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('total IS NULL OR total BETWEEN 0 AND 100', name=op.f('ck_case_review_items_total_range')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_case_review_items_incident_id_incidents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['review_id'], ['case_reviews.id'], name=op.f('fk_case_review_items_review_id_case_reviews'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_case_review_items_reviewer_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['town_code'], ['towns.code'], name=op.f('fk_case_review_items_town_code_towns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_review_items')),
    sa.UniqueConstraint('review_id', 'incident_id', name=op.f('uq_case_review_items_review_id_incident_id'))
    )
    op.create_index(op.f('ix_case_review_items_incident_id'), 'case_review_items', ['incident_id'], unique=False)
    op.create_index(op.f('ix_case_review_items_review_id'), 'case_review_items', ['review_id'], unique=False)
    op.create_table('inspections',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('inspected_on', sa.Date(), nullable=False),
    sa.Column('inspector_id', sa.Integer(), nullable=True),
    sa.Column('inspector_name', sa.String(length=100), server_default='', nullable=False),
    sa.Column('checklist', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('hazard_found', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('hazard_description', sa.Text(), server_default='', nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('char_length(hazard_description) <= 2000', name=op.f('ck_inspections_hazard_description_length')),
    sa.CheckConstraint('hazard_found OR incident_id IS NULL', name=op.f('ck_inspections_incident_needs_hazard')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_inspections_incident_id_incidents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inspector_id'], ['users.id'], name=op.f('fk_inspections_inspector_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], name=op.f('fk_inspections_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections')),
    sa.UniqueConstraint('incident_id', name=op.f('uq_inspections_incident_id'))
    )
    op.create_index(op.f('ix_inspections_inspected_on'), 'inspections', ['inspected_on'], unique=False)
    op.create_index(op.f('ix_inspections_place_id'), 'inspections', ['place_id'], unique=False)
    op.execute(ASSIGN_POINT_PLACE)
    for table in POINT_TABLES:
        op.execute(f"CREATE TRIGGER {table}_assign_place BEFORE INSERT OR UPDATE OF geom, grid_code, "
                   f"village_code, town_code ON {table} FOR EACH ROW EXECUTE FUNCTION gridmap_assign_point_place()")


def downgrade() -> None:
    for table in POINT_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_assign_place ON {table}")
    op.execute("DROP FUNCTION IF EXISTS gridmap_assign_point_place()")
    op.drop_index(op.f('ix_inspections_place_id'), table_name='inspections')
    op.drop_index(op.f('ix_inspections_inspected_on'), table_name='inspections')
    op.drop_table('inspections')
    op.drop_index(op.f('ix_case_review_items_review_id'), table_name='case_review_items')
    op.drop_index(op.f('ix_case_review_items_incident_id'), table_name='case_review_items')
    op.drop_table('case_review_items')
    op.drop_index(op.f('ix_village_staff_village_code'), table_name='village_staff')
    op.drop_index(op.f('ix_village_staff_user_id'), table_name='village_staff')
    op.drop_index(op.f('ix_village_staff_role'), table_name='village_staff')
    op.drop_index(op.f('ix_village_staff_grid_code'), table_name='village_staff')
    op.drop_table('village_staff')
    op.drop_index(op.f('ix_places_village_code'), table_name='places')
    op.drop_index(op.f('ix_places_town_code'), table_name='places')
    op.drop_index(op.f('ix_places_kind'), table_name='places')
    op.drop_index(op.f('ix_places_grid_code'), table_name='places')
    op.drop_geospatial_index('idx_places_geom', table_name='places', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('places')
    op.drop_index(op.f('ix_legal_activities_village_code'), table_name='legal_activities')
    op.drop_index(op.f('ix_legal_activities_town_code'), table_name='legal_activities')
    op.drop_index(op.f('ix_legal_activities_held_on'), table_name='legal_activities')
    op.drop_index(op.f('ix_legal_activities_grid_code'), table_name='legal_activities')
    op.drop_geospatial_index('idx_legal_activities_geom', table_name='legal_activities', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('legal_activities')
    op.drop_table('case_reviews')


# A place's or activity's grid, village and town come from its point, never from the client.
ASSIGN_POINT_PLACE = """
CREATE FUNCTION gridmap_assign_point_place() RETURNS trigger AS $$
DECLARE
    place record;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.geom IS NOT DISTINCT FROM OLD.geom
       AND NEW.grid_code IS NOT DISTINCT FROM OLD.grid_code
       AND NEW.village_code IS NOT DISTINCT FROM OLD.village_code
       AND NEW.town_code IS NOT DISTINCT FROM OLD.town_code THEN
        RETURN NEW;
    END IF;
    SELECT g.code AS grid_code, g.village_code, v.town_code INTO place
      FROM grids g JOIN villages v ON v.code = g.village_code
     WHERE ST_Intersects(g.geom, NEW.geom)
     ORDER BY g.code
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the point (%) lies in no grid', ST_AsText(NEW.geom)
            USING ERRCODE = 'GM001', HINT = 'lon,lat';
    END IF;
    NEW.grid_code := place.grid_code;
    NEW.village_code := place.village_code;
    NEW.town_code := place.town_code;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""
