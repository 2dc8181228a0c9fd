"""Races: lists, one race, its leaderboard, a head-to-head race's heats and a racer's
matchups in it; scheduling and closing races (organizers)."""

from __future__ import annotations

from evaluator.race_settings import Format
from league.errors import NotFound
from league.models import League, Race, User, utcnow
from league.read import browse, heats, matchups
from league.rules import leagues, races, seasons
from web.api import heat_schemas as hs
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
    return s.RaceList(items=[present.race(session(), r, caller) for r in found],
                      pagination=present.pagination(Page(found, page, per_page, total)))


@api.route("/races/<int:race_id>", tag="races", responses={200: s.Race}, errors=(404,))
def get_race(race_id: int, caller: User | None) -> s.Race:
    """Show a race: its evaluation settings, window, divisions and limits."""
    return present.race(session(), races.get_race(session(), race_id, caller), caller)


@api.route("/races/<int:race_id>/leaderboard", tag="races", query=s.PageQuery,
           responses={200: s.Leaderboard}, errors=(404,))
def leaderboard(race_id: int, caller: User | None, query: s.PageQuery) -> s.Leaderboard:
    """Show a race's leaderboard, one page at a time.

    A time trial lists each racer's best result, ranked by the race's ranking method
    (``format`` "time-trial", or "head-to-bot": ranked the same way, the bots not listed); a
    head-to-head race lists its rating table and, when it has
    one, the knockout bracket (``format`` "head-to-head").
    """
    race = races.get_race(session(), race_id, caller)
    return present.race_leaderboard(session(), race, *page_args())


@api.route("/leagues/<slug>/races", "POST", tag="races", auth=Auth.REQUIRED,
           body=s.RaceCreate, responses={201: s.Race}, errors=(403, 404))
def create_race(slug: str, caller: User, body: s.RaceCreate) -> tuple[s.Race, int]:
    """Schedule a race in a league (its organizers), with every setting of the race engine.

    Settings left out take the engine's defaults (3 laps, 3 trials, total time, 5 s
    penalties, the standard race conditions); the race opens at ``opens_at`` (default now)
    and closes at ``closes_at``.
    """
    league = leagues.get_league(session(), slug, caller)
    fields = body.model_dump(exclude={"name", "opens_at", "closes_at", "season_id",
                                      "division_ids", "conditions"})
    if body.conditions is not None:  # else: the league's default for a new race
        fields["conditions"] = body.conditions.given()
    fields["extra_tracks"] = races.listed_tracks(body.track, fields.pop("tracks"))
    if fields["seed"] is None:  # a secret seed nobody can guess
        fields["seed"] = races.random_seed()
    race = races.schedule_race(session(), league, caller, body.name,
                                     body.opens_at or utcnow(), body.closes_at,
                                     season_id=body.season_id, division_ids=body.division_ids,
                                     **fields)
    session().commit()
    return present.race(session(), race, caller), 201


@api.route("/races/<int:race_id>/secrecy", "POST", tag="races", auth=Auth.REQUIRED,
           body=s.RaceSecrecy, responses={200: s.Race}, errors=(403, 404, 409))
def set_secrecy(race_id: int, caller: User, body: s.RaceSecrecy) -> s.Race:
    """Publish a race's seed while it is open, or keep it secret again; hide its track until
    it closes (a mystery track), or show it (the league's organizers; audited). Fields left
    out keep their value; a closed race shows both already (409)."""
    race = races.get_race(session(), race_id, caller)
    races.set_race_secrecy(session(), race, caller, seed_public=body.seed_public,
                           mystery_track=body.mystery_track)
    session().commit()
    return present.race(session(), race, caller)


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
    return present.closed_race(session(), race, points, caller)


@api.route("/races/<int:race_id>/heats", tag="races", query=hs.HeatQuery,
           responses={200: hs.HeatList}, errors=(404,))
def race_heats(race_id: int, caller: User | None, query: hs.HeatQuery) -> hs.HeatList:
    """List a head-to-head race's heats, newest first: rating rounds and knockout stages.

    Each heat lists its cars best first with position, time, gap to the winner, off-tracks,
    collisions and penalties, and links its replays once raced. Filter by ``racer``. A time
    trial has no heats (404).
    """
    race = _head_to_head(race_id, caller)
    page, per_page = page_args()
    rows, total = heats.race_heats(session(), race, racer=query.racer, page=page,
                                   per_page=per_page)
    return present.heat_list(rows, Page(rows, page, per_page, total))


@api.route("/races/<int:race_id>/racers/<name>/matchups", tag="races",
           responses={200: hs.Matchups}, errors=(404,))
def racer_matchups(race_id: int, name: str, caller: User | None) -> hs.Matchups:
    """Show a racer's matchups in a head-to-head race: their record against each opponent,
    the heats they raced and their rating after every round, marked where a new model
    version entered. 404 when the racer has no entry in the race."""
    race = _head_to_head(race_id, caller)
    return present.racer_matchups(race.id, matchups.racer_matchups(session(), race, name))


def _head_to_head(race_id: int, caller: User | None) -> Race:
    """The head-to-head race ``race_id`` if the caller may see it (NotFound otherwise)."""
    race = races.get_race(session(), race_id, caller)
    if race.format != Format.HEAD_TO_HEAD:
        raise NotFound(f"race {race_id} is a time trial: it has no heats")
    return race
