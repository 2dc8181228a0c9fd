"""The API of live events (docs/LIVE.md): schedule one for a race, list a race's events, read
one with its running order, cancel one. The rules are :mod:`league.rules.live`'s; the live
view's own JSON (index, heads, segments) is served by :mod:`web.views.live`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from league.errors import Forbidden
from league.models import LiveEvent, LiveEventKind, User, utcnow
from league.read import live as live_read
from league.rules import live, races
from league.rules.leagues import can_manage
from web.api.blueprint import api
from web.api.registry import Auth
from web.api.schemas import Request, Timestamp
from web.helpers import session


class LiveEventPlan(Request):
    title: str = Field(min_length=1, max_length=live.TITLE_CHARS)
    kind: Literal["finals", "showcase"] = Field(
        description="finals: the race's knockout (a head-to-head race with a knockout); "
                    "showcase: the best runs of a time trial")
    starts_at: Timestamp = Field(description="not in the past")
    size: int = Field(0, ge=0, le=live.MAX_SHOWCASE,
                      description=f"showcase: how many of the best runs it airs "
                                  f"({live.MIN_SHOWCASE}–{live.MAX_SHOWCASE}); ignored for "
                                  "finals")
    delay_s: int = Field(live.DEFAULT_DELAY_S, ge=live.MIN_DELAY_S, le=live.MAX_DELAY_S,
                         description="how far behind the simulation spectators watch")


class LiveSlotOut(BaseModel):
    n: int = Field(description="its place in the running order, from 1")
    title: str
    state: Literal["waiting", "on_air", "aired"]
    on_air_at: float | None = Field(description="epoch seconds of its race time 0; None "
                                                "until it is scheduled on air")
    duration_s: float
    replay: str | None = Field(description="its replay, once aired")


class LiveEventOut(BaseModel):
    id: int
    race_id: int
    title: str
    kind: Literal["finals", "showcase"]
    status: Literal["scheduled", "live", "finished", "cancelled"]
    note: str = Field(description="why it was cancelled, if it was")
    starts_at: Timestamp
    delay_s: int
    size: int
    page: str = Field(description="the event page")
    watch: str = Field(description="the live view")
    slots: list[LiveSlotOut] = Field(description="the running order so far")
    champion: str | None = Field(description="finals: the champion, once the final is aired")


class LiveEventList(BaseModel):
    items: list[LiveEventOut]


def _out(event: LiveEvent) -> LiveEventOut:
    index = live_read.event_index(session(), event, utcnow())
    return LiveEventOut(
        id=event.id, race_id=event.race_id, title=event.title, kind=event.kind,
        status=event.status, note=event.note, starts_at=event.starts_at,
        delay_s=event.delay_s, size=event.size, page=f"/events/{event.id}",
        watch=f"/events/{event.id}/watch",
        slots=[LiveSlotOut(n=s["n"], title=s["title"], state=s["state"],
                           on_air_at=s["on_air_at"], duration_s=s["duration_s"],
                           replay=s["replay"]) for s in index["slots"]],
        champion=index["champion"])


@api.route("/races/<int:race_id>/events", "POST", tag="races", auth=Auth.REQUIRED,
           body=LiveEventPlan, responses={201: LiveEventOut}, errors=(403, 404, 409))
def schedule_event(race_id: int, caller: User, body: LiveEventPlan
                   ) -> tuple[LiveEventOut, int]:
    """Schedule a live event for a race (its league's organizers; audited).

    Finals hold the race's knockout until the start and are raced there, heat by heat; a
    showcase airs the best runs of a time trial's leaderboard at the start. One event per race
    at a time (409); a closed race has none (409); the rules for each field are in the 400.
    """
    race = races.get_race(session(), race_id, caller)
    if not can_manage(session(), race.league, caller):
        raise Forbidden("only the league's organizers schedule its live events")
    event = live.schedule(session(), race, caller, live.Plan(
        body.title, LiveEventKind(body.kind), body.starts_at, body.size, body.delay_s),
        utcnow())
    session().commit()
    return _out(event), 201


@api.route("/races/<int:race_id>/events", tag="races", responses={200: LiveEventList},
           errors=(404,))
def race_events(race_id: int, caller: User | None) -> LiveEventList:
    """List a race's live events, newest first."""
    race = races.get_race(session(), race_id, caller)
    return LiveEventList(items=[_out(e) for e in live_read.race_events(session(), race)])


@api.route("/events/<int:event_id>", tag="races", responses={200: LiveEventOut},
           errors=(404,))
def get_event(event_id: int, caller: User | None) -> LiveEventOut:
    """Show a live event and its running order (a heat's replay once it has been aired)."""
    return _out(live_read.get_event(session(), event_id, caller))


@api.route("/events/<int:event_id>", "DELETE", tag="races", auth=Auth.REQUIRED,
           responses={200: LiveEventOut}, errors=(403, 404, 409))
def cancel_event(event_id: int, caller: User) -> LiveEventOut:
    """Cancel a live event before it starts (its league's organizers; audited); 409 once it
    is live or over."""
    event = live_read.get_event(session(), event_id, caller)
    if not can_manage(session(), event.race.league, caller):
        raise Forbidden("only the league's organizers cancel its live events")
    live.cancel(session(), event, caller, utcnow())
    session().commit()
    return _out(event)
