"""The account-security migration upgrades a database that has users and tokens already."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command

from league.db import alembic_config, make_engine, session_factory, transaction, upgrade_database
from league.models import ApiToken, LinkPurpose, TokenScope, User
from league.rules import accounts

REVISION = "2e4e78f95494"  # account security
BEFORE = "7c1d9e3a5b20"  # the revision it follows
SIGNED_UP = dt.datetime(2026, 11, 30, 8, 15)
PLAIN = accounts.TOKEN_PREFIX + "x" * 43


def _columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    names = {c["name"] for c in sa.inspect(engine).get_columns(table)}
    engine.dispose()
    return names


def test_existing_users_and_tokens_keep_working(empty_url: str) -> None:
    upgrade_database(empty_url, BEFORE)
    engine = make_engine(empty_url)
    with engine.begin() as conn:  # rows as the version before wrote them
        conn.execute(sa.text(
            "INSERT INTO users (id, name, email, password_hash, role, created_at) "
            "VALUES (1, 'ada', 'ada@example.org', 'scrypt:x', 'racer', :at)"), {"at": SIGNED_UP})
        conn.execute(sa.text(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at) "
            "VALUES (1, 1, 'laptop', :hash, 'pdk_xxxxxx', :at)"),
            {"hash": accounts._digest(PLAIN), "at": SIGNED_UP})
    assert "scope" not in _columns(empty_url, "api_tokens")

    assert upgrade_database(empty_url) is not None
    factory = session_factory(engine)
    with transaction(factory) as s:
        ada = s.get_one(User, 1)
        # verified from sign-up, epoch 0: a session cookie without an epoch still counts
        assert ada.email_verified_at == SIGNED_UP and ada.session_epoch == 0
        token = s.get_one(ApiToken, 1)
        assert (token.scope, token.expires_at) == (TokenScope.SUBMIT, None)
        found = accounts.find_token(s, PLAIN, dt.datetime(2036, 1, 1))
        assert found is not None and found.id == 1  # no expiry, full scope
        assert accounts.create_link(s, ada, LinkPurpose.RESET)  # the new table is there

    command.downgrade(alembic_config(empty_url), BEFORE)
    assert {"scope", "expires_at"}.isdisjoint(_columns(empty_url, "api_tokens"))
    assert {"session_epoch", "email_verified_at"}.isdisjoint(_columns(empty_url, "users"))
    inspector_engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    tables = set(sa.inspect(inspector_engine).get_table_names())
    inspector_engine.dispose()
    assert {"account_links", "outbox_mails"}.isdisjoint(tables) and "api_tokens" in tables
    with engine.connect() as conn:  # the rows outlive the round trip
        assert conn.execute(sa.text("SELECT count(*) FROM api_tokens")).scalar() == 1
    engine.dispose()
