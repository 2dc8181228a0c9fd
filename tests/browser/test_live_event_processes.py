"""A live event watched in Chromium from real processes: gunicorn, the scheduler and a worker.

An organizer schedules a final a few seconds ahead; the scheduler starts it, the worker races
it, the scheduler puts its heats on air; two viewers open the live view at different moments
and show the same race time within a second, the late one at the live moment; the tower
overlay renders on a transparent background.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from league.db import make_engine, session_factory, transaction
from league.models import LiveEventKind, Race, RaceStatus, Rating, utcnow
from league.rules import live, submissions
from league.storage import Storage
from tests.support.dbfixtures import Factory
from tests.support.processes import ROOT, Processes, league_processes

READY = "() => document.querySelector('canvas.live-canvas')?.dataset.ready === '1'"
DAY = dt.timedelta(days=1)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Storage, Processes]]:
    yield from league_processes(f"sqlite:///{tmp_path / 'league.sqlite3'}", tmp_path)


def _json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, ValueError):
        return None


def _shown(page: Any) -> tuple[float, float]:
    """The page's race time and the moment it was read."""
    before = time.time()
    shown = float(page.evaluate("() => document.body.dataset.raceTime"))
    return shown, (before + time.time()) / 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_viewers_of_real_processes_share_the_race_clock(
        site: tuple[str, Storage, Processes], make: Factory, new_page: Any) -> None:
    url, storage, procs = site
    factory = session_factory(make_engine(url))
    with transaction(factory) as s:
        race = make.race(s, format="head-to-head", knockout_size=2, laps=2, seed=11,
                         opens_at=utcnow() - DAY, closes_at=utcnow() + DAY,
                         heats_per_round=1, round_interval_s=3600)
        race.status, race.last_round_at = RaceStatus.OPEN, utcnow()
        for k, bot in enumerate(("amateur", "pro")):
            entry = submissions.submit_entry(
                s, storage, race, make.racer(s, bot),
                (ROOT / "evaluator" / "bots" / f"{bot}.onnx").read_bytes(), now=utcnow())
            s.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k, sigma=1.0, heats=5))
        race_id = race.id
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs.start("web", "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--no-control-socket", "web:create_app()")
    procs.start("scheduler", "-m", "league.cli", "scheduler")
    procs.start("worker", "-m", "league.processes.worker", "--workers", "1")
    procs.wait_for(lambda: _json(base + "/api/v1/openapi.json") is not None, "the site")

    def schedule(s: Session) -> int:
        found = s.get_one(Race, race_id)
        return live.schedule(s, found, make.organizer(s, found.league), live.Plan(
            "Final night", LiveEventKind.FINALS, utcnow() + dt.timedelta(seconds=3),
            delay_s=2), utcnow()).id

    with transaction(factory) as s:
        event_id = schedule(s)
    index = f"{base}/events/{event_id}/live.json"

    def on_air() -> float | None:
        found = _json(index)
        slots = found["slots"] if found else []
        return slots[0]["on_air_at"] if slots and slots[0]["state"] == "on_air" else None

    on_air_at = procs.wait_for(on_air, "the final's first heat on air")
    first = new_page()
    first.goto(f"{base}/events/{event_id}/watch")
    first.wait_for_function(READY)
    time.sleep(3.0)
    late = new_page()
    late.goto(f"{base}/events/{event_id}/watch")
    late.wait_for_function(READY)
    (a, at_a), (b, at_b) = _shown(first), _shown(late)
    assert abs((a - at_a) - (b - at_b)) < 1.0, (a, b)  # the same race clock
    assert abs(b - (at_b - on_air_at)) < 1.0  # the late one at the live moment
    tower = late.locator("[data-role=tower]").inner_text()
    assert "amateur" in tower and "pro" in tower
    overlay = new_page()
    overlay.goto(f"{base}/events/{event_id}/overlay/tower")
    assert overlay.evaluate(
        "() => getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert overlay.evaluate(
        "() => getComputedStyle(document.documentElement).backgroundColor") == "rgba(0, 0, 0, 0)"
