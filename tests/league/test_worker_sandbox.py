"""Workers and the sandbox: strict by default, lenient only when asked; evaluations that run
past their wall-clock limit fail as ``timeout``; a race that hangs stops keeping its lease."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session

from evaluator import sandbox
from league.config import ConfigError, Settings
from league.db import transaction
from league.models import FailureKind, JobStatus
from league.processes import launcher, runner, worker
from league.rules import jobs, submissions
from league.rules.races import race_config
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Database, Factory

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FULL = {"clean_env": True, "namespaces": True, "rlimits": True, "user": "nobody",
        "no_new_privs": True, "landlock": 6, "seccomp": True}
BARE = FULL | {"namespaces": False, "landlock": False, "seccomp": False}


def settings_for(db: Database, storage: Storage, **kw: Any) -> Settings:
    return Settings(database_url=db.url, storage_dir=storage.root, secret_key="test", **kw)


def worker_args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"workers": None, "once": True, "lenient_sandbox": False, **kw})


@pytest.fixture
def worker_env(db: Database, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """``paddock worker``'s environment: the test database, nothing else."""
    for name in ("PADDOCK_SANDBOX_STRICT", "PADDOCK_EVALUATION_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("PADDOCK_STORAGE_DIR", str(storage.root))
    monkeypatch.setenv("SECRET_KEY", "test")


# ---------------------------------------------------------------------------- strict by default
def test_settings_are_strict_unless_told_otherwise() -> None:
    env = {"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"}
    assert Settings.from_env(env).sandbox_strict is True
    assert Settings.from_env(env).sandbox().strict is True
    assert Settings.from_env(env | {"PADDOCK_SANDBOX_STRICT": "0"}).sandbox_strict is False
    assert Settings.from_env(env).evaluation_timeout_s == 0.0
    timed = Settings.from_env(env | {"PADDOCK_EVALUATION_TIMEOUT_S": "900"})
    assert timed.sandbox().evaluation_timeout_s == 900.0
    with pytest.raises(ConfigError, match="PADDOCK_EVALUATION_TIMEOUT_S"):
        Settings.from_env(env | {"PADDOCK_EVALUATION_TIMEOUT_S": "-1"})


def test_workers_fork_their_policy_processes_unless_told_otherwise() -> None:
    env = {"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"}
    assert Settings.from_env(env).sandbox().fork_server is True
    assert Settings.from_env(env | {"PADDOCK_SANDBOX_FORK": "0"}).sandbox().fork_server is False


@pytest.mark.usefixtures("worker_env")
def test_a_worker_without_the_required_layers_refuses_to_start(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(worker, "probe_layers", lambda options: dict(BARE))
    assert worker.cmd_worker(worker_args()) == 1
    err = capsys.readouterr().err
    assert "refusing to start" in err and "seccomp" in err and "landlock or namespaces" in err
    assert "apt-get install bubblewrap" in err and "--lenient-sandbox" in err


@pytest.mark.usefixtures("worker_env")
def test_a_lenient_worker_starts_and_says_what_is_missing(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(worker, "probe_layers", lambda options: dict(BARE))
    with caplog.at_level(logging.WARNING):
        assert worker.cmd_worker(worker_args(lenient_sandbox=True)) == 0
    assert "seccomp" in caplog.text and "lenient sandbox" in caplog.text


@pytest.mark.usefixtures("worker_env")
def test_a_worker_with_every_required_layer_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "probe_layers", lambda options: FULL | {"namespaces": False})
    assert worker.cmd_worker(worker_args()) == 0  # Landlock stands in for bubblewrap


@pytest.mark.usefixtures("worker_env")
def test_the_pool_gets_the_worker_count_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--workers 1`` on two cores: the one worker's policy processes may busy-wait, which
    the default of two workers (``PADDOCK_WORKERS``) would forbid."""
    monkeypatch.setattr(worker, "probe_layers", lambda options: dict(FULL))
    monkeypatch.setattr(sandbox, "available_cores", lambda: 2)
    monkeypatch.setattr("league.config.available_cores", lambda: 2)
    started: list[tuple[Settings, int]] = []
    monkeypatch.setattr(worker, "run_pool", lambda s, n: started.append((s, n)))
    assert worker.cmd_worker(worker_args(workers=1, once=False)) == 0
    (settings, n), = started
    assert n == settings.workers == 1 and settings.sandbox().child_spin_s > 0
    assert worker.cmd_worker(worker_args(once=False)) == 0
    assert started[1][1] == started[1][0].workers == 2
    assert started[1][0].sandbox().child_spin_s == 0.0


def test_the_worker_process_checks_this_machine(db: Database, storage: Storage,
                                                tmp_path: Path) -> None:
    """The real check, without bubblewrap (as if it were not installed): the worker starts
    where seccomp and Landlock work, and otherwise refuses, naming what is missing."""
    layers = sandbox.probe_layers(sandbox.SandboxOptions(use_bwrap=False))
    missing = sandbox.missing_required(layers)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, "SECRET_KEY": "test",
           "PADDOCK_STORAGE_DIR": str(storage.root), "PADDOCK_SANDBOX_BWRAP": "0",
           "PADDOCK_INSTANCE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "league.processes.worker", "--once"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if missing:
        assert proc.returncode == 1 and "refusing to start" in proc.stderr, proc.stderr
        assert all(name in proc.stderr for name in missing), proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert "nothing queued" in proc.stderr


def test_the_demo_runs_its_workers_lenient_only_where_it_must(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    monkeypatch.setattr(launcher, "probe_layers", lambda options: dict(BARE))
    shortfall = launcher.sandbox_shortfall(settings)
    assert "seccomp" in shortfall and "bubblewrap" in shortfall
    monkeypatch.setattr(launcher, "probe_layers", lambda options: dict(FULL))
    assert launcher.sandbox_shortfall(settings) == ""
    (_, _, lenient) = launcher.child_commands("127.0.0.1", 5000, 2, lenient_sandbox=True)
    (_, _, strict) = launcher.child_commands("127.0.0.1", 5000, 2)
    assert lenient.argv[-1] == "--lenient-sandbox"
    assert "--lenient-sandbox" not in strict.argv


# ---------------------------------------------------------------------------- wall-clock limit
def _queued_long_job(session: Session, storage: Storage, make: Factory) -> int:
    race = make.race(session, laps=12, time_cap=3600.0)
    entry = submissions.submit_entry(session, storage, race, make.user(session),
                                     make.policy(0.5), now=make.now)
    job_id = entry.jobs[0].id
    session.commit()
    session.close()
    return job_id


def test_an_evaluation_past_its_wall_clock_limit_fails_as_time_budget(
        db: Database, session: Session, storage: Storage, make: Factory) -> None:
    job_id = _queued_long_job(session, storage, make)
    w = worker.Worker(settings_for(db, storage, evaluation_timeout_s=0.3), "test-worker")
    t0 = time.monotonic()
    try:
        assert w.run_once() == job_id
    finally:
        w.close()
    assert time.monotonic() - t0 < 30.0
    with transaction(db.factory) as s:
        job = jobs.get_job(s, job_id)
        status, kind, reason = job.status, job.failure_kind, job.failure_reason
    assert (status, kind) == (JobStatus.FAILED, FailureKind.TIME_BUDGET)
    assert reason == "the evaluation ran past its wall-clock limit of 0.3 s"


def test_the_default_limit_follows_the_race(db: Database, session: Session,
                                            storage: Storage, make: Factory) -> None:
    job_id = _queued_long_job(session, storage, make)
    settings = settings_for(db, storage)
    with transaction(db.factory) as s:
        limit = runner.wall_clock_limit(s, jobs.get_job(s, job_id), settings)
    opts = settings.sandbox()
    with transaction(db.factory) as s:
        config = race_config(jobs.get_job(s, job_id).entry.race)
    assert limit == sandbox.evaluation_limit_s(config, 1, opts)
    assert limit >= sandbox.inference_budget_s(config, 1, opts) + opts.load_timeout_s
    with transaction(db.factory) as s:
        fixed = runner.wall_clock_limit(s, jobs.get_job(s, job_id),
                                        settings_for(db, storage, evaluation_timeout_s=42.0))
    assert fixed == 42.0


def test_a_hung_race_stops_keeping_its_lease(db: Database, session: Session,
                                             storage: Storage, make: Factory) -> None:
    """Past its limit by a lease, the race is taken to hang: its lease is left to run out."""
    job_id = _queued_long_job(session, storage, make)
    settings = settings_for(db, storage, lease_s=0.3, heartbeat_s=0.05)
    with transaction(db.factory) as s:
        assert jobs.claim_job(s, "test-worker", settings.lease_s) is not None
    keepers = {"over": runner.LeaseKeeper(db.factory, settings, job_id, "test-worker",
                                          sandbox.WallClock(0.0)),
               "within": runner.LeaseKeeper(db.factory, settings, job_id, "test-worker",
                                            sandbox.WallClock(3600.0))}
    for keeper in keepers.values():
        keeper.__enter__()
    time.sleep(1.0)
    threads_alive = {name: k._thread.is_alive() for name, k in keepers.items()}
    for keeper in keepers.values():
        keeper.__exit__(None, None, None)
    assert keepers["over"].lost and not threads_alive["over"]
    assert not keepers["within"].lost and threads_alive["within"]
    assert isinstance(keepers["over"]._thread, threading.Thread)
