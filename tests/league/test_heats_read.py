"""The heats read side: a race's heats newest first, paginated and filtered by racer, with
times, gaps and incidents from the result JSON; titles; the podium; an entry's standing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    Race,
    RaceStatus,
    Result,
)
from league.read import heats
from league.rules import headtohead as h2h

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

MIN = dt.timedelta(minutes=1)


def raced_heat(session: Session, entries: Sequence[Entry], winner: int = 0, *,
               times: Sequence[float | None] = (40.0, 41.5), round_no: int = 1,
               stage: str = h2h.ROUND_STAGE, incidents: int = 0,
               job_status: JobStatus = JobStatus.SUCCEEDED) -> tuple[Heat, EvaluationJob]:
    """A heat of ``entries`` (car i: entries[i]) won by car ``winner``, with a succeeded job
    whose result has two seat-swapped trials per car; each trial of car i has ``incidents``
    + i off-tracks, i collisions and 2.5 s of penalty per collision. Ratings move as a worker
    would move them."""
    race_id = entries[0].race_id
    heat = Heat(race_id=race_id, round_no=round_no, stage=stage, seed=1,
                entry_ids=[e.id for e in entries])
    session.add(heat)
    session.flush()
    job = EvaluationJob(kind=JobKind.HEAT, heat_id=heat.id, status=job_status)
    session.add(job)
    session.flush()
    order = [winner] + [i for i in range(len(entries)) if i != winner]
    cars = [{"name": f"car {i}", "status": "finished" if times[i] is not None else "dnf",
             "ranking_time_s": times[i], "ranking_laps": 1,
             "trials": [{"trial": t, "off_track_count": incidents + i, "collision_count": i,
                         "penalty_s": 2.5 * i, "position": order.index(i) + 1}
                        for t in (1, 2)]} for i in range(len(entries))]
    data: dict[str, Any] = {"format": "head-to-head", "positions": order, "cars": cars}
    if job_status == JobStatus.SUCCEEDED:
        session.add(Result(job_id=job.id, entry_id=None, status="finished",
                           ranking_time_s=None, ranking_laps=1, data=data))
        h2h.record_heat(session, heat, data)
    session.flush()
    return heat, job


def _race(session: Session, make: Factory, racers: int = 3) -> tuple[Race, list[Entry]]:
    race = make.race(session, format="head-to-head", seed=7)
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(racers)]
    return race, entries


def test_heat_titles() -> None:
    assert heats.heat_title(3, h2h.ROUND_STAGE) == "Round 3"
    assert heats.heat_title(1, "semifinal") == "Semifinal"
    assert heats.heat_title(2, "final") == "Final"
    assert heats.heat_title(1, "round-of-16") == "Round of 16"


def test_cars_best_first_with_gaps_and_incidents(session: Session, make: Factory) -> None:
    race, (a, b, _) = _race(session, make)
    heat, job = raced_heat(session, [a, b], winner=1, times=(43.25, 41.0), incidents=1)
    (row,), total = heats.race_heats(session, race)
    assert total == 1 and row.heat_id == heat.id and row.job_id == job.id and row.raced
    assert row.title == "Round 1" and row.winner_id == b.id
    first, second = row.cars
    assert (first.entry_id, first.racer, first.position) == (b.id, "r1", 1)
    assert first.time_s == 41.0 and first.gap_s is None
    assert (first.off_tracks, first.collisions, first.penalty_s) == (4, 2, 5.0)
    assert (second.entry_id, second.position, second.time_s) == (a.id, 2, 43.25)
    assert second.gap_s == pytest.approx(2.25)
    assert (second.off_tracks, second.collisions, second.penalty_s) == (2, 0, 0.0)
    assert first.model == "follower v1"


def test_no_gap_without_a_time_and_unraced_heats(session: Session, make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    raced_heat(session, [a, b], times=(40.0, None))
    raced_heat(session, [a, c], job_status=JobStatus.QUEUED)
    rows, _ = heats.race_heats(session, race)
    queued, dnf = rows
    assert not queued.raced and queued.job_status == "queued" and queued.winner_id is None
    assert [car.position for car in queued.cars] == [None, None]
    assert dnf.cars[1].time_s is None and dnf.cars[1].gap_s is None
    assert dnf.cars[1].status == "dnf"


def test_newest_first_paginated_and_filtered(session: Session, make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    made = [raced_heat(session, pair, round_no=n)[0].id for n, pair in
            enumerate([(a, b), (a, c), (b, c), (a, b), (b, c)], start=1)]
    first, total = heats.race_heats(session, race, page=1, per_page=2)
    assert total == 5 and [r.heat_id for r in first] == made[::-1][:2]
    last, _ = heats.race_heats(session, race, page=3, per_page=2)
    assert [r.heat_id for r in last] == [made[0]] and last[0].title == "Round 1"
    assert heats.race_heats(session, race, page=4, per_page=2) == ([], 5)
    only_c, total_c = heats.race_heats(session, race, racer="r2", per_page=2)
    assert total_c == 3 and [r.heat_id for r in only_c] == [made[4], made[2]]
    assert heats.race_heats(session, race, racer="nobody") == ([], 0)


def test_page_queries_do_not_grow_with_heats(session: Session, make: Factory) -> None:
    race, entries = _race(session, make, racers=4)
    for n in range(30):
        raced_heat(session, [entries[n % 4], entries[(n + 1) % 4]], round_no=n + 1)
    statements: list[str] = []

    def count(*args: Any, **_: Any) -> None:
        statements.append(str(args[2]))

    engine = session.get_bind()
    counts = []
    for per_page in (2, 20):
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            heats.race_heats(session, race, per_page=per_page)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 4


def test_entry_heats_and_standing(session: Session, make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    raced_heat(session, [a, b], winner=0)
    raced_heat(session, [a, c], winner=1)
    raced_heat(session, [b, c], winner=0)
    assert [r.cars[0].entry_id for r in heats.entry_heats(session, a)] == [c.id, a.id]
    st = heats.standing(session, a)
    assert (st.state, st.heats, st.wins, st.replaced_by) == (heats.EntryState.RACING, 2, 1,
                                                             None)
    row = next(r for r in h2h.rating_table(session, race) if r.entry_id == a.id)
    assert st.rank == row.rank and st.rating == row.rating
    newer = make.entry(session, race, a.racer, make.now + 10 * MIN)
    st = heats.standing(session, a)
    assert st.state == heats.EntryState.REPLACED and st.replaced_by == 2 and st.rank is None
    assert heats.standing(session, newer).heats == 0
    race.status = RaceStatus.CLOSED
    assert heats.standing(session, a).state == heats.EntryState.RACED


def test_podium_from_the_rating_table_once_closed(session: Session, make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    for _ in range(3):
        raced_heat(session, [a, b], winner=1)
        raced_heat(session, [b, c], winner=0)
        raced_heat(session, [a, c], winner=1)
    assert heats.podium(session, race) == []
    race.status = RaceStatus.CLOSED
    assert heats.podium(session, race) == ["r1", "r2", "r0"]
