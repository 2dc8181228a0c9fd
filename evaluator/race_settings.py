"""The vocabulary of race settings: formats, ranking methods, defaults and limits, and
:class:`RaceConfig`, the validated settings of one evaluation.

Everything that names a race setting uses these: the race engine, ``paddock evaluate``, the
league's models and forms, the API's schemas and the labels on the site. The values are the
settings' names in the JSON of ``paddock evaluate``, in the API and in the database, so they
never change; a new format or ranking method is added here first.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any

from evaluator.conditions import Conditions, ConditionsError
from evaluator.errors import PaddockError


class Format(enum.StrEnum):
    """How the entrants of a race meet."""

    TIME_TRIAL = "time-trial"  # each entry races alone, its trials ranked by time
    HEAD_TO_HEAD = "head-to-head"  # entries share the track in seat-rotated heats


class Ranking(enum.StrEnum):
    """Which time of its trials ranks an entry (:func:`~evaluator.results.rank_trials`)."""

    TOTAL = "total"  # the sum of the laps of a trial
    BEST_LAP = "best-lap"  # the fastest single lap of any counted trial
    AVERAGE_LAP = "average-lap"  # the mean lap of a trial


FORMATS = tuple(Format)  #: every format, in the order forms offer them
RANKINGS = tuple(Ranking)  #: every ranking method, in the order forms offer them

#: What a format is called on the site.
FORMAT_LABELS: dict[str, str] = {Format.TIME_TRIAL: "Time trial",
                                 Format.HEAD_TO_HEAD: "Head-to-head"}
#: What a ranking method is called (a column title) and the rule in words.
RANKING_LABELS: dict[str, tuple[str, str]] = {
    Ranking.TOTAL: ("Total time", "the total time of the laps of the racer's best trial"),
    Ranking.BEST_LAP: ("Best lap", "the fastest single lap of any trial"),
    Ranking.AVERAGE_LAP: ("Average lap", "the average lap time of the racer's best trial"),
}

# Defaults: what a new race, ``paddock evaluate`` and the environments use when not told.
DEFAULT_TRACK = "oval"
DEFAULT_FORMAT = Format.TIME_TRIAL
DEFAULT_RANKING = Ranking.TOTAL
DEFAULT_LAPS = 3
DEFAULT_TRIALS = 3
DEFAULT_PENALTY_S = 5.0  # seconds frozen after leaving the track or causing a collision
DEFAULT_TIME_CAP_S = 180.0  # simulated seconds after which a trial is over

# Limits, inclusive.
PENALTIES_S = (0.0, 60.0)  # allowed range of a penalty, seconds
MAX_LAPS = 50
MAX_TRIALS = 20
MIN_TIME_CAP_S = 1.0
MAX_TIME_CAP_S = 3600.0
MAX_SEED = 2**63 - 1  # seeds are stored as signed 64-bit integers
MIN_CARS = 2  # head-to-head
MAX_CARS = 8
MAX_OBSTACLES = 12


class RaceConfigError(PaddockError, ValueError):
    """Raised when race settings are out of range or inconsistent."""


@dataclass(frozen=True)
class RaceConfig:
    """The rules of one evaluation; every entrant of a race is evaluated with the same."""

    track: str = DEFAULT_TRACK  #: library track name, or a .npy/.csv path
    format: str = DEFAULT_FORMAT  #: a :class:`Format` value
    laps: int = DEFAULT_LAPS  #: continuous laps per trial (heat)
    trials: int = DEFAULT_TRIALS  #: time trial: trials; head-to-head: rounds of seat-swapped heats
    ranking: str = DEFAULT_RANKING  #: a :class:`Ranking` value
    off_track_penalty: float = DEFAULT_PENALTY_S  #: seconds frozen after leaving the track
    collision_penalty: float = DEFAULT_PENALTY_S  #: seconds frozen after hitting a car from behind
    time_cap: float = DEFAULT_TIME_CAP_S  #: simulated seconds after which a trial is over
    min_laps: int | None = None  #: laps a trial needs to be ranked (default: all of them)
    seed: int = 0  #: race seed; trial seeds derive from it
    obstacles: int = 0  #: static boxes on the track (object avoidance)
    #: what varies between trials (:mod:`evaluator.conditions`); the default, ``none``, is
    #: also what settings stored before conditions existed ran with
    conditions: Conditions = Conditions()

    def __post_init__(self) -> None:
        if not isinstance(self.conditions, Conditions):
            try:
                object.__setattr__(self, "conditions", Conditions.parse(self.conditions))
            except ConditionsError as err:
                raise RaceConfigError(str(err)) from err
        if self.format not in FORMATS:
            raise RaceConfigError(f"format must be one of {', '.join(FORMATS)}, "
                                  f"got {self.format!r}")
        if self.ranking not in RANKINGS:
            raise RaceConfigError(f"ranking must be one of {', '.join(RANKINGS)}, "
                                  f"got {self.ranking!r}")
        _int_in(self.laps, 1, MAX_LAPS, "laps")
        _int_in(self.trials, 1, MAX_TRIALS, "trials")
        _int_in(self.seed, 0, MAX_SEED, "seed")
        _int_in(self.obstacles, 0, MAX_OBSTACLES, "obstacles")
        if self.min_laps is not None:
            _int_in(self.min_laps, 1, self.laps, "min_laps")
        for name in ("off_track_penalty", "collision_penalty"):
            v = getattr(self, name)
            if not (_is_number(v) and math.isfinite(v)
                    and PENALTIES_S[0] <= v <= PENALTIES_S[1]):
                raise RaceConfigError(f"{name} must be {PENALTIES_S[0]:g} to "
                                      f"{PENALTIES_S[1]:g} seconds, got {v!r}")
        if not (_is_number(self.time_cap) and math.isfinite(self.time_cap)
                and MIN_TIME_CAP_S <= self.time_cap <= MAX_TIME_CAP_S):
            raise RaceConfigError(f"time_cap must be {MIN_TIME_CAP_S:g} to {MAX_TIME_CAP_S:g} "
                                  f"seconds, got {self.time_cap!r}")

    @property
    def head_to_head(self) -> bool:
        """Whether the cars share the track (:attr:`Format.HEAD_TO_HEAD`)."""
        return self.format == Format.HEAD_TO_HEAD

    @property
    def required_laps(self) -> int:
        """Laps a trial needs to be ranked."""
        return self.laps if self.min_laps is None else self.min_laps

    def with_(self, **changes: Any) -> RaceConfig:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings under their API/CLI names."""
        return {"track": self.track, "format": str(self.format), "laps": self.laps,
                "trials": self.trials, "ranking": str(self.ranking),
                "off_track_penalty": self.off_track_penalty,
                "collision_penalty": self.collision_penalty, "time_cap": self.time_cap,
                "min_laps": self.required_laps, "seed": self.seed,
                "obstacles": self.obstacles, "conditions": self.conditions.to_dict()}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_in(v: Any, lo: int, hi: int, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RaceConfigError(f"{name} must be a whole number from {lo} to {hi}, got {v!r}")
