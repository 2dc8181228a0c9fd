"""Audit log, public telemetry

A new column, ``leagues.telemetry_public`` (false for every league, as before: replays give
spectators no policy commands unless the league's organizers choose to), and a new table,
``audit_events``: one row per organizer or admin action on a league (settings
changed, invite code rotated, member removed or changed, division added or renamed, season or
race created, race settings changed, race closed by hand, entry disqualified or re-run): who
(``actor_id``, and ``actor_name`` kept should the user be deleted), when, what, to what and
why (``league.rules.audit``). Indexed by league and time, the order the log is read in.

Nothing is backfilled: actions taken before this version were not recorded. Downgrading drops
the table and its events, and the column.

Revision ID: 9a4f2c7e1b63
Revises: 2e4e78f95494
Created: 2026-12-03 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '9a4f2c7e1b63'
down_revision = '2e4e78f95494'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leagues", sa.Column("telemetry_public", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('league_id', sa.Integer(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor_name', sa.String(length=40), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('target', sa.String(length=300), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'],
                                name=op.f('fk_audit_events_actor_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['league_id'], ['leagues.id'],
                                name=op.f('fk_audit_events_league_id_leagues'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    )
    op.create_index('ix_audit_events_league_id_at', 'audit_events', ['league_id', 'at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_events_league_id_at', table_name='audit_events')
    op.drop_table('audit_events')
    with op.batch_alter_table("leagues") as batch:
        batch.drop_column("telemetry_public")
