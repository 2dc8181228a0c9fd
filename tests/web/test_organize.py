"""Organizer pages for leagues: create, settings, invite link, divisions, seasons, members,
joining, and who may open any organize page at all."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import Division, League, Membership, Season, User
from league.rules import leagues
from tests.support.pages import commit, field_errors, fresh


def _errors(html: str) -> list[str]:
    """The messages shown next to fields (and above forms)."""
    return [unescape(e) for e in re.findall(r'<p class="error" role="alert">([^<]*)</p>', html)]


def _league(session: Session, slug: str) -> League | None:
    return fresh(session).scalar(sa.select(League).where(League.slug == slug))


@pytest.fixture
def org_client(client: FlaskClient, make: Any, session: Session, login: Any) -> FlaskClient:
    """A client signed in as the organizer of league ``club`` (public, divisions Pro and
    Rookie)."""
    league = make.league(session)
    org = make.organizer(session, league)
    commit(session)
    return login(client, org)


# ------------------------------------------------------------------ create a league

def test_create_a_league(client, make, session, login):
    login(client, make.user(session, "olga", "organizer"))
    commit(session)
    page = client.get("/organize/leagues/new").get_data(as_text=True)
    assert 'name="slug"' in page and "Division 1</textarea>" in page
    assert "js/organize.js" in page
    r = client.post("/organize/leagues/new", data={
        "name": "Night Racing Club", "slug": "", "description": "Fast <b>cars</b>",
        "visibility": "private", "divisions": "Gold\n\n Silver \nBronze"})
    assert r.status_code == 302 and r.headers["Location"] == "/organize/leagues/night-racing-club"
    league = _league(session, "night-racing-club")
    assert league is not None and league.visibility == "private"
    assert [d.name for d in league.divisions] == ["Gold", "Silver", "Bronze"]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Fast &lt;b&gt;cars&lt;/b&gt;" in page and "<b>cars" not in page
    assert "League Night Racing Club created" in page


@pytest.mark.parametrize("data, field, message", [
    ({"slug": "club"}, "slug", "the slug 'club' is taken"),
    ({"slug": "No Spaces"}, "slug", "a slug is 3-64 lowercase letters"),
    ({"name": ""}, "name", "This field is required."),
    ({"name": "a\u202eb"}, "name", "invisible or direction-changing"),
    ({"divisions": "\n \n"}, "divisions", "a league needs at least one division"),
    ({"visibility": "secret"}, "visibility", "Not a valid choice."),
])
def test_create_a_league_refuses_bad_input(org_client, session, data, field, message):
    count = fresh(session).scalar(sa.select(sa.func.count(League.id)))
    form = {"name": "New League", "slug": "new-league", "description": "",
            "visibility": "public", "divisions": "Division 1", **data}
    r = org_client.post("/organize/leagues/new", data=form)
    assert r.status_code == 200
    assert any(message in e for e in field_errors(r.get_data(as_text=True), field))
    assert fresh(session).scalar(sa.select(sa.func.count(League.id))) == count


def test_only_organizers_create_leagues(client, make, session, login):
    login(client, make.user(session, "rita"))
    commit(session)
    for r in (client.get("/organize/leagues/new"),
              client.post("/organize/leagues/new", data={"name": "Mine", "slug": "mine"})):
        assert r.status_code == 403
        assert "Only organizers can create leagues" in r.get_data(as_text=True)
    assert _league(session, "mine") is None


# ------------------------------------------------------------------ who may manage

def _organize_urls(session: Session, make: Any, league: League) -> list[tuple[str, str]]:
    """Every manage URL of ``league`` (with a division, a member, a race and an entry)."""
    race = make.race(session, league)
    ann = make.user(session, "ann")
    leagues.join_league(session, league, ann, league.invite_code)
    entry = make.entry(session, race, ann)
    base = f"/organize/leagues/{league.slug}"
    div = league.divisions[0].id
    return [("GET", base), ("POST", base), ("POST", f"{base}/invite"),
            ("POST", f"{base}/divisions"), ("POST", f"{base}/divisions/{div}"),
            ("GET", f"{base}/seasons/new"), ("POST", f"{base}/seasons/new"),
            ("POST", f"{base}/members/{ann.id}"), ("POST", f"{base}/members/{ann.id}/remove"),
            ("GET", f"{base}/races/new"), ("POST", f"{base}/races/new"),
            ("GET", f"/organize/races/{race.id}"), ("GET", f"/organize/races/{race.id}/edit"),
            ("POST", f"/organize/races/{race.id}/edit"),
            ("POST", f"/organize/races/{race.id}/close"),
            ("POST", f"/organize/entries/{entry.id}/rerun"),
            ("POST", f"/organize/entries/{entry.id}/disqualify")]


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_nobody_but_the_leagues_organizers_may_manage_it(client, make, session, login,
                                                         visibility):
    league = make.league(session, visibility=visibility)
    urls = _organize_urls(session, make, league)
    other_org = make.user(session, "otto", "organizer")
    make.league(session, other_org, slug="ottos")  # organizes another league
    racer = make.user(session, "rita")
    leagues.join_league(session, league, racer, league.invite_code)  # a member, not organizer
    admin = make.user(session, "adam", "admin")
    commit(session)
    for method, url in urls:  # anonymous: to the login page
        r = client.open(url, method=method)
        assert r.status_code == 302 and "/login" in r.headers["Location"], url
    for user in (other_org, racer):
        login(client, user)
        for method, url in urls:
            assert client.open(url, method=method).status_code == 404, (user.name, url)
    login(client, admin)
    for method, url in urls:
        if method == "GET":
            assert client.get(url).status_code == 200, url
    fresh(session)
    assert session.scalar(sa.select(sa.func.count(Membership.id)).where(
        Membership.league_id == league.id)) == 3  # nothing was removed
    assert _league(session, league.slug).invite_code == league.invite_code  # type: ignore[union-attr]


def test_forms_refuse_posts_without_the_csrf_token(make_app, make, session, login):
    league = make.league(session)
    org = make.organizer(session, league)
    commit(session)
    client = login(make_app(WTF_CSRF_ENABLED=True).test_client(), org)
    data = {"name": "Renamed", "description": "", "visibility": "public"}
    r = client.post("/organize/leagues/club", data=data)
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)
    r = client.post("/organize/leagues/club/invite")
    assert r.status_code == 400
    page = client.get("/organize/leagues/club").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    r = client.post("/organize/leagues/club", data={**data, "csrf_token": token.group(1)})
    assert r.status_code == 302
    assert _league(session, "club").name == "Renamed"  # type: ignore[union-attr]


# ------------------------------------------------------------------ manage a league

def test_manage_page_shows_every_section(org_client, make, session):
    league = _league(session, "club")
    assert league is not None
    make.race(session, league, name="Sunday Sprint")
    leagues.create_season(session, league, make.organizer(session, league), "Spring",
                          make.now, make.now + dt.timedelta(days=7))
    commit(session)
    page = org_client.get("/organize/leagues/club").get_data(as_text=True)
    for text in ("Manage Club", "Settings", "Divisions", "Pro", "Rookie", "Spring",
                 "Sunday Sprint", "Schedule a race", "New season", "org-club",
                 "last organizer", 'href="/leagues/club"'):
        assert text in page, text
    assert 'id="invite"' not in page  # a public league needs no invite link
    assert re.search(r'href="/organize/races/\d+">Sunday Sprint', page)


def test_edit_league_settings(org_client, session):
    r = org_client.post("/organize/leagues/club", data={
        "name": "Club Deluxe", "description": "Line one\nLine two", "visibility": "unlisted"})
    assert r.status_code == 302
    league = _league(session, "club")
    assert league is not None
    assert (league.name, league.description, league.visibility) == \
        ("Club Deluxe", "Line one\nLine two", "unlisted")
    page = org_client.get("/organize/leagues/club").get_data(as_text=True)
    assert "Anyone with this link can see and join" in page
    r = org_client.post("/organize/leagues/club", data={
        "name": "x\u200bz", "description": "", "visibility": "public"})
    assert r.status_code == 200
    assert any("invisible" in e for e in field_errors(r.get_data(as_text=True), "name"))
    assert _league(session, "club").name == "Club Deluxe"  # type: ignore[union-attr]


def test_invite_link_and_reset(client, make, session, login):
    league = make.league(session, visibility="private")
    org = make.organizer(session, league)
    ann = make.user(session, "ann")
    commit(session)
    login(client, org)
    page = client.get("/organize/leagues/club").get_data(as_text=True)
    old = league.invite_code
    link = f"http://localhost/organize/join/club?code={old}"
    assert f'value="{link}"' in page
    assert client.post("/organize/leagues/club/invite").status_code == 302
    new = _league(session, "club").invite_code  # type: ignore[union-attr]
    assert new != old
    login(client, ann)
    r = client.get(f"/organize/join/club?code={old}")
    assert r.status_code == 404 and "invite link is out of date" in r.get_data(as_text=True)
    r = client.post(f"/organize/join/club?code={old}", data={"code": old})
    assert r.status_code == 404
    r = client.get(f"/organize/join/club?code={new}")
    assert r.status_code == 200 and "Join Club" in r.get_data(as_text=True)
    r = client.post(f"/organize/join/club?code={new}")
    assert r.status_code == 302 and r.headers["Location"] == "/leagues/club"
    assert leagues.membership(fresh(session), league, ann) is not None


def test_join_public_league_without_code_and_members_are_sent_on(client, make, session,
                                                                  login):
    league = make.league(session)
    ann = make.user(session, "ann")
    commit(session)
    login(client, ann)
    page = client.get("/organize/join/club").get_data(as_text=True)
    assert "Join Club" in page and 'action="/organize/join/club"' in page
    assert client.post("/organize/join/club").status_code == 302
    m = leagues.membership(fresh(session), league, ann)
    assert m is not None and m.role == "member" and m.division_id == league.divisions[-1].id
    r = client.get("/organize/join/club")  # already a member
    assert r.status_code == 302 and r.headers["Location"] == "/leagues/club"
    assert client.get("/organize/join/nowhere").status_code == 404
    client.post("/logout")
    r = client.get("/organize/join/club")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_join_a_private_league_with_the_code_as_form_field(client, make, session, login):
    league = make.league(session, visibility="private")
    ann = make.user(session, "ann")
    commit(session)
    login(client, ann)
    assert client.get("/organize/join/club").status_code == 404  # no code, no league
    page = client.get(f"/organize/join/club?code={league.invite_code}").get_data(as_text=True)
    assert f'value="{league.invite_code}"' in page  # carried by the form
    r = client.post("/organize/join/club", data={"code": league.invite_code})
    assert r.status_code == 302
    assert leagues.membership(fresh(session), league, ann) is not None


def test_add_and_rename_divisions(org_client, session):
    r = org_client.post("/organize/leagues/club/divisions", data={"name": "Amateur"})
    assert r.status_code == 302
    league = _league(session, "club")
    assert league is not None
    assert [(d.name, d.tier) for d in league.divisions] == \
        [("Pro", 1), ("Rookie", 2), ("Amateur", 3)]
    pro = league.divisions[0].id
    r = org_client.post(f"/organize/leagues/club/divisions/{pro}", data={f"div{pro}-name": "Elite"})
    assert r.status_code == 302
    r = org_client.post(f"/organize/leagues/club/divisions/{pro}", data={f"div{pro}-name": " "})
    assert r.status_code == 200
    assert any("a division name has 1 to 80" in e
               for e in field_errors(r.get_data(as_text=True), f"div{pro}-name"))
    names = fresh(session).scalars(sa.select(Division.name).where(
        Division.league_id == league.id).order_by(Division.tier)).all()
    assert names == ["Elite", "Rookie", "Amateur"]
    assert org_client.post("/organize/leagues/club/divisions/999999",
                           data={"div999999-name": "X"}).status_code == 404


# ------------------------------------------------------------------ seasons

SEASON = {"name": "2026 Spring", "starts_at": "2026-03-01T00:00", "ends_at": "2026-06-01T00:00",
          "points_table": "10, 6,4 ,1", "promote": "1", "relegate": "0", "movement": "racers"}


def test_create_a_season(org_client, session):
    page = org_client.get("/organize/leagues/club/seasons/new").get_data(as_text=True)
    assert 'value="25, 18, 15, 12, 10, 8, 6, 4, 2, 1"' in page
    assert 'type="datetime-local"' in page
    r = org_client.post("/organize/leagues/club/seasons/new", data=SEASON)
    assert r.status_code == 302 and r.headers["Location"].endswith("/organize/leagues/club#seasons")
    season = fresh(session).scalar(sa.select(Season))
    assert season is not None
    assert (season.name, season.points_table, season.promote, season.relegate,
            season.movement_in_percent) == ("2026 Spring", [10, 6, 4, 1], 1, 0, False)
    assert season.starts_at.isoformat() == "2026-03-01T00:00:00"


@pytest.mark.parametrize("data, field, message", [
    ({"ends_at": "2026-02-01T00:00"}, "ends_at", "a season must end after it starts"),
    ({"ends_at": "next week"}, "ends_at", "a date and time in UTC"),
    ({"points_table": "10, 12, 4"}, "points_table", "highest first"),
    ({"points_table": "ten, 5"}, "points_table", "whole numbers >= 0 separated by commas"),
    ({"points_table": "5, -1"}, "points_table", "whole numbers >= 0"),
    ({"promote": "-1"}, "promote", "Number must be between 0 and 1000"),
    ({"relegate": "120", "movement": "percent"}, "relegate", "at most 100 percent"),
    ({"promote": ""}, "promote", "a whole number, 0 or more"),
])
def test_create_a_season_refuses_bad_input(org_client, session, data, field, message):
    r = org_client.post("/organize/leagues/club/seasons/new", data={**SEASON, **data})
    assert r.status_code == 200
    assert any(message in e for e in field_errors(r.get_data(as_text=True), field)), \
        _errors(r.get_data(as_text=True))
    assert fresh(session).scalar(sa.select(sa.func.count(Season.id))) == 0


# ------------------------------------------------------------------ members

def _member_setup(session: Session, make: Any) -> tuple[League, User, User]:
    league = make.league(session)
    ann = make.user(session, "ann")
    leagues.join_league(session, league, ann)
    commit(session)
    return league, make.organizer(session, league), ann


def test_change_a_members_role_and_division(client, make, session, login):
    league, org, ann = _member_setup(session, make)
    login(client, org)
    page = client.get("/organize/leagues/club").get_data(as_text=True)
    assert f'id="member-{ann.id}"' in page and "(2)" in page
    pro = league.divisions[0].id
    r = client.post(f"/organize/leagues/club/members/{ann.id}",
                    data={f"m{ann.id}-role": "organizer", f"m{ann.id}-division": str(pro)})
    assert r.status_code == 302
    m = leagues.membership(fresh(session), league, ann)
    assert m is not None and (m.role, m.division_id) == ("organizer", pro)
    r = client.post(f"/organize/leagues/club/members/{ann.id}",
                    data={f"m{ann.id}-role": "member", f"m{ann.id}-division": "0"})
    m = leagues.membership(fresh(session), league, ann)
    assert m is not None and (m.role, m.division_id) == ("member", None)
    r = client.post(f"/organize/leagues/club/members/{ann.id}",
                    data={f"m{ann.id}-role": "owner", f"m{ann.id}-division": "424242"})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert field_errors(html, f"m{ann.id}-role") == ["Not a valid choice."]
    assert field_errors(html, f"m{ann.id}-division") == ["Not a valid choice."]


def test_remove_a_member_but_never_the_last_organizer(client, make, session, login):
    league, org, ann = _member_setup(session, make)
    login(client, org)
    r = client.post(f"/organize/leagues/club/members/{org.id}",
                    data={f"m{org.id}-role": "member", f"m{org.id}-division": "0"})
    assert r.status_code == 200
    assert any("at least one organizer" in e
               for e in field_errors(r.get_data(as_text=True), f"m{org.id}-role"))
    r = client.post(f"/organize/leagues/club/members/{org.id}/remove")
    assert r.status_code == 200 and "at least one organizer" in r.get_data(as_text=True)
    assert leagues.membership(fresh(session), league, org) is not None
    r = client.post(f"/organize/leagues/club/members/{ann.id}/remove")
    assert r.status_code == 302
    assert leagues.membership(fresh(session), league, ann) is None
    assert client.post(f"/organize/leagues/club/members/{ann.id}/remove").status_code == 404
    m = leagues.membership(session, league, org)
    assert m is not None and m.role == "organizer"


def test_members_are_paginated(client, make, session, login):
    league = make.league(session)
    for n in range(3):
        leagues.join_league(session, league, make.racer(session, f"racer{n}"))
    commit(session)
    login(client, make.organizer(session, league))
    page = client.get("/organize/leagues/club?per_page=2&page=2").get_data(as_text=True)
    assert "Page 2 of 2" in page and "racer1" in page and "racer2" in page
    assert "racer0" not in page and "(4)" in page
