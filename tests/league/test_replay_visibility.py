"""league.read.replays: finding a replay, who may watch it, and what its page shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import league.models as m
from league.errors import NotFound
from league.read import replays
from league.rules import leagues
from tests.support import replays as sample

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from league.storage import Storage
    from tests.support.dbfixtures import Factory

DATA = b"\x1f\x8b not a real replay: these tests never decode it"


def private_trial(session: Session, storage: Storage, make: Factory) -> sample.TimeTrial:
    league = make.league(session, slug="secret", visibility="private")
    race = make.race(session, league, trials=2)
    return sample.time_trial(session, storage, make, DATA, race=race, trials=2)


def test_public_replays_are_public(session, storage, make) -> None:
    tt = sample.time_trial(session, storage, make, DATA)
    ctx = replays.get_replay(session, tt.replays[0].id, None)
    assert ctx.race.id == tt.race.id and ctx.entry is not None and ctx.entry.id == tt.entry.id
    assert [r.trial for r in ctx.trials] == [1, 2, 3]
    assert replays.can_view_replay(session, tt.replays[0], None)


def test_unlisted_league_replays_are_seen_with_the_link(session, storage, make) -> None:
    league = make.league(session, slug="quiet", visibility="unlisted")
    tt = sample.time_trial(session, storage, make, DATA, race=make.race(session, league))
    assert replays.get_replay(session, tt.replays[1].id, None).replay.trial == 2


def test_private_league_replays_only_for_members_and_admins(session, storage, make) -> None:
    tt = private_trial(session, storage, make)
    outsider = make.user(session, "eve")
    member = make.user(session, "bob")
    admin = make.user(session, "root", "admin")
    leagues.join_league(session, tt.race.league, member, tt.race.league.invite_code)
    replay_id = tt.replays[0].id
    for who in (None, outsider):
        with pytest.raises(NotFound):
            replays.get_replay(session, replay_id, who)
        with pytest.raises(NotFound):
            replays.job_replay(session, tt.job.id, who)
        assert not replays.can_view_replay(session, tt.replays[0], who)
    for who in (member, admin, make.organizer(session, tt.race.league)):
        assert replays.get_replay(session, replay_id, who).replay.id == replay_id
        assert replays.can_view_replay(session, tt.replays[0], who)


def test_job_replay_opens_on_the_ranked_trial(session, storage, make) -> None:
    tt = sample.time_trial(session, storage, make, DATA, ranked=3)
    ctx = replays.job_replay(session, tt.job.id)
    assert ctx.replay.trial == 3 and ctx.ranked_trial == 3
    assert replays.job_replay(session, tt.job.id, trial=1).replay.trial == 1
    with pytest.raises(NotFound, match="no replay of trial 4"):
        replays.job_replay(session, tt.job.id, trial=4)


def test_job_replay_without_a_ranked_trial_opens_on_the_first(session, storage, make) -> None:
    tt = sample.time_trial(session, storage, make, DATA, ranked=None)
    assert replays.job_replay(session, tt.job.id).replay.trial == 1
    session.delete(tt.replays[0])  # the ranked trial's replay is gone: the first one left
    tt.job.result.data = {**tt.job.result.data, "ranked_trial": 1}
    session.flush()
    assert replays.job_replay(session, tt.job.id).replay.trial == 2


def test_missing_replays_and_jobs(session, storage, make) -> None:
    race = make.race(session)
    result = make.result(session, make.entry(session, race, make.racer(session)),
                         job_status=m.JobStatus.QUEUED)
    with pytest.raises(NotFound):
        replays.job_replay(session, result.job_id)  # no replay yet
    with pytest.raises(NotFound):
        replays.job_replay(session, 999_999)
    with pytest.raises(NotFound):
        replays.get_replay(session, 999_999)


def test_time_trial_context(session, storage, make) -> None:
    tt = sample.time_trial(session, storage, make, DATA, ranked=2)
    ctx = replays.get_replay(session, tt.replays[1].id)
    assert not ctx.is_heat and ctx.trial_label == "Trial"
    (car,) = ctx.cars
    assert (car.racer, car.model, car.entry_id) == ("ada", "quick v1", tt.entry.id)
    assert (car.status, car.laps, car.total_time_s, car.off_track_count) == ("finished", 1,
                                                                              32.0, 1)
    assert ctx.labels == [{"name": "ada", "model": "quick v1"}]
    assert ctx.filename == f"race-{tt.race.id}-entry-{tt.entry.id}-trial-2.pdkreplay"


def test_heat_context_names_every_car_in_replay_order(session, storage, make) -> None:
    race = make.race(session, format="head-to-head")
    entries = [make.entry(session, race, make.racer(session, name)) for name in ("kim", "lee")]
    heat, job, rows = sample.heat(session, storage, make, DATA, entries[::-1])
    ctx = replays.job_replay(session, job.id)
    assert ctx.is_heat and ctx.trial_label == "Heat" and ctx.replay.trial == 1
    assert [(c.racer, c.position) for c in ctx.cars] == [("lee", 1), ("kim", 2)]
    assert ctx.filename == f"race-{race.id}-heat-{heat.id}-heat-1.pdkreplay"
    assert replays.get_replay(session, rows[1].id, None).replay.trial == 2


def test_heat_of_a_private_race_is_hidden(session, storage, make) -> None:
    league = make.league(session, slug="closed", visibility="private")
    race = make.race(session, league, format="head-to-head")
    entries = [make.entry(session, race, make.racer(session, name)) for name in ("kim", "lee")]
    _, job, rows = sample.heat(session, storage, make, DATA, entries)
    with pytest.raises(NotFound):
        replays.get_replay(session, rows[0].id, make.racer(session, "eve"))
    with pytest.raises(NotFound):
        replays.job_replay(session, job.id)
