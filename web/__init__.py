"""The website and the JSON API (built on the league)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from league.cli import MIGRATIONS_DIR
from league.config import Settings
from league.db import configure_engine, engine_options, is_sqlite
from web.extensions import db, migrate


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app; ``config`` replaces the environment (tests pass a mapping).

    Keys of ``config`` are read as the environment is by :class:`league.config.Settings`
    (``DATABASE_URL``, ``PADDOCK_STORAGE_DIR``, ...); upper-case keys also go to ``app.config``
    (``TESTING``, ...).
    """
    app = Flask(__name__)
    settings = Settings.from_env(None if config is None else _as_env(config))
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
    )
    if config is not None:
        app.config.from_mapping({k: v for k, v in config.items() if k.isupper()})
    app.extensions["paddock.settings"] = settings

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), compare_type=True,
                     render_as_batch=is_sqlite(settings.database_url))
    with app.app_context():
        configure_engine(db.engine)
    return app


def settings_of(app: Flask) -> Settings:
    """The league settings ``app`` was created with."""
    settings: Settings = app.extensions["paddock.settings"]
    return settings


def _as_env(config: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in config.items() if isinstance(v, str | int | float | Path)}
