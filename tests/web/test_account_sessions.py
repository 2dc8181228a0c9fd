"""Accounts: no page tells whether an address is registered; sessions end on "log out
everywhere" and on a password change; e-mail verification; the admins' outbox."""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import OutboxMail, User
from tests.support.dbfixtures import PASSWORD, Factory

NEW_PASSWORD = "another fine passphrase"


def _outbox(session: Session) -> list[OutboxMail]:
    mails = list(session.scalars(sa.select(OutboxMail).order_by(OutboxMail.id)))
    session.commit()
    return mails


def _answer(client: FlaskClient, path: str, data: dict[str, str], address: str) -> tuple:
    """Everything a visitor sees of a POST: status, redirect, the cookie's session and the
    page it leads to, with the address itself blanked out."""
    r = client.post(path, data=data)
    with client.session_transaction() as cookie:
        stored = repr(sorted(dict(cookie).items()))
    page = client.get(r.headers.get("Location", path)).get_data(as_text=True)
    client.delete_cookie("session")
    blank = lambda text: text.replace(address, "ADDRESS")  # noqa: E731
    return r.status_code, r.headers.get("Location"), blank(stored), blank(page)


def test_signup_answers_the_same_for_a_registered_address(client: FlaskClient,
                                                          session: Session,
                                                          make: Factory) -> None:
    make.user(session, "ada")
    session.commit()
    form = {"password": PASSWORD, "confirm": PASSWORD}
    taken = _answer(client, "/signup", {"name": "ada2", "email": "ada@example.org", **form},
                    "ada@example.org")
    fresh = _answer(client, "/signup", {"name": "bob", "email": "bob@example.org", **form},
                    "bob@example.org")
    assert taken == fresh
    assert taken[:2] == (302, "/login") and "We sent a message to ADDRESS" in taken[3]
    names = set(session.scalars(sa.select(User.name)))
    assert names == {"ada", "bob"}  # no second account for ada's address
    mails = _outbox(session)
    assert [(m.recipient, m.subject) for m in mails] == [
        ("ada@example.org", "Someone tried to sign up with your address"),
        ("bob@example.org", "Welcome to Paddock")]
    assert "/password/forgot" in mails[0].body


def test_reset_request_answers_the_same_for_an_unknown_address(client: FlaskClient,
                                                               session: Session,
                                                               make: Factory) -> None:
    make.user(session, "ada")
    session.commit()
    known = _answer(client, "/password/forgot", {"email": "ada@example.org"},
                    "ada@example.org")
    unknown = _answer(client, "/password/forgot", {"email": "zed@example.org"},
                      "zed@example.org")
    assert known == unknown
    assert known[:2] == (302, "/login") and "If an account uses ADDRESS" in known[3]
    assert [m.recipient for m in _outbox(session)] == ["ada@example.org"]


def _log_in(app: Flask, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    r = client.post("/login", data={"login": "ada", "password": password})
    assert r.status_code == 302 and client.get("/garage/").status_code == 200
    return client


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/garage/").status_code == 200


def test_log_out_everywhere_ends_the_other_clients_sessions(app: Flask, session: Session,
                                                             make: Factory) -> None:
    make.user(session, "ada")
    session.commit()
    laptop, phone = _log_in(app), _log_in(app)
    stolen = phone.get_cookie("session")
    assert stolen is not None
    r = laptop.post("/account/logout-everywhere")
    assert r.status_code == 302
    assert not _signed_in(phone) and not _signed_in(laptop)
    thief = app.test_client()  # a copy of the old cookie counts no more either
    thief.set_cookie("session", stolen.value)
    assert thief.get("/garage/").status_code == 302
    assert _signed_in(_log_in(app))  # logging in again works
    assert session.scalar(sa.select(User.session_epoch)) == 1


def test_a_password_change_ends_the_other_sessions(app: Flask, session: Session,
                                                   make: Factory) -> None:
    make.user(session, "ada")
    session.commit()
    laptop, phone = _log_in(app), _log_in(app)
    r = laptop.post("/account/password", data={"current": "wrong password",
                                               "password": NEW_PASSWORD,
                                               "confirm": NEW_PASSWORD})
    assert r.status_code == 400 and "the current password is wrong" in r.get_data(as_text=True)
    assert _signed_in(phone)
    r = laptop.post("/account/password", data={"current": PASSWORD, "password": NEW_PASSWORD,
                                               "confirm": NEW_PASSWORD})
    assert r.status_code == 302 and r.headers["Location"] == "/account"
    assert "logged out everywhere else" in laptop.get("/account").get_data(as_text=True)
    assert _signed_in(laptop) and not _signed_in(phone)
    assert app.test_client().post("/login", data={"login": "ada", "password": PASSWORD}) \
        .status_code == 200  # the old password is refused
    _log_in(app, NEW_PASSWORD)


def test_account_pages_need_a_login(client: FlaskClient) -> None:
    for path in ("/account",):
        assert client.get(path).status_code == 302
    for path in ("/account/password", "/account/logout-everywhere", "/account/verify"):
        assert client.post(path).status_code == 302


def test_verification_when_on(make_app: Callable[..., Flask], session: Session) -> None:
    app = make_app(PADDOCK_VERIFY_EMAIL="1")
    client = app.test_client()
    r = client.post("/signup", data={"name": "ada", "email": "ada@example.org",
                                      "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302
    (welcome,) = _outbox(session)
    match = re.search(r"http://localhost(/verify/[A-Za-z0-9_-]+)", welcome.body)
    assert match, welcome.body
    _log_in(app)  # an unverified account logs in and reads
    client = _log_in(app)
    r = client.post("/garage/tokens", data={"name": "laptop"})  # but changes nothing
    assert r.status_code == 303 and r.headers["Location"] == "/account"
    assert "Confirm your e-mail address first" in client.get("/account").get_data(as_text=True)
    assert client.get(match.group(1)).status_code == 200  # a button: visiting confirms nothing
    assert session.scalar(sa.select(User.email_verified_at)) is None
    session.commit()
    r = client.post(match.group(1))
    assert r.status_code == 302
    assert session.scalar(sa.select(User.email_verified_at)) is not None
    session.commit()
    assert client.post("/garage/tokens", data={"name": "laptop"}).status_code == 200
    assert client.get(match.group(1)).status_code == 404  # used


def test_without_verification_new_accounts_are_verified(client: FlaskClient,
                                                        session: Session) -> None:
    client.post("/signup", data={"name": "ada", "email": "ada@example.org",
                                 "password": PASSWORD, "confirm": PASSWORD})
    assert session.scalar(sa.select(User.email_verified_at)) is not None
    assert "/verify/" not in _outbox(session)[0].body


def test_the_outbox_is_for_admins_newest_first(app: Flask, session: Session,
                                               make: Factory, login) -> None:
    admin, ada = make.user(session, "root", "admin"), make.user(session, "ada")
    session.commit()
    visitor = app.test_client()
    visitor.post("/password/forgot", data={"email": "ada@example.org"})
    visitor.post("/password/forgot", data={"email": "root@example.org"})
    assert login(app.test_client(), ada).get("/admin/outbox").status_code == 404
    assert app.test_client().get("/admin/outbox").status_code == 302
    r = login(app.test_client(), admin).get("/admin/outbox")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert html.index("root@example.org") < html.index("ada@example.org")
    assert html.count("<tr>") == 3 and "/password/reset/" in html


def test_mail_links_use_the_site_url_not_the_host_header(make_app: Callable[..., Flask],
                                                         session: Session,
                                                         make: Factory) -> None:
    make.user(session, "ada")
    session.commit()
    app = make_app(PADDOCK_SITE_URL="https://league.example/paddock")
    app.test_client().post("/password/forgot", data={"email": "ada@example.org"},
                           headers={"Host": "evil.example"})
    (mail,) = _outbox(session)
    assert "https://league.example/paddock/password/reset/" in mail.body
    assert "evil.example" not in mail.body
