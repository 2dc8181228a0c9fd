"""What the public pages and the API list: leagues a viewer may see, races, recent results.

Queries only; functions take a session and never commit. Visibility follows
:func:`league.rules.leagues.can_view`: public leagues are listed for everyone; unlisted ones only
for their members (anyone with the link may still open them); private ones for members.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager, joinedload

from evaluator.race_settings import Format
from league.models import (
    Division,
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    League,
    Membership,
    PolicyModel,
    Race,
    RacePoints,
    RaceStatus,
    Result,
    Role,
    Season,
    SeasonStatus,
    User,
    Visibility,
)
from league.read import cache, live
from league.rules import headtohead
from league.rules.seasons import StandingRow

PROFILE_RACES = 25  # races shown on a racer's profile (the latest they entered)


def listed_leagues_filter(viewer: User | None) -> sa.ColumnElement[bool]:
    """SQL condition: the leagues listed for ``viewer`` (admins see every league)."""
    if viewer is not None and viewer.role == Role.ADMIN:
        return sa.true()
    public = League.visibility == Visibility.PUBLIC
    if viewer is None:
        return public
    member = sa.select(Membership.league_id).where(Membership.user_id == viewer.id)
    return sa.or_(public, League.id.in_(member))


def listed_leagues(session: Session, viewer: User | None, *, offset: int = 0,
                   limit: int | None = None) -> tuple[Sequence[League], int]:
    """One page of the leagues listed for ``viewer`` (newest first) and how many there are."""
    cond = listed_leagues_filter(viewer)
    total = session.scalar(sa.select(sa.func.count(League.id)).where(cond)) or 0
    stmt = sa.select(League).where(cond).order_by(League.created_at.desc(), League.id.desc())
    stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all(), total


def league_races(session: Session, league: League) -> Sequence[Race]:
    """A league's races: open ones first, then scheduled, then closed (newest first)."""
    order = sa.case((Race.status == RaceStatus.OPEN, 0),
                    (Race.status == RaceStatus.SCHEDULED, 1), else_=2)
    return session.scalars(sa.select(Race).where(Race.league_id == league.id)
                           .order_by(order, Race.closes_at.desc(), Race.id.desc())).all()


def open_races(session: Session, viewer: User | None, now: dt.datetime,
               limit: int = 10) -> Sequence[Race]:
    """Races taking submissions now in leagues listed for ``viewer``, closing soonest first."""
    return session.scalars(
        sa.select(Race).join(League, League.id == Race.league_id)
        .where(listed_leagues_filter(viewer), Race.status == RaceStatus.OPEN,
               Race.opens_at <= now, Race.closes_at > now)
        .options(contains_eager(Race.league))
        .order_by(Race.closes_at, Race.id).limit(limit)).all()


def recent_results(session: Session, viewer: User | None,
                   limit: int = 10) -> Sequence[tuple[Result, EvaluationJob, Race, User]]:
    """The newest time-trial results of races in leagues listed for ``viewer``."""
    stmt = (sa.select(Result, EvaluationJob, Race, User)
            .join(EvaluationJob, EvaluationJob.id == Result.job_id)
            .join(Entry, Entry.id == EvaluationJob.entry_id)
            .join(Race, Race.id == Entry.race_id)
            .join(League, League.id == Race.league_id)
            .join(User, User.id == Entry.racer_id)
            .where(listed_leagues_filter(viewer), EvaluationJob.kind == JobKind.TIME_TRIAL,
                   EvaluationJob.status == JobStatus.SUCCEEDED,
                   Entry.disqualified_at.is_(None))
            .order_by(Result.id.desc()).limit(limit))
    return [tuple(row) for row in session.execute(stmt)]  # type: ignore[misc]


def races_page(session: Session, viewer: User | None, *, league: League | None = None,
               status: RaceStatus | None = None, offset: int = 0,
               limit: int | None = None) -> tuple[Sequence[Race], int]:
    """One page of races and how many there are: those of ``league`` (which the caller has
    checked ``viewer`` may see), else of every league listed for ``viewer``; optionally only
    those with ``status``. Open races first, then scheduled, then closed (newest first)."""
    cond = (Race.league_id == league.id if league is not None
            else Race.league_id.in_(sa.select(League.id).where(listed_leagues_filter(viewer))))
    if status is not None:
        cond = sa.and_(cond, Race.status == status)
    total = session.scalar(sa.select(sa.func.count(Race.id)).where(cond)) or 0
    order = sa.case((Race.status == RaceStatus.OPEN, 0),
                    (Race.status == RaceStatus.SCHEDULED, 1), else_=2)
    stmt = (sa.select(Race).where(cond)
            .order_by(order, Race.closes_at.desc(), Race.id.desc()).offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all(), total


def racer_entries(session: Session, racer: User, *, offset: int = 0,
                  limit: int | None = None) -> tuple[Sequence[Entry], int]:
    """One page of ``racer``'s entries (newest first), their races, leagues and models loaded,
    and how many there are."""
    cond = Entry.racer_id == racer.id
    total = session.scalar(sa.select(sa.func.count(Entry.id)).where(cond)) or 0
    stmt = (sa.select(Entry).where(cond)
            .options(joinedload(Entry.race).joinedload(Race.league), joinedload(Entry.model))
            .order_by(Entry.submitted_at.desc(), Entry.id.desc()).offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all(), total


# --------------------------------------------------------------------------- public pages
@dataclass(frozen=True)
class DivisionTable:
    """One division's standings in a season (division None: racers without a division)."""

    division: Division | None
    rows: list[StandingRow]


@dataclass(frozen=True)
class ProfileRace:
    """Where a racer stands in one race, for their profile."""

    race: Race
    league: League
    entries: int  #: the racer's entries in the race
    rank: int | None  #: leaderboard rank (time trial) or rating rank (head-to-head)
    time_s: float | None  #: time by the race's ranking method (time trial)
    rating: float | None  #: conservative rating (head-to-head)
    model: str  #: the model the shown result (or rating) belongs to; "" if none yet
    status: str  #: the result's status; "" while no result counts
    job_id: int | None  #: the evaluation shown (its replay), time trials only


@dataclass(frozen=True)
class SeasonPoints:
    """A racer's season points in one league's season."""

    season: Season
    league: League
    points: int
    races: int


@dataclass(frozen=True)
class RacerProfile:
    """What a racer's public profile shows a viewer (only leagues listed for that viewer)."""

    racer: User
    results: list[ProfileRace]
    seasons: list[SeasonPoints]
    leagues: list[tuple[League, str]]  #: league and the racer's division name ("" if none)


def _pending_jobs() -> sa.ColumnElement[bool]:
    return EvaluationJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))


def live_races(session: Session, viewer: User | None, limit: int = 10) -> Sequence[Race]:
    """Races with evaluations queued or running now, in leagues listed for ``viewer``."""
    trials = (sa.select(Entry.race_id)
              .join(EvaluationJob, EvaluationJob.entry_id == Entry.id).where(_pending_jobs()))
    heats = (sa.select(Heat.race_id)
             .join(EvaluationJob, EvaluationJob.heat_id == Heat.id).where(_pending_jobs()))
    return session.scalars(
        sa.select(Race).join(League, League.id == Race.league_id)
        .where(listed_leagues_filter(viewer), sa.or_(Race.id.in_(trials), Race.id.in_(heats)))
        .options(contains_eager(Race.league))
        .order_by(Race.closes_at, Race.id).limit(limit)).all()


def league_seasons(session: Session, league: League) -> Sequence[Season]:
    """A league's seasons, the latest start first."""
    return session.scalars(sa.select(Season).where(Season.league_id == league.id)
                           .order_by(Season.starts_at.desc(), Season.id.desc())).all()


def current_season(seasons: Sequence[Season]) -> Season | None:
    """The season a league page shows among ``seasons`` (:func:`league_seasons`): the
    active one, else the one that started last."""
    active = [s for s in seasons if s.status == SeasonStatus.ACTIVE]
    chosen = active or seasons
    return chosen[0] if chosen else None


def season_races(session: Session, season: Season) -> Sequence[Race]:
    """A season's races in the order they open."""
    return session.scalars(sa.select(Race).where(Race.season_id == season.id)
                           .order_by(Race.opens_at, Race.id)).all()


def season_tables(session: Session, season: Season) -> list[DivisionTable]:
    """The season's standings per division, top tier first; racers without a division
    follow when there are any (computed once per version: :mod:`league.read.cache`)."""
    divisions = session.scalars(sa.select(Division).where(Division.league_id == season.league_id)
                                .order_by(Division.tier)).all()
    tables = [DivisionTable(d, cache.season_standings_cached(session, season, d))
              for d in divisions]
    loose = cache.season_standings_cached(session, season, None)
    if loose:
        tables.append(DivisionTable(None, loose))
    return tables


def track_races(session: Session, viewer: User | None, track: str,
                limit: int = 50) -> Sequence[Race]:
    """Races on ``track`` in leagues listed for ``viewer``: open first, then the latest.
    A mystery track's race is listed once it has closed, not before (it would name the
    hidden track)."""
    order = sa.case((Race.status == RaceStatus.OPEN, 0),
                    (Race.status == RaceStatus.SCHEDULED, 1), else_=2)
    return session.scalars(
        sa.select(Race).join(League, League.id == Race.league_id)
        .where(Race.track == track, listed_leagues_filter(viewer),
               sa.or_(Race.mystery_track.is_(False), Race.status == RaceStatus.CLOSED))
        .options(contains_eager(Race.league))
        .order_by(order, Race.closes_at.desc(), Race.id.desc()).limit(limit)).all()


def racer_profile(session: Session, racer: User, viewer: User | None) -> RacerProfile:
    """``racer``'s results, season points and leagues, limited to leagues listed for
    ``viewer``, so a profile never shows a private (or unlisted) league to outsiders."""
    listed = listed_leagues_filter(viewer)
    races = session.execute(
        sa.select(Race, League, sa.func.count(Entry.id))
        .join(Entry, Entry.race_id == Race.id).join(League, League.id == Race.league_id)
        .where(Entry.racer_id == racer.id, listed)
        .group_by(Race.id, League.id)
        .order_by(sa.func.max(Entry.submitted_at).desc(), Race.id.desc())
        .limit(PROFILE_RACES)).all()
    results = [_race_result(session, racer, race, league, count)
               for race, league, count in races]
    seasons = [SeasonPoints(season, league, int(points or 0), int(count))
               for season, league, points, count in session.execute(
                   sa.select(Season, League, sa.func.sum(RacePoints.points),
                             sa.func.count(RacePoints.id))
                   .join(Race, Race.id == RacePoints.race_id)
                   .join(Season, Season.id == Race.season_id)
                   .join(League, League.id == Season.league_id)
                   .where(RacePoints.user_id == racer.id, listed)
                   .group_by(Season.id, League.id)
                   .order_by(Season.starts_at.desc(), Season.id.desc()))]
    joined = [(league, division or "") for league, division in session.execute(
        sa.select(League, Division.name)
        .join(Membership, Membership.league_id == League.id)
        .outerjoin(Division, Division.id == Membership.division_id)
        .where(Membership.user_id == racer.id, listed).order_by(League.name, League.id))]
    return RacerProfile(racer, results, seasons, joined)


def _race_result(session: Session, racer: User, race: Race, league: League,
                 entries: int) -> ProfileRace:
    if race.format == Format.HEAD_TO_HEAD:
        row = next((r for r in headtohead.rating_table(session, race)
                    if r.user_id == racer.id), None)
        return ProfileRace(race, league, entries, row.rank if row else None, None,
                          row.rating if row and row.heats else None, row.model if row else "",
                          "", None)
    lrow = next((r for r in cache.race_leaderboard_cached(session, race)
                 if r.user_id == racer.id), None)
    if lrow is None:
        return ProfileRace(race, league, entries, None, None, None, "", "", None)
    return ProfileRace(race, league, entries, lrow.rank, lrow.time_s, None, lrow.model,
                      lrow.status, lrow.job_id)


@dataclass(frozen=True)
class EntryLabel:
    """How an entry is named on a page: its racer and model."""

    racer: str
    user_id: int
    model: str  #: name and version


def entry_labels(session: Session, entry_ids: Sequence[int]) -> dict[int, EntryLabel]:
    """The racer and model of each of ``entry_ids`` (a knockout bracket's entrants)."""
    if not entry_ids:
        return {}
    rows = session.execute(
        sa.select(Entry.id, User.name, User.id, PolicyModel.name, PolicyModel.version)
        .join(User, User.id == Entry.racer_id).join(PolicyModel, PolicyModel.id == Entry.model_id)
        .where(Entry.id.in_(list(entry_ids))))
    return {eid: EntryLabel(racer, uid, f"{model} v{version}")
            for eid, racer, uid, model, version in rows}


# Built once: a statement that is the same object on every call skips building its cache key
# again (the race page reads it on every view).
_RACE_FOR_PAGE = (sa.select(Race).options(joinedload(Race.league), joinedload(Race.season))
                  .where(Race.id == sa.bindparam("race_id")))


def race_for_page(session: Session, race_id: int) -> Race | None:
    """Race ``race_id`` with its league and season loaded in the same query (the race page
    then reads them without further queries). Visibility is the caller's to check."""
    loaded: Race | None = session.execute(_RACE_FOR_PAGE, {"race_id": race_id}).scalar()
    return loaded


@dataclass(frozen=True)
class RaceState:
    """Every stored value a race page is rendered from, as plain rows (no ORM objects): the
    race's columns, its league's and season's, its divisions', and the viewer's user row and
    membership of the league (None for a visitor, an unknown user or a non-member). Two
    states are equal when none of these values differ."""

    race: tuple[Any, ...]
    league: tuple[Any, ...]
    season: tuple[Any, ...] | None
    divisions: tuple[tuple[Any, ...], ...]
    viewer: tuple[Any, ...] | None
    member: tuple[Any, ...] | None
    id: int
    format: str
    status: str
    ranking: str
    laps: int
    min_laps: int | None
    knockout_size: int
    track: str
    extra_tracks: list[dict[str, Any]] | None
    opens_at: dt.datetime
    closes_at: dt.datetime
    #: how many live events its page lists (:func:`league.read.live.race_banner`)
    events_shown: int


_RACES, _LEAGUES, _SEASONS = Race.__table__, League.__table__, Season.__table__
_DIVISIONS, _USERS, _MEMBERS = Division.__table__, User.__table__, Membership.__table__
_RACE_DIVISIONS = Race.divisions.property.secondary
_STATE_PARTS = (_RACES, _LEAGUES, _SEASONS, _DIVISIONS, _USERS, _MEMBERS)
_STATE_WIDTHS = tuple(len(table.c) for table in _STATE_PARTS)
_RACE_COLUMN_INDEX = {c.key: i for i, c in enumerate(_RACES.c)}
# Built once, like _RACE_FOR_PAGE: one statement, one row per division of the race (or one),
# bringing the count of the race's listed live events and the data stamp along.
_RACE_STATE = cache.with_data_stamp(
    sa.select(*(c for table in _STATE_PARTS for c in table.c), live.shown_count(_RACES.c.id))
    .select_from(_RACES)
    .join(_LEAGUES, _LEAGUES.c.id == _RACES.c.league_id)
    .outerjoin(_SEASONS, _SEASONS.c.id == _RACES.c.season_id)
    .outerjoin(_RACE_DIVISIONS, _RACE_DIVISIONS.c.race_id == _RACES.c.id)
    .outerjoin(_DIVISIONS, _DIVISIONS.c.id == _RACE_DIVISIONS.c.division_id)
    .outerjoin(_USERS, _USERS.c.id == sa.bindparam("user_id"))
    .outerjoin(_MEMBERS, sa.and_(_MEMBERS.c.league_id == _RACES.c.league_id,
                                 _MEMBERS.c.user_id == _USERS.c.id))
    .where(_RACES.c.id == sa.bindparam("race_id"))
    .order_by(_DIVISIONS.c.id))


def race_state(session: Session, race_id: int, user_id: int | None,
               now: dt.datetime) -> RaceState | None:
    """Race ``race_id``'s :class:`RaceState` for the user ``user_id`` (None: a visitor) at
    ``now``, read in one Core statement that also brings the transaction's data stamp
    (:func:`league.read.cache.with_data_stamp`); None when there is no such race. Visibility
    is the caller's to check (the state holds all it depends on: the league's visibility,
    the user's role and membership)."""
    found = session.connection().execute(
        _RACE_STATE, {"race_id": race_id, "user_id": user_id,
                      "since": live.shown_since(now)}).all()
    if not found:
        return None
    rows = [cache.take_data_stamp(session, row) for row in found]
    parts: list[tuple[tuple[Any, ...], ...]] = []
    start = 0
    for width in _STATE_WIDTHS:
        parts.append(tuple(tuple(row[start:start + width]) for row in rows))
        start += width
    race_row, league_row, season_row = parts[0][0], parts[1][0], parts[2][0]
    user_row, member_row = parts[4][0], parts[5][0]
    col = _RACE_COLUMN_INDEX
    return RaceState(
        race=race_row, league=league_row,
        season=season_row if season_row[0] is not None else None,
        divisions=tuple(d for d in parts[3] if d[0] is not None),
        viewer=user_row if user_row[0] is not None else None,
        member=member_row if member_row[0] is not None else None,
        id=race_row[col["id"]], format=race_row[col["format"]],
        status=race_row[col["status"]], ranking=race_row[col["ranking"]],
        laps=race_row[col["laps"]], min_laps=race_row[col["min_laps"]],
        knockout_size=race_row[col["knockout_size"]], track=race_row[col["track"]],
        extra_tracks=race_row[col["extra_tracks"]], opens_at=race_row[col["opens_at"]],
        closes_at=race_row[col["closes_at"]], events_shown=rows[0][sum(_STATE_WIDTHS)])
