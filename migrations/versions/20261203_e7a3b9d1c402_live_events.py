"""Live events: a race's scheduled broadcast and its running order

Two new tables:

- ``live_events``: one row per event: its race, title, kind (``finals`` or ``showcase``),
  showcase size, start time, broadcast delay, status and when it was announced, started and
  finished.
- ``live_slots``: the event's running order: one stored replay each (job and trial), its heat
  for finals, and when it is (was) on air.

Nothing is backfilled: no event has been scheduled yet. Downgrading drops both.

Revision ID: e7a3b9d1c402
Revises: c5d2a8e4f917
Created: 2026-12-03 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e7a3b9d1c402'
down_revision = 'c5d2a8e4f917'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'live_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('race_id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('starts_at', sa.DateTime(), nullable=False),
        sa.Column('delay_s', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('reminded_at', sa.DateTime(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['race_id'], ['races.id'],
                                name=op.f('fk_live_events_race_id_races'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'],
                                name=op.f('fk_live_events_created_by_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_live_events')),
    )
    op.create_index(op.f('ix_live_events_race_id'), 'live_events', ['race_id'], unique=False)
    op.create_table(
        'live_slots',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=80), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('trial', sa.Integer(), nullable=False),
        sa.Column('heat_id', sa.Integer(), nullable=True),
        sa.Column('frames', sa.Integer(), nullable=False),
        sa.Column('duration_s', sa.Double(), nullable=False),
        sa.Column('on_air_at', sa.DateTime(), nullable=True),
        sa.Column('aired_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['live_events.id'],
                                name=op.f('fk_live_slots_event_id_live_events'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['job_id'], ['evaluation_jobs.id'],
                                name=op.f('fk_live_slots_job_id_evaluation_jobs'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['heat_id'], ['heats.id'],
                                name=op.f('fk_live_slots_heat_id_heats'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_live_slots')),
        sa.UniqueConstraint('event_id', 'position', name=op.f('uq_live_slots_event_id_position')),
    )
    op.create_index(op.f('ix_live_slots_event_id'), 'live_slots', ['event_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_live_slots_event_id'), table_name='live_slots')
    op.drop_table('live_slots')
    op.drop_index(op.f('ix_live_events_race_id'), table_name='live_events')
    op.drop_table('live_events')
