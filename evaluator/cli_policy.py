"""``paddock validate``, ``paddock evaluate`` and ``paddock pack``: the racer's policy commands.

``evaluate`` runs exactly the evaluation the league runs (same engine, sandbox and seeds), so
its JSON can be compared field by field with the league's result. It exits 0 whenever the
evaluation ran, whatever the car did; a bad model, track or flag is one line on stderr and a
non-zero exit, as is an evaluation stopped at its wall-clock limit or by a policy past its
inference-time budget (exit 3, with the figures; the league fails such a job as
``time_budget``). At home the
sandbox is lenient: a missing layer is a warning (``--strict-sandbox`` makes it an error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.bots_race import speeds_from_flags
from evaluator.conditions import DEFAULT_PRESET, PRESETS, Conditions, ConditionsError
from evaluator.conditions import LIMITS as CONDITION_LIMITS
from evaluator.errors import PolicyFailed, PolicyRejected, TimeBudgetExceeded
from evaluator.metadata import parse_metadata
from evaluator.multi_track import (
    MultiTrackResult,
    invalid_tracks_result,
    load_tracks,
    run_tracks,
)
from evaluator.onnx_io import pack
from evaluator.race import RaceResult
from evaluator.race_fetch import LeagueRace, fetch_race
from evaluator.race_settings import (
    BOT_SPEEDS_MPS,
    DEFAULT_BOT_SPEED_MPS,
    DEFAULT_BOTS,
    DEFAULT_LAPS,
    DEFAULT_PENALTY_S,
    DEFAULT_RANKING,
    DEFAULT_TIME_CAP_S,
    DEFAULT_TRACK,
    DEFAULT_TRIALS,
    FORMATS,
    MAX_BOTS,
    RANKINGS,
    Format,
    RaceConfig,
    RaceConfigError,
    bot_name,
)
from evaluator.results import trial_spread
from evaluator.sandbox import (
    EvaluationTimedOut,
    PolicyProcess,
    SandboxOptions,
    WallClock,
    describe_missing,
    evaluation_limit_s,
    missing_required,
)
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy, load_policy_file, validate_policy
from evaluator.world import World

EXIT_INVALID = 2  # the model, track or flags were refused
EXIT_TIMED_OUT = 3  # the evaluation ran past its wall-clock limit or inference budget
BAR_WIDTH = 30  # characters of the progress bar


def _options(args: argparse.Namespace) -> SandboxOptions:
    overrides: dict[str, Any] = {}
    if getattr(args, "strict_sandbox", False):
        overrides["strict"] = True
    if getattr(args, "action_timeout_ms", None) is not None:
        overrides["action_timeout_s"] = args.action_timeout_ms / 1000.0
    if getattr(args, "wall_clock_limit", None) is not None:
        overrides["evaluation_timeout_s"] = args.wall_clock_limit
    if getattr(args, "inference_budget", None) is not None:
        overrides["inference_budget_s"] = args.inference_budget
    return SandboxOptions.from_env(**overrides)


def _warn_layers(layers: dict[str, Any], missing: list[str]) -> None:
    """At home the sandbox is lenient: say what it lacks, and louder when a league's worker
    would refuse to run here."""
    if not missing:
        return
    print("paddock: warning: sandbox layers not active here: " + ", ".join(missing),
          file=sys.stderr)
    required = missing_required(layers)
    if required:
        print("paddock: warning: fine for your own models; a league worker would refuse to "
              "run without " + describe_missing(required), file=sys.stderr)


def _load(path: str, metadata: str | None) -> ValidatedPolicy:
    try:
        return load_policy_file(path, metadata)
    except PolicyRejected as err:
        raise PolicyRejected(err.rule, f"{path}: {err.detail}") from err


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a policy file statically, then load it and take one action in the sandbox."""
    policy = _load(args.model, args.metadata)
    info = policy.summary()
    if not args.no_run:
        world = World(load_track("oval"))
        world.start_grid([0])
        try:
            with PolicyProcess(policy, _options(args)) as proc:
                out = proc.act(world.obs[:1].astype(np.float32))
                info["sandbox"] = {"layers": proc.layers, "missing": proc.missing_layers(),
                                   "load_time_s": round(proc.load_time_s, 4),
                                   "onnxruntime": proc.onnxruntime_version}
                info["first_output"] = [float(v) for v in out[0]]
        except PolicyFailed as err:
            raise PolicyRejected("run", f"{args.model}: {err.reason}") from err
        _warn_layers(info["sandbox"]["layers"], info["sandbox"]["missing"])
    if args.json:
        print(json.dumps({"valid": True, **info}, indent=2))
        return 0
    spec = policy.metadata.action_spec
    print(f"{args.model}: valid")
    print(f"  name        {policy.metadata.name or '-'}")
    print(f"  sha256      {policy.sha256}")
    print(f"  actions     {spec.kind}, {spec.size} outputs")
    print(f"  network     {policy.node_count} nodes, {policy.parameter_count:,} parameters, "
          f"opset {policy.opset}: {', '.join(policy.ops)}")
    if "sandbox" in info:
        sb = info["sandbox"]
        print(f"  sandbox     loaded in {sb['load_time_s'] * 1000:.0f} ms; layers: "
              + ", ".join(k for k, v in sb["layers"].items() if v))
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Embed metadata into a model and write the result (refused if the result is invalid)."""
    data = Path(args.model).read_bytes()
    meta = parse_metadata(Path(args.metadata).read_bytes())
    packed = pack(data, meta)
    try:
        validate_policy(packed)
    except PolicyRejected as err:
        raise PolicyRejected(err.rule, f"{args.model}: {err.detail}") from err
    Path(args.output).write_bytes(packed)
    print(f"wrote {args.output} ({len(packed):,} bytes, {meta.action_spec.kind} actions)")
    return 0


#: ``paddock evaluate``'s flags that set a race setting, and their defaults
SETTING_FLAGS: dict[str, Any] = {
    "track": DEFAULT_TRACK, "format": None, "laps": DEFAULT_LAPS, "trials": DEFAULT_TRIALS,
    "ranking": DEFAULT_RANKING, "off_track_penalty": DEFAULT_PENALTY_S,
    "collision_penalty": DEFAULT_PENALTY_S, "time_cap": DEFAULT_TIME_CAP_S, "min_laps": None,
    "obstacles": 0, "seed": 0, "conditions": str(DEFAULT_PRESET)}


def _config(args: argparse.Namespace) -> RaceConfig:
    """The settings of the flags (their defaults where left out), or of ``--race``."""
    if args.race is not None:
        return _league_race(args).config
    given = {k: (getattr(args, k) if getattr(args, k) is not None else default)
             for k, default in SETTING_FLAGS.items()}
    bots = args.bots is not None or args.bot_speed is not None
    given["format"] = given["format"] or (Format.HEAD_TO_HEAD if args.opponent
                                          else Format.HEAD_TO_BOT if bots
                                          else Format.TIME_TRIAL)
    if bots or given["format"] == Format.HEAD_TO_BOT:
        given["bots"] = speeds_from_flags(args.bots, args.bot_speed)
    given["conditions"] = _conditions(given["conditions"], args.condition)
    names = _track_names(args)
    given["track"], given["extra_tracks"] = names[0], tuple(names[1:])
    return RaceConfig(**given)


def _track_names(args: argparse.Namespace) -> list[str]:
    """The tracks of ``--track`` (repeated) and ``--tracks A,B``, in order; the default
    track when neither is given."""
    names = list(args.track or [])
    if args.tracks is not None:
        names += [n.strip() for n in args.tracks.split(",")]
    if any(not n for n in names):
        raise RaceConfigError(f"--tracks takes track names separated by commas, got "
                              f"{args.tracks!r}")
    return names or [DEFAULT_TRACK]


def _league_race(args: argparse.Namespace) -> LeagueRace:
    """The race of ``--race`` on ``--server``; no flag may set what the race sets."""
    given = [k for k in SETTING_FLAGS if getattr(args, k) is not None]
    given += ["condition"] if args.condition else []
    given += ["tracks"] if args.tracks is not None else []
    given += ["opponent"] if args.opponent else []
    given += [k for k in ("bots", "bot_speed") if getattr(args, k) is not None]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise RaceConfigError(f"--race takes every setting from the league's race; leave out "
                              f"{flags}")
    if not args.server:
        raise RaceConfigError("--race needs the league's address: --server URL (or "
                              "PADDOCK_SERVER)")
    if "league_race" not in vars(args):
        args.league_race = fetch_race(args.server, args.race, args.token)
    found: LeagueRace = args.league_race
    return found


def _conditions(preset: str, changes: list[str]) -> Conditions:
    """Conditions ``preset`` with each ``NAME=VALUE`` of ``changes`` changed."""
    values: dict[str, Any] = {"preset": preset}
    for item in changes:
        name, sep, text = item.partition("=")
        if not sep or name not in CONDITION_LIMITS:
            raise RaceConfigError(f"--condition takes NAME=VALUE with NAME one of "
                                  f"{', '.join(CONDITION_LIMITS)}, got {item!r}")
        try:
            values[name] = int(text) if name == "latency_steps" else float(text)
        except ValueError:
            raise RaceConfigError(f"--condition {name} needs a number, got {text!r}") from None
    try:
        return Conditions.parse(values)
    except ConditionsError as err:
        raise RaceConfigError(str(err)) from err


class _Bar:
    """A one-line progress bar on a terminal's stderr."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        frac = min(done / total, 1.0) if total else 1.0
        fill = int(frac * BAR_WIDTH)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (BAR_WIDTH - fill)}] {frac * 100:5.1f}% "
                         f"{done / 15.0:7.1f} s simulated")
        sys.stderr.flush()


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Race a policy (alone, or against opponents) and report the result."""
    config = _config(args)
    if args.race is not None:
        race = _league_race(args)
        tracks = list(race.tracks or (race.track,))
        server = race.url.rsplit('/races/', 1)[0]
        if race.practice:
            print(f"paddock: race {race.race_id} ({race.name}) of {server}: its settings, "
                  f"conditions and track, on the practice seed {race.config.seed}: the race's "
                  "seed is secret until it closes, so your times will differ from the "
                  "league's", file=sys.stderr)
        else:
            print(f"paddock: race {race.race_id} ({race.name}) of {server}"
                  f": its settings, seed and track, exactly as the league races it",
                  file=sys.stderr)
    else:
        tracks = load_tracks(config)
    try:
        policies = [_load(args.model, args.metadata)]
        policies += [_load(o, None) for o in args.opponent]
    except PolicyRejected as err:
        if args.json:
            print(json.dumps(invalid_tracks_result(config, tracks, str(err))))
        raise
    bar = _Bar() if sys.stderr.isatty() and not args.quiet else None
    options = _options(args)
    clock = WallClock(evaluation_limit_s(config, len(policies), options))

    def progress(done: int, total: int) -> None:
        clock.check()
        if bar is not None:
            bar(done, total)

    try:
        result = run_tracks(config, policies, options=options, tracks=tracks,
                            progress=progress, record=bool(args.replay or args.trace_csv))
    except TimeBudgetExceeded as err:
        return _out_of_time(bar, f"{err.reason} (--inference-budget sets it)")
    except PolicyFailed as err:
        raise PolicyRejected("run", err.reason) from err
    except EvaluationTimedOut as err:
        return _out_of_time(bar, f"{err} (--wall-clock-limit sets it)")
    if bar is not None:
        sys.stderr.write("\n")
    _warn_layers(result.sandbox.get("layers", {}), result.sandbox.get("missing", []))
    written = _write_outputs(args, result)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        _print_result(result)
    for path in written:
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0



def _out_of_time(bar: _Bar | None, reason: str) -> int:
    """An evaluation stopped by a time budget: say why (below the progress bar, if one is
    drawn), and the exit status."""
    if bar is not None:
        sys.stderr.write("\n")
    print(f"paddock: error: time budget: {reason}", file=sys.stderr)
    return EXIT_TIMED_OUT

def _write_outputs(args: argparse.Namespace, result: RaceResult | MultiTrackResult) -> list[str]:
    """The replays (one file per trial; on several tracks numbered across them) and the
    trace log asked for."""
    written: list[str] = []
    per_track = result.runs if isinstance(result, MultiTrackResult) else [result]
    if args.replay:
        from evaluator import replay

        base = Path(args.replay)
        runs = [(run, tel) for run in per_track for tel in run.telemetry]
        for n, (run, tel) in enumerate(runs, start=1):
            path = base if len(runs) == 1 else base.with_name(f"{base.stem}-{n}{base.suffix}")
            meta = {"race": run.config.to_dict(), "trial": n}
            path.write_bytes(replay.encode(replay.from_telemetry(tel, meta)))
            written.append(str(path))
    if args.trace_csv:
        from evaluator import trace

        runs_ = [(k * result.config.trials + t.trial, tel, 0,
                  t.status == "dnf" and t.reason.startswith("time cap"))
                 for k, run in enumerate(per_track)
                 for t, tel in zip(run.cars[0].trials, run.telemetry, strict=True)]
        with open(args.trace_csv, "w", newline="", encoding="utf-8") as fh:
            trace.write_trace_csv(runs_, fh)
        written.append(args.trace_csv)
    return written


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_result(result: RaceResult | MultiTrackResult) -> None:
    if isinstance(result, MultiTrackResult):
        _print_tracks(result)
        return
    cfg = result.config
    print(f"{cfg.format} on {result.track.name} ({result.track.length:.1f} m), {cfg.laps} laps, "
          f"seed {cfg.seed}, ranking by {cfg.ranking}")
    print(f"race conditions {cfg.conditions.describe()}")
    if cfg.bots:
        print("bots: " + ", ".join(bot_name(k, v) for k, v in enumerate(cfg.bots, start=1)))
    for car_no, car_res in enumerate(result.cars):
        label = "" if len(result.cars) == 1 else f"car {car_no + 1} "
        ranked = (f", ranking time {_fmt(car_res.ranking_time_s)} s"
                  if car_res.ranking_time_s is not None else "")
        failed = f" - {car_res.error}" if car_res.error else ""
        print(f"{label}{car_res.name} [{car_res.sha256[:12]}]: {car_res.status}{ranked}{failed}")
        print(f"  {'TRIAL':>5} {'STATUS':<13} {'LAPS':>4} {'TOTAL':>9} {'BEST':>8} "
              f"{'OFF':>4} {'COL':>4} {'PEN':>6} {'DONE%':>6}")
        for t in car_res.trials:
            print(f"  {t.trial:>5} {t.status:<13} {t.laps_completed:>4} "
                  f"{_fmt(t.total_time_s):>9} {_fmt(t.best_lap_s):>8} {t.off_track_count:>4} "
                  f"{t.collision_count:>4} {t.penalty_s:>6.1f} {t.completion_pct:>6.1f}"
                  + (f"  P{t.position} from slot {t.grid_slot}" if t.position else "")
                  + (f"  {t.reason}" if t.reason else ""))
        spread = trial_spread(car_res.trials, cfg.ranking)
        if spread["finished"] > 1:
            print(f"  spread over {spread['finished']} finished trials: median "
                  f"{_fmt(spread['median_s'])} s, σ {_fmt(spread['stdev_s'])} s, range "
                  f"{_fmt(spread['range_s'])} s")
    if len(result.cars) > 1:
        print("positions: " + ", ".join(f"{n + 1}. car {i + 1}"
                                        for n, i in enumerate(result.positions)))


def _print_tracks(result: MultiTrackResult) -> None:
    """Each track's run as one track's is printed, then the sum that ranks the entry."""
    n = len(result.runs)
    for k, run in enumerate(result.runs, start=1):
        print(f"track {k} of {n} (seed {run.config.seed}):")
        _print_result(run)
        print()
    combined = result.to_dict()
    total = (f"total ranking time {_fmt(combined['ranking_time_s'])} s (the sum of the "
             f"{n} tracks')" if combined["ranking_time_s"] is not None else
             f"finished {combined['tracks_finished']} of {n} tracks: not ranked by time")
    print(f"{combined['status']}: {total}")


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_parsers(sub: Any) -> None:
    """Add ``validate``, ``evaluate`` and ``pack`` to the ``paddock`` sub-command set."""
    p = sub.add_parser("validate", help="check a policy file and try it in the sandbox")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--metadata", help="model_metadata.json (else the embedded metadata)")
    p.add_argument("--no-run", action="store_true", help="static checks only")
    p.add_argument("--strict-sandbox", action="store_true",
                   help="fail when a required sandbox layer is missing (as league workers do)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("evaluate", help="race a policy exactly as the league does")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--metadata", help="model_metadata.json for MODEL")
    p.add_argument("--opponent", action="append", default=[], metavar="MODEL",
                   help="an opponent policy (repeat for more); implies head-to-head")
    p.add_argument("--race", type=int, metavar="ID",
                   help="evaluate exactly as league race ID does: every setting from --server")
    p.add_argument("--server", default=os.environ.get("PADDOCK_SERVER"), metavar="URL",
                   help="the league's address for --race (default: $PADDOCK_SERVER)")
    p.add_argument("--token", default=os.environ.get("PADDOCK_TOKEN"),
                   help="an API token, for a race of a private league (default: "
                        "$PADDOCK_TOKEN)")
    # The race's own settings: None when not given, so that --race can refuse them.
    p.add_argument("--track", action="append", metavar="NAME",
                   help=f"library track name or .npy/.csv file ({DEFAULT_TRACK}); repeat for "
                        "a race on several tracks, ranked by the sum of their times")
    p.add_argument("--tracks", metavar="A,B,...",
                   help="the tracks of a race on several tracks, comma-separated (the same as "
                        "repeating --track)")
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--laps", type=int, help=f"default {DEFAULT_LAPS}")
    p.add_argument("--trials", type=int, help=f"default {DEFAULT_TRIALS}")
    p.add_argument("--ranking", choices=RANKINGS, help=f"default {DEFAULT_RANKING}")
    p.add_argument("--off-track-penalty", type=float, metavar="SECONDS",
                   help=f"default {DEFAULT_PENALTY_S:g}")
    p.add_argument("--collision-penalty", type=float, metavar="SECONDS",
                   help=f"default {DEFAULT_PENALTY_S:g}")
    p.add_argument("--time-cap", type=float, metavar="SECONDS",
                   help=f"default {DEFAULT_TIME_CAP_S:g}")
    p.add_argument("--min-laps", type=int, help="laps needed to be ranked (default: all)")
    p.add_argument("--obstacles", type=int, help="static boxes on the track (default 0)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--bots", type=int, metavar="N",
                   help=f"head-to-bot: race N built-in bot cars (1-{MAX_BOTS}, default "
                        f"{DEFAULT_BOTS}); implies --format head-to-bot")
    p.add_argument("--bot-speed", metavar="M/S",
                   help=f"head-to-bot: the bots' top speed, {BOT_SPEEDS_MPS[0]:g}-"
                        f"{BOT_SPEEDS_MPS[1]:g} m/s (default {DEFAULT_BOT_SPEED_MPS:g}), or one "
                        "a bot separated by commas")
    p.add_argument("--conditions", choices=tuple(PRESETS),
                   help="what varies between trials: start, grip, latency, steering bias, "
                        f"sensor noise (default {DEFAULT_PRESET}; none: nothing but a small "
                        "start jitter)")
    p.add_argument("--condition", action="append", default=[], metavar="NAME=VALUE",
                   help="change one bound of --conditions: " + ", ".join(CONDITION_LIMITS))
    p.add_argument("--replay", metavar="OUT", help="write the replay (one file per trial)")
    p.add_argument("--trace-csv", metavar="OUT", help="write a DeepRacer-style trace log")
    p.add_argument("--action-timeout-ms", type=float, help="per-action budget (default 50)")
    p.add_argument("--wall-clock-limit", type=_seconds, metavar="SECONDS",
                   help="stop the whole evaluation after this long (default: every load "
                        "and inference budget used up, with the simulator's time, times 1.5, "
                        "plus a minute)")
    p.add_argument("--inference-budget", type=_seconds, metavar="SECONDS",
                   help="the policy's total inference time (default: 5 ms for each action "
                        "the race can ask for, between 10 and 60 s, as league workers do)")
    p.add_argument("--strict-sandbox", action="store_true",
                   help="fail when a required sandbox layer is missing (as league workers do)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pack", help="embed model metadata into a policy file")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--metadata", required=True, help="model_metadata.json to embed")
    p.add_argument("-o", "--output", required=True, help="where to write the packed model")
    p.set_defaults(func=cmd_pack)
