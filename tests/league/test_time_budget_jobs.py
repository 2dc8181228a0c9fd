"""A slow policy in the league: its job fails as ``time_budget`` with the figures, promptly,
once, and the worker moves on; a good policy's job is unchanged."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import evaluator.sandbox as sandbox
from league.config import ConfigError, Settings
from league.db import transaction
from league.models import FailureKind, JobStatus, Result
from league.processes.worker import Worker
from league.rules import jobs, submissions
from league.storage import Storage
from tests.support.fake_children import slow_child

if TYPE_CHECKING:
    from conftest import Database, Factory

SLOW_S = 0.04  # per action: within the deadline, far over the budget's average
WALL_S = 15.0  # the slow job ends well within this; without its budget, minutes


@pytest.fixture
def slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy processes run the real child, slowed down for models named slowpoke."""
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", slow_child(tmp_path, b"slowpoke", SLOW_S))


def worker_for(db: Database, storage: Storage, **kw: float) -> Worker:
    settings = Settings(database_url=db.url, storage_dir=storage.root, secret_key="test",
                        sandbox_strict=False, sandbox_bwrap=False, **kw)  # type: ignore[arg-type]
    return Worker(settings, "test-worker")


def test_a_slow_policy_fails_its_job_as_time_budget(db: Database, session: Session,
                                                    storage: Storage, make: Factory,
                                                    slow: None) -> None:
    race = make.race(session, laps=3, trials=3, time_cap=180.0)  # the default length
    slow_entry = submissions.submit_entry(session, storage, race, make.user(session, "ann"),
                                          make.policy(0.5, name="slowpoke"), now=make.now)
    good_entry = submissions.submit_entry(session, storage, race, make.user(session, "bob"),
                                          make.policy(), now=make.now)
    slow_job, good_job = slow_entry.jobs[0].id, good_entry.jobs[0].id
    session.commit()
    session.close()
    worker = worker_for(db, storage, inference_budget_s=1.5)
    try:
        t0 = time.monotonic()
        assert worker.run_once() == slow_job
        took = time.monotonic() - t0
        assert worker.run_once() == good_job  # the worker moves on
        assert worker.run_once() is None  # and nothing came back to the queue
    finally:
        worker.close()
    assert took < WALL_S, took
    with transaction(db.factory) as s:
        failed, good = jobs.get_job(s, slow_job), jobs.get_job(s, good_job)
        assert (failed.status, failed.failure_kind, failed.attempts) == \
            (JobStatus.FAILED, FailureKind.TIME_BUDGET, 1)
        assert re.fullmatch(r"the policy used 1\.\d s of inference in \d+ actions \(\d\d\.\d ms "
                            r"each\), over its budget of 1\.5 s for this evaluation",
                            failed.failure_reason or ""), failed.failure_reason
        assert s.scalar(sa.select(sa.func.count(Result.id))
                        .where(Result.job_id == slow_job)) == 0
        assert good.status == JobStatus.SUCCEEDED
        assert re.search(r"inference \d+\.\d s of 1\.5 s each", good.log), good.log


def test_the_budget_is_an_operator_setting(tmp_path: Path) -> None:
    base = {"SECRET_KEY": "x", "PADDOCK_INSTANCE_DIR": str(tmp_path)}
    assert Settings.from_env(base).sandbox().inference_budget_s == 0.0  # derived per race
    fixed = Settings.from_env({**base, "PADDOCK_INFERENCE_BUDGET_S": "25"})
    assert fixed.sandbox().inference_budget_s == 25.0
    with pytest.raises(ConfigError, match="PADDOCK_INFERENCE_BUDGET_S must be a number"):
        Settings.from_env({**base, "PADDOCK_INFERENCE_BUDGET_S": "lots"})
