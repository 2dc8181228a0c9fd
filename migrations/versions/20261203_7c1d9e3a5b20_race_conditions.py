"""Race conditions

A new column, ``races.conditions`` (JSON): what varies between a race's trials
(``evaluator.conditions``: start position and heading, sensor noise, grip, actuation latency,
steering bias), as ``{"preset": name, <bound>: value, ...}``.

Backfill: every existing race gets the ``none`` conditions (the column's server default), the
simulator as it ran them, so entries evaluated before and after this version are ranked under
the same rules; new races get ``standard`` unless their organizer chooses otherwise.
Downgrading drops the column (races then run as ``none`` again).

Revision ID: 7c1d9e3a5b20
Revises: 04025b2f1f3f
Created: 2026-12-03 07:40:00.000000
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '7c1d9e3a5b20'
down_revision = '04025b2f1f3f'
branch_labels = None
depends_on = None

# evaluator.conditions.PRESETS["none"].to_dict() when this migration was written: a migration
# keeps the value it backfilled, whatever the code says later.
NONE = {"preset": "none", "start_offset_m": 0.05, "start_heading_deg": 2.0, "ray_noise": 0.0,
        "grip_pct": 0.0, "latency_steps": 0, "steering_bias_deg": 0.0}



def upgrade() -> None:
    # One statement both backends (and alembic --sql) take: the column arrives filled in.
    # The default stays in the database (the ORM always writes the column itself): a race row
    # written without it is one that ran without conditions.
    op.add_column("races", sa.Column("conditions", sa.JSON(), nullable=False,
                                     server_default=sa.text(_quoted(json.dumps(NONE)))))


def _quoted(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def downgrade() -> None:
    op.drop_column("races", "conditions")
