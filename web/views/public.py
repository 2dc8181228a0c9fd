"""Pages everyone sees without an account: home, leagues, seasons, racers.

The race page (:mod:`web.views.races`) and the tracks gallery (:mod:`web.views.tracks`) are
blueprints of their own. Nothing here writes: every page is a GET and works without
JavaScript. A private league, and everything in it, is a 404 for anyone who may not see it.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from markupsafe import Markup

from league.models import League, Season, utcnow
from league.read import browse, heats, live, matchups
from league.rules import accounts, leagues
from web import pagecache
from web.helpers import Page, get_league_or_404, or_404, page_args, session, viewer
from web.links import link_maker, links

bp = Blueprint("public", __name__)
LEAGUES_PER_PAGE = 20
HOME_RACES = 8  # featured, live and recent lists on the home page
PROFILE_HEATS = 5  # latest head-to-head heats on a racer profile


def viewer_role(league: League) -> dict[str, bool]:
    """What the viewer may do in ``league``: join it (without an invite link: public leagues
    only), manage it; whether they are a member."""
    user = viewer()
    if user is None:
        return {"member": False, "can_join": False, "can_manage": False}
    member = leagues.membership(session(), league, user) is not None
    return {"member": member, "can_join": not member and not leagues.joins_by_invite(league),
            "can_manage": leagues.can_manage(session(), league, user)}


@bp.route("/")
@pagecache.for_visitors
def home() -> str:
    """Featured (open) and live races, recent results, and how to take part."""
    user = viewer()
    s = session()
    return render_template(
        "public/home.html", featured=browse.open_races(s, user, utcnow(), HOME_RACES),
        live=browse.live_races(s, user, HOME_RACES),
        recent=browse.recent_results(s, user, HOME_RACES), links=links())


@bp.route("/leagues", endpoint="leagues")
def leagues_list() -> str:
    """The leagues listed for the viewer, newest first."""
    page, _ = page_args(LEAGUES_PER_PAGE)
    found, total = browse.listed_leagues(session(), viewer(), offset=(page - 1) *
                                         LEAGUES_PER_PAGE, limit=LEAGUES_PER_PAGE)
    return render_template("public/leagues.html",
                           leagues=Page(found, page, LEAGUES_PER_PAGE, total))


@bp.route("/leagues/<slug>")
@pagecache.for_visitors
def league(slug: str) -> str:
    """A league: divisions, the current season's standings, races, past seasons."""
    league = get_league_or_404(slug)
    s = session()
    seasons = browse.league_seasons(s, league)
    current = browse.current_season(seasons)
    return render_template(
        "public/league.html", league=league, **viewer_role(league), current=current,
        tables=standings_html(current) if current else [],
        races=browse.league_races(s, league), events=live.league_events(s, league.id, utcnow()),
        past=[x for x in seasons if current is None or x.id != current.id], links=links())


@bp.route("/leagues/<slug>/seasons/<int:season_id>")
@pagecache.for_visitors
def season(slug: str, season_id: int) -> str:
    """A season: standings per division, its races, the points table and movement rules."""
    league = get_league_or_404(slug)
    found = session().get(Season, season_id)
    if found is None or found.league_id != league.id:
        abort(404)
    return render_template(
        "public/season.html", league=league, season=found, tables=standings_html(found),
        races=browse.season_races(session(), found), links=links())


@bp.route("/racers/<name>")
def racer(name: str) -> str:
    """A racer's results, latest head-to-head heats, season points and leagues (those the
    viewer may see listed)."""
    user = or_404(accounts.get_user, session(), name)
    profile = browse.racer_profile(session(), user, viewer())
    duels = matchups.profile_matchups(session(), user.name, [r.race for r in profile.results])
    return render_template("public/racer.html", profile=profile,
                           heats=heats.racer_heats(session(), user, viewer(), PROFILE_HEATS),
                           duels=[(race, m, m.chart()) for race, m in duels])


def standings_html(season: Season) -> list[Markup]:
    """Each division's standings table of ``season``, rendered once per version."""
    def render(table: browse.DivisionTable) -> Markup:
        key = ("standings", season.id, table.division.id if table.division else None)
        return pagecache.cached_html(key, table.rows, lambda: render_template(
            "public/_standings.html", table=table,
            racer_url=link_maker("public.racer", "name")))

    return [render(t) for t in browse.season_tables(session(), season)]
