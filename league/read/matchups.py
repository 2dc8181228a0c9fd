"""One racer in one head-to-head race: their record against each opponent, the heats they
raced, and how their rating moved.

A racer may enter a race several times (each upload of a new model version is a new entry);
the page follows the racer, so everything here covers all their entries in the race:

- **Record.** A heat counts once it has a finishing order (``Heat.positions``, stored when it
  is rated, including heats in which every car failed: the order still says who finished
  ahead). The racer *won* against every car behind their own and *lost* against every car
  ahead. Opponents are racers, not entries: their versions add up.
- **Rating history.** ``RatingHistory`` keeps each entry's mu and sigma after every heat that
  moved it. The chart shows one point per round (per knockout stage after the rounds): the
  value after the entry's last heat of that round, with mu, the band mu ± sigma and the
  displayed, conservative rating mu − 3 sigma. A new version starts again at the defaults
  (mu 25, sigma 25/3), so its first point is a *version mark*.

Queries only; functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.race_settings import Format
from league.errors import NotFound
from league.models import (
    Entry,
    Heat,
    PolicyModel,
    Race,
    RatingHistory,
    User,
    conservative_rating,
)
from league.read.heats import heat_title
from league.rules.headtohead import ROUND_STAGE


@dataclass(frozen=True)
class Opponent:
    """The racer's record against one other racer."""

    racer: str
    won: int
    lost: int

    @property
    def heats(self) -> int:
        """Heats raced against this opponent."""
        return self.won + self.lost


@dataclass(frozen=True)
class HeatLine:
    """One heat the racer raced."""

    heat_id: int
    label: str  #: "R3" for round 3, or the knockout stage's name
    model: str  #: the racer's version in this heat
    position: int  #: 1 = first
    cars: int
    opponents: tuple[str, ...]  #: best first
    rated_at: dt.datetime | None


@dataclass(frozen=True)
class RatingPoint:
    """The racer's rating at the end of one round (or knockout stage)."""

    label: str
    model: str
    mu: float
    sigma: float

    @property
    def conservative(self) -> float:
        """The displayed rating (:func:`league.models.conservative_rating`)."""
        return conservative_rating(self.mu, self.sigma)


@dataclass(frozen=True)
class VersionMark:
    """A model version the racer entered; ``point`` is the index of its first rating point,
    None while it has played no rated heat."""

    model: str
    submitted_at: dt.datetime
    point: int | None


@dataclass(frozen=True)
class Matchups:
    """Everything the racer's page of a head-to-head race shows."""

    racer: str
    opponents: list[Opponent]  #: most heats first, then by name
    heats: list[HeatLine]  #: in the order they were rated
    history: list[RatingPoint]
    versions: list[VersionMark]  #: in the order they were entered

    @property
    def won(self) -> int:
        """Opponents beaten, over every heat (a heat of n cars counts n − 1 duels)."""
        return sum(o.won for o in self.opponents)

    @property
    def lost(self) -> int:
        """Opponents finished behind, over every heat."""
        return sum(o.lost for o in self.opponents)

    @property
    def heat_wins(self) -> int:
        """Heats the racer won (finished first)."""
        return sum(1 for h in self.heats if h.position == 1)

    def chart(self) -> dict[str, Any]:
        """The rating chart's data, as ``web/static/js/ratings.js`` reads it."""
        return {
            "points": [{"label": p.label, "model": p.model, "mu": round(p.mu, 4),
                        "sigma": round(p.sigma, 4), "low": round(p.conservative, 4)}
                       for p in self.history],
            "versions": [{"model": v.model, "point": v.point} for v in self.versions
                         if v.point is not None],
        }


def _label(stage: str, round_no: int) -> str:
    """A short label for the chart's axis: "R3" for round 3, else the stage's title."""
    return f"R{round_no}" if stage == ROUND_STAGE else heat_title(round_no, stage)


def racer_matchups(session: Session, race: Race, racer_name: str) -> Matchups:
    """The record, heats and rating history of ``racer_name`` in ``race`` (see the module
    docstring); raises ``NotFound`` when the racer has no entry in the race."""
    racer = session.scalar(sa.select(User).where(User.name == racer_name))
    entries = session.execute(
        sa.select(Entry, PolicyModel).join(PolicyModel, PolicyModel.id == Entry.model_id)
        .where(Entry.race_id == race.id, Entry.racer_id == racer.id)
        .order_by(Entry.submitted_at, Entry.id)).all() if racer else []
    if racer is None or not entries:
        raise NotFound(f"{racer_name!r} has no entry in race {race.id}")
    models = {e.id: f"{m.name} v{m.version}" for e, m in entries}
    opponents, heats = _record(session, race, models)
    history, firsts = _history(session, race, models)
    versions = [VersionMark(models[e.id], e.submitted_at, firsts.get(e.id)) for e, _ in entries]
    return Matchups(racer.name, opponents, heats, history, versions)


def profile_matchups(session: Session, racer_name: str,
                     races: Sequence[Race]) -> list[tuple[Race, Matchups]]:
    """:func:`racer_matchups` in each head-to-head race of ``races`` (in their order), for the
    racer's profile; races the racer has no entry in are left out."""
    out = []
    for race in races:
        if race.format == Format.HEAD_TO_HEAD:
            try:
                out.append((race, racer_matchups(session, race, racer_name)))
            except NotFound:
                continue
    return out


def _record(session: Session, race: Race,
            mine: dict[int, str]) -> tuple[list[Opponent], list[HeatLine]]:
    """The racer's record per opponent and their heats, from the race's ordered heats."""
    rated = session.scalars(sa.select(Heat).where(
        Heat.race_id == race.id, Heat.rated_at.is_not(None))
        .order_by(Heat.rated_at, Heat.id)).all()
    raced = [(h, list(h.positions or [])) for h in rated
             if any(e in mine for e in h.positions or [])]
    others = {e for _, order in raced for e in order if e not in mine}
    names = dict(session.execute(sa.select(Entry.id, User.name)
                                 .join(User, User.id == Entry.racer_id)
                                 .where(Entry.id.in_(others))).all())
    won: dict[str, int] = {}
    lost: dict[str, int] = {}
    lines = []
    for heat, order in raced:
        at = next(i for i, e in enumerate(order) if e in mine)
        for i, e in enumerate(order):
            if e in mine:
                continue
            tally = won if i > at else lost
            tally[names[e]] = tally.get(names[e], 0) + 1
        lines.append(HeatLine(heat.id, _label(heat.stage, heat.round_no), mine[order[at]],
                              at + 1, len(order),
                              tuple(names[e] for e in order if e not in mine), heat.rated_at))
    opponents = [Opponent(n, won.get(n, 0), lost.get(n, 0)) for n in set(won) | set(lost)]
    opponents.sort(key=lambda o: (-o.heats, o.racer))
    return opponents, lines


def _history(session: Session, race: Race,
             mine: dict[int, str]) -> tuple[list[RatingPoint], dict[int, int]]:
    """One point per entry and round, in the order recorded; and each entry's first point."""
    rows = session.scalars(sa.select(RatingHistory).where(
        RatingHistory.race_id == race.id, RatingHistory.entry_id.in_(mine))
        .order_by(RatingHistory.recorded_at, RatingHistory.id)).all()
    last: dict[tuple[int, str, int], RatingHistory] = {}  # insertion order: first heat seen
    for row in rows:
        key = (row.entry_id, row.stage, row.round_no)
        last[key] = row  # a later heat of the same round overwrites, keeping the first place
    points: list[RatingPoint] = []
    firsts: dict[int, int] = {}
    for (entry_id, stage, round_no), row in last.items():
        firsts.setdefault(entry_id, len(points))
        points.append(RatingPoint(_label(stage, round_no), mine[entry_id], row.mu, row.sigma))
    return points, firsts
