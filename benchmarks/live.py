"""Benchmark of a live event watched by hundreds of viewers: prints one JSON object, progress
on stderr.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/live.py            # full run, about 7 minutes on 2 cores
    .venv/bin/python benchmarks/live.py --quick    # smoke run, the watched event only, ~1 min
    .venv/bin/python benchmarks/live.py --nginx    # the viewers through nginx caching the site

A fresh SQLite database (WAL) and storage in a temporary directory hold two identical
head-to-head races with a knockout: the same racers, the same shipped demo bots
(``evaluator/bots/``, submitted through ``league.rules.submissions.submit_entry``), the same
ratings (so the bracket seeds the same way) and the same race seed (so every heat is the same
simulation), each with a live finals event (docs/LIVE.md). The league runs as an operator runs
it: the scheduler (``python -m league.cli scheduler``), the local workers
(``python -m league.processes.worker``, 2 processes) and the site in gunicorn with 2 sync
workers (docs/DEPLOY.md). Nothing is faked: the scheduler starts each event, plans its
stages, the workers race the heats and the live-events job puts each heat on air.

The first event runs with nobody watching; the second under the simulated viewers (asyncio,
one HTTP/1.1 connection per request, as gunicorn's sync workers close it after each answer).
Each viewer does what ``web/static/js/live.js`` does: polls the index (``live.json``) a second
after its previous answer, corrects its clock by ``server_time`` (the fetch with the shortest
round trip of the last 20), fetches the head of the slot on air (or the next one, from
``lead_s`` before its start) and each segment from its publication time on (plus the script's
quarter-second margin): the segment of the live moment, the next, two ahead, then the past
ones (a late viewer's ticker), at most 4 requests in flight. Most viewers join over the first
seconds; a fifth join at random moments of the event, mid-heat. Each viewer samples once a
second its *lag*: the race clock (now − ``on_air_at`` of the slot on air, on the true clock)
minus the end race time of the newest segment it holds of that slot; a viewer within 2 s
of the race clock can show the live moment (target: p95 ≤ 2 s). The heats' durations (their
evaluation jobs' claim to result) of the two events are compared heat by heat: the target is
that the viewers slow the heats by at most 10 %. A warm-up round of the same models in a race
of their own first warms the workers' policy processes for both events alike. ``--quick`` runs
the watched event only. With ``--nginx`` the viewers go through nginx caching what the site
allows (the deployment docs/LIVE.md is designed for). See ``benchmarks/README.md`` for every
key.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import pwd
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from league_jobs import _start_pool, _stop_pool, _wait
from sqlalchemy.orm import Session, sessionmaker

from evaluator import version
from league.db import Base, make_engine, session_factory, transaction
from league.models import (
    EvaluationJob,
    Heat,
    LiveEvent,
    LiveEventKind,
    Race,
    RaceStatus,
    Rating,
    utcnow,
)
from league.rules import accounts, headtohead, leagues, live, races, submissions
from league.storage import Storage
from web import free_port, start_server, stop_server, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
BOTS = ("ace", "pro")  # the two fastest demo bots, alternating by seed: short heats
TRACK = "oval"  # the library's shortest track
WORKERS = 2  # league_jobs starts the default 2 worker processes
DELAY_S = 5  # the event's broadcast delay
START_AFTER_S = 3.0  # the event starts this long after the processes are up
PASSWORD = "benchmark password"  # noqa: S105 (throwaway accounts)
TARGETS = {"lag_p95_s": 2.0, "errors": 0, "heat_slowdown_ratio": 1.10}
# What a viewer does (web/static/js/live.js's constants)
POLL_S = 1.0  # the index, a second after the previous answer
PUBLISH_MARGIN_S = 0.25  # a segment is asked for this long after its publication time
SEGMENT_RETRY_S = 0.4  # after a 404
RETRY_S = 3.0  # after a failed request
PREFETCH_SEGMENTS = 2
MAX_FETCHES = 4
CLOCK_SAMPLES = 20
TICK_S = 0.25  # how often a viewer looks at what it needs (the page does so every frame)
SAMPLE_S = 1.0  # how often a viewer samples its lag
REQUEST_TIMEOUT_S = 15.0
LATE_SHARE = 0.2  # viewers who join during the event, mid-heat
EVENT_TIMEOUT_S = 900.0
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class Scale:
    """How big the bracket is and how many viewers watch."""

    knockout: int  #: knockout size (entrants of the bracket)
    laps: int
    viewers: int
    join_s: float  #: the first viewers join over this many seconds
    baseline: bool  #: race the unwatched event first (after a warm-up round)


FULL = Scale(knockout=4, laps=2, viewers=500, join_s=5.0, baseline=True)
QUICK = Scale(knockout=2, laps=1, viewers=100, join_s=2.0, baseline=False)
QUICK_EVENT_S = 35.0  #: about how long the quick event lasts (when late viewers may join)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of ``values`` (None when empty), nearest rank."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]
    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}


# --------------------------------------------------------------------------- the league
def build(tmp: Path, scale: Scale) -> tuple[sessionmaker[Session], int, list[int]]:
    """A warm-up race and two identical head-to-head races with a knockout and a live finals
    event each (its start an hour away until :func:`start_event` moves it): the warm-up
    race's id and the events' ids."""
    engine = make_engine(f"sqlite:///{tmp / 'league.sqlite3'}")
    Base.metadata.create_all(engine)
    factory = session_factory(engine)
    storage = Storage(tmp / "storage")
    bots = [(ROOT / "evaluator" / "bots" / f"{name}.onnx").read_bytes() for name in BOTS]
    now = utcnow()
    race_ids, events = [], []
    with transaction(factory) as session:
        organizer = accounts.create_user(session, "organizer", "organizer@example.org",
                                         PASSWORD, "organizer")
        league = leagues.create_league(session, organizer, "bench", "Benchmark league")
        racers = [accounts.create_user(session, f"racer{k}", f"racer{k}@example.org", PASSWORD)
                  for k in range(1, scale.knockout + 1)]
        for name in ("warm-up", "unwatched", "watched"):
            knockout = 0 if name == "warm-up" else scale.knockout
            race = races.create_race(session, league, organizer, f"{name} finals",
                                     now - dt.timedelta(days=1), now + dt.timedelta(days=1),
                                     track=TRACK, laps=scale.laps, format="head-to-head",
                                     knockout_size=knockout, seed=7)
            race.status, race.last_round_at = RaceStatus.OPEN, now  # no rating round due
            for k, racer in enumerate(racers):  # seed k + 1: the rating table's order
                entry = submissions.submit_entry(session, storage, race, racer,
                                                 bots[k % len(bots)], now=now)
                session.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k,
                                   sigma=1.0, heats=5))
            session.flush()
            race_ids.append(race.id)
            if knockout:
                plan = live.Plan(f"{name.capitalize()} finals", LiveEventKind.FINALS,
                                 now + dt.timedelta(hours=1), delay_s=DELAY_S)
                events.append(live.schedule(session, race, organizer, plan, now).id)
    return factory, race_ids[0], events


def start_event(factory: sessionmaker[Session], event_id: int, after_s: float) -> float:
    """Move the event's start to ``after_s`` from now; the start as epoch seconds."""
    starts = utcnow().replace(microsecond=0) + dt.timedelta(seconds=after_s)
    with transaction(factory) as session:
        session.get_one(LiveEvent, event_id).starts_at = starts
    return starts.replace(tzinfo=dt.UTC).timestamp()


def event_status(factory: sessionmaker[Session], event_id: int) -> str:
    with factory() as session:
        return str(session.get_one(LiveEvent, event_id).status)


def heat_durations(factory: sessionmaker[Session], event_id: int) -> list[dict[str, Any]]:
    """The event's knockout heats in bracket order: stage, seeds' entries, how long the
    evaluation job took from its claim to its result (seconds)."""
    with factory() as session:
        race_id = session.get_one(LiveEvent, event_id).race_id
        rows = session.execute(
            sa.select(Heat.stage, Heat.round_no, EvaluationJob.status,
                      EvaluationJob.started_at, EvaluationJob.finished_at)
            .join(EvaluationJob, EvaluationJob.heat_id == Heat.id)
            .where(Heat.race_id == race_id, Heat.stage != headtohead.ROUND_STAGE)
            .order_by(Heat.round_no, Heat.id)).all()
    return [{"stage": stage, "status": str(status),
             "job_s": None if started is None or finished is None
             else round((finished - started).total_seconds(), 3)}
            for stage, _round, status, started, finished in rows]


def slot_times(factory: sessionmaker[Session], event_id: int) -> dict[str, Any]:
    """The event's slots: how many, their seconds of race time, from start to finish."""
    with factory() as session:
        event = session.get_one(LiveEvent, event_id)
        slots = [(s.duration_s, s.on_air_at) for s in event.slots]
        span = None if event.started_at is None or event.finished_at is None else \
            (event.finished_at - event.started_at).total_seconds()
        return {"slots": len(slots), "slot_duration_s": [round(d, 2) for d, _ in slots],
                "status": str(event.status), "note": event.note, "start_to_finish_s": span}


def warm_up(factory: sessionmaker[Session], race_id: int) -> None:
    """Race a rating round of the warm-up race (the same racers and models as the events'),
    so the workers' policy processes are as warm for the first event as for the second."""
    with transaction(factory) as session:
        race = session.get_one(Race, race_id)
        entries = headtohead.participants(session, race)
        pairs = [(entries[k % len(entries)].id, entries[(k + 1) % len(entries)].id)
                 for k in range(max(len(entries), 2 * WORKERS))]
        heats = headtohead.create_heats(session, race, headtohead.ROUND_STAGE,
                                        headtohead.ROUND_SEEDS, 1, pairs, utcnow())
        heat_ids = [h.id for h in heats]

    def done() -> bool:
        with factory() as session:
            return not session.scalar(sa.select(sa.func.count(EvaluationJob.id)).where(
                EvaluationJob.heat_id.in_(heat_ids),
                EvaluationJob.status.in_(headtohead.PENDING)))
    _wait("warm-up heats", done, 180.0)


# --------------------------------------------------------------------------- the viewers
@dataclass
class Stats:
    """What every viewer's requests and samples add up to."""

    latency: dict[str, list[float]] = field(default_factory=lambda: {
        "index": [], "head": [], "segment": []})
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: {
        "index": {}, "head": {}, "segment": {}})
    failures: dict[str, int] = field(default_factory=dict)  #: connection errors, timeouts
    cache_hits: dict[str, int] = field(default_factory=dict)  #: answered by nginx's cache
    loop_delay: list[float] = field(default_factory=list)  #: the viewers' event loop, late by
    early_404: int = 0  #: a head or segment asked for before its publication time
    lags: list[float] = field(default_factory=list)
    lags_late: list[float] = field(default_factory=list)  #: of the viewers who joined late
    worst_lag_per_viewer: list[float] = field(default_factory=list)
    slots: dict[int, tuple[float, float]] = field(default_factory=dict)  #: n → on air, length
    finished: bool = False

    def note(self, kind: str, status: int, seconds: float) -> None:
        counts = self.statuses[kind]
        counts[str(status)] = counts.get(str(status), 0) + 1
        if status == 200:
            self.latency[kind].append(seconds)

    def errors(self) -> int:
        """Requests that failed: no answer, or an answer other than 200 (the 404s asked for
        before their time are counted apart, in ``early_404``)."""
        bad = sum(self.failures.values())
        for counts in self.statuses.values():
            bad += sum(n for status, n in counts.items() if status != "200")
        return bad - self.early_404


SERVED_AT = re.compile(rb"\r\nX-Served-At: ([0-9.]+)", re.IGNORECASE)


async def get(host: str, port: int, path: str) -> tuple[int, bytes, bool, float | None]:
    """One HTTP/1.1 GET on a new connection: the status, the body, whether a cache in
    front of the site answered it (``X-Cache-Status: HIT``, nginx) and when the cache says it
    served it (``X-Served-At``, docs/DEPLOY.md), if it says."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: "
                     "paddock-live-benchmark/1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    served = SERVED_AT.search(head)
    return status, body, b"\r\nX-Cache-Status: HIT" in head, \
        float(served.group(1)) if served else None


@dataclass
class Viewer:
    """One spectator's live view: its clock, the index, what it holds and waits for."""

    number: int
    late: bool
    host: str
    port: int
    base: str  #: /events/<id>/
    stats: Stats
    index: dict[str, Any] | None = None
    clock: list[tuple[float, float]] = field(default_factory=list)  #: (trip, offset)
    offset: float = 0.0
    served_at: float | None = None  #: the last answer's X-Served-At
    heads: set[int] = field(default_factory=set)
    segs: dict[int, set[int]] = field(default_factory=dict)
    waiting: dict[tuple[int, int], float] = field(default_factory=dict)  #: → retry time
    in_flight: int = 0
    worst: float = float("-inf")
    over: bool = False
    joined: float = 0.0  #: when the viewer opened the page (epoch seconds)

    async def run(self, join_at: float) -> None:
        await asyncio.sleep(max(0.0, join_at - time.time()))
        self.joined = time.time()
        poll = asyncio.create_task(self.poll())
        next_sample = time.time()
        while not self.over and not self.stats.finished:
            if self.index is not None:
                self.look(time.time() + self.offset)
                if time.time() >= next_sample:
                    self.sample(time.time())
                    next_sample += SAMPLE_S
            await asyncio.sleep(TICK_S)
        poll.cancel()
        if self.worst > float("-inf"):
            self.stats.worst_lag_per_viewer.append(self.worst)

    async def poll(self) -> None:
        """The index, a second after each answer (three after a failure)."""
        while not self.over:
            sent = time.time()
            ok = await self.fetch("index", self.base + "live.json", None)
            if ok is not None:
                index = json.loads(ok)
                received = time.time()
                # as live.js: the cache's X-Served-At when it sends one, else server_time
                server = self.served_at if self.served_at is not None else index["server_time"]
                self.clock = (self.clock + [(received - sent,
                                             server - (sent + received) / 2)])[-CLOCK_SAMPLES:]
                self.offset = min(self.clock)[1]
                self.index = index
                for slot in index["slots"]:
                    if slot["on_air_at"] is not None:
                        self.stats.slots[slot["n"]] = (slot["on_air_at"], slot["duration_s"])
                if index["status"] in ("finished", "cancelled"):
                    self.over = True
                    return
            await asyncio.sleep(POLL_S if ok is not None else RETRY_S)

    async def fetch(self, kind: str, path: str, key: tuple[int, int] | None) -> bytes | None:
        """GET ``path``, counted under ``kind``; the body on 200, else None (and, for a head
        or segment, when to ask again)."""
        start = time.perf_counter()
        try:
            status, body, hit, served = await asyncio.wait_for(
                get(self.host, self.port, path), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError, IndexError) as err:
            name = type(err).__name__
            self.stats.failures[name] = self.stats.failures.get(name, 0) + 1
            if key is not None:
                self.waiting[key] = time.time() + RETRY_S
            return None
        self.stats.note(kind, status, time.perf_counter() - start)
        if hit:
            self.stats.cache_hits[kind] = self.stats.cache_hits.get(kind, 0) + 1
        if status == 200:
            self.served_at = served
            return body
        if key is not None:
            if status == 404:
                self.stats.early_404 += 1
            self.waiting[key] = time.time() + (SEGMENT_RETRY_S if status == 404 else RETRY_S)
        return None

    def load(self, n: int, k: int) -> None:
        """Fetch slot ``n``'s head (``k`` = -1) or segment ``k`` in the background."""
        self.in_flight += 1
        self.waiting[(n, k)] = float("inf")

        async def one() -> None:
            try:
                path = f"{self.base}live/{n}/" + ("head.json" if k < 0 else f"{k}.json")
                body = await self.fetch("head" if k < 0 else "segment", path, (n, k))
                if body is not None:
                    self.waiting.pop((n, k), None)
                    if k < 0:
                        self.heads.add(n)
                    else:
                        self.segs.setdefault(n, set()).add(k)
            finally:
                self.in_flight -= 1
        asyncio.get_running_loop().create_task(one())

    def wanted(self, slot: dict[str, Any], k: int, t: float) -> bool:
        n = slot["n"]
        if k < 0 and n in self.heads or k >= 0 and k in self.segs.get(n, ()):
            return False
        if k >= slot["segments"] or self.waiting.get((n, k), 0.0) > time.time():
            return False
        on_air: float = slot["on_air_at"]
        if k < 0:
            return t >= on_air - self.index_lead()
        return k < int(slot["released"]) or \
            t >= on_air + k * self.index_segment() - self.index_lead() + PUBLISH_MARGIN_S

    def index_lead(self) -> float:
        return float(self.index["lead_s"]) if self.index else 2.0

    def index_segment(self) -> float:
        return float(self.index["segment_s"]) if self.index else 1.0

    def look(self, t: float) -> None:
        """What live.js's frame loop asks for at server time ``t``: the head of the slot on
        air (or of the next one), then the segments of the live moment, the next ones, the
        past."""
        assert self.index is not None
        slots = [s for s in self.index["slots"] if s["on_air_at"] is not None]
        current = None
        for position, slot in enumerate(slots):
            if t >= slot["on_air_at"]:
                current = position
        if current is None or t - slots[current]["on_air_at"] >= slots[current]["duration_s"]:
            upcoming = slots[0 if current is None else current + 1:][:1]
            if upcoming and self.in_flight < MAX_FETCHES and self.wanted(upcoming[0], -1, t):
                self.load(upcoming[0]["n"], -1)
            return
        slot = slots[current]
        n, race_t = slot["n"], t - slot["on_air_at"]
        if n not in self.heads:
            if self.in_flight < MAX_FETCHES and self.wanted(slot, -1, t):
                self.load(n, -1)
            return
        k0 = int(race_t // self.index_segment())
        order = [k0, k0 + 1, *range(k0 + 2, k0 + 2 + PREFETCH_SEGMENTS), *range(k0 - 1, -1, -1)]
        for k in order:
            if self.in_flight >= MAX_FETCHES:
                return
            if self.wanted(slot, k, t):
                self.load(n, k)

    def sample(self, now: float) -> None:
        """The lag at ``now`` (true clock) if a slot is on air: its race clock minus the end
        of the newest segment this viewer holds of it (or, holding none yet, minus the race
        time at which the viewer joined: a late viewer's lag counts from its arrival)."""
        for n, (on_air, length) in self.stats.slots.items():
            race_t = now - on_air
            if 0 <= race_t < length:
                held = self.segs.get(n)
                shown = (max(held) + 1) * self.index_segment() if held else 0.0
                lag = race_t - max(shown, self.joined - on_air)
                (self.stats.lags_late if self.late else self.stats.lags).append(lag)
                self.worst = max(self.worst, lag)
                return


async def watch(host: str, port: int, event_id: int, scale: Scale, starts_at: float,
                expected_s: float, stats: Stats,
                finished: Callable[[], bool]) -> float:
    """Run the viewers until the event has finished; seconds they ran."""
    rng = random.Random(7)
    begin = time.time()
    viewers, joins = [], []
    for number in range(scale.viewers):
        late = rng.random() < LATE_SHARE
        join = starts_at + rng.uniform(DELAY_S + 2.0, DELAY_S + 2.0 + 0.8 * expected_s) \
            if late else begin + rng.uniform(0.0, scale.join_s)
        viewers.append(Viewer(number, late, host, port, f"/events/{event_id}/", stats))
        joins.append(join)
    tasks = [asyncio.create_task(v.run(j)) for v, j in zip(viewers, joins, strict=True)]

    async def monitor() -> None:  # how late the viewers' own event loop runs (a busy client)
        while not stats.finished:
            before = time.perf_counter()
            await asyncio.sleep(0.1)
            stats.loop_delay.append(time.perf_counter() - before - 0.1)
    loop_monitor = asyncio.create_task(monitor())

    async def referee() -> None:  # the event's end, from the database (a thread: it blocks)
        while not await asyncio.to_thread(finished):
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        stats.finished = True
    await asyncio.wait_for(asyncio.gather(referee(), *tasks), EVENT_TIMEOUT_S)
    await loop_monitor
    return time.time() - begin


# --------------------------------------------------------------------------- processes
def start_scheduler(tmp: Path, url: str) -> subprocess.Popen[bytes]:
    """``python -m league.cli scheduler`` (``paddock scheduler``), its log to a file."""
    env = {**os.environ, "DATABASE_URL": url, "PADDOCK_STORAGE_DIR": str(tmp / "storage"),
           "PADDOCK_INSTANCE_DIR": str(tmp), "SECRET_KEY": "benchmark"}
    log = (tmp / "scheduler.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "league.cli", "scheduler"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


# A cache in front of the site (``--nginx``): docs/DEPLOY.md's block for live events, which
# keeps what the site says it may (the index for a second, heads and segments for good, a 404
# for a second) and sends one request per URL upstream at a time (``proxy_cache_lock``).
NGINX_CONF = """
daemon off;
user {user};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  proxy_cache_path {tmp}/nginx-cache levels=1:2 keys_zone=live:10m max_size=200m
                   inactive=10m use_temp_path=off;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location ~ ^/events/[0-9]+/live(\\.json|/) {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_cache live;
      proxy_cache_lock on;
      proxy_cache_use_stale updating;
      proxy_cache_valid 404 1s;
      proxy_ignore_headers Set-Cookie;
      add_header X-Served-At $msec always;
      add_header X-Cache-Status $upstream_cache_status;
    }}
  }}
}}
"""


def start_cache(tmp: Path, upstream: int) -> tuple[subprocess.Popen[bytes], int]:
    """nginx caching in front of the site on port ``upstream``; the process and its port."""
    port = free_port()
    conf = tmp / "nginx.conf"
    user = pwd.getpwuid(os.getuid()).pw_name  # its workers write the cache in ``tmp``
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream=upstream, user=user),
                    "utf-8")
    log = (tmp / "nginx.log").open("ab")
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port


def run_event(factory: sessionmaker[Session], event_id: int, procs: list[
        subprocess.Popen[bytes]]) -> float:
    """Start the event and wait for it to finish without viewers; seconds from start."""
    starts = start_event(factory, event_id, START_AFTER_S)

    def done() -> bool:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a league process exited")
        return event_status(factory, event_id) in ("finished", "cancelled")
    _wait(f"event {event_id}", done, EVENT_TIMEOUT_S)
    return time.time() - starts


def compare_heats(quiet: list[dict[str, Any]], watched: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    """Heat by heat, the watched event's job seconds over the unwatched one's."""
    pairs = [(a["job_s"], b["job_s"]) for a, b in zip(quiet, watched, strict=False)
             if a["job_s"] and b["job_s"]]
    ratios = [b / a for a, b in pairs]
    return {"heats": len(pairs),
            "ratio_total": round(sum(b for _, b in pairs) / sum(a for a, _ in pairs), 3)
            if pairs else None,
            "ratio_per_heat": [round(r, 3) for r in ratios],
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None}


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:]) \
        if path.exists() else ""


def measure(tmp: Path, scale: Scale, cache: bool) -> dict[str, Any]:
    """Build the league, start its processes (and nginx in front of the site, with
    ``cache``), run the unwatched event (unless ``scale`` skips it), then the watched one;
    the raw figures."""
    url = f"sqlite:///{tmp / 'league.sqlite3'}"
    _log("building the league ...")
    factory, warm_id, (quiet_id, watched_id) = build(tmp, scale)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start_pool(tmp, url, tmp / "storage"))
        procs.append(start_scheduler(tmp, url))
        procs.append(start_server(tmp, url, port))
        wait_until_up(procs[2], f"http://127.0.0.1:{port}", tmp)
        viewed_port = port
        if cache:
            proxy, viewed_port = start_cache(tmp, port)
            procs.append(proxy)
            wait_until_up(proxy, f"http://127.0.0.1:{viewed_port}", tmp)
        quiet_s = None
        if scale.baseline:
            _log("warming up the workers ...")
            warm_up(factory, warm_id)
            _log("event 1, nobody watching ...")
            quiet_s = run_event(factory, quiet_id, procs)
            _log(f"  finished after {quiet_s:.0f} s")
        _log(f"the watched event, {scale.viewers} viewers ...")
        stats = Stats()
        starts = start_event(factory, watched_id, START_AFTER_S + scale.join_s)
        load_before = os.getloadavg()
        cpu_before = time.process_time()
        watched_s = asyncio.run(watch(
            "127.0.0.1", viewed_port, watched_id, scale, starts, quiet_s or QUICK_EVENT_S,
            stats,
            lambda: event_status(factory, watched_id) in ("finished", "cancelled")))
        client_cpu_s = time.process_time() - cpu_before
        _log(f"  finished; the viewers ran {watched_s:.0f} s")
    except BaseException:
        for name in ("workers.log", "scheduler.log", "gunicorn.log", "nginx.log"):
            _log(f"{name} (tail):\n{tail(tmp / name)}")
        raise
    finally:
        for proc, stop in zip(procs, (_stop_pool, _stop_pool, stop_server, _stop_pool),
                              strict=False):
            stop(proc)
    quiet_heats = heat_durations(factory, quiet_id) if scale.baseline else []
    watched_heats = heat_durations(factory, watched_id)
    requests = sum(sum(c.values()) for c in stats.statuses.values()) + \
        sum(stats.failures.values())
    return {
        "events": {"unwatched": {**slot_times(factory, quiet_id), "heats": quiet_heats}
                   if scale.baseline else None,
                   "watched": {**slot_times(factory, watched_id), "heats": watched_heats}},
        "heats_compared": compare_heats(quiet_heats, watched_heats),
        "lag_s": {k: None if v is None else round(v, 3)
                  for k, v in percentiles(stats.lags + stats.lags_late).items()},
        "lag_s_joined_at_start": {k: None if v is None else round(v, 3)
                                  for k, v in percentiles(stats.lags).items()},
        "lag_s_joined_late": {k: None if v is None else round(v, 3)
                              for k, v in percentiles(stats.lags_late).items()},
        "lag_samples": len(stats.lags) + len(stats.lags_late),
        "viewers_within_2_s_always": sum(w <= 2.0 for w in stats.worst_lag_per_viewer),
        "viewers_sampled": len(stats.worst_lag_per_viewer),
        "requests": requests,
        "requests_per_s": round(requests / watched_s, 1),
        "response_ms": {kind: {k: None if v is None else round(v * 1000, 1)
                               for k, v in percentiles(values).items()}
                        for kind, values in stats.latency.items()},
        "statuses": stats.statuses, "failures": stats.failures,
        "cache_hits": stats.cache_hits,
        "early_404": stats.early_404, "errors": stats.errors(),
        "viewing_s": round(watched_s, 1),
        "unwatched_event_s": None if quiet_s is None else round(quiet_s, 1),
        "load_average_at_viewers_start": [round(x, 2) for x in load_before],
        "client_cpu_share": round(client_cpu_s / watched_s, 2),
        "client_loop_delay_ms": {k: None if v is None else round(v * 1000, 1)
                                 for k, v in percentiles(stats.loop_delay).items()},
    }


def main() -> int:
    """Run the benchmark and print its JSON; non-zero when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a bracket of 2, 1 lap, 100 viewers, the watched event only")
    parser.add_argument("--viewers", type=int, default=None, help="override the viewers")
    parser.add_argument("--nginx", action="store_true",
                        help="the viewers go through nginx caching in front of the site")
    args = parser.parse_args()
    if args.nginx and not Path(NGINX).exists():
        print("nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
        return 2
    scale = QUICK if args.quick else FULL
    if args.viewers is not None:
        scale = Scale(scale.knockout, scale.laps, args.viewers, scale.join_s, scale.baseline)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="paddock-live-bench-") as tmp:
        run = measure(Path(tmp), scale, args.nginx)
    summary = {"lag_p95_s": run["lag_s"]["p95"], "errors": run["errors"],
               "heat_slowdown_ratio": run["heats_compared"]["ratio_total"]}
    met = {key: summary[key] is not None and summary[key] <= target
           for key, target in TARGETS.items()}
    result = {
        "summary": summary, "targets": TARGETS, "targets_met": None if args.quick else met,
        "setup": {"quick": args.quick, "viewers": scale.viewers, "late_share": LATE_SHARE,
                  "knockout": scale.knockout, "laps": scale.laps, "track": TRACK,
                  "bots": list(BOTS), "delay_s": DELAY_S, "league_workers": WORKERS,
                  "server": "gunicorn wsgi:app, 2 workers (sync)", "database": "SQLite (WAL)",
                  "cache_in_front": "nginx proxy_cache, 1 worker" if args.nginx else None,
                  "client": "asyncio, one connection per request, loopback"},
        **run,
        "paddock_version": version.PADDOCK_VERSION, "sim_version": version.SIM_VERSION,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load_at_start,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    print(json.dumps(result, indent=2))
    if run["errors"]:
        return 1
    return 0 if args.quick or all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
