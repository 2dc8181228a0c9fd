"""The cap on a racer's waiting evaluations (``submissions.check_queued``): what counts, and
that an upload past it is refused before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.config import DEFAULT_MAX_QUEUED_PER_RACER, ConfigError, Settings
from league.errors import LimitExceeded
from league.models import Entry, JobStatus, PolicyModel
from league.rules import headtohead, submissions
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Factory


def test_waiting_time_trials_count_across_races_and_leagues(session: Session,
                                                           make: Factory) -> None:
    ada = make.racer(session, "ada")
    here = make.race(session, make.league(session, slug="here"))
    there = make.race(session, make.league(session, slug="there"))
    jobs = [submissions.queue_evaluation(session, make.entry(session, race, ada))
            for race in (here, there, here)]
    with pytest.raises(LimitExceeded) as info:
        submissions.check_queued(session, ada, 3)
    assert str(info.value).startswith("you have 3 evaluations waiting or running")
    submissions.check_queued(session, ada, 4)
    submissions.check_queued(session, ada, None)  # no cap
    submissions.check_queued(session, ada, 0)  # no cap either
    submissions.check_queued(session, make.racer(session, "bob"), 1)  # another racer's own
    jobs[0].status = JobStatus.RUNNING  # running still waits for its result
    with pytest.raises(LimitExceeded):
        submissions.check_queued(session, ada, 3)
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        jobs[0].status = status
        submissions.check_queued(session, ada, 3)


def test_reruns_count_and_heats_do_not(session: Session, make: Factory) -> None:
    league = make.league(session)
    ada, bob = make.racer(session, "ada"), make.racer(session, "bob")
    race = make.race(session, league)
    entry = make.entry(session, race, ada)
    submissions.rerun_entry(session, entry, make.organizer(session, league))  # never refused
    duel = make.race(session, league, name="Duel", format="head-to-head")
    pair = (make.entry(session, duel, ada).id, make.entry(session, duel, bob).id)
    headtohead.create_heats(session, duel, headtohead.ROUND_STAGE, headtohead.ROUND_SEEDS, 1,
                            [pair, pair], make.now)
    submissions.check_queued(session, ada, 2)  # the re-run only
    with pytest.raises(LimitExceeded):
        submissions.check_queued(session, ada, 1)


def test_an_upload_past_the_cap_stores_nothing(session: Session, storage: Storage,
                                               make: Factory) -> None:
    ada = make.user(session, "ada")
    race = make.race(session)
    for _ in range(2):
        submissions.submit_entry(session, storage, race, ada, make.policy(), now=make.now,
                                 max_queued=2)
    with pytest.raises(LimitExceeded):
        submissions.submit_entry(session, storage, race, ada, make.policy(3.0), now=make.now,
                                 max_queued=2)
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 2
    assert session.scalar(sa.select(sa.func.count(PolicyModel.id))) == 1
    assert len([p for p in (storage.root / "models").rglob("*") if p.is_file()]) == 1


def test_the_cap_is_an_operator_setting(tmp_path: Path) -> None:
    base = {"SECRET_KEY": "x", "PADDOCK_INSTANCE_DIR": str(tmp_path)}
    assert Settings.from_env(base).max_queued_per_racer == DEFAULT_MAX_QUEUED_PER_RACER == 3
    assert Settings.from_env({**base, "PADDOCK_MAX_QUEUED_PER_RACER": "0"}) \
        .max_queued_per_racer == 0
    with pytest.raises(ConfigError, match="PADDOCK_MAX_QUEUED_PER_RACER must be a whole number"):
        Settings.from_env({**base, "PADDOCK_MAX_QUEUED_PER_RACER": "three"})
