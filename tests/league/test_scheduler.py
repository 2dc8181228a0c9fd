"""The scheduler: its jobs, what each does to the database, and a real process that restarts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session

import league.processes
from league.config import ConfigError, Settings
from league.db import make_engine, session_factory, upgrade_database
from league.errors import Conflict
from league.models import (
    EvaluationJob,
    Heat,
    JobStatus,
    Race,
    RaceStatus,
    Rating,
    Season,
    SeasonStatus,
    utcnow,
)
from league.processes import scheduler
from league.rules import headtohead, jobs, leagues, seasons, submissions
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Database, Factory

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"dispatch": 1, "reap-leases": 3, "open-close-races": 5, "headtohead-rounds": 10,
            "start-seasons": 30, "finalize-seasons": 60, "deliver-notifications": 5,
            "live-events": 1}
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Iterator[Settings]:
    """Settings on the test database, with the job functions configured on them."""
    s = Settings(database_url=db.url, storage_dir=tmp_path / "storage", secret_key="test")
    scheduler.configure(s)
    yield s
    scheduler.close()
    with db.engine.begin() as conn:  # the job store's table is not the fixture's to empty
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {scheduler.JOBSTORE_TABLE}")


def _window(make: Factory, session: Session, **kw: Any) -> Race:
    """A race open from an hour ago for an hour (real time: the scheduler uses the clock)."""
    kw.setdefault("opens_at", utcnow() - HOUR)
    kw.setdefault("closes_at", utcnow() + HOUR)
    return make.race(session, **kw)


def _expired_job(session: Session, storage: Storage, make: Factory, race: Race,
                 racer: str = "racer") -> EvaluationJob:
    """An entry whose job a worker claimed, then died: its lease ran out minutes ago."""
    submissions.submit_entry(session, storage, race, make.user(session, racer), make.policy(),
                             now=utcnow())
    job = jobs.claim_job(session, "dead-worker", 30.0, now=utcnow() - dt.timedelta(minutes=5))
    assert job is not None
    session.commit()
    return job


def test_jobs_are_registered_with_their_options(settings: Settings) -> None:
    sched = scheduler.build_scheduler(settings)
    registered = {job.id: job for job in sched.get_jobs()}
    assert {k: int(v.trigger.interval.total_seconds()) for k, v in registered.items()
            if isinstance(v.trigger, IntervalTrigger)} == EXPECTED
    for job in registered.values():
        assert job.max_instances == 1 and job.coalesce is True
        assert job.misfire_grace_time == scheduler.MISFIRE_GRACE_S
        # The job store keeps a reference to a module-level function, not the function.
        module, name = job.func_ref.split(":")
        assert module == "league.processes.scheduler" and callable(getattr(scheduler, name))
    store = sched._lookup_jobstore("default")
    assert isinstance(store, SQLAlchemyJobStore)
    assert store.jobs_t.name == scheduler.JOBSTORE_TABLE


def test_job_functions_need_settings() -> None:
    scheduler.close()
    with pytest.raises(RuntimeError, match="configure"):
        scheduler.reap_leases()


def test_reap_leases_requeues_expired_jobs_once(settings: Settings, session: Session,
                                                storage: Storage, make: Factory) -> None:
    job = _expired_job(session, storage, make, _window(make, session))
    assert scheduler.reap_leases() == [job.id]
    assert scheduler.reap_leases() == []
    session.expire_all()
    job = jobs.get_job(session, job.id)
    assert job.status == JobStatus.QUEUED and job.lease_owner is None
    assert job.log.count("queued again") == 1


def test_dispatch_counts_the_queue_for_local_workers(settings: Settings, session: Session,
                                                     storage: Storage, make: Factory) -> None:
    assert scheduler.dispatch() == 0
    race = _window(make, session)
    for name in ("ann", "ben"):
        submissions.submit_entry(session, storage, race, make.user(session, name),
                                 make.policy(), now=utcnow())
    session.commit()
    assert scheduler.dispatch() == 2


def test_dispatch_hands_jobs_to_ray(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Settings, Any]] = []

    def fake_dispatch(s: Settings, factory: Any) -> int:
        calls.append((s, factory))
        return 3

    fake = types.SimpleNamespace(dispatch=fake_dispatch)
    monkeypatch.setitem(sys.modules, "league.processes.ray_executor", fake)
    # the package's attribute too: it is what ``from league.processes import ray_executor``
    # finds once another test has imported the real module
    monkeypatch.setattr(league.processes, "ray_executor", fake, raising=False)
    scheduler.configure(dataclasses.replace(settings, executor="ray"))
    assert scheduler.dispatch() == 3
    assert calls and calls[0][0].executor == "ray"


def test_missing_ray_fails_at_start(settings: Settings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="paddock\\[ray\\]"):
        scheduler.run(dataclasses.replace(settings, executor="ray"))
    scheduler.check_executor(settings)  # local needs nothing


def test_open_close_races(settings: Settings, session: Session, make: Factory) -> None:
    league_ = make.league(session)
    due = _window(make, session, league=league_, name="Due")
    over = _window(make, session, league=league_, name="Over", opens_at=utcnow() - 3 * HOUR,
                   closes_at=utcnow() - HOUR)
    later = _window(make, session, league=league_, name="Later", opens_at=utcnow() + HOUR,
                    closes_at=utcnow() + 2 * HOUR)
    session.commit()
    opened, closed = scheduler.open_close_races()
    assert sorted(opened) == sorted([due.id, over.id]) and closed == [over.id]
    assert scheduler.open_close_races() == ([], [])
    session.expire_all()
    status = {r.id: r.status for r in session.scalars(sa.select(Race))}
    assert status == {due.id: RaceStatus.OPEN, over.id: RaceStatus.CLOSED,
                      later.id: RaceStatus.SCHEDULED}


def test_headtohead_rounds(settings: Settings, session: Session, storage: Storage,
                           make: Factory) -> None:
    race = _window(make, session, format="head-to-head", round_interval_s=3600)
    for name in ("ann", "ben"):
        submissions.submit_entry(session, storage, race, make.user(session, name),
                                 make.policy(), now=utcnow())
    session.commit()
    assert scheduler.headtohead_rounds() == []  # not open yet
    scheduler.open_close_races()
    assert scheduler.headtohead_rounds() == [race.id]
    assert scheduler.headtohead_rounds() == []  # its heats are pending
    heats = session.scalars(sa.select(Heat).where(Heat.race_id == race.id)).all()
    assert heats and {h.round_no for h in heats} == {1}


def _knockout_race(session: Session, make: Factory, **kw: Any) -> Race:
    """An open head-to-head race with a knockout of 2 and two rated entries."""
    race = _window(make, session, format="head-to-head", knockout_size=2, **kw)
    race.status = RaceStatus.OPEN
    for k, name in enumerate(("ann", "ben")):
        entry = make.entry(session, race, make.racer(session, name))
        session.add(Rating(race_id=race.id, entry_id=entry.id, mu=30.0 - k, sigma=1.0,
                           heats=3))
    session.commit()
    return race


def test_open_close_races_plays_the_knockout_finals(settings: Settings, session: Session,
                                                    make: Factory,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    race = _knockout_race(session, make, opens_at=utcnow() - 3 * HOUR,
                          closes_at=utcnow() - HOUR)
    caplog.set_level("INFO", logger=scheduler.log.name)
    assert scheduler.open_close_races() == ([], [])  # to the finals: the final is queued
    assert f"knockout stage planned in {race.id}, closed none" in caplog.text
    assert scheduler.open_close_races() == ([], [])  # the final is being raced
    session.expire_all()
    final = session.scalars(sa.select(Heat).where(Heat.race_id == race.id)).one()
    assert final.stage == "final" and session.get_one(Race, race.id).status == "finals"
    job = session.scalars(sa.select(EvaluationJob).where(EvaluationJob.heat_id == final.id)
                          ).one()
    job.status = JobStatus.SUCCEEDED
    headtohead.record_heat(session, final, {"positions": [1, 0], "cars": []})
    session.commit()
    assert scheduler.open_close_races() == ([], [race.id])
    assert scheduler.open_close_races() == ([], [])
    session.expire_all()
    assert session.get_one(Race, race.id).status == RaceStatus.CLOSED


def test_a_season_is_finalized_after_the_finals_of_its_race(settings: Settings,
                                                            session: Session,
                                                            make: Factory) -> None:
    season = _season(session, make, utcnow() - 3 * HOUR, utcnow() - HOUR, "Ended")
    race = _knockout_race(session, make, league=season.league, season=season)
    assert scheduler.finalize_seasons() == []  # its race went to its finals instead
    assert scheduler.finalize_seasons() == []  # and the season waits for them
    session.expire_all()
    assert session.get_one(Race, race.id).status == RaceStatus.FINALS
    assert session.get_one(Season, season.id).finalized_at is None


def _season(session: Session, make: Factory, starts: dt.datetime, ends: dt.datetime,
            name: str = "S1") -> Season:
    league_ = make.league(session, slug=f"club-{name.lower()}")
    return leagues.create_season(session, league_, make.organizer(session, league_), name,
                                 starts, ends)


def test_start_and_finalize_seasons(settings: Settings, session: Session,
                                    make: Factory) -> None:
    running = _season(session, make, utcnow() - HOUR, utcnow() + HOUR, "Running")
    ended = _season(session, make, utcnow() - 3 * HOUR, utcnow() - HOUR, "Ended")
    session.commit()
    assert sorted(scheduler.start_seasons()) == sorted([running.id, ended.id])
    assert scheduler.finalize_seasons() == [ended.id]
    assert scheduler.start_seasons() == [] and scheduler.finalize_seasons() == []
    session.expire_all()
    assert session.get(Season, running.id).status == SeasonStatus.ACTIVE  # type: ignore[union-attr]
    assert session.get(Season, ended.id).status == SeasonStatus.FINISHED  # type: ignore[union-attr]


def test_one_refused_season_does_not_hold_back_the_others(
        settings: Settings, session: Session, make: Factory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = _season(session, make, utcnow() - 3 * HOUR, utcnow() - 2 * HOUR, "First")
    second = _season(session, make, utcnow() - 3 * HOUR, utcnow() - HOUR, "Second")
    session.commit()
    real = seasons.finalize_season

    def refuse_first(s: Session, season: Season, now: dt.datetime) -> Any:
        if season.id == first.id:
            raise Conflict("not today")
        return real(s, season, now)

    monkeypatch.setattr(seasons, "finalize_season", refuse_first)
    assert scheduler.finalize_seasons() == [second.id]
    monkeypatch.setattr(seasons, "finalize_season", real)
    assert scheduler.finalize_seasons() == [first.id]


def _sigterm_after(delay_s: float) -> threading.Timer:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    timer = threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    return timer


def test_run_stops_on_sigterm_and_drops_retired_jobs(settings: Settings, db: Database) -> None:
    engine = sa.create_engine(db.url)
    old = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(
        engine=engine, tablename=scheduler.JOBSTORE_TABLE)}, timezone=dt.UTC)
    old.add_job(scheduler.dispatch, "interval", seconds=60, id="retired-job")
    old.start(paused=True)
    old.shutdown()
    engine.dispose()
    before = signal.getsignal(signal.SIGTERM)
    timer = _sigterm_after(1.5)
    scheduler.run(settings)
    timer.join()
    assert signal.getsignal(signal.SIGTERM) == before
    with db.engine.connect() as conn:
        ids = set(conn.scalars(sa.text(f"SELECT id FROM {scheduler.JOBSTORE_TABLE}")))
    assert ids == set(EXPECTED)


def test_run_stops_on_sigterm_while_starting(settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop requested before the scheduler runs waits for it, then stops it."""
    real_start = SQLAlchemyJobStore.start

    def slow_start(self: SQLAlchemyJobStore, *args: Any) -> None:
        time.sleep(1.0)
        real_start(self, *args)

    monkeypatch.setattr(SQLAlchemyJobStore, "start", slow_start)
    timer = _sigterm_after(0.2)
    began = time.monotonic()
    scheduler.run(settings)
    timer.join()
    assert time.monotonic() - began < 10


# ------------------------------------------------------------------- one scheduler only
def test_a_second_scheduler_lock_is_refused_until_the_first_lets_go(settings: Settings) -> None:
    with scheduler.sole_scheduler(settings):
        with pytest.raises(Conflict, match="another scheduler is already running"):
            with scheduler.sole_scheduler(settings):
                pass  # pragma: no cover - never reached
    with scheduler.sole_scheduler(settings):  # released on the way out
        pass


def test_the_lock_is_per_database(settings: Settings, tmp_path: Path) -> None:
    other = dataclasses.replace(settings,
                                database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    with scheduler.sole_scheduler(settings), scheduler.sole_scheduler(other):
        pass


def test_an_in_memory_database_needs_no_lock(settings: Settings) -> None:
    memory = dataclasses.replace(settings, database_url="sqlite://")
    with scheduler.sole_scheduler(memory), scheduler.sole_scheduler(memory):
        pass


# --------------------------------------------------------------------- a real process
def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
              timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the scheduler exited ({proc.returncode}):\n{log.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"timed out; the scheduler's log:\n{log.read_text()}")


def test_scheduler_process_survives_sigkill(empty_url: str, tmp_path: Path,
                                            make: Factory) -> None:
    """Requeue an expired lease, be killed, restart: schedule kept, nothing done twice."""
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    factory = session_factory(engine)
    storage = Storage(tmp_path / "storage")
    env = {**os.environ, "DATABASE_URL": empty_url, "SECRET_KEY": "test",
           "PADDOCK_STORAGE_DIR": str(storage.root),
           "PADDOCK_INSTANCE_DIR": str(tmp_path / "instance")}

    def job_row() -> EvaluationJob:
        with factory() as s:
            return jobs.get_job(s, job_id)

    def schedule() -> dict[str, float | None]:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                f"SELECT id, next_run_time FROM {scheduler.JOBSTORE_TABLE}")).all()
        return {row[0]: row[1] for row in rows}

    def start(n: int) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"scheduler-{n}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "league.cli", "scheduler"], cwd=ROOT,
                                    env=env, stdout=fh, stderr=subprocess.STDOUT)
        return proc, log

    with factory() as session:
        job_id = _expired_job(session, storage, make, _window(make, session)).id

    proc, log = start(1)
    try:
        _wait_for(lambda: job_row().status == JobStatus.QUEUED, proc, log)
        _wait_for(lambda: set(schedule()) == set(EXPECTED), proc, log)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert set(schedule()) == set(EXPECTED)  # the schedule outlives the process
    assert all(t is not None for t in schedule().values())

    # The job is claimed again and that worker dies too: the restarted scheduler reaps it.
    with factory() as session:
        claimed = jobs.claim_job(session, "dead-again", 30.0,
                                 now=utcnow() - dt.timedelta(minutes=5))
        assert claimed is not None and claimed.id == job_id
        session.commit()
    proc, log = start(2)
    try:
        _wait_for(lambda: job_row().status == JobStatus.QUEUED, proc, log)
        assert set(schedule()) == set(EXPECTED)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "league.processes.scheduler: stopped" in log.read_text()
    job = job_row()
    assert job.attempts == 2 and job.status == JobStatus.QUEUED
    assert job.log.count("attempt 1 lost") == 1 and job.log.count("attempt 2 lost") == 1
    engine.dispose()


def test_a_race_the_database_refuses_to_close_does_not_hold_back_the_others(
        settings: Settings, session: Session, make: Factory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    league_ = make.league(session)
    first = _window(make, session, league=league_, name="First",
                    opens_at=utcnow() - 3 * HOUR, closes_at=utcnow() - 2 * HOUR)
    second = _window(make, session, league=league_, name="Second",
                     opens_at=utcnow() - 3 * HOUR, closes_at=utcnow() - HOUR)
    session.commit()
    real = seasons.close_race

    def overflow_first(s: Session, race: Race, now: dt.datetime) -> Any:
        if race.id == first.id:
            raise sa.exc.DataError("INSERT INTO race_points", {}, Exception("out of range"))
        return real(s, race, now)

    monkeypatch.setattr(seasons, "close_race", overflow_first)
    assert scheduler.open_close_races()[1] == [second.id]
    monkeypatch.setattr(seasons, "close_race", real)
    assert scheduler.open_close_races()[1] == [first.id]


def test_a_second_scheduler_process_refuses_to_start(empty_url: str, tmp_path: Path) -> None:
    """While one scheduler holds the lock, another exits at once and says why; the lock
    goes with the process that held it, even when that process is killed."""
    upgrade_database(empty_url)
    env = {**os.environ, "DATABASE_URL": empty_url, "SECRET_KEY": "test",
           "PADDOCK_STORAGE_DIR": str(tmp_path / "storage"),
           "PADDOCK_INSTANCE_DIR": str(tmp_path / "instance")}
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from league.processes import scheduler\n"
         "from league.config import Settings\n"
         "with scheduler.sole_scheduler(Settings.from_env()):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(600)\n"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().decode().strip() == "held"
        second = subprocess.run([sys.executable, "-m", "league.cli", "scheduler"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stderr
        assert "another scheduler is already running against this database" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    settings = Settings.from_env(env)
    with scheduler.sole_scheduler(settings):  # the killed holder's lock is gone
        pass
