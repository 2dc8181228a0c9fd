"""Benchmark of the league's evaluation pipeline: prints one JSON object, progress on stderr.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/league_jobs.py            # full run, about 10 minutes on 2 cores
    .venv/bin/python benchmarks/league_jobs.py --quick    # smoke run, about a minute
    .venv/bin/python benchmarks/league_jobs.py --deep-queue-only [--postgres URL]  # claims

A fresh SQLite database and storage in a temporary directory, the ``local`` executor as an
operator runs it (``python -m league.processes.worker --workers 2`` in its own process tree,
idle-waiting for work) and the shipped demo bots, submitted through
``league.rules.submissions.submit_entry``. Every racer uploads a model of its own, as racers
do: one of the four bots' networks under the racer's own name, so another sha256, and a
worker meets it for the first time (a policy process forked or started for it, not a warm
one; the pool keeps four per worker):

* upload accepted → result on the leaderboard, one submission at a time;
* time-trial evaluations per hour with every worker busy;
* a head-to-head round robin (every pair once, one seat-swapped two-heat job per pair);
* the fair claim order over a deep queue (10,000 queued jobs from 1,000 racers, a round of
  heats and a history of finished jobs): milliseconds per claim, without and with an index
  on ``started_at``, on SQLite and, given ``--postgres URL``, on PostgreSQL. Alone, without
  the workers: ``--deep-queue-only``.

Not named ``league.py``: run as a script, its directory comes first on ``sys.path`` and the
file would hide the ``league`` package. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import json
import os
import platform
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from evaluator import version
from evaluator.onnx_io import pack
from evaluator.validate import validate_policy
from league.config import Settings
from league.db import Base, make_engine, session_factory, transaction
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    League,
    PolicyModel,
    Race,
    RaceStatus,
    Rating,
    Result,
    User,
    utcnow,
)
from league.processes.worker import Worker
from league.rules import accounts, leagues, races, submissions
from league.rules.headtohead import (
    ROUND_SEEDS,
    ROUND_STAGE,
    create_heats,
    heat_seed,
    round_robin_pairs,
)
from league.rules.jobs import FINAL, claim_job
from league.rules.leaderboard import race_leaderboard
from league.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
BOTS = sorted((ROOT / "evaluator" / "bots").glob("*.onnx"))
TRACK = "royal-park"  # 61 m, as in evaluate.py
LAPS, TRIALS = 3, 3  # the default race: 3 laps, 3 trials
WORKERS = 2  # the default PADDOCK_WORKERS, one per core here
TARGETS = {"upload_to_leaderboard_p50_s": 0.5, "time_trial_evaluations_per_hour": 30_000,
           "round_robin_64_wall_s": 600.0}
# How often the benchmark looks: every read is a SQLite transaction that queues for the write
# lock with the workers', so the queue of a long run is looked at less often.
LEADERBOARD_POLL_S = 0.05
QUEUE_POLL_S = 0.5
STARTUP_TIMEOUT_S = 120.0
PASSWORD = "benchmark password"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1), linearly interpolated between order statistics."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _wait(what: str, done: Callable[[], bool], timeout_s: float,
          every_s: float = QUEUE_POLL_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout_s:.0f} s")
        time.sleep(every_s)


@dataclass
class Bench:
    """The benchmark's database, storage, racers and the worker pool's process."""

    factory: sessionmaker[Session]
    storage: Storage
    bots: list[bytes]
    organizer_id: int
    pool: subprocess.Popen[bytes]
    racers: int = 0

    def racer(self, session: Session) -> User:
        """A new racer (each submission gets its own leaderboard line)."""
        self.racers += 1
        return accounts.create_user(session, f"racer{self.racers}",
                                    f"racer{self.racers}@example.org", PASSWORD)

    def race(self, session: Session, name: str, **settings: Any) -> Race:
        """An open race on the benchmark track."""
        league = session.scalars(sa.select(League)).one()
        organizer = session.get_one(User, self.organizer_id)
        now = utcnow()
        race = races.create_race(session, league, organizer, name,
                                   now - dt.timedelta(days=1), now + dt.timedelta(days=7),
                                   track=TRACK, laps=LAPS, **settings)
        race.status = RaceStatus.OPEN
        return race

    def submit(self, session: Session, race: Race, k: int) -> Entry:
        """Enter the ``k``-th bot's network (cycling through the four) for a new racer, as a
        model of the racer's own (:func:`own_model`)."""
        racer = self.racer(session)
        return submissions.submit_entry(session, self.storage, race, racer,
                                        own_model(self.bots[k % len(self.bots)], self.racers))

    def pending(self, job_ids: list[int]) -> int:
        """How many of ``job_ids`` are not final yet."""
        with self.factory() as session:
            return session.scalar(sa.select(sa.func.count(EvaluationJob.id)).where(
                EvaluationJob.id.in_(job_ids),
                EvaluationJob.status.not_in([s.value for s in FINAL]))) or 0

    def check_pool(self) -> None:
        if self.pool.poll() is not None:
            raise RuntimeError(f"the worker pool exited with status {self.pool.returncode}")


def own_model(bot: bytes, n: int) -> bytes:
    """The bot's network under a name of racer ``n``'s: the same driving, another model
    (sha256), as each racer's upload is."""
    meta = validate_policy(bot).metadata
    return pack(bot, dataclasses.replace(meta, name=f"{meta.name or 'bot'} {n}"))


def _job_phases(session: Session, job_ids: list[int]) -> dict[str, list[float]]:
    """Seconds each job waited to be claimed, and from its claim to its result, in the order
    the jobs finished."""
    rows = session.execute(sa.select(EvaluationJob.queued_at, EvaluationJob.started_at,
                                     EvaluationJob.finished_at).where(
        EvaluationJob.id.in_(job_ids), EvaluationJob.status == JobStatus.SUCCEEDED)
        .order_by(EvaluationJob.finished_at))
    waits, runs = [], []
    for queued, started, finished in rows:
        waits.append((started - queued).total_seconds())
        runs.append((finished - started).total_seconds())
    return {"queued_to_claimed": waits, "claimed_to_result": runs}


def _by_quarter(values: list[float]) -> list[float]:
    """The median of each quarter of ``values`` (does a long run slow down as it goes?)."""
    n = len(values)
    return [statistics.median(values[k * n // 4:(k + 1) * n // 4] or [0.0]) for k in range(4)]


def _statuses(session: Session, job_ids: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in session.scalars(sa.select(EvaluationJob.status).where(
            EvaluationJob.id.in_(job_ids))):
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def bench_latency(lg: Bench, submissions_n: int) -> dict[str, Any]:
    """Upload accepted (committed) → the entry's time on the leaderboard, one at a time."""
    with transaction(lg.factory) as session:
        race_id = lg.race(session, "latency", trials=TRIALS).id
    latencies, submit_s, seen_after_result, job_ids = [], [], [], []
    for k in range(submissions_n):
        lg.check_pool()
        t0 = time.perf_counter()
        with transaction(lg.factory) as session:
            entry = lg.submit(session, session.get_one(Race, race_id), k)
        accepted = time.perf_counter()
        submit_s.append(accepted - t0)

        def shown(entry_id: int = entry.id) -> bool:
            with lg.factory() as session:
                rows = race_leaderboard(session, session.get_one(Race, race_id))
            return any(r.entry_id == entry_id and r.time_s is not None for r in rows)

        _wait(f"entry {entry.id} on the leaderboard", shown, STARTUP_TIMEOUT_S,
              LEADERBOARD_POLL_S)
        latencies.append(time.perf_counter() - accepted)
        with lg.factory() as session:
            job = session.scalars(sa.select(EvaluationJob).where(
                EvaluationJob.entry_id == entry.id)).one()
            job_ids.append(job.id)
            seen_after_result.append((utcnow() - (job.finished_at or utcnow())).total_seconds())
        _log(f"  submission {k + 1}/{submissions_n}: {latencies[-1]:.3f} s")
        time.sleep(0.2)  # the workers go back to idle-waiting
    with lg.factory() as session:
        phases = _job_phases(session, job_ids)
    return {
        "submissions": submissions_n,
        "p50_s": _percentile(latencies, 0.5), "p90_s": _percentile(latencies, 0.9),
        "min_s": min(latencies), "max_s": max(latencies),
        "submit_s_median": statistics.median(submit_s),
        "phases_median_s": {
            "queued_to_claimed": statistics.median(phases["queued_to_claimed"]),
            "claimed_to_result": statistics.median(phases["claimed_to_result"]),
            "result_to_seen_on_leaderboard": statistics.median(seen_after_result),
        },
    }


def bench_throughput(lg: Bench, entries_n: int) -> dict[str, Any]:
    """Time-trial evaluations per hour: ``entries_n`` queued at once, every worker busy."""
    with transaction(lg.factory) as session:
        race = lg.race(session, "throughput", trials=TRIALS)
        job_ids = [lg.submit(session, race, k).jobs[0].id for k in range(entries_n)]
    t0 = time.perf_counter()
    _wait("time-trial evaluations", lambda: lg.check_pool() or lg.pending(job_ids) == 0,
          entries_n * 60.0)
    wall = time.perf_counter() - t0
    with lg.factory() as session:
        phases = _job_phases(session, job_ids)
        statuses = _statuses(session, job_ids)
        results = session.scalar(sa.select(sa.func.count(Result.id)).where(
            Result.job_id.in_(job_ids))) or 0
    return {
        "evaluations": entries_n, "wall_s": wall,
        "evaluations_per_hour": entries_n / wall * 3600.0,
        "job_s_median": statistics.median(phases["claimed_to_result"]),
        "job_s_median_by_quarter": _by_quarter(phases["claimed_to_result"]),
        "job_statuses": statuses, "results": results,
    }


def queue_round_robin(lg: Bench, racers: int) -> tuple[int, list[int]]:
    """A head-to-head race of ``racers`` entries and one queued heat job per pair (seats
    swapped inside the job); returns the race id and the job ids."""
    with transaction(lg.factory) as session:
        race = lg.race(session, f"round robin of {racers}", format="head-to-head", trials=1,
                       heats_per_round=1)
        entries = [lg.submit(session, race, k) for k in range(racers)]
        per_round = racers // 2  # round_robin_pairs yields rounds of disjoint pairs
        heats = [Heat(race_id=race.id, round_no=i // per_round + 1, stage=ROUND_STAGE,
                      seed=heat_seed(race.seed, ROUND_SEEDS, i // per_round + 1, i),
                      entry_ids=list(pair))
                 for i, pair in enumerate(round_robin_pairs([e.id for e in entries]))]
        session.add_all(heats)
        session.flush()
        jobs = [EvaluationJob(kind=JobKind.HEAT, heat_id=h.id, status=JobStatus.QUEUED)
                for h in heats]
        session.add_all(jobs)
        session.flush()
        return race.id, [j.id for j in jobs]


def bench_round_robin(lg: Bench, racers: int) -> dict[str, Any]:
    """A head-to-head round robin: every pair once, one seat-swapped two-heat job per pair."""
    race_id, job_ids = queue_round_robin(lg, racers)
    _log(f"  {len(job_ids)} heat jobs queued")
    t0 = time.perf_counter()
    last = [len(job_ids), t0]

    def done() -> bool:
        lg.check_pool()
        left = lg.pending(job_ids)
        if time.perf_counter() - last[1] >= 30.0:
            _log(f"  {len(job_ids) - left}/{len(job_ids)} jobs done after "
                 f"{time.perf_counter() - t0:.0f} s")
            last[1] = time.perf_counter()
        return left == 0

    _wait("round-robin heats", done, len(job_ids) * 30.0)
    wall = time.perf_counter() - t0
    with lg.factory() as session:
        phases = _job_phases(session, job_ids)
        statuses = _statuses(session, job_ids)
        rated = list(session.scalars(sa.select(Rating.heats).where(Rating.race_id == race_id)))
        logs = "\n".join(session.scalars(sa.select(EvaluationJob.log)
                                         .where(EvaluationJob.id.in_(job_ids))))
    warm = [int(n) for n in re.findall(r"(\d+) of \d+ policy processes warm", logs)]
    return {
        "racers": racers, "pairs": len(job_ids), "heats_raced": 2 * len(job_ids),
        "track": TRACK, "laps": LAPS, "wall_s": wall,
        "jobs_per_s": len(job_ids) / wall,
        "job_s_median": statistics.median(phases["claimed_to_result"]),
        "job_s_median_by_quarter": _by_quarter(phases["claimed_to_result"]),
        "job_statuses": statuses,
        "rated_heats_per_entry": {"min": min(rated, default=0), "max": max(rated, default=0)},
        # the workers' warm policy processes (evaluator.policy_pool): reused of those used
        "policy_processes_warm": sum(warm), "policy_processes": 2 * len(job_ids),
    }


# ------------------------------------------------------------------ the fair queue, deep
DEEP_QUEUE = {"queued": 10_000, "racers": 1_000, "heats": 200, "history_recent": 5_000,
              "history_old": 50_000, "claims": 200}
DEEP_QUEUE_QUICK = {"queued": 2_000, "racers": 200, "heats": 50, "history_recent": 1_000,
                    "history_old": 5_000, "claims": 50}
#: The index a migration could add for the fair order's look back (not in the schema): the
#: case is measured without it, then again with it created in the benchmark's database.
STARTED_AT_INDEX = "ix_bench_evaluation_jobs_started_at"


def fill_deep_queue(factory: sessionmaker[Session], sizes: dict[str, int]) -> None:
    """A deep queue written in bulk: ``queued`` time-trial jobs from ``racers`` racers (one
    racer holds a tenth of them, the rest share the others), a head-to-head round of
    ``heats`` queued heats, and a history of finished jobs: ``history_recent`` claimed within
    the fair order's window, ``history_old`` claimed days ago."""
    now = utcnow()
    with transaction(factory) as session:
        organizer = accounts.create_user(session, "deep-organizer", "deep@example.org",
                                         PASSWORD, "organizer")
        league = leagues.create_league(session, organizer, "deep", "Deep queue")
        opens, closes = now - dt.timedelta(days=30), now + dt.timedelta(days=7)
        trial = races.create_race(session, league, organizer, "deep trial", opens, closes,
                                  track=TRACK)
        duel = races.create_race(session, league, organizer, "deep duel", opens, closes,
                                 track=TRACK, format="head-to-head", trials=1)
        n = sizes["racers"]
        users = list(session.scalars(
            sa.insert(User).returning(User.id, sort_by_parameter_order=True),
            [{"name": f"deep{k}", "email": f"deep{k}@example.org", "password_hash": "!",
              "created_at": opens} for k in range(n)]))
        models = list(session.scalars(
            sa.insert(PolicyModel).returning(PolicyModel.id, sort_by_parameter_order=True),
            [{"owner_id": user, "name": "deep", "version": 1, "sha256": "0" * 64,
              "size_bytes": 1, "model_metadata": {}, "validation": {}, "created_at": opens}
             for user in users]))
        # Racer 0 uploads a tenth of everything (the flood); the others share the rest.
        owners = [0 if i % 10 == 0 else 1 + i % (n - 1) for i in range(
            sizes["queued"] + sizes["history_recent"] + sizes["history_old"])]
        entries = list(session.scalars(
            sa.insert(Entry).returning(Entry.id, sort_by_parameter_order=True),
            [{"race_id": trial.id, "racer_id": users[k], "model_id": models[k],
              "submitted_at": opens} for k in owners]))
        queued_from = now - dt.timedelta(minutes=30)
        rows: list[dict[str, Any]] = []
        for i in range(len(owners)):
            if i < sizes["queued"]:
                at = queued_from + dt.timedelta(milliseconds=i)
                rows.append({"status": JobStatus.QUEUED, "queued_at": at})
                continue
            age = (dt.timedelta(minutes=50) if i < sizes["queued"] + sizes["history_recent"]
                   else dt.timedelta(days=3))
            at = now - age + dt.timedelta(milliseconds=i % 100_000)
            rows.append({"status": JobStatus.SUCCEEDED, "queued_at": at, "started_at": at,
                         "finished_at": at, "attempts": 1})
        session.execute(sa.insert(EvaluationJob), [
            {"kind": JobKind.TIME_TRIAL, "entry_id": entry, **row}
            for entry, row in zip(entries, rows, strict=True)])
        heat_entries = [Entry(race_id=duel.id, racer_id=users[k], model_id=models[k])
                        for k in range(min(n, 2 * sizes["heats"]))]
        session.add_all(heat_entries)
        session.flush()
        pairs = [(heat_entries[(2 * h) % len(heat_entries)].id,
                  heat_entries[(2 * h + 1) % len(heat_entries)].id)
                 for h in range(sizes["heats"])]
        create_heats(session, duel, ROUND_STAGE, ROUND_SEEDS, 1, pairs, queued_from)


def time_claims(factory: sessionmaker[Session], claims: int) -> dict[str, Any]:
    """Claim ``claims`` jobs, each in its own transaction as a worker does; milliseconds per
    claim (wall clock, and this thread's CPU: on SQLite that is the query's own cost, which
    other load on the machine does not inflate; on PostgreSQL only the client's share), the
    same for the old oldest-first statement (read only, for comparison), and whose jobs the
    claims took."""
    fair_ms, fair_cpu_ms, oldest_ms, racers, heats = [], [], [], [], 0
    oldest = (sa.select(EvaluationJob.id).where(EvaluationJob.status == JobStatus.QUEUED)
              .order_by(EvaluationJob.queued_at, EvaluationJob.id).limit(1))
    for k in range(claims):
        with transaction(factory) as session:
            t0 = time.perf_counter()
            session.scalar(oldest)
            oldest_ms.append((time.perf_counter() - t0) * 1000.0)
        with transaction(factory) as session:
            t0, cpu0 = time.perf_counter(), time.thread_time()
            job = claim_job(session, f"deep-{k}", 60.0)
            fair_ms.append((time.perf_counter() - t0) * 1000.0)
            fair_cpu_ms.append((time.thread_time() - cpu0) * 1000.0)
            if job is None:
                break
            if job.entry is None:
                heats += 1
            else:
                racers.append(job.entry.racer_id)
    return {"claims": len(fair_ms), "claim_ms_median": statistics.median(fair_ms),
            "claim_ms_p95": _percentile(fair_ms, 0.95),
            "claim_cpu_ms_median": statistics.median(fair_cpu_ms),
            "oldest_first_select_ms_median": statistics.median(oldest_ms),
            "heats_claimed": heats, "distinct_racers_claimed": len(set(racers)),
            "most_claims_of_one_racer": max(
                (racers.count(r) for r in set(racers)), default=0)}


def bench_deep_queue(url: str, sizes: dict[str, int]) -> dict[str, Any]:
    """The fair claim order over a deep queue on a fresh database at ``url``: claim time
    without and with an index on ``started_at`` (the order's look back)."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    factory = session_factory(engine)
    try:
        t0 = time.perf_counter()
        fill_deep_queue(factory, sizes)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")  # the planner's statistics, on both databases
        filled_s = time.perf_counter() - t0
        claims = sizes["claims"] // 2
        out: dict[str, Any] = {"database": engine.dialect.name, "sizes": sizes,
                               "fill_s": filled_s, "load_average_at_start": os.getloadavg(),
                               "without_started_at_index": time_claims(factory, claims)}
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX {STARTED_AT_INDEX} ON evaluation_jobs "
                                 "(started_at)")
            conn.exec_driver_sql("ANALYZE")
        out["with_started_at_index"] = time_claims(factory, claims)
        out["load_average_at_end"] = os.getloadavg()
        return out
    finally:
        engine.dispose()


def deep_queue_runs(tmp: Path, quick: bool, postgres_admin: str | None) -> dict[str, Any]:
    """The deep-queue case on SQLite, and on a throwaway PostgreSQL database when given the
    URL of a server (``--postgres``; the database is created and dropped here)."""
    sizes = DEEP_QUEUE_QUICK if quick else DEEP_QUEUE
    _log(f"deep queue on sqlite: {sizes['queued']} jobs from {sizes['racers']} racers ...")
    out = {"sqlite": bench_deep_queue(f"sqlite:///{tmp / 'deep.sqlite3'}", sizes)}
    if postgres_admin:
        admin = sa.create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
        name = f"paddock_bench_{os.getpid()}_{int(time.time())}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            _log("deep queue on postgresql ...")
            out["postgresql"] = bench_deep_queue(sa.make_url(postgres_admin).set(
                database=name).render_as_string(hide_password=False), sizes)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    return out


# Where a job's time goes: (module file suffix, function) -> key in the JSON.
PROFILED = {
    ("league/processes/worker.py", "run_once"): "run_once_total",
    ("league/rules/jobs.py", "reap_expired"): "reap_expired",
    ("league/rules/jobs.py", "claim_job"): "claim_job",
    ("league/processes/evaluation.py", "_plan"): "read_job_from_db",
    ("evaluator/track_library.py", "load_track"): "load_track",
    ("league/storage.py", "get"): "storage_read_model",
    ("evaluator/validate.py", "validate_policy"): "validate_policy",
    ("evaluator/race.py", "run_race"): "run_race",
    ("evaluator/sandbox.py", "_spawn"): "run_race.spawn_policy_processes",
    ("evaluator/sandbox.py", "wait_ready"): "run_race.wait_policy_loaded",
    ("evaluator/sandbox.py", "reset"): "run_race.reset_warm_policy_processes",
    ("evaluator/race.py", "run"): "run_race.simulate",
    ("evaluator/sandbox.py", "close"): "run_race.stop_policy_processes",
    ("league/processes/evaluation.py", "_replays"): "encode_replays",
    ("league/processes/evaluation.py", "deliver"): "deliver_result",
    ("league/storage.py", "put"): "deliver_result.storage_write_replays",
}


def profile_jobs(settings: Settings, lg: Bench, time_trials: int, racers: int
                 ) -> dict[str, Any]:
    """Run jobs in this process under cProfile (the pool stopped): mean seconds per job of
    each step, and the functions with the most time of their own. The policy processes run
    apart; their inference shows up as waiting in ``run_race.simulate``."""
    with transaction(lg.factory) as session:
        race = lg.race(session, "profile", trials=TRIALS)
        for k in range(time_trials):
            lg.submit(session, race, k)
    out: dict[str, Any] = {}
    worker = Worker(settings, "profiler")
    try:
        out["time_trial"] = _profile(worker, time_trials)
        _race_id, heat_jobs = queue_round_robin(lg, racers)
        out["heat"] = _profile(worker, len(heat_jobs))
    finally:
        worker.close()
    return out


def _profile(worker: Worker, jobs_n: int) -> dict[str, Any]:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    for _ in range(jobs_n):
        prof.runcall(worker.run_once)
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    per_job: dict[str, float] = {}
    own: list[tuple[float, str]] = []
    for (path, _line, func), (_cc, _nc, tottime, cumtime, _callers) in \
            stats.stats.items():
        for (suffix, name), key in PROFILED.items():
            if func == name and path.endswith(suffix):
                per_job[key] = per_job.get(key, 0.0) + cumtime / jobs_n
        own.append((tottime / jobs_n, f"{Path(path).name}:{func}"))
    own.sort(reverse=True)
    return {"jobs": jobs_n, "wall_s_per_job": wall / jobs_n,
            "steps_s_per_job": {k: round(per_job.get(k, 0.0), 4) for k in PROFILED.values()},
            "top_own_time_s_per_job": {name: round(t, 4) for t, name in own[:12]}}


def _start_pool(tmp: Path, url: str, storage: Path) -> subprocess.Popen[bytes]:
    """``python -m league.processes.worker --workers N`` as an operator starts it; log to a file."""
    env = {**os.environ, "DATABASE_URL": url, "PADDOCK_STORAGE_DIR": str(storage),
           "PADDOCK_INSTANCE_DIR": str(tmp), "SECRET_KEY": "benchmark",
           "PADDOCK_WORKERS": str(WORKERS)}
    log = (tmp / "workers.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "league.processes.worker"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def _stop_pool(pool: subprocess.Popen[bytes]) -> None:
    if pool.poll() is None:
        pool.send_signal(signal.SIGTERM)
        try:
            pool.wait(30)
        except subprocess.TimeoutExpired:
            pool.kill()
            pool.wait()


def _setup(tmp: Path) -> tuple[sessionmaker[Session], Storage, int]:
    url = f"sqlite:///{tmp / 'league.sqlite3'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    factory = session_factory(engine)
    with transaction(factory) as session:
        organizer = accounts.create_user(session, "organizer", "organizer@example.org",
                                         PASSWORD, "organizer")
        leagues.create_league(session, organizer, "bench", "Benchmark league")
        organizer_id = organizer.id
    return factory, Storage(tmp / "storage"), organizer_id


def main() -> int:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--deep-queue-only", action="store_true",
                        help="only the deep-queue claim case (no workers), a minute or so")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="a PostgreSQL server (admin URL) to run the deep-queue case on "
                             "too, in a throwaway database")
    args = parser.parse_args()
    if args.deep_queue_only:
        with tempfile.TemporaryDirectory(prefix="paddock-bench-") as tmpdir:
            print(json.dumps({"quick": args.quick, "deep_queue": deep_queue_runs(
                Path(tmpdir), args.quick, args.postgres)}, indent=2))
        return 0
    sizes: dict[str, Any] = {"latency": 5, "throughput": 20, "racers": 8, "profile": (4, 4)} \
        if args.quick else {"latency": 20, "throughput": 200, "racers": 64, "profile": (20, 6)}
    out: dict[str, Any] = {
        "paddock_version": version.PADDOCK_VERSION, "sim_version": version.SIM_VERSION,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "onnxruntime": ort.__version__, "sqlalchemy": sa.__version__,
                    "load_average_1_5_15_min_at_start": os.getloadavg()},
        "quick": args.quick, "database": "sqlite (WAL)", "executor": "local",
        "workers": WORKERS, "track": TRACK, "laps": LAPS, "trials": TRIALS,
        "bots": [b.stem for b in BOTS], "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory(prefix="paddock-bench-") as tmpdir:
        tmp = Path(tmpdir)
        factory, storage, organizer_id = _setup(tmp)
        pool = _start_pool(tmp, f"sqlite:///{tmp / 'league.sqlite3'}", storage.root)
        lg = Bench(factory, storage, [b.read_bytes() for b in BOTS], organizer_id, pool)
        try:
            _log("warming up the workers ...")
            with transaction(factory) as session:
                race = lg.race(session, "warm-up", trials=1)
                warm = [lg.submit(session, race, k).jobs[0].id for k in range(2 * WORKERS)]
            _wait("warm-up", lambda: lg.check_pool() or lg.pending(warm) == 0,
                  STARTUP_TIMEOUT_S)
            time.sleep(1.0)
            _log(f"upload -> leaderboard, {sizes['latency']} submissions ...")
            out["upload_to_leaderboard"] = bench_latency(lg, sizes["latency"])
            _log(f"time-trial throughput, {sizes['throughput']} evaluations ...")
            out["time_trial_throughput"] = bench_throughput(lg, sizes["throughput"])
            _log(f"round robin of {sizes['racers']} racers ...")
            out["round_robin"] = bench_round_robin(lg, sizes["racers"])
        except BaseException:
            _stop_pool(pool)
            _log("worker log (tail):\n" + "\n".join(
                (tmp / "workers.log").read_text("utf-8", "replace").splitlines()[-20:]))
            raise
        _stop_pool(pool)
        _log("profiling jobs in this process ...")
        settings = Settings(database_url=f"sqlite:///{tmp / 'league.sqlite3'}",
                            storage_dir=storage.root, secret_key="benchmark")
        out["profile"] = profile_jobs(settings, lg, *sizes["profile"])
        out["deep_queue"] = deep_queue_runs(tmp, args.quick, args.postgres)
    out["machine"]["load_average_1_5_15_min_at_end"] = os.getloadavg()
    rr_wall = out["round_robin"]["wall_s"]
    summary = {
        "upload_to_leaderboard_p50_s": out["upload_to_leaderboard"]["p50_s"],
        "upload_to_leaderboard_p90_s": out["upload_to_leaderboard"]["p90_s"],
        "time_trial_evaluations_per_hour":
            out["time_trial_throughput"]["evaluations_per_hour"],
        f"round_robin_{sizes['racers']}_wall_s": rr_wall,
    }
    out["summary"] = summary
    out["targets_met"] = {
        "upload_to_leaderboard_p50_s":
            summary["upload_to_leaderboard_p50_s"] <= TARGETS["upload_to_leaderboard_p50_s"],
        "time_trial_evaluations_per_hour": summary["time_trial_evaluations_per_hour"]
        >= TARGETS["time_trial_evaluations_per_hour"],
        "round_robin_64_wall_s": None if args.quick else
        rr_wall <= TARGETS["round_robin_64_wall_s"],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
