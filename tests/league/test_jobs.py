"""The job state machine: claims, leases, heartbeats, results written once, final states."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.db import transaction
from league.errors import InvalidInput
from league.models import EvaluationJob, FailureKind, JobStatus, Replay, Result
from league.rules import jobs, submissions
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Database, Factory

T0 = dt.datetime(2026, 6, 1, 12, 0, 0)
LEASE = 10.0
HANG_S = 30.0  # a thread still blocked after this long is stuck (a guard, not a speed check)
Q, R, S, F, C = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED,
                 JobStatus.CANCELLED)


def at(seconds: float) -> dt.datetime:
    """T0 plus ``seconds``."""
    return T0 + dt.timedelta(seconds=seconds)


def queue(session: Session, storage: Storage, make: Factory, *delays: float,
          max_attempts: int = 3) -> list[int]:
    """One entry and a queued job per delay (queued at T0 + delay); returns the job ids."""
    race = make.race(session)
    entry = submissions.submit_entry(session, storage, race, make.user(session), make.policy(),
                                     now=make.now)
    first = entry.jobs[0]
    session.delete(first)
    ids = [submissions.queue_evaluation(session, entry, now=at(d),
                                        max_attempts=max_attempts).id for d in delays]
    session.commit()
    return ids


def fetch(session: Session, job_id: int) -> EvaluationJob:
    """The job as the database has it now."""
    session.expire_all()
    job = session.get(EvaluationJob, job_id)
    assert job is not None
    return job


def result_json(status: str = "finished", time_s: float | None = 30.5) -> dict[str, Any]:
    """A small evaluator result: two trials, the second ranked."""
    return {"status": status, "ranking_time_s": time_s, "ranking_laps": 2, "ranked_trial": 2,
            "format": "time-trial", "error": None, "trials": [
                {"trial": 1, "best_lap_s": 14.0, "off_track_count": 3, "collision_count": 0,
                 "penalty_s": 15.0},
                {"trial": 2, "best_lap_s": 15.0, "off_track_count": 1, "collision_count": 0,
                 "penalty_s": 5.0}]}


def lines(job: EvaluationJob) -> list[str]:
    """The job's log, one event per item, without timestamps."""
    return [line.split(" ", 1)[1] for line in job.log.splitlines()]


# ---------------------------------------------------------------------------------- claims
def test_claims_oldest_first_and_records_the_attempt(session: Session, storage: Storage,
                                                     make: Factory) -> None:
    late, early, middle = queue(session, storage, make, 2, 0, 1)
    claimed = []
    for n in range(3):
        job = jobs.claim_job(session, f"host-{n}", LEASE, now=at(60))
        assert job is not None
        claimed.append(job.id)
    session.commit()
    assert claimed == [early, middle, late]
    assert jobs.claim_job(session, "host-9", LEASE, now=at(60)) is None
    job = fetch(session, early)
    assert (job.status, job.attempts, job.lease_owner) == (R, 1, "host-0")
    assert (job.started_at, job.lease_expires_at) == (at(60), at(60 + LEASE))
    assert lines(job) == ["attempt 1 of 3 claimed by host-0 (lease 10 s)"]


def test_two_sessions_never_claim_the_same_job(db: Database, session: Session,
                                               storage: Storage, make: Factory) -> None:
    first, second = queue(session, storage, make, 0, 1)
    session.close()
    mine = db.factory()
    theirs: list[int | None] = []

    def other_worker() -> None:
        with transaction(db.factory) as s:
            job = jobs.claim_job(s, "other", LEASE, now=at(5))
            theirs.append(None if job is None else job.id)

    job = jobs.claim_job(mine, "me", LEASE, now=at(5))  # holds its claim uncommitted...
    assert job is not None and job.id == first
    thread = threading.Thread(target=other_worker)
    thread.start()  # ...while the other worker claims
    if db.backend == "postgresql":  # it skips the locked row, without waiting for our commit
        thread.join(timeout=HANG_S)
        waited = thread.is_alive()
        if waited:
            mine.commit()  # let it go before failing
        assert not waited, "the other claimer waited for our uncommitted claim"
        assert theirs == [second]
    mine.commit()  # SQLite: the other waits for the write lock, then sees the job running
    mine.close()
    thread.join()
    assert theirs == [second]


def test_competing_claimers_take_every_job_exactly_once(db: Database, session: Session,
                                                        storage: Storage,
                                                        make: Factory) -> None:
    ids = queue(session, storage, make, *range(16))
    session.close()
    taken: dict[str, list[int]] = {}

    def claimer(name: str) -> None:
        got = taken.setdefault(name, [])
        while True:
            with transaction(db.factory) as s:
                job = jobs.claim_job(s, name, LEASE)
                if job is None:
                    return
                got.append(job.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [job_id for got in taken.values() for job_id in got]
    assert sorted(every) == sorted(ids)
    with transaction(db.factory) as s:
        assert set(s.scalars(sa.select(EvaluationJob.attempts))) == {1}


# ---------------------------------------------------------------------------------- leases
def test_lost_leases_requeue_until_the_last_attempt_fails(session: Session, storage: Storage,
                                                          make: Factory) -> None:
    (job_id,) = queue(session, storage, make, 0)
    for attempt in (1, 2, 3):
        start = attempt * 100
        job = jobs.claim_job(session, f"host-{attempt}", LEASE, now=at(start))
        assert job is not None and job.attempts == attempt
        assert jobs.reap_expired(session, now=at(start + LEASE - 1)) == []
        assert jobs.reap_expired(session, now=at(start + LEASE + 1)) == [job_id]
        session.commit()
        job = fetch(session, job_id)
        assert job.lease_owner is None and job.lease_expires_at is None
        if attempt < 3:
            assert job.status == Q
            assert lines(job)[-1] == (f"attempt {attempt} lost: host-{attempt} stopped "
                                      f"renewing its lease (expired at "
                                      f"{at(start + LEASE).isoformat()}Z); queued again")
    assert (job.status, job.failure_kind) == (F, FailureKind.INFRASTRUCTURE)
    assert job.failure_reason == (f"worker lost 3 times (last: host-3, lease expired at "
                                  f"{at(300 + LEASE).isoformat()}Z)")
    assert job.finished_at == at(301 + LEASE)
    assert len(lines(job)) == 6  # three claims, two losses, the failure
    assert jobs.claim_job(session, "host-4", LEASE, now=at(999)) is None


def test_heartbeat_renews_only_a_lease_still_held(session: Session, storage: Storage,
                                                  make: Factory) -> None:
    (job_id,) = queue(session, storage, make, 0)
    jobs.claim_job(session, "w1", LEASE, now=at(0))
    assert jobs.heartbeat(session, job_id, "w1", LEASE, now=at(5))
    assert not jobs.heartbeat(session, job_id, "w2", LEASE, now=at(5))
    session.commit()
    assert fetch(session, job_id).lease_expires_at == at(5 + LEASE)
    assert jobs.reap_expired(session, now=at(5 + LEASE - 1)) == []
    assert jobs.reap_expired(session, now=at(6 + LEASE)) == [job_id]
    assert not jobs.heartbeat(session, job_id, "w1", LEASE, now=at(20))  # re-queued
    jobs.claim_job(session, "w2", LEASE, now=at(21))
    assert not jobs.heartbeat(session, job_id, "w1", LEASE, now=at(22))  # someone else's
    assert jobs.heartbeat(session, job_id, "w2", LEASE, now=at(22))
    session.commit()
    job = fetch(session, job_id)
    assert (job.lease_owner, job.lease_expires_at) == ("w2", at(22 + LEASE))


def test_an_expired_lease_nobody_reaped_is_still_renewed(session: Session, storage: Storage,
                                                         make: Factory) -> None:
    (job_id,) = queue(session, storage, make, 0)
    jobs.claim_job(session, "w1", LEASE, now=at(0))
    assert jobs.heartbeat(session, job_id, "w1", LEASE, now=at(3 * LEASE))
    assert jobs.reap_expired(session, now=at(3 * LEASE + 1)) == []


# ---------------------------------------------------------------------------------- results
def test_a_second_delivery_changes_nothing(session: Session, storage: Storage,
                                           make: Factory) -> None:
    (job_id,) = queue(session, storage, make, 0)
    jobs.claim_job(session, "w1", LEASE, now=at(0))
    replays = [(1, b"replay one"), (2, b"replay two")]
    assert jobs.complete_job(session, job_id, "w1", result_json(), replays, storage,
                             now=at(5))
    session.commit()
    log = fetch(session, job_id).log
    assert not jobs.complete_job(session, job_id, "w1", result_json(time_s=99.0), replays,
                                 storage, now=at(6))
    assert not jobs.complete_job(session, job_id, "w2", result_json("dnf", None), [], storage,
                                 now=at(7))
    session.commit()
    job = fetch(session, job_id)
    assert (job.status, job.finished_at, job.log) == (S, at(5), log)
    assert lines(job)[-1] == "succeeded: finished (result from w1)"
    (result,) = session.scalars(sa.select(Result)).all()
    assert (result.job_id, result.ranking_time_s, result.data) == (job_id, 30.5, result_json())
    stored = session.scalars(sa.select(Replay).order_by(Replay.trial)).all()
    assert [(r.trial, storage.get("replays", r.sha256)) for r in stored] == replays


@pytest.mark.parametrize("result, columns", [
    (result_json(), {"status": "finished", "ranking_time_s": 30.5, "ranking_laps": 2,
                     "best_lap_s": 15.0, "off_track_count": 1, "collision_count": 0,
                     "penalty_s": 5.0}),
    ({**result_json("dnf", None), "ranked_trial": None, "ranking_laps": 0},
     {"status": "dnf", "ranking_time_s": None, "ranking_laps": 0, "best_lap_s": 14.0,
      "off_track_count": 4, "collision_count": 0, "penalty_s": 20.0}),
    ({"status": "policy_error", "ranking_time_s": None, "ranking_laps": 0,
      "ranked_trial": None, "trials": [{"trial": 1, "best_lap_s": None, "off_track_count": 0,
                                        "collision_count": 0, "penalty_s": 0.0}]},
     {"status": "policy_error", "ranking_time_s": None, "ranking_laps": 0, "best_lap_s": None,
      "off_track_count": 0, "collision_count": 0, "penalty_s": 0.0}),
], ids=["ranked trial", "no ranked trial", "policy error"])
def test_leaderboard_columns_come_from_the_ranked_trial(result: dict[str, Any],
                                                        columns: dict[str, Any]) -> None:
    assert jobs.result_columns(result) == columns


def test_first_result_wins_even_from_a_lost_lease(session: Session, storage: Storage,
                                                  make: Factory) -> None:
    slow, idle = queue(session, storage, make, 0, 1)
    for _ in range(2):
        jobs.claim_job(session, "w1", LEASE, now=at(0))
    jobs.reap_expired(session, now=at(LEASE + 1))
    jobs.claim_job(session, "w2", LEASE, now=at(LEASE + 2))  # takes `slow` over
    assert jobs.complete_job(session, slow, "w1", result_json(), [], storage,
                             now=at(LEASE + 3))
    assert jobs.complete_job(session, idle, "w1", result_json(), [], storage,
                             now=at(LEASE + 3))  # re-queued, not yet taken: still first
    assert not jobs.complete_job(session, slow, "w2", result_json(), [], storage)
    assert not jobs.heartbeat(session, slow, "w2", LEASE)
    session.commit()
    for job_id in (slow, idle):
        job = fetch(session, job_id)
        assert (job.status, job.attempts) == (S, 2 if job_id == slow else 1)
        assert lines(job)[-1] == ("succeeded: finished (result from w1, whose lease was lost; "
                                  "first result wins)")
    assert session.scalar(sa.select(sa.func.count(Result.id))) == 2


def test_failures_are_taken_only_from_the_lease_holder(session: Session, storage: Storage,
                                                       make: Factory) -> None:
    (job_id,) = queue(session, storage, make, 0)
    jobs.claim_job(session, "w1", LEASE, now=at(0))
    with pytest.raises(InvalidInput, match="needs a reason"):
        jobs.fail_job(session, job_id, "w1", FailureKind.VALIDATION, "  \n ")
    assert not jobs.fail_job(session, job_id, "w2", FailureKind.INFRASTRUCTURE, "disk full",
                             now=at(1))
    assert fetch(session, job_id).status == R
    assert jobs.fail_job(session, job_id, "w1", FailureKind.VALIDATION,
                         "entry 1: the stored model\nno longer passes", now=at(2))
    session.commit()
    job = fetch(session, job_id)
    assert (job.status, job.failure_kind, job.failure_reason, job.finished_at) == \
        (F, FailureKind.VALIDATION, "entry 1: the stored model no longer passes", at(2))
    assert lines(job)[1:] == [
        "failure from w2 dropped (infrastructure: disk full): the job is held by w1",
        "failed (validation): entry 1: the stored model no longer passes"]


def test_a_released_job_is_queued_without_using_an_attempt(session: Session, storage: Storage,
                                                           make: Factory) -> None:
    (job_id,) = queue(session, storage, make, 0)
    jobs.claim_job(session, "w1", LEASE, now=at(0))
    assert not jobs.release_job(session, job_id, "w2", "stopping")
    assert jobs.release_job(session, job_id, "w1", "its worker was stopped", now=at(1))
    session.commit()
    job = fetch(session, job_id)
    assert (job.status, job.attempts, job.lease_owner) == (Q, 0, None)
    assert lines(job)[-1] == ("released by w1: its worker was stopped; queued again (the "
                              "attempt does not count)")


# ------------------------------------------------------------------------- the state machine
EXPECTED_MOVES = {  # (from, to) pairs allowed; every other pair is refused
    (Q, R), (Q, C), (Q, S),
    (R, S), (R, F), (R, C), (R, Q),
}


@pytest.mark.parametrize("current", list(JobStatus))
@pytest.mark.parametrize("target", list(JobStatus))
def test_transition_table(current: JobStatus, target: JobStatus) -> None:
    assert jobs.can_move(current, target) == ((current, target) in EXPECTED_MOVES)


def _finish(session: Session, storage: Storage, final: JobStatus) -> int:
    """Claim the oldest queued job and bring it to ``final``; returns its id."""
    job = jobs.claim_job(session, "w1", LEASE, now=at(0))
    assert job is not None
    if final == S:
        assert jobs.complete_job(session, job.id, "w1", result_json(), [], storage, now=at(1))
    elif final == F:
        assert jobs.fail_job(session, job.id, "w1", FailureKind.VALIDATION, "bad", now=at(1))
    else:
        assert jobs.cancel_job(session, job.id, "disqualified", now=at(1))
    return job.id


OPERATIONS: dict[str, Callable[[Session, Storage, int], object]] = {
    "claim": lambda s, st, j: jobs.claim_job(s, "w1", LEASE, now=at(2)),
    "heartbeat": lambda s, st, j: jobs.heartbeat(s, j, "w1", LEASE, now=at(2)),
    "complete": lambda s, st, j: jobs.complete_job(s, j, "w1", result_json("dnf"), [], st),
    "fail": lambda s, st, j: jobs.fail_job(s, j, "w1", FailureKind.INFRASTRUCTURE, "late"),
    "reap": lambda s, st, j: jobs.reap_expired(s, now=at(10 * LEASE)),
    "release": lambda s, st, j: jobs.release_job(s, j, "w1", "stopping"),
    "cancel": lambda s, st, j: jobs.cancel_job(s, j, "again"),
}


@pytest.mark.parametrize("final", [S, F, C])
def test_final_states_never_move(session: Session, storage: Storage, make: Factory,
                                 final: JobStatus) -> None:
    queue(session, storage, make, *range(len(OPERATIONS)))
    ids = [_finish(session, storage, final) for _ in OPERATIONS]
    session.commit()
    for job_id, (name, operation) in zip(ids, OPERATIONS.items(), strict=True):
        before = fetch(session, job_id)
        state = (before.status, before.finished_at, before.failure_kind, before.attempts)
        assert not operation(session, storage, job_id), name
        session.commit()
        after = fetch(session, job_id)
        assert (after.status, after.finished_at, after.failure_kind, after.attempts) == state, \
            name
    results = session.scalar(sa.select(sa.func.count(Result.id)))
    assert results == (len(OPERATIONS) if final == S else 0)
