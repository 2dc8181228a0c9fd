"""Race and season lifecycles: opening and closing races, season points, standings, and
promotion and relegation when a season ends.

A race goes ``scheduled → open → closed``; a head-to-head race with a knockout passes through
``finals`` on the way, when its window has ended (at its closing time, or an organizer closed
it early) and its bracket is being raced: its points come when the final is decided
(:func:`advance_race`, :mod:`league.rules.knockout`).

Functions take a session and never commit; the scheduler (or an organizer's request) owns the
transaction.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.race_settings import Format
from league.models import (
    AuditAction,
    Division,
    DivisionMove,
    Entry,
    EvaluationJob,
    Heat,
    JobStatus,
    Membership,
    NotificationEvent,
    Race,
    RacePoints,
    RaceStatus,
    Season,
    SeasonStatus,
    User,
    utcnow,
)
from league.rules import audit, headtohead, knockout, live, notifications
from league.rules.leaderboard import race_leaderboard
from league.rules.leagues import require_manager

PODIUM = 3  # positions that count as a podium in the standings' tie-breaks


class MoveKind(enum.StrEnum):
    """The kinds of :class:`DivisionMove`."""

    PROMOTED = "promoted"
    RELEGATED = "relegated"


class Step(enum.StrEnum):
    """What one step of :func:`advance_race` did to a race."""

    WAITING = "waiting"  # not due, or evaluations still pending: tried again next time
    STAGE_PLANNED = "stage-planned"  # in its finals: the next knockout stage's heats queued
    CLOSED = "closed"  # closed and scored
    CLOSED_WITHOUT_KNOCKOUT = "closed-without-knockout"  # too few rated entries for a bracket


CLOSING = frozenset({Step.CLOSED, Step.CLOSED_WITHOUT_KNOCKOUT})  # the steps that close a race


@dataclass(frozen=True)
class StandingRow:
    """One racer's line in a division's season standings."""

    position: int
    user_id: int
    racer: str
    points: int
    wins: int  #: races won within the division
    podiums: int  #: top-3 places within the division
    races: int  #: closed races taken part in
    reached_at: dt.datetime  #: when the racer's total was reached (the last tie-break)
    zone: MoveKind | None  #: where the racer would move if the season ended now


@dataclass
class _Tally:
    """A racer's running totals while the standings are summed up."""

    racer: str
    points: int = 0
    wins: int = 0
    podiums: int = 0
    races: int = 0
    reached: tuple[dt.datetime, int] | None = None  #: (race closing time, race id)


def open_due_races(session: Session, now: dt.datetime) -> list[Race]:
    """Open the scheduled races whose opening time has passed."""
    races = session.scalars(sa.select(Race).where(Race.status == RaceStatus.SCHEDULED,
                                                  Race.opens_at <= now)
                            .order_by(Race.opens_at, Race.id)).all()
    for race in races:
        race.status = RaceStatus.OPEN
        notifications.race_moved(session, race, NotificationEvent.RACE_OPENED, now)
    return list(races)


def close_due_races(session: Session, now: dt.datetime) -> list[Race]:
    """Move every due race on one step (:func:`advance_race`); returns those closed."""
    closed = []
    for race_id in races_due_to_close(session, now):
        if advance_race(session, race_id, now) in CLOSING:
            closed.append(session.get_one(Race, race_id))
    return closed


def races_due_to_close(session: Session, now: dt.datetime) -> list[int]:
    """Ids of the races to move on, earliest closing first: those in their finals, and the
    others past their closing time and not closed yet."""
    return list(session.scalars(sa.select(Race.id).where(
        Race.status != RaceStatus.CLOSED,
        sa.or_(Race.closes_at <= now, Race.status == RaceStatus.FINALS))
        .order_by(Race.closes_at, Race.id)))


def advance_race(session: Session, race_id: int, now: dt.datetime) -> Step:
    """Move one race towards closing by one step; what it did.

    The lifecycle ``open → (finals →) closed``, in the order the code applies it:

    1. due: a race in its finals, or any other race past its closing time;
    2. a due race waits while any of its evaluations is queued or running, so every entry
       submitted in time is on the frozen leaderboard or rating table;
    3. a head-to-head race with a knockout goes to its finals (:func:`knockout.start_finals`)
       and plays them, each step planning the next stage once the previous one is decided
       (:func:`knockout.advance_knockout`); with too few rated entries for a bracket it
       closes at once from its rating table (:attr:`Step.CLOSED_WITHOUT_KNOCKOUT`);
       a live finals event (:mod:`league.rules.live`) holds the bracket until it starts and
       the closing until every raced heat has been aired;
    4. a race closes (:func:`close_race`) when no stage is left to play.

    Every step reads where the race stands from the database, under a lock on its row, so a
    scheduler that runs late, twice or after a restart carries on where it stopped.
    """
    race = _locked_race(session, race_id)
    if race is None or race.status == RaceStatus.CLOSED or \
            (race.status != RaceStatus.FINALS and race.closes_at > now) or _busy(session, race):
        return Step.WAITING
    if knockout.has_knockout(race):
        if live.holds_finals(session, race):
            knockout.start_finals(session, race, now)  # the window ends; the bracket waits
            return Step.WAITING
        if not knockout.start_finals(session, race, now):
            close_race(session, race, now)
            return Step.CLOSED_WITHOUT_KNOCKOUT
        if knockout.advance_knockout(session, race, now):
            return Step.STAGE_PLANNED
        if live.broadcast_pending(session, race):
            return Step.WAITING
    close_race(session, race, now)
    return Step.CLOSED


def _locked_race(session: Session, race_id: int) -> Race | None:
    """The race, read fresh and its row locked until the transaction ends: the scheduler and
    an organizer's "close now" never act on one race at the same time."""
    return session.scalars(sa.select(Race).where(Race.id == race_id).with_for_update()
                           .execution_options(populate_existing=True)).first()


def _busy(session: Session, race: Race) -> bool:
    """Whether an evaluation of ``race`` (time trial or heat) is still queued or running."""
    pending = EvaluationJob.status.in_(headtohead.PENDING)
    trials = sa.select(EvaluationJob.id).join(Entry, EvaluationJob.entry_id == Entry.id) \
        .where(Entry.race_id == race.id, pending)
    heats = sa.select(EvaluationJob.id).join(Heat, EvaluationJob.heat_id == Heat.id) \
        .where(Heat.race_id == race.id, pending)
    return session.scalar(sa.select(sa.or_(trials.exists(), heats.exists()))) or False


def finishing_order(session: Session, race: Race) -> list[tuple[int, bool]]:
    """The final order of ``race`` as (user id, ranked) pairs, best first."""
    if race.format == Format.HEAD_TO_HEAD:
        return knockout.finishing_order(session, race)
    return [(row.user_id, row.rank is not None) for row in race_leaderboard(session, race)]


def close_race(session: Session, race: Race, now: dt.datetime) -> list[RacePoints]:
    """Close ``race``: freeze it and award its season points, once.

    The last step of ending a race, taken as it stands: the callers that end a race
    (:func:`close_race_now`, :func:`advance_race`, :func:`finalize_season`) race its knockout
    finals first. Closing cancels the race's queued evaluations. A second call changes
    nothing and returns the points awarded the first time.

    Points: racers are placed by the race's final order (the leaderboard, or for
    head-to-head the knockout and rating table) *within their division*, the division of
    their league membership at closing. Racers without one (no division, or not a member of
    a public league) form their own group, stored with division None. The n-th of a group
    gets the n-th number of the season's points table (0 beyond its end); an unranked racer
    is recorded with position None and 0 points. A race outside a season awards nothing.
    """
    if race.status == RaceStatus.CLOSED:
        return list(session.scalars(sa.select(RacePoints).where(RacePoints.race_id == race.id)
                                    .order_by(RacePoints.id)))
    order = finishing_order(session, race)
    race.status = RaceStatus.CLOSED
    race.closed_at = now
    _cancel_queued(session, race, now)
    notifications.race_moved(session, race, NotificationEvent.RACE_CLOSED, now)
    if race.season_id is None:
        return []
    season = session.get_one(Season, race.season_id)
    division_of = dict(session.execute(
        sa.select(Membership.user_id, Membership.division_id)
        .where(Membership.league_id == race.league_id)).all())
    placed: dict[int | None, int] = {}
    awarded = []
    for user_id, ranked in order:
        div = division_of.get(user_id)
        position = None
        points = 0
        if ranked:
            position = placed[div] = placed.get(div, 0) + 1
            table = season.points_table
            points = table[position - 1] if position <= len(table) else 0
        awarded.append(RacePoints(race_id=race.id, user_id=user_id, division_id=div,
                                  position=position, points=points, awarded_at=now))
    session.add_all(awarded)
    session.flush()
    return awarded


def _cancel_queued(session: Session, race: Race, now: dt.datetime) -> None:
    entries = sa.select(Entry.id).where(Entry.race_id == race.id)
    heats = sa.select(Heat.id).where(Heat.race_id == race.id)
    for job in session.scalars(sa.select(EvaluationJob).where(
            EvaluationJob.status == JobStatus.QUEUED,
            sa.or_(EvaluationJob.entry_id.in_(entries), EvaluationJob.heat_id.in_(heats)))):
        job.status = JobStatus.CANCELLED
        job.finished_at = now


def movement_counts(season: Season, ranked: int, top: bool, bottom: bool) -> tuple[int, int]:
    """How many of a division's ``ranked`` racers go up and down at the season's end.

    ``promote``/``relegate`` are racers, or with ``movement_in_percent`` percentages of the
    division's racers in the standings, rounded down (10 % of 15 racers moves 1). The top
    division promotes nobody, the bottom one relegates nobody. In a division too small for
    both, promotion wins: relegation takes only the racers left below the promoted ones.
    """
    def count(value: int) -> int:
        return ranked * value // 100 if season.movement_in_percent else value

    up = 0 if top else min(count(season.promote), ranked)
    down = 0 if bottom else min(count(season.relegate), ranked - up)
    return up, down


def season_standings(session: Session, season: Season,
                     division: Division | None) -> list[StandingRow]:
    """The standings of one division (None: racers without a division) in ``season``.

    Racers are those with points rows from the season's closed races in that division (a
    racer who took part unranked is listed with 0 points). Order, each rule breaking the ties
    of the ones before:

    1. more points;
    2. more wins (first places within the division);
    3. more podiums (top-3 places within the division);
    4. earlier achievement: the closing time of the race after which the racer's running
       total first equalled their final total (points are never negative, so this is the
       last race that gave them points, or their first race if they have none); the earlier
       is better, as they got there first (a race closed at the same time: lower race id);
    5. the earlier sign-up (lower user id), so positions are always distinct.
    """
    div_filter = RacePoints.division_id.is_(None) if division is None \
        else RacePoints.division_id == division.id
    rows = session.execute(
        sa.select(RacePoints.user_id, User.name, RacePoints.position, RacePoints.points,
                  Race.closed_at, Race.closes_at, Race.id)
        .join(Race, Race.id == RacePoints.race_id).join(User, User.id == RacePoints.user_id)
        .where(Race.season_id == season.id, Race.status == RaceStatus.CLOSED, div_filter)
        .order_by(sa.func.coalesce(Race.closed_at, Race.closes_at), Race.id))
    tally: dict[int, _Tally] = {}
    for user_id, name, position, points, closed_at, closes_at, race_id in rows:
        t = tally.setdefault(user_id, _Tally(name))
        t.points += points
        t.wins += position == 1
        t.podiums += position is not None and position <= PODIUM
        t.races += 1
        if points > 0 or t.reached is None:
            t.reached = (closed_at or closes_at, race_id)
    ordered = sorted(tally.items(), key=lambda kv: (-kv[1].points, -kv[1].wins,
                                                    -kv[1].podiums, kv[1].reached, kv[0]))
    up, down = _zones(session, season, division, len(ordered))
    out = []
    for n, (user_id, t) in enumerate(ordered, start=1):
        zone = MoveKind.PROMOTED if n <= up else \
            MoveKind.RELEGATED if n > len(ordered) - down else None
        assert t.reached is not None
        out.append(StandingRow(position=n, user_id=user_id, racer=t.racer, points=t.points,
                               wins=t.wins, podiums=t.podiums, races=t.races,
                               reached_at=t.reached[0], zone=zone))
    return out


def _zones(session: Session, season: Season, division: Division | None,
           ranked: int) -> tuple[int, int]:
    if division is None:
        return 0, 0
    tiers = _divisions(session, season)
    at = [d.id for d in tiers].index(division.id)
    return movement_counts(season, ranked, top=at == 0, bottom=at == len(tiers) - 1)


def _divisions(session: Session, season: Season) -> list[Division]:
    return list(session.scalars(sa.select(Division).where(Division.league_id ==
                                                          season.league_id)
                                .order_by(Division.tier)))


def finalize_season(session: Session, season: Season, now: dt.datetime) -> list[DivisionMove]:
    """End ``season``: close its remaining races, apply promotion and relegation, once.

    Its races still open end now: a head-to-head race with a knockout to race goes to its
    finals (:func:`knockout.start_finals`), any other closes. While a race of the season is
    in its finals the season waits: nothing more happens and no move is returned; the
    scheduler calls again once the finals have closed the race (:func:`due_seasons`).

    Division k's top ``promote`` racers move up to the division above (tier k - 1), its
    bottom ``relegate`` racers down to the one below (counts: :func:`movement_counts`). Only
    racers still in that division move (someone an organizer moved meanwhile stays put);
    every move is decided from the final standings before any is applied. Each move is
    recorded as a :class:`DivisionMove` and the memberships updated. A second call changes
    nothing and returns the moves of the first.
    """
    if season.status == SeasonStatus.FINISHED:
        return list(session.scalars(sa.select(DivisionMove).where(
            DivisionMove.season_id == season.id).order_by(DivisionMove.id)))
    in_finals = False
    for race in session.scalars(sa.select(Race).where(Race.season_id == season.id,
                                                      Race.status != RaceStatus.CLOSED)
                                .order_by(Race.id)).all():
        if knockout.start_finals(session, race, now):
            in_finals = True
        else:
            close_race(session, race, now)
    if in_finals:
        return []
    tiers = _divisions(session, season)
    members = {m.user_id: m for m in session.scalars(
        sa.select(Membership).where(Membership.league_id == season.league_id))}
    planned: list[tuple[Membership, Division, Division, MoveKind]] = []
    for at, division in enumerate(tiers):
        for row in season_standings(session, season, division):
            m = members.get(row.user_id)
            if row.zone is None or m is None or m.division_id != division.id:
                continue
            target = tiers[at - 1] if row.zone == MoveKind.PROMOTED else tiers[at + 1]
            planned.append((m, division, target, row.zone))
    moves = []
    for m, source, target, kind in planned:
        m.division_id = target.id
        moves.append(DivisionMove(season_id=season.id, user_id=m.user_id,
                                  from_division_id=source.id, to_division_id=target.id,
                                  kind=kind))
    session.add_all(moves)
    season.status = SeasonStatus.FINISHED
    season.finalized_at = now
    session.flush()
    return moves


def start_due_seasons(session: Session, now: dt.datetime) -> list[Season]:
    """Mark planned seasons whose start has passed as active."""
    seasons = session.scalars(sa.select(Season).where(Season.status == SeasonStatus.PLANNED,
                                                      Season.starts_at <= now)).all()
    for season in seasons:
        season.status = SeasonStatus.ACTIVE
    return list(seasons)


def due_seasons(session: Session, now: dt.datetime) -> list[Season]:
    """Seasons to finalize: ended, not finished, and no race of theirs still waiting to close
    (in its finals, or past its closing time with evaluations running); races scheduled to
    close after the season's end are ended by :func:`finalize_season`."""
    waiting = sa.select(Race.id).where(
        Race.season_id == Season.id, Race.status != RaceStatus.CLOSED,
        sa.or_(Race.closes_at <= now, Race.status == RaceStatus.FINALS))
    return list(session.scalars(sa.select(Season).where(
        Season.status != SeasonStatus.FINISHED, Season.ends_at <= now, ~waiting.exists())
        .order_by(Season.ends_at, Season.id)))


def close_race_now(session: Session, race: Race, user: User,
                   now: dt.datetime | None = None) -> list[RacePoints]:
    """An organizer ends a race early; returns the points awarded ([] while in its finals).

    A race with a knockout to race goes to its finals instead of closing
    (:func:`knockout.start_finals`): the scheduler plays the bracket and closes the race when
    the final is decided (:func:`advance_race`). Any other race closes now
    (:func:`close_race`), a race whose knockout has too few rated entries from its rating
    table (:func:`knockout.finals_plan` says which beforehand). Idempotent: a race in its
    finals stays there; a closed race returns the points of its closing.
    """
    require_manager(session, race.league, user)
    now = now or utcnow()
    _locked_race(session, race.id)  # the same object, refreshed
    if race.status == RaceStatus.CLOSED:
        return close_race(session, race, now)
    finals = knockout.start_finals(session, race, now)
    audit.record(session, race.league, user, AuditAction.RACE_CLOSED,
                 f"race {race.id} ({race.name})",
                 outcome="to its knockout finals" if finals else "closed")
    return [] if finals else close_race(session, race, now)
