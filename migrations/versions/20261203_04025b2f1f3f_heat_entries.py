"""Heat entries

A new table, ``heat_entries``: one row per entry drawn in a heat, the heat's ``entry_ids`` as
rows (``league.models.Heat`` writes them with the heat from now on), indexed by entry, so a
race's heat list filtered by racer reads that racer's heats through an index instead of every
heat's JSON list. And an index on ``evaluation_jobs.heat_id``: a page of heats looks up the
latest job of each of its heats (until now by reading every job).

Backfill: every existing heat gets a row for each distinct entry of its ``entry_ids``; ids of
entries that no longer exist are left out (the row would point nowhere). Downgrading drops
the table and the index; ``heats.entry_ids`` still holds the same.

Revision ID: 04025b2f1f3f
Revises: 5b7e2c9d4a13
Created: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '04025b2f1f3f'
down_revision = '5b7e2c9d4a13'
branch_labels = None
depends_on = None

BATCH = 1000  # link rows per insert

heats = sa.table("heats", sa.column("id", sa.Integer), sa.column("entry_ids", sa.JSON))
entries = sa.table("entries", sa.column("id", sa.Integer))


def upgrade() -> None:
    links = op.create_table(
        'heat_entries',
        sa.Column('heat_id', sa.Integer(), nullable=False),
        sa.Column('entry_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['entry_id'], ['entries.id'],
                                name=op.f('fk_heat_entries_entry_id_entries'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['heat_id'], ['heats.id'],
                                name=op.f('fk_heat_entries_heat_id_heats'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('heat_id', 'entry_id', name=op.f('pk_heat_entries')),
    )
    op.create_index('ix_heat_entries_entry_id_heat_id', 'heat_entries',
                    ['entry_id', 'heat_id'], unique=False)
    op.create_index(op.f('ix_evaluation_jobs_heat_id'), 'evaluation_jobs', ['heat_id'],
                    unique=False)
    if not op.get_context().as_sql:  # offline SQL has no heats to read
        rows = _links(op.get_bind())
        for i in range(0, len(rows), BATCH):
            op.bulk_insert(links, rows[i:i + BATCH])


def _links(conn: sa.Connection) -> list[dict[str, Any]]:
    """A row per heat and distinct entry of its ``entry_ids`` that still exists."""
    existing = set(conn.scalars(sa.select(entries.c.id)))
    rows: list[dict[str, Any]] = []
    for heat_id, entry_ids in conn.execute(sa.select(heats.c.id, heats.c.entry_ids)
                                           .order_by(heats.c.id)):
        for entry_id in dict.fromkeys(entry_ids or []):
            if isinstance(entry_id, int) and entry_id in existing:
                rows.append({"heat_id": heat_id, "entry_id": entry_id})
    return rows


def downgrade() -> None:
    op.drop_index(op.f('ix_evaluation_jobs_heat_id'), table_name='evaluation_jobs')
    op.drop_index('ix_heat_entries_entry_id_heat_id', table_name='heat_entries')
    op.drop_table('heat_entries')
