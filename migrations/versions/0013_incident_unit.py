"""An incident may name the enterprise or unit it concerns (incidents.unit_id)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26

"三零" per enterprise/unit counted only incidents opened by an inspection of the enterprise: an
incident itself did not say which unit it concerned. A grid worker pinning a case, or a file
imported, can now name one (an active enterprise of the registry in the incident's village).
Most incidents name none, so the index covers only the rows that do.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: Union[str, None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("unit_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f("fk_incidents_unit_id_places"), "incidents", "places", ["unit_id"], ["id"],
                          ondelete="SET NULL")
    op.create_index("ix_incidents_unit_id", "incidents", ["unit_id"], unique=False,
                    postgresql_where=sa.text("unit_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_incidents_unit_id", table_name="incidents")
    op.drop_constraint(op.f("fk_incidents_unit_id_places"), "incidents", type_="foreignkey")
    op.drop_column("incidents", "unit_id")
