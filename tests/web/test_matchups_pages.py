"""A racer's matchups page in a head-to-head race: record, heats, the chart's data, and 404s."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import Entry, Race, RaceStatus, User
from tests.league.test_matchups import _play_round
from tests.web.test_public_pages import page

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

MIN = dt.timedelta(minutes=1)


def _duel(session: Session, make: Factory, **kw: object) -> tuple[Race, list[Entry]]:
    """A head-to-head race of ann, bob and cy (best first), two rounds, then ann's v2."""
    race = make.race(session, format="head-to-head", seed=7, name="Duel", **kw)
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, n), make.now + k * MIN)
               for k, n in enumerate(("ann", "bob", "cy"))]
    ids = [e.id for e in entries]
    for rnd in range(2):
        _play_round(session, race, make.now + (rnd + 1) * 10 * MIN, ids)
    v2 = make.entry(session, race, entries[0].racer, make.now + 25 * MIN)
    _play_round(session, race, make.now + 30 * MIN, [v2.id, *ids[1:]])
    return race, [*entries, v2]


def _chart(html: str) -> dict[str, object]:
    found = re.search(r"data-rating-chart='([^']*)'", html)
    assert found is not None
    data: dict[str, object] = json.loads(htmllib.unescape(found.group(1)))
    return data


def test_matchups_page(client: FlaskClient, session: Session, make: Factory) -> None:
    race, _ = _duel(session, make)
    session.commit()
    html = page(client, f"/races/{race.id}/racers/ann")
    assert "ann in Duel" in html and 'src="/static/js/ratings.js"' in html
    rows = re.findall(r"<tr><td><a href=\"/races/\d+/racers/(\w+)\">\w+</a></td>\s*"
                      r"<td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", html)
    assert {name for name, _, _ in rows} <= {"bob", "cy"} and rows
    assert all(int(lost) == 0 for _, _, lost in rows)  # ann is the best: never lost
    chart = _chart(html)
    assert [p["label"] for p in chart["points"]] == ["R1", "R2", "R3"]  # type: ignore[index]
    assert chart["versions"] == [{"model": "follower v1", "point": 0},
                                 {"model": "follower v2", "point": 2}]
    assert "follower v2, entered" in html


def test_loser_sees_losses(client: FlaskClient, session: Session, make: Factory) -> None:
    race, _ = _duel(session, make)
    session.commit()
    html = page(client, f"/races/{race.id}/racers/cy")
    rows = re.findall(r"<td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", html)
    assert rows and all(int(won) == 0 and int(lost) > 0 for won, lost in rows)


def test_no_heats_yet(client: FlaskClient, session: Session, make: Factory) -> None:
    race = make.race(session, format="head-to-head", seed=7, name="Duel")
    make.entry(session, race, make.racer(session, "ann"))
    session.commit()
    html = page(client, f"/races/{race.id}/racers/ann")
    assert "No rated heats yet." in html and "ratings.js" not in html


def test_not_found(client: FlaskClient, session: Session, make: Factory) -> None:
    race, _ = _duel(session, make)
    trial = make.race(session, race.league, name="Trial")
    make.entry(session, trial, session.scalars(sa.select(User).where(User.name == "ann")).one())
    session.commit()
    page(client, f"/races/{race.id}/racers/nobody", 404)
    page(client, f"/races/{trial.id}/racers/ann", 404)  # not head-to-head
    page(client, f"/races/{race.id + 1000}/racers/ann", 404)


def test_hidden_league_answers_404(client: FlaskClient, session: Session, make: Factory,
                                   login: Callable[[FlaskClient, User], FlaskClient]) -> None:
    olga = make.user(session, "olga", "organizer")
    secret = make.league(session, olga, "secret", visibility="private")
    race, _ = _duel(session, make, league=secret)
    outsider = make.user(session, "eve")
    session.commit()
    page(client, f"/races/{race.id}/racers/ann", 404)
    login(client, outsider)
    page(client, f"/races/{race.id}/racers/ann", 404)
    login(client, olga)
    assert "ann in Duel" in page(client, f"/races/{race.id}/racers/ann")


def test_profile_shows_matchups_per_head_to_head_race(client: FlaskClient, session: Session,
                                                      make: Factory) -> None:
    race, _ = _duel(session, make)
    time_trial = make.race(session, race.league, name="Sprint")  # a time trial: no matchups
    make.result(session, make.entry(session, time_trial,
                                    session.scalars(sa.select(User).where(User.name == "cy"))
                                    .one()))
    session.commit()
    html = page(client, "/racers/cy")
    section = html[html.index('id="duels-title"'):html.index('id="heats-title"')]
    assert section.count("<article") == 1 and ">Duel</a>" in section and "Sprint" not in section
    # cy finished last in every heat: no heat won, every duel lost, opponents with records.
    summary = re.search(r"(\d+) heats? raced, 0 won\s*· against opponents 0–(\d+)", section)
    assert summary and int(summary.group(1)) >= 3
    rows = re.findall(r"<tr><td><a href=\"/races/\d+/racers/(\w+)\">\w+</a></td>\s*"
                      r"<td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", section)
    assert sorted(name for name, _, _ in rows) == ["ann", "bob"]
    assert all(won == "0" for _, won, _ in rows)
    assert sum(int(lost) for _, _, lost in rows) == int(summary.group(2)) > 0
    assert f'href="/races/{race.id}/racers/cy"' in section
    chart = _chart(section)
    assert [p["label"] for p in chart["points"]] == ["R1", "R2", "R3"]  # type: ignore[index]
    assert 'src="/static/js/ratings.js"' in html
    # A racer with no head-to-head race has no such section and loads no chart script.
    make.racer(session, "dee")
    session.commit()
    html = page(client, "/racers/dee")
    assert 'id="duels-title"' not in html and "ratings.js" not in html


def test_profile_matchups_hidden_with_the_league(client: FlaskClient, session: Session,
                                                  make: Factory) -> None:
    secret = make.league(session, slug="secret", visibility="private")
    _duel(session, make, league=secret)
    session.commit()
    assert 'id="duels-title"' not in page(client, "/racers/ann")
