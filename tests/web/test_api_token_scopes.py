"""API tokens: scopes (a read token reads but never writes), expiry, revocation, last use."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from league.errors import InvalidInput
from league.models import ApiToken, Entry, TokenScope, utcnow
from league.rules import accounts
from tests.support.dbfixtures import Factory
from tests.web.api_support import ApiClient, error_of, open_race


def test_a_read_token_reads_but_cannot_submit(api: ApiClient, session: Session,
                                              make: Factory) -> None:
    ann = make.user(session, "ann")
    race = open_race(session, make)
    _, read = accounts.create_token(session, ann, "dashboard", scope="read")
    _, submit = accounts.create_token(session, ann, "trainer", scope="submit")
    session.commit()
    r = api.get("/me", read)
    assert r.status_code == 200 and r.get_json()["name"] == "ann"
    assert api.get(f"/races/{race.id}", read).status_code == 200
    status, code, message = error_of(api.upload(race.id, make.policy(), read))
    assert (status, code) == (403, "forbidden")
    assert "'read' scope" in message and "'submit' scope" in message
    assert api.upload(race.id, make.policy(), submit).status_code == 201
    assert session.query(Entry).count() == 1  # the read token's upload stored nothing


def test_an_expired_token_is_refused_and_says_so(api: ApiClient, session: Session,
                                                 make: Factory) -> None:
    ann = make.user(session, "ann")
    created = utcnow() - dt.timedelta(days=31)
    token, plain = accounts.create_token(session, ann, "old", lifetime="30d", now=created)
    _, fresh = accounts.create_token(session, ann, "new", lifetime="30d")
    session.commit()
    assert token.expires_at == created + dt.timedelta(days=30)
    session.commit()  # ends the test's read (SQLite: the app writes next)
    status, code, message = error_of(api.get("/me", plain))
    assert (status, code) == (401, "unauthorized") and "expired" in message
    # refused on public reads too: a stale token hears so rather than quietly seeing less
    assert error_of(api.get("/leagues", plain))[0] == 401
    assert api.get("/me", fresh).status_code == 200
    assert accounts.find_token(session, plain) is None
    session.commit()  # ends the test's read (SQLite: the app writes next)


def test_a_revoked_token_is_refused(api: ApiClient, session: Session, make: Factory) -> None:
    ann = make.user(session, "ann")
    token, plain = accounts.create_token(session, ann, "laptop")
    session.commit()
    assert api.get("/me", plain).status_code == 200
    accounts.revoke_token(session, ann, token.id)
    session.commit()
    status, code, message = error_of(api.get("/me", plain))
    assert (status, code, message) == (401, "unauthorized",
                                       "the API token is unknown or revoked")
    assert api.get("/tracks", plain).status_code == 200  # needs no identity at all


def test_lifetimes_and_scopes(session: Session, make: Factory) -> None:
    ann = make.user(session, "ann")
    now = dt.datetime(2026, 12, 3, 9, 0)
    default, _ = accounts.create_token(session, ann, "default", now=now)
    assert default.scope == TokenScope.SUBMIT
    assert default.expires_at == now + dt.timedelta(days=365)
    never, plain = accounts.create_token(session, ann, "ci", lifetime="never", now=now)
    assert never.expires_at is None
    assert accounts.find_token(session, plain, now + dt.timedelta(days=3650)) is not None
    with pytest.raises(InvalidInput, match="30d, 90d, 1y, never"):
        accounts.create_token(session, ann, "x", lifetime="2y")
    with pytest.raises(InvalidInput, match="read, submit"):
        accounts.create_token(session, ann, "x", scope="admin")


def test_the_tokens_page_creates_scoped_expiring_tokens_and_shows_last_use(
        client, login, api: ApiClient, session: Session, make: Factory) -> None:
    ann = make.user(session, "ann")
    session.commit()
    login(client, ann)
    r = client.post("/garage/tokens", data={"name": "dash", "scope": "read", "lifetime": "90d"})
    assert r.status_code == 200
    plain = r.get_data(as_text=True).split('data-token>')[1].split("<")[0]
    token = session.query(ApiToken).one()
    assert token.scope == TokenScope.READ and token.expires_at is not None
    assert dt.timedelta(days=89) < token.expires_at - token.created_at <= dt.timedelta(days=90)
    session.commit()  # ends the test's read (SQLite: the app writes next)
    html = client.get("/garage/tokens").get_data(as_text=True)
    assert "<td>read</td>" in html and "<td>never</td>" in html  # not used yet
    assert api.get("/me", plain).status_code == 200
    session.expire_all()
    used = session.get(ApiToken, token.id)
    assert used is not None and used.last_used_at is not None
    session.commit()  # ends the test's read (SQLite: the app writes next)
    html = client.get("/garage/tokens").get_data(as_text=True)
    assert used.last_used_at.strftime("%Y-%m-%d %H:%M UTC") in html
    r = client.post("/garage/tokens", data={"name": "x", "scope": "root", "lifetime": "1y"})
    assert r.status_code == 400 and "Not a valid choice" in r.get_data(as_text=True)
    session.commit()  # ends the test's read (SQLite: the app writes next)
    r = client.post("/garage/tokens", data={"name": "x", "scope": "read", "lifetime": "5y"})
    assert r.status_code == 400 and session.query(ApiToken).count() == 1
