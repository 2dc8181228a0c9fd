"""Live events (league.rules.live): scheduling, the knockout held for the event, heats held
until their broadcast ends, the running order and its timing, a showcase, the reminder.

Domain tests on both backends, with real recorded replays in storage and the real delivery
path of a worker's result (``league.processes.evaluation.deliver``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import Conflict, InvalidInput, NotFound
from league.models import (
    AuditEvent,
    EvaluationJob,
    LiveEventKind,
    LiveEventStatus,
    Notification,
    NotificationEvent,
    RacePoints,
    RaceStatus,
)
from league.read import live as live_read
from league.read import replays
from league.rules import headtohead as h2h
from league.rules import live, notifications, seasons
from league.storage import Storage
from tests.support.live import knockout_heats, knockout_race, race_heat, tick
from tests.support.replays import field_drivers, record_replay, time_trial

if TYPE_CHECKING:
    from conftest import Factory

MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)
SEC = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def heat_replays(record_race: Any) -> list[bytes]:
    """Two real one-lap replays of two cars (a match's seat-swapped heats)."""
    return [record_replay(record_race, field_drivers(2), laps=1),
            record_replay(record_race, list(reversed(field_drivers(2))), laps=1)]


def _plan(starts_at: dt.datetime, **kw: Any) -> live.Plan:
    return live.Plan(kw.pop("title", "Finals night"), kw.pop("kind", LiveEventKind.FINALS),
                     starts_at, **kw)


# ------------------------------------------------------------------ scheduling

def test_scheduling_checks_each_field_and_keeps_one_event_per_race(session: Session,
                                                                   make: Factory) -> None:
    race, _ = knockout_race(session, make)
    organizer = make.organizer(session, race.league)
    soon = make.now + 20 * MIN
    bad = [(_plan(soon, title=" "), "title"),
           (_plan(soon, title="x" * 81), "title"),
           (_plan(make.now - MIN), "starts_at: the start time is in the past"),
           (_plan(soon, kind=LiveEventKind.SHOWCASE, size=4), "kind: a showcase airs"),
           (_plan(soon, delay_s=1), "delay_s"), (_plan(soon, delay_s=31), "delay_s")]
    for plan, says in bad:
        with pytest.raises(InvalidInput, match=says):
            live.schedule(session, race, organizer, plan, make.now)
    time_trial_race = make.race(session, race.league, name="TT")
    with pytest.raises(InvalidInput, match="kind: live finals need a head-to-head race"):
        live.schedule(session, time_trial_race, organizer, _plan(soon), make.now)
    with pytest.raises(InvalidInput, match="size: a showcase airs 2 to 16 runs"):
        live.schedule(session, time_trial_race, organizer,
                      _plan(soon, kind=LiveEventKind.SHOWCASE, size=17), make.now)

    event = live.schedule(session, race, organizer, _plan(soon), make.now)
    assert (event.status, event.kind, event.delay_s) == (LiveEventStatus.SCHEDULED,
                                                         LiveEventKind.FINALS, 5)
    with pytest.raises(Conflict, match="already has a live event"):
        live.schedule(session, race, organizer, _plan(soon), make.now)
    live.cancel(session, event, organizer, make.now)
    assert event.status == LiveEventStatus.CANCELLED
    with pytest.raises(Conflict, match="only a scheduled one can be cancelled"):
        live.cancel(session, event, organizer, make.now)
    live.schedule(session, race, organizer, _plan(soon), make.now)  # the slot is free again
    actions = [a.action for a in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-3:] == ["live_event_scheduled", "live_event_cancelled",
                            "live_event_scheduled"]


# ------------------------------------------------------------------ finals, the whole way

def test_live_finals_hold_the_knockout_and_each_heat_until_it_is_aired(
        session: Session, make: Factory, storage: Storage, heat_replays: list[bytes]) -> None:
    race, e = knockout_race(session, make)
    organizer = make.organizer(session, race.league)
    starts = make.now + 20 * MIN
    event = live.schedule(session, race, organizer, _plan(starts, delay_s=4), make.now)
    notifications.save_settings(session, e[0].racer, {
        str(NotificationEvent.LIVE_EVENT_SOON): ["email"]}, "", allow_private=False)

    # The window ends before the event: finals, but the bracket waits for the start.
    race.closes_at = make.now
    assert seasons.advance_race(session, race.id, make.now + SEC) == seasons.Step.WAITING
    assert race.status == RaceStatus.FINALS and knockout_heats(session, race) == []
    assert tick(session, storage, starts - 11 * MIN) == []
    assert tick(session, storage, starts - 10 * MIN) == [
        f"event {event.id}: members told it starts soon"]
    told = session.scalars(sa.select(Notification)).all()
    assert [(n.user_id, n.event) for n in told] == [(e[0].racer_id, "live_event_soon")]
    assert "Finals night" in notifications.message(told[0].payload)
    assert tick(session, storage, starts - MIN) == []  # told once
    assert knockout_heats(session, race) == []

    # The start: live, and the first stage is planned at once.
    tick(session, storage, starts)
    assert event.status == LiveEventStatus.LIVE and event.started_at == starts
    semis = knockout_heats(session, race)
    assert [h.stage for h in semis] == ["semifinal", "semifinal"]

    # Semifinal 2 is raced first: it waits for semifinal 1 in the running order.
    race_heat(session, storage, semis[1], e[2], heat_replays)
    assert semis[1].positions is None  # held for its broadcast
    tick(session, storage, starts + 2 * SEC)
    assert event.slots == []
    race_heat(session, storage, semis[0], e[3], heat_replays)
    t = starts + 3 * SEC
    tick(session, storage, t)
    slots = event.slots
    assert [s.title for s in slots] == ["Semifinal 1, heat 1 of 2", "Semifinal 1, heat 2 of 2",
                                        "Semifinal 2, heat 1 of 2", "Semifinal 2, heat 2 of 2"]
    duration = slots[0].duration_s
    assert 10.0 < duration < 60.0 and slots[0].frames == round(duration * 15) + 1
    # On air one after another: now + delay (to the next second), then end + intermission.
    assert slots[0].on_air_at == t + 5 * SEC
    for before, after in zip(slots, slots[1:], strict=False):
        assert after.on_air_at is not None and \
            after.on_air_at - live.slot_end(before) >= live.INTERMISSION
        assert after.on_air_at - live.slot_end(before) < live.INTERMISSION + SEC
    # Nothing about a heat is public before its broadcast ends: order, bracket, replay.
    job0 = session.get_one(EvaluationJob, slots[0].job_id)
    with pytest.raises(NotFound, match="its replay opens when its broadcast ends"):
        replays.job_replay(session, job0.id)
    index = live_read.event_index(session, event, live.slot_end(slots[1]) - SEC)
    assert [s["state"] for s in index["slots"]] == ["aired", "on_air", "waiting", "waiting"]
    assert index["bracket"][0]["matches"][0]["winner"] is None
    assert index["slots"][0]["replay"] is None  # not marked aired by the job yet

    end_semi1 = live.slot_end(slots[1])
    tick(session, storage, end_semi1)
    assert semis[0].positions == [e[3].id, e[0].id] and semis[1].positions is None
    assert replays.job_replay(session, job0.id).replay.trial == 1
    index = live_read.event_index(session, event, end_semi1)
    assert index["bracket"][0]["matches"][0]["winner"] == "r4"
    assert index["slots"][0]["replay"] == f"/evaluations/{job0.id}/replay?trial=1"
    assert len(knockout_heats(session, race)) == 2  # the final waits for semifinal 2

    end_semi2 = live.slot_end(slots[3])
    tick(session, storage, end_semi2)
    final = knockout_heats(session, race)[2]
    assert (final.stage, final.entry_ids) == ("final", [e[3].id, e[2].id])
    assert race.status == RaceStatus.FINALS
    race_heat(session, storage, final, e[2], heat_replays)
    tick(session, storage, end_semi2 + 2 * SEC)
    assert [s.title for s in event.slots][-2:] == ["Final, heat 1 of 2", "Final, heat 2 of 2"]
    assert race.status == RaceStatus.FINALS  # the race waits for the final's broadcast
    assert session.scalars(sa.select(RacePoints)).all() == []

    end = live.slot_end(event.slots[-1])
    tick(session, storage, end)
    assert race.status == RaceStatus.CLOSED
    assert {p.user_id: p.position for p in session.scalars(sa.select(RacePoints))} == {
        e[2].racer_id: 1, e[3].racer_id: 2, e[0].racer_id: 3, e[1].racer_id: 4}
    tick(session, storage, end + SEC)
    assert event.status == LiveEventStatus.FINISHED
    index = live_read.event_index(session, event, end + SEC)
    assert index["champion"] == "r3" and all(s["state"] == "aired" for s in index["slots"])


def test_an_event_that_cannot_run_is_cancelled_and_says_why(session: Session, make: Factory,
                                                            storage: Storage) -> None:
    race, _ = knockout_race(session, make, rated=1)  # one rated racer: no bracket
    event = live.schedule(session, race, make.organizer(session, race.league),
                          _plan(make.now + MIN), make.now)
    tick(session, storage, make.now + MIN)
    assert (event.status, event.note) == (LiveEventStatus.CANCELLED,
                                          "too few rated racers for a knockout bracket")
    assert race.status == RaceStatus.OPEN  # the race goes on as if nothing was scheduled


def test_a_rating_heat_is_never_held(session: Session, make: Factory, storage: Storage,
                                     heat_replays: list[bytes]) -> None:
    race, e = knockout_race(session, make)
    live.schedule(session, race, make.organizer(session, race.league),
                  _plan(make.now + MIN), make.now)
    (heat,) = h2h.create_heats(session, race, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                               [(e[0].id, e[1].id)], make.now)
    race_heat(session, storage, heat, e[1], heat_replays)
    assert heat.positions == [e[1].id, e[0].id]


# ------------------------------------------------------------------ showcase

def test_a_showcase_airs_the_best_runs_from_the_last_to_the_leader(
        session: Session, make: Factory, storage: Storage, record_race: Any) -> None:
    data = record_replay(record_race, field_drivers(1), laps=1)
    race = make.race(session, name="Sprint", trials=3)
    runs = [time_trial(session, storage, make, data, race=race,
                       racer=make.user(session, name)) for name in ("ada", "bo", "cy")]
    for k, run in enumerate(runs):  # ada fastest, then bo, then cy
        assert run.job.result is not None
        run.job.result.ranking_time_s = 30.0 + k
        run.job.result.ranking_laps = 1
    session.flush()
    event = live.schedule(session, race, make.organizer(session, race.league),
                          _plan(make.now + MIN, kind=LiveEventKind.SHOWCASE, size=2,
                                title="Top two"), make.now)
    tick(session, storage, make.now + MIN)
    assert event.status == LiveEventStatus.LIVE
    assert [(s.title, s.job_id, s.trial) for s in event.slots] == [
        ("P2 · bo", runs[1].job.id, 2), ("P1 · ada", runs[0].job.id, 2)]
    end = live.slot_end(event.slots[-1])
    tick(session, storage, end)
    assert event.status == LiveEventStatus.FINISHED
