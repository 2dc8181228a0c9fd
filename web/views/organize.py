"""Organizer pages: create and manage leagues, divisions, seasons and members; join a league.

Races and their entries are in :mod:`web.views.organize_races` (a blueprint of its own, under
the same ``/organize`` prefix). Every page but "new league" and "join" is for the league's
organizers and admins only: anyone else gets a 404, as if the page did not exist.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from league.errors import Conflict, InvalidInput, LeagueError, NotFound
from league.models import League
from league.read import audit, browse
from league.rules import leagues, members
from web.helpers import (
    Page,
    managed_league,
    or_404,
    page_args,
    session,
    viewer,
)
from web.views.organize_forms import (
    LEAGUE_ERROR_FIELDS,
    SEASON_ERROR_FIELDS,
    ActionForm,
    DivisionForm,
    JoinForm,
    LeagueSettingsForm,
    MemberForm,
    NewLeagueForm,
    SeasonForm,
    attach_error,
    division_names,
)

bp = Blueprint("organize", __name__, url_prefix="/organize")
MEMBERS_PER_PAGE = 50
AUDIT_ON_LEAGUE_PAGE = 10  # latest audit events on a league's organizer page
NOT_AN_ORGANIZER = ("Only organizers can create leagues. Ask the site's administrator to make "
                    "your account an organizer.")


def _add_error(field: Any, err: LeagueError) -> None:
    field.errors = [*field.errors, str(err)]


@bp.route("/leagues/new", methods=["GET", "POST"])
@login_required
def new_league() -> str | Response:
    """Create a league, with its first divisions; its creator organizes it."""
    user = viewer()
    if user is None or not user.can_organize:
        abort(403, description=NOT_AN_ORGANIZER)
    form = NewLeagueForm()
    if form.validate_on_submit():
        slug = form.slug.data or leagues.slug_from_name(form.name.data or "")
        try:
            league = leagues.create_league(
                session(), user, slug, form.name.data or "", form.description.data or "",
                form.visibility.data or "", division_names(form.divisions.data or ""))
        except (Conflict, InvalidInput) as err:
            attach_error(form, str(err), LEAGUE_ERROR_FIELDS)
        else:
            session().commit()
            flash(f"League {league.name} created. Add a season and schedule a race.", "success")
            return redirect(url_for("organize.league", slug=league.slug))
    return render_template("organize/new_league.html", form=form)


def _manage_page(league: League, **forms: Any) -> str:
    """The manage page of ``league``; ``forms`` replace the blank ones (to show errors)."""
    page, per_page = page_args(MEMBERS_PER_PAGE)
    rows, total = members.list_members(session(), league, offset=(page - 1) * per_page,
                                       limit=per_page)
    member_forms = forms.pop("member_forms", {})
    for m in rows:
        if m.user_id not in member_forms:
            member_forms[m.user_id] = MemberForm(prefix=f"m{m.user_id}", formdata=None,
                                                 role=str(m.role), division=m.division_id or 0)
        member_forms[m.user_id].set_choices(league.divisions)
    rename_forms = forms.pop("rename_forms", {})
    for d in league.divisions:
        rename_forms.setdefault(d.id, DivisionForm(prefix=f"div{d.id}", formdata=None,
                                                   name=d.name))
    settings_form = forms.pop("settings_form", None) or LeagueSettingsForm(
        formdata=None, name=league.name, description=league.description,
        visibility=str(league.visibility), telemetry_public=league.telemetry_public)
    invite = _invite_link(league)
    return render_template(
        "organize/league.html", league=league, settings_form=settings_form,
        division_form=forms.pop("division_form", None) or DivisionForm(formdata=None),
        rename_forms=rename_forms, member_forms=member_forms, members=rows,
        member_page=Page(rows, page, per_page, total), action=ActionForm(),
        races=browse.league_races(session(), league), invite_link=invite,
        organizers=members.organizer_count(session(), league),
        show_invite=leagues.joins_by_invite(league),
        audit=audit.league_audit(session(), league, viewer(), limit=AUDIT_ON_LEAGUE_PAGE))


@bp.route("/leagues/<slug>/audit")
@login_required
def audit_log(slug: str) -> str:
    """The league's audit log: every organizer and admin action, newest first (``?page=``)."""
    league, user = managed_league(slug)
    page, per_page = page_args()
    events, total = audit.league_audit(session(), league, user, offset=(page - 1) * per_page,
                                       limit=per_page)
    return render_template("organize/audit.html", league=league,
                           events=Page(list(events), page, per_page, total))


def _invite_link(league: League) -> str:
    """The link that lets racers join ``league`` (its current invite code)."""
    return url_for("organize.join", slug=league.slug, code=league.invite_code, _external=True)


@bp.route("/leagues/<slug>", methods=["GET", "POST"])
@login_required
def league(slug: str) -> str | Response:
    """Manage a league: its settings (posted here), invite link, divisions, seasons, races
    and members."""
    league, user = managed_league(slug)
    form = LeagueSettingsForm()
    if form.validate_on_submit():
        try:
            leagues.update_league(session(), league, user, form.name.data or "",
                                  form.description.data or "", form.visibility.data or "",
                                  bool(form.telemetry_public.data))
        except InvalidInput as err:
            attach_error(form, str(err), LEAGUE_ERROR_FIELDS)
        else:
            session().commit()
            flash("League settings saved.", "success")
            return redirect(url_for("organize.league", slug=league.slug))
    return _manage_page(league, settings_form=form if request.method == "POST" else None)


@bp.route("/leagues/<slug>/invite", methods=["POST"])
@login_required
def reset_invite(slug: str) -> Response:
    """Make a new invite link; the old one stops working."""
    league, user = managed_league(slug)
    if ActionForm().validate_on_submit():
        leagues.reset_invite_code(session(), league, user)
        session().commit()
        flash("A new invite link is ready; the old one no longer works.", "success")
    return redirect(url_for("organize.league", slug=league.slug, _anchor="invite"))


@bp.route("/leagues/<slug>/divisions", methods=["POST"])
@login_required
def add_division(slug: str) -> str | Response:
    """Add a division below the others."""
    league, user = managed_league(slug)
    form = DivisionForm()
    if form.validate_on_submit():
        try:
            division = leagues.add_division(session(), league, user, form.name.data or "")
        except InvalidInput as err:
            _add_error(form.name, err)
        else:
            session().commit()
            flash(f"Division {division.name} added.", "success")
            return redirect(url_for("organize.league", slug=league.slug, _anchor="divisions"))
    return _manage_page(league, division_form=form)


@bp.route("/leagues/<slug>/divisions/<int:division_id>", methods=["POST"])
@login_required
def rename_division(slug: str, division_id: int) -> str | Response:
    """Rename a division."""
    league, user = managed_league(slug)
    division = or_404(leagues.get_division, session(), league, division_id)
    form = DivisionForm(prefix=f"div{division.id}")
    if form.validate_on_submit():
        try:
            leagues.rename_division(session(), division, user, form.name.data or "")
        except InvalidInput as err:
            _add_error(form.name, err)
        else:
            session().commit()
            flash(f"Division renamed to {division.name}.", "success")
            return redirect(url_for("organize.league", slug=league.slug, _anchor="divisions"))
    return _manage_page(league, rename_forms={division.id: form})


@bp.route("/leagues/<slug>/seasons/new", methods=["GET", "POST"])
@login_required
def new_season(slug: str) -> str | Response:
    """Create a season: dates, points table, promotion and relegation."""
    league, user = managed_league(slug)
    form = SeasonForm()
    if form.validate_on_submit():
        try:
            season = leagues.create_season(
                session(), league, user, form.name.data or "", form.starts_at.data,
                form.ends_at.data, form.points, form.promote.data or 0,
                form.relegate.data or 0, form.movement.data == "percent")
        except InvalidInput as err:
            attach_error(form, str(err), SEASON_ERROR_FIELDS)
        else:
            session().commit()
            flash(f"Season {season.name} created.", "success")
            return redirect(url_for("organize.league", slug=league.slug, _anchor="seasons"))
    return render_template("organize/new_season.html", league=league, form=form)


@bp.route("/leagues/<slug>/members/<int:user_id>", methods=["POST"])
@login_required
def member(slug: str, user_id: int) -> str | Response:
    """Change a member's role and division."""
    league, user = managed_league(slug)
    m = or_404(members.get_member, session(), league, user_id)
    form = MemberForm(prefix=f"m{user_id}")
    form.set_choices(league.divisions)
    if form.validate_on_submit():
        division = next((d for d in league.divisions if d.id == form.division.data), None)
        try:
            members.update_member(session(), user, m, form.role.data or "", division)
        except (Conflict, InvalidInput) as err:
            _add_error(form.division if "division" in str(err) else form.role, err)
        else:
            session().commit()
            flash(f"{m.user.name}: saved.", "success")
            return redirect(url_for("organize.league", slug=league.slug, _anchor="members"))
    return _manage_page(league, member_forms={user_id: form})


@bp.route("/leagues/<slug>/members/<int:user_id>/remove", methods=["POST"])
@login_required
def remove_member(slug: str, user_id: int) -> str | Response:
    """Remove a member from the league (never the last organizer)."""
    league, user = managed_league(slug)
    m = or_404(members.get_member, session(), league, user_id)
    name = m.user.name
    if ActionForm().validate_on_submit():
        try:
            new_code = members.remove_member(session(), user, m)
        except Conflict as err:
            form = MemberForm(prefix=f"m{user_id}", formdata=None, role=str(m.role),
                              division=m.division_id or 0)
            _add_error(form.role, err)
            return _manage_page(league, member_forms={user_id: form})
        session().commit()
        flash(f"{name} is no longer a member of {league.name}.", "success")
        if new_code is not None:
            flash("The invite link has changed, so the old one cannot bring them back; share "
                  f"the new link with racers still to join: {_invite_link(league)}", "success")
    return redirect(url_for("organize.league", slug=league.slug, _anchor="members"))


@bp.route("/join/<slug>", methods=["GET", "POST"])
@login_required
def join(slug: str) -> str | Response:
    """Join a league: a public one freely, unlisted and private ones with the current invite
    code (a stale or missing code: an error page that says so)."""
    user = viewer()
    assert user is not None
    form = JoinForm()
    code = request.args.get("code") or form.code.data or None
    try:
        league = leagues.get_league_to_join(session(), slug, user, code)
    except NotFound as err:
        abort(404, description=str(err))
    if leagues.membership(session(), league, user) is not None:
        return redirect(url_for("public.league", slug=league.slug))
    leagues.check_invite(league, code)  # Forbidden: the error page says what is missing
    if form.validate_on_submit():
        leagues.join_league(session(), league, user, code)
        session().commit()
        flash(f"Welcome to {league.name}!", "success")
        return redirect(url_for("public.league", slug=league.slug))
    form.code.data = code or ""
    return render_template("organize/join.html", league=league, form=form)

