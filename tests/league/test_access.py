"""league.read.access: who sees an entry or an evaluation in full; the rest looks missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from league.errors import NotFound
from league.read import access
from league.rules import leagues
from tests.support import replays as sample

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from league.storage import Storage
    from tests.support.dbfixtures import Factory

DATA = b"\x1f\x8b not a real replay: these tests never decode it"


def test_an_entry_is_its_racers_and_the_organizers(session: Session, storage: Storage,
                                                   make: Factory) -> None:
    tt = sample.time_trial(session, storage, make, DATA)
    racer = tt.entry.racer
    organizer = make.organizer(session, tt.race.league)
    rival = make.user(session, "rival")
    leagues.join_league(session, tt.race.league, rival, tt.race.league.invite_code)
    for who in (racer, organizer):
        assert access.can_see_entry(session, tt.entry, who)
        assert access.visible_entry(session, tt.entry.id, who).id == tt.entry.id
        assert access.visible_job(session, tt.job.id, who).id == tt.job.id
    for who in (None, rival):  # a fellow member, even of a public league, sees results only
        assert not access.can_see_entry(session, tt.entry, who)
        with pytest.raises(NotFound, match=f"no entry {tt.entry.id}$"):
            access.visible_entry(session, tt.entry.id, who)
        with pytest.raises(NotFound, match=f"no evaluation job {tt.job.id}$"):
            access.visible_job(session, tt.job.id, who)


def test_hidden_and_missing_say_the_same(session: Session, storage: Storage,
                                         make: Factory) -> None:
    tt = sample.time_trial(session, storage, make, DATA)
    stranger = make.user(session, "eve")
    hidden = [str(err.value) for err in (
        pytest.raises(NotFound, access.visible_entry, session, tt.entry.id, stranger),
        pytest.raises(NotFound, access.visible_job, session, tt.job.id, stranger))]
    missing = [str(err.value) for err in (
        pytest.raises(NotFound, access.visible_entry, session, tt.entry.id + 99, stranger),
        pytest.raises(NotFound, access.visible_job, session, tt.job.id + 99, stranger))]
    assert [m.replace(str(tt.entry.id + 99), "N").replace(str(tt.job.id + 99), "N")
            for m in missing] == [h.replace(str(tt.entry.id), "N").replace(str(tt.job.id), "N")
                                  for h in hidden]


def test_a_heat_is_seen_by_whoever_sees_its_race(session: Session, storage: Storage,
                                                 make: Factory) -> None:
    public = make.race(session, format="head-to-head", name="Open heat")
    entries = [make.entry(session, public, make.racer(session, f"p{i}")) for i in range(2)]
    _, job, _ = sample.heat(session, storage, make, DATA, entries, heats=1)
    assert access.visible_job(session, job.id, None).id == job.id

    league = make.league(session, slug="secret", visibility="private")
    private = make.race(session, league, format="head-to-head", name="Closed heat")
    entries = [make.entry(session, private, make.racer(session, f"q{i}")) for i in range(2)]
    _, job, _ = sample.heat(session, storage, make, DATA, entries, heats=1)
    with pytest.raises(NotFound):
        access.visible_job(session, job.id, None)
    with pytest.raises(NotFound):
        access.visible_job(session, job.id, make.user(session, "eve"))
    member = make.user(session, "bob")
    leagues.join_league(session, league, member, league.invite_code)
    assert access.visible_job(session, job.id, member).id == job.id
