"""Indexes on mostly empty incident columns cover only the rows that set them (issue 6)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26

deadline_at, reporter_id, duplicate_of and mediation_point_id are empty on most incidents and on
every imported one. As partial indexes (WHERE col IS NOT NULL) such rows cost no index entry on
insert and nothing to rebuild after a bulk import; lookups by value (col = x, col < x) still use
them, since a strict comparison implies the column is set.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SPARSE = ("deadline_at", "reporter_id", "duplicate_of", "mediation_point_id")


def upgrade() -> None:
    for column in SPARSE:
        op.drop_index(f"ix_incidents_{column}", table_name="incidents")
        op.create_index(f"ix_incidents_{column}", "incidents", [column], unique=False,
                        postgresql_where=sa.text(f"{column} IS NOT NULL"))


def downgrade() -> None:
    for column in SPARSE:
        op.drop_index(f"ix_incidents_{column}", table_name="incidents")
        op.create_index(f"ix_incidents_{column}", "incidents", [column], unique=False)
