"""Live events: a race's scheduled broadcast, its running order and when each run is on air.

The design is in docs/LIVE.md. An organizer schedules an event (:func:`schedule`) for a
head-to-head race's knockout finals (``finals``) or for the best runs of a time trial
(``showcase``). The scheduler's ``live-events`` job calls :func:`advance` every second, which
applies these rules, each once per event and in this order:

1. **Reminder.** Ten minutes before the start (:data:`REMIND_BEFORE`), or at once when it was
   scheduled closer to its start, the league's members are told (``live_event_soon``).
2. **Start.** At ``starts_at`` the event goes live. Finals: a race still open leaves its window
   now (:func:`league.rules.knockout.start_finals`); the scheduler then plans the bracket's
   first stage. Showcase: the running order is the leaderboard's best ``size`` entries at this
   moment, their ranking runs aired from the last of them to the leader. An event that cannot
   run (too few rated racers, no ranked entry, the race closed) is cancelled with the reason.
3. **Running order (finals).** Each knockout heat whose evaluation succeeded becomes one slot
   per heat it raced (the seat-swapped heats of a match), in bracket order; a heat still being
   raced holds the ones after it, so the order never changes; a heat whose evaluation gave up
   is skipped (the bracket gives the match to the better seed).
4. **On air.** Slots go on air one after another: a slot's ``on_air_at`` (its race time 0 on
   every viewer's clock) is the later of "now + the event's delay" and the previous slot's
   end plus :data:`INTERMISSION`.
5. **Aired.** A slot whose end has passed is aired. A heat is *held* until then: its finishing
   order is stored (:func:`league.rules.headtohead.record_heat`) only when its last slot has
   been aired, so the bracket, the race page, ratings and notifications learn the result at
   the moment spectators see it, and its replay is refused until then (:func:`heat_on_air`).
6. **Finished.** A showcase when every slot was aired; finals once the race has closed (the
   scheduler closes it, :func:`league.rules.seasons.advance_race`, when the final is decided)
   and every slot was aired.

While a finals event is scheduled, the race's knockout waits for it (:func:`holds_finals`);
while it is live, the race does not close before every raced heat has been aired
(:func:`broadcast_pending`). Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.race_settings import Format
from league.errors import Conflict, InvalidInput
from league.models import (
    AuditAction,
    EvaluationJob,
    Heat,
    JobStatus,
    LiveEvent,
    LiveEventKind,
    LiveEventStatus,
    LiveSlot,
    Race,
    RaceStatus,
    Replay,
    User,
)
from league.rules import audit, headtohead, knockout, notifications
from league.rules.leaderboard import race_leaderboard

TITLE_CHARS = 80  #: ``LiveEvent.title``'s column
MIN_DELAY_S, MAX_DELAY_S, DEFAULT_DELAY_S = 2, 30, 5  #: the broadcast delay, seconds
MIN_SHOWCASE, MAX_SHOWCASE = 2, 16  #: runs a showcase airs
INTERMISSION = dt.timedelta(seconds=8)  #: between the end of one slot and the next one's start
REMIND_BEFORE = dt.timedelta(minutes=10)  #: when members are told an event starts soon
SEGMENT_S = 1.0  #: race time per published segment
LEAD_S = 2.0  #: how far ahead of the live moment a segment is published
#: the events that are still to happen or happening
ACTIVE = (LiveEventStatus.SCHEDULED, LiveEventStatus.LIVE)

#: reads a stored replay's (frames, seconds between frames) by its sha256
ReplayLength = Callable[[str], tuple[int, float]]


@dataclass(frozen=True)
class Plan:
    """What an organizer asks for when scheduling (the form's and the API's fields)."""

    title: str
    kind: LiveEventKind
    starts_at: dt.datetime  #: naive UTC
    size: int = 0  #: showcase only
    delay_s: int = DEFAULT_DELAY_S


def check_plan(race: Race, plan: Plan, now: dt.datetime) -> None:
    """Raise :class:`InvalidInput` naming the first field of ``plan`` that ``race`` cannot
    take: the title (1–80 characters), the kind (finals need a head-to-head race with a
    knockout, a showcase a time trial), the start (not in the past; for finals any later time
    is fine, the knockout waits for it), the showcase size (2–16) and the delay (2–30 s)."""
    title = plan.title.strip()
    if not 1 <= len(title) <= TITLE_CHARS:
        raise InvalidInput(f"title: give the event a title of 1 to {TITLE_CHARS} characters")
    if plan.kind == LiveEventKind.FINALS and not knockout.has_knockout(race):
        raise InvalidInput("kind: live finals need a head-to-head race with a knockout "
                           "(a knockout size of 2 or more)")
    if plan.kind == LiveEventKind.SHOWCASE and race.format != Format.TIME_TRIAL:
        raise InvalidInput("kind: a showcase airs the best runs of a time trial; this race "
                           f"is {race.format}")
    if plan.starts_at < now.replace(microsecond=0):
        raise InvalidInput("starts_at: the start time is in the past")
    if plan.kind == LiveEventKind.SHOWCASE and not MIN_SHOWCASE <= plan.size <= MAX_SHOWCASE:
        raise InvalidInput(f"size: a showcase airs {MIN_SHOWCASE} to {MAX_SHOWCASE} runs")
    if not MIN_DELAY_S <= plan.delay_s <= MAX_DELAY_S:
        raise InvalidInput(f"delay_s: the broadcast delay is {MIN_DELAY_S} to {MAX_DELAY_S} s")


def schedule(session: Session, race: Race, user: User, plan: Plan,
             now: dt.datetime) -> LiveEvent:
    """Schedule a live event for ``race`` (the caller has checked ``user`` may manage it).

    A race has at most one event still to happen or happening (:class:`Conflict`); a closed
    race has none. The plan is checked by :func:`check_plan`; the action is audited.
    """
    if race.status == RaceStatus.CLOSED:
        raise Conflict(f"{race.name} has closed: there is nothing left to air")
    check_plan(race, plan, now)
    if active_event(session, race.id) is not None:
        raise Conflict(f"{race.name} already has a live event; cancel it first")
    event = LiveEvent(race_id=race.id, title=plan.title.strip(), kind=plan.kind,
                      size=plan.size if plan.kind == LiveEventKind.SHOWCASE else 0,
                      starts_at=plan.starts_at, delay_s=plan.delay_s,
                      status=LiveEventStatus.SCHEDULED, created_by=user.id, created_at=now)
    session.add(event)
    session.flush()
    audit.record(session, race.league_id, user, AuditAction.LIVE_EVENT_SCHEDULED,
                 f"live event {event.id} ({event.title}) of race {race.id} ({race.name})",
                 kind=str(plan.kind), starts_at=plan.starts_at.isoformat() + "Z",
                 size=event.size, delay_s=plan.delay_s)
    return event


def cancel(session: Session, event: LiveEvent, user: User, now: dt.datetime) -> None:
    """Call off an event before it starts (:class:`Conflict` once it is live or over)."""
    if event.status != LiveEventStatus.SCHEDULED:
        raise Conflict(f"the live event is {event.status}: only a scheduled one can be "
                       "cancelled")
    _cancel(event, "cancelled by the organizer", now)
    race = session.get_one(Race, event.race_id)
    audit.record(session, race.league_id, user, AuditAction.LIVE_EVENT_CANCELLED,
                 f"live event {event.id} ({event.title}) of race {race.id} ({race.name})")


def active_event(session: Session, race_id: int) -> LiveEvent | None:
    """The race's event that is scheduled or live, if any."""
    return session.scalars(sa.select(LiveEvent).where(LiveEvent.race_id == race_id,
                                                      LiveEvent.status.in_(ACTIVE))
                           .order_by(LiveEvent.id.desc()).limit(1)).first()


def holds_finals(session: Session, race: Race) -> bool:
    """Whether ``race``'s knockout waits for a scheduled finals event (rule 2)."""
    return session.scalar(sa.select(sa.exists().where(
        LiveEvent.race_id == race.id, LiveEvent.kind == LiveEventKind.FINALS,
        LiveEvent.status == LiveEventStatus.SCHEDULED))) or False


def _finals_under_way(race_id: int) -> sa.ColumnElement[bool]:
    return sa.exists().where(LiveEvent.race_id == race_id,
                             LiveEvent.kind == LiveEventKind.FINALS,
                             LiveEvent.status.in_(ACTIVE))


def held_heat(session: Session, heat: Heat) -> bool:
    """Whether ``heat``'s finishing order waits for its broadcast (rule 5): a knockout heat
    of a race whose finals event is scheduled or live."""
    if heat.stage == headtohead.ROUND_STAGE:
        return False
    return session.scalar(sa.select(_finals_under_way(heat.race_id))) or False


def broadcast_pending(session: Session, race: Race) -> bool:
    """Whether a raced knockout heat of ``race`` still waits for its broadcast: the race
    must not close before (rule 5)."""
    raced = sa.select(EvaluationJob.heat_id).where(EvaluationJob.status == JobStatus.SUCCEEDED)
    return session.scalar(sa.select(sa.exists().where(
        Heat.race_id == race.id, Heat.stage != headtohead.ROUND_STAGE,
        Heat.rated_at.is_(None), Heat.id.in_(raced))).where(
        _finals_under_way(race.id))) or False


def heat_on_air(session: Session, job: EvaluationJob) -> LiveEvent | None:
    """The live event whose broadcast ``job``'s heat waits for, if it does (its replay is
    refused until then)."""
    if job.heat_id is None:
        return None
    heat = session.get(Heat, job.heat_id)
    if heat is None or heat.rated_at is not None or heat.stage == headtohead.ROUND_STAGE:
        return None
    return session.scalars(sa.select(LiveEvent).where(
        LiveEvent.race_id == heat.race_id, LiveEvent.kind == LiveEventKind.FINALS,
        LiveEvent.status.in_(ACTIVE))).first()


# ------------------------------------------------------------------------------ the job
def advance(session: Session, replay_length: ReplayLength, now: dt.datetime) -> list[str]:
    """Apply rules 1–6 to every event that is scheduled or live; one line per change."""
    done: list[str] = []
    for event in session.scalars(sa.select(LiveEvent).where(LiveEvent.status.in_(ACTIVE))
                                 .order_by(LiveEvent.starts_at, LiveEvent.id)).all():
        race = session.get_one(Race, event.race_id)
        if event.status == LiveEventStatus.SCHEDULED:
            if event.reminded_at is None and now >= event.starts_at - REMIND_BEFORE:
                notifications.live_event_soon(session, race, event.id, event.title,
                                              event.starts_at, now)
                event.reminded_at = now
                done.append(f"event {event.id}: members told it starts soon")
            if now < event.starts_at:
                continue
            why = _start(session, event, race, replay_length, now)
            done.append(f"event {event.id}: " + (f"cancelled: {why}" if why else "live"))
            if why:
                continue
        if event.kind == LiveEventKind.FINALS:
            added = _add_heat_slots(session, event, replay_length)
            if added:
                done.append(f"event {event.id}: {added} slot(s) in the running order")
        aired = _air(session, event, now)
        if aired:
            done.append(f"event {event.id}: slot(s) {', '.join(map(str, aired))} aired")
        if _over(session, event, race, now):
            event.status, event.finished_at = LiveEventStatus.FINISHED, now
            done.append(f"event {event.id}: finished")
    session.flush()
    return done


def _cancel(event: LiveEvent, why: str, now: dt.datetime) -> None:
    event.status, event.note, event.finished_at = LiveEventStatus.CANCELLED, why, now


def _start(session: Session, event: LiveEvent, race: Race, replay_length: ReplayLength,
           now: dt.datetime) -> str:
    """Rule 2; the reason when the event cannot run (it is then cancelled), else ""."""
    why = ""
    if event.kind == LiveEventKind.FINALS:
        if race.status == RaceStatus.CLOSED:
            why = "the race closed before the event started"
        elif not knockout.start_finals(session, race, now):
            why = "too few rated racers for a knockout bracket"
    else:
        rows = [r for r in race_leaderboard(session, race) if r.rank is not None][:event.size]
        slots = []
        for n, row in enumerate(reversed(rows), start=1):
            job = session.get_one(EvaluationJob, row.job_id)
            replay = _ranked_replay(session, job)
            if replay is None:
                continue
            slots.append(_slot(event, n, f"P{row.rank} · {row.racer}", replay, None,
                               replay_length))
        if not slots:
            why = "the race has no ranked run with a replay to air"
        for k, slot in enumerate(slots, start=1):
            slot.position = k
            session.add(slot)
    if why:
        _cancel(event, why, now)
        return why
    event.status, event.started_at = LiveEventStatus.LIVE, now
    return ""


def _ranked_replay(session: Session, job: EvaluationJob) -> Replay | None:
    """The replay of the trial a time trial's result is ranked by (else its first)."""
    ranked = job.result.data.get("ranked_trial") if job.result is not None else None
    replays = session.scalars(sa.select(Replay).where(Replay.job_id == job.id)
                              .order_by(Replay.trial)).all()
    return next((r for r in replays if r.trial == ranked), replays[0] if replays else None)


def _slot(event: LiveEvent, position: int, title: str, replay: Replay, heat_id: int | None,
          replay_length: ReplayLength) -> LiveSlot:
    frames, step_s = replay_length(replay.sha256)
    return LiveSlot(event_id=event.id, position=position, title=title[:TITLE_CHARS],
                    job_id=replay.job_id, trial=replay.trial, heat_id=heat_id, frames=frames,
                    duration_s=max(frames - 1, 0) * step_s)


def _add_heat_slots(session: Session, event: LiveEvent, replay_length: ReplayLength) -> int:
    """Rule 3: the raced knockout heats not yet in the running order, in bracket order."""
    heats = session.scalars(sa.select(Heat).where(Heat.race_id == event.race_id,
                                                  Heat.stage != headtohead.ROUND_STAGE)
                            .order_by(Heat.round_no, Heat.id)).all()
    slotted = {s.heat_id for s in event.slots}
    position = max((s.position for s in event.slots), default=0)
    added = 0
    for heat in heats:
        if heat.id in slotted:
            continue
        job = session.scalars(sa.select(EvaluationJob).where(EvaluationJob.heat_id == heat.id)
                              .order_by(EvaluationJob.id.desc()).limit(1)).first()
        if job is None or job.status in headtohead.PENDING:
            break  # the running order waits for it
        if job.status != JobStatus.SUCCEEDED:
            continue
        replays = session.scalars(sa.select(Replay).where(Replay.job_id == job.id)
                                  .order_by(Replay.trial)).all()
        match = _match_title(session, heat)
        for replay in replays:
            position += 1
            title = match if len(replays) == 1 else \
                f"{match}, heat {replay.trial} of {len(replays)}"
            slot = _slot(event, position, title, replay, heat.id, replay_length)
            event.slots.append(slot)
            added += 1
    return added


def _match_title(session: Session, heat: Heat) -> str:
    """"Final", "Semifinal 2", ...: the stage and the match's number within it."""
    same = session.scalars(sa.select(Heat.id).where(Heat.race_id == heat.race_id,
                                                    Heat.round_no == heat.round_no,
                                                    Heat.stage == heat.stage)
                           .order_by(Heat.id)).all()
    name = heat.stage.replace("-", " ").capitalize()
    return name if len(same) == 1 else f"{name} {same.index(heat.id) + 1}"


def _air(session: Session, event: LiveEvent, now: dt.datetime) -> list[int]:
    """Rules 4 and 5: put the next slots on air, mark the ended ones aired and record the
    heats whose every slot has been aired. Returns the positions newly aired."""
    aired: list[int] = []
    previous: LiveSlot | None = None
    for slot in event.slots:
        if slot.on_air_at is None:
            if previous is not None and previous.on_air_at is None:
                break
            start = now + dt.timedelta(seconds=event.delay_s)
            if previous is not None and previous.on_air_at is not None:
                start = max(start, slot_end(previous) + INTERMISSION)
            slot.on_air_at = start.replace(microsecond=0) + dt.timedelta(seconds=1)
        if slot.aired_at is None and slot_end(slot) <= now:
            slot.aired_at = now
            aired.append(slot.position)
        previous = slot
    for heat_id in dict.fromkeys(s.heat_id for s in event.slots if s.heat_id is not None):
        mine = [s for s in event.slots if s.heat_id == heat_id]
        if all(s.aired_at is not None for s in mine):
            heat = session.get_one(Heat, heat_id)
            job = session.get_one(EvaluationJob, mine[0].job_id)
            if heat.rated_at is None and job.result is not None:
                headtohead.record_heat(session, heat, job.result.data, now)
    return aired


def slot_end(slot: LiveSlot) -> dt.datetime:
    """When ``slot``'s broadcast ends (it must be on air)."""
    assert slot.on_air_at is not None
    return slot.on_air_at + dt.timedelta(seconds=slot.duration_s)


def _over(session: Session, event: LiveEvent, race: Race, now: dt.datetime) -> bool:
    """Rule 6."""
    if event.status != LiveEventStatus.LIVE or \
            any(s.aired_at is None for s in event.slots):
        return False
    if event.kind == LiveEventKind.SHOWCASE:
        return True
    session.refresh(race, ["status"])
    return race.status == RaceStatus.CLOSED
