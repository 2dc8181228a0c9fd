"""Account security

New columns and tables for password resets, e-mail verification, revocable sessions and
scoped, expiring API tokens (``league.rules.accounts``):

- ``users.email_verified_at``: when the address was confirmed through a mailed link;
- ``users.session_epoch``: website sessions carry it and count only while it is unchanged;
- ``api_tokens.scope`` (``read`` or ``submit``) and ``api_tokens.expires_at``;
- ``account_links``: single-use mailed links (SHA-256 of the secret, expiry, use);
- ``outbox_mails``: mail kept for the admins when no SMTP server is configured.

Backfill: existing users count as verified from the time they signed up
(``email_verified_at = created_at``; they joined before verification existed, and turning it
on must not lock them out) and start at session epoch 0, which their current sessions (that
carry no epoch) match, so nobody is logged out by the upgrade. Existing tokens keep working
as before: scope ``submit`` (everything their owner may do) and no expiry
(``expires_at`` NULL); their owners may revoke them and create expiring ones. Downgrading
drops the new tables and columns (pending links and the outbox are lost).

Revision ID: 2e4e78f95494
Revises: 7c1d9e3a5b20
Created: 2026-12-03 07:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '2e4e78f95494'
down_revision = '7c1d9e3a5b20'
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("created_at", sa.DateTime),
                 sa.column("email_verified_at", sa.DateTime))


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_verified_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("session_epoch", sa.Integer(), server_default="0",
                                   nullable=False))
    op.execute(users.update().values(email_verified_at=users.c.created_at))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=16), server_default="submit",
                                   nullable=False))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.create_table(
        'account_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_account_links_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_account_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_account_links_token_hash')),
    )
    op.create_index(op.f('ix_account_links_user_id'), 'account_links', ['user_id'],
                    unique=False)
    op.create_table(
        'outbox_mails',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_mails')),
    )
    op.create_index(op.f('ix_outbox_mails_created_at'), 'outbox_mails', ['created_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_outbox_mails_created_at'), table_name='outbox_mails')
    op.drop_table('outbox_mails')
    op.drop_index(op.f('ix_account_links_user_id'), table_name='account_links')
    op.drop_table('account_links')
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("scope")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
        batch.drop_column("email_verified_at")
