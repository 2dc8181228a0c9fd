"""The race page: settings, track drawing, and the leaderboard (time trial) or the rating
table and knockout bracket (head-to-head)."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from evaluator.race_settings import RANKING_LABELS, Format
from league.models import Race, RaceStatus, utcnow
from league.read import browse
from league.read.cache import race_leaderboard_cached
from league.rules import headtohead, knockout, leagues
from web import pagecache, trackdraw
from web.helpers import get_race_or_404, paginate, session, viewer
from web.links import link_maker, links

bp = Blueprint("races", __name__)
LEADERBOARD_PER_PAGE = 100


def race_actions(race: Race) -> dict[str, bool]:
    """Whether the viewer may enter the race now, and whether they manage it."""
    user = viewer()
    now = utcnow()
    open_now = race.status == RaceStatus.OPEN and race.opens_at <= now < race.closes_at
    return {"open_now": open_now, "can_enter": open_now and user is not None,
            "can_manage": leagues.can_manage(session(), race.league, user)}


@bp.route("/races/<int:race_id>")
@pagecache.for_visitors
def race(race_id: int) -> str:
    """A race: its rules, the track, and its leaderboard (``?page=``, 100 rows a page)."""
    # One query for the race, its league and season; kept referenced, so the lookup (which
    # checks who may see it) finds the race in the session instead of querying again.
    loaded = browse.race_for_page(session(), race_id)
    race = get_race_or_404(race_id)
    assert race is loaded
    track = trackdraw.find_track(race.track)
    ranking = RANKING_LABELS.get(race.ranking, (race.ranking, race.ranking))
    page_links = links()
    context = {"race": race, "league": race.league, "track": track,
               "track_version": trackdraw.version(track) if track else "",
               "ranking": ranking, "links": page_links, **race_actions(race)}
    if race.format == Format.HEAD_TO_HEAD:
        ratings = headtohead.rating_table(session(), race)
        bracket = knockout.knockout_bracket(session(), race) if race.knockout_size >= 2 \
            else None
        ids = [e for m in (bracket.stages[0].matches if bracket and bracket.stages else [])
               for e in m.entry_ids if e is not None]
        return render_template("public/race_h2h.html", ratings=ratings, bracket=bracket,
                               labels=browse.entry_labels(session(), ids), **context)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    board = race_leaderboard_cached(session(), race)
    rows = paginate(board, page, LEADERBOARD_PER_PAGE)
    html = pagecache.cached_html(("leaderboard", race.id, page), board, lambda: render_template(
        "public/_leaderboard.html", rows=rows, racer_url=page_links.racer, ranking=ranking,
        replay_url=link_maker("replays.job", "job_id", numeric=True)))
    return render_template("public/race.html", rows=rows, leaderboard=html, **context)
