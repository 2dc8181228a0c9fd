"""Submitting models: validation in the response, storage, the entry and its queued job."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import Conflict, Forbidden, InvalidInput, LimitExceeded
from league.models import Entry, EvaluationJob, JobStatus, PolicyModel, Visibility
from league.rules import submissions
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Factory


def test_accepted_model_is_stored_and_queued(session: Session, storage: Storage,
                                             make: Factory) -> None:
    race = make.race(session)
    racer = make.user(session)
    data = make.policy()
    entry = submissions.submit_entry(session, storage, race, racer, data, now=make.now)
    session.commit()
    model = session.get(PolicyModel, entry.model_id)
    assert model is not None and storage.get("models", model.sha256) == data
    assert model.version == 1 and model.name == "follower"
    jobs = session.scalars(sa.select(EvaluationJob)).all()
    assert [(j.entry_id, j.status) for j in jobs] == [(entry.id, JobStatus.QUEUED)]


def test_refused_model_stores_nothing(session: Session, storage: Storage,
                                      make: Factory) -> None:
    race = make.race(session)
    racer = make.user(session)
    with pytest.raises(InvalidInput, match="model refused: parse"):
        submissions.submit_entry(session, storage, race, racer, b"garbage", now=make.now)
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 0
    assert not (storage.root / "models").exists()


def test_versions_count_up_per_name(session: Session, storage: Storage, make: Factory) -> None:
    race = make.race(session)
    racer = make.user(session)
    versions = [submissions.submit_entry(session, storage, race, racer, make.policy(s),
                                         now=make.now).model.version for s in (1.0, 2.0)]
    assert versions == [1, 2]


def test_the_same_file_is_the_same_version(session: Session, storage: Storage,
                                           make: Factory) -> None:
    """One model entered in two races is one version; new bytes, new metadata or another
    name make a new one."""
    league = make.league(session)
    sprint = make.race(session, league, name="Sprint")
    endurance = make.race(session, league, name="Endurance")
    racer, rival = make.user(session), make.user(session, "rival")
    data = make.policy(1.0)

    def submit(race: Any, data: bytes, *, who: Any = racer, name: str = "",
               metadata: Any = None) -> Any:
        return submissions.submit_entry(session, storage, race, who, data, metadata,
                                        model_name=name, now=make.now).model

    first = submit(sprint, data)
    again = submit(endurance, data)
    assert (again.id, again.version) == (first.id, 1)
    assert submit(sprint, make.policy(2.0)).version == 2
    assert submit(endurance, data).id == first.id  # still the version it was
    assert submit(sprint, data, name="other").version == 1
    assert submit(sprint, data, who=rival).owner_id == rival.id
    wider = {**first.model_metadata, "action_space": {
        "steering_angle": {"low": -20.0, "high": 20.0}, "speed": {"low": 0.5, "high": 3.0}}}
    changed = submit(endurance, data, metadata=wider)
    assert changed.version == 3 and changed.model_metadata != first.model_metadata
    assert {e.model_id for e in sprint.entries[:1] + endurance.entries[:1]} == {first.id}


@pytest.mark.parametrize("when, message", [
    (dt.timedelta(days=-3), "opens at"),
    (dt.timedelta(days=30), "closed"),
])
def test_only_open_races_take_entries(session: Session, storage: Storage, make: Factory,
                                      when: dt.timedelta, message: str) -> None:
    race = make.race(session, opens_at=make.now - dt.timedelta(days=1),
                     closes_at=make.now + dt.timedelta(days=1))
    with pytest.raises(Conflict, match=message):
        submissions.submit_entry(session, storage, race, make.user(session), make.policy(),
                                 now=make.now + when)


def test_limits_per_day_and_in_total(session: Session, storage: Storage,
                                     make: Factory) -> None:
    race = make.race(session, max_entries_per_day=2, max_entries_total=3)
    racer = make.user(session)
    for _ in range(2):
        submissions.submit_entry(session, storage, race, racer, make.policy(), now=make.now)
    with pytest.raises(LimitExceeded, match="today"):
        submissions.submit_entry(session, storage, race, racer, make.policy(), now=make.now)
    tomorrow = make.now + dt.timedelta(days=1)
    submissions.submit_entry(session, storage, race, racer, make.policy(), now=tomorrow)
    with pytest.raises(LimitExceeded, match="all 3"):
        submissions.submit_entry(session, storage, race, racer, make.policy(),
                                 now=tomorrow + dt.timedelta(days=1))


def test_private_league_needs_membership(session: Session, storage: Storage,
                                         make: Factory) -> None:
    league = make.league(session, visibility=Visibility.PRIVATE)
    race = make.race(session, league)
    with pytest.raises(Forbidden, match="private"):
        submissions.submit_entry(session, storage, race, make.user(session), make.policy(),
                                 now=make.now)


def test_head_to_head_entries_wait_for_the_rounds(session: Session, storage: Storage,
                                                  make: Factory) -> None:
    race = make.race(session, format="head-to-head")
    entry = submissions.submit_entry(session, storage, race, make.user(session), make.policy(),
                                     now=make.now)
    assert entry.id is not None
    assert session.scalar(sa.select(sa.func.count(EvaluationJob.id))) == 0


def test_rerun_queues_a_new_job_where_a_rerun_makes_sense(session: Session, storage: Storage,
                                                         make: Factory) -> None:
    race = make.race(session)
    organizer = make.organizer(session, race.league)
    racer = make.user(session, "ann")
    entry = submissions.submit_entry(session, storage, race, racer, make.policy(), now=make.now)
    job = submissions.rerun_entry(session, entry, organizer)
    assert job.status == JobStatus.QUEUED and len(entry.jobs) == 2
    with pytest.raises(Forbidden):
        submissions.rerun_entry(session, entry, racer)
    race.status = "closed"
    with pytest.raises(Conflict, match="closed"):
        submissions.rerun_entry(session, entry, organizer)
    h2h = make.race(session, race.league, format="head-to-head", name="Duel")
    duel = submissions.submit_entry(session, storage, h2h, racer, make.policy(), now=make.now)
    with pytest.raises(Conflict, match="heats"):
        submissions.rerun_entry(session, duel, organizer)
    assert duel.jobs == []
