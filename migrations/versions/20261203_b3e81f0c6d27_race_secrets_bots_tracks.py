"""Secret seeds, mystery tracks, head-to-bot and several tracks per race

Four new columns on ``races``:

- ``seed_public`` (boolean): whether the race's seed may be shown while the race is open.
  A race's seed is always shown once it has closed. Backfill: true, since every existing race
  has shown its seed so far; new races keep it secret unless their organizer publishes it.
- ``mystery_track`` (boolean): the track is hidden until the race closes (racers see its
  length and width only). Backfill: false.
- ``bots`` (JSON list): the built-in bot cars of a head-to-bot race, one object a car.
  Backfill: ``[]`` (no race has bots).
- ``extra_tracks`` (JSON list): the tracks a race is run on after its first (``track``),
  one ``{"track": name, "track_digest": digest}`` object each. Backfill: ``[]`` (one track).

Downgrading drops the columns.

Revision ID: b3e81f0c6d27
Revises: 9a4f2c7e1b63
Created: 2026-12-03 11:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b3e81f0c6d27'
down_revision = '9a4f2c7e1b63'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("races", sa.Column("seed_public", sa.Boolean(), nullable=False,
                                     server_default=sa.true()))
    op.add_column("races", sa.Column("mystery_track", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("races", sa.Column("bots", sa.JSON(), nullable=False,
                                     server_default=sa.text("'[]'")))
    op.add_column("races", sa.Column("extra_tracks", sa.JSON(), nullable=False,
                                     server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("races") as batch:
        batch.drop_column("extra_tracks")
        batch.drop_column("bots")
        batch.drop_column("mystery_track")
        batch.drop_column("seed_public")
