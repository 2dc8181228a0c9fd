"""The Ray executor against a local Ray started here: evaluations arrive once, however often
they are delivered, and a lost task is recovered through the database.

Skipped when Ray (the optional ``ray`` extra) is not installed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from league.config import Settings
from league.models import Entry, EvaluationJob, JobStatus, Race, Result
from league.processes import ray_executor
from league.rules import jobs, submissions
from league.rules.leaderboard import race_leaderboard
from league.storage import Storage

ray = pytest.importorskip("ray")

if TYPE_CHECKING:
    from conftest import Database, Factory

CLUSTER_CPUS = 2
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # the minimum is 75 MB; the tasks return one line
DEADLINE_S = 120.0  # the first task of a Ray worker imports the simulator


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance of two CPUs for this module's tests."""
    ray.init(num_cpus=CLUSTER_CPUS, include_dashboard=False,
             object_store_memory=OBJECT_STORE_BYTES)
    try:
        yield
    finally:
        ray_executor.reset()
        ray.shutdown()


def _settings(db: Database, storage: Storage, lease_s: float = 30.0) -> Settings:
    return Settings(database_url=db.url, storage_dir=storage.root, secret_key="test",
                    executor="ray", lease_s=lease_s, heartbeat_s=1.0)


def _submit(session: Session, storage: Storage, make: Factory, count: int = 1,
            speed: float = 2.0, **race: object) -> list[Entry]:
    race_ = make.race(session, **race)
    entries = [submissions.submit_entry(session, storage, race_, make.user(session, f"r{i}"),
                                        make.policy(speed), now=make.now) for i in range(count)]
    session.commit()
    return entries


def _drain(dispatcher: ray_executor.RayDispatcher, factory: sessionmaker[Session]) -> None:
    """Dispatch until no job is queued or running and no task is in flight."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        dispatcher.dispatch(factory)
        with factory() as session:
            pending = session.scalar(sa.select(sa.func.count(EvaluationJob.id)).where(
                EvaluationJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))))
        if not pending and not dispatcher.in_flight:
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs still pending after {DEADLINE_S:.0f} s")


def _results(factory: sessionmaker[Session]) -> list[tuple[int | None, int]]:
    """(entry id, job id) of every result."""
    with factory() as session:
        return [(e, j) for e, j in session.execute(
            sa.select(Result.entry_id, Result.job_id).order_by(Result.id))]


def _job(factory: sessionmaker[Session]) -> EvaluationJob:
    """The one job (read in a transaction of its own: on SQLite a reader holds the lock)."""
    with factory() as session:
        return session.scalars(sa.select(EvaluationJob)).one()


def test_a_submitted_entry_is_evaluated_once(local_ray: None, db: Database, session: Session,
                                             storage: Storage, make: Factory) -> None:
    (entry,) = _submit(session, storage, make)
    settings = _settings(db, storage)
    dispatcher = ray_executor.RayDispatcher(settings)
    _drain(dispatcher, db.factory)
    job = _job(db.factory)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert f"claimed by {dispatcher.owner}" in job.log
    assert _results(db.factory) == [(entry.id, job.id)]
    with db.factory() as s:
        (row,) = race_leaderboard(s, s.get_one(Race, entry.race_id))
    assert row.entry_id == entry.id and row.time_s is not None and row.rank == 1


def test_module_dispatch_keeps_one_dispatcher(local_ray: None, db: Database, session: Session,
                                              storage: Storage, make: Factory) -> None:
    (entry,) = _submit(session, storage, make)
    settings = _settings(db, storage)
    assert ray_executor.dispatch(settings, db.factory) == 1
    assert ray_executor.dispatch(settings, db.factory) == 0  # nothing left to claim
    _drain(ray_executor._dispatchers[(db.url, "")], db.factory)
    assert [e for e, _ in _results(db.factory)] == [entry.id]


def test_tasks_in_flight_are_bounded_by_the_cluster_cpus(local_ray: None, db: Database,
                                                         session: Session, storage: Storage,
                                                         make: Factory) -> None:
    entries = _submit(session, storage, make, count=5)
    dispatcher = ray_executor.RayDispatcher(_settings(db, storage))
    assert dispatcher.capacity() == CLUSTER_CPUS
    assert dispatcher.dispatch(db.factory) == CLUSTER_CPUS
    assert len(dispatcher.in_flight) == CLUSTER_CPUS
    assert dispatcher.dispatch(db.factory) <= CLUSTER_CPUS - len(dispatcher.in_flight)
    _drain(dispatcher, db.factory)
    assert sorted(e for e, _ in _results(db.factory)) == sorted(e.id for e in entries)


def test_a_job_delivered_twice_yields_one_result(local_ray: None, db: Database,
                                                 session: Session, storage: Storage,
                                                 make: Factory) -> None:
    (entry,) = _submit(session, storage, make)
    settings = _settings(db, storage)
    owner = ray_executor.dispatcher_id()
    job = jobs.claim_job(session, owner, settings.lease_s)
    assert job is not None
    session.commit()
    # What a retry after a lost reply looks like: the same job runs twice, at the same time.
    task = ray.remote(ray_executor.run_job)
    lines = ray.get([task.remote(settings, job.id, owner) for _ in range(2)])
    recorded = [line for line in lines if "succeeded (" in line and "not recorded" not in line]
    assert len(recorded) == 1, lines
    assert _results(db.factory) == [(entry.id, job.id)]
    late = ray.get(task.remote(settings, job.id, owner))
    assert late == f"job {job.id}: already succeeded, nothing to do"
    assert _results(db.factory) == [(entry.id, job.id)]


def test_a_lost_task_is_queued_again_by_the_reaper(local_ray: None, db: Database,
                                                   session: Session, storage: Storage,
                                                   make: Factory) -> None:
    # Three trials of ten slow simulated minutes keep the task busy for a second or two.
    (entry,) = _submit(session, storage, make, speed=0.5, laps=20, trials=3, time_cap=600)
    dispatcher = ray_executor.RayDispatcher(_settings(db, storage, lease_s=2.0))
    assert dispatcher.dispatch(db.factory) == 1
    ((job_id, ref),) = dispatcher.in_flight.items()
    time.sleep(0.5)  # let the task start: a task cancelled while Ray places it may still run
    ray.cancel(ref, force=True)  # kills the worker process, as a lost node would
    with pytest.raises(ray.exceptions.RayError):
        ray.get(ref, timeout=DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    reaped: list[int] = []
    while not reaped and time.monotonic() < deadline:
        time.sleep(0.5)
        with db.factory.begin() as s:  # the scheduler's reap-leases job
            reaped = jobs.reap_expired(s)
    assert reaped == [job_id]
    _drain(dispatcher, db.factory)
    job = _job(db.factory)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert "stopped renewing its lease" in job.log
    assert _results(db.factory) == [(entry.id, job_id)]


def test_tasks_get_no_secret_and_never_busy_wait(db: Database, storage: Storage) -> None:
    task = ray_executor.TaskSettings.of(_settings(db, storage))
    assert task.secret_key == "" and task.database_url == db.url
    assert (task.sandbox().spin_s, task.sandbox().child_spin_s) == (0.0, 0.0)
