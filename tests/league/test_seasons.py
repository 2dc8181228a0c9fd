"""Season rules: opening and closing races, points by division, standings, promotion and
relegation."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import (
    Division,
    DivisionMove,
    EvaluationJob,
    JobKind,
    JobStatus,
    League,
    Membership,
    Race,
    RacePoints,
    RaceStatus,
    Season,
    SeasonStatus,
    User,
)
from league.rules import leagues, seasons

if TYPE_CHECKING:
    from conftest import Factory

DAY = dt.timedelta(days=1)


def _season(session: Session, make: Factory, league: League, **kw: Any) -> Season:
    return leagues.create_season(session, league, make.organizer(session, league), "S1",
                                 make.now - 30 * DAY, make.now + 30 * DAY, **kw)


def _division(league: League, name: str) -> Division:
    return next(d for d in league.divisions if d.name == name)


def _racer(session: Session, make: Factory, league: League, name: str,
           division: str | None) -> User:
    """A racer, member of ``division`` (None: not a member of the league at all)."""
    user = make.racer(session, name)
    if division is not None:
        leagues.join_league(session, league, user).division_id = _division(league, division).id
    session.flush()
    return user


def _division_of(session: Session, league: League, user_id: int) -> str | None:
    div = session.scalar(sa.select(Division.name).join(
        Membership, Membership.division_id == Division.id).where(
        Membership.league_id == league.id, Membership.user_id == user_id))
    return div


# ------------------------------------------------------------------ points at closing

@pytest.mark.parametrize("racers, expected", [
    pytest.param([("ann", "Pro", 30.0), ("bob", "Pro", 31.0), ("cy", "Rookie", 29.0),
                  ("dan", "Rookie", 35.0), ("eve", "Rookie", 40.0), ("fay", "Rookie", 45.0)],
                 [("ann", 1, 10), ("bob", 2, 6), ("cy", 1, 10), ("dan", 2, 6), ("eve", 3, 4),
                  ("fay", 4, 0)], id="by-position-within-division"),
    pytest.param([("ann", "Pro", None), ("bob", "Pro", 31.0)],
                 [("ann", None, 0), ("bob", 1, 10)], id="unranked-get-nothing"),
    pytest.param([("gus", None, 20.0), ("ann", "Pro", 30.0), ("hal", None, 25.0)],
                 [("ann", 1, 10), ("gus", 1, 10), ("hal", 2, 6)], id="no-division-own-group"),
])
def test_points_by_division(session: Session, make: Factory,
                            racers: list[tuple[str, str | None, float | None]],
                            expected: list[tuple[str, int | None, int]]) -> None:
    league = make.league(session)
    race = make.race(session, league, season=_season(session, make, league,
                                                     points_table=[10, 6, 4]))
    for name, division, time_s in racers:
        entry = make.entry(session, race, _racer(session, make, league, name, division))
        if time_s is None:
            make.result(session, entry, time_s=None, laps=0, status="dnf")
        else:
            make.result(session, entry, time_s=time_s)
    seasons.close_race(session, race, make.now)
    names = {u.id: u.name for u in session.scalars(sa.select(User))}
    got = sorted((names[p.user_id], p.position, p.points)
                 for p in session.scalars(sa.select(RacePoints)))
    assert got == sorted(expected)


def test_close_race_is_idempotent(session: Session, make: Factory) -> None:
    league = make.league(session)
    race = make.race(session, league, season=_season(session, make, league))
    entry = make.entry(session, race, _racer(session, make, league, "ann", "Pro"))
    make.result(session, entry, time_s=30.0)
    first = seasons.close_race(session, race, make.now)
    make.result(session, make.entry(session, race, _racer(session, make, league, "bob", "Pro")),
                time_s=20.0)  # arrives after the freeze
    again = seasons.close_race(session, race, make.now + DAY)
    assert [p.id for p in again] == [p.id for p in first] and len(first) == 1
    assert (race.status, race.closed_at) == (RaceStatus.CLOSED, make.now)
    assert session.scalar(sa.select(sa.func.count(RacePoints.id))) == 1


def test_close_race_cancels_queued_jobs_and_needs_no_season(session: Session,
                                                            make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=entry.id, status=JobStatus.QUEUED)
    session.add(job)
    assert seasons.close_race(session, race, make.now) == []
    assert (job.status, job.finished_at) == (JobStatus.CANCELLED, make.now)
    assert race.status == RaceStatus.CLOSED


@pytest.mark.parametrize("opens, closes, status, expected", [
    (-2, -1, RaceStatus.SCHEDULED, RaceStatus.CLOSED),
    (-2, 1, RaceStatus.SCHEDULED, RaceStatus.OPEN),
    (1, 2, RaceStatus.SCHEDULED, RaceStatus.SCHEDULED),
    (-2, -1, RaceStatus.OPEN, RaceStatus.CLOSED),
    (-2, 1, RaceStatus.OPEN, RaceStatus.OPEN),
])
def test_open_and_close_due_races(session: Session, make: Factory, opens: int, closes: int,
                                  status: RaceStatus, expected: RaceStatus) -> None:
    race = make.race(session, opens_at=make.now + opens * DAY,
                     closes_at=make.now + closes * DAY)
    race.status = status
    seasons.open_due_races(session, make.now)
    seasons.close_due_races(session, make.now)
    assert race.status == expected


def test_closing_waits_for_running_evaluations(session: Session, make: Factory) -> None:
    race = make.race(session, opens_at=make.now - 2 * DAY, closes_at=make.now - DAY)
    race.status = RaceStatus.OPEN
    entry = make.entry(session, race, make.racer(session, "ann"))
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=entry.id, status=JobStatus.RUNNING)
    session.add(job)
    session.flush()
    assert seasons.close_due_races(session, make.now) == []
    job.status = JobStatus.SUCCEEDED
    assert seasons.close_due_races(session, make.now) == [race]


# ------------------------------------------------------------------ standings

# racer -> [(race number, position, points)], races closing one day apart
Scores = dict[str, list[tuple[int, int | None, int]]]


@pytest.mark.parametrize("scores, expected", [
    pytest.param({"ann": [(1, 2, 18)], "bob": [(1, 1, 25)]}, ["bob", "ann"], id="points"),
    pytest.param({"ann": [(1, 2, 6), (2, 2, 4)], "bob": [(1, 1, 10), (2, 5, 0)]},
                 ["bob", "ann"], id="wins"),
    pytest.param({"ann": [(1, 4, 4), (2, 4, 4)], "bob": [(1, 3, 8), (2, 6, 0)]},
                 ["bob", "ann"], id="podiums"),
    pytest.param({"ann": [(1, 4, 0), (2, 2, 6)], "bob": [(1, 2, 6), (2, 4, 0)]},
                 ["bob", "ann"], id="earlier-achievement"),
    pytest.param({"ann": [(2, None, 0)], "bob": [(1, None, 0), (2, None, 0)]},
                 ["bob", "ann"], id="zero-total-reached-at-first-race"),
    pytest.param({"bob": [(1, 2, 6)], "ann": [(1, 2, 6)]}, ["ann", "bob"],
                 id="full-tie-earlier-sign-up"),
])
def test_standings_tie_breaks(session: Session, make: Factory, scores: Scores,
                              expected: list[str]) -> None:
    league = make.league(session)
    season = _season(session, make, league)
    pro = _division(league, "Pro")
    races = {}
    for n in (1, 2):
        races[n] = make.race(session, league, season=season, name=f"R{n}")
        races[n].status, races[n].closed_at = RaceStatus.CLOSED, make.now + n * DAY
    users = {name: _racer(session, make, league, name, "Pro") for name in ("ann", "bob")}
    for name, rows in scores.items():
        for n, position, points in rows:
            session.add(RacePoints(race_id=races[n].id, user_id=users[name].id,
                                   division_id=pro.id, position=position, points=points))
    session.flush()
    assert [r.racer for r in seasons.season_standings(session, season, pro)] == expected


def test_standings_totals(session: Session, make: Factory) -> None:
    league = make.league(session)
    season = _season(session, make, league, points_table=[10, 6, 4, 2])
    ann = _racer(session, make, league, "ann", "Pro")
    bob = _racer(session, make, league, "bob", "Pro")
    for n, order in enumerate([(ann, bob), (bob, ann), (ann, bob)], start=1):
        race = make.race(session, league, season=season, name=f"R{n}")
        for k, user in enumerate(order):
            make.result(session, make.entry(session, race, user), time_s=30.0 + k)
        seasons.close_race(session, race, make.now + n * DAY)
    other = make.race(session, league, name="not in the season")
    make.result(session, make.entry(session, other, bob), time_s=1.0)
    seasons.close_race(session, other, make.now)
    rows = seasons.season_standings(session, season, _division(league, "Pro"))
    assert [(r.racer, r.points, r.wins, r.podiums, r.races, r.reached_at) for r in rows] == [
        ("ann", 26, 2, 3, 3, make.now + 3 * DAY), ("bob", 22, 1, 3, 3, make.now + 3 * DAY)]
    assert seasons.season_standings(session, season, _division(league, "Rookie")) == []


# ------------------------------------------------------------------ promotion and relegation

@pytest.mark.parametrize("promote, relegate, percent, sizes, expected", [
    pytest.param(1, 1, False, (3, 3, 3),
                 {("A3", "A", "B"), ("B1", "B", "A"), ("B3", "B", "C"), ("C1", "C", "B")},
                 id="counts"),
    pytest.param(2, 1, False, (3, 3, 3),
                 {("A3", "A", "B"), ("B1", "B", "A"), ("B2", "B", "A"), ("B3", "B", "C"),
                  ("C1", "C", "B"), ("C2", "C", "B")}, id="more-up-than-down"),
    pytest.param(50, 34, True, (4, 3, 2),
                 {("A4", "A", "B"), ("B1", "B", "A"), ("B3", "B", "C"), ("C1", "C", "B")},
                 id="percent-rounded-down"),
    pytest.param(10, 10, True, (3, 3, 3), set(), id="percent-rounds-to-nobody"),
    pytest.param(2, 2, False, (2, 2, 2),
                 {("A1", "A", "B"), ("A2", "A", "B"), ("B1", "B", "A"), ("B2", "B", "A"),
                  ("C1", "C", "B"), ("C2", "C", "B")}, id="small-division-promotion-first"),
    pytest.param(3, 3, False, (2, 0, 2),
                 {("A1", "A", "B"), ("A2", "A", "B"), ("C1", "C", "B"), ("C2", "C", "B")},
                 id="empty-middle-division"),
])
def test_promotion_and_relegation(session: Session, make: Factory, promote: int,
                                  relegate: int, percent: bool, sizes: tuple[int, ...],
                                  expected: set[tuple[str, str, str]]) -> None:
    league = make.league(session, divisions=("A", "B", "C"))
    season = _season(session, make, league, promote=promote, relegate=relegate,
                     movement_in_percent=percent)
    race = make.race(session, league, season=season)
    race.status, race.closed_at = RaceStatus.CLOSED, make.now
    for div_name, size in zip("ABC", sizes, strict=True):
        div = _division(league, div_name)
        for k in range(1, size + 1):
            user = _racer(session, make, league, f"{div_name}{k}", div_name)
            session.add(RacePoints(race_id=race.id, user_id=user.id, division_id=div.id,
                                   position=k, points=100 - k))
    session.flush()
    moves = seasons.finalize_season(session, season, make.now + 31 * DAY)
    names = {u.id: u.name for u in session.scalars(sa.select(User))}
    tiers = {d.id: d.name for d in league.divisions}
    got = {(names[m.user_id], tiers[m.from_division_id or 0], tiers[m.to_division_id or 0])
           for m in moves}
    assert got == expected
    for name, _, to in expected:
        user_id = next(i for i, n in names.items() if n == name)
        assert _division_of(session, league, user_id) == to
    assert all(m.kind == (seasons.MoveKind.PROMOTED if tiers[m.to_division_id or 0] <
                          tiers[m.from_division_id or 0] else seasons.MoveKind.RELEGATED)
               for m in moves)
    assert (season.status, season.finalized_at) == (SeasonStatus.FINISHED,
                                                     make.now + 31 * DAY)


def test_finalize_is_idempotent_and_closes_remaining_races(session: Session,
                                                          make: Factory) -> None:
    league = make.league(session)
    season = _season(session, make, league, promote=1, relegate=1)
    race = make.race(session, league, season=season)
    ann = _racer(session, make, league, "ann", "Pro")
    rob = _racer(session, make, league, "rob", "Rookie")
    make.result(session, make.entry(session, race, ann), time_s=30.0)
    make.result(session, make.entry(session, race, rob), time_s=30.0)
    first = seasons.finalize_season(session, season, make.now)
    assert race.status == RaceStatus.CLOSED
    assert {(m.user_id, m.kind) for m in first} == {(ann.id, "relegated"),
                                                    (rob.id, "promoted")}
    again = seasons.finalize_season(session, season, make.now + DAY)
    assert [m.id for m in again] == [m.id for m in first]
    assert session.scalar(sa.select(sa.func.count(DivisionMove.id))) == 2
    assert (_division_of(session, league, ann.id), _division_of(session, league, rob.id)) == (
        "Rookie", "Pro")
    assert season.finalized_at == make.now


def test_only_racers_still_in_the_division_move(session: Session, make: Factory) -> None:
    league = make.league(session)
    season = _season(session, make, league, promote=1, relegate=1)
    race = make.race(session, league, season=season)
    rob = _racer(session, make, league, "rob", "Rookie")
    make.result(session, make.entry(session, race, rob), time_s=30.0)
    seasons.close_race(session, race, make.now)
    membership = leagues.membership(session, league, rob)
    assert membership is not None
    membership.division_id = _division(league, "Pro").id
    assert seasons.finalize_season(session, season, make.now) == []


def test_season_zones_in_the_standings(session: Session, make: Factory) -> None:
    league = make.league(session, divisions=("A", "B", "C"))
    season = _season(session, make, league, promote=1, relegate=1)
    race = make.race(session, league, season=season)
    for name in ("b1", "b2", "b3"):
        make.result(session, make.entry(session, race, _racer(session, make, league, name, "B")),
                    time_s=30.0 + int(name[1]))
    seasons.close_race(session, race, make.now)
    rows = seasons.season_standings(session, season, _division(league, "B"))
    assert [(r.racer, r.zone) for r in rows] == [("b1", "promoted"), ("b2", None),
                                                  ("b3", "relegated")]


def test_due_seasons(session: Session, make: Factory) -> None:
    league = make.league(session)
    season = _season(session, make, league)
    race = make.race(session, league, season=season, closes_at=make.now + 20 * DAY)
    race.status = RaceStatus.OPEN
    later = make.now + 40 * DAY  # the season has ended, its race is past its close
    assert seasons.start_due_seasons(session, make.now) == [season]
    assert season.status == SeasonStatus.ACTIVE
    assert seasons.due_seasons(session, make.now) == []
    assert seasons.due_seasons(session, later) == []  # the race still has to close
    seasons.close_due_races(session, later)
    assert seasons.due_seasons(session, later) == [season]
    seasons.finalize_season(session, season, later)
    assert seasons.due_seasons(session, later) == []


def test_race_closing_after_the_season_does_not_hold_it(session: Session,
                                                        make: Factory) -> None:
    league = make.league(session)
    season = _season(session, make, league)
    race: Race = make.race(session, league, season=season, closes_at=make.now + 60 * DAY)
    assert seasons.due_seasons(session, make.now + 31 * DAY) == [season]
    seasons.finalize_season(session, season, make.now + 31 * DAY)
    assert race.status == RaceStatus.CLOSED
