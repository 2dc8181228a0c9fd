"""Live events for tests: a head-to-head race with a knockout ready for its finals, a heat
raced the way a worker delivers it, and one run of the scheduler's live-events job."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    League,
    LiveEvent,
    LiveEventStatus,
    Race,
    RaceStatus,
    Rating,
)
from league.processes.evaluation import Outcome, deliver
from league.read import live as live_read
from league.rules import headtohead as h2h
from league.rules import leagues, live, seasons
from league.storage import Storage

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


def finals_race(session: Session, make: Factory, *, rated: int = 4,
                league: League | None = None) -> tuple[Race, list[Entry]]:
    """An open head-to-head race with a knockout of 4 in a season; entry k is seed k + 1."""
    league = league or make.league(session)
    season = leagues.create_season(session, league, make.organizer(session, league), "S",
                                   make.now - 30 * DAY, make.now + 30 * DAY,
                                   points_table=[10, 6, 4, 2])
    race = make.race(session, league, season=season, format="head-to-head", seed=7,
                     knockout_size=4, closes_at=make.now + DAY, name="Finals race")
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(1, rated + 1)]
    for k, entry in enumerate(entries):
        session.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k, sigma=1.0,
                           heats=5))
    session.flush()
    return race, entries


def knockout_heats(session: Session, race: Race) -> list[Heat]:
    """The race's knockout heats, in the order they were made."""
    return list(session.scalars(sa.select(Heat).where(
        Heat.race_id == race.id, Heat.stage != h2h.ROUND_STAGE).order_by(Heat.id)))


def race_heat(session: Session, storage: Storage, heat: Heat, winner: Entry,
              data: list[bytes]) -> EvaluationJob:
    """What a worker does with a heat's job: claim it, race it (``data``: its replays),
    deliver its result with ``winner`` first."""
    job = session.scalars(sa.select(EvaluationJob).where(EvaluationJob.heat_id == heat.id)
                          ).one()
    job.status, job.lease_owner = JobStatus.RUNNING, "w1"  # claimed by worker w1
    seat = heat.entry_ids.index(winner.id)
    result = {"format": "head-to-head", "status": "finished", "positions": [seat, 1 - seat],
              "cars": [{"status": "finished"}, {"status": "finished"}], "trials": []}
    assert deliver(session, Outcome(job.id, JobKind.HEAT, result,
                                    [(t, d) for t, d in enumerate(data, start=1)]),
                   "w1", storage)
    return job


def tick(session: Session, storage: Storage, now: dt.datetime) -> list[str]:
    """One run of the scheduler's live-events job: the live rules, then the race moved on."""
    lines = live.advance(session, live_read.replay_length(storage), now)
    for event in session.scalars(sa.select(LiveEvent).where(
            LiveEvent.status == LiveEventStatus.LIVE)):
        seasons.advance_race(session, event.race_id, now)
    return lines
