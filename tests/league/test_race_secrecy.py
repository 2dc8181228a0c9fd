"""The rules of what a race keeps secret: who sees its seed and its track, the practice seed,
secret results, and the organizers changing it (audited)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import Conflict, Forbidden, InvalidInput
from league.models import AuditEvent, RaceStatus
from league.read.secrets import Secrets, race_secrets, shown_result
from league.rules import races, seasons


@pytest.mark.parametrize("status, seed_public, organizer, racer, visitor", [
    (RaceStatus.SCHEDULED, False, True, False, False),
    (RaceStatus.OPEN, False, True, False, False),
    (RaceStatus.FINALS, False, True, False, False),  # a knockout is still racing
    (RaceStatus.OPEN, True, True, True, True),
    (RaceStatus.CLOSED, False, True, True, True),
])
def test_who_sees_the_seed(session: Session, make: Any, status: RaceStatus, seed_public: bool,
                           organizer: bool, racer: bool, visitor: bool) -> None:
    race = make.race(session, seed=5, seed_public=seed_public)
    race.status = status
    org, ann = make.organizer(session, race.league), make.racer(session, "ann")
    admin = make.user(session, "root", "admin")
    assert races.seed_shown(session, race, org) is organizer
    assert races.seed_shown(session, race, admin) is organizer
    assert races.seed_shown(session, race, ann) is racer
    assert races.seed_shown(session, race, None) is visitor
    assert races.seed_secret(race) is not visitor


@pytest.mark.parametrize("status, mystery, hidden", [
    (RaceStatus.OPEN, True, True), (RaceStatus.SCHEDULED, True, True),
    (RaceStatus.FINALS, True, True), (RaceStatus.CLOSED, True, False),
    (RaceStatus.OPEN, False, False),
])
def test_who_sees_a_mystery_track(session: Session, make: Any, status: RaceStatus,
                                  mystery: bool, hidden: bool) -> None:
    race = make.race(session, mystery_track=mystery)
    race.status = status
    assert races.track_hidden(session, race, make.racer(session, "ann")) is hidden
    assert races.track_hidden(session, race, None) is hidden
    assert races.track_hidden(session, race, make.organizer(session, race.league)) is False
    assert races.track_secret(race) is hidden


def test_the_practice_seed_is_fixed_for_the_race_and_not_its_seed(session: Session,
                                                                    make: Any) -> None:
    one = make.race(session, seed=123)
    other = make.race(session, one.league, seed=123)
    assert races.practice_seed(one) == races.practice_seed(one)
    assert races.practice_seed(one) != races.practice_seed(other)
    assert races.practice_seed(one) != 123
    before = races.practice_seed(one)
    one.seed = 999  # the real seed does not move it: it tells nothing about the seed
    assert races.practice_seed(one) == before
    one.seed = before  # ... unless they would be equal
    assert races.practice_seed(one) != one.seed


def test_a_result_loses_its_seeds_and_track_only_as_far_as_hidden() -> None:
    stored = {"seed": 7, "track": "oval", "track_digest": "ab", "ranking_time_s": 30.0,
              "settings": {"seed": 7, "track": "oval", "laps": 1},
              "trials": [{"trial": 1, "seed": 11, "total_time_s": 30.0}],
              "cars": [{"trials": [{"seed": 11}]}]}
    assert shown_result(stored, Secrets(seed=False, track=False)) == stored
    seedless = shown_result(stored, Secrets(seed=True, track=False))
    assert seedless["seed"] is None and seedless["settings"]["seed"] is None
    assert seedless["trials"][0]["seed"] is None and seedless["cars"][0]["trials"][0] == {
        "seed": None}
    assert seedless["track"] == "oval" and seedless["trials"][0]["total_time_s"] == 30.0
    trackless = shown_result(stored, Secrets(seed=False, track=True))
    assert trackless["track"] is None and trackless["track_digest"] is None
    assert trackless["settings"]["track"] is None and trackless["seed"] == 7
    assert stored["seed"] == 7  # the stored result is left as it was


def test_organizers_publish_the_seed_and_hide_the_track_audited(session: Session,
                                                                 make: Any) -> None:
    race = make.race(session, seed=5, seed_public=False)
    org = make.organizer(session, race.league)
    make.entry(session, race, make.racer(session, "ann"))  # entries do not freeze secrecy
    assert race_secrets(session, race, None) == Secrets(seed=True, track=False)
    assert races.set_race_secrecy(session, race, org, seed_public=True,
                                  mystery_track=True) == ["seed_public", "mystery_track"]
    assert race_secrets(session, race, None) == Secrets(seed=False, track=True)
    event = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.details["changed"] == {
        "seed_public": [False, True], "mystery_track": [False, True]}
    assert races.set_race_secrecy(session, race, org) == []  # nothing given, nothing changed
    with pytest.raises(Forbidden):
        races.set_race_secrecy(session, race, make.racer(session, "bob"), seed_public=False)
    with pytest.raises(InvalidInput, match="seed_public must be true or false"):
        races.update_race(session, race, org, race.name, race.opens_at, race.closes_at,
                          seed_public="yes")
    seasons.close_race_now(session, race, org)
    with pytest.raises(Conflict):
        races.set_race_secrecy(session, race, org, seed_public=False)


def test_a_new_race_keeps_its_seed_secret_and_a_mystery_race_its_track_name(
        session: Session, make: Any) -> None:
    league = make.league(session)
    org = make.organizer(session, league)
    opens, closes = make.now, make.now + dt.timedelta(days=1)
    race = races.create_race(session, league, org, "", opens, closes, track="oval")
    assert race.seed_public is False and race.mystery_track is False and race.name == "oval"
    mystery = races.create_race(session, league, org, "", opens, closes, track="oval",
                                mystery_track=True)
    assert mystery.name == "Mystery track"
    created = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert created is not None and created.details["settings"]["mystery_track"] is True
