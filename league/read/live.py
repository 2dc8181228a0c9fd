"""What the live event pages and the live view read: the index, slot heads and segments.

The rules (when a slot is on air, what is held) are :mod:`league.rules.live`'s; the timing
tower and the ticker are :class:`evaluator.race_timing.Broadcast`'s; docs/LIVE.md has the
JSON shapes. Three things make the live path cheap enough for hundreds of viewers polling
once a second:

* the index of an event is built at most once per :data:`INDEX_TTL_S` per process (its
  ``server_time`` is added per response, :func:`index_json`), and while it is that fresh an
  event of a league that is not private is answered without reading the database at all
  (:func:`public_index_json`);
* a slot's broadcast (the replay decoded, the tower and ticker computed) is built once per
  process and kept (:data:`_broadcasts`), and each segment's JSON bytes are kept too, so a
  segment request is a dictionary look-up once the slot is known;
* a slot whose start is known never changes, so its timing is kept per process and database
  (:class:`_Kept`) and a segment request touches the database only for a private league's
  membership check.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from evaluator import replay as replay_format
from evaluator.errors import ReplayError
from evaluator.race_timing import SEGMENT_FRAMES, Broadcast
from league.errors import NotFound, StorageError
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    LiveEvent,
    LiveEventKind,
    LiveEventStatus,
    LiveSlot,
    PolicyModel,
    Race,
    Replay,
    User,
    Visibility,
)
from league.read.cache import Lru
from league.rules import knockout
from league.rules.leagues import can_manage, can_view
from league.rules.live import LEAD_S, SEGMENT_S, ReplayLength
from league.storage import Storage

INDEX_TTL_S = 1.0  #: how long a process reuses an event's index
_CAR_NAME = re.compile(r"entry (\d+)")  # how the league names a car in a replay


def replay_length(storage: Storage) -> ReplayLength:
    """Reads a stored replay's (frames, seconds between frames), for the running order."""
    def length(sha256: str) -> tuple[int, float]:
        try:
            run = replay_format.decode(storage.get("replays", sha256))
        except ReplayError as err:
            raise StorageError(f"replay {sha256[:12]} cannot be read: {err}") from err
        return run.frames, run.dt
    return length


def epoch(moment: dt.datetime | None) -> float | None:
    """A naive UTC datetime as seconds since the epoch (what the live view computes with)."""
    return None if moment is None else moment.replace(tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class SlotTiming:
    """What a segment request needs of a slot, kept per process once the slot is on air."""

    slot_id: int
    event_id: int
    n: int  #: its position in the running order
    league_id: int
    public: bool  #: the league is not private: no per-request membership check
    on_air_at: float  #: epoch seconds
    sha256: str
    names: tuple[str, ...]
    final: bool


@dataclass
class _Kept:
    """What this process keeps of one database's events (keyed by engine, so two databases
    in one process never share an entry)."""

    slots: Lru[tuple[int, int], SlotTiming] = field(default_factory=lambda: Lru(512))
    #: event id → (built at, monotonic; the index; its league is not private)
    indexes: dict[int, tuple[float, dict[str, Any], bool]] = field(default_factory=dict)


_kept: weakref.WeakKeyDictionary[Engine, _Kept] = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()
# Keyed by what they are made of (the replay's sha256, the names, the slot): the same in
# every database.
_broadcasts: Lru[tuple[str, tuple[str, ...], bool], Broadcast] = Lru(16)
_segments: Lru[tuple[str, tuple[str, ...], bool, int, int], bytes] = Lru(4096)
_heads: Lru[tuple[str, tuple[str, ...]], bytes] = Lru(64)


def _kept_for(session: Session) -> _Kept:
    engine = session.connection().engine
    with _kept_lock:
        kept = _kept.get(engine)
        if kept is None:
            kept = _kept[engine] = _Kept()
        return kept


def get_event(session: Session, event_id: int, viewer: User | None) -> LiveEvent:
    """The event, if ``viewer`` may see its league (else :class:`NotFound`)."""
    event = session.get(LiveEvent, event_id)
    if event is None:
        raise NotFound(f"no live event {event_id}")
    race = session.get_one(Race, event.race_id)
    if not can_view(session, race.league, viewer):
        raise NotFound(f"no live event {event_id}")
    return event


def race_events(session: Session, race: Race) -> Sequence[LiveEvent]:
    """A race's live events, newest first."""
    return session.scalars(sa.select(LiveEvent).where(LiveEvent.race_id == race.id)
                           .order_by(LiveEvent.id.desc())).all()


RECENT = dt.timedelta(days=7)  #: how long a league page lists an event after it ended


@dataclass(frozen=True)
class EventLine:
    """An event as a league page lists it."""

    id: int
    title: str
    status: str
    starts_at: dt.datetime
    race_id: int
    race_name: str


def league_events(session: Session, league_id: int, now: dt.datetime) -> list[EventLine]:
    """A league's events still to come or under way, and those that ended within
    :data:`RECENT`, soonest first (cancelled ones are left out)."""
    return _lines(session, _LEAGUE_EVENTS, league_id, now)


def race_banner(session: Session, race_id: int, now: dt.datetime) -> tuple[EventLine, ...]:
    """What a race page says of the race's events: as :func:`league_events`, for one race."""
    return tuple(_lines(session, _RACE_EVENTS, race_id, now))


def _shown() -> sa.ColumnElement[bool]:
    """The events a league or race page lists: not cancelled, and not ended before
    ``:since`` (:func:`shown_since`)."""
    return sa.and_(LiveEvent.status != LiveEventStatus.CANCELLED,
                   sa.or_(LiveEvent.finished_at.is_(None),
                          LiveEvent.finished_at >= sa.bindparam("since")))


def shown_since(now: dt.datetime) -> dt.datetime:
    """The ``:since`` of :func:`shown_count`'s statement at ``now``."""
    return now - RECENT


def shown_count(race_id: sa.ColumnElement[int]) -> sa.ScalarSelect[int]:
    """How many events :func:`race_banner` lists for the race ``race_id``, as a column of
    another statement (a race page reads it with the race: no banner to read when 0). Its
    statement takes ``since``: :func:`shown_since`."""
    return (sa.select(sa.func.count(LiveEvent.id))
            .where(LiveEvent.race_id == race_id, _shown()).scalar_subquery())


#: an event line's columns (:class:`EventLine`)
_LineSelect = sa.Select[int, str, LiveEventStatus, dt.datetime, int, str]


def _event_lines(where: sa.ColumnElement[bool]) -> _LineSelect:
    """The statement :func:`_lines` runs: the events of the league or race ``:owner`` that
    a page lists (:func:`_shown`), soonest first."""
    return (sa.select(LiveEvent.id, LiveEvent.title, LiveEvent.status, LiveEvent.starts_at,
                      Race.id, Race.name)
            .join(Race, Race.id == LiveEvent.race_id)
            .where(where, _shown())
            .order_by(LiveEvent.starts_at, LiveEvent.id))


# Built once (every race page and league page reads them): a statement that is the same object
# on every call is neither built nor given a cache key again.
_LEAGUE_EVENTS = _event_lines(Race.league_id == sa.bindparam("owner"))
_RACE_EVENTS = _event_lines(Race.id == sa.bindparam("owner"))


def _lines(session: Session, statement: _LineSelect, owner: int,
           now: dt.datetime) -> list[EventLine]:
    rows = session.connection().execute(statement, {"owner": owner, "since": shown_since(now)})
    return [EventLine(*row) for row in rows]


def _labels(session: Session, entry_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """(racer name, "model vN") of each entry."""
    rows = session.execute(sa.select(Entry.id, User.name, PolicyModel.name, PolicyModel.version)
                           .join(User, User.id == Entry.racer_id)
                           .join(PolicyModel, PolicyModel.id == Entry.model_id)
                           .where(Entry.id.in_(list(entry_ids)))).all()
    return {eid: (racer, f"{model} v{version}") for eid, racer, model, version in rows}


def _slot_cars(session: Session, slot: LiveSlot) -> list[dict[str, Any]]:
    """The cars of a slot, in the replay's car order: racer, model and colour."""
    if slot.heat_id is not None:
        entry_ids = list(session.get_one(Heat, slot.heat_id).entry_ids)
    else:
        job = session.get_one(EvaluationJob, slot.job_id)
        entry_ids = [job.entry_id] if job.entry_id is not None else []
    labels = _labels(session, entry_ids)
    return [{"racer": labels.get(e, ("?", ""))[0], "model": labels.get(e, ("", "?"))[1],
             "color": i} for i, e in enumerate(entry_ids)]


def event_index(session: Session, event: LiveEvent, now: dt.datetime) -> dict[str, Any]:
    """The index of docs/LIVE.md, without ``server_time`` (see :func:`index_json`)."""
    race = session.get_one(Race, event.race_id)
    at = epoch(now) or 0.0
    slots = []
    for slot in event.slots:
        on_air = epoch(slot.on_air_at)
        state = "waiting"
        if on_air is not None and at >= on_air:
            state = "aired" if at >= on_air + slot.duration_s else "on_air"
        released = 0
        if on_air is not None:
            total = _segment_count(slot.frames)
            released = max(0, min(total, int((at - on_air + LEAD_S) // SEGMENT_S) + 1))
        slots.append({
            "n": slot.position, "title": slot.title, "state": state, "on_air_at": on_air,
            "duration_s": round(slot.duration_s, 3), "frames": slot.frames,
            "segments": _segment_count(slot.frames), "released": released,
            "replay": f"/evaluations/{slot.job_id}/replay?trial={slot.trial}"
            if state == "aired" and slot.aired_at is not None else None,
            "cars": _slot_cars(session, slot) if on_air is not None else [],
        })
    bracket: list[dict[str, Any]] = []
    champion = None
    if event.kind == LiveEventKind.FINALS and race.knockout_size >= knockout.MIN_ENTRANTS:
        drawn = knockout.knockout_bracket(session, race)
        labels = _labels(session, drawn.seeds)
        slot_of: dict[int | None, int] = {s.heat_id: s.position for s in event.slots
                                          if s.heat_id is not None}

        def name(entry_id: int | None) -> str | None:
            return None if entry_id is None else labels.get(entry_id, ("?", ""))[0]

        if event.status != LiveEventStatus.SCHEDULED:
            bracket = [{"stage": stage.name, "matches": [
                {"a": name(m.entry_ids[0]), "b": name(m.entry_ids[1]),
                 "winner": name(m.winner_id), "slot": slot_of.get(m.heat_id)}
                for m in stage.matches]} for stage in drawn.stages]
            champion = name(drawn.champion_id)
    return {"event": event.id, "title": event.title, "kind": str(event.kind),
            "status": str(event.status), "note": event.note,
            "starts_at": epoch(event.starts_at), "delay_s": event.delay_s,
            "segment_s": SEGMENT_S, "lead_s": LEAD_S, "race": race.id, "slots": slots,
            "bracket": bracket, "champion": champion}


def index_json(session: Session, event: LiveEvent, now: dt.datetime) -> bytes:
    """The index as the response body: built at most once per :data:`INDEX_TTL_S` in this
    process, with this moment's ``server_time``."""
    clock = time.monotonic()
    indexes = _kept_for(session).indexes
    kept = indexes.get(event.id)
    if kept is None or clock - kept[0] > INDEX_TTL_S:
        public = session.get_one(Race, event.race_id).league.visibility != Visibility.PRIVATE
        kept = (clock, event_index(session, event, now), public)
        indexes[event.id] = kept  # one assignment: safe between threads
    return _index_body(kept[1])


def public_index_json(session: Session, event_id: int) -> bytes | None:
    """The index of :func:`index_json` without reading the database, when this process built
    it less than :data:`INDEX_TTL_S` ago and the event's league was not private then (anyone
    may see it); else None, and the caller loads the event, checks the viewer may see it
    (:func:`get_event`) and calls :func:`index_json`. A league made private stops being
    answered this way within that second."""
    kept = _kept_for(session).indexes.get(event_id)
    if kept is None or not kept[2] or time.monotonic() - kept[0] > INDEX_TTL_S:
        return None
    return _index_body(kept[1])


def _index_body(index: dict[str, Any]) -> bytes:
    """A kept index with this moment's ``server_time``, as JSON bytes."""
    return json.dumps({**index, "server_time": round(time.time(), 3)},
                      separators=(",", ":")).encode()


def _segment_count(frames: int) -> int:
    return -(-frames // SEGMENT_FRAMES) if frames > 0 else 0


def slot_timing(session: Session, event_id: int, n: int) -> SlotTiming | None:
    """Slot ``n`` of the event once it is on air (kept from then on), else None."""
    slots = _kept_for(session).slots
    kept = slots.get((event_id, n))
    if kept is not None:
        return kept
    slot = session.scalars(sa.select(LiveSlot).where(LiveSlot.event_id == event_id,
                                                     LiveSlot.position == n)).first()
    if slot is None or slot.on_air_at is None:
        return None
    event = session.get_one(LiveEvent, event_id)
    race = session.get_one(Race, event.race_id)
    replay = session.scalars(sa.select(Replay).where(Replay.job_id == slot.job_id,
                                                     Replay.trial == slot.trial)).first()
    if replay is None:
        return None
    cars = _slot_cars(session, slot)
    final = slot.heat_id is not None and \
        session.get_one(Heat, slot.heat_id).stage == knockout.stage_name(2) and \
        _slot_is_last_of_final(session, slot)
    timing = SlotTiming(slot.id, event_id, n, race.league_id,
                        race.league.visibility != Visibility.PRIVATE,
                        epoch(slot.on_air_at) or 0.0, replay.sha256,
                        tuple(c["racer"] for c in cars), final)
    slots.put((event_id, n), timing)
    return timing


def _slot_is_last_of_final(session: Session, slot: LiveSlot) -> bool:
    """Whether ``slot`` is the last heat of its match (of the final: it ends with a
    champion)."""
    last = session.scalar(sa.select(sa.func.max(Replay.trial))
                          .where(Replay.job_id == slot.job_id))
    return slot.trial == last


def may_watch(session: Session, timing: SlotTiming, viewer: User | None) -> bool:
    """Whether ``viewer`` may watch the slot (its league is not private, or they may see it)."""
    if timing.public:
        return True
    event = session.get_one(LiveEvent, timing.event_id)
    return can_view(session, session.get_one(Race, event.race_id).league, viewer)


def _broadcast(storage: Storage, timing: SlotTiming) -> Broadcast:
    key = (timing.sha256, timing.names, timing.final)
    found = _broadcasts.get(key)
    if found is None:
        try:
            run = replay_format.decode(storage.get("replays", timing.sha256))
        except ReplayError as err:
            raise StorageError(f"the replay cannot be read: {err}") from err
        found = Broadcast(run, list(timing.names), final=timing.final)
        _broadcasts.put(key, found)
    return found


def head_bytes(storage: Storage, timing: SlotTiming) -> bytes:
    """Slot head JSON (track, obstacles, cars), published with the slot's start."""
    key = (timing.sha256, timing.names)
    found = _heads.get(key)
    if found is None:
        found = json.dumps(_broadcast(storage, timing).head(), separators=(",", ":")).encode()
        _heads.put(key, found)
    return found


def released(timing: SlotTiming, k: int, at: float) -> bool:
    """Whether segment ``k`` of the slot is published at epoch time ``at``: from
    ``on_air_at + k × SEGMENT_S − LEAD_S`` on (docs/LIVE.md)."""
    return at >= timing.on_air_at + k * SEGMENT_S - LEAD_S


def segment_bytes(storage: Storage, timing: SlotTiming, k: int) -> bytes:
    """Segment ``k``'s JSON (the caller checked :func:`released`); :class:`NotFound` past the
    slot's last segment."""
    key = (timing.sha256, timing.names, timing.final, timing.n, k)
    found = _segments.get(key)
    if found is None:
        cast = _broadcast(storage, timing)
        if not 0 <= k < cast.segments:
            raise NotFound(f"slot has {cast.segments} segments")
        found = json.dumps({"n": timing.n, **cast.segment(k)},
                           separators=(",", ":")).encode()
        _segments.put(key, found)
    return found


@dataclass(frozen=True)
class EventPage:
    """The event page: the index, the race, the entrants, what the viewer may do."""

    index: dict[str, Any]
    race: Race
    entrants: list[dict[str, Any]]
    can_manage: bool


def event_page(session: Session, event: LiveEvent, viewer: User | None,
               now: dt.datetime) -> EventPage:
    """What the event page shows (read fresh: it is not the hot path)."""
    race = session.get_one(Race, event.race_id)
    index = event_index(session, event, now)
    entrants: list[dict[str, Any]] = []
    if event.kind == LiveEventKind.FINALS and race.knockout_size >= knockout.MIN_ENTRANTS:
        drawn = knockout.knockout_bracket(session, race)
        labels = _labels(session, drawn.seeds)
        entrants = [{"racer": labels.get(e, ("?", ""))[0], "model": labels.get(e, ("", "?"))[1],
                     "seed": n} for n, e in enumerate(drawn.seeds, start=1)]
    else:
        seen: set[str] = set()
        for slot in event.slots:
            for car in _slot_cars(session, slot):
                if car["racer"] not in seen:
                    seen.add(car["racer"])
                    entrants.append({"racer": car["racer"], "model": car["model"],
                                     "seed": None})
    return EventPage(index, race, entrants, can_manage(session, race.league, viewer))
