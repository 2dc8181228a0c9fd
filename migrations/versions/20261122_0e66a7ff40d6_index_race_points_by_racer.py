"""Index race points by racer

Revision ID: 0e66a7ff40d6
Revises: d129918c9822
Created: 2026-11-22 04:40:19.301186
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0e66a7ff40d6'
down_revision = 'd129918c9822'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('race_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_race_points_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('race_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_race_points_user_id'))
