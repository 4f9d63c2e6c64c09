"""A planned route's solver status holds the search's and OR-Tools' outcome (issue 5)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

Statuses such as "SEARCH_CONVERGED (51 rounds); OR-Tools checked, no better route" outgrew 40
characters.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: Union[str, None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.alter_column("patrol_routes", "solver_status", type_=sa.String(length=120),
                    existing_type=sa.String(length=40), existing_nullable=False)


def downgrade() -> None:
    op.execute("UPDATE patrol_routes SET solver_status = left(solver_status, 40)")
    op.alter_column("patrol_routes", "solver_status", type_=sa.String(length=40),
                    existing_type=sa.String(length=120), existing_nullable=False)
