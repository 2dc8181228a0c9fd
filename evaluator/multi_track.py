"""Time trials on several tracks: the entrant races every track, ranked by the sum of its
tracks' times.

A race lists 2 to :data:`~evaluator.race_settings.MAX_TRACKS` tracks
(:attr:`RaceConfig.tracks <evaluator.race_settings.RaceConfig.tracks>`: ``track`` first, then
``extra_tracks``). :func:`run_tracks` races the entrant on each in turn, each exactly as
:func:`~evaluator.race.run_race` races one track (a policy process of its own per track), and
combines the runs. A race with one track is :func:`~evaluator.race.run_race` itself: its
result is byte for byte what it always was.

**Seeds.** Track 1 runs under the race seed, so its block is what a one-track race on that
track gives. Track ``k`` > 1 runs under :func:`track_seed` (``SeedSequence(race_seed,
spawn_key=(0, k))``, a stream no trial seed shares: those use ``(t,)`` with ``t`` >= 1), and its
trials' seeds derive from that one as usual. Every entrant meets the same start jitter,
obstacles and race conditions on every track, and ``paddock evaluate --track NAME --seed
SEED`` with a block's ``track`` and ``seed`` repeats that track alone.

**Trials** are numbered across the tracks: trial ``t`` of track ``k`` is trial
``(k - 1) * trials + t``. The top-level ``trials`` list holds them all in that order, each
with its ``track``; the league stores one replay per trial under that number, so each track's
runs can be watched.

**Combined result** (:func:`combine`): a block per track (``track``, ``track_digest``,
``seed``, ``status``, ``ranking_time_s``, ``ranking_laps``, ``ranked_trial`` in the numbering
above, ``trials`` (their numbers), ``spread``, ``error``), and over them:

1. ``status`` is ``finished`` when every track finished (was ranked); otherwise
   ``policy_error`` when the policy failed on any track, else ``dnf``.
2. ``ranking_time_s`` is the sum of the tracks' ranking times when finished, else None.
3. ``ranking_laps`` is the sum of the tracks' ranking laps; ``tracks_finished`` counts the
   finished tracks and ``finished_time_s`` sums their times (the ranking of unfinished
   entries: :func:`combined_key`).
4. ``ranked_trial`` is the first track's ranked trial (where a replay opens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluator.policy_pool import PolicyPool
from evaluator.race import Progress, RaceResult, invalid_result, run_race
from evaluator.race_settings import MAX_SEED, RaceConfig
from evaluator.results import DNF, FINISHED, INVALID_POLICY, POLICY_ERROR, trial_spread
from evaluator.sandbox import SandboxOptions
from evaluator.telemetry import Telemetry
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy
from evaluator.version import PADDOCK_VERSION, SIM_VERSION

ROUNDING = 6  # decimals of the summed times (the evaluator's own rounding)


def track_seed(race_seed: int, index: int) -> int:
    """The race seed of track ``index`` (1-based) of a race: the race seed for the first,
    a stream of its own for each other."""
    if index == 1:
        return race_seed
    seq = np.random.SeedSequence(race_seed, spawn_key=(0, index))
    return int(seq.generate_state(1, dtype=np.uint64)[0]) & MAX_SEED


def track_configs(config: RaceConfig) -> list[RaceConfig]:
    """The one-track settings each track of ``config`` is raced under, in order."""
    return [config.with_(track=name, extra_tracks=(), seed=track_seed(config.seed, k))
            for k, name in enumerate(config.tracks, start=1)]


def load_tracks(config: RaceConfig) -> list[Track]:
    """Every track of ``config``, loaded (``TrackError`` names one that is missing)."""
    return [load_track(name) for name in config.tracks]


@dataclass
class MultiTrackResult:
    """The runs of one entrant on every track of a race, and their combination."""

    config: RaceConfig
    runs: list[RaceResult]  #: one per track, in the race's order

    @property
    def status(self) -> str:
        """The combined status (the module's rule 1)."""
        return str(combine(self.config, [r.to_dict() for r in self.runs])["status"])

    @property
    def track(self) -> Track:
        """The first track."""
        return self.runs[0].track

    @property
    def telemetry(self) -> list[Telemetry]:
        """Every recorded run, track after track (the trials' combined numbering)."""
        return [tel for run in self.runs for tel in run.telemetry]

    @property
    def sandbox(self) -> dict[str, Any]:
        """The first track's sandbox report (every track runs under the same options)."""
        return self.runs[0].sandbox

    def to_dict(self) -> dict[str, Any]:
        """The combined JSON (:func:`combine`)."""
        return combine(self.config, [r.to_dict() for r in self.runs])


def run_tracks(config: RaceConfig, policies: Sequence[ValidatedPolicy], *,
               options: SandboxOptions | None = None, tracks: Sequence[Track] | None = None,
               progress: Progress | None = None, record: bool = True,
               pool: PolicyPool | None = None) -> RaceResult | MultiTrackResult:
    """Race ``policies`` on every track of ``config``: :func:`~evaluator.race.run_race` for
    one track, else one run per track combined (``tracks``: the loaded tracks, in order;
    ``pool``: where each run takes its policy processes, as ``run_race`` does)."""
    loaded = list(tracks) if tracks is not None else load_tracks(config)
    if not config.extra_tracks:
        return run_race(config, policies, options=options, track=loaded[0],
                        progress=progress, record=record, pool=pool)
    configs = track_configs(config)
    runs = []
    for k, (cfg, trk) in enumerate(zip(configs, loaded, strict=True)):
        runs.append(run_race(cfg, policies, options=options, track=trk,
                             progress=_offset(progress, k, len(configs)), record=record,
                             pool=pool))
    return MultiTrackResult(config, runs)


def _offset(progress: Progress | None, k: int, n: int) -> Progress | None:
    """Progress of track ``k`` (0-based) of ``n`` as progress over the whole evaluation."""
    if progress is None:
        return None
    report: Callable[[int, int], None] = progress

    def tick(done: int, total: int) -> None:
        report(k * total + done, n * total)

    return tick


def invalid_tracks_result(config: RaceConfig, tracks: Sequence[Track],
                          error: str) -> dict[str, Any]:
    """The result JSON of a refused policy (status ``invalid_policy``): as
    :func:`~evaluator.race.invalid_result` for one track, with a block per track for several."""
    if not config.extra_tracks:
        return invalid_result(config, tracks[0], error)
    return combine(config, [invalid_result(cfg, trk, error)
                            for cfg, trk in zip(track_configs(config), tracks, strict=True)])


def combine(config: RaceConfig, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The combined result of one entrant's per-track results (``RaceResult.to_dict()``)."""
    per_track = config.trials
    blocks, trials = [], []
    for k, run in enumerate(runs):
        offset = k * per_track
        numbers = []
        for t in run["trials"]:
            trials.append({**t, "trial": t["trial"] + offset, "track": run["track"]})
            numbers.append(t["trial"] + offset)
        ranked = run["ranked_trial"]
        blocks.append({"track": run["track"], "track_digest": run["track_digest"],
                       "seed": run["seed"], "status": run["status"],
                       "ranking_time_s": run["ranking_time_s"],
                       "ranking_laps": run["ranking_laps"],
                       "ranked_trial": None if ranked is None else ranked + offset,
                       "trials": numbers, "spread": run["spread"], "error": run["error"]})
    finished = [b for b in blocks if b["status"] == FINISHED and b["ranking_time_s"] is not None]
    statuses = {b["status"] for b in blocks}
    if len(finished) == len(blocks):
        status = FINISHED
    elif INVALID_POLICY in statuses:
        status = INVALID_POLICY
    elif POLICY_ERROR in statuses:
        status = POLICY_ERROR
    else:
        status = DNF
    finished_time = round(sum(b["ranking_time_s"] for b in finished), ROUNDING)
    errors = [f"{b['track']}: {b['error']}" for b in blocks if b["error"]]
    return {"paddock_version": PADDOCK_VERSION, "sim_version": SIM_VERSION,
            "track": blocks[0]["track"], "track_digest": blocks[0]["track_digest"],
            "tracks": blocks, "format": config.format, "seed": config.seed, "status": status,
            "ranking": config.ranking,
            "ranking_time_s": finished_time if status == FINISHED else None,
            "ranking_laps": sum(int(b["ranking_laps"] or 0) for b in blocks),
            "tracks_finished": len(finished),
            "finished_time_s": finished_time if finished else None,
            "ranked_trial": blocks[0]["ranked_trial"],
            "settings": config.to_dict(), "trials": trials,
            "spread": trial_spread([], config.ranking),  # per track: each block's own
            "error": "; ".join(errors) or None}


def combined_key(result: dict[str, Any]) -> tuple[Any, ...]:
    """How combined results rank, smaller first.

    1. Entries that finished every track, by more laps in all, then the smaller sum of the
       tracks' ranking times.
    2. Then the others: more tracks finished first, then the smaller sum of the times of the
       tracks they finished, then more laps.
    """
    if result.get("status") == FINISHED and result.get("ranking_time_s") is not None:
        return (0, -int(result.get("ranking_laps") or 0), float(result["ranking_time_s"]))
    finished_time = result.get("finished_time_s")
    return (1, -int(result.get("tracks_finished") or 0),
            float("inf") if finished_time is None else float(finished_time),
            -int(result.get("ranking_laps") or 0))
