"""The scheduler process: APScheduler 3 with its schedule kept in the league's database.

Run exactly one (``paddock scheduler``), never inside web workers; :func:`sole_scheduler` makes a
second one against the same database refuse to start (a PostgreSQL advisory lock, or a lock file
beside an SQLite database, both released by the operating system or the server when the process
dies, however it dies). Its jobs are thin: each opens
one transaction, calls one domain function and logs one line. The domain functions are
idempotent and take ``now``, so a job that runs late, twice, or again after a crash changes
nothing more than one run on time; the job store (table ``apscheduler_jobs``, created by
APScheduler) keeps the schedule across restarts.

Job functions are module-level callables without arguments, because the job store pickles a
reference to them; they find the database through :func:`configure`, which
:func:`build_scheduler` calls.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import importlib.util
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import sqlalchemy as sa
from apscheduler.events import EVENT_SCHEDULER_START
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from league.config import ConfigError, Settings
from league.db import engine_options, make_engine, session_factory, transaction
from league.errors import Conflict, LeagueError, NotFound
from league.models import (
    EvaluationJob,
    JobStatus,
    LiveEvent,
    LiveEventKind,
    LiveEventStatus,
    Race,
    Season,
    SeasonStatus,
    utcnow,
)
from league.processes import notify
from league.read import live as live_read
from league.rules import headtohead, jobs, live, seasons
from league.storage import Storage

log = logging.getLogger(__name__)

JOBSTORE_TABLE = "apscheduler_jobs"  # APScheduler's own table; migrations leave it alone
MISFIRE_GRACE_S = 60  # a run this late still happens (once: runs are coalesced)
STOP_POLL_S = 0.1  # a stop requested while starting waits in steps of this long
#: The PostgreSQL advisory lock a running scheduler holds ("paddock!" as a signed 64-bit key).
SCHEDULER_LOCK_KEY = int.from_bytes(b"paddock!", "big")
SCHEDULER_LOCK_SUFFIX = ".scheduler.lock"  # beside an SQLite database file

T = TypeVar("T")
# The jobs that move races and seasons forward run one at a time, so the scheduler never plans
# a round in a race it is closing. Dispatching and reaping only touch job rows, which
# league.rules.jobs locks itself, so they never wait behind these.
_STATE_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Context:
    """What the job functions (and the job store) run against."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    store_engine: Engine  #: the job store's, without league.db's SQLite write-lock BEGIN


_context: _Context | None = None


def configure(settings: Settings) -> None:
    """Point the job functions at the database of ``settings``."""
    global _context
    close()
    url = settings.database_url
    engine = make_engine(url)
    _context = _Context(settings, engine, session_factory(engine),
                        sa.create_engine(url, **engine_options(url)))


def close() -> None:
    """Release the database connections of the job functions and the job store."""
    global _context
    if _context is not None:
        _context.engine.dispose()
        _context.store_engine.dispose()
        _context = None


def _ctx() -> _Context:
    if _context is None:
        raise RuntimeError("league.processes.scheduler.configure(settings) has not been called")
    return _context


def dispatch() -> int:
    """Hand queued jobs to Ray (ray executor); with local workers, which claim their own
    jobs, count the queue."""
    ctx = _ctx()
    if ctx.settings.executor == "ray":
        from league.processes import ray_executor  # Ray is an optional extra

        handed: int = ray_executor.dispatch(ctx.settings, ctx.factory)
        if handed:
            log.info("dispatch: handed %d job(s) to Ray", handed)
        return handed
    with transaction(ctx.factory) as session:
        queued = session.scalar(sa.select(sa.func.count(EvaluationJob.id))
                                .where(EvaluationJob.status == JobStatus.QUEUED)) or 0
    log.debug("dispatch: %d job(s) queued for the local workers", queued)
    return queued


def reap_leases() -> list[int]:
    """Requeue (or, after their last attempt, fail) the jobs whose lease expired."""
    with transaction(_ctx().factory) as session:
        reaped = jobs.reap_expired(session, utcnow())
    if reaped:
        log.info("reap-leases: expired leases of job(s) %s reaped",
                 ", ".join(map(str, reaped)))
    return reaped


def open_close_races() -> tuple[list[int], list[int]]:
    """Open races whose time has come; move on those past their close time or in their
    finals (plan the next knockout stage, or close and score them). Returns the ids opened
    and closed."""
    factory = _ctx().factory
    steps: dict[int, seasons.Step] = {}

    def advance(session: Session, race_id: int) -> bool:
        steps[race_id] = seasons.advance_race(session, race_id, utcnow())
        return steps[race_id] != seasons.Step.WAITING

    with _STATE_LOCK:
        with transaction(factory) as session:
            opened = [race.id for race in seasons.open_due_races(session, utcnow())]
        with transaction(factory) as session:
            due = seasons.races_due_to_close(session, utcnow())
        # one transaction per race: a race that cannot be closed now never holds back the
        # others (it is tried again at the next run)
        moved = _each(due, advance, "open-close-races", "race")
    closed = [r for r in moved if steps[r] in seasons.CLOSING]
    staged = [r for r in moved if steps[r] == seasons.Step.STAGE_PLANNED]
    for race_id in moved:
        if steps[race_id] == seasons.Step.CLOSED_WITHOUT_KNOCKOUT:
            log.info("open-close-races: race %d has too few rated entries for its knockout: "
                     "closed from its rating table, without finals", race_id)
    if opened or moved:
        log.info("open-close-races: opened %s, knockout stage planned in %s, closed %s",
                 _ids(opened), _ids(staged), _ids(closed))
    return opened, closed


def start_seasons() -> list[int]:
    """Mark planned seasons whose start has passed as active."""
    with _STATE_LOCK, transaction(_ctx().factory) as session:
        started = [season.id for season in seasons.start_due_seasons(session, utcnow())]
    if started:
        log.info("start-seasons: started season(s) %s", _ids(started))
    return started


def headtohead_rounds() -> list[int]:
    """Plan the next rating round of every head-to-head race due one."""
    with _STATE_LOCK:
        with transaction(_ctx().factory) as session:
            due = [race.id for race in headtohead.due_rounds(session, utcnow())]
        planned = _each(due, _plan_round, "headtohead-rounds", "race")
    if planned:
        log.info("headtohead-rounds: planned a round in race(s) %s", _ids(planned))
    return planned


def finalize_seasons() -> list[int]:
    """Finalize every season that has ended: points totals, promotion and relegation."""
    with _STATE_LOCK:
        with transaction(_ctx().factory) as session:
            due = [season.id for season in seasons.due_seasons(session, utcnow())]
        finalized = _each(due, _finalize_season, "finalize-seasons", "season")
    if finalized:
        log.info("finalize-seasons: finalized season(s) %s", _ids(finalized))
    return finalized


def live_events() -> list[str]:
    """Remind, start, air and finish live events (:func:`league.rules.live.advance`); a race
    whose finals are live is moved on in the same run, so its next knockout stage (or its
    closing) follows the broadcast within a second."""
    ctx = _ctx()
    length = live_read.replay_length(Storage(ctx.settings.storage_dir))
    with _STATE_LOCK:
        with transaction(ctx.factory) as session:
            lines = live.advance(session, length, utcnow())
            racing = list(session.scalars(sa.select(LiveEvent.race_id).where(
                LiveEvent.status == LiveEventStatus.LIVE,
                LiveEvent.kind == LiveEventKind.FINALS)))
        _each(racing, lambda session, race_id: seasons.advance_race(
            session, race_id, utcnow()) != seasons.Step.WAITING, "live-events", "race")
    for line in lines:
        log.info("live-events: %s", line)
    return lines


def deliver_notifications() -> dict[str, int]:
    """Send the notifications that are due (webhooks and mail, :mod:`league.processes.notify`)."""
    ctx = _ctx()
    counts = notify.deliver_due(ctx.factory, ctx.settings, utcnow())
    if any(counts.values()):
        log.info("deliver-notifications: %(sent)d sent, %(retry)d to retry, %(failed)d given up",
                 counts)
    return counts


def _plan_round(session: Session, race_id: int) -> bool:
    return bool(headtohead.plan_round(session, _get(session, Race, race_id), utcnow()))


def _finalize_season(session: Session, season_id: int) -> bool:
    season = _get(session, Season, season_id)
    seasons.finalize_season(session, season, utcnow())
    return season.status == SeasonStatus.FINISHED  # else a race of it went to its finals


def _get(session: Session, model: type[T], ident: int) -> T:
    obj = session.get(model, ident)
    if obj is None:
        raise NotFound(f"{model.__name__} {ident} is gone")
    return obj


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) or "none"


def _each(ids: list[int], work: Callable[[Session, int], bool], job: str,
          what: str) -> list[int]:
    """Run ``work`` on each id in a transaction of its own; returns the ids it did something for.

    A domain refusal (a :class:`LeagueError`) or a value the database refuses for one item
    (``DataError``, ``IntegrityError``) is logged with the item and the others go on: one bad
    season or race must not hold back the rest. Anything else (the database gone) propagates
    to APScheduler, which logs it; the job runs again at its next time.
    """
    done = []
    for ident in ids:
        try:
            with transaction(_ctx().factory) as session:
                did = work(session, ident)
        except LeagueError as err:
            log.warning("%s: %s %d skipped: %s", job, what, ident, err)
            continue
        except (sa.exc.DataError, sa.exc.IntegrityError) as err:
            log.error("%s: %s %d failed in the database, retried next run: %s", job, what,
                      ident, str(err.orig).splitlines()[0] if err.orig else err)
            continue
        if did:
            done.append(ident)
    return done


@dataclass(frozen=True)
class ScheduledJob:
    """One recurring job of the scheduler."""

    id: str
    func: Callable[[], object]
    every_s: float


JOBS = (
    ScheduledJob("dispatch", dispatch, 1.0),
    ScheduledJob("reap-leases", reap_leases, 3.0),
    ScheduledJob("open-close-races", open_close_races, 5.0),
    ScheduledJob("headtohead-rounds", headtohead_rounds, 10.0),
    ScheduledJob("start-seasons", start_seasons, 30.0),
    ScheduledJob("finalize-seasons", finalize_seasons, 60.0),
    ScheduledJob("deliver-notifications", deliver_notifications, 5.0),
    ScheduledJob("live-events", live_events, 1.0),
)


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """The scheduler with every job registered (replacing stored ones), not yet started."""
    configure(settings)
    store = SQLAlchemyJobStore(engine=_ctx().store_engine, tablename=JOBSTORE_TABLE)
    scheduler = BlockingScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(len(JOBS))},
        timezone=dt.UTC,
    )
    for job in JOBS:
        scheduler.add_job(job.func, "interval", seconds=job.every_s, id=job.id, name=job.id,
                          replace_existing=True, max_instances=1, coalesce=True,
                          misfire_grace_time=MISFIRE_GRACE_S)
    scheduler.add_listener(lambda _event: _drop_retired_jobs(scheduler), EVENT_SCHEDULER_START)
    return scheduler


def _drop_retired_jobs(scheduler: BlockingScheduler) -> None:
    """Remove stored jobs that are no longer in :data:`JOBS` (from an older version)."""
    current = {job.id for job in JOBS}
    for job in scheduler.get_jobs():
        if job.id not in current:
            log.info("removing retired job %s", job.id)
            job.remove()


ANOTHER_SCHEDULER = ("another scheduler is already running against this database ({how}); "
                     "run exactly one 'paddock scheduler' per league database")


@contextmanager
def sole_scheduler(settings: Settings) -> Iterator[None]:
    """Hold this database's scheduler lock for the block; :class:`Conflict` if another has it.

    PostgreSQL: a session-level advisory lock on a connection of its own, which the server
    releases when that connection ends. SQLite: an exclusive ``flock`` on a file beside the
    database, which the kernel releases when the process ends. An in-memory SQLite database
    is private to its process and needs no lock.
    """
    url = sa.make_url(settings.database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        with _advisory_lock(settings.database_url):
            yield
    elif backend == "sqlite" and url.database not in (None, "", ":memory:"):
        with _lock_file(Path(str(url.database) + SCHEDULER_LOCK_SUFFIX)):
            yield
    else:
        log.warning("no single-scheduler lock on %s: make sure only one scheduler runs",
                    backend)
        yield


@contextmanager
def _advisory_lock(database_url: str) -> Iterator[None]:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            held = conn.scalar(sa.select(sa.func.pg_try_advisory_lock(SCHEDULER_LOCK_KEY)))
            conn.commit()  # the lock is the session's: no transaction stays open with it
            if not held:
                raise Conflict(ANOTHER_SCHEDULER.format(
                    how=f"PostgreSQL advisory lock {SCHEDULER_LOCK_KEY} is held"))
            try:
                yield
            finally:
                try:
                    conn.scalar(sa.select(sa.func.pg_advisory_unlock(SCHEDULER_LOCK_KEY)))
                    conn.commit()
                except sa.exc.DBAPIError as err:  # the connection is gone: so is the lock
                    log.warning("scheduler lock: %s", str(err).splitlines()[0])
    finally:
        engine.dispose()


@contextmanager
def _lock_file(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(ANOTHER_SCHEDULER.format(how=f"{path} is locked")) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for the operator who wonders which one
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def check_executor(settings: Settings) -> None:
    """Fail at once, not every second in the dispatch job, when Ray is chosen but missing."""
    if settings.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("PADDOCK_EXECUTOR=ray needs Ray installed: pip install 'paddock[ray]'")


def run(settings: Settings) -> None:
    """Run the scheduler until SIGTERM or SIGINT, then stop after the running jobs finish."""
    check_executor(settings)
    with sole_scheduler(settings):
        _run(settings)


def _run(settings: Settings) -> None:
    scheduler = build_scheduler(settings)
    returned = threading.Event()
    stopper: list[threading.Thread] = []

    def shut_down() -> None:
        # The signal may arrive while the scheduler is still starting: wait until it runs.
        while not returned.is_set():
            try:
                # Paused first, the loop submits nothing more while the executors shut down
                # (else its next pass fails with "cannot schedule new futures after shutdown").
                scheduler.pause()
                scheduler.shutdown()
                return
            except SchedulerNotRunningError:
                time.sleep(STOP_POLL_S)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Shut down from a thread: the main thread may be inside the scheduler's loop.
        if not stopper:
            log.info("%s received, stopping", signal.Signals(signum).name)
            stopper.append(threading.Thread(target=shut_down, name="scheduler-shutdown"))
            stopper[0].start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("starting (executor %s; jobs %s)", settings.executor,
             ", ".join(job.id for job in JOBS))
    try:
        scheduler.start()
    finally:
        returned.set()
        for thread in stopper:
            thread.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # After the loop has stopped: its last pass may have reconnected the store's engine.
        close()
    log.info("stopped")

