"""Head-to-head: matchmaking, seeds, rating updates, the rating table, knockout, round robin."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import InvalidInput
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    Race,
    RacePoints,
    RaceStatus,
    Rating,
)
from league.rules import headtohead as h2h
from league.rules import knockout, leagues, seasons
from league.rules.headtohead import Player

if TYPE_CHECKING:
    from conftest import Factory

MIN = dt.timedelta(minutes=1)


def _race(session: Session, make: Factory, **kw: Any) -> Race:
    race = make.race(session, format="head-to-head", seed=kw.pop("seed", 7), **kw)
    race.status = RaceStatus.OPEN
    return race


def _entries(session: Session, make: Factory, race: Race, n: int) -> list[Entry]:
    return [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
            for k in range(1, n + 1)]


def _rate(session: Session, race: Race, entry: Entry, mu: float, sigma: float = 1.0,
          heats: int = 5) -> Rating:
    rating = Rating(race_id=race.id, entry_id=entry.id, mu=mu, sigma=sigma, heats=heats)
    session.add(rating)
    session.flush()
    return rating


def _outcome(positions: list[int], failed: tuple[int, ...] = ()) -> dict[str, Any]:
    """A head-to-head result JSON (the parts record_heat reads)."""
    cars = [{"status": "policy_error" if i in failed else "finished"}
            for i in range(len(positions))]
    return {"format": "head-to-head", "positions": positions, "cars": cars}


# ------------------------------------------------------------------ matchmaking

@pytest.mark.parametrize("players, per_round, expected", [
    pytest.param([(1, 30, 9), (2, 20, 9), (3, 29, 9), (4, 21, 9)], 1, [(1, 3), (4, 2)],
                 id="similar-ratings-meet"),
    pytest.param([(1, 30, 9), (2, 29, 9), (3, 10, 9)], 1, [(1, 2), (3, 2)],
                 id="odd-one-out-meets-the-nearest"),
    pytest.param([(1, 30, 9), (2, 28, 9), (3, 25, 0), (4, 24, 9)], 1,
                 [(3, 4), (3, 2), (1, 2)], id="newcomer-plays-more"),
    pytest.param([(5, 25, 0), (6, 25, 0)], 1, [(5, 6)], id="two-newcomers-meet-once"),
    pytest.param([(1, 25, 9)], 1, [], id="alone"),
])
def test_match_pairs(players: list[tuple[int, float, int]], per_round: int,
                     expected: list[tuple[int, int]]) -> None:
    assert h2h.match_pairs([Player(*p) for p in players], per_round) == expected


@pytest.mark.parametrize("n, per_round", [(2, 1), (5, 1), (9, 2), (16, 1), (17, 3)])
def test_every_entry_gets_its_heats(n: int, per_round: int) -> None:
    rng = random.Random(n)
    players = [Player(i, rng.uniform(10, 40), rng.choice([0, 1, 9, 20])) for i in range(n)]
    pairs = h2h.match_pairs(players, per_round)
    played = Counter(e for pair in pairs for e in pair)
    for p in players:
        quota = per_round + (p.heats < h2h.PROVISIONAL_HEATS)
        assert played[p.entry_id] >= min(quota, n - 1)
    assert len({frozenset(pair) for pair in pairs}) == len(pairs)  # no pair twice a round


def test_plan_round(session: Session, make: Factory) -> None:
    race = _race(session, make)
    ann, bob, cy = (make.racer(session, n) for n in ("ann", "bob", "cy"))
    make.entry(session, race, ann, make.now)
    ann_new = make.entry(session, race, ann, make.now + MIN)  # the latest entry races
    bob_dq = make.entry(session, race, bob, make.now + 2 * MIN)
    bob_dq.disqualified_at = make.now
    bob_ok = make.entry(session, race, bob, make.now)
    cy_e = make.entry(session, race, cy, make.now)
    heats = h2h.plan_round(session, race, make.now)
    in_heats = {e for h in heats for e in h.entry_ids}
    assert in_heats == {ann_new.id, bob_ok.id, cy_e.id}
    assert (race.rounds_played, race.last_round_at) == (1, make.now)
    assert [h.seed for h in heats] == [h2h.heat_seed(race.seed, h2h.ROUND_SEEDS, 1, i)
                                       for i in range(len(heats))]
    assert all((h.round_no, h.stage, h.positions) == (1, "round", None) for h in heats)
    jobs = session.scalars(sa.select(EvaluationJob).order_by(EvaluationJob.id)).all()
    assert [(j.kind, j.heat_id, j.status) for j in jobs] == [
        (JobKind.HEAT, h.id, JobStatus.QUEUED) for h in heats]
    assert h2h.plan_round(session, race, make.now + MIN)[0].round_no == 2


def test_no_round_without_two_racers(session: Session, make: Factory) -> None:
    race = _race(session, make)
    make.entry(session, race, make.racer(session, "ann"))
    make.entry(session, race, make.racer(session, "ann2")).disqualified_at = make.now
    assert h2h.plan_round(session, race, make.now) == []
    assert (race.rounds_played, race.last_round_at) == (0, None)


@pytest.mark.parametrize("a, b", [
    ((7, 1, 1, 0), (7, 1, 1, 1)),  # pairing index
    ((7, 1, 1, 0), (7, 1, 2, 0)),  # round
    ((7, 1, 1, 0), (8, 1, 1, 0)),  # race seed
    ((7, 1, 1, 0), (7, 2, 1, 0)),  # rounds and knockout
])
def test_heat_seeds_are_deterministic_and_distinct(a: tuple[int, int, int, int],
                                                   b: tuple[int, int, int, int]) -> None:
    assert h2h.heat_seed(*a) == h2h.heat_seed(*a)
    assert h2h.heat_seed(*a) != h2h.heat_seed(*b)
    assert 0 <= h2h.heat_seed(*a) <= h2h.MAX_SEED


def test_same_race_seed_same_heats(session: Session, make: Factory) -> None:
    plans = []
    for slug in ("one", "two"):
        race = _race(session, make, league=make.league(session, slug=slug), seed=99)
        for k in range(5):
            make.entry(session, race, make.racer(session, f"{slug}-{k}"))
        heats = h2h.plan_round(session, race, make.now)
        ids = {e.id: n for n, e in enumerate(h2h.participants(session, race))}
        plans.append([(h.seed, [ids[e] for e in h.entry_ids]) for h in heats])
    assert plans[0] == plans[1]


@pytest.mark.parametrize("last, interval, pending, knockout, expected", [
    (None, 600, False, False, True),
    (-601, 600, False, False, True),
    (-599, 600, False, False, False),
    (-601, 600, True, False, False),
    (-601, 600, False, True, False),
])
def test_due_rounds(session: Session, make: Factory, last: int | None, interval: int,
                    pending: bool, knockout: bool, expected: bool) -> None:
    race = _race(session, make, round_interval_s=interval)
    race.last_round_at = None if last is None else make.now + dt.timedelta(seconds=last)
    a, b = _entries(session, make, race, 2)
    heat = Heat(race_id=race.id, round_no=1, stage="final" if knockout else "round", seed=1,
                entry_ids=[a.id, b.id])
    session.add(heat)
    session.flush()
    session.add(EvaluationJob(kind=JobKind.HEAT, heat_id=heat.id,
                              status=JobStatus.RUNNING if pending else JobStatus.SUCCEEDED))
    session.add(_race(session, make, league=race.league, name="over", closes_at=make.now))
    session.flush()
    assert h2h.due_rounds(session, make.now) == ([race] if expected else [])


# ------------------------------------------------------------------ ratings

@pytest.mark.parametrize("positions", [[0, 1], [1, 0]])
def test_record_heat_moves_ratings(session: Session, make: Factory,
                                   positions: list[int]) -> None:
    race = _race(session, make)
    a, b = _entries(session, make, race, 2)
    (heat,) = h2h.plan_round(session, race, make.now)
    h2h.record_heat(session, heat, _outcome(positions), now=make.now)
    winner, loser = (heat.entry_ids[i] for i in positions)
    assert heat.positions == [winner, loser] and heat.rated_at == make.now
    r = {x.entry_id: x for x in session.scalars(sa.select(Rating))}
    assert r[winner].mu > h2h.MODEL.mu > r[loser].mu
    assert r[winner].sigma < h2h.MODEL.sigma and r[winner].heats == r[loser].heats == 1


def test_record_heat_is_idempotent(session: Session, make: Factory) -> None:
    race = _race(session, make)
    _entries(session, make, race, 2)
    (heat,) = h2h.plan_round(session, race, make.now)
    h2h.record_heat(session, heat, _outcome([0, 1]), now=make.now)
    before = [(x.mu, x.sigma, x.heats) for x in session.scalars(
        sa.select(Rating).order_by(Rating.entry_id))]
    h2h.record_heat(session, heat, _outcome([1, 0]), now=make.now + MIN)
    after = [(x.mu, x.sigma, x.heats) for x in session.scalars(
        sa.select(Rating).order_by(Rating.entry_id))]
    assert after == before and heat.rated_at == make.now
    assert heat.positions == heat.entry_ids


def test_heat_where_every_car_failed_leaves_ratings(session: Session, make: Factory) -> None:
    race = _race(session, make)
    _entries(session, make, race, 2)
    (heat,) = h2h.plan_round(session, race, make.now)
    h2h.record_heat(session, heat, _outcome([0, 1], failed=(0, 1)), now=make.now)
    assert {(x.mu, x.heats) for x in session.scalars(sa.select(Rating))} == {
        (h2h.MODEL.mu, 0)}
    assert heat.rated_at == make.now


@pytest.mark.parametrize("positions", [[0], [0, 0], [0, 2], [0, "1"], "01", None])
def test_record_heat_refuses_a_bad_order(session: Session, make: Factory,
                                         positions: Any) -> None:
    race = _race(session, make)
    _entries(session, make, race, 2)
    (heat,) = h2h.plan_round(session, race, make.now)
    with pytest.raises(InvalidInput, match="not an order"):
        h2h.record_heat(session, heat, {"positions": positions, "cars": []})
    assert heat.rated_at is None


def test_rating_table(session: Session, make: Factory) -> None:
    race = _race(session, make)
    a, b, c, new = _entries(session, make, race, 4)
    _rate(session, race, a, mu=30.0, sigma=3.0)  # 21
    _rate(session, race, b, mu=28.0, sigma=1.0)  # 25
    _rate(session, race, c, mu=26.0, sigma=1.0, heats=9)  # 23
    session.add(Heat(race_id=race.id, round_no=1, seed=1, entry_ids=[a.id, b.id],
                     positions=[a.id, b.id], rated_at=make.now))
    session.add(Heat(race_id=race.id, round_no=1, seed=2, entry_ids=[a.id, c.id],
                     positions=[a.id, c.id], rated_at=make.now))
    session.flush()
    rows = h2h.rating_table(session, race)
    assert [(r.rank, r.entry_id, r.rating, r.heats, r.wins) for r in rows] == [
        (1, b.id, 25.0, 5, 0), (2, c.id, 23.0, 9, 0), (3, a.id, 21.0, 5, 2),
        (None, new.id, 0.0, 0, 0)]
    assert (rows[0].racer, rows[0].model) == ("r2", "follower v1")
    assert session.scalar(sa.select(sa.func.count(Rating.id))) == 3  # reading stores nothing


# ------------------------------------------------------------------ knockout

@pytest.mark.parametrize("size, order", [
    (2, [1, 2]), (4, [1, 4, 2, 3]), (8, [1, 8, 4, 5, 2, 7, 3, 6]),
    (16, [1, 16, 8, 9, 4, 13, 5, 12, 2, 15, 7, 10, 3, 14, 6, 11]),
])
def test_seeding_order(size: int, order: list[int]) -> None:
    assert knockout.seeding_order(size) == order


@pytest.mark.parametrize("knockout_size, rated, size, first, names", [
    (4, 6, 4, [(1, 4), (2, 3)], ["semifinal", "final"]),
    (8, 8, 8, [(1, 8), (4, 5), (2, 7), (3, 6)], ["quarterfinal", "semifinal", "final"]),
    (8, 5, 4, [(1, 4), (2, 3)], ["semifinal", "final"]),  # rounded down to who is there
    (2, 3, 2, [(1, 2)], ["final"]),
    (0, 4, 0, None, []),
    (4, 1, 0, None, []),
])
def test_knockout_seeding(session: Session, make: Factory, knockout_size: int, rated: int,
                          size: int, first: list[tuple[int, int]] | None,
                          names: list[str]) -> None:
    race = _race(session, make, knockout_size=knockout_size)
    entries = _entries(session, make, race, rated + 1)  # the last one never played
    for k, e in enumerate(entries[:rated]):
        _rate(session, race, e, mu=40.0 - k)  # entries[k] is seed k + 1
    bracket = knockout.knockout_bracket(session, race)
    assert bracket.size == size and [s.name for s in bracket.stages] == names
    assert bracket.seeds == [e.id for e in entries[:size]]
    if first is not None:
        assert [m.seeds for m in bracket.stages[0].matches] == first
        assert [m.entry_ids for m in bracket.stages[0].matches] == [
            (entries[x - 1].id, entries[y - 1].id) for x, y in first]


def _decide(session: Session, heats: list[Heat], winners: list[int]) -> None:
    for heat, winner in zip(heats, winners, strict=True):
        h2h.record_heat(session, heat, _outcome([winner, 1 - winner]))


def test_knockout_runs_to_a_champion(session: Session, make: Factory) -> None:
    race = _race(session, make, knockout_size=4)
    e = _entries(session, make, race, 5)
    for k, entry in enumerate(e):
        _rate(session, race, entry, mu=40.0 - k)
    semis = knockout.advance_knockout(session, race, make.now)
    assert [(h.stage, h.round_no, h.entry_ids) for h in semis] == [
        ("semifinal", 1, [e[0].id, e[3].id]), ("semifinal", 1, [e[1].id, e[2].id])]
    assert knockout.advance_knockout(session, race, make.now) == []  # semis still racing
    assert h2h.due_rounds(session, make.now) == []  # no rating rounds during the knockout
    _decide(session, semis, [1, 0])  # seed 4 beats seed 1; seed 2 beats seed 3
    late = make.entry(session, race, make.racer(session, "late"))
    _rate(session, race, late, mu=99.0)  # rated after the seeding: outside the bracket
    (final,) = knockout.advance_knockout(session, race, make.now)
    assert (final.stage, final.round_no, final.entry_ids) == ("final", 2, [e[3].id, e[1].id])
    _decide(session, [final], [1])
    bracket = knockout.knockout_bracket(session, race)
    assert bracket.champion_id == e[1].id and bracket.seeds == [x.id for x in e[:4]]
    assert knockout.advance_knockout(session, race, make.now) == []
    order = [user for user, _ in knockout.finishing_order(session, race)]
    users = [x.racer_id for x in e]
    assert order == [users[1], users[3], users[0], users[2], late.racer_id, users[4]]


def test_failed_knockout_heat_goes_to_the_better_seed(session: Session,
                                                      make: Factory) -> None:
    race = _race(session, make, knockout_size=4)
    e = _entries(session, make, race, 4)
    for k, entry in enumerate(e):
        _rate(session, race, entry, mu=40.0 - k)
    semis = knockout.advance_knockout(session, race, make.now)
    job = session.scalar(sa.select(EvaluationJob).where(EvaluationJob.heat_id == semis[1].id))
    assert job is not None
    job.status = JobStatus.FAILED
    _decide(session, semis[:1], [1])
    (final,) = knockout.advance_knockout(session, race, make.now)
    assert final.entry_ids == [e[3].id, e[1].id]


def test_closing_plays_the_knockout_and_awards_points(session: Session,
                                                      make: Factory) -> None:
    league = make.league(session)
    season = leagues.create_season(session, league, make.organizer(session, league), "S",
                                   make.now - 9 * MIN, make.now + 9 * MIN,
                                   points_table=[10, 5])
    race = _race(session, make, league=league, season=season, knockout_size=2,
                 closes_at=make.now)
    a, b, c = _entries(session, make, race, 3)
    for entry, mu in ((a, 30.0), (b, 31.0), (c, 20.0)):
        _rate(session, race, entry, mu=mu)
    assert seasons.close_due_races(session, make.now) == []  # the final starts instead
    (final,) = session.scalars(sa.select(Heat)).all()
    assert final.entry_ids == [b.id, a.id]
    assert seasons.close_due_races(session, make.now) == []  # the final is racing
    job = session.scalar(sa.select(EvaluationJob).where(EvaluationJob.heat_id == final.id))
    assert job is not None
    job.status = JobStatus.SUCCEEDED
    h2h.record_heat(session, final, _outcome([1, 0]))
    assert seasons.close_due_races(session, make.now) == [race]
    points = {p.user_id: (p.position, p.points) for p in session.scalars(
        sa.select(RacePoints))}
    assert points == {a.racer_id: (1, 10), b.racer_id: (2, 5), c.racer_id: (3, 0)}


# ------------------------------------------------------------------ round robin

@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 8, 9, 64])
def test_round_robin_pairs(n: int) -> None:
    ids = [100 + k for k in range(n)]
    pairs = h2h.round_robin_pairs(ids)
    assert sorted(tuple(sorted(p)) for p in pairs) == list(itertools.combinations(ids, 2))
    rounds = [pairs[k:k + n // 2] for k in range(0, len(pairs), max(1, n // 2))]
    assert all(len({e for p in r for e in p}) == 2 * len(r) for r in rounds)
    first = Counter(a for a, _ in pairs)
    assert all(abs(2 * first[e] - (n - 1)) <= 1 for e in ids)  # car 0 about half the time


def test_round_robin_needs_distinct_entries() -> None:
    with pytest.raises(InvalidInput, match="distinct"):
        h2h.round_robin_pairs([1, 2, 1])
