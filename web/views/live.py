"""Live events: the event page, the live view, the streaming overlays, the live JSON the views
poll (docs/LIVE.md), and the organizer's form to schedule or cancel an event.

The live JSON is built for many viewers: the index is cached for a second (``max-age=1``)
and the slot heads and segments are immutable once published, so a CDN or nginx in front of
the site may serve them; :mod:`league.read.live` keeps all three in the process.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import DateTimeLocalField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from league.errors import Conflict, InvalidInput
from league.models import LiveEvent, LiveEventKind, Race, RaceStatus, utcnow
from league.read import live as live_read
from league.rules import live
from web.helpers import get_race_or_404, or_404, require_manager_or_404, session, storage, viewer

bp = Blueprint("live", __name__)
OVERLAY_PARTS = ("tower", "ticker", "car")
IMMUTABLE = "public, max-age=31536000, immutable"


def _event_or_404(event_id: int) -> LiveEvent:
    return or_404(live_read.get_event, session(), event_id, viewer())


def _page_ev(event: LiveEvent, index: dict[str, Any], race: Race) -> dict[str, Any]:
    """The index as the templates read it (docs/LIVE.md), with the race and the start."""
    return {**index, "starts_at_iso": event.starts_at.replace(microsecond=0).isoformat() + "Z",
            "server_time": round(time.time(), 3),
            "race": {"id": race.id, "name": race.name, "format": race.format,
                     "league": race.league.name,
                     "url": url_for("races.race", race_id=race.id)}}


@bp.route("/events/<int:event_id>")
def event(event_id: int) -> str:
    """The event page: countdown, running order or bracket, entrants; afterwards its record."""
    found = _event_or_404(event_id)
    page = live_read.event_page(session(), found, viewer(), utcnow())
    return render_template("live/event.html", ev=_page_ev(found, page.index, page.race),
                           entrants=page.entrants, can_manage=page.can_manage,
                           cancel_url=url_for("live.cancel", event_id=found.id))


@bp.route("/events/<int:event_id>/watch")
def watch(event_id: int) -> str:
    """The live view (plain JavaScript: web/static/js/live.js)."""
    found = _event_or_404(event_id)
    index = live_read.event_index(session(), found, utcnow())
    return render_template("live/watch.html", ev=_page_ev(found, index, found.race),
                           index_url=url_for("live.index_json", event_id=found.id))


@bp.route("/events/<int:event_id>/overlay/<part>")
def overlay(event_id: int, part: str) -> str:
    """One part of the live view alone, on a transparent background, for streaming software."""
    if part not in OVERLAY_PARTS:
        abort(404)
    found = _event_or_404(event_id)
    index = live_read.event_index(session(), found, utcnow())
    return render_template("live/overlay.html", ev=_page_ev(found, index, found.race),
                           part=part, index_url=url_for("live.index_json", event_id=found.id))


def _json(body: bytes, cache: str) -> Response:
    response = Response(body, content_type="application/json")
    response.headers["Cache-Control"] = cache
    return response


@bp.route("/events/<int:event_id>/live.json")
def index_json(event_id: int) -> Response:
    """The event's index: its slots, which are on air, the bracket (cached for a second; a
    public event's fresh index is answered without reading the database)."""
    body = live_read.public_index_json(session(), event_id)
    if body is None:
        body = live_read.index_json(session(), _event_or_404(event_id), utcnow())
    return _json(body, "public, max-age=1")


def _timing_or_404(event_id: int, n: int) -> live_read.SlotTiming:
    timing = live_read.slot_timing(session(), event_id, n)
    if timing is None or not live_read.may_watch(session(), timing, viewer()):
        abort(404, description=f"slot {n} of live event {event_id} is not on air yet")
    return timing


@bp.route("/events/<int:event_id>/live/<int:n>/head.json")
def head_json(event_id: int, n: int) -> Response:
    """Slot ``n``'s track, obstacles and cars (immutable once the slot's start is known)."""
    timing = _timing_or_404(event_id, n)
    return _json(live_read.head_bytes(storage(), timing), IMMUTABLE)


@bp.route("/events/<int:event_id>/live/<int:n>/<int:k>.json")
def segment_json(event_id: int, n: int, k: int) -> Response:
    """Segment ``k`` of slot ``n`` (one second of race time), from its publication time on."""
    timing = _timing_or_404(event_id, n)
    if not live_read.released(timing, k, time.time()):
        abort(404, description=f"segment {k} is not published yet")
    return _json(or_404(live_read.segment_bytes, storage(), timing, k), IMMUTABLE)


# ------------------------------------------------------------------------------ organizers
class LiveEventForm(FlaskForm):
    """Schedule a live event (the rules: :func:`league.rules.live.check_plan`)."""

    title = StringField("Title", validators=[DataRequired("give the event a title"),
                                             Length(max=live.TITLE_CHARS)])
    kind = SelectField("What it airs", choices=[
        SelectChoice(str(LiveEventKind.FINALS), "The knockout finals, raced live"),
        SelectChoice(str(LiveEventKind.SHOWCASE), "A showcase of the best runs")])
    starts_at = DateTimeLocalField("Starts", validators=[InputRequired(
        "give the start as a date and time (UTC)")], format="%Y-%m-%dT%H:%M",
        description="UTC")
    size = IntegerField("Runs (showcase)", default=8, validators=[NumberRange(
        live.MIN_SHOWCASE, live.MAX_SHOWCASE, "a showcase airs %(min)s to %(max)s runs")],
        description="showcase only: how many of the best runs it airs")
    delay_s = IntegerField("Broadcast delay (s)", default=live.DEFAULT_DELAY_S,
                           validators=[NumberRange(live.MIN_DELAY_S, live.MAX_DELAY_S,
                                                   "the delay is %(min)s to %(max)s s")],
                           description="how far behind the simulation spectators watch")


def _default_start() -> dt.datetime:
    """The next full hour, at least half an hour away."""
    soon = utcnow() + dt.timedelta(minutes=30)
    return soon.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)


@bp.route("/organize/races/<int:race_id>/live", methods=["GET", "POST"])
@login_required
def schedule(race_id: int) -> str | Response:
    """Schedule a live event for a race (its organizers and admins only)."""
    race = get_race_or_404(race_id)
    user = require_manager_or_404(race.league)
    form = LiveEventForm()
    if not form.is_submitted():
        form.kind.data = str(LiveEventKind.FINALS if race.knockout_size >= 2
                             else LiveEventKind.SHOWCASE)
        form.starts_at.data = _default_start()
        form.title.data = f"{race.name}: " + ("finals" if race.knockout_size >= 2
                                              else "showcase")
    error = ""
    showcase = form.kind.data == LiveEventKind.SHOWCASE
    if form.is_submitted() and (form.validate() or (not showcase and _only_size_wrong(form))):
        plan = live.Plan(form.title.data or "", LiveEventKind(form.kind.data),
                         form.starts_at.data, form.size.data or 0 if showcase else 0,
                         form.delay_s.data or 0)
        try:
            created = live.schedule(session(), race, user, plan, utcnow())
        except (InvalidInput, Conflict) as err:
            session().rollback()
            error = str(err)
        else:
            session().commit()
            flash(f"Live event scheduled: {created.title}.", "success")
            return redirect(url_for("live.event", event_id=created.id))
    events = live_read.race_events(session(), race)
    return render_template("live/schedule.html", race=race, league=race.league, form=form,
                           error=error, events=events,
                           closed=race.status == RaceStatus.CLOSED)


def _only_size_wrong(form: LiveEventForm) -> bool:
    """Whether the form's only error is the showcase size (which finals ignore)."""
    return set(form.errors) == {"size"}


@bp.route("/events/<int:event_id>/cancel", methods=["POST"])
@login_required
def cancel(event_id: int) -> Response:
    """Cancel a scheduled event."""
    found = _event_or_404(event_id)
    user = require_manager_or_404(found.race.league)
    form = FlaskForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("live.event", event_id=found.id))
    try:
        live.cancel(session(), found, user, utcnow())
    except Conflict as err:
        session().rollback()
        flash(str(err), "error")
    else:
        session().commit()
        flash("Live event cancelled.", "success")
    return redirect(url_for("live.event", event_id=found.id))
