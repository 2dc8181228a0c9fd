"""The production layout of docs/DEPLOY.md, for real: PostgreSQL, gunicorn on the app factory,
one scheduler and two worker processes, each a separate process sharing only the database and
the storage directory. An organizer schedules a race and a racer submits through the API
(``paddock submit --wait``); the result arrives and equals the evaluation at home."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dbfixtures import BACKENDS, _create_pg_database, _drop_pg_database

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS,
                                reason="the production layout runs on PostgreSQL")
BOT = Path(__file__).resolve().parents[2] / "evaluator" / "bots" / "pro.onnx"
PASSWORD = "production-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _paddock(env: dict[str, str], *args: str, stdin: str = "") -> str:
    proc = subprocess.run([sys.executable, "-m", "league.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _api(base: str, method: str, path: str, token: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + "/api/v1" + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_http(url: str, procs: list[subprocess.Popen[bytes]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The services running; yields the site's URL and their environment."""
    url = _create_pg_database()
    env = {**os.environ, "DATABASE_URL": url, "PADDOCK_STORAGE_DIR": str(tmp_path / "storage"),
           "SECRET_KEY": "production-secret", "PADDOCK_INSTANCE_DIR": str(tmp_path / "inst"),
           "PADDOCK_WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    procs: list[subprocess.Popen[bytes]] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        _paddock(env, "db", "upgrade")
        port = _free_port()
        commands = {
            "web": [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                    "--workers", "2", "--no-control-socket", "web:create_app()"],
            "scheduler": [sys.executable, "-m", "league.cli", "scheduler"],
            "worker-1": [sys.executable, "-m", "league.cli", "worker", "--workers", "1"],
            "worker-2": [sys.executable, "-m", "league.cli", "worker", "--workers", "1"],
        }
        for name, argv in commands.items():
            with (logs / f"{name}.log").open("wb") as log:
                procs.append(subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log,
                                              stderr=subprocess.STDOUT))
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/healthz", procs)
        yield base, env
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} died: see {logs}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _drop_pg_database(url)


def test_the_production_layout_races_a_submission_end_to_end(layout, tmp_path):
    base, env = layout
    _paddock(env, "user", "create", "boss", "--email", "boss@example.org", "--role",
             "organizer", "--password-stdin", stdin=PASSWORD + "\n")
    _paddock(env, "user", "create", "ada", "--email", "ada@example.org", "--password-stdin",
             stdin=PASSWORD + "\n")
    boss = _paddock(env, "token", "create", "boss").strip()
    ada = _paddock(env, "token", "create", "ada").strip()
    _api(base, "POST", "/leagues", boss, {"slug": "prod-club", "name": "Prod Club"})
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    race = _api(base, "POST", "/leagues/prod-club/races", boss, {
        "name": "Launch", "track": "oval", "laps": 1, "trials": 2, "seed": 7,
        "opens_at": (now - dt.timedelta(minutes=1)).isoformat(),
        "closes_at": (now + dt.timedelta(hours=1)).isoformat()})
    submit = subprocess.run(
        [sys.executable, "-m", "league.cli", "submit", str(BOT), "--race", str(race["id"]),
         "--server", base, "--token", ada, "--wait", "--json", "--timeout", "120"],
        env=env, capture_output=True, text=True, timeout=180)
    assert submit.returncode == 0, submit.stderr
    board = _api(base, "GET", f"/races/{race['id']}/leaderboard", ada)
    rows = board["items"]
    assert [r["racer"] for r in rows] == ["ada"] and rows[0]["rank"] == 1
    evaluation = _api(base, "GET", f"/evaluations/{rows[0]['job_id']}", ada)
    assert evaluation["status"] == "succeeded"
    # At home, by the race's id: the same settings, seed and conditions, the same result.
    # The seed is secret while the race is open (the result's seeds are left out), so both
    # sides are read once it has closed.
    assert evaluation["result"]["seed"] is None
    _api(base, "POST", f"/races/{race['id']}/close", boss)
    evaluation = _api(base, "GET", f"/evaluations/{rows[0]['job_id']}", ada)
    assert evaluation["result"]["seed"] == 7
    home = subprocess.run(
        [sys.executable, "-m", "evaluator.cli", "evaluate", str(BOT), "--race", str(race["id"]),
         "--server", base, "--json", "--quiet"], env=env, capture_output=True, text=True,
        timeout=180)
    assert home.returncode == 0, home.stderr
    assert json.loads(home.stdout) == evaluation["result"]
    assert evaluation["result"]["settings"]["conditions"]["preset"] == "standard"
