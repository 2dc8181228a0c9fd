"""What the Atom feeds list: a league's latest news (races opened and closed, entries
evaluated) and a race's leaderboard changes (a new leader, a racer ranked or moving up).

The caller has checked the viewer may see the league or race. An item never names a race's
track nor holds a seed: a mystery track and a secret seed stay out of every feed, whoever
reads it (a feed reader keeps what it fetched). Queries only; functions take a session and
never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.race_settings import Format
from league.models import (
    Entry,
    EvaluationJob,
    JobKind,
    JobStatus,
    League,
    PolicyModel,
    Race,
    RaceStatus,
    Result,
    User,
)
from league.rules.race_history import ranked_changes

FEED_ITEMS = 50  #: items a feed holds, newest first


@dataclass(frozen=True)
class Item:
    """One entry of a feed."""

    key: str  #: unique within the feed: ``race-3-opened``, ``result-17``
    race_id: int  #: the race it links to
    title: str
    summary: str
    updated: dt.datetime


def _race_items(race: Race) -> list[Item]:
    """A race's opening and closing, as far as they happened."""
    items = []
    if race.status != RaceStatus.SCHEDULED:
        items.append(Item(f"race-{race.id}-opened", race.id, f"{race.name} is open",
                          f"{race.name} takes entries until "
                          f"{race.closes_at.isoformat(timespec='minutes')} UTC.",
                          race.opens_at))
    if race.status == RaceStatus.CLOSED and race.closed_at is not None:
        items.append(Item(f"race-{race.id}-closed", race.id, f"{race.name} has closed",
                          f"{race.name} is closed: its results are final.", race.closed_at))
    return items


def league_items(session: Session, league: League, limit: int = FEED_ITEMS) -> list[Item]:
    """A league's latest news, newest first: its races opened and closed, and its
    time-trial entries evaluated (the entry's result, without the track)."""
    races = session.scalars(sa.select(Race).where(Race.league_id == league.id)).all()
    items = [item for race in races for item in _race_items(race)]
    rows = session.execute(
        sa.select(Result.id, Result.created_at, Result.status, Result.ranking_laps,
                  Result.ranking_time_s, Race.id, Race.name, User.name, PolicyModel.name,
                  PolicyModel.version)
        .join(EvaluationJob, EvaluationJob.id == Result.job_id)
        .join(Entry, Entry.id == EvaluationJob.entry_id)
        .join(Race, Race.id == Entry.race_id)
        .join(User, User.id == Entry.racer_id)
        .join(PolicyModel, PolicyModel.id == Entry.model_id)
        .where(Race.league_id == league.id, EvaluationJob.kind == JobKind.TIME_TRIAL,
               EvaluationJob.status == JobStatus.SUCCEEDED, Entry.disqualified_at.is_(None))
        .order_by(Result.id.desc()).limit(limit))
    for rid, at, status, laps, time_s, race_id, race_name, racer, model, version in rows:
        timing = f"{laps} lap(s) in {time_s:.3f} s" if time_s is not None else f"{laps} lap(s)"
        items.append(Item(f"result-{rid}", race_id, f"{racer} in {race_name}: {status}",
                          f"{racer}'s {model} v{version} was evaluated in {race_name}: "
                          f"{status}, {timing}.", at))
    return _newest(items, limit)


def race_items(session: Session, race: Race, limit: int = FEED_ITEMS) -> list[Item]:
    """A race's leaderboard changes, newest first (time trials: each new leader and each
    racer ranked or moving up, :func:`league.rules.race_history.ranked_changes`), with
    its opening and closing. A head-to-head race lists its opening and closing only."""
    items = _race_items(race)
    if race.format != Format.HEAD_TO_HEAD:
        for change in ranked_changes(session, race):
            title = (f"{change.racer} takes the lead in {race.name}" if change.took_lead
                     else f"{change.racer} is {_ordinal(change.rank)} in {race.name}")
            summary = (f"{change.racer}: {change.laps} lap(s) in {change.time_s:.3f} s, "
                       f"{_ordinal(change.rank)} place")
            if change.previous_leader:
                summary += f", ahead of {change.previous_leader}"
            items.append(Item(f"result-{change.result_id}", race.id, title, summary + ".",
                              change.at))
    return _newest(items, limit)


def _newest(items: list[Item], limit: int) -> list[Item]:
    return sorted(items, key=lambda i: (i.updated, i.key), reverse=True)[:limit]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
