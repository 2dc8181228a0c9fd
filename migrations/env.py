"""Alembic environment for Paddock, under ``flask db ...`` and standalone (``paddock db``).

The database comes from, in order: an explicit URL given by the caller
(``config.attributes["database_url"]``, as ``paddock db upgrade`` does), the running Flask
app's, or :class:`league.config.Settings` (``DATABASE_URL``).
"""

from __future__ import annotations

import logging
from logging.config import fileConfig
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context
from flask import current_app, has_app_context
from sqlalchemy import event, pool

import league.models  # noqa: F401  (registers every table on Base.metadata)
from league.config import Settings
from league.db import Base, engine_options, is_sqlite

config = context.config
log = logging.getLogger("alembic.env")

# APScheduler's job table (league.processes.scheduler.JOBSTORE_TABLE), created and owned by its
# job store.
JOBSTORE_TABLE = "apscheduler_jobs"

if config.config_file_name is not None and Path(config.config_file_name).is_file():
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """The URL of the database to migrate."""
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    if has_app_context() and "migrate" in current_app.extensions:
        engine = current_app.extensions["migrate"].db.engine
        return str(engine.url.render_as_string(hide_password=False))
    return Settings.from_env().database_url


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Leave APScheduler's job table out: its job store creates and owns it."""
    return not (type_ == "table" and name == JOBSTORE_TABLE)


def skip_empty_revisions(ctx: Any, revision: Any, directives: list[Any]) -> None:
    """Autogenerate writes no revision file when the models match the database."""
    cmd_opts = getattr(config, "cmd_opts", None)
    if getattr(cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def options(url: str) -> dict[str, Any]:
    """Options shared by offline and online runs."""
    return {
        "target_metadata": target_metadata,
        "include_object": include_object,
        "process_revision_directives": skip_empty_revisions,
        "compare_type": True,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        "render_as_batch": is_sqlite(url),
        # With transactional_sqlite() below, SQLite runs the whole upgrade in one transaction.
        "transactional_ddl": True,
    }


def transactional_sqlite(engine: sa.Engine) -> None:
    """Make SQLite's DDL transactional, so a failed migration leaves nothing half done.

    Foreign keys stay off (SQLite's default): batch mode drops and recreates tables, and with
    them on, dropping a table would cascade deletes into its children.
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def run_migrations_offline(url: str) -> None:
    """Write the SQL to stdout (``--sql``) instead of running it."""
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
                      **options(url))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(url: str) -> None:
    """Run the migrations on a connection of their own."""
    engine = sa.create_engine(url, poolclass=pool.NullPool, **engine_options(url))
    if is_sqlite(url):
        transactional_sqlite(engine)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options(url))
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline(database_url())
else:
    run_migrations_online(database_url())
