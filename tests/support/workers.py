"""Workers for end-to-end tests: a real worker process (``python -m league.processes.worker
--once``), or the same :class:`~league.processes.worker.Worker` run in the test's process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.config import Settings
from league.models import Race, Result
from league.processes.worker import Worker
from league.rules import seasons, submissions
from league.storage import Storage

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database, Factory

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 300.0  # how long one worker run may take before the test gives up (not a speed check)


def run_worker_once(db: Database, storage: Storage, tmp_path: Path) -> None:
    """One job claimed and raced by a real worker process on the test database and storage,
    with no operator setting from this environment (``PADDOCK_*``) but those."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.update(DATABASE_URL=db.url, PADDOCK_STORAGE_DIR=str(storage.root),
               PADDOCK_INSTANCE_DIR=str(tmp_path / "instance"), SECRET_KEY="test")
    proc = subprocess.run([sys.executable, "-m", "league.processes.worker", "--once"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=WAIT_S, check=False, start_new_session=True)
    assert proc.returncode == 0, proc.stderr


def race_one_job(db: Database, storage: Storage) -> int | None:
    """One job claimed and raced by a worker in this process (its policy processes closed
    after); the job's id, None when none was queued."""
    worker = Worker(Settings(database_url=db.url, storage_dir=storage.root,
                             secret_key="test"), "test-worker")
    try:
        return worker.run_once()
    finally:
        worker.close()


def league_result(session: Session, db: Database, storage: Storage, make: Factory,
                  race: Race, model: bytes) -> dict[str, Any]:
    """What the league stores for ``model`` entered in the open ``race``: entered, raced by a
    worker, the race closed (its seed shown); the result's JSON."""
    submissions.submit_entry(session, storage, race, make.racer(session, "ada"), model)
    session.commit()
    assert race_one_job(db, storage) is not None
    seasons.close_race_now(session, race, make.organizer(session, race.league))
    session.commit()
    data: dict[str, Any] = session.scalars(sa.select(Result)).one().data
    return data
