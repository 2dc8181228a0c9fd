"""Benchmark of the website under load: prints one JSON object, progress on stderr.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/web.py            # full run, about 2 minutes
    .venv/bin/python benchmarks/web.py --quick    # smoke run, about 20 seconds

A fresh SQLite database in a temporary directory holds a league of three divisions with a
season of closed races (race points for a few hundred racers) and one open time trial of
10,000 entries, each with a succeeded evaluation and its result. The site runs the way an
operator runs it, ``gunicorn wsgi:app`` with 2 workers on a free loopback port, and ``wrk``
(50 connections) loads one page at a time for a fixed duration after a warm-up: the race page
(page 1 of its leaderboard) and the league page (the season's standings per division). A
small Lua script hands wrk's latency percentiles and error counts back as JSON.

The first request of each page (nothing cached in that worker yet) is timed on its own and
reported as ``first_request_ms``. The full run then repeats the load with the page cache for
visitors turned off (``without_page_cache``; see ``benchmarks/README.md``). The script exits
non-zero when a target is missed, when a page answers anything but 200, or when ``wrk`` is
not installed.

Named ``web.py`` as the issue asks; it imports nothing of the ``web`` package itself (run as
a script, its directory comes first on ``sys.path`` and this file would hide it): the site
runs in gunicorn's own processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.db import Base, make_engine
from league.models import (
    Division,
    Entry,
    EvaluationJob,
    JobKind,
    JobStatus,
    League,
    MemberRole,
    Membership,
    PolicyModel,
    Race,
    RacePoints,
    RaceStatus,
    Result,
    Role,
    Season,
    SeasonStatus,
    User,
    Visibility,
)

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
WORKERS = 2  # gunicorn workers, one per core of the development machine
CONNECTIONS = 50  # concurrent clients
WRK_THREADS = 2
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
    warmup_s: float
    duration_s: float


FULL = Scale(entries=10_000, standings_racers=300, season_races=20, warmup_s=5.0,
             duration_s=20.0)
QUICK = Scale(entries=1_000, standings_racers=60, season_races=5, warmup_s=1.0, duration_s=3.0)

# wrk hands its numbers back through this script (latencies in microseconds). Each wrk thread
# counts the answers that are not a 2xx (wrk's own count only sees statuses >= 400); done()
# adds up the threads' counts.
WRK_SCRIPT = """
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
non2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
done = function(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, ' ..
    '"p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"http_errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, e.status, bad))
end
"""


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
            {"id": first_user + k, "name": f"racer{k:05d}",
             "email": f"racer{k:05d}@example.org", "password_hash": "!",
             "role": Role.RACER, "created_at": NOW} for k in range(scale.entries)])
        members = list(range(first_user, first_user + scale.standings_racers))
        division_of = {u: divisions[k * len(divisions) // len(members)].id
                       for k, u in enumerate(members)}
        _insert(session, Membership, [
            {"league_id": league.id, "user_id": u, "role": MemberRole.MEMBER,
             "division_id": division_of[u], "joined_at": NOW} for u in members])
        race = _big_race(session, rng, league, season, first_user, scale.entries)
        _season_races(session, rng, league, season, members, division_of, scale.season_races)
        ids = {"league_slug": league.slug, "race_id": race.id, "season_id": season.id}
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


# --------------------------------------------------------------------------- server and load
def free_port() -> int:
    """A TCP port nobody listens on now (on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(workdir: Path, url: str, port: int,
                 page_cache: bool = True) -> subprocess.Popen[bytes]:
    """gunicorn serving the site on the benchmark's database, in its own process group.

    The default is ``wsgi:app``, exactly what an operator runs; without ``page_cache`` a small
    WSGI module in the temporary directory creates the app with ``PUBLIC_PAGE_CACHE_S=0``.
    """
    env = {**os.environ, "DATABASE_URL": url, "PADDOCK_STORAGE_DIR": str(workdir / "storage"),
           "PADDOCK_INSTANCE_DIR": str(workdir / "instance"), "SECRET_KEY": "benchmark"}
    env.pop("REDIS_URL", None)
    target = ["wsgi:app"]
    if not page_cache:
        (workdir / "uncached_wsgi.py").write_text(UNCACHED_WSGI, "utf-8")
        target = ["--pythonpath", str(workdir), "uncached_wsgi:app"]
    log_file = (workdir / "gunicorn.log").open("ab")
    return subprocess.Popen(
        [str(GUNICORN), "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
         "--backlog", "2048", "--log-level", "warning", *target],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn and its workers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def fetch(url: str, timeout: float = 30.0) -> tuple[int, int, float]:
    """GET ``url``: status, body length and seconds taken."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            return response.status, len(body), time.perf_counter() - start
    except urllib.error.HTTPError as err:
        return err.code, 0, time.perf_counter() - start


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


def first_requests(url: str) -> dict[str, Any]:
    """Time the first requests of a page: each worker computes and renders it once."""
    times = []
    status = 0
    size = 0
    for _ in range(WORKERS * 2):
        status, size, seconds = fetch(url)
        times.append(round(seconds * 1000.0, 1))
    return {"status": status, "bytes": size, "first_request_ms": times[0],
            "first_requests_ms": times}


def run_wrk(url: str, seconds: float, script: Path) -> dict[str, Any]:
    """Load ``url`` with wrk for ``seconds``; its numbers as a dict (milliseconds)."""
    proc = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s",
         "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    raw = json.loads(line[len("WRK_JSON "):])
    socket_errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors",
                                         "timeouts"))
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000.0, "p90_ms": raw["p90_us"] / 1000.0,
        "p95_ms": raw["p95_us"] / 1000.0, "p99_ms": raw["p99_us"] / 1000.0,
        "max_ms": raw["max_us"] / 1000.0, "mean_ms": round(raw["mean_us"] / 1000.0, 2),
        "bytes_per_response": round(raw["bytes"] / max(1, raw["requests"])),
        "socket_errors": socket_errors, "non_2xx": raw["non2xx"],
        "errors": socket_errors + raw["non2xx"],
    }


# --------------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "sqlalchemy": sa.__version__,
            "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()]}


def load_pages(pages: dict[str, str], base: str, scale: Scale,
               script: Path) -> dict[str, Any]:
    """First requests, a warm-up and a timed wrk run for each page."""
    results: dict[str, Any] = {}
    for name, page in pages.items():
        first = first_requests(base + page)
        if first["status"] != 200:
            raise RuntimeError(f"{page} answered {first['status']}")
        log(f"{name}: first request {first['first_request_ms']} ms; warming up")
        run_wrk(base + page, scale.warmup_s, script)
        log(f"{name}: loading for {scale.duration_s:g} s")
        results[name] = {"url": page, **first, **run_wrk(base + page, scale.duration_s, script)}
    return results


def serve_and_load(workdir: Path, url: str, pages: dict[str, str], scale: Scale,
                   script: Path, page_cache: bool) -> dict[str, Any]:
    """Start gunicorn, load the pages, stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(workdir, url, port, page_cache)
    try:
        wait_until_up(proc, base, workdir)
        return load_pages(pages, base, scale, script)
    finally:
        stop_server(proc)


def measure(scale: Scale, workdir: Path, uncached_too: bool) -> dict[str, Any]:
    """Build the data, serve it, load each page; the benchmark's figures."""
    url = f"sqlite:///{workdir / 'web.sqlite3'}"
    start = time.perf_counter()
    ids = build_database(url, scale)
    build_s = time.perf_counter() - start
    log(f"database built in {build_s:.1f} s")
    script = workdir / "report.lua"
    script.write_text(WRK_SCRIPT, "utf-8")
    pages = {"race_page": f"/races/{ids['race_id']}",
             "league_page": f"/leagues/{ids['league_slug']}"}
    run: dict[str, Any] = {"build_s": round(build_s, 2), "ids": ids,
                           "pages": serve_and_load(workdir, url, pages, scale, script, True)}
    if uncached_too:
        log("again with the page cache for visitors turned off")
        run["without_page_cache"] = serve_and_load(workdir, url, pages, scale, script, False)
    return run


def main() -> int:
    """Run the benchmark and print its JSON; non-zero when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller data and seconds of load: a smoke run")
    parser.add_argument("--no-uncached", action="store_true",
                        help="skip the second run with the page cache turned off")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not GUNICORN.exists():
        print(f"gunicorn is not installed at {GUNICORN}", file=sys.stderr)
        return 2
    scale = QUICK if args.quick else FULL
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="paddock-web-bench-") as tmp:
        run = measure(scale, Path(tmp), uncached_too=not (args.quick or args.no_uncached))
    pages = run["pages"]
    summary = {"race_page_p95_ms": pages["race_page"]["p95_ms"],
               "league_page_p95_ms": pages["league_page"]["p95_ms"],
               "errors": sum(p["errors"] for p in pages.values())}
    met = {key: summary[key] <= target for key, target in TARGETS.items()}
    result = {
        "summary": summary, "targets": TARGETS,
        "targets_met": None if args.quick else met,
        "setup": {"quick": args.quick, "server": f"gunicorn wsgi:app, {WORKERS} workers (sync)",
                  "load": f"wrk, {CONNECTIONS} connections, {WRK_THREADS} threads, loopback",
                  "duration_s_per_page": scale.duration_s, "warmup_s": scale.warmup_s,
                  "race_entries": scale.entries, "standings_racers": scale.standings_racers,
                  "divisions": len(DIVISIONS), "season_races": scale.season_races,
                  "database": "SQLite (WAL)", "build_s": run["build_s"]},
        "pages": pages, "without_page_cache": run.get("without_page_cache"),
        "machine": {**machine(), "load_average_at_start": load_at_start},
    }
    print(json.dumps(result, indent=2))
    if summary["errors"]:
        return 1
    return 0 if args.quick or all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
