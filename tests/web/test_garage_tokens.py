"""Personal API tokens in the garage: shown once, listed by prefix, revocable."""

from __future__ import annotations

import re

import sqlalchemy as sa

from league.models import ApiToken
from league.rules import accounts


def _plain(html: str) -> str | None:
    match = re.search(r'<code class="token-value" data-token>([^<]+)</code>', html)
    return match.group(1) if match else None


def test_a_token_is_shown_once_and_works_until_revoked(client, login, session, make):
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    r = client.post("/garage/tokens", data={"name": "laptop"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    plain = _plain(r.get_data(as_text=True))
    assert plain and plain.startswith(accounts.TOKEN_PREFIX)
    assert "shown this once" in r.get_data(as_text=True)
    assert accounts.find_token(session, plain).user.id == ada.id
    token = session.scalars(sa.select(ApiToken)).one()
    assert token.token_hash != plain and plain not in token.token_hash
    session.commit()
    # never again: not on the list, not in the session cookie, not in a redirect
    listing = client.get("/garage/tokens")
    html = listing.get_data(as_text=True)
    assert plain not in html and _plain(html) is None
    assert "laptop" in html and f"{token.prefix}…" in html and "active" in html
    with client.session_transaction() as cookie_session:
        assert plain not in repr(dict(cookie_session))
    # revoke
    r = client.post(f"/garage/tokens/{token.id}/revoke")
    assert r.status_code == 302 and r.headers["Location"] == "/garage/tokens"
    html = client.get("/garage/tokens").get_data(as_text=True)
    assert "The token is revoked." in html and "revoked 20" in html
    session.expire_all()
    assert accounts.find_token(session, plain) is None


def test_token_form_errors_and_others_tokens(client, login, session, make):
    ada, bob = make.user(session, "ada"), make.user(session, "bob")
    bobs, _ = accounts.create_token(session, bob, "bob's")
    session.commit()
    login(client, ada)
    r = client.post("/garage/tokens", data={"name": ""})
    assert r.status_code == 400 and "This field is required." in r.get_data(as_text=True)
    r = client.post("/garage/tokens", data={"name": "zero\u200bwidth"})
    assert r.status_code == 400 and "invisible" in r.get_data(as_text=True)
    assert _plain(r.get_data(as_text=True)) is None
    assert "bob&#39;s" not in client.get("/garage/tokens").get_data(as_text=True)
    assert client.post(f"/garage/tokens/{bobs.id}/revoke").status_code == 404
    assert client.post("/garage/tokens/9999/revoke").status_code == 404
    session.expire_all()
    assert session.get(ApiToken, bobs.id).revoked_at is None


def test_revoking_needs_the_csrf_token(make_app, login, session, make):
    ada = make.user(session, "ada")
    token, _ = accounts.create_token(session, ada, "ci")
    session.commit()
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    login(client, ada)
    assert client.post(f"/garage/tokens/{token.id}/revoke").status_code == 400
    html = client.get("/garage/tokens").get_data(as_text=True)
    csrf = re.search(r'revoke" class="inline">\s*<input type="hidden" name="csrf_token" '
                     r'value="([^"]+)"', html)
    assert csrf
    r = client.post(f"/garage/tokens/{token.id}/revoke", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 302
    session.expire_all()
    assert session.get(ApiToken, token.id).revoked_at is not None
