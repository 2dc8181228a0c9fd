"""The race page: settings, track drawing, and the leaderboard (time trial) or the rating
table, knockout bracket, podium and heats (head-to-head)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, get_template_attribute, render_template, request
from markupsafe import Markup

from evaluator.race_settings import RANKING_LABELS, Format
from league.models import Heat, Race, RaceStatus, utcnow
from league.read import browse, cache, heats, live, secrets
from league.read.cache import race_leaderboard_cached
from league.rules import knockout, leagues, submissions
from web import pagecache, trackdraw
from web.helpers import Page, get_race_or_404, paginate, session, viewer
from web.links import link_maker, links

bp = Blueprint("races", __name__)
LEADERBOARD_PER_PAGE = 100
HEATS_PER_PAGE = 50
RACE_COLUMNS = [c.key for c in Race.__mapper__.column_attrs]  # what a race page may show


@bp.app_template_filter("heat_title")
def heat_title(heat: Heat) -> str:
    """A heat's title on any page ("Round 3", "Semifinal"): :func:`heats.heat_title`."""
    return heats.heat_title(heat.round_no, heat.stage)


def race_actions(race: Race) -> dict[str, Any]:
    """Whether the viewer may enter the race now (else why not, for a signed-in racer), and
    whether they manage it."""
    user = viewer()
    now = utcnow()
    open_now = race.status == RaceStatus.OPEN and race.opens_at <= now < race.closes_at
    # one read of the viewer's membership answers both questions
    member = leagues.membership(session(), race.league, user)
    refusal = submissions.eligibility_refusal(race, member) if open_now and user else ""
    return {"open_now": open_now, "can_enter": open_now and user is not None and not refusal,
            "enter_refusal": refusal,
            "can_manage": user is not None and leagues.manages(user, member)}


@bp.route("/races/<int:race_id>")
def race(race_id: int) -> str:
    """A race: its rules, the track, and its leaderboard (``?page=``, 100 rows a page), or
    its ratings, bracket and heats (``?page=``, ``?racer=``)."""
    return _kept_race_page(race_id)


def _race_page(race_id: int) -> str:
    # One query for the race, its league and season; kept referenced, so the lookup (which
    # checks who may see it) finds the race in the session instead of querying again.
    loaded = browse.race_for_page(session(), race_id)
    race = get_race_or_404(race_id)
    assert race is loaded
    page = pagecache.page_number()
    actions = race_actions(race)
    if race.format == Format.HEAD_TO_HEAD:
        body = _head_to_head(race, page, actions)
    else:
        body = _time_trial(race, page, actions)
    return render_template("public/race.html", race=race, body=body,
                           live_events=live.race_banner(session(), race.id, utcnow()))


def _race_values(race_id: int) -> object:
    """Everything a race page shows besides the viewer's session, read without loading the
    race through the ORM (:func:`pagecache.for_viewers` serves the page it kept while these
    are equal): the race's, league's, season's, divisions' rows and the viewer's user row
    and membership (:func:`browse.race_state`; every action, secret and header line is
    decided from them), its live events, whether the race has opened and closed by now, its
    tracks, the
    leaderboard or the heat list, rating table and bracket as the league's caches hand them
    out now (compared as the very objects), the page and the URL. None when one of those
    would have to be computed (the page is then rendered, and kept from the next view on),
    when there is no such race, and for a closed head-to-head race (its podium is read on
    every view)."""
    s = session()
    now = utcnow()
    state = browse.race_state(s, race_id, pagecache.session_user_id(), now)
    if state is None:
        return None
    sources: tuple[object, ...]
    if state.format == Format.HEAD_TO_HEAD:
        if state.status == RaceStatus.CLOSED:
            return None
        racer = pagecache.racer_filter()
        kept = heats.race_heats_current(s, state, racer=racer or None,
                                        page=pagecache.page_number(), per_page=HEATS_PER_PAGE)
        ratings = cache.rating_table_current(s, state)
        bracket = cache.knockout_bracket_current(s, state) if state.knockout_size >= 2 \
            else None
        if kept is None or ratings is None or (bracket is None and state.knockout_size >= 2):
            return None
        sources = (pagecache.Same(kept), pagecache.Same(ratings), pagecache.Same(bracket))
    else:
        board = cache.race_leaderboard_current(s, state)
        if board is None:
            return None
        sources = (pagecache.Same(board),)
    banner = live.race_banner(s, race_id, now) if state.events_shown else ()
    return (state, sources, banner,
            now >= state.opens_at, now >= state.closes_at,
            _tracks_shown(state.track, state.extra_tracks), request.full_path,
            request.url_root)


_kept_race_page = pagecache.for_visitors(
    pagecache.for_viewers(_race_page, _race_values, by_racer=True), by_racer=True)


def _shown(race: Race, page: int, actions: dict[str, Any]) -> tuple[Any, ...]:
    """Everything the part of a race page below the site's header shows besides its tables:
    the race's columns, its league and season, its track, the viewer's actions, the page.
    Whatever ``_race_info.html`` or ``_race_time_trial.html`` come to show must be here, or
    a kept copy would go on showing the old value."""
    season = race.season
    return (tuple(getattr(race, key) for key in RACE_COLUMNS), race.league.slug,
            race.league.name, (season.id, season.name) if season else None,
            _tracks_shown(race.track, race.extra_tracks),
            tuple(actions.items()), page, request.path, request.url_root)


def _tracks_shown(name: str, extra_tracks: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    """What a race page shows of the race's tracks (the files on disk may change): each
    one's name, title, length and digest."""
    track = trackdraw.find_track(name)
    return ((track.name, track.title, track.length, track.digest) if track else None,
            tuple((m["name"], m["version"], m["track"].title if m["track"] else None)
                  for m in _more_tracks(extra_tracks)))


def _info(race: Race, actions: dict[str, Any]) -> dict[str, Any]:
    """What the top of a race page (``_race_info.html``) is rendered from."""
    track = trackdraw.find_track(race.track)
    # What the race keeps secret from the viewer: decided by the race's columns and whether
    # the viewer manages it (``actions``), both in :func:`_shown`'s key.
    hidden = secrets.race_secrets(session(), race, viewer())
    return {"race": race, "league": race.league, "track": track, "hidden": hidden,
            "shape": secrets.shape_of(track) if track else None,
            "track_version": trackdraw.version(track) if track else "",
            "more_tracks": _more_tracks(race.extra_tracks),
            "ranking": RANKING_LABELS.get(race.ranking, (race.ranking, race.ranking)),
            "links": links(), **actions}


def _more_tracks(extra_tracks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The tracks after the first of a race on several tracks (``Race.extra_tracks``), as its
    page draws them: each track's name, the track (None when it is gone) and its drawing's
    version."""
    found = [(t["track"], trackdraw.find_track(t["track"])) for t in extra_tracks or []]
    return [{"name": name, "track": trk, "version": trackdraw.version(trk) if trk else ""}
            for name, trk in found]


def _time_trial(race: Race, page: int, actions: dict[str, Any]) -> Markup:
    """A time trial below the site's header: rendered again only when its leaderboard or
    anything else it shows changed (``pagecache.cached_part``)."""
    board = race_leaderboard_cached(session(), race)
    rows = paginate(board, page, LEADERBOARD_PER_PAGE)
    if page > rows.pages or pagecache.racer_filter():  # past the end; a filter it ignores
        pagecache.do_not_keep()

    # a race on several tracks: a column per track
    track_names = tuple(t["track"] for t in race.all_tracks) if race.extra_tracks else ()

    def render() -> str:
        context = _info(race, actions)
        # a mystery track hidden from the viewer: no track names, no replays until it closes
        hidden = context["hidden"].track
        names = tuple(f"Track {i}" for i in range(1, len(track_names) + 1)) if hidden \
            else track_names
        html = pagecache.cached_html(("leaderboard", race.id, page), board,
                                     lambda: render_template(
            "public/_leaderboard.html", rows=rows, racer_url=context["links"].racer,
            ranking=context["ranking"], track_names=names,
            replay_url=None if hidden else link_maker("replays.job", "job_id", numeric=True),
            leader_job=board[0].job_id if board and board[0].rank == 1 else None),
                                     (names, hidden))
        return render_template("public/_race_time_trial.html", rows=rows, leaderboard=html,
                               **context)

    return pagecache.cached_part(("race", race.id, page), board, _shown(race, page, actions),
                                 render)


def _head_to_head(race: Race, page: int, actions: dict[str, Any]) -> Markup:
    """A head-to-head race below the site's header: ratings, bracket (matches link their
    replays), podium, heats. Rendered again only when its heat list, rating table, bracket or
    anything else it shows changed (``pagecache.cached_part``); the rating table and bracket
    are rendered once per version, each heat once per change."""
    s = session()
    ratings = cache.rating_table_cached(s, race)
    bracket = cache.knockout_bracket_cached(s, race) if race.knockout_size >= 2 else None
    racer = pagecache.racer_filter()
    rows, total = heats.race_heats_kept(s, race, racer=racer or None, page=page,
                                        per_page=HEATS_PER_PAGE)
    heat_page = Page(rows, page, HEATS_PER_PAGE, total)
    if page > heat_page.pages or (racer and not total):  # past the end; nobody by that name
        pagecache.do_not_keep()
    podium = heats.podium(s, race)

    # The rating table and the bracket are the race's overview, on its first page; the other
    # heat pages and a racer's heats link to it (a 200-racer table above every page of heats
    # would be scrolled past on each), the racer's heats with the racer's own rating line.
    overview = page == 1 and not racer

    def render() -> str:
        context = _info(race, actions)
        ratings_html = None if not overview else pagecache.cached_html(
            ("ratings", race.id), ratings, lambda: render_template(
                "public/_ratings.html", ratings=ratings, race=race, links=context["links"]))
        bracket_html = None if bracket is None or not overview else pagecache.cached_html(
            ("bracket", race.id), bracket, lambda: _bracket_html(race, bracket),
            (race.status, race.knockout_size))
        return render_template(
            "public/_race_h2h.html", ratings_html=ratings_html,
            bracket_html=bracket_html, has_bracket=bracket is not None, overview=overview,
            racer_rating=next((r for r in ratings if racer and r.racer == racer), None),
            podium=podium, heats=heat_page, racer=racer, heat_items=_heat_items(rows),
            **context)

    # the rows are the same object while the race's heat lists are unchanged; the rating
    # table and bracket are compared as the very objects the league's cache hands out
    shown = (_shown(race, page, actions), racer, total, ratings, bracket, tuple(podium))
    return pagecache.cached_part(("h2h", race.id, racer, page), rows, shown, render)


def _heat_items(rows: list[heats.HeatRow]) -> list[Markup]:
    """Each heat of a heat list, rendered again only when what it shows changed."""
    racer_url = link_maker("public.racer", "name")
    replay_url = link_maker("replays.job", "job_id", numeric=True)
    item = get_template_attribute("public/_heats.html", "heat_item")
    return [pagecache.cached_item(("heat", row.heat_id), _plain(row),
                                  lambda row=row: item(row, False, racer_url, replay_url))
            for row in rows]


def _plain(row: heats.HeatRow) -> tuple[Any, ...]:
    """All ``row`` shows, as tuples of plain values: compared like the row, but not tracked by
    the garbage collector (a process keeps thousands)."""
    shown = tuple(value for name, value in vars(row).items() if name != "cars")
    return (*shown, tuple(tuple(vars(car).values()) for car in row.cars))


def _bracket_html(race: Race, bracket: knockout.Bracket) -> str:
    """The knockout bracket: its matches, their entrants and replays."""
    matches = [m for s in bracket.stages for m in s.matches]
    ids = [e for m in (bracket.stages[0].matches if bracket.stages else [])
           for e in m.entry_ids if e is not None]
    return render_template(
        "public/_bracket.html", race=race, bracket=bracket, links=links(),
        labels=browse.entry_labels(session(), ids),
        match_jobs=heats.heat_jobs(session(), [m.heat_id for m in matches if m.heat_id]))
