"""Head-to-head races: OpenSkill ratings, matchmaking rounds, a knockout final, round robins.

A head-to-head race runs rating rounds while it is open: every round pairs entries of similar
skill into heats (one job each, seat-swapped inside the job). Each finished heat updates both
entries' OpenSkill (Plackett-Luce) ratings, displayed conservatively as mu - 3 sigma. After the
window closes, an optional knockout bracket of the best-rated entries decides the finals.
Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from openskill.models import PlackettLuce
from sqlalchemy.orm import Session

from evaluator.results import INVALID_POLICY, POLICY_ERROR
from league.errors import InvalidInput
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    PolicyModel,
    Race,
    RaceStatus,
    Rating,
    User,
    utcnow,
)

HEAD_TO_HEAD = "head-to-head"  # Race.format of these races
ROUND_STAGE = "round"  # Heat.stage of rating rounds; knockout heats carry their stage name
HEATS_PER_ROUND = 1  # pairings per entry and round (Race.heats_per_round is per job instead)
PROVISIONAL_HEATS = 3  # entries with fewer heats are still being placed: one extra heat a round
ROUND_SEEDS, KNOCKOUT_SEEDS = 1, 2  # seed domains, so rounds and knockout never share a seed
MAX_SEED = 2**63 - 1
MODEL = PlackettLuce()  # mu 25, sigma 25/3: the conservative rating of a newcomer is 0
PENDING = (JobStatus.QUEUED, JobStatus.RUNNING)
GAVE_UP = (JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Player:
    """An entry as matchmaking sees it."""

    entry_id: int
    mu: float
    heats: int


@dataclass(frozen=True)
class RatingRow:
    """One line of a race's rating table."""

    rank: int | None  #: None until the entry has played a heat
    entry_id: int
    user_id: int
    racer: str
    model: str  #: name and version
    rating: float  #: the displayed, conservative rating mu - 3 sigma
    mu: float
    sigma: float
    heats: int
    wins: int


@dataclass(frozen=True)
class Match:
    """One pairing of a knockout stage."""

    seeds: tuple[int | None, int | None]  #: seed numbers (1: best rated); None: not known yet
    entry_ids: tuple[int | None, int | None]
    heat_id: int | None  #: None until the heat is created
    winner_id: int | None  #: None until decided


@dataclass(frozen=True)
class Stage:
    """A knockout stage: its name and matches, in bracket order."""

    name: str
    matches: list[Match]


@dataclass(frozen=True)
class Bracket:
    """A knockout bracket: the seeding (entry ids, seed 1 first) and its stages."""

    size: int  #: entrants, a power of two; 0 when the race has no knockout
    seeds: list[int]
    stages: list[Stage]
    champion_id: int | None


def heat_seed(race_seed: int, domain: int, round_no: int, index: int) -> int:
    """The seed of the ``index``-th heat of round (or knockout stage) ``round_no``."""
    seq = np.random.SeedSequence(race_seed, spawn_key=(domain, round_no, index))
    return int(seq.generate_state(1, dtype=np.uint64)[0]) & MAX_SEED


def participants(session: Session, race: Race) -> list[Entry]:
    """The entry each racer races with: their latest entry that is not disqualified."""
    entries = session.scalars(sa.select(Entry).where(Entry.race_id == race.id,
                                                     Entry.disqualified_at.is_(None))
                              .order_by(Entry.submitted_at, Entry.id))
    latest = {e.racer_id: e for e in entries}
    return sorted(latest.values(), key=lambda e: e.id)


def _ratings(session: Session, race: Race, entry_ids: Sequence[int], *, store: bool,
             lock: bool = False) -> dict[int, Rating]:
    """The ratings of ``entry_ids``; missing ones at the model's defaults (added to the
    session when ``store``, else left transient for display)."""
    stmt = sa.select(Rating).where(Rating.race_id == race.id, Rating.entry_id.in_(entry_ids))
    if lock:  # two heats of one entry recorded at once must not lose an update
        stmt = stmt.order_by(Rating.entry_id).with_for_update()
    found = {r.entry_id: r for r in session.scalars(stmt)}
    for eid in entry_ids:
        if eid not in found:
            found[eid] = Rating(race_id=race.id, entry_id=eid, mu=MODEL.mu, sigma=MODEL.sigma,
                                heats=0)
            if store:
                session.add(found[eid])
    return found


def match_pairs(players: Sequence[Player],
                heats_per_round: int = HEATS_PER_ROUND) -> list[tuple[int, int]]:
    """Pair players for one round: similar skill meets, newcomers play more.

    Rules: players stand on a ladder by mu (the best estimate of skill; the conservative
    rating would push every newcomer to the bottom). Each has ``heats_per_round`` heats to
    play, one more while provisional (fewer than ``PROVISIONAL_HEATS`` heats). Players with
    fewest heats choose first, top of the ladder first; each takes the nearest opponent by mu
    (then by ladder distance, then higher up) who still has a heat to play and whom they have
    not met this round. When nobody with a heat left remains (the odd one out), the nearest
    opponent not yet met plays one heat more.
    """
    per = max(1, heats_per_round)
    ladder = sorted(players, key=lambda p: (-p.mu, p.entry_id))
    at = {p.entry_id: i for i, p in enumerate(ladder)}
    left = {p.entry_id: per + (1 if p.heats < PROVISIONAL_HEATS else 0) for p in ladder}
    met: set[frozenset[int]] = set()
    pairs: list[tuple[int, int]] = []
    for p in sorted(ladder, key=lambda p: (p.heats, at[p.entry_id])):
        while left[p.entry_id] > 0:
            others = [o for o in ladder if o.entry_id != p.entry_id
                      and frozenset((p.entry_id, o.entry_id)) not in met]
            if not others:
                break
            o = min(others, key=lambda o: (left[o.entry_id] == 0, abs(o.mu - p.mu),
                                           abs(at[o.entry_id] - at[p.entry_id]),
                                           at[o.entry_id]))
            pairs.append((p.entry_id, o.entry_id))
            met.add(frozenset((p.entry_id, o.entry_id)))
            left[p.entry_id] -= 1
            left[o.entry_id] = max(0, left[o.entry_id] - 1)
    return pairs


def _new_heats(session: Session, race: Race, stage: str, domain: int, round_no: int,
               pairs: Sequence[tuple[int, int]], now: dt.datetime) -> list[Heat]:
    """Heat rows with their queued jobs; seeds from race seed, round and pairing index."""
    heats = [Heat(race_id=race.id, round_no=round_no, stage=stage,
                  seed=heat_seed(race.seed, domain, round_no, i), entry_ids=list(pair),
                  created_at=now) for i, pair in enumerate(pairs)]
    session.add_all(heats)
    session.flush()
    session.add_all(EvaluationJob(kind=JobKind.HEAT, heat_id=h.id, status=JobStatus.QUEUED,
                                  queued_at=now) for h in heats)
    session.flush()
    return heats


def plan_round(session: Session, race: Race, now: dt.datetime) -> list[Heat]:
    """Plan the next rating round of ``race``: heats and their queued jobs (see match_pairs).

    Each racer takes part with their latest entry that is not disqualified, in
    ``HEATS_PER_ROUND`` heats (more while provisional). With fewer than two such entries
    nothing happens and no round is counted.
    """
    entries = participants(session, race)
    if len(entries) < 2:
        return []
    ratings = _ratings(session, race, [e.id for e in entries], store=True)
    players = [Player(e.id, ratings[e.id].mu, ratings[e.id].heats) for e in entries]
    round_no = race.rounds_played + 1
    heats = _new_heats(session, race, ROUND_STAGE, ROUND_SEEDS, round_no,
                       match_pairs(players), now)
    race.rounds_played = round_no
    race.last_round_at = now
    return heats


def due_rounds(session: Session, now: dt.datetime) -> list[Race]:
    """Open head-to-head races due a rating round.

    Due: inside the race window, the round interval elapsed since the last round, no heat of
    the race still queued or running (rounds never pile up behind slow workers), and the
    knockout not started.
    """
    races = session.scalars(sa.select(Race).where(
        Race.status == RaceStatus.OPEN, Race.format == HEAD_TO_HEAD, Race.opens_at <= now,
        Race.closes_at > now).order_by(Race.id)).all()
    busy = set(session.scalars(
        sa.select(Heat.race_id).join(EvaluationJob, EvaluationJob.heat_id == Heat.id)
        .where(EvaluationJob.status.in_(PENDING))))
    knockout = set(session.scalars(sa.select(Heat.race_id).where(Heat.stage != ROUND_STAGE)))
    return [r for r in races if r.id not in busy and r.id not in knockout and (
        r.last_round_at is None
        or r.last_round_at + dt.timedelta(seconds=r.round_interval_s) <= now)]


def record_heat(session: Session, heat: Heat, result: Mapping[str, Any],
                now: dt.datetime | None = None) -> None:
    """Store a heat's finishing order and update its entries' ratings, exactly once.

    ``result`` is the evaluator's head-to-head JSON: ``positions`` holds car indices best
    first, car ``i`` being ``heat.entry_ids[i]``. Ratings move by OpenSkill's Plackett-Luce
    update with the positions as ranks. A heat in which every car failed (policy errors) says
    nothing about skill: its order is stored, ratings stay. A second call changes nothing.
    """
    rated = session.scalar(sa.select(Heat.rated_at).where(Heat.id == heat.id)
                           .with_for_update())
    if rated is not None:
        return
    now = now or utcnow()
    positions = result.get("positions")
    cars = result.get("cars")
    n = len(heat.entry_ids)
    if not isinstance(positions, list) or \
            sorted(p if isinstance(p, int) else -1 for p in positions) != list(range(n)):
        raise InvalidInput(f"heat {heat.id}: positions {positions!r} are not an order of its "
                           f"{n} cars")
    order = [heat.entry_ids[i] for i in positions]
    heat.positions = order
    heat.rated_at = now
    statuses = [c.get("status") for c in cars if isinstance(c, dict)] \
        if isinstance(cars, list) else []
    if statuses and all(s in (POLICY_ERROR, INVALID_POLICY) for s in statuses):
        return
    race = session.get_one(Race, heat.race_id)
    ratings = _ratings(session, race, order, store=True, lock=True)
    teams = [[MODEL.rating(mu=ratings[e].mu, sigma=ratings[e].sigma)] for e in order]
    updated = MODEL.rate(teams, ranks=[float(k) for k in range(1, n + 1)])
    for eid, (new,) in zip(order, updated, strict=True):
        r = ratings[eid]
        r.mu, r.sigma, r.heats, r.updated_at = new.mu, new.sigma, r.heats + 1, now


def rating_table(session: Session, race: Race) -> list[RatingRow]:
    """The rating table: each racer's current entry by conservative rating (mu - 3 sigma).

    Ties go to more heats played, then the earlier entry. Entries that have not played a heat
    yet are listed last, unranked, at the default rating.
    """
    entries = participants(session, race)
    ratings = _ratings(session, race, [e.id for e in entries], store=False)
    names = dict(session.execute(sa.select(User.id, User.name).where(
        User.id.in_([e.racer_id for e in entries]))).all())
    models = {m.id: f"{m.name} v{m.version}" for m in session.scalars(
        sa.select(PolicyModel).where(PolicyModel.id.in_([e.model_id for e in entries])))}
    wins: dict[int, int] = {}
    for positions in session.scalars(sa.select(Heat.positions).where(
            Heat.race_id == race.id, Heat.rated_at.is_not(None))):
        if positions:
            wins[positions[0]] = wins.get(positions[0], 0) + 1

    def key(e: Entry) -> tuple[bool, float, int, int]:
        r = ratings[e.id]
        return (r.heats == 0, -r.conservative, -r.heats, e.id)

    rows = []
    for n, e in enumerate(sorted(entries, key=key), start=1):
        r = ratings[e.id]
        rows.append(RatingRow(rank=n if r.heats else None, entry_id=e.id, user_id=e.racer_id,
                              racer=names[e.racer_id], model=models[e.model_id],
                              rating=round(r.conservative, 3), mu=r.mu, sigma=r.sigma,
                              heats=r.heats, wins=wins.get(e.id, 0)))
    return rows


def round_robin_pairs(entry_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Every pair of ``entry_ids`` once, by the circle method.

    Pairs come round by round: each run of ``n // 2`` pairs (with an odd count, one entry rests
    each round) has every entry at most once, so a round can be raced in parallel. Each entry
    is car 0 in about half its pairs (the job swaps seats anyway; this spreads the order).
    """
    if len(set(entry_ids)) != len(entry_ids):
        raise InvalidInput("a round robin needs distinct entries")
    ring: list[int | None] = list(entry_ids)
    if len(ring) % 2:
        ring.append(None)  # the resting slot
    n = len(ring)
    pairs: list[tuple[int, int]] = []
    for rnd in range(n - 1):
        for i in range(n // 2):
            a, b = ring[i], ring[n - 1 - i]
            if a is not None and b is not None:
                # Others travel the circle, half the time on the car-0 side; the fixed
                # entry alternates.
                pairs.append((b, a) if i == 0 and rnd % 2 else (a, b))
        ring = [ring[0], ring[-1], *ring[1:-1]]  # rotate all but the first
    return pairs


def seeding_order(size: int) -> list[int]:
    """Seed numbers in bracket order: pairs (1, size), (size/2, size/2 + 1), ... so that seeds
    1 and 2 can only meet in the final (standard seeding: 1 vs N, 2 vs N-1, ...)."""
    order = [1]
    while len(order) < size:
        total = 2 * len(order) + 1
        order = [s for seed in order for s in (seed, total - seed)]
    return order


def stage_name(entrants: int) -> str:
    """A knockout stage's name by how many entrants it starts with."""
    return {2: "final", 4: "semifinal", 8: "quarterfinal"}.get(entrants, f"round-of-{entrants}")


def knockout_bracket(session: Session, race: Race) -> Bracket:
    """The knockout bracket of ``race``: as played so far, or as it would start now.

    Size: the largest power of two not above ``race.knockout_size`` nor the number of ranked
    entries. Seeds follow the rating table until the first knockout heat exists; from then on
    they are those of the first stage. A match is won by the heat's winner; a heat whose
    evaluation failed for good goes to the better seed.
    """
    heats = session.scalars(sa.select(Heat).where(Heat.race_id == race.id,
                                                  Heat.stage != ROUND_STAGE)
                            .order_by(Heat.round_no, Heat.id)).all()
    order: list[int] = []
    if heats:
        first = [h for h in heats if h.round_no == 1]
        size = 2 * len(first)
        by_seed: dict[int, int] = {}
        for h, k in zip(first, range(0, size, 2), strict=True):
            pair = seeding_order(size)[k:k + 2]
            by_seed[pair[0]], by_seed[pair[1]] = h.entry_ids[0], h.entry_ids[1]
        order = [by_seed[s] for s in range(1, size + 1)]
    else:
        ranked = [row.entry_id for row in rating_table(session, race) if row.rank is not None]
        size = 1
        while size * 2 <= min(race.knockout_size, len(ranked)):
            size *= 2
        size = size if size >= 2 else 0
        order = ranked[:size]
    if size == 0:
        return Bracket(0, [], [], None)
    return _bracket(session, size, order, heats)


def _bracket(session: Session, size: int, seeds: list[int], heats: Sequence[Heat]) -> Bracket:
    gave_up = set(session.scalars(sa.select(EvaluationJob.heat_id).where(
        EvaluationJob.heat_id.in_([h.id for h in heats]), EvaluationJob.status.in_(GAVE_UP))))
    seed_of = {e: n for n, e in enumerate(seeds, start=1)}
    slots: list[int | None] = [seeds[s - 1] for s in seeding_order(size)]
    stages: list[Stage] = []
    stage_no = 1
    while len(slots) >= 2:
        played = [h for h in heats if h.round_no == stage_no]
        matches = []
        for k in range(0, len(slots), 2):
            a, b = slots[k], slots[k + 1]
            heat = played[k // 2] if k // 2 < len(played) else None
            winner = None
            if heat is not None and heat.positions:
                winner = heat.positions[0]
            elif heat is not None and heat.id in gave_up and a is not None and b is not None:
                winner = a if seed_of[a] < seed_of[b] else b
            pair = (None if a is None else seed_of[a], None if b is None else seed_of[b])
            matches.append(Match(pair, (a, b), heat.id if heat else None, winner))
        stages.append(Stage(stage_name(len(slots)), matches))
        slots = [m.winner_id for m in matches]
        stage_no += 1
    return Bracket(size, seeds, stages, slots[0])


def advance_knockout(session: Session, race: Race, now: dt.datetime) -> list[Heat]:
    """Create the heats of the next knockout stage once the previous one is decided.

    The first call creates the first stage from the seeding. Returns no heats while a stage
    is still being raced, when the final is decided, or when the race has no knockout.
    """
    bracket = knockout_bracket(session, race)
    for stage_no, stage in enumerate(bracket.stages, start=1):
        if all(m.heat_id is not None for m in stage.matches):
            continue
        if any(m.heat_id is not None for m in stage.matches):
            return []  # created part way: never happens through this function
        pairs = []
        for m in stage.matches:
            a, b = m.entry_ids
            if a is None or b is None:
                return []  # the previous stage is not decided yet
            pairs.append((a, b))
        return _new_heats(session, race, stage.name, KNOCKOUT_SEEDS, stage_no, pairs, now)
    return []


def finishing_order(session: Session, race: Race) -> list[tuple[int, bool]]:
    """The final order of a head-to-head race as (user id, ranked) pairs, best first.

    With a decided knockout: the champion, then the entrants by the stage they went out in
    (later is better), within a stage by seed; everyone else follows in rating-table order.
    Without one, the rating table's order. Entries that never played a heat are unranked.
    """
    table = rating_table(session, race)
    user_of = {row.entry_id: row.user_id for row in table}
    placed: list[int] = []
    bracket = knockout_bracket(session, race) if race.knockout_size >= 2 else None
    if bracket is not None and bracket.champion_id is not None:
        placed.append(bracket.champion_id)
        seed_of = {e: n for n, e in enumerate(bracket.seeds, start=1)}
        for stage in reversed(bracket.stages):
            losers = [e for m in stage.matches for e in m.entry_ids
                      if e is not None and e != m.winner_id]
            placed.extend(sorted(losers, key=lambda e: seed_of[e]))
    inside = set(placed)
    order = [(user_of[e], True) for e in placed if e in user_of]
    order += [(row.user_id, row.rank is not None) for row in table
              if row.entry_id not in inside]
    return order
