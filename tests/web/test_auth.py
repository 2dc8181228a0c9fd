"""Sign up, log in, log out, CSRF, session cookies, rate limits, security headers."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask.testing import FlaskClient

from league.models import User
from tests.support.dbfixtures import PASSWORD


def _csrf(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_signup_creates_an_account_then_the_racer_logs_in(client, session):
    """Sign-up does not log in: its answer must not tell a new address from a registered one
    (tests/web/test_account_sessions.py), so the new racer logs in next."""
    r = client.post("/signup", data={"name": "ada", "email": "ada@example.org",
                                      "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    user = session.scalar(sa.select(User).where(User.name == "ada"))
    assert user is not None and user.password_hash.startswith("scrypt:")
    session.commit()  # ends the test's read (SQLite: the login writes next)
    assert client.get("/garage/").status_code == 302
    r = client.post("/login", data={"login": "ada", "password": PASSWORD})
    assert r.status_code == 302 and client.get("/garage/").status_code == 200


def test_signup_shows_the_reason_next_to_the_field(client, make, session):
    make.user(session, "ada")
    session.commit()
    r = client.post("/signup", data={"name": "ADA", "email": "x@example.org",
                                      "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 200
    assert "that user name is already registered" in r.get_data(as_text=True)
    r = client.post("/signup", data={"name": "bob", "email": "bob@example.org",
                                      "password": PASSWORD, "confirm": "other password"})
    assert "the passwords differ" in r.get_data(as_text=True)


def test_login_by_name_or_email_and_logout(client, make, session):
    make.user(session, "ada")
    session.commit()
    r = client.post("/login", data={"login": "ada", "password": "wrong password"})
    assert r.status_code == 200 and "wrong password" in r.get_data(as_text=True)
    assert client.get("/garage/").status_code == 302
    r = client.post("/login?next=/garage/tokens", data={"login": "ADA@example.org",
                                                         "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"] == "/garage/tokens"
    assert client.get("/garage/").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/garage/").status_code == 302


def test_login_never_redirects_off_site(client, make, session):
    make.user(session, "ada")
    session.commit()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = client.post("/login", query_string={"next": target},
                        data={"login": "ada", "password": PASSWORD})
        assert r.headers["Location"] == "/garage/"


def test_forms_refuse_a_post_without_the_csrf_token(make_app, make, session):
    make.user(session, "ada")
    session.commit()
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    r = client.post("/login", data={"login": "ada", "password": PASSWORD})
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)
    token = _csrf(client, "/login")
    r = client.post("/login", data={"login": "ada", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302
    assert client.post("/logout").status_code == 400  # logging out needs the token too
    token = _csrf(client, "/garage/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def test_session_cookie_flags(client, make, session):
    make.user(session, "ada")
    session.commit()
    r = client.post("/login", data={"login": "ada", "password": PASSWORD})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = client.post("/login", data={"login": "ada", "password": PASSWORD},
                        base_url="https://localhost")
    assert "Secure" in https.headers["Set-Cookie"]
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_security_headers_on_every_page(client):
    for path in ("/", "/login", "/no-such-page", "/api/v1/no-such-thing"):
        r = client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in r.headers


def test_login_is_rate_limited(make_app, make, session):
    make.user(session, "ada")
    session.commit()
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3 per minute").test_client()
    for _ in range(3):
        assert client.post("/login", data={"login": "ada", "password": "nope"}).status_code == 200
    r = client.post("/login", data={"login": "ada", "password": PASSWORD})
    assert r.status_code == 429
    assert "too many requests" in r.get_data(as_text=True)
    assert client.get("/login").status_code == 200  # only the attempts count


def test_request_size_limit(client):
    r = client.post("/login", data={"login": "x" * (18 * 1024 * 1024), "password": "y"})
    assert r.status_code == 413
