"""The race page: settings, track drawing, and the leaderboard (time trial) or the rating
table, knockout bracket, podium and heats (head-to-head)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from evaluator.race_settings import RANKING_LABELS, Format
from league.models import Heat, Race, RaceStatus, utcnow
from league.read import browse, heats
from league.read.cache import race_leaderboard_cached
from league.rules import headtohead, knockout, leagues
from web import pagecache, trackdraw
from web.helpers import Page, get_race_or_404, paginate, session, viewer
from web.links import link_maker, links

bp = Blueprint("races", __name__)
LEADERBOARD_PER_PAGE = 100
HEATS_PER_PAGE = 50


@bp.app_template_filter("heat_title")
def heat_title(heat: Heat) -> str:
    """A heat's title on any page ("Round 3", "Semifinal"): :func:`heats.heat_title`."""
    return heats.heat_title(heat.round_no, heat.stage)


def race_actions(race: Race) -> dict[str, bool]:
    """Whether the viewer may enter the race now, and whether they manage it."""
    user = viewer()
    now = utcnow()
    open_now = race.status == RaceStatus.OPEN and race.opens_at <= now < race.closes_at
    return {"open_now": open_now, "can_enter": open_now and user is not None,
            "can_manage": leagues.can_manage(session(), race.league, user)}


@bp.route("/races/<int:race_id>")
def race(race_id: int) -> str:
    """A race: its rules, the track, and its leaderboard (``?page=``, 100 rows a page), or
    its ratings, bracket and heats (``?page=``, ``?racer=``)."""
    if request.args.get("racer"):  # kept pages are keyed by ?page= alone: never keep these
        return _race_page(race_id)
    return _kept_race_page(race_id)


def _race_page(race_id: int) -> str:
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
    page = max(1, request.args.get("page", 1, type=int) or 1)
    if race.format == Format.HEAD_TO_HEAD:
        return _head_to_head(race, page, context)
    board = race_leaderboard_cached(session(), race)
    rows = paginate(board, page, LEADERBOARD_PER_PAGE)
    html = pagecache.cached_html(("leaderboard", race.id, page), board, lambda: render_template(
        "public/_leaderboard.html", rows=rows, racer_url=page_links.racer, ranking=ranking,
        replay_url=link_maker("replays.job", "job_id", numeric=True),
        leader_job=board[0].job_id if board and board[0].rank == 1 else None))
    return render_template("public/race.html", rows=rows, leaderboard=html, **context)


_kept_race_page = pagecache.for_visitors(_race_page)


def _head_to_head(race: Race, page: int, context: dict[str, Any]) -> str:
    """A head-to-head race: ratings, bracket (matches link their replays), podium, heats."""
    ratings = headtohead.rating_table(session(), race)
    bracket = knockout.knockout_bracket(session(), race) if race.knockout_size >= 2 else None
    matches = [m for s in (bracket.stages if bracket else []) for m in s.matches]
    ids = [e for m in (bracket.stages[0].matches if bracket and bracket.stages else [])
           for e in m.entry_ids if e is not None]
    racer = (request.args.get("racer") or "").strip()[:40]
    rows, total = heats.race_heats(session(), race, racer=racer or None, page=page,
                                   per_page=HEATS_PER_PAGE)
    return render_template(
        "public/race_h2h.html", ratings=ratings, bracket=bracket,
        labels=browse.entry_labels(session(), ids), podium=heats.podium(session(), race),
        match_jobs=heats.heat_jobs(session(), [m.heat_id for m in matches if m.heat_id]),
        heats=Page(rows, page, HEATS_PER_PAGE, total), racer=racer, **context)
