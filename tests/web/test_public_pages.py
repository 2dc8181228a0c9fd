"""Public pages: home, leagues list, league, season and racer profile, for every kind of
viewer; private leagues stay hidden, unlisted ones stay unlisted, user text is escaped."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.errors import InvalidInput
from league.models import EvaluationJob, JobKind, JobStatus, League, RaceStatus, Season, User
from league.rules import leagues, seasons

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

DAY = dt.timedelta(days=1)


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    """GET ``path``, check the status and that the page has no inline script or style."""
    r = client.get(path)
    assert r.status_code == status, (path, r.status_code)
    html = r.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert " style=" not in html and " onclick=" not in html
    return html


def _member(session: Session, league: League, user: User, division: str | None = None) -> None:
    m = leagues.join_league(session, league, user, league.invite_code)
    if division is not None:
        m.division_id = next(d.id for d in league.divisions if d.name == division)
    session.flush()


def _season(session: Session, make: Factory, league: League, **kw: Any) -> Season:
    return leagues.create_season(session, league, make.organizer(session, league),
                                 kw.pop("name", "Spring"), make.now - 30 * DAY,
                                 make.now + 30 * DAY, **kw)


# ------------------------------------------------------------------ home and leagues list

def test_home_lists_open_live_and_recent_races(client: FlaskClient, session: Session,
                                               make: Factory) -> None:
    public = make.league(session, slug="open-club", name="Open Club")
    secret = make.league(session, slug="secret-club", name="Secret Club",
                         visibility="private")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    race = make.race(session, public, name="Sunday Sprint", opens_at=now - DAY,
                     closes_at=now + DAY)
    race.status = RaceStatus.OPEN
    hidden = make.race(session, secret, name="Hidden Cup", opens_at=now - DAY,
                       closes_at=now + DAY)
    hidden.status = RaceStatus.OPEN
    ann = make.racer(session, "ann")
    make.result(session, make.entry(session, race, ann), time_s=61.5)
    queued = make.entry(session, race, make.racer(session, "bob"))
    session.add(EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=queued.id,
                              status=JobStatus.RUNNING))
    session.commit()
    html = page(client, "/")
    assert html.count("Sunday Sprint") >= 3  # open, racing now, recent results
    assert "Hidden Cup" not in html and "Secret Club" not in html
    assert ">ann</a>" in html and "1:01.500" in html
    assert "How to take part" in html and 'href="/signup"' in html
    assert 'href="/leagues"' in html and 'href="/tracks"' in html


def test_leagues_list_paginates_and_hides_unlisted_and_private(
        client: FlaskClient, session: Session, make: Factory,
        login: Any) -> None:
    organizer = make.user(session, "org", "organizer")
    for n in range(23):
        make.league(session, organizer, slug=f"club-{n:02d}", name=f"Club {n:02d}")
    make.league(session, organizer, slug="quiet", name="Quiet Club", visibility="unlisted")
    private = make.league(session, organizer, slug="inner", name="Inner Circle",
                          visibility="private")
    member = make.racer(session, "mia")
    _member(session, private, member)
    session.commit()
    first = page(client, "/leagues")
    assert len(re.findall(r'<li class="card">', first)) == 20
    assert 'href="/leagues?page=2"' in first and "Page 1 of 2" in first
    second = page(client, "/leagues?page=2")
    names = set(re.findall(r">(Club \d\d)</a>", first + second))
    assert len(names) == 23
    assert "Quiet Club" not in first + second and "Inner Circle" not in first + second
    login(client, member)  # members see their private league listed
    assert "Inner Circle" in page(client, "/leagues")


# ------------------------------------------------------------------ league page

@pytest.fixture
def club(session: Session, make: Factory) -> dict[str, Any]:
    """A public league with a season of two closed races, a member and an outsider."""
    league = make.league(session, slug="club", name="The Club",
                         description="Line one\nLine <b>two</b>")
    season = _season(session, make, league, points_table=[10, 6, 4], promote=1, relegate=1)
    old = leagues.create_season(session, league, make.organizer(session, league), "Winter",
                                make.now - 90 * DAY, make.now - 60 * DAY)
    racers = {}
    for name, division in (("ann", "Pro"), ("bob", "Pro"), ("cy", "Rookie"), ("dan", "Rookie")):
        racers[name] = make.racer(session, name)
        _member(session, league, racers[name], division)
    for n, times in enumerate(({"ann": 30.0, "bob": 31.0, "cy": 29.0, "dan": 40.0},
                               {"ann": 33.0, "bob": 32.0, "cy": 35.0, "dan": 34.0}), start=1):
        race = make.race(session, league, season=season, name=f"Round {n}")
        for name, time_s in times.items():
            make.result(session, make.entry(session, race, racers[name]), time_s=time_s)
        seasons.close_race(session, race, make.now + n * DAY)
    season.status = "active"
    outsider = make.racer(session, "olga")
    session.commit()
    return {"league": league, "season": season, "old": old, "racers": racers,
            "outsider": outsider, "organizer": make.organizer(session, league)}


def test_league_page_shows_divisions_standings_races_and_seasons(
        client: FlaskClient, club: dict[str, Any]) -> None:
    html = page(client, "/leagues/club")
    assert "The Club" in html and '<p class="description">Line one\nLine &lt;b&gt;two&lt;/b&gt;' \
        in html
    assert re.search(r'<ol class="divisions"><li>Pro</li><li>Rookie</li></ol>', html)
    season = club["season"]
    assert f'href="/leagues/club/seasons/{season.id}">Spring</a>' in html
    pro = html[html.index("<h3>Pro</h3>"):html.index("<h3>Rookie</h3>")]
    # ann 10 + 6, bob 6 + 10: a win each, both at 16 after round 2; the earlier sign-up leads
    rows = re.findall(r'<a href="/racers/(\w+)">\w+</a></td><td>(\d+)</td>', pro)
    assert rows == [("ann", "16"), ("bob", "16")]
    assert "↓ relegation" in pro and "↑ promotion" not in pro  # the top division: no promotion
    rookie = html[html.index("<h3>Rookie</h3>"):]
    assert "↑ promotion" in rookie
    assert "Round 1" in html and "Round 2" in html
    assert f'href="/leagues/club/seasons/{club["old"].id}">Winter</a>' in html


def test_league_page_per_viewer(client: FlaskClient, club: dict[str, Any],
                                login: Any) -> None:
    anonymous = page(client, "/leagues/club")
    assert "to join." in anonymous and "/organize/join/club" not in anonymous
    assert "/organize/leagues/club" not in anonymous
    login(client, club["outsider"])
    outsider = page(client, "/leagues/club")
    assert 'href="/organize/join/club"' in outsider and "Manage" not in outsider
    login(client, club["racers"]["ann"])
    member = page(client, "/leagues/club")
    assert "You are a member" in member and "/organize/join/club" not in member
    login(client, club["organizer"])
    organizer = page(client, "/leagues/club")
    assert 'href="/organize/leagues/club"' in organizer and ">Manage</a>" in organizer


def test_season_page_rules_and_standings(client: FlaskClient, club: dict[str, Any],
                                         session: Session, make: Factory) -> None:
    season = club["season"]
    html = page(client, f"/leagues/club/seasons/{season.id}")
    assert "Spring" in html and "Round 1" in html and "Round 2" in html
    assert "1st 10, 2nd 6, 3rd 4." in html
    assert "the top 1" in html and "the bottom 1" in html
    assert "Ties are broken by wins" in html
    assert "<h3>Pro</h3>" in html and "<h3>Rookie</h3>" in html
    other = make.league(session, slug="other")
    foreign = _season(session, make, other)
    session.commit()
    page(client, f"/leagues/club/seasons/{foreign.id}", 404)
    page(client, "/leagues/club/seasons/99999", 404)
    page(client, f"/leagues/other/seasons/{foreign.id}")


def test_percent_movement_in_words(client: FlaskClient, session: Session,
                                   make: Factory) -> None:
    league = make.league(session)
    season = _season(session, make, league, promote=10, relegate=20, movement_in_percent=True)
    session.commit()
    html = page(client, f"/leagues/{league.slug}/seasons/{season.id}")
    assert "the top 10%" in html and "(rounded down)" in html and "bottom 20%" in html


def test_private_league_is_a_404_for_outsiders(client: FlaskClient, session: Session,
                                              make: Factory, login: Any) -> None:
    league = make.league(session, slug="inner", name="Inner Circle", visibility="private")
    season = _season(session, make, league)
    race = make.race(session, league, season=season, name="Secret Race")
    member, outsider = make.racer(session, "mia"), make.racer(session, "olga")
    _member(session, league, member)
    make.result(session, make.entry(session, race, member), time_s=30.0)
    session.commit()
    paths = ["/leagues/inner", f"/leagues/inner/seasons/{season.id}", f"/races/{race.id}"]
    for who in (None, outsider):
        if who is not None:
            login(client, who)
        for path in paths:
            page(client, path, 404)
        profile = page(client, "/racers/mia")
        assert "Inner Circle" not in profile and "Secret Race" not in profile
    login(client, member)
    for path in paths:
        page(client, path)
    profile = page(client, "/racers/mia")
    assert "Inner Circle" in profile and "Secret Race" in profile


def test_unlisted_league_is_visible_by_link_only(client: FlaskClient, session: Session,
                                                make: Factory) -> None:
    league = make.league(session, slug="quiet", name="Quiet Club", visibility="unlisted")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    race = make.race(session, league, name="Quiet Race", opens_at=now - DAY,
                     closes_at=now + DAY)
    race.status = RaceStatus.OPEN
    ann = make.racer(session, "ann")
    make.result(session, make.entry(session, race, ann), time_s=30.0)
    session.commit()
    assert "Quiet Club" in page(client, "/leagues/quiet")
    assert "Quiet Race" in page(client, f"/races/{race.id}")
    for path in ("/leagues", "/", "/racers/ann", "/tracks/oval"):
        html = page(client, path)
        assert "Quiet Club" not in html and "Quiet Race" not in html


def test_user_text_is_escaped_and_invisible_characters_refused(
        client: FlaskClient, session: Session, make: Factory) -> None:
    league = make.league(session, slug="xss", name="<script>alert(1)</script>",
                         description="hi\u202e<img src=x onerror=alert(2)>")
    make.race(session, league, name="<b>bold</b> race")
    session.commit()
    html = page(client, "/leagues/xss")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "\u202e" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; race" in html and "<b>bold</b>" not in html
    organizer = make.organizer(session, league)
    for name in ("evil\u202eeman", "zero\u200bwidth"):
        with pytest.raises(InvalidInput, match="invisible or direction-changing"):
            make.league(session, organizer, slug="tricky", name=name)


def test_unknown_pages_are_404(client: FlaskClient) -> None:
    for path in ("/leagues/nope", "/leagues/nope/seasons/1", "/racers/nobody", "/races/12345"):
        page(client, path, 404)


# ------------------------------------------------------------------ racer profile

def test_racer_profile(client: FlaskClient, club: dict[str, Any], session: Session,
                       make: Factory) -> None:
    html = page(client, "/racers/ann")
    assert "<h1>ann</h1>" in html
    assert "Round 1" in html and "Round 2" in html and "The Club" in html
    # a race's leaderboard spans its divisions: in round 1 cy (29 s) beat ann (30 s)
    round1 = html[html.index("Round 1"):html.index("Round 1") + 900]
    assert '<td class="num">2</td>' in round1 and "0:30.000" in round1
    assert re.search(r'Spring</a></td>\s*<td><a href="/leagues/club">The Club</a></td>\s*'
                     r'<td class="num">16</td><td class="num">2</td>', html)
    assert "/evaluations/" in html  # replay links
    assert re.search(r'The Club</a> <span class="muted">· Pro</span>', html)
    assert "<h1>ann</h1>" in page(client, "/racers/ANN")  # names are case-insensitive
