"""Per-process caches of the heaviest public reads: race leaderboards, season standings, and a
head-to-head race's rating table and knockout bracket.

Computing the leaderboard of a 10,000-entry race takes a few hundred milliseconds, and the race
page shows it on every view; a season's standings take a few milliseconds per division; the
rating table of a head-to-head race reads every heat's finishing order (a tenth of a second for
10,000 heats), and its bracket reads the table again. Each process (a web worker, the API)
keeps the last value it computed per race or per season and division, with the version it was
computed at, and computes again only when that changes. The functions here return exactly what
:func:`league.rules.leaderboard.race_leaderboard`,
:func:`league.rules.seasons.season_standings`, :func:`league.rules.headtohead.rating_table`
and :func:`league.rules.knockout.knockout_bracket` return.

A version has two parts:

* a *stamp*, checked on every read at the cost of one indexed query (or none, when a page's
  first statement brings it along: :func:`with_data_stamp`): the highest ids of
  results, entries, evaluation jobs, race points and divisions in the whole database (a new
  result, entry, re-run or awarded points changes it at once), this process's *generation*
  (bumped, once :func:`install` ran, by every commit in this process that changed or deleted
  rows these reads depend on: a disqualification, a changed ranking method, a closed race),
  and the race's or season's own settings;
* an *exact version* of the one race or season (its entries, disqualifications and latest
  result; its heats, ratings and knockout jobs; its points rows, closed races and
  divisions), queried when the stamp has changed
  and otherwise at least every :data:`VERIFY_S` seconds. A change that leaves the stamp alone
  (an entry disqualified by another process) therefore shows within that time.

Values are keyed by engine, so two databases in one process never share an entry.

Nothing is registered on import: a process counts its own commits (the generation) only after
it calls :func:`install`, once, before it serves reads. The web app does so in
:func:`web.create_app`. A process that never calls it still reads correct values: its own
commits that leave the stamp alone then show within :data:`VERIFY_S`, like another process's.
:class:`Lru` is the bounded store of these values, and of the web's kept pages and tables.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, scoped_session

from league.models import (
    Division,
    Entry,
    EvaluationJob,
    Heat,
    JobStatus,
    League,
    Membership,
    PolicyModel,
    Race,
    RacePoints,
    Rating,
    Result,
    Season,
    User,
)
from league.rules import headtohead, knockout
from league.rules.leaderboard import LeaderboardRow, race_leaderboard
from league.rules.seasons import StandingRow, season_standings

VERIFY_S = 1.0  # the exact version of a cached value is checked at least this often
MAX_VALUES = 64  # cached values per database (least recently used go first)
MAX_KEPT_FOR = 512  # values kept beside a version token, per database (a heat-list page each)
MAX_WRITTEN_ONCE = 20_000  # values of rows written once, per database (each a few hundred bytes)
# Rows whose change or deletion may change a leaderboard or standings.
TRACKED = (Entry, Result, EvaluationJob, Race, Season, Division, RacePoints, User,
           PolicyModel, League, Membership, Heat, Rating)
_TOUCHED = "paddock.cache.touched"  # Session.info key: this transaction changed tracked rows
_STAMP = "paddock.cache.stamp"  # Session.info key: (transaction, database stamp)
_H2H_VERSION = "paddock.cache.h2h"  # Session.info key with a race id: (transaction, version)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class RaceKey(Protocol):
    """What the versions of a race's values are read from: a :class:`Race`, or a race page's
    plain :class:`league.read.browse.RaceState`."""

    @property
    def id(self) -> int: ...  # noqa: D102
    @property
    def format(self) -> str: ...  # noqa: D102
    @property
    def status(self) -> str: ...  # noqa: D102
    @property
    def ranking(self) -> str: ...  # noqa: D102
    @property
    def laps(self) -> int: ...  # noqa: D102
    @property
    def min_laps(self) -> int | None: ...  # noqa: D102
    @property
    def knockout_size(self) -> int: ...  # noqa: D102


V = TypeVar("V")
# The tables that only grow: their highest ids are the database's part of the data stamp,
# each one step down a primary-key index.
_GROWING = (Result, Entry, EvaluationJob, RacePoints, Division)
_STAMP_SQL = "SELECT " + ", ".join(f"(SELECT max(id) FROM {model.__tablename__})"
                                   for model in _GROWING)
#: the same, as columns another statement can carry (:func:`with_data_stamp`)
_STAMP_COLUMNS = tuple(sa.select(sa.func.max(model.id)).scalar_subquery() for model in _GROWING)


@dataclass
class _Slot(Generic[T]):
    stamp: tuple[Any, ...]
    version: tuple[Any, ...]
    checked: float  #: time.monotonic() of the last exact check
    value: T


class Lru(Generic[K, V]):
    """A bounded mapping shared by threads: past ``size`` entries, the least recently used
    go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value under ``key`` (now the most recently used), or None (values are never
        None)."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used beyond the size."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def keys(self) -> list[K]:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._items.clear()


class _Generation:
    """A counter of this process's commits that changed tracked rows."""

    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def bump(self) -> None:
        with self.lock:
            self.value += 1


_generation = _Generation()
_values: weakref.WeakKeyDictionary[Engine, Lru[Hashable, _Slot[Any]]] = \
    weakref.WeakKeyDictionary()
_written_once: weakref.WeakKeyDictionary[Engine, Lru[Any, Any]] = weakref.WeakKeyDictionary()
_kept_for: weakref.WeakKeyDictionary[Engine, Lru[Hashable, tuple[object, Any]]] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()  # guards the per-database stores; each Lru guards its own entries


def race_leaderboard_cached(session: Session, race: Race) -> list[LeaderboardRow]:
    """:func:`league.rules.leaderboard.race_leaderboard`, computed once per version of the race."""
    return _cached(session, ("race", race.id), _race_stamp(race),
                   lambda: _race_version(session, race),
                   lambda: race_leaderboard(session, race))


def season_standings_cached(session: Session, season: Season,
                            division: Division | None) -> list[StandingRow]:
    """:func:`league.rules.seasons.season_standings`, computed once per version of the season."""
    stamp = (season.status, season.promote, season.relegate, season.movement_in_percent)
    key = ("season", season.id, None if division is None else division.id)
    return _cached(session, key, stamp, lambda: _season_version(session, season),
                   lambda: season_standings(session, season, division))


def rating_table_cached(session: Session, race: Race) -> list[headtohead.RatingRow]:
    """:func:`league.rules.headtohead.rating_table`, computed once per version of the race."""
    return _cached(session, ("ratings", race.id), _head_to_head_stamp(race),
                   lambda: _head_to_head_version(session, race),
                   lambda: headtohead.rating_table(session, race))


def knockout_bracket_cached(session: Session, race: Race) -> knockout.Bracket:
    """:func:`league.rules.knockout.knockout_bracket`, computed once per version of the race."""
    return _cached(session, ("bracket", race.id), _head_to_head_stamp(race),
                   lambda: _head_to_head_version(session, race),
                   lambda: knockout.knockout_bracket(session, race))


def race_leaderboard_current(session: Session, race: RaceKey) -> list[LeaderboardRow] | None:
    """What :func:`race_leaderboard_cached` hands out now, without computing it: None when it
    would compute it (a new version, or never computed in this process)."""
    found: list[LeaderboardRow] | None = _current(
        session, ("race", race.id), _race_stamp(race), lambda: _race_version(session, race))
    return found


def rating_table_current(session: Session, race: RaceKey) -> list[headtohead.RatingRow] | None:
    """What :func:`rating_table_cached` hands out now, or None when it would compute it."""
    found: list[headtohead.RatingRow] | None = _current(
        session, ("ratings", race.id), _head_to_head_stamp(race),
        lambda: _head_to_head_version(session, race))
    return found


def knockout_bracket_current(session: Session, race: RaceKey) -> knockout.Bracket | None:
    """What :func:`knockout_bracket_cached` hands out now, or None when it would compute it."""
    found: knockout.Bracket | None = _current(
        session, ("bracket", race.id), _head_to_head_stamp(race),
        lambda: _head_to_head_version(session, race))
    return found


def heat_list_version(session: Session, race: RaceKey) -> object:
    """A token that stays the same object while everything a heat list of head-to-head
    ``race`` shows is unchanged: its heats, their jobs (claimed, finished, re-run) and
    results, and its entries (their racers and models, disqualifications). Checked like any
    cached value (:func:`data_stamp` on every read, the exact version at least every
    :data:`VERIFY_S`)."""
    return _cached(session, ("heat-list", race.id), _head_to_head_stamp(race),
                   lambda: _heat_list_version(session, race), object)


def kept_for(session: Session, key: Hashable, token: object, compute: Callable[[], T]) -> T:
    """``compute()``'s value under ``key``, computed again only when ``token`` is not the
    object it was computed with (a version token such as :func:`heat_list_version`'s). Kept
    per database; the least recently used of :data:`MAX_KEPT_FOR` go first."""
    engine = session.connection().engine
    with _lock:
        kept = _kept_for.get(engine)
        if kept is None:
            kept = _kept_for[engine] = Lru(MAX_KEPT_FOR)
    held = kept.get(key)
    if held is not None and held[0] is token:
        return held[1]  # type: ignore[no-any-return]
    value = compute()
    kept.put(key, (token, value))
    return value


def kept_current(session: Session, key: Hashable, token: object) -> Any:
    """What :func:`kept_for` hands out now under ``key`` for ``token``, without computing it:
    None when it would compute it."""
    kept = _kept_for.get(session.connection().engine)
    held = None if kept is None else kept.get(key)
    return held[1] if held is not None and held[0] is token else None


def written_once(session: Session, keys: Collection[K],
                 load: Callable[[list[K]], Mapping[K, V]]) -> dict[K, V]:
    """Values derived from rows that are written once and never changed (a result: the job
    id is its key), by key: kept per database, so ``load`` is asked only for the keys not
    kept yet (the least recently used of :data:`MAX_WRITTEN_ONCE` go first).

    A key must name the row beyond doubt, its id *and* its creation time: SQLite may hand a
    deleted row's id to the next row.
    """
    engine = session.connection().engine
    with _lock:
        kept = _written_once.get(engine)
        if kept is None:
            kept = _written_once[engine] = Lru(MAX_WRITTEN_ONCE)
    found: dict[K, V] = {}
    missing: list[K] = []
    for key in keys:
        value = kept.get(key)
        if value is None:
            missing.append(key)
        else:
            found[key] = value
    if missing:
        for key, value in load(missing).items():
            kept.put(key, value)
            found[key] = value
    return found


def data_stamp(session: Session) -> tuple[Any, ...]:
    """A value that changes whenever this process commits a change to the rows leaderboards
    and standings are read from (after :func:`install`), or any process adds a result,
    entry, job, race points or division (the stamp part of a version; other changes need
    :data:`VERIFY_S` to show)."""
    return (_generation.value, *_database_stamp(session))


def with_data_stamp(statement: sa.Select[Any]) -> sa.Select[Any]:
    """``statement`` with the database's part of :func:`data_stamp` as its last columns, so
    that a page's first read brings the stamp along (:func:`take_data_stamp`) instead of
    reading it in a round trip of its own."""
    return statement.add_columns(*_STAMP_COLUMNS)


def take_data_stamp(session: Session, row: Sequence[Any]) -> tuple[Any, ...]:
    """The columns of ``row`` (from a :func:`with_data_stamp` statement) before the stamp's;
    the stamp is this transaction's from now on, unless it had read one already (which is
    kept: never newer than its data)."""
    width = len(_STAMP_COLUMNS)
    _per_transaction(session, _STAMP, lambda: tuple(row[-width:]))
    return tuple(row[:-width])


def clear() -> None:
    """Forget every cached value (of every database)."""
    with _lock:
        _values.clear()
        _written_once.clear()
        _kept_for.clear()


def _cached(session: Session, key: Hashable, own_stamp: tuple[Any, ...],
            version: Callable[[], tuple[Any, ...]], compute: Callable[[], T]) -> T:
    value, keep = _held(session, key, own_stamp, version)
    if keep is None:
        return value  # type: ignore[no-any-return]
    computed = compute()
    keep(computed)
    return computed


def _current(session: Session, key: Hashable, own_stamp: tuple[Any, ...],
             version: Callable[[], tuple[Any, ...]]) -> Any:
    """The value :func:`_cached` would hand out without computing it, or None when it would
    compute it."""
    value, keep = _held(session, key, own_stamp, version)
    return value if keep is None else None


def _held(session: Session, key: Hashable, own_stamp: tuple[Any, ...],
          version: Callable[[], tuple[Any, ...]]) -> tuple[Any, Callable[[Any], None] | None]:
    """The value under ``key`` if it is current, and None; else None and how to keep the value
    computed for the version found."""
    # the generation is read first: a commit after that leaves a stale stamp, never a new
    # stamp on old data
    stamp = (*data_stamp(session), *own_stamp)
    engine = session.connection().engine
    now = time.monotonic()
    with _lock:
        values = _values.get(engine)
        if values is None:
            values = _values[engine] = Lru(MAX_VALUES)
    slot = values.get(key)
    if slot is not None and slot.stamp == stamp and now - slot.checked < VERIFY_S:
        return slot.value, None
    exact = (*own_stamp, *version())  # settings that change the value are part of both
    if slot is not None and slot.version == exact:
        slot.stamp, slot.checked = stamp, now
        return slot.value, None
    return None, lambda value: values.put(key, _Slot(stamp, exact, now, value))


def _database_stamp(session: Session) -> tuple[Any, ...]:
    """The highest ids of the tables that only grow, read once per transaction."""
    # Plain SQL over primary keys: read on every page view, so no statement is built.
    return _per_transaction(session, _STAMP, lambda: tuple(
        session.connection().exec_driver_sql(_STAMP_SQL).one()))


def _per_transaction(session: Session, key: Hashable, read: Callable[[], T]) -> T:
    """The value this transaction holds under ``key``, else ``read()``'s, held from now on
    (``Session.info``: gone with the transaction)."""
    if isinstance(session, scoped_session):  # Flask-SQLAlchemy's: the request's session
        session = session()
    held = session.info.get(key)
    if held is not None and held[0] is session.get_transaction():
        return held[1]  # type: ignore[no-any-return]
    value = read()
    session.info[key] = (session.get_transaction(), value)
    return value


def _race_stamp(race: RaceKey) -> tuple[Any, ...]:
    return (race.ranking, race.laps, race.min_laps, race.format)


def _race_version(session: Session, race: RaceKey) -> tuple[Any, ...]:
    row = session.execute(
        sa.select(sa.func.count(Entry.id), sa.func.count(Entry.disqualified_at),
                  sa.func.max(Entry.disqualified_at), sa.func.max(Result.id),
                  sa.func.count(Result.id))
        .select_from(Entry).outerjoin(Result, Result.entry_id == Entry.id)
        .where(Entry.race_id == race.id)).one()
    return tuple(row)


def _head_to_head_stamp(race: RaceKey) -> tuple[Any, ...]:
    return (race.format, race.status, race.knockout_size)


def _head_to_head_version(session: Session, race: RaceKey) -> tuple[Any, ...]:
    """What a head-to-head race's rating table and bracket are computed from: its entries
    and disqualifications, its heats and when they were rated, its ratings, and the jobs of
    its knockout heats (a heat that failed for good goes to the better seed). Read once per
    transaction: the rating table's check and the bracket's, due together, share it."""
    return _per_transaction(session, (_H2H_VERSION, race.id),
                            lambda: _read_head_to_head_version(session, race))


def _read_head_to_head_version(session: Session, race: RaceKey) -> tuple[Any, ...]:
    ratings = (sa.select(sa.func.count(Rating.id), sa.func.max(Rating.updated_at),
                         sa.func.sum(Rating.heats)).where(Rating.race_id == race.id))
    finals = (sa.select(sa.func.count(EvaluationJob.id), sa.func.max(EvaluationJob.id),
                        sa.func.max(EvaluationJob.finished_at))
              .join(Heat, Heat.id == EvaluationJob.heat_id)
              .where(Heat.race_id == race.id, Heat.stage != headtohead.ROUND_STAGE))
    return tuple(tuple(session.execute(q).one())
                 for q in (*_entries_and_heats(race), ratings, finals))


#: count, highest id, count and latest time of a state (disqualified, rated)
_Counts = sa.Select[int, int, int, dt.datetime | None]


def _entries_and_heats(race: RaceKey) -> tuple[_Counts, _Counts]:
    """A head-to-head race's entries and disqualifications, its heats and when they were
    rated: the part of its versions every head-to-head value is read from."""
    entries = (sa.select(sa.func.count(Entry.id), sa.func.max(Entry.id),
                         sa.func.count(Entry.disqualified_at), sa.func.max(Entry.disqualified_at))
               .where(Entry.race_id == race.id))
    heats = (sa.select(sa.func.count(Heat.id), sa.func.max(Heat.id), sa.func.count(Heat.rated_at),
                       sa.func.max(Heat.rated_at)).where(Heat.race_id == race.id))
    return entries, heats


def _heat_list_version(session: Session, race: RaceKey) -> tuple[Any, ...]:
    """What the heat lists of a head-to-head race are read from (:func:`heat_list_version`)."""
    jobs = (sa.select(sa.func.count(EvaluationJob.id), sa.func.max(EvaluationJob.id),
                      sa.func.sum(EvaluationJob.attempts), sa.func.count(EvaluationJob.finished_at),
                      sa.func.max(EvaluationJob.finished_at),
                      sa.func.count(sa.case((EvaluationJob.status == JobStatus.RUNNING, 1))),
                      sa.func.count(Result.id), sa.func.max(Result.id))
            .join(Heat, Heat.id == EvaluationJob.heat_id)
            .outerjoin(Result, Result.job_id == EvaluationJob.id)
            .where(Heat.race_id == race.id))
    return tuple(tuple(session.execute(q).one()) for q in (*_entries_and_heats(race), jobs))


def _season_version(session: Session, season: Season) -> tuple[Any, ...]:
    points = session.execute(
        sa.select(sa.func.count(RacePoints.id), sa.func.max(RacePoints.id),
                  sa.func.sum(RacePoints.points))
        .join(Race, Race.id == RacePoints.race_id)
        .where(Race.season_id == season.id)).one()
    races = session.execute(
        sa.select(Race.id, Race.status, Race.closed_at)
        .where(Race.season_id == season.id).order_by(Race.id)).all()
    divisions = session.execute(
        sa.select(Division.id, Division.tier).where(Division.league_id == season.league_id)
        .order_by(Division.id)).all()
    return (tuple(points), tuple(map(tuple, races)), tuple(map(tuple, divisions)))


# --------------------------------------------------------------------------- generation
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    # new, dirty and deleted still hold what was flushed at this point
    if any(isinstance(obj, TRACKED) for group in (session.new, session.dirty, session.deleted)
           for obj in group):
        session.info[_TOUCHED] = True


def _on_execute(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete:  # bulk UPDATE or DELETE statements
        state.session.info[_TOUCHED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_TOUCHED, False):
        _generation.bump()


def _after_rollback(session: Session) -> None:
    session.info.pop(_TOUCHED, None)


_LISTENERS = (("after_flush", _after_flush), ("do_orm_execute", _on_execute),
              ("after_commit", _after_commit), ("after_rollback", _after_rollback))


def install() -> None:
    """Count this process's commits that change tracked rows, through any session, in the
    generation every stamp carries: such a change shows at once instead of within
    :data:`VERIFY_S`. Call once per process before serving reads; calling again does nothing.

    Only this process's reads see its generation: a worker writing results needs no call (a
    new result, entry or job moves the database stamp that every process reads).
    """
    for name, listener in _LISTENERS:
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
