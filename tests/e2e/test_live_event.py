"""A live event for real: scheduler, worker and gunicorn processes on one database.

An organizer schedules the finals of a head-to-head race a few seconds ahead; the scheduler
starts the event on time, the worker races the final's heats, the scheduler puts them on air
one after another, and viewers polling the site over HTTP get the index and every segment at
its publication time (never before), with a ticker whose overtakes are in the telemetry. Once
the last heat has been aired the race closes with the champion and the event is its record.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import replay as replay_format
from league.db import make_engine, session_factory, transaction
from league.models import (
    EvaluationJob,
    LiveEvent,
    LiveEventKind,
    LiveEventStatus,
    LiveSlot,
    Race,
    RaceStatus,
    Rating,
    Replay,
    utcnow,
)
from league.read import live as live_read
from league.rules import live, submissions
from league.storage import Storage
from tests.support.dbfixtures import Factory
from tests.support.processes import Processes, league_processes

ROOT = Path(__file__).resolve().parents[2]
BOTS = ROOT / "evaluator" / "bots"
DAY = dt.timedelta(days=1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(base: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """GET ``base + path``: status (0 while nothing listens), body, headers."""
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)
    except urllib.error.URLError:  # not listening yet
        return 0, b"", {}


@pytest.fixture
def site(empty_url: str, tmp_path: Path) -> Iterator[tuple[str, Storage, Processes]]:
    yield from league_processes(empty_url, tmp_path)


def _on_air_at(index: dict[str, Any], n: int) -> float | None:
    """Slot ``n``'s start in an index, None when the index does not have it yet."""
    return next((s["on_air_at"] for s in index["slots"] if s["n"] == n), None)


def _distance(car: replay_format.ReplayCar) -> np.ndarray:
    return np.asarray(car.laps, dtype=float) + np.asarray(car.progress, dtype=float) / 100.0


def test_a_scheduled_event_starts_on_time_and_airs_its_heats(
        site: tuple[str, Storage, Processes], make: Factory) -> None:
    url, storage, procs = site
    engine = make_engine(url)
    factory = session_factory(engine)
    with transaction(factory) as s:
        league = make.league(s)
        # Two boxes on the track: a car that hits one is held, and the other goes by.
        race = make.race(s, league, format="head-to-head", knockout_size=2, laps=1,
                         seed=11, opens_at=utcnow() - DAY, closes_at=utcnow() + DAY,
                         heats_per_round=1, round_interval_s=3600, collision_penalty=1.0,
                         off_track_penalty=1.0, obstacles=2)
        race.status = RaceStatus.OPEN
        race.last_round_at = utcnow()  # no rating round: the ratings below seed the final
        entries = [submissions.submit_entry(s, storage, race, make.racer(s, name),
                                            (BOTS / f"{bot}.onnx").read_bytes(), now=utcnow())
                   for name, bot in (("slow", "amateur"), ("quick", "pro"))]
        for k, entry in enumerate(entries):
            s.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k, sigma=1.0, heats=5))
        race_id = race.id

    def read(query: Callable[[Session], Any]) -> Any:
        with transaction(factory) as s:
            return query(s)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, bytes, dict[str, str]]:
        return _get(base, path)

    procs.start("web", "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--no-control-socket", "web:create_app()")
    procs.start("scheduler", "-m", "league.cli", "scheduler")
    procs.start("worker", "-m", "league.processes.worker", "--workers", "1")
    procs.wait_for(lambda: get("/healthz")[0] == 200, "the site")
    with transaction(factory) as s:  # scheduled once everything runs: its start is near
        race = s.get_one(Race, race_id)
        starts = (utcnow() + dt.timedelta(seconds=5)).replace(microsecond=0)
        event_id = live.schedule(s, race, make.organizer(s, race.league), live.Plan(
            "Final night", LiveEventKind.FINALS, starts, delay_s=2), utcnow()).id
    status, body, _ = get(f"/events/{event_id}/live.json")
    assert status == 200 and json.loads(body)["status"] == "scheduled"

    # On time: live within two scheduler runs of its start, not before.
    started = procs.wait_for(lambda: read(lambda s: s.get_one(LiveEvent, event_id).started_at),
                             "the event to start")
    assert starts <= started <= starts + dt.timedelta(seconds=3)

    # Viewers poll the index and fetch each segment once it is published, never before.
    index = procs.wait_for(lambda: (lambda i: i if i["slots"] and
                                    i["slots"][0]["on_air_at"] else None)(
        json.loads(get(f"/events/{event_id}/live.json")[1])), "the first heat on air")
    first = index["slots"][0]
    assert first["title"] == "Final, heat 1 of 2"
    assert {c["racer"] for c in first["cars"]} == {"slow", "quick"}
    assert first["on_air_at"] >= started.replace(tzinfo=dt.UTC).timestamp() + 2  # the delay
    events: list[tuple[int, dict[str, Any]]] = []  # (slot, ticker event)
    for slot in (1, 2):
        head = procs.wait_for(lambda n=slot: (lambda r: r if r[0] == 200 else None)(
            get(f"/events/{event_id}/live/{n}/head.json")), f"slot {slot}'s head")
        total = json.loads(head[1])["segments"]
        for k in range(total):
            status, body, headers = get(f"/events/{event_id}/live/{slot}/{k}.json")
            if status == 404:  # not published yet: it must be ahead of the live moment
                idx = json.loads(get(f"/events/{event_id}/live.json")[1])
                on_air = _on_air_at(idx, slot)  # (None from an index a second old)
                assert on_air is None or idx["server_time"] < on_air + k - live.LEAD_S + 0.5
                status, body, headers = procs.wait_for(
                    lambda n=slot, k=k: (lambda r: r if r[0] == 200 else None)(
                        get(f"/events/{event_id}/live/{n}/{k}.json")),
                    f"segment {k} of slot {slot}")
                published = time.time()
                on_air = read(lambda s, n=slot: live_read.epoch(s.scalars(sa.select(
                    LiveSlot.on_air_at).where(LiveSlot.event_id == event_id,
                                              LiveSlot.position == n)).one()))
                assert published >= on_air + k - live.LEAD_S - 0.5  # not before its time
            assert "immutable" in headers["Cache-Control"]
            events.extend((slot, e) for e in json.loads(body)["events"])

    # The ticker's overtakes are in the telemetry: the passing car was behind, then ahead.
    def replays_of_final(s: Session) -> list[bytes]:
        slots = s.get_one(LiveEvent, event_id).slots
        rows = [s.scalars(sa.select(Replay).where(Replay.job_id == x.job_id,
                                                  Replay.trial == x.trial)).one()
                for x in slots]
        return [storage.get("replays", r.sha256) for r in rows]

    runs = [replay_format.decode(b) for b in read(replays_of_final)]
    kinds = [e["kind"] for _, e in events]
    assert kinds.count("start") == 2 and "finish" in kinds
    overtakes = [(slot, e) for slot, e in events if e["kind"] == "overtake"]
    assert overtakes, kinds
    for slot, e in overtakes:
        run, f = runs[slot - 1], e["frame"]
        passer, passed = e["cars"][:2]
        d = [_distance(c) for c in run.cars]
        later = min(f + 5, run.frames - 1)
        assert d[passer][later] > d[passed][later], e  # ahead once it happened
        assert (d[passer][:f] <= d[passed][:f]).any(), e  # and behind before
        assert e["t"] == pytest.approx(f * run.dt, abs=1e-3)

    # Afterwards: the race closed with its champion, the event is its record.
    procs.wait_for(lambda: read(lambda s: s.get_one(LiveEvent, event_id).status) ==
                   LiveEventStatus.FINISHED, "the event to finish")
    assert read(lambda s: s.get_one(Race, race_id).status) == RaceStatus.CLOSED
    final = json.loads(get(f"/events/{event_id}/live.json")[1])
    assert final["champion"] in {"slow", "quick"}
    assert all(s["state"] == "aired" and s["replay"] for s in final["slots"])
    status, page, _ = get(f"/events/{event_id}")
    assert status == 200 and final["champion"].encode() in page
    for s in final["slots"]:
        assert get(s["replay"])[0] == 200
    jobs = read(lambda s: s.scalars(sa.select(EvaluationJob.status)).all())
    assert set(jobs) == {"succeeded"}
    engine.dispose()
