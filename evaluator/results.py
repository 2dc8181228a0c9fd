"""Race results: typed, and convertible to the JSON of ``paddock evaluate``.

The settings they were raced under are :class:`evaluator.race_settings.RaceConfig`.

The JSON shape is a contract: the league stores it and its API returns it, so a
racer can compare the league's result with the one computed at home field by field.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from evaluator.race_settings import Ranking

#: The key of a trial's JSON (and the property of :class:`TrialResult`) that each ranking
#: method ranks by.
RANKING_TIME_KEY: dict[str, str] = {Ranking.TOTAL: "total_time_s",
                                    Ranking.BEST_LAP: "best_lap_s",
                                    Ranking.AVERAGE_LAP: "average_lap_s"}

# Statuses of a trial, a car and a whole evaluation.
FINISHED = "finished"  # completed its laps (a trial) / was ranked (an evaluation)
DNF = "dnf"  # ran, but did not complete enough laps before the time cap
POLICY_ERROR = "policy_error"  # the policy crashed, overran a deadline or returned garbage
INVALID_POLICY = "invalid_policy"  # the file was refused before racing


@dataclass
class TrialResult:
    """One car's run in one trial (time trial) or heat (head-to-head)."""

    trial: int  #: 1-based trial (heat) number
    seed: int  #: the trial's seed, derived from the race seed
    status: str = FINISHED  #: FINISHED, DNF or POLICY_ERROR
    reason: str = ""  #: why it is not FINISHED, in one line
    laps_completed: int = 0
    lap_times_s: list[float] = field(default_factory=list)  #: penalties included
    off_track_count: int = 0
    collision_count: int = 0  #: collisions this car was penalised for
    penalty_s: float = 0.0  #: seconds of penalties imposed
    completion_pct: float = 0.0  #: share of the race distance covered, 0-100
    elapsed_s: float = 0.0  #: simulated seconds the car was racing
    grid_slot: int | None = None  #: head-to-head: 0 is pole
    position: int | None = None  #: head-to-head: finishing position in the heat, 1 first
    #: the race conditions drawn for this trial (``TrialConditions.to_dict``)
    conditions: dict[str, Any] | None = None

    @property
    def total_time_s(self) -> float | None:
        """Sum of the completed laps, or None before the first lap."""
        return round(sum(self.lap_times_s), 6) if self.lap_times_s else None

    @property
    def best_lap_s(self) -> float | None:
        """Fastest completed lap."""
        return round(min(self.lap_times_s), 6) if self.lap_times_s else None

    @property
    def average_lap_s(self) -> float | None:
        """Mean of the completed laps."""
        return round(sum(self.lap_times_s) / len(self.lap_times_s), 6) if self.lap_times_s \
            else None

    def ranking_value(self, ranking: str) -> float | None:
        """The time this trial is ranked by under ``ranking``."""
        value: float | None = getattr(self, RANKING_TIME_KEY[ranking])
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``trials`` items of ``paddock evaluate --json``)."""
        out: dict[str, Any] = {
            "trial": self.trial, "seed": self.seed, "status": self.status,
            "laps_completed": self.laps_completed,
            "lap_times_s": [round(t, 6) for t in self.lap_times_s],
            "total_time_s": self.total_time_s, "best_lap_s": self.best_lap_s,
            "average_lap_s": self.average_lap_s, "off_track_count": self.off_track_count,
            "collision_count": self.collision_count, "penalty_s": round(self.penalty_s, 6),
            "completion_pct": round(self.completion_pct, 3),
            "elapsed_s": round(self.elapsed_s, 6), "reason": self.reason}
        if self.grid_slot is not None:
            out["grid_slot"] = self.grid_slot
            out["position"] = self.position
        if self.conditions is not None:
            out["conditions"] = dict(self.conditions)
        return out


def trial_spread(trials: list[TrialResult], ranking: str) -> dict[str, Any]:
    """:func:`time_spread` of the finished trials' times under ``ranking``."""
    return time_spread([v for t in trials if t.status == FINISHED
                        and (v := t.ranking_value(ranking)) is not None])


def time_spread(times: list[float]) -> dict[str, Any]:
    """How much trial times differ: their count, median, sample standard deviation (0 for
    one trial) and range, in seconds; None figures without a time. A policy that drives the
    same whatever the race conditions has a small one."""
    times = sorted(times)
    if not times:
        return {"finished": 0, "median_s": None, "stdev_s": None, "range_s": None}
    return {"finished": len(times), "median_s": round(statistics.median(times), 6),
            "stdev_s": round(statistics.stdev(times), 6) if len(times) > 1 else 0.0,
            "range_s": round(times[-1] - times[0], 6)}


def rank_trials(trials: list[TrialResult], ranking: str, required_laps: int
                ) -> tuple[TrialResult | None, float | None]:
    """Pick the trial an entry is ranked by, and its time.

    A trial counts when it was not a policy error and completed at least ``required_laps``.
    More completed laps beat fewer; among equal laps the smaller time under ``ranking`` wins
    (total: sum of the laps, best-lap: the fastest lap, average-lap: their mean); a tie keeps
    the earlier trial.
    """
    best: TrialResult | None = None
    best_key: tuple[int, float] | None = None
    for t in trials:
        if t.status == POLICY_ERROR or t.laps_completed < required_laps:
            continue
        value = t.ranking_value(ranking)
        if value is None:
            continue
        key = (-t.laps_completed, value)
        if best_key is None or key < best_key:
            best, best_key = t, key
    return best, (None if best_key is None else best_key[1])


@dataclass
class CarResult:
    """Everything one entrant did in an evaluation."""

    name: str
    sha256: str
    trials: list[TrialResult]
    status: str = FINISHED  #: FINISHED (ranked), DNF (not ranked) or POLICY_ERROR
    error: str = ""  #: the policy failure, when status is POLICY_ERROR
    ranking_time_s: float | None = None
    ranking_laps: int = 0
    ranked_trial: int | None = None
    points: int = 0  #: head-to-head: sum of heat positions (lower is better)
    wins: int = 0  #: head-to-head: heats won

    def to_dict(self, head_to_head: bool = False) -> dict[str, Any]:
        """JSON form of this car's block."""
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "status": self.status,
                               "ranking_time_s": self.ranking_time_s,
                               "ranking_laps": self.ranking_laps,
                               "ranked_trial": self.ranked_trial,
                               "trials": [t.to_dict() for t in self.trials],
                               "error": self.error or None}
        if head_to_head:
            out["points"] = self.points
            out["wins"] = self.wins
        return out
