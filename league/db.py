"""Database plumbing: the declarative base, engines and sessions outside Flask, and the schema's
migrations (:func:`upgrade_database`, the Alembic scripts under :data:`MIGRATIONS_DIR`).

Models derive from :class:`Base` (plain SQLAlchemy 2.0); the web app hands the same base to
Flask-SQLAlchemy, so the scheduler and workers use the very same models without Flask.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from league.config import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers wait this long for SQLite's lock
READ_ONLY = "paddock_read_only"  # execution option: this transaction only reads
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"  # Alembic's scripts

# Stable constraint names, so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every model."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url_or_engine: str | Engine) -> bool:
    """Whether a URL or engine points at SQLite."""
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else sa.make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def engine_options(url: str) -> dict[str, Any]:
    """Engine keyword arguments for ``url`` (also used by the web app's Flask-SQLAlchemy)."""
    if is_sqlite(url):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000.0}}
    return {"pool_pre_ping": True}


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    engine = sa.create_engine(url, **engine_options(url))
    configure_engine(engine)
    return engine


def configure_engine(engine: Engine) -> None:
    """Per-connection settings SQLite needs to behave like a real multi-process database."""
    if not is_sqlite(engine):
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (see _sqlite_begin) instead of the driver.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: two workers claiming jobs then
        # queue on the lock instead of both reading the same queued row. A connection marked
        # read-only (READ_ONLY, e.g. the website's GET requests) begins a deferred
        # transaction: readers never wait for writers under WAL.
        mode = "DEFERRED" if conn.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> AlembicConfig:
    """Alembic's configuration for this project's migrations, on the database at ``url``."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise ConfigError(f"the migrations are missing (looked in {MIGRATIONS_DIR})")
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def upgrade_database(url: str, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; returns the database's revision after."""
    if is_sqlite(url):
        database = sa.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)
    return current_revision(url)


def current_revision(url: str) -> str | None:
    """The migration revision the database at ``url`` is at (None: not migrated)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
