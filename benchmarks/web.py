"""Benchmark of the website under load: prints one JSON object, progress on stderr.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/web.py            # full run, about 5 minutes
    .venv/bin/python benchmarks/web.py --quick    # smoke run, about a minute
    .venv/bin/python benchmarks/web.py --baseline /tmp/before   # and an older site, side by side

A fresh SQLite database in a temporary directory holds a league of three divisions with a
season of closed races (race points for a few hundred racers), one open time trial of 10,000
entries, each with a succeeded evaluation and its result, and one open head-to-head race of
200 racers with 10,000 heats (results, replays, ratings and their history, as the league
writes them). The site runs the way an operator runs it, ``gunicorn wsgi:app`` with 2 workers
on free loopback ports, and ``wrk`` (50 connections) loads one page at a time for a fixed
duration after a warm-up: the race page for visitors and for a racer signed in through the
login form, random pages of its leaderboard, the league page, the head-to-head race page and
its heat list (one racer's heats, random racers', random pages). A small Lua script hands
wrk's latency percentiles and error counts back as JSON, and counts answers that are not the
page expected (a signed-in page without the racer's name and log-out form).

The first request of each page (nothing cached in that worker yet) is timed on its own and
reported as ``first_request_ms``. With ``--baseline CHECKOUT`` the site of another checkout
serves the same database at the same time, and each page is loaded from both in turn. The
full run then repeats the race and league pages with the page cache for visitors turned off
(``without_page_cache``; see ``benchmarks/README.md``). The script exits non-zero when a
target is missed, when a page answers anything but 200 (or not the page expected), or when
``wrk`` is not installed.

Named ``web.py`` as the issue asks; it imports nothing of the ``web`` package itself (run as
a script, its directory comes first on ``sys.path`` and this file would hide it): the site
runs in gunicorn's own processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.cookiejar
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from evaluator.race_settings import Format
from league.db import Base, make_engine
from league.models import (
    Division,
    Entry,
    EvaluationJob,
    Heat,
    HeatEntry,
    JobKind,
    JobStatus,
    League,
    MemberRole,
    Membership,
    PolicyModel,
    Race,
    RacePoints,
    RaceStatus,
    Rating,
    RatingHistory,
    Replay,
    Result,
    Role,
    Season,
    SeasonStatus,
    User,
    Visibility,
)
from league.rules.jobs import result_columns

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
WORKERS = 2  # gunicorn workers, one per core of the development machine
CONNECTIONS = 50  # concurrent clients
# wrk threads, each with its own listening port of the site (5 connections each): gunicorn's
# sync workers close every connection, so a page load at 1,500 requests/s would come back to
# the 4-tuples of connections still in TIME_WAIT on one port within seconds, and some of its
# connections would wait a whole SYN retransmission (1 s, 3 s) to be accepted.
WRK_THREADS = 10
TARGETS = {"race_page_p95_ms": 100.0, "league_page_p95_ms": 100.0, "errors": 0}
STARTUP_TIMEOUT_S = 60.0
DIVISIONS = ("Gold", "Silver", "Bronze")
NOW = dt.datetime(2026, 6, 1, 12, 0, 0)
DAY = dt.timedelta(days=1)
BATCH = 2000  # rows per bulk insert


@dataclass(frozen=True)
class Scale:
    """How big the data is and how long each page is loaded."""

    entries: int  #: entries (and racers) of the big time trial
    standings_racers: int  #: league members in the season's standings, across the divisions
    season_races: int  #: closed races of the season
    h2h_racers: int  #: entrants of the head-to-head race (the time trial's first racers)
    heats: int  #: heats of the head-to-head race (the last round's are not raced yet)
    warmup_s: float
    duration_s: float


FULL = Scale(entries=10_000, standings_racers=300, season_races=20, h2h_racers=200,
             heats=10_000, warmup_s=5.0, duration_s=20.0)
QUICK = Scale(entries=1_000, standings_racers=60, season_races=5, h2h_racers=50, heats=1_000,
              warmup_s=1.0, duration_s=3.0)
SIGNED_IN = 42  #: the racer (by number) who signs in: in the time trial, league, head-to-head
# Every request (the login form, first requests, wrk) names one browser, as a real one does:
# the session a login issues is tied to its browser (Flask-Login's session protection).
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) paddock-benchmark/1"
PASSWORD = "benchmark-password"  # noqa: S105 (the signed-in racer's, on a throwaway database)
LEADERBOARD_PER_PAGE = 100  # web.views.races: rows of a leaderboard page
HEATS_PER_PAGE = 50  # web.views.races: heats of a heat-list page

# wrk hands its numbers back through this script (latencies in microseconds). Each wrk thread
# counts the answers that are not a 2xx (wrk's own count only sees statuses >= 400) and the
# 2xx answers whose body lacks one of the page's markers (a signed-in page that came back as a
# visitor's, an empty list); done() adds up the threads' counts. With several paths, each
# request picks one at random. wrk_script() puts the page's paths and markers in front.
WRK_SCRIPT = """
local threads = {}
local started = 0
setup = function(thread)
  started = started + 1
  thread:set("number", started)
  if #ports > 0 then
    thread.addr = wrk.lookup("127.0.0.1", tostring(ports[(started - 1) % #ports + 1]))[1]
  end
  table.insert(threads, thread)
end
init = function(args)
  math.randomseed(number * 7919 + os.time())
end
if #paths > 1 then
  request = function()
    return wrk.format(nil, paths[math.random(#paths)])
  end
end
non2xx = 0
unmarked = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  else
    for _, marker in ipairs(markers) do
      if not string.find(body, marker, 1, true) then
        unmarked = unmarked + 1
        break
      end
    end
  end
end
done = function(summary, latency, requests)
  local bad, wrong = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    wrong = wrong + thread:get("unmarked")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, ' ..
    '"p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"http_errors": %d, "non2xx": %d, "unmarked": %d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, e.status, bad, wrong))
end
"""


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError(f"cannot quote {text!r} for Lua")
    return f"[==[{text}]==]"


def wrk_script(paths: tuple[str, ...], markers: tuple[str, ...],
               ports: tuple[int, ...] = ()) -> str:
    """The Lua script loading ``paths`` and checking every 2xx answer for ``markers``; with
    ``ports``, wrk's threads take turns connecting to them (on 127.0.0.1)."""
    listed = ", ".join(_lua_string(x) for x in paths)
    marks = ", ".join(_lua_string(x) for x in markers)
    return (f"paths = {{{listed}}}\nmarkers = {{{marks}}}\n"
            f"ports = {{{', '.join(map(str, ports))}}}\n{WRK_SCRIPT}")


# The site with the page cache for visitors turned off (web.pagecache), to show what the
# versioned leaderboard and standings caches alone achieve.
UNCACHED_WSGI = """
import os
from web import create_app
KEYS = ("DATABASE_URL", "PADDOCK_STORAGE_DIR", "PADDOCK_INSTANCE_DIR", "SECRET_KEY")
app = create_app({**{k: os.environ[k] for k in KEYS}, "PUBLIC_PAGE_CACHE_S": 0})
"""


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data
def _insert(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        session.execute(sa.insert(model), rows[start:start + BATCH])


def _trial(rng: random.Random, trial: int, laps: int, finished: bool) -> dict[str, Any]:
    done = laps if finished else rng.randint(0, laps - 1)
    times = [round(rng.uniform(9.0, 14.0), 6) for _ in range(done)]
    off = rng.randint(0, 3)
    return {"trial": trial, "seed": rng.getrandbits(32), "status": "finished" if finished
            else "dnf", "laps_completed": done, "lap_times_s": times,
            "total_time_s": round(sum(times), 6) if finished else None,
            "best_lap_s": min(times) if times else None,
            "average_lap_s": round(sum(times) / done, 6) if done else None,
            "off_track_count": off, "collision_count": 0, "penalty_s": 5.0 * off,
            "completion_pct": 100.0 if finished else round(100.0 * done / laps, 3),
            "elapsed_s": round(sum(times), 6),
            "reason": "" if finished else "time up: the time cap of 180 s was reached"}


def _result_data(rng: random.Random, laps: int, status: str) -> dict[str, Any]:
    """An evaluator result JSON of realistic size (three trials with their laps)."""
    trials = [_trial(rng, t, laps, status == "finished" and rng.random() > 0.2)
              for t in (1, 2, 3)]
    if status == "finished":
        trials[0] = _trial(rng, 1, laps, True)
    ranked = [t for t in trials if t["status"] == "finished"]
    best = min(ranked, key=lambda t: t["total_time_s"]) if ranked else None
    error = "the policy returned NaN at step 12" if status == "policy_error" else None
    return {"paddock_version": "0.1.0", "sim_version": "1", "track": "royal-park",
            "format": "time-trial", "seed": 7, "status": status, "ranking": "total",
            "ranking_time_s": best["total_time_s"] if best else None,
            "ranking_laps": best["laps_completed"] if best else 0,
            "ranked_trial": best["trial"] if best else None,
            "trials": trials if status != "policy_error" else [], "error": error}


def racer_name(k: int) -> str:
    """The name of racer number ``k``."""
    return f"racer{k:05d}"


def build_database(url: str, scale: Scale, seed: int = 1) -> dict[str, Any]:
    """Create the tables and bulk-insert the league; returns the ids the pages need."""
    rng = random.Random(seed)
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        organizer = User(name="organizer", email="organizer@example.org",
                         password_hash="!", role=Role.ORGANIZER, created_at=NOW)
        session.add(organizer)
        session.flush()
        league = League(slug="bench", name="Benchmark League",
                        description="A league of many racers.\nThree divisions.",
                        visibility=Visibility.PUBLIC, invite_code="x" * 16,
                        created_by_id=organizer.id, created_at=NOW)
        session.add(league)
        session.flush()
        divisions = [Division(league_id=league.id, name=name, tier=tier)
                     for tier, name in enumerate(DIVISIONS, start=1)]
        season = Season(league_id=league.id, name="Season 1", starts_at=NOW - 60 * DAY,
                        ends_at=NOW + 30 * DAY, status=SeasonStatus.ACTIVE)
        session.add_all([*divisions, season])
        session.add(Membership(league_id=league.id, user_id=organizer.id,
                               role=MemberRole.ORGANIZER, joined_at=NOW))
        session.flush()
        first_user = organizer.id + 1
        _insert(session, User, [
            {"id": first_user + k, "name": racer_name(k),
             "email": f"{racer_name(k)}@example.org", "password_hash": "!",
             "role": Role.RACER, "created_at": NOW} for k in range(scale.entries)])
        members = list(range(first_user, first_user + scale.standings_racers))
        division_of = {u: divisions[k * len(divisions) // len(members)].id
                       for k, u in enumerate(members)}
        _insert(session, Membership, [
            {"league_id": league.id, "user_id": u, "role": MemberRole.MEMBER,
             "division_id": division_of[u], "joined_at": NOW} for u in members])
        session.execute(sa.update(User).where(User.id == first_user + SIGNED_IN)
                        .values(password_hash=generate_password_hash(PASSWORD)))
        race = _big_race(session, rng, league, season, first_user, scale.entries)
        _season_races(session, rng, league, season, members, division_of, scale.season_races)
        h2h = _head_to_head_race(session, rng, league, season, first_user, scale)
        ids = {"league_slug": league.slug, "race_id": race.id, "season_id": season.id,
               "h2h_race_id": h2h.id, "signed_in": racer_name(SIGNED_IN)}
        session.commit()
    engine.dispose()
    return ids


def _big_race(session: Session, rng: random.Random, league: League, season: Season,
              first_user: int, entries: int) -> Race:
    race = Race(league_id=league.id, season_id=season.id, name="The big time trial",
                track="royal-park", track_digest="0" * 64, laps=3, min_laps=3,
                ranking="total", trials=3, opens_at=NOW - 10 * DAY, closes_at=NOW + 10 * DAY,
                status=RaceStatus.OPEN, seed=7)
    session.add(race)
    session.flush()
    first_id = 1
    _insert(session, PolicyModel, [
        {"id": first_id + k, "owner_id": first_user + k, "name": "follower", "version": 1,
         "sha256": f"{k:064x}", "size_bytes": 4096, "model_metadata": {}, "validation": {},
         "created_at": NOW} for k in range(entries)])
    _insert(session, Entry, [
        {"id": first_id + k, "race_id": race.id, "racer_id": first_user + k,
         "model_id": first_id + k, "submitted_at": NOW - dt.timedelta(seconds=k),
         "disqualified_at": NOW if k % 997 == 5 else None,
         "disqualified_reason": "shared model" if k % 997 == 5 else ""}
        for k in range(entries)])
    _insert(session, EvaluationJob, [
        {"id": first_id + k, "kind": JobKind.TIME_TRIAL, "entry_id": first_id + k,
         "status": JobStatus.SUCCEEDED, "attempts": 1, "queued_at": NOW, "started_at": NOW,
         "finished_at": NOW, "failure_reason": "", "log": ""} for k in range(entries)])
    rows = []
    for k in range(entries):
        status = "policy_error" if k % 101 == 3 else "dnf" if k % 23 == 4 else "finished"
        data = _result_data(rng, 3, status)
        ranked = [t for t in data["trials"] if t["status"] == "finished"]
        rows.append({"id": first_id + k, "job_id": first_id + k, "entry_id": first_id + k,
                     "status": status, "ranking_time_s": data["ranking_time_s"],
                     "ranking_laps": data["ranking_laps"],
                     "best_lap_s": min((t["best_lap_s"] for t in ranked), default=None),
                     "off_track_count": sum(t["off_track_count"] for t in data["trials"]),
                     "collision_count": 0,
                     "penalty_s": sum(t["penalty_s"] for t in data["trials"]),
                     "data": data, "created_at": NOW})
    _insert(session, Result, rows)
    return race


def _season_races(session: Session, rng: random.Random, league: League, season: Season,
                  members: list[int], division_of: dict[int, int], count: int) -> None:
    races = [Race(league_id=league.id, season_id=season.id, name=f"Round {n}",
                  track="oval", track_digest="0" * 64, laps=3, trials=3, ranking="total",
                  opens_at=NOW - (60 - 2 * n) * DAY, closes_at=NOW - (59 - 2 * n) * DAY,
                  closed_at=NOW - (59 - 2 * n) * DAY, status=RaceStatus.CLOSED)
             for n in range(1, count + 1)]
    session.add_all(races)
    session.flush()
    table = season.points_table or [25, 18, 15, 12, 10, 8, 6, 4, 2, 1]
    rows = []
    for race in races:
        by_division: dict[int, list[int]] = {}
        for user in rng.sample(members, k=len(members) * 9 // 10):
            by_division.setdefault(division_of[user], []).append(user)
        for division, users in by_division.items():
            position = 0
            for user in users:
                ranked = rng.random() > 0.05  # a few took part without a ranked result
                position += ranked
                points = table[position - 1] if ranked and position <= len(table) else 0
                rows.append({"race_id": race.id, "user_id": user, "division_id": division,
                             "position": position if ranked else None, "points": points,
                             "awarded_at": race.closed_at})
    _insert(session, RacePoints, rows)


def _next_id(session: Session, model: type[Base]) -> int:
    return int(session.scalar(sa.select(sa.func.max(model.id))) or 0) + 1  # type: ignore


def _head_to_head_race(session: Session, rng: random.Random, league: League, season: Season,
                       first_user: int, scale: Scale) -> Race:
    """An open head-to-head race of ``scale.h2h_racers`` entrants and ``scale.heats`` heats, as
    the league writes them: rating rounds of one heat per entrant (``create_heats``: the heat
    and its entry links, a job), each raced heat with its result, two replays (the seats
    swapped), its finishing order, the ratings' history (``record_heat``). The last round is
    queued, not raced yet."""
    racers = scale.h2h_racers
    per_round = racers // 2
    rounds = -(-scale.heats // per_round)
    start = NOW - 9 * DAY
    race = Race(league_id=league.id, season_id=season.id, name="The head-to-head",
                track="royal-park", track_digest="0" * 64, format=Format.HEAD_TO_HEAD, laps=3,
                trials=1, ranking="total", opens_at=start, closes_at=NOW + 10 * DAY,
                status=RaceStatus.OPEN, seed=11, heats_per_round=2, round_interval_s=600,
                knockout_size=8, rounds_played=rounds,
                last_round_at=start + (rounds - 1) * dt.timedelta(seconds=600))
    session.add(race)
    session.flush()
    model0, entry0 = _next_id(session, PolicyModel), _next_id(session, Entry)
    entries = [entry0 + k for k in range(racers)]
    _insert(session, PolicyModel, [
        {"id": model0 + k, "owner_id": first_user + k, "name": "duelist", "version": 1,
         "sha256": f"{k + 10**6:064x}", "size_bytes": 4096, "model_metadata": {},
         "validation": {}, "created_at": start} for k in range(racers)])
    _insert(session, Entry, [
        {"id": entry0 + k, "race_id": race.id, "racer_id": first_user + k,
         "model_id": model0 + k, "submitted_at": start - dt.timedelta(seconds=k)}
        for k in range(racers)])
    heat0, job0 = _next_id(session, Heat), _next_id(session, EvaluationJob)
    result0, replay0 = _next_id(session, Result), _next_id(session, Replay)
    tables: dict[type[Base], list[dict[str, Any]]] = {
        model: [] for model in (Heat, HeatEntry, EvaluationJob, Result, Replay, RatingHistory)}
    mu = dict.fromkeys(entries, 25.0)
    sigma = dict.fromkeys(entries, 25.0 / 3)
    heats_of = dict.fromkeys(entries, 0)
    for n in range(scale.heats):
        round_no, index = n // per_round + 1, n % per_round
        if index == 0:
            order = rng.sample(entries, k=len(entries))
        pair = order[2 * index:2 * index + 2]
        at = start + (round_no - 1) * dt.timedelta(seconds=600)
        raced = round_no < rounds
        heat_id, job_id = heat0 + n, job0 + n
        data = _heat_result(rng, pair) if raced else None
        positions = [pair[i] for i in data["positions"]] if data else None
        tables[Heat].append({"id": heat_id, "race_id": race.id, "round_no": round_no,
                             "stage": "round", "seed": rng.getrandbits(62), "entry_ids": pair,
                             "positions": positions, "rated_at": at if raced else None,
                             "created_at": at})
        tables[HeatEntry].extend({"heat_id": heat_id, "entry_id": e} for e in pair)
        tables[EvaluationJob].append({
            "id": job_id, "kind": JobKind.HEAT, "heat_id": heat_id,
            "status": JobStatus.SUCCEEDED if raced else JobStatus.QUEUED,
            "attempts": int(raced), "queued_at": at, "started_at": at if raced else None,
            "finished_at": at if raced else None, "failure_reason": "", "log": ""})
        if data is None or positions is None:
            continue
        tables[Result].append({"id": result0 + n, "job_id": job_id, "entry_id": None,
                               "data": data, "created_at": at, **result_columns(data)})
        tables[Replay].extend(
            {"id": replay0 + 2 * n + t, "job_id": job_id, "trial": t + 1,
             "sha256": f"{rng.getrandbits(256):064x}", "size_bytes": 180_000 + 1000 * t}
            for t in range(2))
        for place, eid in enumerate(positions):  # a stand-in for OpenSkill's update
            mu[eid] += 1.0 if place == 0 else -1.0
            sigma[eid] = max(1.0, sigma[eid] * 0.97)
            heats_of[eid] += 1
            tables[RatingHistory].append({
                "race_id": race.id, "entry_id": eid, "heat_id": heat_id, "round_no": round_no,
                "stage": "round", "mu": mu[eid], "sigma": sigma[eid], "recorded_at": at})
    for model, rows in tables.items():
        _insert(session, model, rows)
    _insert(session, Rating, [
        {"race_id": race.id, "entry_id": e, "mu": mu[e], "sigma": sigma[e],
         "heats": heats_of[e], "updated_at": NOW} for e in entries])
    return race


def _heat_result(rng: random.Random, pair: list[int]) -> dict[str, Any]:
    """A head-to-head result JSON (``RaceResult.to_dict``) of two cars, one trial per seat."""
    cars = []
    for car in range(len(pair)):
        trials = [{**_trial(rng, t, 3, rng.random() > 0.1), "grid_slot": (car + t - 1) % 2}
                  for t in (1, 2)]
        ranked = [t for t in trials if t["status"] == "finished"]
        best = min(ranked, key=lambda t: t["total_time_s"]) if ranked else None
        cars.append({"name": f"entry {pair[car]}", "sha256": f"{pair[car]:064x}",
                     "status": "finished" if best else "dnf",
                     "ranking_time_s": best["total_time_s"] if best else None,
                     "ranking_laps": 3 if best else max(t["laps_completed"] for t in trials),
                     "ranked_trial": best["trial"] if best else None, "trials": trials,
                     "error": None})
    positions = sorted(range(len(cars)), key=lambda i: (
        -cars[i]["ranking_laps"], cars[i]["ranking_time_s"] or float("inf"), i))
    for place, i in enumerate(positions):
        cars[i]["points"] = len(cars) - 1 - place
        cars[i]["wins"] = int(place == 0)
    first = cars[0]
    return {"paddock_version": "0.1.0", "sim_version": "1", "track": "royal-park",
            "track_digest": "0" * 64, "format": "head-to-head", "seed": rng.getrandbits(32),
            "status": first["status"], "ranking": "total",
            "ranking_time_s": first["ranking_time_s"], "ranking_laps": first["ranking_laps"],
            "ranked_trial": first["ranked_trial"], "settings": {"laps": 3, "cars": 2},
            "trials": first["trials"], "error": None, "cars": cars, "positions": positions}


# --------------------------------------------------------------------------- server and load
def free_port() -> int:
    """A TCP port nobody listens on now (on loopback)."""
    return free_ports(1)[0]


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` different TCP ports nobody listens on now (on loopback)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return tuple(sock.getsockname()[1] for sock in socks)
    finally:
        for sock in socks:
            sock.close()


def start_server(workdir: Path, url: str, port: int, page_cache: bool = True,
                 code: Path = ROOT, more_ports: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """gunicorn serving the site on the benchmark's database, in its own process group,
    listening on ``port`` (and ``more_ports``) of 127.0.0.1.

    The default is ``wsgi:app``, exactly what an operator runs; without ``page_cache`` a small
    WSGI module in the temporary directory creates the app with ``PUBLIC_PAGE_CACHE_S=0``.
    ``code``: the checkout whose site serves (``--baseline``: an older one, on the same data).
    """
    env = {**os.environ, "DATABASE_URL": url, "PADDOCK_STORAGE_DIR": str(workdir / "storage"),
           "PADDOCK_INSTANCE_DIR": str(workdir / "instance"), "SECRET_KEY": "benchmark",
           "PYTHONPATH": str(code)}
    env.pop("REDIS_URL", None)
    target = ["wsgi:app"]
    if not page_cache:
        (workdir / "uncached_wsgi.py").write_text(UNCACHED_WSGI, "utf-8")
        target = ["--pythonpath", str(workdir), "uncached_wsgi:app"]
    log_file = (workdir / "gunicorn.log").open("ab")
    return subprocess.Popen(
        [str(GUNICORN), "--workers", str(WORKERS),
         *(a for p in (port, *more_ports) for a in ("--bind", f"127.0.0.1:{p}")),
         "--backlog", "2048", "--log-level", "warning", *target],
        cwd=code, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn and its workers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def fetch(url: str, timeout: float = 30.0, cookie: str = "") -> tuple[int, bytes, float]:
    """GET ``url`` (with ``cookie``): status, body and seconds taken."""
    start = time.perf_counter()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                                   **({"Cookie": cookie} if cookie else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            return response.status, body, time.perf_counter() - start
    except urllib.error.HTTPError as err:
        return err.code, b"", time.perf_counter() - start


def wait_until_up(proc: subprocess.Popen[bytes], base: str, workdir: Path) -> None:
    """Wait for gunicorn to answer (or fail with its log)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            fetch(base + "/static/favicon.svg", timeout=2.0)
            return
        except OSError:
            time.sleep(0.2)
    tail = (workdir / "gunicorn.log").read_text("utf-8", "replace")[-3000:]
    raise RuntimeError(f"gunicorn did not come up:\n{tail}")


def sign_in(base: str, name: str, landing: str) -> str:
    """Sign ``name`` in through the login form, as a browser does (its CSRF token, then the
    redirect to ``landing``); the ``Cookie`` header the signed-in browser sends from then on."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    with opener.open(base + "/login", timeout=30) as response:
        form = response.read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
    if token is None:
        raise RuntimeError("the login form has no CSRF token")
    fields = urllib.parse.urlencode({"login": name, "password": PASSWORD,
                                     "csrf_token": token.group(1)}).encode()
    next_page = urllib.parse.quote(landing, safe="/")
    with opener.open(f"{base}/login?next={next_page}", data=fields, timeout=30) as response:
        if urllib.parse.urlsplit(response.url).path != landing:
            raise RuntimeError(f"signing {name} in ended at {response.url}, not {landing}")
        response.read()  # the landing page takes any message waiting for the racer
    return "; ".join(f"{c.name}={c.value}" for c in jar)


@dataclass(frozen=True)
class PageLoad:
    """One page of the benchmark: what wrk loads and what every answer must contain."""

    paths: tuple[str, ...]  #: one is loaded as it is; of several, each request picks one
    markers: tuple[str, ...]  #: every 2xx body must contain each (else it counts as an error)
    signed_in: bool = False  #: requests carry the signed-in racer's session cookie

    def to_dict(self) -> dict[str, Any]:
        """How the page is described in the output."""
        paths = self.paths[0] if len(self.paths) == 1 else \
            f"{self.paths[0]} … {self.paths[-1]} ({len(self.paths)} at random)"
        return {"url": paths, "signed_in": self.signed_in}


def page_loads(ids: dict[str, Any], scale: Scale) -> dict[str, PageLoad]:
    """The pages loaded, by name (``benchmarks/README.md`` describes each)."""
    race, h2h = f"/races/{ids['race_id']}", f"/races/{ids['h2h_race_id']}"
    me = ids["signed_in"]
    signed_in = (f'class="nav-user">{me}</a>', 'action="/logout"', 'name="csrf_token"')
    board = ("<h2>Leaderboard</h2>", '<table class="leaderboard">')
    board_pages = tuple(f"{race}?page={n}" for n in
                        range(1, -(-scale.entries // LEADERBOARD_PER_PAGE) + 1))
    heat_list = ('<h2 id="heats-title">Heats</h2>', '<ol class="heats">')
    raced = scale.heats - scale.h2h_racers // 2  # the last round is queued
    heat_pages = tuple(f"{h2h}?page={n}" for n in range(2, -(-raced // HEATS_PER_PAGE) + 1))
    racers = [racer_name(k) for k in range(scale.h2h_racers)]
    mine = (f"{h2h}?racer={me}",)  # and its second page, when the racer has one
    if 2 * scale.heats // scale.h2h_racers > HEATS_PER_PAGE:
        mine += (f"{h2h}?racer={me}&page=2",)
    return {
        "race_page": PageLoad((race,), board),
        "race_page_signed_in": PageLoad((race,), (*board, *signed_in), signed_in=True),
        "race_pages_random": PageLoad(board_pages, board),
        "race_pages_random_signed_in": PageLoad(board_pages, (*board, *signed_in), True),
        "league_page": PageLoad((f"/leagues/{ids['league_slug']}",),
                                ('<div class="standings-grid">',)),
        "h2h_race_page": PageLoad((h2h,), ('<table class="ratings">', *heat_list)),
        "h2h_race_page_signed_in": PageLoad((h2h,), ('<table class="ratings">', *heat_list,
                                                     *signed_in), True),
        "h2h_heats_racer": PageLoad(mine, (*heat_list, f"with {me}, newest first")),
        "h2h_heats_racer_random": PageLoad(tuple(f"{h2h}?racer={r}" for r in racers),
                                           heat_list),
        "h2h_heats_pages_random": PageLoad(heat_pages, heat_list),
    }


def first_requests(url: str, page: PageLoad, cookie: str) -> dict[str, Any]:
    """Time the first requests of a page (each worker computes and renders it once); check
    that the answer is the page expected."""
    times = []
    for _ in range(WORKERS * 2):
        status, body, seconds = fetch(url, cookie=cookie)
        times.append(round(seconds * 1000.0, 1))
        missing = [m for m in page.markers if m.encode() not in body]
        if status != 200 or missing:
            raise RuntimeError(f"{url} answered {status}, without {missing}")
    return {"status": status, "bytes": len(body), "first_request_ms": times[0],
            "first_requests_ms": times}


def run_wrk(url: str, seconds: float, script: Path, cookie: str = "") -> dict[str, Any]:
    """Load ``url`` with wrk for ``seconds``; its numbers as a dict (milliseconds)."""
    header = ["-H", f"User-Agent: {USER_AGENT}", *(["-H", f"Cookie: {cookie}"] if cookie else [])]
    proc = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s",
         "--timeout", "10s", *header, "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    raw = json.loads(line[len("WRK_JSON "):])
    socket_errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors",
                                         "timeouts"))
    answered = raw["requests"] > 0  # else no latency was measured: none is reported
    ms = {f"{q}_ms": raw[f"{q}_us"] / 1000.0 if answered else None
          for q in ("p50", "p90", "p95", "p99", "max")}
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        **ms, "mean_ms": round(raw["mean_us"] / 1000.0, 2) if answered else None,
        "bytes_per_response": round(raw["bytes"] / max(1, raw["requests"])),
        "socket_errors": socket_errors, "non_2xx": raw["non2xx"],
        "wrong_page": raw["unmarked"], "no_answer": int(not answered),
        "errors": socket_errors + raw["non2xx"] + raw["unmarked"] + int(not answered),
    }


# --------------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "sqlalchemy": sa.__version__,
            "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()]}


@dataclass(frozen=True)
class Site:
    """A running gunicorn: where it answers, and the signed-in racer's cookie there."""

    label: str
    proc: subprocess.Popen[bytes]
    base: str
    cookie: str
    ports: tuple[int, ...]  #: every port it listens on (one per wrk thread)


def start_site(label: str, workdir: Path, url: str, pages: dict[str, PageLoad],
               signed_in: str, page_cache: bool = True, code: Path = ROOT) -> Site:
    """Start gunicorn with ``code``'s site, wait for it, sign the racer in if a page needs it."""
    ports = free_ports(WRK_THREADS)
    base = f"http://127.0.0.1:{ports[0]}"
    proc = start_server(workdir, url, ports[0], page_cache, code, ports[1:])
    try:
        wait_until_up(proc, base, workdir)
        signed = [p.paths[0] for p in pages.values() if p.signed_in]
        return Site(label, proc, base, sign_in(base, signed_in, signed[0]) if signed else "",
                    ports)
    except BaseException:
        stop_server(proc)
        raise


def load_page(site: Site, name: str, page: PageLoad, scale: Scale,
              workdir: Path) -> dict[str, Any]:
    """First requests, a warm-up and a timed wrk run of one page of one site."""
    cookie = site.cookie if page.signed_in else ""
    script = workdir / f"{name}.lua"
    script.write_text(wrk_script(page.paths, page.markers, site.ports), "utf-8")
    url = site.base + page.paths[0]
    first = first_requests(url, page, cookie)
    log(f"{site.label} {name}: first request {first['first_request_ms']} ms; warming up")
    run_wrk(url, scale.warmup_s, script, cookie)
    log(f"{site.label} {name}: loading for {scale.duration_s:g} s")
    return {**page.to_dict(), **first, **run_wrk(url, scale.duration_s, script, cookie)}


def load_sites(sites: list[Site], pages: dict[str, PageLoad], scale: Scale,
               workdir: Path) -> dict[str, dict[str, Any]]:
    """Each page loaded from each site, page by page: the sites take turns going first, so
    that what else runs on the machine weighs on both alike."""
    results: dict[str, dict[str, Any]] = {site.label: {} for site in sites}
    for n, (name, page) in enumerate(pages.items()):
        for site in sites if n % 2 == 0 else sites[::-1]:
            results[site.label][name] = load_page(site, name, page, scale, workdir)
    return results


def measure(scale: Scale, workdir: Path, uncached_too: bool,
            baseline: Path | None) -> dict[str, Any]:
    """Build the data, serve it, load each page; the benchmark's figures."""
    url = f"sqlite:///{workdir / 'web.sqlite3'}"
    start = time.perf_counter()
    ids = build_database(url, scale)
    build_s = time.perf_counter() - start
    log(f"database built in {build_s:.1f} s")
    pages = page_loads(ids, scale)
    me = ids["signed_in"]
    run: dict[str, Any] = {"build_s": round(build_s, 2), "ids": ids}
    sites: list[Site] = []
    try:
        sites.append(start_site("this", workdir, url, pages, me))
        if baseline is not None:  # both run at once, only one of them is loaded at a time
            sites.append(start_site("baseline", workdir, url, pages, me, code=baseline))
        loaded = load_sites(sites, pages, scale, workdir)
    finally:
        for site in sites:
            stop_server(site.proc)
    run["pages"] = loaded["this"]
    run["baseline"] = loaded.get("baseline")
    if uncached_too:
        log("again with the page cache for visitors turned off")
        plain = {k: pages[k] for k in ("race_page", "league_page")}
        site = start_site("uncached", workdir, url, plain, me, page_cache=False)
        try:
            run["without_page_cache"] = load_sites([site], plain, scale, workdir)["uncached"]
        finally:
            stop_server(site.proc)
    return run


def summarize(pages: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets refer to: the slowest race page's p95 (every page under
    ``/races/``; None when one got no answer at all), the league page's, the errors of all
    pages."""
    races = {k: v["p95_ms"] for k, v in pages.items() if k != "league_page"}
    slowest = max(races, key=lambda k: float("inf") if races[k] is None else races[k])
    return {"race_page_p95_ms": races[slowest], "slowest_race_page": slowest,
            "league_page_p95_ms": pages["league_page"]["p95_ms"],
            "errors": sum(p["errors"] for p in pages.values()),
            "p95_ms": {k: v["p95_ms"] for k, v in pages.items()}}


def _ratio(now: float | None, before: float | None) -> float | None:
    return None if now is None or not before else round(now / before, 3)


def compared(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per page: p95 and requests/s of the baseline and of this checkout, and their ratios
    (this checkout's over the baseline's; None where one has no figure)."""
    return {name: {"p95_ms": [before[name]["p95_ms"], now["p95_ms"]],
                   "requests_per_s": [before[name]["requests_per_s"], now["requests_per_s"]],
                   "errors": [before[name]["errors"], now["errors"]],
                   "p95_ratio": _ratio(now["p95_ms"], before[name]["p95_ms"]),
                   "throughput_ratio": _ratio(now["requests_per_s"],
                                              before[name]["requests_per_s"])}
            for name, now in after.items()}


def main() -> int:
    """Run the benchmark and print its JSON; non-zero when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller data and seconds of load: a smoke run")
    parser.add_argument("--no-uncached", action="store_true",
                        help="skip the second run with the page cache turned off")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="first load the same pages from the site of another checkout "
                             "(e.g. `git archive` of an older commit), on the same data")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not GUNICORN.exists():
        print(f"gunicorn is not installed at {GUNICORN}", file=sys.stderr)
        return 2
    if args.baseline is not None and not (args.baseline / "wsgi.py").is_file():
        print(f"{args.baseline} is no checkout of the site (no wsgi.py)", file=sys.stderr)
        return 2
    scale = QUICK if args.quick else FULL
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="paddock-web-bench-") as tmp:
        run = measure(scale, Path(tmp), not (args.quick or args.no_uncached),
                      args.baseline.resolve() if args.baseline else None)
    pages = run["pages"]
    summary = summarize(pages)
    met = {key: summary[key] is not None and summary[key] <= target
           for key, target in TARGETS.items()}
    result = {
        "summary": summary, "targets": TARGETS,
        "targets_met": None if args.quick else met,
        "setup": {"quick": args.quick, "server": f"gunicorn wsgi:app, {WORKERS} workers (sync)",
                  "load": f"wrk, {CONNECTIONS} connections, {WRK_THREADS} threads, loopback",
                  "duration_s_per_page": scale.duration_s, "warmup_s": scale.warmup_s,
                  "race_entries": scale.entries, "standings_racers": scale.standings_racers,
                  "divisions": len(DIVISIONS), "season_races": scale.season_races,
                  "h2h_racers": scale.h2h_racers, "heats": scale.heats,
                  "signed_in": run["ids"]["signed_in"], "database": "SQLite (WAL)",
                  "build_s": run["build_s"]},
        "pages": pages, "without_page_cache": run.get("without_page_cache"),
        "baseline": None if args.baseline is None else {
            "site": str(args.baseline), "summary": summarize(run["baseline"]),
            "pages": run["baseline"], "compared": compared(run["baseline"], pages)},
        "machine": {**machine(), "load_average_at_start": load_at_start},
    }
    print(json.dumps(result, indent=2))
    if summary["errors"]:
        return 1
    return 0 if args.quick or all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
