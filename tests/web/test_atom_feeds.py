"""The Atom feeds: a league's latest news and a race's leaderboard changes, checked against
RFC 4287's required elements, the data they list, the league's visibility and the race's
secrets (a mystery track's name and a secret seed never appear)."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import RaceStatus, utcnow
from league.rules import leagues

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

A = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SEED = 918273645


def atom(client: FlaskClient, url: str) -> ET.Element:
    """The feed at ``url``, checked for what RFC 4287 requires of a feed and its entries."""
    answer = client.get(url)
    assert answer.status_code == 200, answer.status_code
    assert answer.mimetype == "application/atom+xml"
    feed = ET.fromstring(answer.data)
    assert feed.tag == f"{A}feed"
    for parent in (feed, *feed.findall(f"{A}entry")):
        for tag in ("id", "title", "updated"):
            found = parent.findall(f"{A}{tag}")
            assert len(found) == 1 and (found[0].text or "").strip(), (parent.tag, tag)
        assert RFC3339.match(parent.findtext(f"{A}updated") or "")
        assert parent.find(f"{A}link[@rel='alternate']") is not None
    assert feed.find(f"{A}author/{A}name") is not None  # entries inherit the feed's author
    self_link = feed.find(f"{A}link[@rel='self']")
    assert self_link is not None and self_link.get("href", "").endswith(url)
    ids = [e.findtext(f"{A}id") for e in feed.findall(f"{A}entry")]
    assert len(ids) == len(set(ids))
    return feed


def titles(feed: ET.Element) -> list[str]:
    return [e.findtext(f"{A}title") or "" for e in feed.findall(f"{A}entry")]


def test_a_league_feed_lists_races_and_results(client: FlaskClient, session: Session,
                                               make: Factory) -> None:
    league = make.league(session, slug="harbour", name="Harbour League")
    race = make.race(session, league, name="Dock Dash")
    race.status = RaceStatus.OPEN
    make.race(session, league, name="Later", opens_at=utcnow() + dt.timedelta(days=3),
              closes_at=utcnow() + dt.timedelta(days=4))
    ada = make.racer(session, "ada")
    make.result(session, make.entry(session, race, ada), time_s=41.5)
    session.commit()
    feed = atom(client, "/leagues/harbour/feed.atom")
    assert feed.findtext(f"{A}title") == "Harbour League · Paddock"
    assert titles(feed) == ["ada in Dock Dash: finished", "Dock Dash is open"]
    entry = feed.findall(f"{A}entry")[0]
    assert "41.500 s" in (entry.findtext(f"{A}summary") or "")
    link = entry.find(f"{A}link")
    assert link is not None and link.get("href", "").endswith(f"/races/{race.id}")


def test_a_race_feed_lists_leaderboard_changes(client: FlaskClient, session: Session,
                                               make: Factory) -> None:
    race = make.race(session, name="Dock Dash")
    race.status = RaceStatus.OPEN
    ada, bo, cy = (make.racer(session, n) for n in ("ada", "bo", "cy"))
    make.result(session, make.entry(session, race, ada), time_s=40.0)
    make.result(session, make.entry(session, race, bo), time_s=45.0)
    make.result(session, make.entry(session, race, cy), time_s=38.0)
    make.result(session, make.entry(session, race, bo), time_s=50.0)  # no better: no change
    make.result(session, make.entry(session, race, bo), time_s=None, status="dnf", laps=0)
    session.commit()
    feed = atom(client, f"/races/{race.id}/feed.atom")
    assert [t for t in titles(feed) if "open" not in t] == [
        "cy takes the lead in Dock Dash", "bo is 2nd in Dock Dash",
        "ada takes the lead in Dock Dash"]
    summary = feed.findall(f"{A}entry")[0].findtext(f"{A}summary") or ""
    assert "ahead of ada" in summary and "38.000 s" in summary


def test_feeds_keep_a_private_league_and_a_race_s_secrets(client: FlaskClient,
                                                          session: Session,
                                                          make: Factory) -> None:
    private = make.league(session, slug="hidden", visibility="private")
    hidden_race = make.race(session, private, name="Shh")
    race = make.race(session, name="Mystery Mile", track="royal-park", mystery_track=True,
                     seed=SEED, seed_public=False)
    race.status = RaceStatus.OPEN
    make.result(session, make.entry(session, race, make.racer(session, "ada")), time_s=40.0)
    session.commit()
    assert client.get("/leagues/hidden/feed.atom").status_code == 404
    assert client.get(f"/races/{hidden_race.id}/feed.atom").status_code == 404
    for url in (f"/races/{race.id}/feed.atom", "/leagues/club/feed.atom"):
        text = client.get(url).get_data(as_text=True)
        assert "Mystery Mile" in text
        assert "royal-park" not in text.lower() and "royal park" not in text.lower()
        assert str(SEED) not in text


def test_a_member_reads_the_private_league_s_feed(client: FlaskClient, session: Session,
                                                  make: Factory, login: object) -> None:
    private = make.league(session, slug="hidden", visibility="private")
    ada = make.user(session, "ada")
    leagues.join_league(session, private, ada, private.invite_code)
    session.commit()
    login(client, ada)  # type: ignore[operator]
    atom(client, "/leagues/hidden/feed.atom")


def test_the_pages_point_at_their_feeds(client: FlaskClient, session: Session,
                                        make: Factory) -> None:
    race = make.race(session, name="Dock Dash")
    race.status = RaceStatus.OPEN
    session.commit()
    league_page = client.get("/leagues/club").get_data(as_text=True)
    assert ('<link rel="alternate" type="application/atom+xml"' in league_page
            and 'href="/leagues/club/feed.atom"' in league_page)
    race_page = client.get(f"/races/{race.id}").get_data(as_text=True)
    assert f'href="/races/{race.id}/feed.atom"' in race_page
