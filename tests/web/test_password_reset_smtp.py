"""A password reset from end to end, through a real SMTP server.

The test starts an SMTP server (aiosmtpd) on a free port in this process, points
``PADDOCK_SMTP_URL`` at it, asks for a reset through the website's form (CSRF on), reads the
mail the server received, follows its link, sets a password and logs in with it. The link
works once, and not after its hour: the clock of the league's account rules is moved, never
slept on.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import AccountLink, OutboxMail
from league.rules import accounts
from tests.support.dbfixtures import PASSWORD, Factory

NEW_PASSWORD = "a brand new passphrase"
LINK_RE = re.compile(r"http://localhost(/password/reset/[A-Za-z0-9_-]+)")
T0 = dt.datetime(2026, 12, 3, 9, 0, 0)


@dataclass
class Inbox:
    """What the SMTP server received: each message with its envelope."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free local port, and what it received."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.timedelta], None]:
    """The account rules' clock, frozen at T0; ``clock(delta)`` sets it to T0 + delta."""
    now = [T0]
    monkeypatch.setattr(accounts, "utcnow", lambda: now[0])

    def move(delta: dt.timedelta) -> None:
        now[0] = T0 + delta
    return move


def _csrf(client: FlaskClient, path: str) -> str:
    r = client.get(path)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', r.get_data(as_text=True))
    assert r.status_code == 200 and match, r.get_data(as_text=True)
    return match.group(1)


def _post(client: FlaskClient, path: str, form_page: str | None = None, **data: str) -> Any:
    """POST ``data`` with the CSRF token of the form on ``form_page`` (default ``path``)."""
    return client.post(path, data={"csrf_token": _csrf(client, form_page or path), **data})


def _ask_for_reset(client: FlaskClient, inbox: Inbox, address: str) -> str:
    """Request a reset through the form; the link path of the mail that arrived."""
    before = len(inbox.messages)
    r = _post(client, "/password/forgot", email=address)
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert len(inbox.messages) == before + 1
    sender, recipients, message = inbox.messages[-1]
    assert sender == "league@example.org" and recipients == ["ada@example.org"]
    assert message["Subject"] == "Set a new Paddock password"
    assert message["From"] == "Paddock League <league@example.org>"
    body = message.get_content()
    assert "Hello ada" in body and "within 60 minutes" in body
    match = LINK_RE.search(body)
    assert match, body
    return match.group(1)


def _logs_in(client: FlaskClient, password: str) -> bool:
    r = _post(client, "/login", login="ada", password=password)
    ok = r.status_code == 302 and client.get("/garage/").status_code == 200
    if ok:
        _post(client, "/logout", "/garage/")
    return ok


def test_password_reset_end_to_end_over_smtp(make_app: Callable[..., Flask], session: Session,
                                             make: Factory, smtp: tuple[Inbox, int],
                                             clock: Callable[[dt.timedelta], None]) -> None:
    inbox, port = smtp
    make.user(session, "ada")
    session.commit()
    app = make_app(PADDOCK_SMTP_URL=f"smtp://127.0.0.1:{port}", WTF_CSRF_ENABLED=True,
                   PADDOCK_MAIL_FROM="Paddock League <league@example.org>")
    client = app.test_client()

    path = _ask_for_reset(client, inbox, "ADA@example.org ")
    token = path.rsplit("/", 1)[1]
    stored = session.scalars(sa.select(AccountLink)).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()  # only the hash
    assert stored.expires_at == T0 + dt.timedelta(hours=1)
    session.commit()

    clock(dt.timedelta(minutes=59))
    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Set a new password" in page.get_data(as_text=True)
    r = _post(client, path, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert _logs_in(client, NEW_PASSWORD)
    assert not _logs_in(client, PASSWORD)

    # once only
    assert client.get(path).status_code == 404
    r = _post_to_spent(client, path)
    assert r.status_code == 400 and "not valid" in r.get_data(as_text=True)
    assert _logs_in(client, NEW_PASSWORD)

    # not after its hour
    clock(dt.timedelta(hours=2))
    later = _ask_for_reset(client, inbox, "ada@example.org")
    clock(dt.timedelta(hours=3, seconds=1))
    assert client.get(later).status_code == 404
    r = _post_to_spent(client, later)
    assert r.status_code == 400
    assert _logs_in(client, NEW_PASSWORD) and not _logs_in(client, "an hour too late")
    assert session.scalar(sa.select(sa.func.count(OutboxMail.id))) == 0  # all went by SMTP
    session.commit()


def _post_to_spent(client: FlaskClient, path: str) -> Any:
    """POST a new password to a link whose page no longer has a form (CSRF from another)."""
    return _post(client, path, "/password/forgot", password="an hour too late",
                 confirm="an hour too late")


def test_an_unreachable_smtp_server_changes_nothing_the_visitor_sees(
        make_app: Callable[..., Flask], session: Session, make: Factory,
        caplog: pytest.LogCaptureFixture) -> None:
    make.user(session, "ada")
    session.commit()
    app = make_app(PADDOCK_SMTP_URL=f"smtp://127.0.0.1:{_free_port()}")  # nobody listens
    client = app.test_client()
    known = client.post("/password/forgot", data={"email": "ada@example.org"})
    unknown = client.post("/password/forgot", data={"email": "nobody@example.org"})
    assert (known.status_code, known.headers["Location"]) == \
        (unknown.status_code, unknown.headers["Location"]) == (302, "/login")
    assert "could not send the 'reset' mail to ada@example.org" in caplog.text
