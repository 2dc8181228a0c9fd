"""Races in their knockout finals

A data migration, no schema change (``races.status`` is a String(16); "finals" fits): a
head-to-head race whose knockout was being raced when this version was installed is marked as
in its finals at once, instead of at the scheduler's next pass. Downgrading marks such races
open again: the version before played a knockout while the race stayed open past its
closing time (a race sent to its finals early had its closing time moved to then).

Revision ID: 31eb03b5c50c
Revises: 0e66a7ff40d6
Created: 2026-12-03 05:13:10.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '31eb03b5c50c'
down_revision = '0e66a7ff40d6'
branch_labels = None
depends_on = None

ROUND_STAGE = "round"  # Heat.stage of rating rounds, as league.rules.headtohead names it

races = sa.table("races", sa.column("id", sa.Integer), sa.column("status", sa.String(16)))
heats = sa.table("heats", sa.column("race_id", sa.Integer), sa.column("stage", sa.String(16)))


def upgrade() -> None:
    knockout = sa.select(heats.c.race_id).where(heats.c.stage != ROUND_STAGE)
    op.execute(races.update().where(races.c.status == "open", races.c.id.in_(knockout))
               .values(status="finals"))


def downgrade() -> None:
    op.execute(races.update().where(races.c.status == "finals").values(status="open"))
