"""Organizer pages for races: schedule and edit a race, close it early, re-run or disqualify
its entries. Under ``/organize``, like the league pages of :mod:`web.views.organize`; only
the league's organizers and admins see them (anyone else gets a 404)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from evaluator.race_settings import SOLO_FORMATS
from league.errors import Conflict, InvalidInput
from league.models import Entry, League, Race, RaceStatus, SeasonStatus, User, utcnow
from league.rules import knockout, live, races, seasons, submissions
from web.helpers import (
    Page,
    get_race_or_404,
    managed_league,
    or_404,
    page_args,
    require_manager_or_404,
    session,
)
from web.views.organize_forms import (
    ActionForm,
    CloseRaceForm,
    DisqualifyForm,
    RaceForm,
    attach_error,
)

bp = Blueprint("organize_races", __name__, url_prefix="/organize")
ENTRIES_PER_PAGE = 50


def _managed_race(race_id: int) -> tuple[Race, User]:
    """The race ``race_id`` and the viewer, if they manage its league; else 404."""
    race = get_race_or_404(race_id)
    return race, require_manager_or_404(race.league)


def _managed_entry(entry_id: int) -> tuple[Entry, User]:
    """The entry ``entry_id`` and the viewer, if they manage its race's league; else 404."""
    entry = or_404(submissions.get_entry, session(), entry_id)
    return entry, require_manager_or_404(entry.race.league)


def _race_form(league: League, race: Race | None = None) -> RaceForm:
    """The race form with the league's seasons and divisions (prefilled from ``race``)."""
    form = RaceForm(obj=race if race is not None and request.method == "GET" else None)
    form.set_choices(league.seasons, league.divisions)
    if request.method == "GET":
        form.fill_conditions(race.conditions if race is not None else None)
    if race is not None and request.method == "GET":
        form.season.data = race.season_id or 0
        form.divisions.data = [d.id for d in race.divisions]
        form.fill_tracks(race.extra_tracks)
        form.fill_bots(race.bots)
    return form


def _race_args(league: League, form: RaceForm) -> dict[str, Any]:
    """Keyword arguments of ``create_race``/``update_race`` from a validated form."""
    return dict(
        season=next((s for s in league.seasons if s.id == form.season.data), None),
        divisions=[d for d in league.divisions if d.id in (form.divisions.data or [])],
        **form.settings())


@bp.route("/leagues/<slug>/races/new", methods=["GET", "POST"])
@login_required
def new_race(slug: str) -> str | Response:
    """Schedule a race: every setting of the race engine, its window and who may enter."""
    league, user = managed_league(slug)
    form = _race_form(league)
    if request.method == "GET":
        # The running season, if there is one: most races belong to it.
        form.season.data = next((s.id for s in league.seasons
                                 if s.status == SeasonStatus.ACTIVE), 0)
    if form.validate_on_submit():
        try:
            race = races.create_race(session(), league, user, form.name.data or "",
                                       form.opens_at.data, form.closes_at.data,
                                       **_race_args(league, form))
        except InvalidInput as err:
            attach_error(form, str(err))
        else:
            session().commit()
            flash(f"Race {race.name} scheduled.", "success")
            return redirect(url_for("organize_races.race", race_id=race.id))
    return render_template("organize/race_form.html", league=league, form=form, race=None,
                           now=utcnow())


@bp.route("/races/<int:race_id>/edit", methods=["GET", "POST"])
@login_required
def edit_race(race_id: int) -> str | Response:
    """Change a race before it closes (settings that change results: only without entries)."""
    race, user = _managed_race(race_id)
    if race.status == RaceStatus.CLOSED:
        flash("This race is closed: its settings can no longer change.", "error")
        return redirect(url_for("organize_races.race", race_id=race.id))
    form = _race_form(race.league, race)
    if form.validate_on_submit():
        try:
            changed = races.update_race(session(), race, user, form.name.data or "",
                                          form.opens_at.data, form.closes_at.data,
                                          **_race_args(race.league, form))
        except (InvalidInput, Conflict) as err:
            attach_error(form, str(err))
        else:
            session().commit()
            flash("Race saved." if changed else "Nothing changed.", "success")
            return redirect(url_for("organize_races.race", race_id=race.id))
    return render_template("organize/race_form.html", league=race.league, form=form,
                           race=race, has_entries=races.entry_count(session(), race) > 0,
                           now=utcnow())


def _race_page(race: Race, **forms: Any) -> str:
    """The manage page of ``race``; ``forms`` replace the blank ones (to show errors)."""
    page, per_page = page_args(ENTRIES_PER_PAGE)
    rows, total = races.race_entries(session(), race, offset=(page - 1) * per_page,
                                       limit=per_page)
    dq_forms = forms.pop("dq_forms", {})
    for entry, _ in rows:
        dq_forms.setdefault(entry.id, DisqualifyForm(prefix=f"dq{entry.id}", formdata=None))
    return render_template(
        "organize/race.html", race=race, league=race.league, entries=Page(rows, page, per_page,
                                                                         total),
        dq_forms=dq_forms, action=ActionForm(), can_rerun=race.format in SOLO_FORMATS,
        finals=knockout.finals_plan(session(), race),
        live_event=live.active_event(session(), race.id),
        close_form=forms.pop("close_form", None) or CloseRaceForm(formdata=None))


@bp.route("/races/<int:race_id>")
@login_required
def race(race_id: int) -> str:
    """Manage a race: its settings, closing it early, its entries."""
    race, _ = _managed_race(race_id)
    return _race_page(race)


@bp.route("/races/<int:race_id>/close", methods=["POST"])
@login_required
def close_race(race_id: int) -> str | Response:
    """Close a race now: freeze its leaderboard and award its season points; a head-to-head
    race with a knockout goes to its finals first (:func:`league.rules.seasons.close_race_now`)."""
    race, user = _managed_race(race_id)
    if race.status == RaceStatus.CLOSED:
        flash("This race was already closed.")
        return redirect(url_for("organize_races.race", race_id=race.id))
    if race.status == RaceStatus.FINALS:
        flash("This race is already in its knockout finals; it closes when the final is decided.")
        return redirect(url_for("organize_races.race", race_id=race.id))
    form = CloseRaceForm()
    if not form.validate_on_submit():
        return _race_page(race, close_form=form)
    awarded = seasons.close_race_now(session(), race, user, utcnow())
    session().commit()
    if race.status == RaceStatus.FINALS:
        flash("Knockout finals started: the race closes and awards its season points when the "
              "final is decided.", "success")
    else:
        flash(f"Race closed; season points recorded for {len(awarded)} racers."
              if race.season_id else "Race closed.", "success")
    return redirect(url_for("organize_races.race", race_id=race.id))


@bp.route("/entries/<int:entry_id>/rerun", methods=["POST"])
@login_required
def rerun_entry(entry_id: int) -> Response:
    """Evaluate an entry again (a new job; its earlier results stay in the history)."""
    entry, user = _managed_entry(entry_id)
    if ActionForm().validate_on_submit():
        try:
            job = submissions.rerun_entry(session(), entry, user)
        except Conflict as err:
            flash(f"Entry {entry.id} was not re-run: {err}.", "error")
        else:
            session().commit()
            flash(f"Entry {entry.id} of {entry.racer.name} queued again (job {job.id}).",
                  "success")
    return redirect(url_for("organize_races.race", race_id=entry.race_id, _anchor=f"e{entry.id}"))


@bp.route("/entries/<int:entry_id>/disqualify", methods=["POST"])
@login_required
def disqualify_entry(entry_id: int) -> str | Response:
    """Disqualify an entry with a reason: it leaves the leaderboard."""
    entry, user = _managed_entry(entry_id)
    form = DisqualifyForm(prefix=f"dq{entry.id}")
    if form.validate_on_submit():
        try:
            submissions.disqualify_entry(session(), entry, user, form.reason.data or "")
        except InvalidInput as err:
            form.reason.errors = [*form.reason.errors, str(err)]
        else:
            session().commit()
            flash(f"Entry {entry.id} of {entry.racer.name} disqualified.", "success")
            return redirect(url_for("organize_races.race", race_id=entry.race_id,
                                    _anchor=f"e{entry.id}"))
    return _race_page(entry.race, dq_forms={entry.id: form})
