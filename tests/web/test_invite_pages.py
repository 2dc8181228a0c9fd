"""Membership on the site: removal changes the invite link of a league joined by invite (the
organizer is told and sees the new link), the old link then says it is out of date; an
unlisted league is open to look at but joined and raced by members only."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.db import READ_ONLY
from league.models import Entry, League, RaceStatus, User
from league.rules import leagues
from tests.web.api_support import ApiClient, error_of, token_for
from tests.web.garage_support import open_race, upload


def _fresh(session: Session) -> Session:
    """A new read-only transaction: it sees what the app committed and, on SQLite, leaves
    the write lock to the app."""
    session.rollback()
    session.connection(execution_options={READ_ONLY: True})
    return session


def _code(session: Session, slug: str) -> str:
    code = _fresh(session).scalar(sa.select(League.invite_code).where(League.slug == slug))
    assert code is not None
    return code


def _flashes(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'<p class="flash[^"]*" role="status">([^<]*)</p>',
                                            html)]


def _setup(session: Session, make: Any, visibility: str) -> tuple[League, User, User]:
    """``club`` (``visibility``), its organizer, and ann who joined by the invite link."""
    league = make.league(session, visibility=visibility)
    ann = make.user(session, "ann")
    leagues.join_league(session, league, ann, league.invite_code)
    org = make.organizer(session, league)
    session.commit()
    _fresh(session)
    return league, org, ann


@pytest.mark.parametrize("visibility, status, message", [
    ("private", 404, "the invite link is out of date: ask the league's organizers"),
    ("unlisted", 403, "this league is unlisted: joining needs its current invite link"),
])
def test_a_removed_member_cannot_walk_back_in_with_the_old_link(
        client: FlaskClient, make: Any, session: Session, login: Any, visibility: str,
        status: int, message: str) -> None:
    league, org, ann = _setup(session, make, visibility)
    old = league.invite_code
    login(client, org)
    r = client.post(f"/organize/leagues/club/members/{ann.id}/remove", follow_redirects=True)
    assert r.status_code == 200
    new = _code(session, "club")
    assert new != old
    link = f"http://localhost/organize/join/club?code={new}"
    html = r.get_data(as_text=True)
    assert _flashes(html) == [
        "ann is no longer a member of Club.",
        "The invite link has changed, so the old one cannot bring them back; share the new "
        f"link with racers still to join: {link}"]
    assert f'value="{link}"' in html  # the invite section shows the new link
    assert "Removing a member also changes the" in html

    login(client, ann)
    for r in (client.get(f"/organize/join/club?code={old}"),
              client.post(f"/organize/join/club?code={old}", data={"code": old}),
              client.post("/organize/join/club", data={"code": old})):
        assert r.status_code == status
        assert message in unescape(r.get_data(as_text=True))
    assert leagues.membership(_fresh(session), league, ann) is None
    assert client.post(f"/organize/join/club?code={new}").status_code == 302  # let back in
    assert leagues.membership(_fresh(session), league, ann) is not None


def test_removal_from_a_public_league_keeps_its_link(client: FlaskClient, make: Any,
                                                     session: Session, login: Any) -> None:
    league, org, ann = _setup(session, make, "public")
    old = league.invite_code
    login(client, org)
    r = client.post(f"/organize/leagues/club/members/{ann.id}/remove", follow_redirects=True)
    assert _flashes(r.get_data(as_text=True)) == ["ann is no longer a member of Club."]
    assert _code(session, "club") == old


def test_an_unlisted_league_is_seen_by_anyone_but_joined_with_the_code(
        client: FlaskClient, make: Any, session: Session, login: Any) -> None:
    league = make.league(session, slug="quiet", name="Quiet Club", visibility="unlisted")
    race = open_race(session, make, league, name="Quiet Race")
    ann = make.user(session, "ann")
    session.commit()
    _fresh(session)
    login(client, ann)
    html = client.get("/leagues/quiet").get_data(as_text=True)
    assert "Quiet Club" in html and "Joining needs the invite link" in html
    assert "/organize/join/quiet" not in html  # no join button without the code
    assert "Quiet Race" in client.get(f"/races/{race.id}").get_data(as_text=True)
    for r in (client.get("/organize/join/quiet"), client.post("/organize/join/quiet"),
              client.post("/organize/join/quiet", data={"code": "guess"})):
        assert r.status_code == 403
        assert "joining needs its current invite link" in unescape(r.get_data(as_text=True))
    assert leagues.membership(_fresh(session), league, ann) is None
    page = client.get(f"/organize/join/quiet?code={league.invite_code}")
    assert page.status_code == 200 and "Join Quiet Club" in page.get_data(as_text=True)
    assert client.post("/organize/join/quiet", data={"code": league.invite_code}
                       ).status_code == 302
    assert leagues.membership(_fresh(session), league, ann) is not None


def test_a_public_league_page_offers_to_join(client: FlaskClient, make: Any,
                                             session: Session, login: Any) -> None:
    make.league(session)
    ann = make.user(session, "ann")
    session.commit()
    login(client, ann)
    html = client.get("/leagues/club").get_data(as_text=True)
    assert 'href="/organize/join/club"' in html and "Joining needs" not in html


def test_non_members_cannot_enter_an_unlisted_leagues_race(
        client: FlaskClient, app: Any, make: Any, session: Session, login: Any) -> None:
    league = make.league(session, slug="quiet", visibility="unlisted")
    race = open_race(session, make, league)
    out, member = make.user(session, "out"), make.user(session, "member")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    login(client, out)
    r = upload(client, race.id, make.policy())
    assert r.status_code == 400
    assert "only members enter the races of this unlisted league" in unescape(
        r.get_data(as_text=True))
    api = ApiClient(app.test_client())
    assert error_of(api.upload(race.id, make.policy(), token_for(session, out))) == (
        403, "forbidden", "only members enter the races of this unlisted league: join it with "
        "the invite link from its organizers first")
    assert _fresh(session).scalar(sa.select(sa.func.count(Entry.id))) == 0
    login(client, member)
    assert upload(client, race.id, make.policy()).status_code == 302
    assert _fresh(session).scalar(sa.select(sa.func.count(Entry.id))) == 1


def test_the_race_page_says_who_may_enter(client: FlaskClient, make: Any,
                                          session: Session, login: Any) -> None:
    """A signed-in non-member is told why there is no "Enter this race", before uploading."""
    league = make.league(session, slug="quiet", visibility="unlisted")
    race = open_race(session, make, league)
    race.status = RaceStatus.OPEN
    member = make.user(session, "member")
    leagues.join_league(session, league, member, league.invite_code)
    make.user(session, "out")
    session.commit()
    login(client, _fresh(session).scalar(sa.select(User).where(User.name == "out")))
    page = unescape(client.get(f"/races/{race.id}").get_data(as_text=True))
    assert "Enter this race" not in page
    assert "Only members enter the races of this unlisted league: join it with the invite " \
           "link from its organizers first." in page
    login(client, _fresh(session).scalar(sa.select(User).where(User.name == "member")))
    page = unescape(client.get(f"/races/{race.id}").get_data(as_text=True))
    assert "Enter this race" in page and "Only members enter" not in page
