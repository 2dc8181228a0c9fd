"""Head-to-head heats as pages list them: a race's heats newest first, a racer's and an
entry's latest heats, the final podium, and where an entry stands in its race (the garage).

A *heat* here is one ``Heat`` row: a pairing raced by one job, whose result JSON holds each
car's block (``cars[i]`` is ``heat.entry_ids[i]``) with its trials (the seat-swapped runs,
one replay each). A car's time is its ``ranking_time_s``; its gap is that time minus the
heat winner's (the first of ``Heat.positions``). Off-tracks, collisions and penalties are
summed over the car's trials.

A page costs a fixed number of queries whatever the race's size, and reads only its own heats:
how many heats match (a racer's through the heats' entry links, ``heat_entries``), the heats of
the page with their latest jobs, the results this process has not read yet (a result is
written once, so its cars are read from its JSON once: ``league.read.cache.written_once``),
the names of their entries (never one query per heat). Queries only; functions take a session
and never commit. Who may see the race is the caller's check.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.heat_order import heat_winner
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    HeatEntry,
    JobStatus,
    League,
    PolicyModel,
    Race,
    RaceStatus,
    Rating,
    Result,
    User,
)
from league.read import browse, cache
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
    where = Heat.race_id == race.id
    if racer:
        mine = (sa.select(Entry.id).join(User, User.id == Entry.racer_id)
                .where(Entry.race_id == race.id, User.name == racer))
        where = sa.and_(where, _with_entries(mine))
    return _heat_page(session, where, (page - 1) * per_page, per_page)


def race_heats_kept(session: Session, race: Race, *, racer: str | None = None, page: int = 1,
                    per_page: int = 50) -> tuple[list[HeatRow], int]:
    """:func:`race_heats`, read again only when a heat list of ``race`` may have changed
    (:func:`league.read.cache.heat_list_version`): the very same rows object until then, so
    what is rendered from it can be kept beside it (``web.pagecache.cached_part``)."""
    token = cache.heat_list_version(session, race)
    return cache.kept_for(session, _kept_key(race, racer, page, per_page), token,
                          lambda: race_heats(session, race, racer=racer, page=page,
                                             per_page=per_page))


def race_heats_current(session: Session, race: cache.RaceKey, *, racer: str | None = None,
                       page: int = 1, per_page: int = 50) -> tuple[list[HeatRow], int] | None:
    """What :func:`race_heats_kept` hands out now, without reading the heats: None when it
    would read them (the race's heat lists changed, or this page was never read here)."""
    token = cache.heat_list_version(session, race)
    found: tuple[list[HeatRow], int] | None = cache.kept_current(
        session, _kept_key(race, racer, page, per_page), token)
    return found


def _kept_key(race: cache.RaceKey, racer: str | None, page: int,
              per_page: int) -> tuple[Any, ...]:
    return ("heats", race.id, racer or "", page, per_page)


def entry_heats(session: Session, entry: Entry, limit: int = 10) -> list[HeatRow]:
    """The latest ``limit`` heats ``entry`` raced in (or is drawn in), newest first."""
    where = sa.and_(Heat.race_id == entry.race_id, _with_entries(entry.id))
    return _heat_page(session, where, 0, limit)[0]


def racer_heats(session: Session, racer: User, viewer: User | None,
                limit: int = 5) -> list[HeatRow]:
    """``racer``'s latest ``limit`` head-to-head heats, newest first, in leagues listed for
    ``viewer`` (a profile never shows a private league to outsiders)."""
    theirs = (sa.select(Entry.id).join(Race, Race.id == Entry.race_id)
              .join(League, League.id == Race.league_id)
              .where(Entry.racer_id == racer.id, browse.listed_leagues_filter(viewer)))
    return _heat_page(session, _with_entries(theirs), 0, limit)[0]


def _with_entries(entries: int | sa.Select[Any]) -> sa.ColumnElement[bool]:
    """Heats in which ``entries`` (an entry id, or a query of them) are drawn: found through
    the heats' entry links (``heat_entries``, indexed by entry), never their JSON lists."""
    linked = sa.select(HeatEntry.heat_id).where(
        HeatEntry.entry_id == entries if isinstance(entries, int)
        else HeatEntry.entry_id.in_(entries))
    return Heat.id.in_(linked)


def _heat_page(session: Session, where: sa.ColumnElement[bool], offset: int,
               limit: int) -> tuple[list[HeatRow], int]:
    """The heats matching ``where``, newest first, from ``offset``; and how many match.

    Counted and paged in SQL: a page reads its own heats, their latest jobs and results only,
    whatever the race's size (plain columns, no ORM objects: a page is read, never changed).
    A result's cars are read from its JSON once per process (results are written once).
    """
    total = session.scalar(sa.select(sa.func.count(Heat.id)).where(where)) or 0
    if offset >= total:
        return [], total
    ids = (sa.select(Heat.id).where(where).order_by(Heat.id.desc()).offset(offset).limit(limit)
           .subquery())
    latest = (sa.select(sa.func.max(EvaluationJob.id)).where(EvaluationJob.heat_id == Heat.id)
              .correlate(Heat).scalar_subquery())
    page = session.execute(
        sa.select(Heat.id, Heat.race_id, Heat.round_no, Heat.stage, Heat.entry_ids,
                  Heat.positions, Heat.created_at, Race.name.label("race_name"),
                  EvaluationJob.id.label("job_id"), EvaluationJob.status.label("job_status"),
                  Result.id.label("result_id"), Result.created_at.label("result_at"))
        .join(ids, ids.c.id == Heat.id).join(Race, Race.id == Heat.race_id)
        .outerjoin(EvaluationJob, EvaluationJob.id == latest)
        .outerjoin(Result, Result.job_id == EvaluationJob.id)
        .order_by(Heat.id.desc())).all()
    results = cache.written_once(
        session, [(h.result_id, h.result_at) for h in page if h.result_id is not None],
        lambda keys: _result_cars(session, keys))
    labels = browse.entry_labels(session, sorted({e for h in page for e in h.entry_ids}))
    return [HeatRow(h.id, h.race_id, h.race_name, heat_title(h.round_no, h.stage),
                    h.created_at, h.job_id, str(h.job_status or ""),
                    heat_winner(h.positions or []),
                    _cars(h.entry_ids, h.positions, results.get((h.result_id, h.result_at), ()),
                          labels)) for h in page], total


class _Car(NamedTuple):
    """What a heat's result says of one car (its block of the result JSON): a tuple of plain
    values, which the garbage collector stops tracking (a process keeps thousands)."""

    status: str
    time_s: float | None
    laps: int
    off_tracks: int
    collisions: int
    penalty_s: float


def _result_cars(session: Session, keys: list[tuple[int, dt.datetime]]
                 ) -> dict[tuple[int, dt.datetime], tuple[_Car, ...]]:
    """The cars of each result (by id and creation time), in car order."""
    wanted = set(keys)
    found = {}
    for result_id, created_at, data in session.execute(
            sa.select(Result.id, Result.created_at, Result.data)
            .where(Result.id.in_([k[0] for k in keys]))):
        if (result_id, created_at) in wanted:
            blocks = data.get("cars") if isinstance(data, dict) else None
            found[result_id, created_at] = tuple(
                _car(b if isinstance(b, dict) else {})
                for b in (blocks if isinstance(blocks, list) else []))
    return found


def _car(block: Mapping[str, Any]) -> _Car:
    trials = [t for t in block.get("trials") or [] if isinstance(t, dict)]
    return _Car(str(block.get("status") or ""), _number(block.get("ranking_time_s")),
                int(block.get("ranking_laps") or 0),
                sum(int(t.get("off_track_count") or 0) for t in trials),
                sum(int(t.get("collision_count") or 0) for t in trials),
                round(sum(float(t.get("penalty_s") or 0.0) for t in trials), 6))


def _cars(entry_ids: Sequence[int], positions: Sequence[int] | None, result: Sequence[_Car],
          labels: Mapping[int, browse.EntryLabel]) -> list[HeatCar]:
    """A heat's cars, best first (in car order before it is raced)."""
    car_of = {eid: result[i] for i, eid in enumerate(entry_ids) if i < len(result)}
    order = list(positions) if positions else list(entry_ids)
    first = car_of.get(order[0])
    winner_time = first.time_s if positions and first else None
    cars = []
    for place, eid in enumerate(order, start=1):
        car = car_of.get(eid, _NO_RESULT)
        gap = car.time_s - winner_time if place > 1 and car.time_s is not None \
            and winner_time is not None else None
        label = labels.get(eid)
        cars.append(HeatCar(
            eid, label.racer if label else f"entry {eid}", label.model if label else "",
            place if positions else None, car.status, car.time_s,
            None if gap is None else round(gap, 6), car.laps, car.off_tracks, car.collisions,
            car.penalty_s))
    return cars


_NO_RESULT = _Car("", None, 0, 0, 0, 0.0)


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
