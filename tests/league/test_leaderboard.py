"""Race leaderboards: which results count, how racers are ordered, and the garage status."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session

from league.models import EvaluationJob, FailureKind, JobKind, JobStatus, Race
from league.rules.leaderboard import entry_status, race_leaderboard

if TYPE_CHECKING:
    from conftest import Factory

MIN = dt.timedelta(minutes=1)

# (racer, laps, time_s, minutes after the first submission, result status)
Case = tuple[str, int, float | None, int, str]


@pytest.mark.parametrize("results, expected", [
    pytest.param([("ann", 3, 40.0, 0, "finished"), ("bob", 2, 20.0, 0, "finished")],
                 [("ann", 1), ("bob", 2)], id="more-laps-beat-fewer"),
    pytest.param([("ann", 3, 31.0, 0, "finished"), ("bob", 3, 30.5, 0, "finished")],
                 [("bob", 1), ("ann", 2)], id="smaller-time"),
    pytest.param([("ann", 3, 30.0, 5, "finished"), ("bob", 3, 30.0, 0, "finished")],
                 [("bob", 1), ("ann", 2)], id="tie-to-earlier-submission"),
    pytest.param([("ann", 1, 10.0, 0, "dnf"), ("bob", 3, 50.0, 0, "finished")],
                 [("bob", 1), ("ann", None)], id="below-min-laps-unranked"),
    pytest.param([("ann", 1, 10.0, 0, "finished"), ("bob", 3, 50.0, 0, "finished")],
                 [("bob", 1), ("ann", None)], id="finished-short-of-race-min-laps"),
    pytest.param([("ann", 0, None, 0, "policy_error"), ("bob", 1, None, 0, "dnf"),
                  ("cy", 3, 40.0, 0, "finished")],
                 [("cy", 1), ("bob", None), ("ann", None)], id="dnf-before-policy-error"),
    pytest.param([("ann", 1, None, 9, "dnf"), ("bob", 1, None, 0, "dnf")],
                 [("bob", None), ("ann", None)], id="unranked-by-submission"),
])
def test_leaderboard_order(session: Session, make: Factory, results: list[Case],
                           expected: list[tuple[str, int | None]]) -> None:
    race = make.race(session, laps=3, min_laps=2)
    for name, laps, time_s, minutes, status in results:
        entry = make.entry(session, race, make.racer(session, name),
                           submitted_at=make.now + minutes * MIN)
        make.result(session, entry, time_s=time_s, laps=laps, status=status)
    rows = race_leaderboard(session, race)
    assert [(r.racer, r.rank) for r in rows] == expected
    assert all((r.reason == "") == (r.rank is not None) for r in rows)


def test_row_fields_and_gap(session: Session, make: Factory) -> None:
    race = make.race(session, laps=3, min_laps=2)
    ann, bob, cy = (make.racer(session, n) for n in ("ann", "bob", "cy"))
    make.result(session, make.entry(session, race, ann), time_s=30.25, laps=3,
                best_lap_s=9.5, off_track_count=2, collision_count=1, penalty_s=10.0)
    make.result(session, make.entry(session, race, bob), time_s=31.5, laps=3)
    make.result(session, make.entry(session, race, cy), time_s=20.0, laps=2)
    first, second, third = race_leaderboard(session, race)
    assert (first.racer, first.time_s, first.gap_s, first.laps) == ("ann", 30.25, 0.0, 3)
    assert (first.best_lap_s, first.off_track_count, first.collision_count,
            first.penalty_s) == (9.5, 2, 1, 10.0)
    assert (first.model, first.submissions, first.status) == ("follower v1", 1, "finished")
    assert (second.gap_s, third.gap_s) == (1.25, None)  # a lap down: no time gap
    assert first.to_dict()["submitted_at"] == make.now.isoformat()


def test_racer_best_entry_counts(session: Session, make: Factory) -> None:
    race = make.race(session)
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    make.result(session, make.entry(session, race, ann), time_s=25.0)
    make.result(session, make.entry(session, race, ann, make.now + MIN), time_s=35.0)
    make.result(session, make.entry(session, race, bob), time_s=30.0)
    rows = race_leaderboard(session, race)
    assert [(r.racer, r.time_s, r.submissions, r.model) for r in rows] == [
        ("ann", 25.0, 2, "follower v1"), ("bob", 30.0, 1, "follower v1")]


def test_rerun_replaces_the_entry_result(session: Session, make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=25.0)
    rerun = make.result(session, entry, time_s=28.0)
    (row,) = race_leaderboard(session, race)
    assert (row.time_s, row.result_id, row.job_id) == (28.0, rerun.id, rerun.job_id)


@pytest.mark.parametrize("job_status", [JobStatus.QUEUED, JobStatus.RUNNING,
                                        JobStatus.FAILED, JobStatus.CANCELLED])
def test_only_succeeded_jobs_count(session: Session, make: Factory,
                                   job_status: JobStatus) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=30.0)
    make.result(session, entry, time_s=20.0, job_status=job_status)
    assert [r.time_s for r in race_leaderboard(session, race)] == [30.0]


def test_disqualified_entries_are_excluded(session: Session, make: Factory) -> None:
    race = make.race(session)
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    fast = make.entry(session, race, ann)
    make.result(session, fast, time_s=20.0)
    make.result(session, make.entry(session, race, ann), time_s=40.0)
    only = make.entry(session, race, bob)
    make.result(session, only, time_s=10.0)
    fast.disqualified_at = only.disqualified_at = make.now
    rows = race_leaderboard(session, race)
    assert [(r.racer, r.time_s, r.submissions) for r in rows] == [("ann", 40.0, 2)]


def test_policy_error_is_listed_with_its_reason(session: Session, make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=None, laps=0, status="policy_error",
                data={"error": "the policy returned NaN"})
    (row,) = race_leaderboard(session, race)
    assert (row.rank, row.status, row.reason) == (None, "policy_error",
                                                  "the policy returned NaN")


TRIALS = [
    {"trial": 1, "seed": 1, "status": "finished", "laps_completed": 3,
     "lap_times_s": [10.0, 11.0, 12.0]},  # total 33, best 10, average 11
    {"trial": 2, "seed": 2, "status": "finished", "laps_completed": 3,
     "lap_times_s": [9.0, 13.0, 13.0]},  # total 35, best 9, average 11.67
    {"trial": 3, "seed": 3, "status": "dnf", "laps_completed": 2,
     "lap_times_s": [8.0, 8.0]},  # too few laps: never counts
]


@pytest.mark.parametrize("race_ranking, result_ranking, stored, expected", [
    ("total", "total", 33.0, 33.0),
    ("best-lap", "best-lap", 9.0, 9.0),
    ("average-lap", "average-lap", 11.0, 11.0),
    ("best-lap", "total", 33.0, 9.0),  # the organizer changed the method: chosen again
    ("average-lap", "total", 33.0, 11.0),
    ("total", "best-lap", 9.0, 33.0),
])
def test_ranking_methods(session: Session, make: Factory, race_ranking: str,
                         result_ranking: str, stored: float, expected: float) -> None:
    race = make.race(session, laps=3, trials=3, ranking=race_ranking)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=stored, laps=3,
                data={"ranking": result_ranking, "trials": TRIALS})
    (row,) = race_leaderboard(session, race)
    assert (row.rank, row.time_s) == (1, expected)


def test_ranking_method_decides_the_order(session: Session, make: Factory) -> None:
    race: Race = make.race(session, laps=3, trials=3, ranking="total")
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    make.result(session, make.entry(session, race, ann), time_s=33.0, laps=3,
                data={"trials": TRIALS[:1]})  # total 33, best lap 10
    make.result(session, make.entry(session, race, bob), time_s=35.0, laps=3,
                data={"trials": TRIALS[1:2]})  # total 35, best lap 9
    assert [r.racer for r in race_leaderboard(session, race)] == ["ann", "bob"]
    race.ranking = "best-lap"
    assert [r.racer for r in race_leaderboard(session, race)] == ["bob", "ann"]


def _job(session: Session, entry_id: int, **kw: Any) -> EvaluationJob:
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=entry_id, **kw)
    session.add(job)
    session.flush()
    return job


@pytest.mark.parametrize("job, expected", [
    ({"status": JobStatus.QUEUED}, (JobStatus.QUEUED, None, "")),
    ({"status": JobStatus.RUNNING, "attempts": 1}, (JobStatus.RUNNING, None, "")),
    ({"status": JobStatus.FAILED, "failure_kind": FailureKind.TIMEOUT,
      "failure_reason": "the policy took 2.1 s to answer"},
     (JobStatus.FAILED, FailureKind.TIMEOUT, "the policy took 2.1 s to answer")),
])
def test_entry_status_follows_the_latest_job(session: Session, make: Factory,
                                             job: dict[str, Any],
                                             expected: tuple[Any, ...]) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=30.0)  # an earlier, succeeded job
    latest = _job(session, entry.id, **job)
    status = entry_status(session, entry)
    assert (status.status, status.failure_kind, status.reason) == expected
    assert (status.job_id, status.result_id) == (latest.id, None)


@pytest.mark.parametrize("result, expected", [
    ({"time_s": 30.0}, ("finished", 30.0, "")),
    ({"time_s": None, "laps": 0, "status": "dnf",
      "data": {"trials": [{"reason": "time cap of 180 s reached after 0 of 1 laps"}]}},
     ("dnf", None, "time cap of 180 s reached after 0 of 1 laps")),
])
def test_entry_status_of_a_result(session: Session, make: Factory, result: dict[str, Any],
                                  expected: tuple[Any, ...]) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    stored = make.result(session, entry, **result)
    status = entry_status(session, entry)
    assert status.status == JobStatus.SUCCEEDED and status.result_id == stored.id
    assert (status.result_status, status.time_s, status.reason) == expected


def test_entry_status_of_a_disqualified_entry(session: Session, make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    entry.disqualified_at, entry.disqualified_reason = make.now, "not their own model"
    status = entry_status(session, entry)
    assert (status.status, status.disqualified) == (None, True)
    assert status.reason == "disqualified: not their own model"
