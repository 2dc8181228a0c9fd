"""Races: lists, one race, its leaderboard; scheduling and closing them (organizers)."""

from __future__ import annotations

from league.models import League, User, utcnow
from league.read import browse
from league.rules import leagues, races, seasons
from web.api import present
from web.api import schemas as s
from web.api.blueprint import api
from web.api.registry import Auth
from web.helpers import Page, page_args, session


@api.route("/races", tag="races", query=s.RaceQuery, responses={200: s.RaceList},
           errors=(404,))
def list_races(caller: User | None, query: s.RaceQuery) -> s.RaceList:
    """List races of the leagues listed for the caller (or of one league), open ones first.

    Filter by ``status`` (open, scheduled, closed) and by ``league`` (a slug; unlisted and
    private leagues the caller may see included).
    """
    league = (leagues.get_league(session(), query.league, caller)
              if query.league is not None else None)
    return _race_list(caller, league, query)


@api.route("/leagues/<slug>/races", tag="races", query=s.LeagueRaceQuery,
           responses={200: s.RaceList}, errors=(404,))
def league_races(slug: str, caller: User | None, query: s.LeagueRaceQuery) -> s.RaceList:
    """List a league's races, open ones first (filter by ``status``)."""
    return _race_list(caller, leagues.get_league(session(), slug, caller), query)


def _race_list(caller: User | None, league: League | None,
               query: s.LeagueRaceQuery) -> s.RaceList:
    page, per_page = page_args()
    found, total = browse.races_page(session(), caller, league=league,
                                     status=query.status,
                                     offset=(page - 1) * per_page, limit=per_page)
    return s.RaceList(items=[present.race(r) for r in found],
                      pagination=present.pagination(Page(found, page, per_page, total)))


@api.route("/races/<int:race_id>", tag="races", responses={200: s.Race}, errors=(404,))
def get_race(race_id: int, caller: User | None) -> s.Race:
    """Show a race: its evaluation settings, window, divisions and limits."""
    return present.race(races.get_race(session(), race_id, caller))


@api.route("/races/<int:race_id>/leaderboard", tag="races", query=s.PageQuery,
           responses={200: s.Leaderboard}, errors=(404,))
def leaderboard(race_id: int, caller: User | None, query: s.PageQuery) -> s.Leaderboard:
    """Show a race's leaderboard, one page at a time.

    A time trial lists each racer's best result, ranked by the race's ranking method
    (``format`` "time-trial"); a head-to-head race lists its rating table and, when it has
    one, the knockout bracket (``format`` "head-to-head").
    """
    race = races.get_race(session(), race_id, caller)
    return present.race_leaderboard(session(), race, *page_args())


@api.route("/leagues/<slug>/races", "POST", tag="races", auth=Auth.REQUIRED,
           body=s.RaceCreate, responses={201: s.Race}, errors=(403, 404))
def create_race(slug: str, caller: User, body: s.RaceCreate) -> tuple[s.Race, int]:
    """Schedule a race in a league (its organizers), with every setting of the race engine.

    Settings left out take the engine's defaults (3 laps, 3 trials, total time, 5 s
    penalties); the race opens at ``opens_at`` (default now) and closes at ``closes_at``.
    """
    league = leagues.get_league(session(), slug, caller)
    fields = body.model_dump(exclude={"name", "opens_at", "closes_at", "season_id",
                                      "division_ids"})
    race = races.schedule_race(session(), league, caller, body.name,
                                     body.opens_at or utcnow(), body.closes_at,
                                     season_id=body.season_id, division_ids=body.division_ids,
                                     **fields)
    session().commit()
    return present.race(race), 201


@api.route("/races/<int:race_id>/close", "POST", tag="races", auth=Auth.REQUIRED,
           responses={200: s.ClosedRace}, errors=(403, 404))
def close_race(race_id: int, caller: User) -> s.ClosedRace:
    """Close a race now (its league's organizers): freeze the leaderboard, award season
    points, cancel queued evaluations. A head-to-head race with a knockout goes to its finals
    instead (status "finals", no points yet); the scheduler closes it when the final is
    decided. Closing a closed race changes nothing."""
    race = races.get_race(session(), race_id, caller)
    points = seasons.close_race_now(session(), race, caller)
    session().commit()
    return present.closed_race(session(), race, points)
