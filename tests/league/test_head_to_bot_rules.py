"""Head-to-bot races in the league's rules: scheduled with their bots (refused without, or with
bad ones, nothing stored), evaluated like a time trial (one job per entry, re-runs, the
time-trial leaderboard), and their bots frozen once the race has entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from evaluator.race_settings import Format
from league.errors import Conflict, InvalidInput
from league.models import JobKind, JobStatus
from league.rules import races, submissions
from league.rules.leaderboard import race_leaderboard
from league.storage import Storage

if TYPE_CHECKING:
    from conftest import Factory

BOTS = [{"speed": 1.2}, {"speed": 2.0}]


def test_a_head_to_bot_race_keeps_its_bots(session: Session, make: Factory) -> None:
    race = make.race(session, format="head-to-bot", bots=BOTS)
    assert race.bots == BOTS and race.config()["bots"] == BOTS
    config = races.race_config(race)
    assert config.format == Format.HEAD_TO_BOT and config.bots == (1.2, 2.0)
    assert "bots" not in make.race(session, race.league).config()  # as before bots existed


@pytest.mark.parametrize(("settings", "message"), [
    ({"format": "head-to-bot"}, "bots: a head-to-bot race needs 1 to 6 bot cars"),
    ({"format": "head-to-bot", "bots": [{"speed": 5.0}]}, "bot 1's speed must be 0.5 to 4"),
    ({"format": "time-trial", "bots": BOTS}, "bots: only a head-to-bot race has bot cars"),
])
def test_bad_bots_are_refused(session: Session, make: Factory, settings: dict[str, object],
                              message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make.race(session, **settings)


def test_entries_are_evaluated_like_a_time_trial(session: Session, storage: Storage,
                                                 make: Factory) -> None:
    race = make.race(session, format="head-to-bot", bots=BOTS)
    racer = make.user(session)
    entry = submissions.submit_entry(session, storage, race, racer, make.policy(),
                                     now=make.now)
    (job,) = entry.jobs
    assert (job.kind, job.status) == (JobKind.TIME_TRIAL, JobStatus.QUEUED)
    again = submissions.rerun_entry(session, entry, make.organizer(session, race.league))
    assert again.kind == JobKind.TIME_TRIAL and again.id != job.id
    assert race_leaderboard(session, race) == []  # nothing evaluated yet


def test_the_bots_are_frozen_once_the_race_has_entries(session: Session, make: Factory) -> None:
    race = make.race(session, format="head-to-bot", bots=BOTS)
    organizer = make.organizer(session, race.league)
    assert races.update_race(session, race, organizer, race.name, race.opens_at,
                             race.closes_at, bots=[{"speed": 3.0}]) == ["bots"]
    make.entry(session, race, make.user(session))
    with pytest.raises(Conflict, match=r"\(bots\) can no longer change"):
        races.update_race(session, race, organizer, race.name, race.opens_at,
                          race.closes_at, bots=BOTS)
