"""Knockout races and live events for tests: a head-to-head race with a knockout ready for its
finals, a heat raced the way a worker delivers it, one run of the scheduler's live-events job,
and a finals event with a heat on air."""

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
    LiveEventKind,
    LiveEventStatus,
    Race,
    RaceStatus,
    Rating,
    utcnow,
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
POINTS = [10, 6, 4, 2]  #: the knockout race's season points table


def knockout_race(session: Session, make: Factory, *, rated: int = 4, unrated: int = 0,
                  knockout_size: int = 4, league: League | None = None,
                  **kw: object) -> tuple[Race, list[Entry]]:
    """An open head-to-head race with a knockout in a season (points 10, 6, 4, 2), its
    ``rated`` entries rated so that entry k is seed k + 1, then ``unrated`` entries that
    never raced a heat; ``kw`` go to the race."""
    league = league or make.league(session)
    season = leagues.create_season(session, league, make.organizer(session, league), "S",
                                   make.now - 30 * DAY, make.now + 30 * DAY,
                                   points_table=POINTS)
    race = make.race(session, league, season=season, format="head-to-head", seed=7,
                     knockout_size=knockout_size, **kw)
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(1, rated + unrated + 1)]
    for k, entry in enumerate(entries[:rated]):
        session.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k, sigma=1.0,
                           heats=5))
    session.flush()
    return race, entries


def put_on_air(session: Session, make: Factory, storage: Storage, replays: list[bytes], *,
               on_air_in_s: float, title: str = "Finals night",
               league: League | None = None) -> LiveEvent:
    """A live finals event of a fresh knockout race, run through the rules and the
    scheduler's job: the first semifinal raced (``replays``: its heats, won by seed 1) and
    its slots on air, the first one's race time 0 ``on_air_in_s`` seconds from now
    (negative: it has been on air that long), the others after it as the job placed them.
    Committed."""
    race, entries = knockout_race(session, make, league=league)
    now = utcnow()
    event = live.schedule(session, race, make.organizer(session, race.league),
                          live.Plan(title, LiveEventKind.FINALS, now), now)
    tick(session, storage, now)  # the event starts: the semifinals are planned
    race_heat(session, storage, knockout_heats(session, race)[0], entries[0], replays)
    tick(session, storage, now)  # the raced heat's slots, on air after the delay
    first = event.slots[0].on_air_at
    assert first is not None
    shift = first - (now + dt.timedelta(seconds=on_air_in_s))
    for slot in event.slots:
        assert slot.on_air_at is not None
        slot.on_air_at -= shift
    session.commit()
    return event


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
