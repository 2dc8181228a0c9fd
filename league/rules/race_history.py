"""How a time trial's leaderboard got where it is: each time a racer's ranked time improved,
the rank it gave them and whether it took the lead.

The race's feed (:mod:`league.read.feeds`) lists these changes and the notifications
(:mod:`league.rules.notifications`) tell the racer who lost the top spot. Functions take a
session and never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import Entry, EvaluationJob, JobKind, JobStatus, Race, Result, User
from league.rules.leaderboard import required_laps


@dataclass(frozen=True)
class Change:
    """A racer's ranked time improved: their new place on the leaderboard."""

    result_id: int
    at: dt.datetime  #: when the result was recorded
    user_id: int
    racer: str
    rank: int  #: their place once this result counted (1 is first)
    laps: int
    time_s: float
    took_lead: bool  #: this result put them first (from someone else, or as the first)
    previous_leader_id: int | None  #: who led before, when it was someone else
    previous_leader: str | None


def ranked_changes(session: Session, race: Race, *,
                   until_result_id: int | None = None) -> list[Change]:
    """The changes of ``race``'s leaderboard in the order the results came (oldest first).

    The rules are :func:`league.rules.leaderboard.race_leaderboard`'s, replayed result by
    result: a result counts when its time-trial job succeeded and its entry is not
    disqualified; it is ranked with at least the race's minimum laps and a time; more laps,
    then the smaller stored ranking time, rank first, and a racer's best result counts. On
    a tie the racer who set the time first keeps the place. ``until_result_id`` stops the
    replay after that result.
    """
    required = required_laps(race)
    stmt = (sa.select(Result.id, Result.created_at, Entry.racer_id, User.name,
                      Result.ranking_laps, Result.ranking_time_s)
            .join(EvaluationJob, EvaluationJob.id == Result.job_id)
            .join(Entry, Entry.id == EvaluationJob.entry_id)
            .join(User, User.id == Entry.racer_id)
            .where(Entry.race_id == race.id, Entry.disqualified_at.is_(None),
                   EvaluationJob.kind == JobKind.TIME_TRIAL,
                   EvaluationJob.status == JobStatus.SUCCEEDED,
                   Result.ranking_time_s.is_not(None), Result.ranking_laps >= required)
            .order_by(Result.id))
    if until_result_id is not None:
        stmt = stmt.where(Result.id <= until_result_id)
    best: dict[int, tuple[int, float]] = {}  # racer -> (-laps, time)
    names: dict[int, str] = {}
    leader: int | None = None
    changes = []
    for result_id, at, user_id, name, laps, time_s in session.execute(stmt):
        assert time_s is not None  # the query keeps timed results only
        key = (-int(laps), float(time_s))
        if user_id in best and best[user_id] <= key:
            continue
        best[user_id] = key
        names[user_id] = name
        rank = 1 + sum(1 for other, k in best.items() if other != user_id and k <= key)
        took = rank == 1 and leader != user_id
        before = leader if took and leader is not None else None
        if rank == 1:
            leader = user_id
        changes.append(Change(result_id, at, user_id, name, rank, int(laps), key[1],
                              took, before, names.get(before) if before else None))
    return changes
