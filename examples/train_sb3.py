"""Train a Paddock driving policy with Stable-Baselines3 PPO and export it for the league.

    pip install -e ".[examples]"
    python examples/train_sb3.py --track royal-park --timesteps 600000 --output my_policy.onnx

What it does, one function per step (the tests call them one by one):

1. ``make_vec_env`` runs several ``paddock/TimeTrial-v0`` environments side by side, each
   scoring steps with a DeepRacer-style reward function (``reward_function.py`` beside this
   file, or ``--reward-function FILE``) and using the action space of a DeepRacer-style
   ``model_metadata.json`` (``--metadata FILE``; default continuous, steering -30..30 degrees,
   speed 1..4 m/s). Every episode draws its race conditions (start, sensor noise, grip,
   latency, steering bias) from its seed, as league trials do (``--conditions``, default
   ``standard``, what new league races use).
2. ``train`` runs PPO on them.
3. ``export_onnx`` turns the actor into a plain ONNX graph (opset 18, standard operators
   only, weights inside the file, every shape fixed but the batch): input ``obs``, float32
   ``[batch, 30]`` (observation v1); output ``action``, float32 ``[batch, 2]`` for a
   continuous action space or ``[batch, n]`` (one logit per action) for a discrete one. It
   embeds the model metadata the league needs to read those outputs, then runs the league's
   own static checks (``evaluator.validate``) on the result.
4. ``verify_export`` runs the file in onnxruntime and checks it against the torch network on
   real and random observations.

The exported action is the deterministic one. For a discrete action space that is the logits
(the league takes the largest). For a continuous one it is the mean of PPO's Gaussian, which
nothing bounds to [-1, 1]: Paddock clips a continuous policy's two outputs to [-1, 1] before
mapping them onto the steering and speed ranges (as Stable-Baselines3 clips actions before
they reach the environment during training), so the raw mean is exported as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import onnx
import onnx.inliner
import onnxruntime as ort
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import evaluator  # noqa: F401  (registers the paddock/ environments)
from evaluator.metadata import ModelMetadata, parse_metadata
from evaluator.observation import OBS_DIM
from evaluator.onnx_io import pack
from evaluator.track_library import load_track
from evaluator.validate import validate_policy

ENV_ID = "paddock/TimeTrial-v0"
# A track with fast sweepers, hairpins and both directions of turn: a policy trained here also
# finishes the DeepRacer tracks it never saw (docs/RACERS.md), where one trained on the oval
# runs out of time on some.
DEFAULT_TRACK = "royal-park"
DEFAULT_CONDITIONS = "standard"  # what new league races use: train for what you will meet
DEFAULT_REWARD_FILE = Path(__file__).with_name("reward_function.py")
DEFAULT_METADATA = {"action_space_type": "continuous",
                    "action_space": {"steering_angle": {"low": -30.0, "high": 30.0},
                                     "speed": {"low": 1.0, "high": 4.0}}}

N_ENVS = 8  # environments stepped side by side
N_STEPS = 512  # steps per environment between two PPO updates
BATCH_SIZE = 256  # PPO minibatch; divides N_STEPS, so rollouts split into whole minibatches
GAMMA = 0.99  # discount: a horizon of ~100 steps, about 7 s of driving at 15 Hz
LEARNING_RATE = 3e-4

INPUT_NAME = "obs"
OUTPUT_NAME = "action"
OPSET = 18  # the exporter's native opset: no version conversion
CHECK_STEPS = 64  # policy steps per environment whose observations check the export
CHECK_RANDOM = 256  # plus this many random observations from the observation space
ATOL = 1e-5  # largest difference allowed between onnxruntime and torch outputs


# ------------------------------------------------------------------ inputs
def load_reward_function(path: str | Path = DEFAULT_REWARD_FILE) -> Callable[[dict], float]:
    """Load ``reward_function`` from a DeepRacer-style Python file."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"paddock_reward_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, "reward_function", None)
    if not callable(function):
        raise ValueError(f"{path} defines no reward_function(params)")
    return function


def load_model_metadata(path: str | Path | None = None, name: str = "") -> dict[str, Any]:
    """Read a DeepRacer-style ``model_metadata.json`` (default: continuous), set its name."""
    doc = json.loads(Path(path).read_text("utf-8")) if path else dict(DEFAULT_METADATA)
    if name:
        doc["name"] = name
    parse_metadata(doc)  # refuse a bad file now rather than after training
    return doc


# ------------------------------------------------------------------ training
def make_env(track: str, model_metadata: Mapping[str, Any],
             reward_function: Callable[[dict], float] | None = None,
             conditions: str = DEFAULT_CONDITIONS,
             reward_file: str | Path = DEFAULT_REWARD_FILE) -> gymnasium.Env:
    """One training environment: Paddock's time trial with the racer's reward function, its
    episodes varied by ``conditions`` as league trials are. Without ``reward_function`` the
    environment loads its own copy of ``reward_file``, so a reward function that remembers
    the previous step in a module-level global (DeepRacer style) sees only this
    environment's steps."""
    return gymnasium.make(ENV_ID, track=track, model_metadata=model_metadata,
                          reward_function=reward_function or load_reward_function(reward_file),
                          conditions=conditions)


def train(track: str = DEFAULT_TRACK, *, timesteps: int, seed: int = 0, n_envs: int = N_ENVS,
          n_steps: int = N_STEPS, model_metadata: Mapping[str, Any] | None = None,
          reward_function: Callable[[dict], float] | None = None,
          reward_file: str | Path = DEFAULT_REWARD_FILE,
          conditions: str = DEFAULT_CONDITIONS, verbose: int = 0) -> PPO:
    """Train PPO on ``n_envs`` time trials of ``track`` for ``timesteps`` steps in all, each
    scored by its own copy of ``reward_file``'s reward function (or all by
    ``reward_function``, which must then keep no state between calls)."""
    # A 64-unit MLP gains nothing from several torch threads, and their spin-waiting slows
    # training down many times over when the CPU is busy with the simulation.
    torch.set_num_threads(1)
    env = make_vec_env(make_env, n_envs=n_envs, seed=seed, env_kwargs={
        "track": track,
        "model_metadata": model_metadata or DEFAULT_METADATA,
        "reward_function": reward_function,
        "reward_file": reward_file,
        "conditions": conditions,
    })
    batch_size = min(BATCH_SIZE, n_steps * n_envs)
    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=batch_size, gamma=GAMMA,
                learning_rate=LEARNING_RATE, seed=seed, device="cpu", verbose=verbose)
    model.learn(total_timesteps=timesteps)
    return model


# ------------------------------------------------------------------ export
class DeterministicActor(torch.nn.Module):
    """The policy's deterministic action: observation -> Gaussian mean, or logits."""

    def __init__(self, model: PPO) -> None:
        super().__init__()
        policy = model.policy
        self.features = policy.pi_features_extractor
        self.latent = policy.mlp_extractor.policy_net
        self.head = policy.action_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.latent(self.features(obs)))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's noise that says nothing about this model."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings():
            # raised inside torch.export by torch's own use of a deprecated pytree class
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                                    category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def export_onnx(model: PPO, metadata: ModelMetadata,
                example_obs: np.ndarray | None = None) -> bytes:
    """Export the deterministic actor as a plain ONNX graph with ``metadata`` embedded."""
    actor = DeterministicActor(model).eval()
    if example_obs is None:
        example_obs = np.zeros((2, OBS_DIM), dtype=np.float32)
    example = torch.as_tensor(np.asarray(example_obs, dtype=np.float32))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            actor, (example,), dynamo=True, opset_version=OPSET, verbose=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"obs": {0: "batch"}}, external_data=False)
    proto = program.model_proto
    if proto.functions:  # the league runs plain graphs: no model-local functions
        proto = onnx.inliner.inline_local_functions(proto)
    packed = pack(proto.SerializeToString(), metadata)
    validate_policy(packed)  # the league's own static checks: refuse here what it would refuse
    return packed


# ------------------------------------------------------------------ checks
def sample_observations(model: PPO, seed: int = 0) -> np.ndarray:
    """Observations the policy meets on track, plus random ones from the observation space."""
    env = model.get_env()
    assert env is not None, "the model has no environment"
    env.seed(seed)
    obs = env.reset()
    seen = [obs]
    for _ in range(CHECK_STEPS - 1):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, _ = env.step(action)
        seen.append(obs)
    space = env.observation_space
    rng = np.random.default_rng(seed)
    seen.append(rng.uniform(space.low, space.high, size=(CHECK_RANDOM, OBS_DIM)))
    return np.concatenate(seen).astype(np.float32)


def run_onnx(onnx_bytes: bytes, observations: np.ndarray) -> np.ndarray:
    """The exported policy's outputs for a batch of observations, from onnxruntime."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: observations})
    return np.asarray(output)


def run_torch(model: PPO, observations: np.ndarray) -> np.ndarray:
    """The trained network's deterministic outputs for a batch of observations."""
    with torch.no_grad():
        return DeterministicActor(model).eval()(torch.as_tensor(observations)).numpy()


def verify_export(model: PPO, onnx_bytes: bytes, observations: np.ndarray) -> float:
    """Check onnxruntime agrees with torch and with PPO's own deterministic actions.

    Returns the largest difference between the two outputs; raises ``RuntimeError`` if they
    disagree.
    """
    exported = run_onnx(onnx_bytes, observations)
    reference = run_torch(model, observations)
    diff = float(np.max(np.abs(exported - reference)))
    if not np.allclose(exported, reference, rtol=0.0, atol=ATOL):
        raise RuntimeError(f"onnxruntime and torch differ by up to {diff:.3g}")
    chosen, _ = model.predict(observations, deterministic=True)
    if isinstance(model.action_space, gymnasium.spaces.Discrete):
        same = np.array_equal(np.argmax(exported, axis=1), chosen)
    else:  # what Paddock does with a continuous output: clip it to [-1, 1]
        same = np.allclose(np.clip(exported, -1.0, 1.0), chosen, rtol=0.0, atol=ATOL)
    if not same:
        raise RuntimeError("the exported actions differ from PPO's deterministic actions")
    return diff


# ------------------------------------------------------------------ command line
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--track", default=DEFAULT_TRACK,
                        help=f"library track name or .npy/.csv file (default: {DEFAULT_TRACK})")
    parser.add_argument("--timesteps", type=int, default=600_000,
                        help="environment steps to train for (default: 600000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("-o", "--output", default="paddock_ppo.onnx",
                        help="ONNX file to write (default: paddock_ppo.onnx)")
    parser.add_argument("--envs", type=int, default=N_ENVS,
                        help=f"environments stepped side by side (default: {N_ENVS})")
    parser.add_argument("--metadata", help="model_metadata.json declaring the action space "
                                           "(default: continuous, -30..30 deg, 1..4 m/s)")
    parser.add_argument("--reward-function", default=str(DEFAULT_REWARD_FILE),
                        help="Python file defining reward_function(params) "
                             "(default: reward_function.py beside this script)")
    parser.add_argument("--name", help="model name shown on leaderboards "
                                       "(default: the output file's stem)")
    parser.add_argument("--conditions", default=DEFAULT_CONDITIONS,
                        choices=("none", "standard", "hard"),
                        help="race conditions each episode draws, as league trials do "
                             f"(default: {DEFAULT_CONDITIONS})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, export, verify, and say what to run next."""
    args = parse_args(argv)
    output = Path(args.output)
    try:
        meta_doc = load_model_metadata(args.metadata, args.name or output.stem)
        load_reward_function(args.reward_function)  # refuse a bad file before training
        load_track(args.track)
    except (OSError, ValueError) as err:  # a missing or malformed input file, unknown track
        print(f"train_sb3: error: {err}", file=sys.stderr)
        return 2
    metadata = parse_metadata(meta_doc)

    print(f"training PPO on {args.track} for {args.timesteps} steps "
          f"({args.envs} environments, seed {args.seed})")
    model = train(args.track, timesteps=args.timesteps, seed=args.seed, n_envs=args.envs,
                  model_metadata=meta_doc, reward_file=args.reward_function,
                  conditions=args.conditions, verbose=1)

    observations = sample_observations(model, args.seed)
    onnx_bytes = export_onnx(model, metadata, observations[:8])
    diff = verify_export(model, onnx_bytes, observations)
    output.write_bytes(onnx_bytes)
    policy = validate_policy(onnx_bytes)
    print(f"\nwrote {output} ({len(onnx_bytes) / 1024:.1f} KiB, {policy.parameter_count:,} "
          f"parameters, {metadata.action_spec.kind} actions, opset {policy.opset}, "
          f"operators: {', '.join(policy.ops)})")
    print(f"onnxruntime agrees with torch on {len(observations)} observations "
          f"(largest difference {diff:.2g})")
    print("\nnext, check it and race it the way the league will:")
    print(f"  paddock validate {output}")
    print(f"  paddock evaluate {output} --track {args.track} --json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
