"""Head-to-head races: OpenSkill ratings, matchmaking rounds and round robins.

A head-to-head race runs rating rounds while it is open: every round pairs entries of similar
skill into heats (one job each, seat-swapped inside the job). Each finished heat updates both
entries' OpenSkill (Plackett-Luce) ratings, displayed conservatively as mu - 3 sigma. After the
window closes, an optional knockout bracket of the best-rated entries decides the finals
(:mod:`league.rules.knockout`). Functions take a session and never commit.
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

from evaluator.heat_order import heat_winner
from evaluator.race_settings import MAX_SEED, Format
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
    RatingHistory,
    User,
    utcnow,
)

ROUND_STAGE = "round"  # Heat.stage of rating rounds; knockout heats carry their stage name
HEATS_PER_ROUND = 1  # pairings per entry and round (Race.heats_per_round is per job instead)
PROVISIONAL_HEATS = 3  # entries with fewer heats are still being placed: one extra heat a round
ROUND_SEEDS, KNOCKOUT_SEEDS = 1, 2  # seed domains, so rounds and knockout never share a seed
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


def create_heats(session: Session, race: Race, stage: str, domain: int, round_no: int,
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
    heats = create_heats(session, race, ROUND_STAGE, ROUND_SEEDS, round_no,
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
        Race.status == RaceStatus.OPEN, Race.format == Format.HEAD_TO_HEAD, Race.opens_at <= now,
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
    update with the positions as ranks; each new rating is also kept in ``RatingHistory`` (one
    row per entry and heat). A heat in which every car failed (policy errors) says nothing
    about skill: its order is stored, ratings stay. A second call changes nothing.
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
        session.add(RatingHistory(race_id=race.id, entry_id=eid, heat_id=heat.id,
                                  round_no=heat.round_no, stage=heat.stage, mu=new.mu,
                                  sigma=new.sigma, recorded_at=now))


@dataclass(frozen=True)
class HeatTally:
    """How many of a race's rated heats an entry raced in, and won."""

    heats: int = 0
    wins: int = 0


def heat_tallies(session: Session, race: Race) -> dict[int, HeatTally]:
    """Each entry's rated heats and wins in ``race`` (the winner: :func:`heat_winner`)."""
    heats: dict[int, int] = {}
    wins: dict[int, int] = {}
    for positions in session.scalars(sa.select(Heat.positions).where(
            Heat.race_id == race.id, Heat.rated_at.is_not(None))):
        for eid in positions or []:
            heats[eid] = heats.get(eid, 0) + 1
        winner = heat_winner(positions or [])
        if winner is not None:
            wins[winner] = wins.get(winner, 0) + 1
    return {eid: HeatTally(n, wins.get(eid, 0)) for eid, n in heats.items()}


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
    tallies = heat_tallies(session, race)

    def key(e: Entry) -> tuple[bool, float, int, int]:
        r = ratings[e.id]
        return (r.heats == 0, -r.conservative, -r.heats, e.id)

    rows = []
    for n, e in enumerate(sorted(entries, key=key), start=1):
        r = ratings[e.id]
        rows.append(RatingRow(rank=n if r.heats else None, entry_id=e.id, user_id=e.racer_id,
                              racer=names[e.racer_id], model=models[e.model_id],
                              rating=round(r.conservative, 3), mu=r.mu, sigma=r.sigma,
                              heats=r.heats, wins=tallies.get(e.id, HeatTally()).wins))
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
