"""The fair claim order: racers take turns, heats interleave with time trials, no job twice."""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.db import transaction
from league.models import EvaluationJob, FailureKind, JobStatus, User
from league.rules import headtohead, jobs, submissions

if TYPE_CHECKING:
    from conftest import Database, Factory

T0 = dt.datetime(2026, 6, 1, 12, 0, 0)
CLAIMS_AT = 3600.0  # claims happen an hour after T0, when every job below is queued
LEASE = 10.0
HANG_S = 30.0  # a thread still blocked after this long is stuck (a guard, not a speed check)


def at(seconds: float) -> dt.datetime:
    """T0 plus ``seconds``."""
    return T0 + dt.timedelta(seconds=seconds)


class Queue:
    """A time-trial race and a head-to-head race; racers queue jobs at chosen times."""

    def __init__(self, session: Session, make: Factory) -> None:
        self.session, self.make = session, make
        league = make.league(session)
        self.race = make.race(session, league, name="Time trial")
        self.racers: dict[str, User] = {}

    def racer(self, name: str) -> User:
        """The racer called ``name`` (created on first use)."""
        if name not in self.racers:
            self.racers[name] = self.make.racer(self.session, name)
        return self.racers[name]

    def uploads(self, name: str, *delays: float) -> list[int]:
        """One entry of racer ``name`` per delay, its job queued at T0 + delay; the job ids."""
        ids = []
        for d in delays:
            entry = self.make.entry(self.session, self.race, self.racer(name), at(d))
            ids.append(submissions.queue_evaluation(self.session, entry, now=at(d)).id)
        self.session.commit()
        return ids

    def heats(self, race_name: str, count: int, delay: float) -> list[int]:
        """A head-to-head race with a round of ``count`` heats queued at T0 + delay."""
        race = self.make.race(self.session, self.race.league, name=race_name,
                              format="head-to-head")
        pairs = []
        for k in range(count):
            a = self.make.entry(self.session, race, self.racer(f"{race_name}-{2 * k}"))
            b = self.make.entry(self.session, race, self.racer(f"{race_name}-{2 * k + 1}"))
            pairs.append((a.id, b.id))
        made = headtohead.create_heats(self.session, race, headtohead.ROUND_STAGE,
                                       headtohead.ROUND_SEEDS, 1, pairs, at(delay))
        ids = list(self.session.scalars(sa.select(EvaluationJob.id).where(
            EvaluationJob.heat_id.in_([h.id for h in made])).order_by(EvaluationJob.id)))
        self.session.commit()
        return ids


def claim_all(session: Session, start: float = CLAIMS_AT, *, finish: bool = True,
              step: float = 1.0) -> list[int]:
    """Claim until the queue is empty, one claim each ``step`` seconds from T0 + ``start``;
    ``finish``: each job ends before the next claim (one worker), else all stay running."""
    order: list[int] = []
    while (job := jobs.claim_job(session, "w1", LEASE,
                                 now=at(start + step * len(order)))) is not None:
        order.append(job.id)
        if finish:
            jobs.fail_job(session, job.id, "w1", FailureKind.POLICY_ERROR, "test",
                          now=at(start + step * len(order) - step / 2))
        session.commit()
    return order


@pytest.fixture
def q(session: Session, make: Factory) -> Queue:
    """An empty queue."""
    return Queue(session, make)


# ---------------------------------------------------------------------------------- racers
@pytest.mark.parametrize("finish", [True, False], ids=["one-worker", "many-workers"])
def test_a_single_upload_waits_for_one_turn_not_for_a_flood(q: Queue, session: Session,
                                                            finish: bool) -> None:
    flood = q.uploads("alice", *range(20))
    (single,) = q.uploads("bob", 20)
    order = claim_all(session, finish=finish)
    assert order.index(single) < 2, "bob's only job waited behind alice's flood"
    assert order == [flood[0], single, *flood[1:]]


def test_racers_take_turns_and_each_racer_goes_oldest_first(q: Queue,
                                                            session: Session) -> None:
    # Queued out of order on purpose: each racer's jobs must still come oldest first.
    a2, a0, a1 = q.uploads("alice", 2, 0, 1)
    b0, b1, b2 = q.uploads("bob", 3, 4, 5)
    (c0,) = q.uploads("carol", 6)
    assert claim_all(session) == [a0, b0, c0, a1, b1, a2, b2]


def test_claims_in_one_transaction_take_turns_too(q: Queue, session: Session) -> None:
    # One dispatch of the Ray executor: several claims at the same moment, one commit.
    flood = q.uploads("alice", *range(5))
    (single,) = q.uploads("bob", 5)
    claimed = []
    for _ in range(3):
        job = jobs.claim_job(session, "dispatcher", LEASE, now=at(CLAIMS_AT))
        assert job is not None
        claimed.append(job.id)
    session.commit()
    assert claimed == [flood[0], single, flood[1]]


def test_a_turn_is_remembered_for_the_window_only(q: Queue, session: Session) -> None:
    (old,) = q.uploads("alice", 0)
    assert claim_all(session, start=10) == [old]
    window = jobs.FAIR_WINDOW.total_seconds()
    alice, bob = q.uploads("alice", 20), q.uploads("bob", 30)
    # Within the window alice was served, so bob goes first although queued later.
    assert claim_all(session, start=10 + window - 60, finish=False) == [*bob, *alice]
    alice, bob = q.uploads("alice", 40), q.uploads("bob", 50)
    # Past the window nobody was served lately (bob and alice's claims above are older):
    # the oldest job goes first.
    assert claim_all(session, start=10 + 3 * window) == [*alice, *bob]


def test_a_rerun_is_the_racers_own_job_and_waits_for_its_turn(q: Queue, session: Session,
                                                              make: Factory) -> None:
    organizer = make.organizer(session, q.race.league)
    mine = q.uploads("alice", 0, 1, 2)
    (bobs,) = q.uploads("bob", 3)
    assert claim_all(session, start=10) == [mine[0], bobs, mine[1], mine[2]]
    queued = q.uploads("alice", 20, 21, 22)
    entries = {j.id: j.entry for j in session.scalars(sa.select(EvaluationJob))}
    again_alice = submissions.rerun_entry(session, entries[mine[0]], organizer)
    again_bob = submissions.rerun_entry(session, entries[bobs], organizer)
    again_alice.queued_at, again_bob.queued_at = at(23), at(24)  # the test's clock, not now
    session.commit()
    start = 10 + 2 * jobs.FAIR_WINDOW.total_seconds()  # the claims above are forgotten
    assert claim_all(session, start=start) == [queued[0], again_bob.id, *queued[1:],
                                               again_alice.id]


# ---------------------------------------------------------------------------------- heats
def test_heats_interleave_with_time_trials_instead_of_waiting(q: Queue,
                                                              session: Session) -> None:
    uploads = [q.uploads(f"racer{k}", k)[0] for k in range(30)]
    heats = q.heats("Duel", 4, 30)
    order = claim_all(session)
    assert [order.index(h) for h in heats] == [1, 3, 5, 7]
    assert [j for j in order if j in uploads] == uploads  # one each, oldest racer first


def test_time_trials_interleave_with_a_round_robin_of_heats(q: Queue,
                                                            session: Session) -> None:
    heats = q.heats("Round robin", 12, 0)
    (single,) = q.uploads("late", 60)
    order = claim_all(session, finish=False)
    assert order.index(single) == 1
    assert [j for j in order if j != single] == heats


def test_head_to_head_races_take_turns_with_each_other(q: Queue, session: Session) -> None:
    big = q.heats("Big", 3, 0)
    small = q.heats("Small", 1, 10)
    assert claim_all(session) == [big[0], small[0], *big[1:]]


def test_a_retried_job_keeps_its_place_in_its_lane(q: Queue, session: Session) -> None:
    first, second = q.uploads("alice", 0, 1)
    job = jobs.claim_job(session, "dead", LEASE, now=at(CLAIMS_AT))
    assert job is not None and job.id == first
    assert jobs.reap_expired(session, now=at(CLAIMS_AT + LEASE + 1)) == [first]
    session.commit()
    assert claim_all(session, start=CLAIMS_AT + LEASE + 2) == [first, second]


# ---------------------------------------------------------------------------- concurrency
def test_a_locked_job_is_skipped_never_taken_twice(db: Database, session: Session,
                                                   q: Queue) -> None:
    (single,) = q.uploads("bob", 0)
    flood = q.uploads("alice", *range(1, 6))
    session.close()
    mine = db.factory()
    theirs: list[int | None] = []

    def other_worker() -> None:
        with transaction(db.factory) as s:
            job = jobs.claim_job(s, "other", LEASE, now=at(CLAIMS_AT))
            theirs.append(None if job is None else job.id)

    job = jobs.claim_job(mine, "me", LEASE, now=at(CLAIMS_AT))  # held uncommitted...
    assert job is not None and job.id == single
    thread = threading.Thread(target=other_worker)
    thread.start()  # ...while the other worker claims
    if db.backend == "postgresql":  # it skips the locked row, without waiting for our commit
        thread.join(timeout=HANG_S)
        waited = thread.is_alive()
        if waited:
            mine.commit()  # let it go before failing
        assert not waited, "the other claimer waited for our uncommitted claim"
    mine.commit()  # SQLite: the other waits for the write lock, then sees bob's job running
    mine.close()
    thread.join()
    assert theirs == [flood[0]]


def test_concurrent_claimers_take_every_job_exactly_once(db: Database, session: Session,
                                                         q: Queue) -> None:
    queued = [job_id for k in range(4) for job_id in q.uploads(f"r{k}", *range(k, 40, 4))]
    queued += q.heats("Duel", 6, 5)
    session.close()
    taken: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        got = taken.setdefault(name, [])
        barrier.wait()
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
        t.join(timeout=4 * HANG_S)
    assert not any(t.is_alive() for t in threads), "a claimer hung"
    every = [job_id for got in taken.values() for job_id in got]
    assert len(every) == len(set(every)), "a job was claimed twice"
    assert sorted(every) == sorted(queued)
    with transaction(db.factory) as s:
        assert set(s.scalars(sa.select(EvaluationJob.attempts))) == {1}
        assert set(s.scalars(sa.select(EvaluationJob.status))) == {JobStatus.RUNNING}


def test_when_every_lane_ranked_is_held_a_free_job_is_still_taken(
        db: Database, session: Session, q: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "FAIR_LANES_TRIED", 1)  # only the first lane is ranked
    (held,) = q.uploads("alice", 0)
    (free,) = q.uploads("bob", 1)
    session.close()
    mine = db.factory()
    theirs: list[int | None] = []

    def other_worker() -> None:
        with transaction(db.factory) as s:
            job = jobs.claim_job(s, "other", LEASE, now=at(CLAIMS_AT))
            theirs.append(None if job is None else job.id)

    job = jobs.claim_job(mine, "me", LEASE, now=at(CLAIMS_AT))
    assert job is not None and job.id == held
    thread = threading.Thread(target=other_worker)
    thread.start()
    if db.backend == "postgresql":  # alice's lane still ranks first in its snapshot
        thread.join(timeout=HANG_S)
        assert theirs == [free]
    mine.commit()
    mine.close()
    thread.join()
    assert theirs == [free]


def test_a_claim_costs_the_same_few_statements_however_deep_the_queue(
        db: Database, session: Session, q: Queue) -> None:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    def claim_statements() -> int:
        statements.clear()
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert jobs.claim_job(session, "w1", LEASE, now=at(CLAIMS_AT)) is not None
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        session.commit()
        return len(statements)

    q.uploads("alice", 0)
    shallow = claim_statements()
    for k in range(30):
        q.uploads(f"r{k}", *range(10 * k, 10 * k + 5))
    q.heats("Duel", 5, 1)
    deep = claim_statements()
    # Rank the lanes, lock a job, write the claim: no statement per lane or per job (the
    # speed on a deep queue is measured by benchmarks/league_jobs.py --deep-queue-only).
    assert deep == shallow <= 4
