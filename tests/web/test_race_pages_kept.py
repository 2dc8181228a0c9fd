"""Whole race pages kept per session (``web.pagecache.for_viewers``): served again only while
every value the page shows is the same as when it was rendered, so a signed-in racer never
sees anything older than a freshly rendered page: their new entry, a message, another
process's change, their own header and log-out token, the moment the race opens."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from flask import Flask, template_rendered
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import MemberRole, Membership, Race, RaceStatus, User
from league.rules import headtohead as h2h
from tests.support.dbfixtures import PASSWORD
from tests.web.test_public_pages import page
from web import pagecache
from web.views import races as race_views

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database, Factory

LOGOUT_TOKEN = re.compile(r'action="/logout".*?name="csrf_token" value="([^"]+)"',
                          re.S)


@contextmanager
def _renders(app: Flask) -> Iterator[list[str]]:
    """The names of the templates rendered meanwhile (none when a kept page is served)."""
    names: list[str] = []

    def note(sender: Flask, template: Any, context: Any, **extra: Any) -> None:
        names.append(template.name)

    with template_rendered.connected_to(note, app):
        yield names


def _signed_in(app: Flask, session: Session, make: Factory, name: str) -> tuple[FlaskClient, User]:
    """A client signed in as new racer ``name`` through the login form (which ties the session
    to its browser, as in production)."""
    user = make.user(session, name)
    session.commit()
    client = app.test_client()
    r = client.post("/login", data={"login": name, "password": PASSWORD})
    assert r.status_code == 302
    page(client, "/")  # takes the welcome message, if any
    return client, user


def _sprint(session: Session, make: Factory) -> Race:
    race = make.race(session, name="Sprint")
    make.result(session, make.entry(session, race, make.racer(session, "tt0")), time_s=30.0)
    session.commit()
    return race


def _rows(app: Flask) -> int:
    with app.app_context():
        return len(pagecache.kept().viewer_pages.keys())


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(PUBLIC_PAGE_CACHE_S=3600)


def test_an_unchanged_page_is_served_without_rendering(
        app: Flask, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, _ = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    first = page(ann, path)  # the league's caches are filled: not kept yet
    second = page(ann, path)
    with _renders(app) as rendered:
        third = page(ann, path)
    assert rendered == [] and third == second and 'class="nav-user">ann</a>' in third
    assert _rows(app) == 1 and "tt0" in first


def test_a_racers_new_result_shows_at_once(
        app: Flask, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, user = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    page(ann, path)
    assert page(ann, path).count('href="/racers/ann"') == 1  # the header's link
    make.result(session, make.entry(session, race, user), time_s=20.0)
    session.commit()
    for _ in range(3):  # rendered anew, then kept anew: never the old copy again
        assert page(ann, path).count('href="/racers/ann"') == 2  # and the leaderboard's


def test_another_process_change_shows_at_once(
        app: Flask, db: Database, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, _ = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    page(ann, path)
    page(ann, path)
    session.rollback()
    with db.engine.begin() as conn:  # as another process would: nothing told this one
        conn.execute(sa.update(Race).where(Race.id == race.id).values(name="Marathon"))
    assert "<h1>Marathon " in page(ann, path)


def test_a_message_shows_on_a_kept_page(app: Flask, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, _ = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    page(ann, path)
    page(ann, path)
    with ann.session_transaction() as cookie:
        cookie["_flashes"] = [("message", "Entry received.")]
    assert "Entry received." in page(ann, path)
    assert "Entry received." not in page(ann, path)


def test_no_one_gets_another_viewers_header(
        make_app: Callable[..., Flask], session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    app = make_app(PUBLIC_PAGE_CACHE_S=0)  # visitors too go through the kept pages
    ann, _ = _signed_in(app, session, make, "ann")
    bob, _ = _signed_in(app, session, make, "bob")
    path = f"/races/{race.id}"
    for _ in range(2):
        page(ann, path)
        page(bob, path)
    ann_html, bob_html = page(ann, path), page(bob, path)
    visitor_html = page(app.test_client(), path)
    assert 'class="nav-user">ann</a>' in ann_html and ">bob<" not in ann_html
    assert 'class="nav-user">bob</a>' in bob_html and ">ann<" not in bob_html
    assert "nav-user" not in visitor_html and 'action="/logout"' not in visitor_html
    ann_token = LOGOUT_TOKEN.search(ann_html)
    bob_token = LOGOUT_TOKEN.search(bob_html)
    assert ann_token and bob_token and ann_token.group(1) != bob_token.group(1)


def test_each_session_of_a_racer_gets_its_own_header(
        app: Flask, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, _ = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    page(ann, path)
    kept = page(ann, path)
    with ann.session_transaction() as cookie:
        signed_in = dict(cookie)
    other, stale = app.test_client(), app.test_client()
    with other.session_transaction() as cookie:  # the racer on another device
        cookie.update({**signed_in, "csrf_token": "another-session-token"})
    with stale.session_transaction() as cookie:  # a cookie from before a password change
        cookie.update({**signed_in, "_epoch": signed_in.get("_epoch", 0) + 1})
    token, other_token = LOGOUT_TOKEN.search(kept), LOGOUT_TOKEN.search(page(other, path))
    assert token and other_token and token.group(1) != other_token.group(1)
    assert "nav-user" not in page(stale, path)
    assert page(ann, path) == kept


def test_the_kept_log_out_form_works(make_app: Callable[..., Flask], session: Session,
                                     make: Factory) -> None:
    race = _sprint(session, make)
    app = make_app(PUBLIC_PAGE_CACHE_S=3600, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    make.user(session, "ann")
    session.commit()
    form = page(client, "/login")
    login_token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
    assert login_token is not None
    client.post("/login", data={"login": "ann", "password": PASSWORD,
                                "csrf_token": login_token.group(1)})
    page(client, "/")
    path = f"/races/{race.id}"
    page(client, path)
    page(client, path)
    with _renders(app) as rendered:
        kept = page(client, path)
    token = LOGOUT_TOKEN.search(kept)
    assert rendered == [] and token is not None
    session.rollback()
    r = client.post("/logout", data={"csrf_token": token.group(1)})
    assert r.status_code == 302
    assert "nav-user" not in page(client, path)


def test_sessions_ended_elsewhere_end_here(
        app: Flask, db: Database, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, user = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    page(ann, path)
    assert 'class="nav-user">ann</a>' in page(ann, path)
    session.rollback()
    with db.engine.begin() as conn:  # "log out everywhere", done through another worker
        conn.execute(sa.update(User).where(User.id == user.id)
                     .values(session_epoch=User.session_epoch + 1))
    html = page(ann, path)
    assert "nav-user" not in html and ">Log in</a>" in html


def test_a_new_membership_shows_its_actions(
        app: Flask, db: Database, session: Session, make: Factory) -> None:
    race = _sprint(session, make)
    ann, user = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    page(ann, path)
    assert ">Manage</a>" not in page(ann, path)
    league_id = race.league_id
    session.rollback()
    with db.engine.begin() as conn:  # made an organizer through another worker
        conn.execute(sa.insert(Membership).values(
            league_id=league_id, user_id=user.id, role=MemberRole.ORGANIZER,
            joined_at=dt.datetime(2026, 1, 1)))
    assert ">Manage</a>" in page(ann, path)


def test_the_race_opens_on_a_kept_page(
        app: Flask, session: Session, make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    race = _sprint(session, make)
    race.status = RaceStatus.OPEN
    race.opens_at = make.now + dt.timedelta(hours=1)
    race.closes_at = make.now + dt.timedelta(days=30)
    session.commit()
    ann, _ = _signed_in(app, session, make, "ann")
    path = f"/races/{race.id}"
    monkeypatch.setattr(race_views, "utcnow", lambda: make.now)
    page(ann, path)
    assert "Enter this race" not in page(ann, path)
    monkeypatch.setattr(race_views, "utcnow", lambda: make.now + dt.timedelta(hours=2))
    assert "Enter this race" in page(ann, path)


def test_a_new_heat_shows_at_once_on_a_kept_head_to_head_page(
        app: Flask, session: Session, make: Factory) -> None:
    duel = make.race(session, format="head-to-head", seed=7, name="Duel")
    duel.status = RaceStatus.OPEN
    entries = [make.entry(session, duel, make.racer(session, f"r{k}")) for k in range(3)]
    h2h.create_heats(session, duel, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                     [(entries[0].id, entries[1].id)], make.now)
    session.commit()
    ann, _ = _signed_in(app, session, make, "ann")
    path = f"/races/{duel.id}"
    page(ann, path)
    page(ann, path)
    with _renders(app) as rendered:
        assert page(ann, path).count('<li class="heat" data-heat=') == 1
    assert rendered == []
    h2h.create_heats(session, duel, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 2,
                     [(entries[1].id, entries[2].id)], make.now)
    session.commit()
    for _ in range(3):
        assert page(ann, path).count('<li class="heat" data-heat=') == 2
