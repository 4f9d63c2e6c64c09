"""Incident workflow: deadlines, duplicates, mediation referral (issue 3)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Whom a case is dispatched to (a village committee, police station, mediation point or town
office), and indexes on the reporter (a grid worker's own incidents) and on the report time (the
default order of every list).
Deadlines come from incident_categories.deadline_days (0001); the duplicate distance and time
window are deployment settings (gridmap.config).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("dispatched_to_kind", sa.String(length=20), nullable=True))
    op.add_column("incidents", sa.Column("dispatched_to", sa.String(length=40), nullable=True))
    op.create_check_constraint(
        op.f("ck_incidents_dispatched_to_kind_known"), "incidents",
        "dispatched_to_kind IS NULL OR dispatched_to_kind IN "
        "('village', 'police_station', 'mediation_point', 'town_office')")
    op.create_index(op.f("ix_incidents_reporter_id"), "incidents", ["reporter_id"], unique=False)
    op.create_index(op.f("ix_incidents_reported_at"), "incidents", ["reported_at"], unique=False)
    # Deleting incidents checks ON DELETE SET NULL against duplicate_of; without an index every
    # deleted row scans the table.
    op.create_index(op.f("ix_incidents_duplicate_of"), "incidents", ["duplicate_of"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_duplicate_of"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_reported_at"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_reporter_id"), table_name="incidents")
    op.drop_constraint(op.f("ck_incidents_dispatched_to_kind_known"), "incidents", type_="check")
    op.drop_column("incidents", "dispatched_to")
    op.drop_column("incidents", "dispatched_to_kind")
