"""Rebuild the tile cell counts in one pass, for bulk imports (issue 6)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

The statement trigger of 0003 upserts one row per (cell, month, category, status, town) an
INSERT touches: for a large import that is nearly one upsert per incident at each of the three
cell zooms. gridmap_rebuild_cell_counts() instead recomputes both count tables from incidents
with one GROUP BY each (no upserts) and bumps the incidents tile version; the bulk importer
calls it after writing with incidents_cells_insert set aside. Cells, months and zooms are those
of 0003. Its work_mem lets the GROUP BY of a million incidents hash in memory.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

REBUILD_CELL_COUNTS = """
CREATE FUNCTION gridmap_rebuild_cell_counts() RETURNS void AS $$
BEGIN
    TRUNCATE incident_cell_months, incident_cell_totals;
    -- Keys are rebuilt once at the end: inserting ~a row per incident through them is slower.
    ALTER TABLE incident_cell_months DROP CONSTRAINT pk_incident_cell_months;
    ALTER TABLE incident_cell_totals DROP CONSTRAINT pk_incident_cell_totals;
    INSERT INTO incident_cell_months (zoom, month, cx, cy, category, status, town_code, n)
    SELECT l.zoom, f.month, f.cx >> (16 - l.zoom), f.cy >> (16 - l.zoom), f.category, f.status, f.town_code,
           sum(f.n)
      FROM (SELECT gridmap_cell_x(ST_X(m), 16) AS cx, gridmap_cell_y(ST_Y(m), 16) AS cy,
                   month, category, status, town_code, count(*) AS n
              FROM (SELECT ST_Transform(geom, 3857) AS m,
                           date_trunc('month', occurred_at AT TIME ZONE 'Asia/Shanghai')::date AS month,
                           category, status, town_code
                      FROM incidents) AS r
             GROUP BY 1, 2, 3, 4, 5, 6) AS f
     CROSS JOIN (VALUES (12), (14), (16)) AS l(zoom)
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
    INSERT INTO incident_cell_totals (zoom, cx, cy, category, status, town_code, n)
    SELECT zoom, cx, cy, category, status, town_code, sum(n)
      FROM incident_cell_months
     GROUP BY 1, 2, 3, 4, 5, 6;
    ALTER TABLE incident_cell_months ADD CONSTRAINT pk_incident_cell_months
        PRIMARY KEY (zoom, month, cx, cy, category, status, town_code);
    ALTER TABLE incident_cell_totals ADD CONSTRAINT pk_incident_cell_totals
        PRIMARY KEY (zoom, cx, cy, category, status, town_code);
    UPDATE tile_versions SET version = version + 1, changed_at = now() WHERE layer = 'incidents';
END
$$ LANGUAGE plpgsql SET jit = off SET work_mem = '256MB' SET maintenance_work_mem = '256MB';
"""


def upgrade() -> None:
    op.execute(REBUILD_CELL_COUNTS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS gridmap_rebuild_cell_counts()")
