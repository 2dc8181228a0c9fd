"""Tracks, leagues, seasons and the caller."""

from __future__ import annotations

from evaluator.track_library import iter_tracks
from league.models import User
from league.read import audit, browse
from league.rules import leagues
from web.api import present
from web.api import schemas as s
from web.api.blueprint import api
from web.api.registry import Auth
from web.helpers import Page, page_args, paginate, session


@api.route("/tracks", tag="tracks", auth=Auth.NONE, query=s.PageQuery,
           responses={200: s.TrackList})
def tracks(query: s.PageQuery) -> s.TrackList:
    """List every track races can be run on: the library first, then imported ones."""
    page = paginate([present.track(t) for t in iter_tracks()], *page_args())
    return s.TrackList(items=list(page.items), pagination=present.pagination(page))


@api.route("/leagues", tag="leagues", query=s.PageQuery, responses={200: s.LeagueList})
def list_leagues(caller: User | None, query: s.PageQuery) -> s.LeagueList:
    """List the leagues listed for the caller: public ones, and those they are a member of."""
    page, per_page = page_args()
    found, total = browse.listed_leagues(session(), caller, offset=(page - 1) * per_page,
                                         limit=per_page)
    return s.LeagueList(items=[present.league_summary(x) for x in found],
                        pagination=present.pagination(Page(found, page, per_page, total)))


@api.route("/leagues/<slug>", tag="leagues", responses={200: s.League}, errors=(404,))
def get_league(slug: str, caller: User | None) -> s.League:
    """Show a league: divisions, seasons, and what the caller may do in it.

    Unlisted leagues are shown to anyone with the slug; private ones to members only.
    """
    return present.league_detail(session(), leagues.get_league(session(), slug, caller), caller)


@api.route("/leagues", "POST", tag="leagues", auth=Auth.REQUIRED, body=s.LeagueCreate,
           responses={201: s.League}, errors=(403, 409))
def create_league(caller: User, body: s.LeagueCreate) -> tuple[s.League, int]:
    """Create a league (organizers); the caller becomes its organizer."""
    league = leagues.create_league(session(), caller, body.slug, body.name, body.description,
                                   body.visibility, body.divisions)
    session().commit()
    return present.league_detail(session(), league, caller), 201


@api.route("/leagues/<slug>/seasons", "POST", tag="leagues", auth=Auth.REQUIRED,
           body=s.SeasonCreate, responses={201: s.Season}, errors=(403, 404))
def create_season(slug: str, caller: User, body: s.SeasonCreate) -> tuple[s.Season, int]:
    """Add a season to a league (its organizers): dates, points table, promotion and
    relegation."""
    league = leagues.get_league(session(), slug, caller)
    season = leagues.create_season(session(), league, caller, body.name, body.starts_at,
                                   body.ends_at, body.points_table, body.promote,
                                   body.relegate, body.movement_in_percent)
    session().commit()
    return present.season(season, league), 201


@api.route("/leagues/<slug>/audit", tag="leagues", auth=Auth.REQUIRED, query=s.PageQuery,
           responses={200: s.AuditLog}, errors=(403, 404))
def league_audit(slug: str, caller: User, query: s.PageQuery) -> s.AuditLog:
    """The league's audit log (its organizers and admins): who disqualified, re-ran, closed,
    removed, changed or rotated what, when and why, newest first."""
    league = leagues.get_league(session(), slug, caller)
    page, per_page = page_args()
    events, total = audit.league_audit(session(), league, caller,
                                       offset=(page - 1) * per_page, limit=per_page)
    return s.AuditLog(items=[s.AuditEvent.model_validate(e) for e in events],
                      pagination=present.pagination(Page(list(events), page, per_page, total)))


@api.route("/me", tag="me", auth=Auth.REQUIRED, responses={200: s.Me})
def me(caller: User) -> s.Me:
    """Show the user the token belongs to."""
    return present.me(caller)
