"""``paddock validate``, ``paddock evaluate`` and ``paddock pack``: the racer's policy commands.

``evaluate`` runs exactly the evaluation the league runs (same engine, sandbox and seeds), so
its JSON can be compared field by field with the league's result. It exits 0 whenever the
evaluation ran, whatever the car did; a bad model, track or flag is one line on stderr and a
non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.errors import PolicyFailed, PolicyRejected
from evaluator.metadata import parse_metadata
from evaluator.onnx_io import pack
from evaluator.race import RaceResult, invalid_result, run_race
from evaluator.race_settings import (
    DEFAULT_LAPS,
    DEFAULT_PENALTY_S,
    DEFAULT_RANKING,
    DEFAULT_TIME_CAP_S,
    DEFAULT_TRACK,
    DEFAULT_TRIALS,
    FORMATS,
    RANKINGS,
    Format,
    RaceConfig,
)
from evaluator.sandbox import PolicyProcess, SandboxOptions
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy, load_policy_file, validate_policy
from evaluator.world import World

EXIT_INVALID = 2  # the model, track or flags were refused
BAR_WIDTH = 30  # characters of the progress bar


def _options(args: argparse.Namespace) -> SandboxOptions:
    overrides: dict[str, Any] = {}
    if getattr(args, "strict_sandbox", False):
        overrides["strict"] = True
    if getattr(args, "action_timeout_ms", None) is not None:
        overrides["action_timeout_s"] = args.action_timeout_ms / 1000.0
    return SandboxOptions.from_env(**overrides)


def _warn_layers(missing: list[str]) -> None:
    if missing:
        print("paddock: warning: sandbox layers not active here: " + ", ".join(missing),
              file=sys.stderr)


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
        _warn_layers(info["sandbox"]["missing"])
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


def _config(args: argparse.Namespace) -> RaceConfig:
    fmt = args.format or (Format.HEAD_TO_HEAD if args.opponent else Format.TIME_TRIAL)
    return RaceConfig(track=args.track, format=fmt, laps=args.laps, trials=args.trials,
                      ranking=args.ranking, off_track_penalty=args.off_track_penalty,
                      collision_penalty=args.collision_penalty, time_cap=args.time_cap,
                      min_laps=args.min_laps, seed=args.seed, obstacles=args.obstacles)


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
    track = load_track(args.track)
    try:
        policies = [_load(args.model, args.metadata)]
        policies += [_load(o, None) for o in args.opponent]
    except PolicyRejected as err:
        if args.json:
            print(json.dumps(invalid_result(config, track, str(err))))
        raise
    bar = _Bar() if sys.stderr.isatty() and not args.quiet else None
    try:
        result = run_race(config, policies, options=_options(args), track=track,
                          progress=bar, record=bool(args.replay or args.trace_csv))
    except PolicyFailed as err:
        raise PolicyRejected("run", err.reason) from err
    if bar is not None:
        sys.stderr.write("\n")
    _warn_layers(result.sandbox.get("missing", []))
    written = _write_outputs(args, result)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        _print_result(result)
    for path in written:
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _write_outputs(args: argparse.Namespace, result: RaceResult) -> list[str]:
    written: list[str] = []
    if args.replay:
        from evaluator import replay

        base = Path(args.replay)
        runs = result.telemetry
        for n, tel in enumerate(runs, start=1):
            path = base if len(runs) == 1 else base.with_name(f"{base.stem}-{n}{base.suffix}")
            meta = {"race": result.config.to_dict(), "trial": n}
            path.write_bytes(replay.encode(replay.from_telemetry(tel, meta)))
            written.append(str(path))
    if args.trace_csv:
        from evaluator import trace

        trials = result.cars[0].trials
        runs_ = [(t.trial, tel, 0, t.status == "dnf" and t.reason.startswith("time cap"))
                 for t, tel in zip(trials, result.telemetry, strict=True)]
        with open(args.trace_csv, "w", newline="", encoding="utf-8") as fh:
            trace.write_trace_csv(runs_, fh)
        written.append(args.trace_csv)
    return written


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_result(result: RaceResult) -> None:
    cfg = result.config
    print(f"{cfg.format} on {result.track.name} ({result.track.length:.1f} m), {cfg.laps} laps, "
          f"seed {cfg.seed}, ranking by {cfg.ranking}")
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
    if len(result.cars) > 1:
        print("positions: " + ", ".join(f"{n + 1}. car {i + 1}"
                                        for n, i in enumerate(result.positions)))


def add_parsers(sub: Any) -> None:
    """Add ``validate``, ``evaluate`` and ``pack`` to the ``paddock`` sub-command set."""
    p = sub.add_parser("validate", help="check a policy file and try it in the sandbox")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--metadata", help="model_metadata.json (else the embedded metadata)")
    p.add_argument("--no-run", action="store_true", help="static checks only")
    p.add_argument("--strict-sandbox", action="store_true",
                   help="fail when a sandbox layer is missing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("evaluate", help="race a policy exactly as the league does")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--metadata", help="model_metadata.json for MODEL")
    p.add_argument("--opponent", action="append", default=[], metavar="MODEL",
                   help="an opponent policy (repeat for more); implies head-to-head")
    p.add_argument("--track", default=DEFAULT_TRACK, help="library track name or .npy/.csv file")
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("--laps", type=int, default=DEFAULT_LAPS)
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS)
    p.add_argument("--ranking", choices=RANKINGS, default=DEFAULT_RANKING)
    p.add_argument("--off-track-penalty", type=float, default=DEFAULT_PENALTY_S,
                   metavar="SECONDS")
    p.add_argument("--collision-penalty", type=float, default=DEFAULT_PENALTY_S,
                   metavar="SECONDS")
    p.add_argument("--time-cap", type=float, default=DEFAULT_TIME_CAP_S, metavar="SECONDS")
    p.add_argument("--min-laps", type=int, help="laps needed to be ranked (default: all)")
    p.add_argument("--obstacles", type=int, default=0, help="static boxes on the track")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replay", metavar="OUT", help="write the replay (one file per trial)")
    p.add_argument("--trace-csv", metavar="OUT", help="write a DeepRacer-style trace log")
    p.add_argument("--action-timeout-ms", type=float, help="per-action budget (default 50)")
    p.add_argument("--strict-sandbox", action="store_true",
                   help="fail when a sandbox layer is missing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pack", help="embed model metadata into a policy file")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--metadata", required=True, help="model_metadata.json to embed")
    p.add_argument("-o", "--output", required=True, help="where to write the packed model")
    p.set_defaults(func=cmd_pack)
