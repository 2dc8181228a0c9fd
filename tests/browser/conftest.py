"""Browser tests: the real site in a thread, driven by the system's Chromium through Playwright.

Fixtures:

* ``live_server``: the app on a fresh SQLite file with its own storage, served by Werkzeug on
  a free port in a background thread (CSRF on, rate limits off). ``live_server.session()``
  opens a session on the same database for seeding (commit before the browser looks);
  ``live_server.url(path)`` is an absolute URL; ``live_server.run_queued_jobs()`` evaluates
  what is queued with a worker in this process (the sandboxed races of a real upload).
* ``browser``: one headless Chromium per test process (``/usr/bin/chromium``). Without it the
  tests are skipped, except under ``CI=true``, where a missing browser fails them.
* ``new_page(**context_options)``: a page in a fresh browser context (own cookies), watched for
  console errors, uncaught exceptions, CSP violations and server errors; any of those fails
  the test at teardown unless it matched ``issues.allow(pattern)``. ``page`` is
  ``new_page()`` with the default viewport.
* ``screenshot(page, name)``: saves ``test-artifacts/screenshots/<test>-<name>.png`` (kept
  for people to look at; the folder is ignored by git).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from league.config import Settings
from league.db import Base, make_engine, session_factory
from league.processes.worker import Worker
from league.storage import Storage
from web import create_app
from web.extensions import db as flask_db

CHROMIUM = Path(os.environ.get("PADDOCK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000  # how long an action or wait may take before the test fails
# Reported on every page, before any of the page's own scripts run.
CSP_WATCH = """document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`
                + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
});"""


@dataclass
class LiveServer:
    """The site served on a free local port, and its database and storage."""

    base_url: str
    app: Any
    database_url: str
    engine: Engine
    factory: sessionmaker[Session]
    storage: Storage

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + path

    def run_queued_jobs(self) -> list[int]:
        """Evaluate every queued job with a worker in this process; the ids, in order."""
        settings = Settings(database_url=self.database_url, storage_dir=self.storage.root,
                            secret_key="browser-test-worker")
        worker = Worker(settings, "browser-test-worker")
        done: list[int] = []
        try:
            while (job_id := worker.run_once()) is not None:
                done.append(job_id)
        finally:
            worker.close()
        return done

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on the site's database (the caller commits)."""
        s = self.factory()
        try:
            yield s
        finally:
            s.rollback()
            s.close()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system Chromium; skips (fails under CI=true) when it is not installed."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = (f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) to run the "
               "browser tests")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Any]:
    """One headless Chromium for this test process."""
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    try:
        instance = driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
    finally:
        driver.stop()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The app on a fresh SQLite file, served in a background thread."""
    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    storage_dir = tmp_path / "storage"
    app = create_app({"DATABASE_URL": url, "PADDOCK_STORAGE_DIR": str(storage_dir),
                      "SECRET_KEY": "browser-test-secret", "RATELIMIT_ENABLED": False})
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, url, engine,
                         session_factory(engine), Storage(storage_dir))
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            flask_db.session.remove()
            flask_db.engine.dispose()
        engine.dispose()


@dataclass
class BrowserIssues:
    """What went wrong in the pages of one test: console errors, exceptions, CSP, 5xx."""

    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect problems matching ``pattern`` (a regular expression): they do not fail."""
        self.allowed.append(re.compile(pattern))

    def add(self, where: str, text: str) -> None:
        """Record a problem seen on ``where``."""
        self.problems.append(f"{where}: {text}")

    def unexpected(self) -> list[str]:
        """The problems no ``allow`` pattern matches."""
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    def watch(self, page: Any) -> None:
        """Start recording ``page``'s problems."""
        page.on("console", lambda msg: self.add(page.url, _console_text(msg))
                if msg.type == "error" else None)
        page.on("pageerror", lambda err: self.add(page.url, f"uncaught {err}"))
        page.on("response", lambda r: self.add(r.url, f"server error {r.status}")
                if r.status >= 500 else None)


def _console_text(msg: Any) -> str:
    """A console error with the resource it is about (a failed load names no URL itself)."""
    source = (msg.location or {}).get("url") or ""
    return f"console {msg.type}: {msg.text}" + (f" ({source})" if source else "")


@pytest.fixture
def issues() -> BrowserIssues:
    """The problems recorded on this test's pages (``issues.allow(pattern)`` to expect one)."""
    return BrowserIssues()


@pytest.fixture
def new_page(browser: Any, issues: BrowserIssues,
             live_server: LiveServer) -> Iterator[Callable[..., Any]]:
    """``new_page(**context_options)``: a watched page in a fresh browser context.

    It depends on ``live_server`` so that its pages close before the server stops: a page
    outlives its test by a moment (the browser fetches the favicon after ``load``), and a
    server that stops first would reset that request.
    """
    contexts: list[Any] = []

    def open_page(**options: Any) -> Any:
        options.setdefault("viewport", VIEWPORT)
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(CSP_WATCH)
        contexts.append(context)
        page = context.new_page()
        issues.watch(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    problems = issues.unexpected()
    if problems:
        pytest.fail("problems in the browser:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A watched page with the default viewport."""
    return new_page()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``screenshot(page, name)``: keep a full-page screenshot as a test artifact."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{test}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
