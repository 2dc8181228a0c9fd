"""The race page: rules, track, actions per viewer, the time-trial leaderboard (columns,
unranked rows, pagination, freshness after changes) and the head-to-head ratings and bracket."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import Race, RaceStatus, Rating
from league.rules import headtohead as h2h
from league.rules import knockout
from tests.web.test_public_pages import page

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

DAY = dt.timedelta(days=1)
MIN = dt.timedelta(minutes=1)


def _open_race(session: Session, make: Factory, **kw: Any) -> Race:
    """A race open right now (the page compares with the real clock)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    race = make.race(session, opens_at=now - DAY, closes_at=now + DAY, **kw)
    race.status = RaceStatus.OPEN
    return race


def _rows(html: str) -> list[str]:
    body = html[html.index('<table class="leaderboard">'):]
    return re.findall(r"<tr(?: class=\"unranked\")?><td>.*?</tr>", body, re.S)


def test_race_page_shows_rules_and_the_track(client: FlaskClient, session: Session,
                                             make: Factory) -> None:
    race = _open_race(session, make, name="Monday Trial", track="royal-park", laps=3,
                      min_laps=2, trials=5, ranking="best-lap", off_track_penalty=3.0,
                      time_cap=240.0, seed=4242, obstacles=2)
    session.commit()
    html = page(client, f"/races/{race.id}")
    assert "Monday Trial" in html and "Time trial" in html
    assert re.search(r'<img class="track-drawing" src="/tracks/royal-park.svg\?v=[0-9a-f]{32}"',
                     html)
    for text in ("<dt>Laps</dt><dd>3</dd>", "the fastest single lap of any trial",
                 "at least 2 of 3 laps", "<dt>Trials</dt><dd>5,", "3.0 s frozen",
                 "240.0 s of simulated time", "<dt>Obstacles</dt><dd>2</dd>",
                 "<code>4242</code>", "<dt>Collision penalty</dt>"):
        assert text in html, text
    assert "No results yet" in html


def test_time_trial_leaderboard_columns(client: FlaskClient, session: Session,
                                        make: Factory) -> None:
    race = _open_race(session, make, laps=3, min_laps=3)
    ann, bob, cy, dan = (make.racer(session, n) for n in ("ann", "bob", "cy", "dan"))
    best = make.result(session, make.entry(session, race, ann), time_s=61.25, laps=3,
                       off_track_count=2, collision_count=1, penalty_s=10.0)
    make.result(session, make.entry(session, race, ann, make.now + MIN), time_s=70.0, laps=3)
    make.result(session, make.entry(session, race, bob), time_s=62.5, laps=3)
    make.result(session, make.entry(session, race, cy), time_s=None, laps=1, status="dnf",
                data={"trials": [{"reason": "time up after 1 of 3 laps"}]})
    make.result(session, make.entry(session, race, dan), time_s=None, laps=0,
                status="policy_error", data={"error": "the policy returned NaN"})
    session.commit()
    html = page(client, f"/races/{race.id}")
    assert "<th class=\"num\">Total time</th>" in html
    rows = _rows(html)
    assert len(rows) == 4
    first = rows[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", first, re.S)
    assert cells[0] == "1" and '<a href="/racers/ann">ann</a>' == cells[1]
    assert cells[2] == "follower v1" and cells[3] == "1:01.250" and cells[4] == ""
    assert cells[5:10] == ["3", "2", "1", "10.0 s", "2"]
    assert f'<a href="/evaluations/{best.job_id}/replay">Replay</a>' == cells[10]
    second = re.findall(r"<td[^>]*>(.*?)</td>", rows[1], re.S)
    assert second[:5] == ["2", '<a href="/racers/bob">bob</a>', "follower v1", "1:02.500",
                          "+1.250"]
    assert 'class="unranked"' in rows[2] and "time up after 1 of 3 laps" in rows[2]
    assert "status-dnf" in rows[2] and rows[2].startswith('<tr class="unranked"><td>–')
    assert "the policy returned NaN" in rows[3] and "status-policy_error" in rows[3]


def test_leaderboard_pages_of_100(client: FlaskClient, session: Session,
                                  make: Factory) -> None:
    race = _open_race(session, make)
    for k in range(205):
        entry = make.entry(session, race, make.racer(session, f"r{k:03d}"))
        make.result(session, entry, time_s=20.0 + k / 10)
    session.commit()
    first = page(client, f"/races/{race.id}")
    assert len(_rows(first)) == 100 and "Page 1 of 3" in first
    assert f'href="/races/{race.id}?page=2" rel="next"' in first
    assert "205 racers" in first
    third = page(client, f"/races/{race.id}?page=3")
    rows = _rows(third)
    assert len(rows) == 5 and rows[0].startswith("<tr><td>201</td>")
    assert "r204" in rows[-1] and f'href="/races/{race.id}?page=2" rel="prev"' in third
    assert "No rows on this page" in page(client, f"/races/{race.id}?page=9")
    assert len(_rows(page(client, f"/races/{race.id}?page=abc"))) == 100


def test_leaderboard_follows_new_results_and_disqualification(
        client: FlaskClient, session: Session, make: Factory) -> None:
    race = _open_race(session, make)
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    ann_entry = make.entry(session, race, ann)
    make.result(session, ann_entry, time_s=30.0)
    session.commit()
    assert len(_rows(page(client, f"/races/{race.id}"))) == 1
    make.result(session, make.entry(session, race, bob), time_s=25.0)
    session.commit()
    rows = _rows(page(client, f"/races/{race.id}"))
    assert [re.search(r"/racers/(\w+)", r).group(1) for r in rows] == ["bob", "ann"]
    ann_entry.disqualified_at = make.now
    session.commit()
    rows = _rows(page(client, f"/races/{race.id}"))
    assert len(rows) == 1 and "/racers/bob" in rows[0]
    race.ranking = "best-lap"
    session.commit()
    assert "<th class=\"num\">Best lap</th>" in page(client, f"/races/{race.id}")


@pytest.mark.parametrize("who, enter, manage", [
    ("anonymous", False, False), ("racer", True, False), ("organizer", True, True)])
def test_race_actions_per_viewer(client: FlaskClient, session: Session, make: Factory,
                                 login: Any, who: str, enter: bool, manage: bool) -> None:
    race = _open_race(session, make)
    user = {"racer": make.racer(session, "ann"),
            "organizer": make.organizer(session, race.league)}.get(who)
    session.commit()
    if user is not None:
        login(client, user)
    html = page(client, f"/races/{race.id}")
    assert (f'href="/garage/races/{race.id}/enter"' in html) is enter
    assert ("to enter this race" in html) is (not enter)
    assert (f'href="/organize/races/{race.id}"' in html) is manage


def test_closed_race_has_no_enter_button(client: FlaskClient, session: Session,
                                         make: Factory, login: Any) -> None:
    race = make.race(session, opens_at=make.now - 3 * DAY, closes_at=make.now - DAY)
    race.status = RaceStatus.CLOSED
    racer = make.racer(session, "ann")
    session.commit()
    login(client, racer)
    html = page(client, f"/races/{race.id}")
    assert "/enter" not in html and "status-closed" in html


def _h2h_race(session: Session, make: Factory) -> tuple[Race, list[Any]]:
    race = make.race(session, format="head-to-head", seed=7, knockout_size=4)
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(1, 6)]
    for k, entry in enumerate(entries[:4]):
        session.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k, sigma=1.5,
                           heats=4 + k))
    session.flush()
    return race, entries


def _outcome(positions: list[int]) -> dict[str, Any]:
    return {"format": "head-to-head", "positions": positions,
            "cars": [{"status": "finished"} for _ in positions]}


def test_head_to_head_ratings_and_bracket(client: FlaskClient, session: Session,
                                          make: Factory) -> None:
    race, entries = _h2h_race(session, make)
    session.commit()
    html = page(client, f"/races/{race.id}")
    assert "Head-to-head" in html and "<th class=\"num\">μ</th>" in html
    table = html[html.index('<table class="ratings">'):html.index("</table>")]
    first = re.findall(r"<td[^>]*>(.*?)</td>", table.split("<tr")[2], re.S)
    assert [c.strip() for c in first] == ["1", '<a href="/racers/r1">r1</a>', "follower v1",
                                          "35.50", "40.00", "1.50",
                                          '<a href="/races/1/racers/r1" title="matchups and '
                                          'rating history of r1">4</a>', "0"]
    assert table.count('class="unranked"') == 1  # r5 has not raced a heat
    assert "as it would start now" in html and "Semifinal" in html and "Final" in html
    semis = knockout.advance_knockout(session, race, make.now)
    h2h.record_heat(session, semis[0], _outcome([1, 0]))  # seed 4 beats seed 1
    h2h.record_heat(session, semis[1], _outcome([0, 1]))  # seed 2 beats seed 3
    (final,) = knockout.advance_knockout(session, race, make.now)
    h2h.record_heat(session, final, _outcome([1, 0]))  # seed 2 wins the final
    session.commit()
    html = page(client, f"/races/{race.id}")
    assert "Champion: <strong>r2</strong>" in html
    bracket = html[html.index('<div class="bracket"'):]
    winners = re.findall(r'<div class="slot winner">\s*<span class="seed">(\d)</span>\s*'
                         r'<a href="/racers/(\w+)">', bracket)
    assert winners == [("4", "r4"), ("2", "r2"), ("2", "r2")]
    assert bracket.count('class="slot loser"') == 3
    wins = re.findall(r'<a href="/racers/(r\d)">r\d</a></td><td>follower v1</td>'
                      r'(?:<td>(?:<a [^>]*>)?[^<]*(?:</a>)?</td>){4}<td>(\d)</td>', html)
    assert dict(wins)["r2"] == "2"


def test_head_to_head_without_knockout(client: FlaskClient, session: Session,
                                       make: Factory) -> None:
    race, _ = _h2h_race(session, make)
    race.knockout_size = 0
    session.commit()
    html = page(client, f"/races/{race.id}")
    assert "Ratings" in html and "Knockout" not in html
