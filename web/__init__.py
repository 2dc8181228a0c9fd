"""The website and the JSON API (built on the league)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from league.config import Settings
from league.db import MIGRATIONS_DIR, READ_ONLY, configure_engine, engine_options, is_sqlite
from league.models import MAX_ID
from web import errors, filters, mail, pagecache, security
from web.extensions import csrf, db, limiter, login_manager, migrate

MAX_UPLOAD_BYTES = 17 * 1024 * 1024  # a 16 MiB model plus its metadata and the form around it


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app; ``config`` replaces the environment (tests pass a mapping).

    Keys of ``config`` are read as the environment is by :class:`league.config.Settings`
    (``DATABASE_URL``, ``PADDOCK_STORAGE_DIR``, ...); upper-case keys also go to ``app.config``
    (``TESTING``, ``WTF_CSRF_ENABLED``, ``RATELIMIT_ENABLED``, ...).
    """
    app = Flask(__name__)
    settings = Settings.from_env(None if config is None else _as_env(config))
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage,
        RATELIMIT_HEADERS_ENABLED=True,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        JSON_SORT_KEYS=False,
    )
    # Rate limits (PADDOCK_RATELIMIT_<NAME>), read per request by web.extensions.limit
    app.config.update({f"RATELIMIT_{name.upper()}": value
                       for name, value in settings.rate_limits.items()})
    if config is not None:
        app.config.from_mapping({k: v for k, v in config.items() if k.isupper()})
    app.extensions["paddock.settings"] = settings
    _trust_proxies(app, settings)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), compare_type=True,
                     render_as_batch=is_sqlite(settings.database_url))
    with app.app_context():
        configure_engine(db.engine)
    # Before the rate limiter's check, which may read the database: that first read must
    # already run in the request's read-only transaction.
    app.before_request(_read_only_for_safe_methods)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see that page."
    login_manager.user_loader(security.load_user)
    security.init_app(app)
    mail.init_app(app, settings)
    filters.init_app(app)
    errors.init_app(app)
    pagecache.init_app(app)

    app.url_map.converters["int"] = BoundedInt  # before any route is added
    from web.api import bp as api_bp
    from web.views import auth, garage, organize, organize_races, public, races, replays, tracks
    from web.views.admin import bp as admin_bp
    from web.views.feeds import bp as feeds_bp
    from web.views.live import bp as live_bp
    from web.views.matchups import bp as matchups_bp
    from web.views.notifications import bp as notifications_bp

    for view in (public, races, tracks, auth, garage, organize, organize_races, replays):
        app.register_blueprint(view.bp)
    app.register_blueprint(matchups_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(feeds_bp)
    app.register_blueprint(live_bp)
    app.register_blueprint(notifications_bp)
    app.add_url_rule("/healthz", "healthz", _healthz)
    csrf.exempt(api_bp)  # bearer tokens, never cookies: nothing to forge
    app.register_blueprint(api_bp)
    return app


def _trust_proxies(app: Flask, settings: Settings) -> None:
    """Believe the forwarded headers of the proxies in front of the site, and no others.

    ``X-Forwarded-For`` and ``-Proto`` count ``PADDOCK_PROXY_HOPS`` entries from the right:
    those the trusted proxies appended, never what a client wrote before them (the address
    rate limits count, HTTPS for cookies and HSTS). ``X-Forwarded-Host`` and ``-Prefix``
    shape every link the site writes, and a proxy that does not set them passes a client's
    own on: they are believed (the nearest proxy's value) only with
    ``PADDOCK_TRUST_FORWARDED_HOST``.
    """
    hops = settings.proxy_hops
    if not hops:
        return
    forwarded_host = 1 if settings.trust_forwarded_host else 0
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops,  # type: ignore[method-assign]
                            x_host=forwarded_host, x_prefix=forwarded_host)


class BoundedInt(IntegerConverter):
    """``<int:...>`` in routes, up to the largest id a row can have
    (:data:`league.models.MAX_ID`): a larger number is simply no route (404), never an
    overflow deep in the driver."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def settings_of(app: Flask) -> Settings:
    """The league settings ``app`` was created with."""
    settings: Settings = app.extensions["paddock.settings"]
    return settings


def _healthz() -> tuple[str, int, dict[str, str]]:
    """For load balancers and the launcher: ``ok`` when the database answers."""
    db.session.execute(sa.text("SELECT 1"))
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}


def _read_only_for_safe_methods() -> None:
    """GET and HEAD requests only read: on SQLite they begin a deferred transaction, so a page
    view never waits for (or blocks) the workers writing results."""
    if request.method in ("GET", "HEAD") and request.endpoint != "static":
        db.session.connection(execution_options={READ_ONLY: True})


def _as_env(config: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in config.items() if isinstance(v, str | int | float | Path)}
