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
    HEAD_TO_BOT = "head-to-bot"  # each entry races built-in bot cars, ranked like a time trial


class Ranking(enum.StrEnum):
    """Which time of its trials ranks an entry (:func:`~evaluator.results.rank_trials`)."""

    TOTAL = "total"  # the sum of the laps of a trial
    BEST_LAP = "best-lap"  # the fastest single lap of any counted trial
    AVERAGE_LAP = "average-lap"  # the mean lap of a trial


FORMATS = tuple(Format)  #: every format, in the order forms offer them
RANKINGS = tuple(Ranking)  #: every ranking method, in the order forms offer them

#: What a format is called on the site.
FORMAT_LABELS: dict[str, str] = {Format.TIME_TRIAL: "Time trial",
                                 Format.HEAD_TO_HEAD: "Head-to-head",
                                 Format.HEAD_TO_BOT: "Head-to-bot"}
#: The formats whose entries are evaluated one at a time and ranked by their trials' times
#: (the league's time-trial leaderboard, one evaluation job per entry).
SOLO_FORMATS = (Format.TIME_TRIAL, Format.HEAD_TO_BOT)
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
MAX_BOTS = 6  # head-to-bot: bot cars on the track with the entrant, at least one
BOT_SPEEDS_MPS = (0.5, 4.0)  # head-to-bot: a bot car's top speed, m/s
DEFAULT_BOTS = 3  # head-to-bot: bot cars when not told (``paddock evaluate``, the race form)
DEFAULT_BOT_SPEED_MPS = 1.5
MAX_TRACKS = 5  # a time trial on several tracks: the first track and up to four more


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
    #: a time trial on several tracks: the library tracks raced after ``track``, each once
    #: (:mod:`evaluator.multi_track`); empty, the usual one-track race
    extra_tracks: tuple[str, ...] = ()
    #: head-to-bot: the bot cars' top speeds, m/s, one a car (:func:`parse_bots` reads the
    #: JSON shape ``[{"speed": 1.6}, ...]``); empty for the other formats
    bots: tuple[float, ...] = ()

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
        self._check_tracks()
        self._check_bots()

    def _check_tracks(self) -> None:
        """Several tracks: 2 to :data:`MAX_TRACKS` distinct names, time trials only."""
        extra = self.extra_tracks
        if not isinstance(extra, list | tuple) or not all(isinstance(t, str) and t for t in extra):
            raise RaceConfigError(f"extra_tracks must be a list of track names, got {extra!r}")
        object.__setattr__(self, "extra_tracks", tuple(extra))
        if not extra:
            return
        if self.head_to_head:
            raise RaceConfigError("tracks: several tracks are for time trials; a head-to-head "
                                  "race runs on one track")
        if len(self.tracks) > MAX_TRACKS:
            raise RaceConfigError(f"tracks: a race has at most {MAX_TRACKS} tracks, got "
                                  f"{len(self.tracks)}")
        twice = sorted({t for t in self.tracks if self.tracks.count(t) > 1})
        if twice:
            raise RaceConfigError(f"tracks: each track once; {', '.join(twice)} is listed "
                                  "twice")

    def _check_bots(self) -> None:
        """Head-to-bot: 1 to :data:`MAX_BOTS` bots; the other formats: none."""
        object.__setattr__(self, "bots", parse_bots(self.bots))
        if self.format == Format.HEAD_TO_BOT and not self.bots:
            raise RaceConfigError(f"bots: a head-to-bot race needs 1 to {MAX_BOTS} bot cars")
        if self.format != Format.HEAD_TO_BOT and self.bots:
            raise RaceConfigError(f"bots: only a head-to-bot race has bot cars, this is "
                                  f"{self.format}")

    @property
    def tracks(self) -> tuple[str, ...]:
        """Every track of the race, ``track`` first."""
        return (self.track, *self.extra_tracks)

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
                "obstacles": self.obstacles, "conditions": self.conditions.to_dict(),
                # only when there are any: a one-track race's settings read as they always did
                **({"extra_tracks": list(self.extra_tracks)} if self.extra_tracks else {}),
                # head-to-bot only: the other formats' settings read as they always did
                **({"bots": bots_json(self.bots)} if self.bots else {})}


def parse_bots(value: Any) -> tuple[float, ...]:
    """The bot cars of a head-to-bot race, as their top speeds in m/s.

    ``value`` is their JSON shape, a list with one object a car, ``{"speed": 1.6}`` (how the
    league stores them, the API takes them and the result JSON shows them), or a list of
    speeds. At most :data:`MAX_BOTS` cars, each speed :data:`BOT_SPEEDS_MPS` inclusive;
    anything else raises :class:`RaceConfigError` saying what is wrong.
    """
    if not isinstance(value, list | tuple):
        raise RaceConfigError(f"bots must be a list of bot cars like [{{\"speed\": 1.5}}], "
                              f"got {value!r}")
    if len(value) > MAX_BOTS:
        raise RaceConfigError(f"bots: at most {MAX_BOTS} bot cars, got {len(value)}")
    lo, hi = BOT_SPEEDS_MPS
    speeds = []
    for k, bot in enumerate(value, start=1):
        speed: Any = bot.get("speed") if isinstance(bot, dict) else bot
        if isinstance(bot, dict) and set(bot) != {"speed"}:
            raise RaceConfigError(f"bots: bot {k} must be {{\"speed\": m/s}}, got {bot!r}")
        if not (_is_number(speed) and math.isfinite(speed) and lo <= speed <= hi):
            raise RaceConfigError(f"bots: bot {k}'s speed must be {lo:g} to {hi:g} m/s, "
                                  f"got {speed!r}")
        speeds.append(float(speed))
    return tuple(speeds)


def bots_json(speeds: tuple[float, ...] | list[float]) -> list[dict[str, float]]:
    """Bot cars' speeds in their JSON shape: ``[{"speed": 1.6}, ...]``."""
    return [{"speed": s} for s in speeds]


def bot_name(k: int, speed: float) -> str:
    """What bot car ``k`` (1-based) of a head-to-bot race is called: "Bot 1 (1.6 m/s)"."""
    return f"Bot {k} ({speed:g} m/s)"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int_in(v: Any, lo: int, hi: int, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RaceConfigError(f"{name} must be a whole number from {lo} to {hi}, got {v!r}")
