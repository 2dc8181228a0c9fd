"""Knockout finals of head-to-head races: brackets seeded by rating, stages, the final order.

A head-to-head race with a knockout (:func:`has_knockout`) does not close when its window
ends, whether the closing time came or an organizer closed it early: it goes to its *finals*
(``RaceStatus.FINALS``, :func:`start_finals`). Its best-rated entries (``Race.knockout_size``,
rounded down to a power of two) play a single-elimination bracket, one heat per match; the
scheduler plans it a stage at a time (:func:`advance_knockout`), the workers race the heats
like any other, and the race closes, its season points taken from :func:`finishing_order`,
when the final is decided (``league.rules.seasons.advance_race``).
Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.heat_order import heat_winner
from evaluator.race_settings import Format
from league.models import EvaluationJob, Heat, JobStatus, Race, RaceStatus
from league.rules import headtohead, jobs

MIN_ENTRANTS = 2  # rated entries a bracket needs: fewer, and the race closes without finals


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


@dataclass(frozen=True)
class FinalsPlan:
    """What ending a race's window now does about its knockout (see :func:`finals_plan`)."""

    size: int  #: entrants of the bracket that will be raced; 0: the race closes at once
    note: str  #: one sentence for the organizer; "" for a race without a knockout


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
                                                  Heat.stage != headtohead.ROUND_STAGE)
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
        table = headtohead.rating_table(session, race)
        ranked = [row.entry_id for row in table if row.rank is not None]
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
        EvaluationJob.heat_id.in_([h.id for h in heats]),
        EvaluationJob.status.in_(headtohead.GAVE_UP))))
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
                winner = heat_winner(heat.positions)
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
        return headtohead.create_heats(session, race, stage.name, headtohead.KNOCKOUT_SEEDS,
                                       stage_no, pairs, now)
    return []


def has_knockout(race: Race) -> bool:
    """Whether ``race`` ends with a knockout (head-to-head, ``knockout_size`` 2 or more)."""
    return race.format == Format.HEAD_TO_HEAD and race.knockout_size >= MIN_ENTRANTS


def start_finals(session: Session, race: Race, now: dt.datetime) -> bool:
    """End the window of ``race`` and put it in its finals, if it has a knockout to race.

    Returns whether the race is in its finals. Rules:

    1. a race already in its finals stays there (True, nothing changes); a closed race, or
       one without a knockout (:func:`has_knockout`), has none (False);
    2. the bracket must have entrants (:func:`knockout_bracket`: at least ``MIN_ENTRANTS``
       rated entries, i.e. entries that raced a heat); with fewer, nothing changes and the
       caller closes the race from its rating table: a bracket that will not be raced is
       never announced;
    3. entering the finals ends the window: ``closes_at`` moves to ``now`` if it was later,
       so entries and rating rounds stop; queued rating heats are cancelled, running ones
       finish and count for the seeding, which :func:`advance_knockout` makes once no heat of
       the race is pending.
    """
    if race.status == RaceStatus.FINALS:
        return True
    if race.status == RaceStatus.CLOSED or not has_knockout(race) or \
            knockout_bracket(session, race).size < MIN_ENTRANTS:
        return False
    race.status = RaceStatus.FINALS
    race.closes_at = min(race.closes_at, now)
    rounds = sa.select(Heat.id).where(Heat.race_id == race.id,
                                      Heat.stage == headtohead.ROUND_STAGE)
    for job_id in session.scalars(sa.select(EvaluationJob.id).where(
            EvaluationJob.status == JobStatus.QUEUED, EvaluationJob.heat_id.in_(rounds))
            .with_for_update(skip_locked=True)).all():  # a job being claimed just runs
        jobs.cancel_job(session, job_id, "the race went to its knockout finals", now)
    session.flush()
    return True


def finals_plan(session: Session, race: Race) -> FinalsPlan:
    """What ending ``race`` now would do about its knockout, said in one sentence.

    The bracket and the rule are :func:`start_finals`'s: with enough rated entries the race
    goes to its finals first, else it closes at once from its rating table (and says so).
    """
    if race.status == RaceStatus.FINALS:
        size = knockout_bracket(session, race).size
        return FinalsPlan(size, "The knockout finals are being raced; the race closes and "
                                "awards its points when the final is decided.")
    if race.status == RaceStatus.CLOSED or not has_knockout(race):
        return FinalsPlan(0, "")
    bracket = knockout_bracket(session, race)
    if bracket.size < MIN_ENTRANTS:
        rated = sum(row.rank is not None for row in headtohead.rating_table(session, race))
        return FinalsPlan(0, f"Only {rated} racer(s) have a rating, too few for the knockout "
                             f"(it needs {MIN_ENTRANTS}): closing awards the points from the "
                             "rating table at once, without finals.")
    stages = ", ".join(stage.name for stage in bracket.stages)
    return FinalsPlan(bracket.size, f"Closing runs the knockout finals first: the best "
                                    f"{bracket.size} rated racers race a bracket ({stages}); "
                                    "the race closes and awards its points when the final "
                                    "is decided.")


def finishing_order(session: Session, race: Race) -> list[tuple[int, bool]]:
    """The final order of a head-to-head race as (user id, ranked) pairs, best first.

    With a decided knockout: the champion, then the entrants by the stage they went out in
    (later is better), within a stage by seed; everyone else follows in rating-table order.
    Without one, the rating table's order. Entries that never played a heat are unranked.
    """
    table = headtohead.rating_table(session, race)
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
