"""Head-to-head heats as pages list them: a race's heats newest first, a racer's and an
entry's latest heats, the final podium, and where an entry stands in its race (the garage).

A *heat* here is one ``Heat`` row: a pairing raced by one job, whose result JSON holds each
car's block (``cars[i]`` is ``heat.entry_ids[i]``) with its trials (the seat-swapped runs,
one replay each). A car's time is its ``ranking_time_s``; its gap is that time minus the
heat winner's (the first of ``Heat.positions``). Off-tracks, collisions and penalties are
summed over the car's trials.

A page costs a fixed number of queries whatever the race's size: the heats of the page, their
latest jobs with results, the names of their entries (never one query per heat). Queries
only; functions take a session and never commit. Who may see the race is the caller's check.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.heat_order import heat_winner
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobStatus,
    League,
    PolicyModel,
    Race,
    RaceStatus,
    Rating,
    Result,
    User,
)
from league.read import browse
from league.rules import headtohead, knockout

PODIUM = 3  #: places of the final classification


@dataclass(frozen=True)
class HeatCar:
    """One car of a heat, as the heat list shows it."""

    entry_id: int
    racer: str
    model: str  #: name and version
    position: int | None  #: 1 is the winner; None until the heat is raced
    status: str  #: the car's result status ("finished", "dnf", "policy_error"), "" if none
    time_s: float | None  #: the car's ranking time in the heat
    gap_s: float | None  #: time behind the winner; None for the winner or without times
    laps: int
    off_tracks: int
    collisions: int
    penalty_s: float


@dataclass(frozen=True)
class HeatRow:
    """One heat: its title, its cars best first, and the job whose replays show it."""

    heat_id: int
    race_id: int
    race_name: str
    title: str  #: see :func:`heat_title`
    created_at: dt.datetime
    job_id: int | None  #: the heat's latest job (its replays); None if there is none
    job_status: str  #: that job's status ("" without a job)
    winner_id: int | None
    cars: list[HeatCar]

    @property
    def raced(self) -> bool:
        """Whether the heat has a result (and so replays to watch)."""
        return self.job_status == JobStatus.SUCCEEDED


class EntryState(enum.StrEnum):
    """Where a head-to-head entry is in its race (:func:`standing`)."""

    RACING = "racing"  # the racer's latest entry in a race not closed yet: it races
    REPLACED = "replaced"  # a newer upload of the racer in the same race races instead
    RACED = "raced"  # the race is closed


@dataclass(frozen=True)
class Standing:
    """Where a head-to-head entry stands in its race (the garage's badge and numbers).

    ``state`` is ``racing`` (the racer's latest entry in an unclosed race), ``replaced`` (a
    newer upload of the racer in the same race races instead; ``replaced_by`` is its model
    version) or ``raced`` (the race is closed).
    """

    state: EntryState
    replaced_by: int | None
    heats: int  #: heats raced with a result
    wins: int
    rating: float | None  #: conservative mu - 3 sigma; None before the first rated heat
    rank: int | None  #: place in the rating table; None when not ranked there


def heat_title(round_no: int, stage: str) -> str:
    """A heat's title: "Round N" for a rating round, the stage's name for a knockout heat
    ("Semifinal", "Final", "Round of 16")."""
    if stage == headtohead.ROUND_STAGE:
        return f"Round {round_no}"
    return stage.replace("-", " ").capitalize()


def race_heats(session: Session, race: Race, *, racer: str | None = None, page: int = 1,
               per_page: int = 50) -> tuple[list[HeatRow], int]:
    """One page of ``race``'s heats, newest first, and how many there are in all.

    ``racer``: only heats in which one of that racer's entries raced (an unknown name has
    none).
    """
    entry_ids = None
    if racer:
        entry_ids = set(session.scalars(sa.select(Entry.id).join(User, User.id == Entry.racer_id)
                                        .where(Entry.race_id == race.id, User.name == racer)))
    return _heat_page(session, [race.id], entry_ids, (page - 1) * per_page, per_page)


def entry_heats(session: Session, entry: Entry, limit: int = 10) -> list[HeatRow]:
    """The latest ``limit`` heats ``entry`` raced in (or is drawn in), newest first."""
    return _heat_page(session, [entry.race_id], {entry.id}, 0, limit)[0]


def racer_heats(session: Session, racer: User, viewer: User | None,
                limit: int = 5) -> list[HeatRow]:
    """``racer``'s latest ``limit`` head-to-head heats, newest first, in leagues listed for
    ``viewer`` (a profile never shows a private league to outsiders)."""
    rows = session.execute(
        sa.select(Entry.id, Entry.race_id).join(Race, Race.id == Entry.race_id)
        .join(League, League.id == Race.league_id)
        .where(Entry.racer_id == racer.id, browse.listed_leagues_filter(viewer))).all()
    races = sorted({race_id for _, race_id in rows})
    return _heat_page(session, races, {eid for eid, _ in rows}, 0, limit)[0]


def _heat_page(session: Session, race_ids: Sequence[int], entry_ids: Collection[int] | None,
               offset: int, limit: int) -> tuple[list[HeatRow], int]:
    """Heats of ``race_ids`` (those with one of ``entry_ids`` if given), newest first."""
    if not race_ids or (entry_ids is not None and not entry_ids):
        return [], 0
    where = Heat.race_id.in_(list(race_ids))
    if entry_ids is None:
        total = session.scalar(sa.select(sa.func.count(Heat.id)).where(where)) or 0
        heats = session.execute(sa.select(Heat, Race.name).join(Race, Race.id == Heat.race_id)
                                .where(where).order_by(Heat.id.desc())
                                .offset(offset).limit(limit)).all()
    else:
        # A heat's entries are a JSON list, which neither SQLite nor PostgreSQL indexes the
        # same way: the pairs (two small columns a heat) are matched here instead.
        wanted = set(entry_ids)
        ids = [hid for hid, eids in session.execute(
            sa.select(Heat.id, Heat.entry_ids).where(where).order_by(Heat.id.desc()))
            if wanted.intersection(eids or [])]
        total = len(ids)
        chosen = ids[offset:offset + limit]
        heats = session.execute(sa.select(Heat, Race.name).join(Race, Race.id == Heat.race_id)
                                .where(Heat.id.in_(chosen)).order_by(Heat.id.desc())
                                ).all() if chosen else []
    return _rows(session, heats), total


def _rows(session: Session, page: Sequence[sa.Row[Heat, str]]) -> list[HeatRow]:
    """The page's heats with their latest job's result and their entries' names."""
    if not page:
        return []
    heats = [h for h, _ in page]
    latest = (sa.select(sa.func.max(EvaluationJob.id))
              .where(EvaluationJob.heat_id.in_([h.id for h in heats]))
              .group_by(EvaluationJob.heat_id))
    jobs = {heat_id: (job_id, status, data) for heat_id, job_id, status, data in session.execute(
        sa.select(EvaluationJob.heat_id, EvaluationJob.id, EvaluationJob.status, Result.data)
        .outerjoin(Result, Result.job_id == EvaluationJob.id)
        .where(EvaluationJob.id.in_(latest)))}
    labels = browse.entry_labels(session, sorted({e for h in heats for e in h.entry_ids}))
    rows = []
    for h, race_name in page:
        job_id, status, data = jobs.get(h.id, (None, "", None))
        rows.append(HeatRow(h.id, h.race_id, race_name, heat_title(h.round_no, h.stage),
                            h.created_at, job_id, str(status or ""),
                            heat_winner(h.positions or []), _cars(h, data or {}, labels)))
    return rows


def _cars(heat: Heat, data: Mapping[str, Any],
          labels: Mapping[int, browse.EntryLabel]) -> list[HeatCar]:
    """The heat's cars, best first (in car order before it is raced)."""
    found = data.get("cars")
    blocks: list[Any] = found if isinstance(found, list) else []
    block_of = {eid: (blocks[i] if i < len(blocks) and isinstance(blocks[i], dict) else {})
                for i, eid in enumerate(heat.entry_ids)}
    order = list(heat.positions) if heat.positions else list(heat.entry_ids)
    winner_time = _number(block_of.get(order[0], {}).get("ranking_time_s")) \
        if heat.positions else None
    cars = []
    for place, eid in enumerate(order, start=1):
        block = block_of.get(eid, {})
        trials = [t for t in block.get("trials") or [] if isinstance(t, dict)]
        time_s = _number(block.get("ranking_time_s"))
        gap = time_s - winner_time if place > 1 and time_s is not None \
            and winner_time is not None else None
        label = labels.get(eid)
        cars.append(HeatCar(
            eid, label.racer if label else f"entry {eid}", label.model if label else "",
            place if heat.positions else None, str(block.get("status") or ""), time_s,
            None if gap is None else round(gap, 6), int(block.get("ranking_laps") or 0),
            sum(int(t.get("off_track_count") or 0) for t in trials),
            sum(int(t.get("collision_count") or 0) for t in trials),
            round(sum(float(t.get("penalty_s") or 0.0) for t in trials), 6)))
    return cars


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def podium(session: Session, race: Race) -> list[str]:
    """The closed ``race``'s first three racers' names (the knockout's final order, else the
    rating table's: ``league.rules.knockout.finishing_order``); empty while it is not closed."""
    if race.status != RaceStatus.CLOSED:
        return []
    order = [uid for uid, ranked in knockout.finishing_order(session, race) if ranked][:PODIUM]
    names = dict(session.execute(sa.select(User.id, User.name).where(User.id.in_(order))).all())
    return [names[uid] for uid in order]


def standing(session: Session, entry: Entry) -> Standing:
    """Where head-to-head ``entry`` stands: racing, replaced or raced (see :class:`Standing`),
    its heats, wins, conservative rating and rank in the rating table."""
    race = entry.race
    newer = session.execute(
        sa.select(PolicyModel.version).join(Entry, Entry.model_id == PolicyModel.id)
        .where(Entry.race_id == race.id, Entry.racer_id == entry.racer_id,
               Entry.disqualified_at.is_(None),
               sa.or_(Entry.submitted_at > entry.submitted_at,
                      sa.and_(Entry.submitted_at == entry.submitted_at, Entry.id > entry.id)))
        .order_by(Entry.submitted_at.desc(), Entry.id.desc()).limit(1)).scalar()
    if race.status == RaceStatus.CLOSED:
        state = EntryState.RACED
    else:
        state = EntryState.RACING if newer is None else EntryState.REPLACED
    tally = headtohead.heat_tallies(session, race).get(entry.id, headtohead.HeatTally())
    rating = session.scalar(sa.select(Rating).where(Rating.race_id == race.id,
                                                    Rating.entry_id == entry.id))
    rank = next((row.rank for row in headtohead.rating_table(session, race)
                 if row.entry_id == entry.id), None)
    return Standing(state, newer if state == EntryState.REPLACED else None, tally.heats,
                    tally.wins,
                    round(rating.conservative, 3) if rating and rating.heats else None, rank)


def heat_jobs(session: Session, heat_ids: Collection[int]) -> dict[int, int]:
    """The latest job of each of ``heat_ids`` that raced it, by heat (a bracket's replays)."""
    if not heat_ids:
        return {}
    return {heat_id: job_id for heat_id, job_id in session.execute(
        sa.select(EvaluationJob.heat_id, sa.func.max(EvaluationJob.id))
        .where(EvaluationJob.heat_id.in_(list(heat_ids)),
               EvaluationJob.status == JobStatus.SUCCEEDED)
        .group_by(EvaluationJob.heat_id)) if heat_id is not None}
