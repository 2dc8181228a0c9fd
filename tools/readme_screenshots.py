"""Take the README's screenshots from a real demo league: a leaderboard and the replay viewer.

Starts ``paddock demo`` in a temporary directory on a free port, waits until the bots' time
trial on royal-park has all four racers on its leaderboard, then drives the system's Chromium
(Playwright) to the race page and to the winner's replay, and writes
``docs/images/leaderboard.png`` and ``docs/images/replay.png``.

    .venv/bin/python tools/readme_screenshots.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
RACE_NAME = "Royal Park Time Trial"
RACERS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_board(base: str, timeout_s: float = 180) -> tuple[int, int]:
    """The race's id and the leader's job id, once every bot is ranked."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            races = _get(f"{base}/api/v1/races?per_page=50")["items"]
            race = next(r for r in races if r["name"] == RACE_NAME)
            rows = _get(f"{base}/api/v1/races/{race['id']}/leaderboard")["items"]
            if sum(1 for r in rows if r["rank"]) == RACERS:
                return race["id"], rows[0]["job_id"]
        except (OSError, StopIteration, KeyError):
            pass
        time.sleep(1)
    raise SystemExit("the demo's leaderboard did not fill in time")


def main() -> int:
    """Run the demo, take both screenshots, stop the demo."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
        for key in ("DATABASE_URL", "PADDOCK_STORAGE_DIR", "SECRET_KEY"):
            env.pop(key, None)
        demo = subprocess.Popen([sys.executable, "-m", "league.cli", "demo"], cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            race_id, job_id = _wait_for_board(base)
            OUT.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.goto(f"{base}/races/{race_id}")
                page.screenshot(path=str(OUT / "leaderboard.png"), full_page=False)
                page.goto(f"{base}/evaluations/{job_id}/replay#t=9.5")
                page.wait_for_function("() => window.paddockReplay"
                                       " && window.paddockReplay.state().loaded")
                page.screenshot(path=str(OUT / "replay.png"), full_page=False)
                browser.close()
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(timeout=60)
    print(f"wrote {OUT / 'leaderboard.png'} and {OUT / 'replay.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
