"""Risk: cached grid adjacency and risk settings (issue 4)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

grid_adjacency keeps the neighbour relation of the grid layer that Gi* hot spots use, as a
numpy .npz blob keyed by the grids' geometry fingerprint and the neighbour rule, so it is
built once per grid layer rather than once per request. Risk weights, half-life and class
method are deployment settings (gridmap.config.Config.RISK_*), not rows.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('grid_adjacency',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=80), nullable=False),
    sa.Column('n_grids', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('n_grids >= 0', name=op.f('ck_grid_adjacency_n_grids_nonnegative')),
    sa.PrimaryKeyConstraint('fingerprint', 'rule', name=op.f('pk_grid_adjacency'))
    )


def downgrade() -> None:
    op.drop_table('grid_adjacency')
