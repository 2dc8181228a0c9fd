"""Web fixtures: an app on each backend's test database, its client, signing in, and the app
served over HTTP (``served``) for tests that need a real client.

``app`` is built on the league's ``db`` fixture (SQLite and a throwaway PostgreSQL database),
with CSRF and rate limits off; the tests of those protections turn them back on with
``make_app(WTF_CSRF_ENABLED=True, ...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.serving import WSGIRequestHandler, make_server

from league.models import League, User
from tests.support.dbfixtures import Database, Factory
from tests.support.pages import commit
from tests.web.api_support import ApiClient
from web import create_app
from web.extensions import db as flask_db


@pytest.fixture
def make_app(db: Database, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database; keyword arguments go into the config."""
    apps: list[Flask] = []

    def build(**config: Any) -> Flask:
        base = {"DATABASE_URL": db.url, "PADDOCK_STORAGE_DIR": str(tmp_path / "storage"),
                "SECRET_KEY": "test-secret", "TESTING": True, "WTF_CSRF_ENABLED": False,
                "RATELIMIT_ENABLED": False}
        app = create_app({**base, **config})
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            flask_db.session.remove()
            flask_db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with CSRF and rate limits off."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()


def sign_in(client: FlaskClient, user: User) -> FlaskClient:
    """Make ``client`` signed in as ``user`` (the login form itself is tested in test_auth)."""
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user.id)
        sess["_fresh"] = True
    return client


@pytest.fixture
def login() -> Callable[[FlaskClient, User], FlaskClient]:
    """``login(client, user)``: sign ``client`` in as ``user``."""
    return sign_in


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """A checked API client of the app."""
    return ApiClient(app.test_client())


@pytest.fixture
def club(make: Factory, session: Session) -> League:
    """League ``club`` (divisions Pro and Rookie)."""
    return make.league(session)


@pytest.fixture
def org_client(client: FlaskClient, make: Factory, session: Session,
               login: Callable[[FlaskClient, User], FlaskClient], club: League) -> FlaskClient:
    """A client signed in as the organizer of ``club``."""
    org = make.organizer(session, club)
    commit(session)
    return login(client, org)


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        """Thousands of requests: a test's report says which ones failed."""


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """``app`` served over HTTP in a thread; its base URL."""
    server = make_server("127.0.0.1", 0, app, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
