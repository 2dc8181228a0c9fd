"""The racer's starter kit: ``examples/train_sb3.py`` trains, exports and checks a policy.

Skipped unless the ``examples`` extra (torch, Stable-Baselines3, onnxscript) is installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import onnx
import pytest
from onnx.external_data_helper import uses_external_data

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")
pytest.importorskip("onnxscript")

import evaluator  # noqa: E402,F401  (registers the environments)
from evaluator.metadata import METADATA_KEY, parse_metadata  # noqa: E402
from evaluator.observation import OBS_DIM  # noqa: E402
from evaluator.validate import validate_policy  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY_TIMESTEPS = 2048
TINY_ENVS = 4
TINY_STEPS = 512  # one PPO update of TINY_ENVS * TINY_STEPS = TINY_TIMESTEPS steps
DISCRETE = {"action_space_type": "discrete", "action_space": [
    {"steering_angle": -20, "speed": 1.5}, {"steering_angle": 0, "speed": 2.5},
    {"steering_angle": 20, "speed": 1.5}]}


def load_example(name: str) -> ModuleType:
    """Import an example script by path (``examples/`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"paddock_example_{name}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kit() -> ModuleType:
    return load_example("train_sb3.py")


def tiny_run(kit: ModuleType, model_metadata: dict, name: str):
    """Train for a few seconds, export, and return (model, metadata, ONNX bytes)."""
    doc = kit.load_model_metadata(None, name) if model_metadata is None else model_metadata
    metadata = parse_metadata({**doc, "name": name})
    model = kit.train("oval", timesteps=TINY_TIMESTEPS, seed=0, n_envs=TINY_ENVS,
                      n_steps=TINY_STEPS, model_metadata=doc)
    return model, metadata, kit.export_onnx(model, metadata)


@pytest.fixture(scope="module")
def continuous(kit: ModuleType):
    return tiny_run(kit, None, "tiny-continuous")


@pytest.fixture(scope="module")
def discrete(kit: ModuleType):
    return tiny_run(kit, DISCRETE, "tiny-discrete")


@pytest.mark.parametrize("run", ["continuous", "discrete"])
def test_onnxruntime_agrees_with_torch(run: str, request: pytest.FixtureRequest,
                                       kit: ModuleType) -> None:
    model, _, onnx_bytes = request.getfixturevalue(run)
    observations = kit.sample_observations(model, seed=1)
    assert observations.shape == (TINY_ENVS * kit.CHECK_STEPS + kit.CHECK_RANDOM, OBS_DIM)
    exported = kit.run_onnx(onnx_bytes, observations)
    np.testing.assert_allclose(exported, kit.run_torch(model, observations),
                               rtol=0, atol=kit.ATOL)
    assert kit.verify_export(model, onnx_bytes, observations) <= kit.ATOL


def test_continuous_output_is_the_raw_mean(continuous, kit: ModuleType) -> None:
    """Two unbounded values per observation: the league clips them, the export does not."""
    model, _, onnx_bytes = continuous
    far = np.full((1, OBS_DIM), 50.0, dtype=np.float32)  # far outside the space: big outputs
    out = kit.run_onnx(onnx_bytes, far)
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out, kit.run_torch(model, far), rtol=1e-5, atol=kit.ATOL)


@pytest.mark.parametrize("run, outputs", [("continuous", 2), ("discrete", 3)])
def test_graph_is_plain_and_the_league_accepts_it(run: str, outputs: int,
                                                  request: pytest.FixtureRequest,
                                                  kit: ModuleType) -> None:
    _, _, onnx_bytes = request.getfixturevalue(run)
    policy = validate_policy(onnx_bytes)
    assert policy.ops == ("Gemm", "Tanh")
    assert policy.opset == kit.OPSET and policy.output_size == outputs
    proto = onnx.load_from_string(onnx_bytes)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", kit.OPSET)]
    assert not proto.functions
    assert {n.domain for n in proto.graph.node} == {""}
    assert not any(uses_external_data(t) for t in proto.graph.initializer)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    for value, width in ((inp, OBS_DIM), (out, outputs)):
        batch, size = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert batch.dim_param and size.dim_value == width
    for batch_size in (1, 5):
        obs = np.zeros((batch_size, OBS_DIM), dtype=np.float32)
        assert kit.run_onnx(onnx_bytes, obs).shape == (batch_size, outputs)


@pytest.mark.parametrize("run, kind", [("continuous", "continuous"), ("discrete", "discrete")])
def test_file_carries_the_metadata(run: str, kind: str, request: pytest.FixtureRequest) -> None:
    _, metadata, onnx_bytes = request.getfixturevalue(run)
    props = {p.key: p.value for p in onnx.load_from_string(onnx_bytes).metadata_props}
    embedded = parse_metadata(props[METADATA_KEY])
    assert embedded == metadata
    assert embedded.action_spec.kind == kind
    assert embedded.name == f"tiny-{kind}"


def test_main_writes_a_checked_file_and_the_next_commands(
        kit: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "racer.onnx"
    assert kit.main(["--timesteps", "1024", "--envs", "2", "--seed", "3",
                     "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"paddock validate {out}" in printed
    assert f"paddock evaluate {out} --track royal-park --json" in printed
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert parse_metadata(props[METADATA_KEY]).name == "racer"


def test_metadata_is_checked_before_training(kit: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "model_metadata.json"
    bad.write_text(json.dumps({"action_space_type": "discrete", "action_space": []}))
    with pytest.raises(ValueError, match="metadata"):
        kit.load_model_metadata(bad)


def test_reward_function_reads_deepracer_params() -> None:
    reward_function = load_example("reward_function.py").reward_function
    env = gym.make("paddock/TimeTrial-v0", track="oval")
    _, info = env.reset(seed=0)
    rewards = []
    for _ in range(30):
        _, _, terminated, truncated, info = env.step(np.array([0.0, 0.5], dtype=np.float32))
        rewards.append(reward_function(info["params"]))
        if terminated or truncated:
            break
    assert all(isinstance(r, float) and math.isfinite(r) and abs(r) <= 1e5 for r in rewards)
    assert max(rewards) > 0.5  # driving along the centerline earns a real reward
    off = dict(info["params"], is_offtrack=True, all_wheels_on_track=False)
    assert reward_function(off) < 0.01


def test_the_reward_is_the_distance_covered_each_step() -> None:
    """A step at 4 m/s earns 1, at half the pace 0.5; a completed lap and a new episode do not
    count as going backwards or as a jump."""
    module = load_example("reward_function.py")
    reward_function = module.reward_function
    length = 60.0
    step_pct = 100.0 * (4.0 / 15.0) / length  # a step at 4 m/s, in percent of the lap
    on = {"track_length": length, "is_offtrack": False, "is_reversed": False,
          "all_wheels_on_track": True}
    assert reward_function({**on, "steps": 1, "progress": step_pct}) == pytest.approx(1.0)
    assert reward_function({**on, "steps": 2, "progress": 1.5 * step_pct}) == \
        pytest.approx(0.5)
    # the lap completed: half a step to the line, half a step into the next lap
    module._last.update(steps=30, progress=100.0 - step_pct / 2)
    assert reward_function({**on, "steps": 31, "progress": step_pct / 2}) == \
        pytest.approx(1.0)
    # a new episode starts from 0 again
    assert reward_function({**on, "steps": 1, "progress": step_pct}) == pytest.approx(1.0)
    assert reward_function({**on, "steps": 2, "progress": 2 * step_pct,
                            "is_offtrack": True}) < 0.01


def test_every_environment_scores_with_its_own_copy_of_the_reward(kit: ModuleType) -> None:
    """The reward remembers the previous step: environments stepped side by side in one
    process must not share that memory."""
    first, second = (kit.make_env("oval", kit.DEFAULT_METADATA) for _ in range(2))
    one, two = first.unwrapped.reward_function, second.unwrapped.reward_function
    assert one.__globals__ is not two.__globals__
    given = kit.load_reward_function()
    assert kit.make_env("oval", kit.DEFAULT_METADATA, given).unwrapped.reward_function is given
