"""Train the league's demo bots with evolution strategies and write them to ``evaluator/bots``.

The bots are small tanh networks (30 observations -> one hidden layer -> steering and speed in
[-1, 1]) trained with numpy alone: antithetic evolution strategies with centred-rank fitness
shaping and Adam. The networks are mirror-symmetric by construction (every hidden unit has a
twin that sees the mirrored observation), so a right-hand hairpin is driven like the
left-hand ones that dominate the anticlockwise library.

A whole population drives at once in one :class:`~evaluator.world.World` per track (cars
independent, race rules: leaving the track freezes the car for the league's penalty), and
fitness is the distance covered along the track minus a fixed cost per off-track, summed over
several library tracks and start points.

Training is a career: every bot continues from the previous one's weights with a wider speed
range and more generations, so ``rookie`` is slow and unpolished and ``ace`` uses the car's
whole speed range. Each bot is written as ONNX with its metadata embedded, then measured by
running that file with onnxruntime through ``World`` under race rules; the figures go to
``catalog.json``.

Run ``python tools/train_bots.py`` to regenerate the shipped bots (deterministic: fixed
seeds); ``--quick`` is a seconds-long smoke run for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from evaluator import _sim, car
from evaluator.actions import ActionSpec
from evaluator.metadata import METADATA_KEY, ModelMetadata, parse_metadata
from evaluator.observation import (
    I_CURVATURE,
    I_HEADING,
    I_OBJECT_RAYS,
    I_OFFSET,
    I_STEERING,
    I_TRACK_RAYS,
    NUM_RAYS,
    OBS_DIM,
)
from evaluator.onnx_io import mlp_policy
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.world import World

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "evaluator" / "bots"
SEED = 1907  # master seed: initial weights, perturbations and start points
HIDDEN_UNITS = 16  # free hidden units; each has a mirrored twin, so the ONNX layer has 32
ACTION_DIM = 2  # steering and speed, both in [-1, 1]
STEERING_RANGE_DEG = (-car.MAX_STEER_DEG, car.MAX_STEER_DEG)  # every bot steers full lock
MIN_SPEED_MPS = 0.5  # slowest speed any bot asks for
INIT_SCALE = 0.3  # initial hidden weights: this over the square root of the fan-in

# Evolution strategies
POPULATION = 48  # perturbed policies per generation (antithetic pairs)
SIGMA = 0.05  # standard deviation of the weight perturbations
LEARNING_RATE = 0.02  # Adam step size
ADAM_BETAS = (0.9, 0.999)  # Adam's moment decay rates
ADAM_EPS = 1e-8  # Adam's denominator guard
WEIGHT_DECAY = 0.0005  # share of every weight removed per generation (decoupled)

# Fitness
HORIZON_S = 20.0  # simulated seconds each start is driven for
STARTS_PER_TRACK = 2  # start points per track and generation (drawn from the seed)
OFF_TRACK_COST_M = 6.0  # metres of progress one off-track costs on top of the penalty
OFF_TRACK_PENALTY_S = 5.0  # the league's freeze for leaving the track
TRAIN_TRACKS = ("oval", "kidney", "speedway", "pinwheel", "brake-point", "royal-park",
                "switchback", "hairpin-alley")  # forest-ridge and harbour-streets are held out

# Measurement of the written files
MEASURE_TRACKS = ("oval", "forest-ridge", "harbour-streets")  # one trained on, two held out
MEASURE_LAPS = 3  # laps of a measured race
MEASURE_TIME_CAP_S = 180.0  # a measured race ends after this much simulated time
MEASURE_SEED = 0  # seed of the start jitter of measured races


@dataclass(frozen=True)
class Stage:
    """One bot of the career: its speed range and the generations it trains for."""

    name: str
    description: str
    max_speed: float  #: top of the speed range, m/s
    generations: int  #: generations trained on top of the previous stage


STAGES = (
    Stage("rookie", "Fresh out of karting school: cautious, slow and still finding the "
          "edges of the track.", 1.6, 12),
    Stage("amateur", "Knows the way round and keeps it tidy, but never asks the car for "
          "more than a club racer's pace.", 2.4, 30),
    Stage("pro", "Quick and consistent: brakes late, rarely puts a wheel wrong.", 3.2, 90),
    Stage("ace", "Uses the whole car: flat out on the straights, right on the grip limit in "
          "the corners.", car.MAX_SPEED_MPS, 70),
)


@dataclass(frozen=True)
class Settings:
    """What a training run does; the defaults make the shipped bots."""

    seed: int = SEED
    population: int = POPULATION
    sigma: float = SIGMA
    learning_rate: float = LEARNING_RATE
    hidden_units: int = HIDDEN_UNITS
    horizon_s: float = HORIZON_S
    starts_per_track: int = STARTS_PER_TRACK
    off_track_cost_m: float = OFF_TRACK_COST_M
    tracks: tuple[str, ...] = TRAIN_TRACKS
    generation_scale: float = 1.0  #: multiplies every stage's generations
    measure_tracks: tuple[str, ...] = MEASURE_TRACKS
    stages: tuple[Stage, ...] = field(default=STAGES)


QUICK = Settings(population=8, horizon_s=3.0, starts_per_track=1, tracks=("oval", "kidney"),
                 generation_scale=0.1, measure_tracks=("oval",))


# ------------------------------------------------------------------------- the policy
def mirror_map() -> tuple[np.ndarray, np.ndarray]:
    """Index and sign arrays: the mirror image of a scene is observed as ``sign * obs[index]``."""
    index = np.arange(OBS_DIM)
    sign = np.ones(OBS_DIM)
    for first in (I_TRACK_RAYS, I_OBJECT_RAYS):  # rays run right to left, symmetrically
        index[first:first + NUM_RAYS] = first + NUM_RAYS - 1 - np.arange(NUM_RAYS)
    sign[[I_STEERING, I_HEADING, I_OFFSET]] = -1.0
    sign[I_CURVATURE:] = -1.0
    return index, sign


MIRROR_INDEX, MIRROR_SIGN = mirror_map()


def num_params(hidden: int) -> int:
    """Free parameters: hidden weights and biases, steering and speed weights, speed bias."""
    return hidden * OBS_DIM + hidden + ACTION_DIM * hidden + 1


def init_params(hidden: int, rng: np.random.Generator) -> np.ndarray:
    """Initial flat parameters: small random hidden layer, zero output layer."""
    theta = np.zeros(num_params(hidden))
    theta[:hidden * OBS_DIM] = rng.standard_normal(hidden * OBS_DIM) * INIT_SCALE / np.sqrt(
        OBS_DIM)
    return theta


def unflatten(theta: np.ndarray, hidden: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Free parameters (..., n) -> the layers [(W1, b1), (W2, b2)] of a mirror-symmetric net.

    Every hidden unit has a twin that sees the mirrored observation; steering reads the
    difference of the twins and speed their sum (no steering bias), so the network steers
    the mirror image of a scene exactly the other way at the same speed. That makes it
    ``30 -> 2 x hidden -> 2`` with tied weights: W of shape (..., out, in).
    """
    lead = theta.shape[:-1]
    cut = np.cumsum([hidden * OBS_DIM, hidden, hidden, hidden])
    w, b, steer, speed, speed_bias = np.split(theta, cut, axis=-1)
    w = w.reshape(*lead, hidden, OBS_DIM)
    w1 = np.concatenate([w, w[..., MIRROR_INDEX] * MIRROR_SIGN], axis=-2)
    b1 = np.concatenate([b, b], axis=-1)
    w2 = np.stack([np.concatenate([steer, -steer], axis=-1),
                   np.concatenate([speed, speed], axis=-1)], axis=-2)
    b2 = np.concatenate([np.zeros_like(speed_bias), speed_bias], axis=-1)
    return [(w1, b1), (w2, b2)]


def forward(layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray) -> np.ndarray:
    """Outputs in [-1, 1] of P networks for their cars: obs (P, K, 30) -> (P, K, 2), float32."""
    (w1, b1), (w2, b2) = layers
    h = np.tanh(np.einsum("phi,pki->pkh", w1, obs) + b1[:, None, :])
    out: np.ndarray = np.tanh(np.einsum("poh,pkh->pko", w2, h) + b2[:, None, :])
    return out


def to_physical(u: np.ndarray, spec: ActionSpec) -> np.ndarray:
    """Map outputs (N, 2) in [-1, 1] to (steering degrees, speed m/s) like ``map_unit``."""
    u = np.clip(u.astype(np.float64), -1.0, 1.0)
    lo, hi = spec.steering_range
    slo, shi = spec.speed_range
    out = np.empty_like(u)
    out[:, 0] = lo + (u[:, 0] + 1.0) * 0.5 * (hi - lo)
    out[:, 1] = slo + (u[:, 1] + 1.0) * 0.5 * (shi - slo)
    return out


def action_spec(max_speed: float) -> ActionSpec:
    """The continuous action space of a bot whose top speed is ``max_speed`` m/s."""
    return ActionSpec.continuous(STEERING_RANGE_DEG, (MIN_SPEED_MPS, max_speed))


# ------------------------------------------------------------------------- fitness
def track_fitness(thetas: np.ndarray, hidden: int, spec: ActionSpec, track: Track,
                  starts: np.ndarray, steps: int, off_cost: float) -> np.ndarray:
    """Per policy and start (P, K): metres covered in ``steps`` steps, minus off-track costs."""
    pop, k = thetas.shape[0], starts.shape[0]
    world = World(track, pop * k, race=True, off_track_penalty=OFF_TRACK_PENALTY_S,
                  interact=False)
    for i in range(pop * k):
        world.place(i, float(starts[i % k]))
    world.observe()
    layers = [(w.astype(np.float32), b.astype(np.float32)) for w, b in unflatten(thetas, hidden)]
    offs = np.zeros(pop * k)
    for _ in range(steps):
        obs = world.obs.astype(np.float32).reshape(pop, k, OBS_DIM)
        u = forward(layers, obs).reshape(pop * k, ACTION_DIM)
        ev = world.step(to_physical(u, spec))
        offs += ev[:, _sim.E_OFFTRACK]
    dist = world.cars[:, _sim.C_S_TOTAL] - world.cars[:, _sim.C_S_ORIGIN]
    score: np.ndarray = (dist - off_cost * offs).reshape(pop, k)
    return score


def fitness(thetas: np.ndarray, settings: Settings, spec: ActionSpec,
            tracks: Sequence[Track], rng: np.random.Generator) -> np.ndarray:
    """Fitness of every policy: its scores summed over all tracks and start points."""
    steps = int(round(settings.horizon_s * car.CONTROL_HZ))
    total = np.zeros(thetas.shape[0])
    for track in tracks:
        starts = rng.uniform(0.0, track.length, settings.starts_per_track)
        total += track_fitness(thetas, settings.hidden_units, spec, track, starts, steps,
                               settings.off_track_cost_m).sum(axis=1)
    return total


def centred_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of x scaled to [-0.5, 0.5] (ties broken by position, so deterministic)."""
    ranks = np.empty(x.size)
    ranks[np.argsort(x, kind="stable")] = np.arange(x.size)
    return ranks / (x.size - 1) - 0.5


@dataclass
class Adam:
    """Adam ascent on a flat parameter vector."""

    size: int
    lr: float
    m: np.ndarray = field(init=False)
    v: np.ndarray = field(init=False)
    t: int = 0

    def __post_init__(self) -> None:
        self.m = np.zeros(self.size)
        self.v = np.zeros(self.size)

    def step(self, grad: np.ndarray) -> np.ndarray:
        """The parameter change for an ascent gradient."""
        self.t += 1
        b1, b2 = ADAM_BETAS
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        mhat = self.m / (1 - b1 ** self.t)
        vhat = self.v / (1 - b2 ** self.t)
        update: np.ndarray = self.lr * mhat / (np.sqrt(vhat) + ADAM_EPS)
        return update


def train_stage(theta: np.ndarray, stage: Stage, settings: Settings, tracks: Sequence[Track],
                rng: np.random.Generator, log: bool) -> tuple[np.ndarray, list[float]]:
    """Run one stage's generations from ``theta``; returns the new weights and the history."""
    spec = action_spec(stage.max_speed)
    half = settings.population // 2
    adam = Adam(theta.size, settings.learning_rate)
    history: list[float] = []
    generations = max(1, int(round(stage.generations * settings.generation_scale)))
    for gen in range(generations):
        eps = rng.standard_normal((half, theta.size))
        thetas = np.concatenate([theta + settings.sigma * eps, theta - settings.sigma * eps])
        scores = fitness(thetas, settings, spec, tracks, rng)
        shaped = centred_ranks(scores)
        grad = (shaped[:half] - shaped[half:]) @ eps / (half * settings.sigma)
        theta = (1.0 - WEIGHT_DECAY) * theta + adam.step(grad)
        history.append(float(scores.mean()))
        if log:
            print(f"{stage.name:8s} gen {gen + 1:3d}/{generations}: mean {scores.mean():7.1f} "
                  f"best {scores.max():7.1f}", file=sys.stderr, flush=True)
    return theta, history


# ------------------------------------------------------------------------- ONNX and measuring
def to_onnx(theta: np.ndarray, stage: Stage, hidden: int) -> onnx.ModelProto:
    """The bot as an ONNX model with its metadata embedded."""
    meta = ModelMetadata(action_spec(stage.max_speed), name=stage.name)
    return mlp_policy(unflatten(theta, hidden), meta, name=stage.name)


def load_bot(path: Path) -> tuple[ort.InferenceSession, ModelMetadata]:
    """An onnxruntime session of a bot file and its embedded metadata."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    return session, parse_metadata(props[METADATA_KEY])


def race(paths: Sequence[Path], track: Track, *, laps: int = MEASURE_LAPS,
         time_cap_s: float = MEASURE_TIME_CAP_S, seed: int = MEASURE_SEED) -> list[dict[str, Any]]:
    """Drive each bot file alone on ``track`` under race rules; its figures, one dict each.

    Every bot gets the same start (jitter drawn from ``seed``); the race ends when all have
    done ``laps`` laps (0: never) or at ``time_cap_s`` seconds.
    """
    bots = [load_bot(p) for p in paths]
    n = len(bots)
    world = World(track, n, race=True, off_track_penalty=OFF_TRACK_PENALTY_S, laps=laps,
                  interact=False)
    for i in range(n):
        world.grid_place(i, 0, rng=np.random.default_rng(seed))
    world.observe()
    acts = np.zeros((n, 2))
    offs = np.zeros(n, dtype=np.int64)
    for _ in range(int(round(time_cap_s * car.CONTROL_HZ))):
        if laps and all(world.done(i) for i in range(n)):
            break
        for i, (session, meta) in enumerate(bots):
            feed = {session.get_inputs()[0].name: world.obs[i:i + 1].astype(np.float32)}
            out = session.run(None, feed)[0]
            acts[i] = meta.action_spec.map_unit(float(out[0, 0]), float(out[0, 1]))
        offs += world.step(acts)[:, _sim.E_OFFTRACK].astype(np.int64)
    results = []
    for i in range(n):
        times = world.lap_times[i]
        finished = bool(laps) and world.done(i)
        results.append({
            "laps": world.laps(i),
            "lap_times_s": [round(t, 3) for t in times],
            "best_lap_s": round(min(times), 3) if times else None,
            "mean_lap_s": round(sum(times) / len(times), 3) if times else None,
            "race_time_s": round(sum(times), 3) if finished else None,
            "distance_m": round(world.race_distance(i), 2),
            "off_tracks": int(offs[i]),
        })
    return results


# ------------------------------------------------------------------------- the run
def training_record(settings: Settings, previous: str | None, history: list[float],
                    total: int) -> dict[str, Any]:
    """How one bot was trained, for the catalog."""
    shared = {k: v for k, v in asdict(settings).items() if k not in ("stages", "measure_tracks")}
    return {
        "method": "antithetic evolution strategies, centred-rank fitness, Adam",
        "network": f"{OBS_DIM} -> {2 * settings.hidden_units} tanh (mirror-symmetric twins) "
                   f"-> {ACTION_DIM} tanh",
        "continued_from": previous,
        "generations": len(history),
        "total_generations": total,
        "final_mean_fitness_m": round(history[-1], 2),
        "off_track_penalty_s": OFF_TRACK_PENALTY_S,
        **shared,
    }


def train(settings: Settings, out_dir: Path, *, log: bool = True) -> dict[str, Any]:
    """Train every stage, write ``<name>.onnx`` and ``catalog.json`` to out_dir; the catalog."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(settings.seed)
    tracks = [load_track(name) for name in settings.tracks]
    theta = init_params(settings.hidden_units, rng)
    entries: list[dict[str, Any]] = []
    total = 0
    started = time.perf_counter()
    for stage in settings.stages:
        theta, history = train_stage(theta, stage, settings, tracks, rng, log)
        total += len(history)
        path = out_dir / f"{stage.name}.onnx"
        path.write_bytes(to_onnx(theta, stage, settings.hidden_units).SerializeToString())
        previous = entries[-1]["name"] if entries else None
        entries.append({
            "name": stage.name,
            "file": path.name,
            "description": stage.description,
            "model_metadata": action_spec(stage.max_speed).to_metadata(),
            "training": training_record(settings, previous, history, total),
            "measured": {},
        })
    train_s = time.perf_counter() - started
    paths = [out_dir / e["file"] for e in entries]
    for track_name in settings.measure_tracks:
        for entry, figures in zip(entries, race(paths, load_track(track_name)), strict=True):
            entry["measured"][track_name] = figures
    catalog = {
        "bots": entries,
        "measurement": {
            "tracks": list(settings.measure_tracks),
            "laps": MEASURE_LAPS,
            "time_cap_s": MEASURE_TIME_CAP_S,
            "start_seed": MEASURE_SEED,
            "off_track_penalty_s": OFF_TRACK_PENALTY_S,
            "how": "each ONNX file run with onnxruntime, alone on the track, race rules",
        },
    }
    (out_dir / "catalog.json").write_text(json.dumps(catalog, indent=2) + "\n", "utf-8")
    if log:
        print(f"trained {total} generations in {train_s:.1f} s, measured in "
              f"{time.perf_counter() - started - train_s:.1f} s", file=sys.stderr)
    return catalog


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train and write the bots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument("--seed", type=int, default=SEED, help="master seed")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.quick and args.out == OUT_DIR:
        parser.error("--quick needs --out DIR, so that it cannot replace the shipped bots")
    base = QUICK if args.quick else Settings()
    settings = replace(base, seed=args.seed)
    catalog = train(settings, args.out, log=not args.quiet)
    for entry in catalog["bots"]:
        figures = ", ".join(f"{t}: {m['laps']} laps, best {m['best_lap_s']} s, "
                            f"{m['off_tracks']} off" for t, m in entry["measured"].items())
        print(f"{entry['name']}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
