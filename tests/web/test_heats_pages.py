"""Head-to-head heats on the site: the race page's heat list (newest first, paginated,
filtered by racer), bracket replays and the podium, the replay page's heat title, racer
profiles, and the garage's head-to-head entries (racing, replaced, raced; heats and rating)."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import Entry, EvaluationJob, JobStatus, Race, RaceStatus, Result
from league.rules import headtohead as h2h
from league.rules import knockout
from league.storage import Storage
from tests.league.test_heats_read import raced_heat
from tests.support import replays as sample
from tests.web.test_public_pages import page

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

MIN = dt.timedelta(minutes=1)


def _race(session: Session, make: Factory, racers: int = 3, **kw: Any) -> tuple[Race,
                                                                              list[Entry]]:
    race = make.race(session, format="head-to-head", seed=7, name="Duel", **kw)
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(racers)]
    return race, entries


def _heats(html: str) -> list[str]:
    return re.findall(r'<li class="heat" data-heat="\d+">.*?</li>', html, re.S)


def _cells(row: str) -> list[str]:
    return [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_race_page_lists_heats_with_results_and_replays(client: FlaskClient, session: Session,
                                                        make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    _, first_job = raced_heat(session, [a, b], winner=1, times=(43.25, 41.0), incidents=1)
    _, second_job = raced_heat(session, [a, c], winner=0, round_no=2)
    session.commit()
    html = page(client, f"/races/{race.id}")
    listed = _heats(html)
    assert len(listed) == 2 and "2 heats" in html
    newest, oldest = listed
    assert "Round 2" in newest and f'href="/evaluations/{second_job.id}/replay"' in newest
    assert "Round 1" in oldest and f'href="/evaluations/{first_job.id}/replay"' in oldest
    rows = re.findall(r"<tr(?: class=\"winner\")?><td>.*?</tr>", oldest, re.S)
    assert _cells(rows[0]) == ["1", '<a href="/racers/r1">r1</a>', "follower v1", "0:41.000",
                               "", "4", "2", "5.0 s"]
    assert _cells(rows[1]) == ["2", '<a href="/racers/r0">r0</a>', "follower v1", "0:43.250",
                               "+2.250", "2", "0", "0.0 s"]
    assert rows[0].startswith('<tr class="winner">')


def test_heats_are_paginated_and_filtered_by_racer(client: FlaskClient, session: Session,
                                                   make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    for n in range(1, 56):
        raced_heat(session, [a, b] if n % 5 else [b, c], round_no=n)
    session.commit()
    first = page(client, f"/races/{race.id}")
    assert len(_heats(first)) == 50 and "Page 1 of 2" in first
    assert "Round 55" in _heats(first)[0]
    assert f'href="/races/{race.id}?page=2" rel="next"' in first
    second = page(client, f"/races/{race.id}?page=2")
    assert [re.search(r"Round (\d+)", h).group(1) for h in _heats(second)] == \
        ["5", "4", "3", "2", "1"]
    only_c = page(client, f"/races/{race.id}?racer=r2")
    assert len(_heats(only_c)) == 11 and "11 heats with r2" in only_c
    assert all("/racers/r2" in h for h in _heats(only_c))
    assert 'value="r2"' in only_c
    assert "No heats with nobody" in page(client, f"/races/{race.id}?racer=nobody")
    # the filter is never answered from the kept, unfiltered page (anonymous visitors)
    assert len(_heats(page(client, f"/races/{race.id}?racer=r2"))) == 11


def test_the_ratings_are_on_the_first_page_and_a_racers_heats_show_its_rating(
        client: FlaskClient, session: Session, make: Factory) -> None:
    """Every racer's rating heads the race's first page only; another page of heats links
    to it, and a racer's heats show that racer's own rating line with their matchups."""
    race, (a, b, c) = _race(session, make)
    for n in range(1, 56):
        raced_heat(session, [a, b] if n % 5 else [b, c], winner=0, round_no=n)
    session.commit()
    first = page(client, f"/races/{race.id}")
    assert first.count('<table class="ratings">') == 1 and 'id="ratings-title"' in first
    overview_link = f'<a href="/races/{race.id}#ratings-title">the race\'s first page</a>'
    assert overview_link not in first
    for other in (f"/races/{race.id}?page=2", f"/races/{race.id}?racer=r2"):
        html = page(client, other)
        assert '<table class="ratings">' not in html and overview_link in html, other
    mine = page(client, f"/races/{race.id}?racer=r2")
    line = re.search(r'<p class="racer-rating">(.*?)</p>', mine, re.S)
    assert line is not None and "r2's rating</h2>" in mine
    rank = next(r for r in h2h.rating_table(session, race) if r.racer == "r2")
    assert f"Rank {rank.rank} · rating {rank.rating:.2f}" in line.group(1)
    assert "11 heats, 0 wins · model follower v1 · " in line.group(1)
    assert f'href="/races/{race.id}/racers/r2"' in line.group(1)
    assert 'class="racer-rating"' not in page(client, f"/races/{race.id}?page=2")


def test_bracket_links_replays_marks_winners_and_podium(client: FlaskClient, session: Session,
                                                         make: Factory) -> None:
    race, entries = _race(session, make, racers=4, knockout_size=4)
    for k in range(4):  # round robin: r0 beats everyone, r1 beats r2 and r3, r2 beats r3
        for j in range(k + 1, 4):
            raced_heat(session, [entries[k], entries[j]], winner=0)
    race.status = RaceStatus.FINALS
    semis = knockout.advance_knockout(session, race, make.now)
    for heat in semis:
        outcome = {"positions": [1, 0], "cars": [{"status": "finished"}] * 2}
        h2h.record_heat(session, heat, outcome)  # the lower seed wins both semifinals
    (final,) = knockout.advance_knockout(session, race, make.now)
    session.commit()
    html = page(client, f"/races/{race.id}")
    assert "Semifinal" in html and "Final classification" not in html
    assert "match-replay" not in html  # the semifinals' jobs are queued: nothing to watch
    for heat in [*semis, final]:
        job = session.scalars(sa.select(EvaluationJob).filter_by(heat_id=heat.id)).one()
        job.status = JobStatus.SUCCEEDED
        session.add(Result(job_id=job.id, status="finished", ranking_laps=1,
                           data={"positions": [1, 0], "cars": []}))
    h2h.record_heat(session, final, {"positions": [0, 1], "cars": [{"status": "finished"}] * 2})
    race.status = RaceStatus.CLOSED
    session.commit()
    html = page(client, f"/races/{race.id}")
    bracket = html[html.index('<div class="bracket"'):html.index('id="heats-title"')]
    assert len(re.findall(r'class="match-replay" href="/evaluations/\d+/replay"', bracket)) == 3
    assert bracket.count('class="slot winner"') == 3
    podium = html[html.index('<ol class="podium">'):]
    podium = podium[:podium.index("</ol>")]
    places = re.findall(r'<span class="place">(\w+)</span>\s*<a href="/racers/(\w+)">', podium)
    assert [p for p, _ in places] == ["1st", "2nd", "3rd"]
    assert places[0][1] == "r3"  # seed 4 beat seed 1, then won the final
    heats_html = html[html.index('id="heats-title"'):]
    assert "Final" in _heats(heats_html)[0] and "Semifinal" in _heats(heats_html)[1]


def test_replay_subtitle_is_the_heat_title(client: FlaskClient, session: Session,
                                           storage: Storage, make: Factory,
                                           record_race: Any) -> None:
    data = sample.record_replay(record_race, sample.field_drivers(2), laps=1)
    race, entries = _race(session, make, racers=2)
    _, job, _ = sample.heat(session, storage, make, data, entries)
    session.commit()
    html = page(client, f"/evaluations/{job.id}/replay")
    assert "· Round 1\n" in html and "(round)" not in html


def test_racer_profile_lists_latest_heats(client: FlaskClient, session: Session,
                                          make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    _, job = raced_heat(session, [a, b])
    for n in range(2, 9):
        raced_heat(session, [b, c], round_no=n)
    session.commit()
    html = page(client, "/racers/r0")
    assert "Latest heats" in html and len(_heats(html)) == 1
    assert f'href="/evaluations/{job.id}/replay"' in html and "Duel" in _heats(html)[0]
    assert len(_heats(page(client, "/racers/r1"))) == 5  # the latest few only


@pytest.fixture
def ada(session: Session, make: Factory) -> Any:
    return make.user(session, "ada")


def test_garage_head_to_head_entry(client: FlaskClient, session: Session, make: Factory,
                                   login: Any, ada: Any) -> None:
    race, (b, c) = _race(session, make, racers=2)
    mine = make.entry(session, race, ada, make.now + 5 * MIN)
    _, job = raced_heat(session, [mine, b], winner=0)
    raced_heat(session, [mine, c], winner=1, round_no=2)
    session.commit()
    login(client, ada)
    html = page(client, f"/garage/entries/{mine.id}")
    assert ">racing</span>" in html and "in the heats" not in html
    assert "<dt>Heats raced</dt><dd>2</dd>" in html and "<dt>Wins</dt><dd>1</dd>" in html
    row = next(r for r in h2h.rating_table(session, race) if r.entry_id == mine.id)
    assert f'<dt>Rating</dt><dd>{row.rating:.2f}' in html
    assert f"<dt>Rank</dt><dd>{row.rank}</dd>" in html
    assert len(_heats(html)) == 2 and f'href="/evaluations/{job.id}/replay"' in html
    assert "rating " in page(client, "/garage/")
    assert client.get(f"/garage/entries/{mine.id}/status.json").json["label"] == "racing"

    make.entry(session, race, ada, make.now + 9 * MIN)
    session.commit()
    html = page(client, f"/garage/entries/{mine.id}")
    assert ">replaced by v2</span>" in html and "no longer races" in html
    assert ">replaced by v2</span>" in page(client, "/garage/")

    race.status = RaceStatus.CLOSED
    session.commit()
    assert ">raced</span>" in page(client, f"/garage/entries/{mine.id}")
