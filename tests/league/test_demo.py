"""The demo league (``paddock demo`` / ``make run``): what it seeds, and the process tree."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from league.config import Settings
from league.db import make_engine, session_factory, transaction
from league.models import (
    EvaluationJob,
    JobStatus,
    League,
    Race,
    RacePoints,
    RaceStatus,
    SeasonStatus,
    User,
)
from league.processes import demo
from league.processes.worker import Worker
from league.rules import headtohead, seasons
from league.rules.leaderboard import race_leaderboard
from league.storage import Storage
from tests.support.dbfixtures import Database

NOW = dt.datetime(2026, 6, 1, 12, 0, 0)


def _drain(db: Database, storage: Storage) -> int:
    """Run every queued job in this process; returns how many ran."""
    worker = Worker(Settings(database_url=db.url, storage_dir=storage.root, secret_key="t"),
                    "demo-test")
    ran = 0
    try:
        while worker.run_once() is not None:
            ran += 1
    finally:
        worker.close()
    return ran


def test_the_demo_is_seeded_once_with_everything_the_brief_lists(db, storage):
    with transaction(db.factory) as s:
        league = demo.seed_demo(s, storage, NOW)
        assert league is not None and league.name == "Paddock Demo League"
        assert league.visibility == "public"
        assert [d.name for d in league.divisions] == ["Pro", "Rookie"]
        assert [x.status for x in league.seasons] == [SeasonStatus.ACTIVE]
        races = s.scalars(sa.select(Race).order_by(Race.id)).all()
        assert [(r.format, r.track, r.status) for r in races] == [
            ("time-trial", "oval", RaceStatus.OPEN),
            ("time-trial", "royal-park", RaceStatus.OPEN),
            ("head-to-head", "speedway", RaceStatus.OPEN)]
        assert {u.name for u in s.scalars(sa.select(User))} >= {"organizer", "racer", "admin",
                                                                "ace-bot"}
        queued = s.scalars(sa.select(EvaluationJob.status)).all()
        assert queued == [JobStatus.QUEUED] * 8  # 4 bots x 2 time trials
    with transaction(db.factory) as s:
        assert demo.seed_demo(s, storage, NOW) is None  # a second run keeps the data
        assert s.scalar(sa.select(sa.func.count(League.id))) == 1


def test_the_demo_comes_alive_leaderboards_ratings_and_points(db, storage):
    with transaction(db.factory) as s:
        demo.seed_demo(s, storage, NOW)
    assert _drain(db, storage) == 8
    with transaction(db.factory) as s:
        opening, royal, h2h = s.scalars(sa.select(Race).order_by(Race.id)).all()
        board = race_leaderboard(s, royal)
        assert [row.racer for row in board if row.rank] == \
            ["ace-bot", "pro-bot", "amateur-bot", "rookie-bot"]  # the bots' skill order
        assert headtohead.plan_round(s, h2h, NOW)
    assert _drain(db, storage) >= 1
    with transaction(db.factory) as s:
        h2h = s.get(Race, 3)
        assert all(row.heats > 0 for row in headtohead.rating_table(s, h2h))
        closing = NOW + demo.OPENING_CLOSES_AFTER + dt.timedelta(seconds=1)
        assert [r.name for r in seasons.close_due_races(s, closing)] == ["Opening Sprint"]
        points = {p.user_id: p.points for p in s.scalars(sa.select(RacePoints))}
        assert sorted(points.values(), reverse=True) == [25, 25, 18, 18]  # per division


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(cwd: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PADDOCK_WORKERS": "1"}
    for key in ("DATABASE_URL", "PADDOCK_STORAGE_DIR", "SECRET_KEY"):
        env.pop(key, None)
    return subprocess.Popen([sys.executable, "-m", "league.cli", "demo"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)


def _banner(proc: subprocess.Popen[str], timeout_s: float = 90.0) -> str:
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            return "".join(lines)
    proc.kill()
    raise AssertionError("no banner: " + "".join(lines))


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(p) for p in out.split()]


@pytest.mark.slow
def test_paddock_demo_runs_the_league_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        banner = _banner(proc)
        url = f"http://127.0.0.1:{port}/"
        assert url in banner and "organizer / paddock-demo" in banner
        assert "seeded just now" in banner
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        children = _children(proc.pid)
        assert len(children) == 3  # web, scheduler, workers
        engine = make_engine(f"sqlite:///{tmp_path / 'instance' / 'paddock.sqlite3'}")
        factory = session_factory(engine)
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and done < 8:
            with transaction(factory) as s:
                done = s.scalar(sa.select(sa.func.count(EvaluationJob.id)).where(
                    EvaluationJob.status == JobStatus.SUCCEEDED)) or 0
            time.sleep(0.5)
        engine.dispose()
        assert done >= 8, "the demo's evaluations did not finish within a minute"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=30) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or \
                "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        _reap(proc)
    again = _start(tmp_path, port)  # a second run keeps the data
    try:
        assert "existing database" in _banner(again)
        os.killpg(again.pid, signal.SIGTERM)
        assert again.wait(timeout=30) == 0
    finally:
        _reap(again)


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_second_paddock_demo_says_the_port_is_taken_before_anything_else(tmp_path):
    """With something already listening on the port (a first ``make run``), the command
    stops at once and says so: no banner, no URL, no migration, no children."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
        for key in ("DATABASE_URL", "PADDOCK_STORAGE_DIR", "SECRET_KEY"):
            env.pop(key, None)
        run = subprocess.run([sys.executable, "-m", "league.cli", "demo"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in run.stderr
    assert "running at" not in run.stdout and "http://" not in run.stdout
    assert not (tmp_path / "instance" / "paddock.sqlite3").exists()
