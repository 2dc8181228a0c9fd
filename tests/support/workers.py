"""A real worker process for end-to-end tests: ``python -m league.processes.worker --once``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from league.storage import Storage

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database

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
