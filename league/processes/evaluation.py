"""Running one claimed job: load what it races, check it, race it, and deliver the outcome.

:func:`evaluate_job` reads the job's race and models in one short transaction, then works
without the database: it checks that the track still has the geometry the race was created
on, reads each model from storage and validates it again, and runs the race exactly as
``paddock evaluate`` does (with the worker's warm policy processes, when it passes its
:class:`~evaluator.policy_pool.PolicyPool`: the same result, see :mod:`evaluator.policy_pool`).
It returns an :class:`Outcome`; :func:`deliver` writes that back in a transaction of its
caller, :func:`league.processes.runner.run_claimed_job` (the one fault boundary of the local
workers and the Ray tasks).

What counts as a result. The evaluator's statuses ``finished``, ``dnf`` and ``policy_error``
are all results: the job succeeds and the result JSON is stored. A policy that crashed,
overran a deadline or returned garbage made its car stop with a reason, which is a
legitimate race outcome shown to the racer, the same one ``paddock evaluate --json`` prints
at home, and running it again would only repeat it. A job fails only when no result could be
produced: the stored model no longer validates (``validation``), a time trial's policy used
up its inference-time budget (``time_budget``, the figures in the reason, as ``paddock
evaluate`` prints them; a car past it in a heat is retired from the heat instead), or the
track, storage, sandbox or head-to-head support is missing or broken (``infrastructure``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from evaluator import replay
from evaluator.errors import PaddockError, PolicyRejected, TimeBudgetExceeded
from evaluator.multi_track import MultiTrackResult, run_tracks
from evaluator.policy_pool import PolicyPool
from evaluator.race import RaceResult
from evaluator.race_settings import Format, RaceConfig
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy, validate_policy
from league.config import Settings
from league.db import transaction
from league.errors import StorageError
from league.models import EvaluationJob, FailureKind, JobKind, Race
from league.rules.jobs import complete_job, fail_job, get_job
from league.rules.races import race_config
from league.storage import Storage

log = logging.getLogger(__name__)

HeatRecorder = Callable[..., None]  # league.rules.headtohead.record_heat(session, heat, result)


class EvaluationAborted(Exception):
    """Raised inside a race when its runner asked it to stop (the executor is stopping, or
    the job is final elsewhere)."""


@dataclass
class Outcome:
    """What evaluating one job produced: a result to record, or a failure and its reason."""

    job_id: int
    kind: JobKind = JobKind.TIME_TRIAL
    result: dict[str, Any] | None = None  #: the evaluator's JSON, when the race ran
    replays: list[tuple[int, bytes]] = field(default_factory=list)  #: (trial, replay bytes)
    failure: FailureKind | None = None  #: why no result could be produced
    reason: str = ""  #: the failure, in one line
    note: str = ""  #: a line for the job's log (duration, sandbox layers)

    @property
    def failed(self) -> bool:
        """Whether the job could not produce a result."""
        return self.failure is not None


class _Refused(Exception):
    """A reason this job cannot produce a result (turned into a failed :class:`Outcome`)."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class _Car:
    label: str  #: how the job log names it: "entry 7"
    sha256: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class _Plan:
    """Everything a job races, copied out of the database."""

    kind: JobKind
    race_id: int
    config: RaceConfig
    track_digest: str
    cars: list[_Car]
    extra_digests: tuple[str, ...] = ()  #: the digests of ``config.extra_tracks``, in order


def evaluate_job(factory: sessionmaker[Session], storage: Storage, job_id: int,
                 settings: Settings, *,
                 should_stop: Callable[[], bool] | None = None,
                 pool: PolicyPool | None = None) -> Outcome:
    """Race a claimed job and return its outcome (nothing is written to the database).

    ``should_stop`` is polled on every simulation step; when it says so the race is cut
    short with :class:`EvaluationAborted`. ``pool``: the worker's warm policy processes
    (:mod:`evaluator.policy_pool`), which the race takes its processes from and gives back.
    """
    kind = JobKind.TIME_TRIAL
    try:
        plan = _plan(factory, job_id)
        kind = plan.kind
        if kind == JobKind.HEAT:
            _heat_recorder()
        tracks = _tracks(plan)
        policies = [_policy(storage, car) for car in plan.cars]
        started = time.monotonic()
        race = _run(plan.config, policies, tracks, settings, should_stop, pool)
        replays = _replays(race, job_id)
    except _Refused as err:
        return Outcome(job_id, kind, failure=err.kind, reason=err.reason)
    missing = race.sandbox.get("missing") or []
    inference = ", ".join(f"{s:.1f}" for s in race.sandbox.get("inference_s") or [])
    note = (f"raced in {time.monotonic() - started:.1f} s (inference {inference} s of "
            f"{race.sandbox.get('inference_budget_s')} s each; onnxruntime "
            f"{race.sandbox.get('onnxruntime')}{_warm_note(race.sandbox, pool)}"
            f"{'; sandbox layers missing: ' + ', '.join(missing) if missing else ''})")
    return Outcome(job_id, kind, result=race.to_dict(), replays=replays, note=note)


def deliver(session: Session, outcome: Outcome, worker_id: str, storage: Storage) -> bool:
    """Write an outcome back; False when it changed nothing (a second or late delivery).

    A heat's result also records the heat's finishing order and ratings, in the same
    transaction and only on the first delivery, so a heat is never rated twice; a knockout
    heat of a live finals event is recorded when its broadcast ends instead
    (:mod:`league.rules.live`).
    """
    if outcome.failure is not None:
        return fail_job(session, outcome.job_id, worker_id, outcome.failure, outcome.reason)
    if outcome.result is None:
        raise ValueError(f"job {outcome.job_id}: an outcome holds a result or a failure")
    record_heat: HeatRecorder | None = None
    if outcome.kind == JobKind.HEAT:
        try:
            record_heat = _heat_recorder()
        except _Refused as err:
            return fail_job(session, outcome.job_id, worker_id, err.kind, err.reason)
    first = complete_job(session, outcome.job_id, worker_id, outcome.result, outcome.replays,
                         storage, note=outcome.note)
    if first and record_heat is not None:
        heat = get_job(session, outcome.job_id).heat
        if heat is None:
            raise ValueError(f"heat job {outcome.job_id} has lost its heat")
        from league.rules.live import held_heat  # beside record_heat (see _heat_recorder)

        if not held_heat(session, heat):  # else recorded when its broadcast ends
            record_heat(session, heat, outcome.result)
    return first


# ------------------------------------------------------------------------------- steps
def _plan(factory: sessionmaker[Session], job_id: int) -> _Plan:
    """Copy the job's race settings and models out of the database (one short read)."""
    with transaction(factory) as session:
        job = get_job(session, job_id)
        if job.kind == JobKind.HEAT:
            return _heat_plan(session, job)
        entry = job.entry
        if entry is None:
            raise _Refused(FailureKind.INFRASTRUCTURE, f"job {job_id} has no entry to race")
        race = entry.race
        model = entry.model
        car = _Car(f"entry {entry.id}", model.sha256, dict(model.model_metadata))
        return _Plan(JobKind.TIME_TRIAL, race.id, _config(race), race.track_digest, [car],
                     tuple(t["track_digest"] for t in race.extra_tracks or []))


def _heat_plan(session: Session, job: EvaluationJob) -> _Plan:
    """A heat races its entries head-to-head, in ``Heat.entry_ids`` order, on the heat's seed."""
    heat = job.heat
    if heat is None:
        raise _Refused(FailureKind.INFRASTRUCTURE, f"heat job {job.id} has no heat")
    race = session.get(Race, heat.race_id)
    if race is None:
        raise _Refused(FailureKind.INFRASTRUCTURE, f"heat {heat.id}'s race no longer exists")
    by_id = {e.id: e for e in race.entries}
    cars = []
    for entry_id in heat.entry_ids:
        entry = by_id.get(entry_id)
        if entry is None:
            raise _Refused(FailureKind.INFRASTRUCTURE,
                           f"heat {heat.id} names entry {entry_id}, which is not in race "
                           f"{race.id}")
        cars.append(_Car(f"entry {entry.id}", entry.model.sha256,
                         dict(entry.model.model_metadata)))
    config = _config(race, format=Format.HEAD_TO_HEAD, trials=race.heats_per_round, seed=heat.seed)
    return _Plan(JobKind.HEAT, race.id, config, race.track_digest, cars)


def _config(race: Race, **changes: Any) -> RaceConfig:
    try:
        return race_config(race).with_(**changes)
    except PaddockError as err:
        raise _Refused(FailureKind.INFRASTRUCTURE,
                       f"race {race.id}'s settings cannot be raced: {err}") from err


def _tracks(plan: _Plan) -> list[Track]:
    """The race's tracks (one, or several), each if it still has the geometry the race was
    created on."""
    digests = (plan.track_digest, *plan.extra_digests)
    return [_track(plan, name, digest)
            for name, digest in zip(plan.config.tracks, digests, strict=True)]


def _track(plan: _Plan, name: str, digest: str) -> Track:
    """Track ``name``, if it still has the geometry ``digest`` the race was created on."""
    try:
        track = load_track(name)
    except PaddockError as err:
        raise _Refused(FailureKind.INFRASTRUCTURE,
                       f"track {name!r} of race {plan.race_id} cannot be loaded: {err}") from err
    if track.digest != digest:
        raise _Refused(FailureKind.INFRASTRUCTURE,
                       f"track {name!r} has changed since race {plan.race_id} was created "
                       f"(geometry {track.digest[:12]}, the race's {digest[:12]}); "
                       "results on it would not be comparable")
    return track


def _policy(storage: Storage, car: _Car) -> ValidatedPolicy:
    """A model read back from storage and validated again under today's rules."""
    try:
        data = storage.get("models", car.sha256)
    except StorageError as err:
        raise _Refused(FailureKind.INFRASTRUCTURE, f"{car.label}: {err}") from err
    try:
        return validate_policy(data, car.metadata)
    except PolicyRejected as err:
        raise _Refused(FailureKind.VALIDATION,
                       f"{car.label}: the stored model no longer passes validation: "
                       f"{err}") from err


def _run(config: RaceConfig, policies: list[ValidatedPolicy], tracks: list[Track],
         settings: Settings, should_stop: Callable[[], bool] | None,
         pool: PolicyPool | None = None) -> RaceResult | MultiTrackResult:
    def progress(_done: int, _total: int) -> None:
        if should_stop is not None and should_stop():
            raise EvaluationAborted("the race was stopped by its worker")

    try:
        return run_tracks(config, policies, options=settings.sandbox(), tracks=tracks,
                          progress=progress, record=True, pool=pool)
    except TimeBudgetExceeded as err:  # the policy's own doing: failed, not tried again
        raise _Refused(FailureKind.TIME_BUDGET, err.reason) from err
    except PaddockError as err:  # the sandbox could not start, a required layer is missing
        raise _Refused(FailureKind.INFRASTRUCTURE, f"the race could not run: {err}") from err


def _warm_note(sandbox: dict[str, Any], pool: PolicyPool | None) -> str:
    """How many of the race's policy processes were warm, for the job's log ("" without a
    pool)."""
    if pool is None:
        return ""
    warm = sandbox.get("warm") or []
    return f"; {sum(1 for w in warm if w)} of {len(warm)} policy processes warm"


def _replays(race: RaceResult | MultiTrackResult, job_id: int) -> list[tuple[int, bytes]]:
    """One replay per trial (time trial) or heat (head-to-head), numbered from 1; on several
    tracks numbered across them (:mod:`evaluator.multi_track`), each with its track's
    settings."""
    runs = race.runs if isinstance(race, MultiTrackResult) else [race]
    out = []
    recorded = [(run, tel) for run in runs for tel in run.telemetry]
    for trial, (run, tel) in enumerate(recorded, start=1):
        meta = {"race": run.config.to_dict(), "trial": trial, "job": job_id}
        try:
            out.append((trial, replay.encode(replay.from_telemetry(tel, meta))))
        except PaddockError as err:
            raise _Refused(FailureKind.INFRASTRUCTURE,
                           f"the replay of trial {trial} could not be encoded: {err}") from err
    return out


def _heat_recorder() -> HeatRecorder:
    """``league.rules.headtohead.record_heat``, or a refusal naming what is missing."""
    try:
        from league.rules.headtohead import record_heat
    except ImportError as err:  # head-to-head support is another module; absent, heats fail
        raise _Refused(FailureKind.INFRASTRUCTURE,
                       f"head-to-head heats cannot be recorded here: {err}") from err
    return record_heat
