"""Notifications: what each racer wants to be told and how, and the queued deliveries

Two new tables:

- ``notification_settings``: one row per user who chose something: the events and channels
  (``subscriptions``, JSON ``{event: [channel, ...]}``), the webhook URL and its signing
  secret.
- ``notifications``: one message queued for one user on one channel (e-mail or webhook),
  written with the event and delivered by the scheduler: status, attempts, the next
  attempt's time and the last error.

Nothing is backfilled: nobody has asked to be told anything yet. Downgrading drops both.

Revision ID: c5d2a8e4f917
Revises: b3e81f0c6d27
Created: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c5d2a8e4f917'
down_revision = 'b3e81f0c6d27'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notification_settings',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('subscriptions', sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column('webhook_url', sa.String(length=2000), nullable=False, server_default=''),
        sa.Column('webhook_secret', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_notification_settings_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notification_settings')),
    )
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    )
    op.create_index(op.f('ix_notifications_user_id'), 'notifications', ['user_id'],
                    unique=False)
    op.create_index('ix_notifications_status_next_attempt_at', 'notifications',
                    ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_notifications_status_next_attempt_at', table_name='notifications')
    op.drop_index(op.f('ix_notifications_user_id'), table_name='notifications')
    op.drop_table('notifications')
    op.drop_table('notification_settings')
