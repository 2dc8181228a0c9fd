"""Warm policy processes (:mod:`evaluator.policy_pool`): a reused process gives the result a
fresh one gives, bit for bit, whatever ran before it; nothing of one evaluation reaches the
next; processes are recycled after an error, a changed sandbox setting, their action count,
near their CPU limit, and beyond the pool's bounds."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import evaluator.sandbox as sandbox
from evaluator import replay
from evaluator.actions import ActionSpec
from evaluator.errors import PolicyRejected
from evaluator.metadata import ModelMetadata
from evaluator.observation import OBS_DIM
from evaluator.onnx_io import mlp_policy, pack
from evaluator.policy_pool import PolicyPool, pool_key
from evaluator.race import RaceResult, run_race
from evaluator.race_settings import RaceConfig
from evaluator.results import FINISHED, POLICY_ERROR
from evaluator.sandbox import PolicyProcess, SandboxOptions
from evaluator.validate import ValidatedPolicy, validate_policy
from tests.support.dbfixtures import policy_bytes
from tests.support.fake_children import slow_child

TRIAL = RaceConfig(track="oval", laps=1, trials=2, time_cap=60.0)
HEAT = RaceConfig(track="oval", format="head-to-head", laps=1, trials=1, time_cap=60.0)
#: the sandbox block's wall-clock figures, and whether the process was warm: all else must match
TIMING = ("load_time_s", "inference_s", "warm")
OPTIONS = SandboxOptions()


def follower(speed: float = 2.0, name: str = "follower") -> ValidatedPolicy:
    return validate_policy(policy_bytes(speed, name=name))


def recurrent(name: str = "gru") -> ValidatedPolicy:
    """A valid policy with a GRU: the observation is a sequence of one step, and the
    steering comes from the GRU's last hidden state (its initial state is the default)."""
    hidden = 4
    rng = np.random.default_rng(7)
    w = rng.normal(0.0, 0.3, (1, 3 * hidden, OBS_DIM)).astype(np.float32)
    r = rng.normal(0.0, 0.3, (1, 3 * hidden, hidden)).astype(np.float32)
    b = np.zeros((1, 6 * hidden), dtype=np.float32)
    head = rng.normal(0.0, 0.5, (hidden, 2)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
             numpy_helper.from_array(b, "B"), numpy_helper.from_array(head, "head"),
             numpy_helper.from_array(np.array([1, 1, OBS_DIM], dtype=np.int64), "seq_shape"),
             numpy_helper.from_array(np.array([1, hidden], dtype=np.int64), "h_shape")]
    nodes = [helper.make_node("Reshape", ["obs", "seq_shape"], ["seq"]),
             helper.make_node("GRU", ["seq", "W", "R", "B"], ["", "h_last"],
                              hidden_size=hidden),
             helper.make_node("Reshape", ["h_last", "h_shape"], ["h"]),
             helper.make_node("MatMul", ["h", "head"], ["pre"]),
             helper.make_node("Tanh", ["pre"], ["action"])]
    graph = helper.make_graph(
        nodes, "gru", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, OBS_DIM])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = ModelMetadata(ActionSpec.continuous(speed=(1.5, 1.5)), name=name)
    return validate_policy(pack(model.SerializeToString(), meta))


def nan_policy() -> ValidatedPolicy:
    """Valid, but answers every observation with NaN: its car stops with a policy error."""
    meta = ModelMetadata(ActionSpec.continuous(speed=(1.0, 1.0)), name="broken")
    weights = np.zeros((2, OBS_DIM), dtype=np.float32)
    return validate_policy(mlp_policy([(weights, np.full(2, np.nan, dtype=np.float32))],
                                      meta).SerializeToString())


def everything(result: RaceResult) -> dict[str, Any]:
    """The whole outcome of a race but its wall-clock figures: the result JSON, the sandbox
    block and every replay, byte for byte."""
    return {"result": result.to_dict(),
            "sandbox": {k: v for k, v in result.sandbox.items() if k not in TIMING},
            "replays": [replay.encode(replay.from_telemetry(tel, {"trial": i}))
                        for i, tel in enumerate(result.telemetry, start=1)]}


@pytest.fixture
def pool() -> Any:
    with PolicyPool() as p:
        yield p


# ------------------------------------------------------------------ the same result
@pytest.mark.parametrize("make", [follower, recurrent], ids=["feed-forward", "recurrent"])
def test_a_warm_time_trial_is_bit_identical_to_a_fresh_one(pool: PolicyPool, make: Any
                                                            ) -> None:
    policy, other = make(), follower(1.5, name="other")
    fresh = run_race(TRIAL, [policy])
    first = run_race(TRIAL, [policy], pool=pool)
    run_race(TRIAL, [other], pool=pool)  # another model ran in the pool meanwhile
    warm = run_race(TRIAL, [policy], pool=pool)
    assert (fresh.sandbox["warm"], first.sandbox["warm"], warm.sandbox["warm"]) == \
        ([False], [False], [True])
    assert pool.started == 2 and pool.reused == 1
    assert fresh.status == FINISHED or make is recurrent
    assert everything(warm) == everything(first) == everything(fresh)


def test_a_warm_heat_is_bit_identical_to_a_fresh_one(pool: PolicyPool) -> None:
    cars = [follower(2.0, name="a"), follower(1.8, name="b")]
    fresh = run_race(HEAT, cars)
    run_race(TRIAL, [cars[0]], pool=pool)  # car a's process is warm from its time trial
    mixed = run_race(HEAT, cars, pool=pool)
    warm = run_race(HEAT, cars, pool=pool)
    assert mixed.sandbox["warm"] == [True, False] and warm.sandbox["warm"] == [True, True]
    assert everything(warm) == everything(mixed) == everything(fresh)


def test_nothing_of_one_evaluation_reaches_the_next(pool: PolicyPool) -> None:
    """A then B in one process gives the B that B alone gives."""
    policy = follower()
    other_seed = TRIAL.with_(seed=TRIAL.seed + 1, laps=2)
    alone = run_race(other_seed, [policy])
    run_race(TRIAL, [policy], pool=pool)
    after = run_race(other_seed, [policy], pool=pool)
    assert after.sandbox["warm"] == [True]
    assert everything(after) == everything(alone)


def test_the_inference_budget_is_per_evaluation(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow policy within its budget in each of two evaluations is not charged the first
    one's time in the second (together they are over the budget)."""
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", slow_child(tmp_path, b"slowpoke", 0.06))
    opts = SandboxOptions(use_bwrap=False, action_timeout_s=0.15, inference_budget_s=1.5)
    config = RaceConfig(track="oval", laps=1, trials=1, time_cap=1.0)  # 15 actions, 0.9 s
    slowpoke = follower(0.5, name="slowpoke")
    with PolicyPool() as pool:
        runs = [run_race(config, [slowpoke], options=opts, pool=pool) for _ in range(2)]
    assert [r.sandbox["warm"] for r in runs] == [[False], [True]]
    assert [r.sandbox["actions"] for r in runs] == [[15], [15]]
    assert all(0.85 < r.sandbox["inference_s"][0] < 1.5 for r in runs)  # 1.8 s together


def test_a_reset_process_answers_as_a_fresh_one() -> None:
    policy = recurrent()
    rng = np.random.default_rng(3)
    first, second = (rng.normal(0.0, 1.0, (2, OBS_DIM)).astype(np.float32) for _ in range(2))
    with PolicyProcess(policy) as fresh:
        expected = fresh.act(first)
    with PolicyProcess(policy) as proc:
        proc.act(second)
        proc.reset(policy, OPTIONS)
        assert (proc.actions, proc.inference_s, proc.warm) == (0, 0.0, True)
        assert proc.act(first).tobytes() == expected.tobytes()
        assert proc.lifetime_actions == 4
        with pytest.raises(ValueError, match="only the model it loaded"):
            proc.reset(follower(), OPTIONS)


def test_a_model_cannot_carry_state_between_calls() -> None:
    """Recurrent state would need a second input (and output): the validator refuses it, so
    every model's session is stateless and a warm process starts every run clean."""
    model = onnx.load_from_string(policy_bytes())
    model.graph.input.append(helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 4]))
    with pytest.raises(PolicyRejected, match="exactly one input"):
        validate_policy(model.SerializeToString())


# ------------------------------------------------------------------ recycling
def test_a_process_whose_car_failed_is_not_kept(pool: PolicyPool) -> None:
    broken = nan_policy()
    result = run_race(TRIAL, [broken], pool=pool)
    assert result.status == POLICY_ERROR and len(pool) == 0 and pool.recycled == 1
    assert run_race(TRIAL, [broken], pool=pool).sandbox["warm"] == [False]


def test_an_aborted_race_closes_its_processes(pool: PolicyPool) -> None:
    def stop(done: int, _total: int) -> None:
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_race(TRIAL, [follower()], pool=pool, progress=stop)
    assert len(pool) == 0 and pool.recycled == 1


def test_a_dead_idle_process_is_replaced(pool: PolicyPool) -> None:
    policy = follower()
    fresh = run_race(TRIAL, [policy])
    run_race(TRIAL, [policy], pool=pool)
    ((_, idle),) = pool._idle
    assert idle._proc is not None
    os.killpg(idle._proc.pid, signal.SIGKILL)
    idle._proc.wait()
    again = run_race(TRIAL, [policy], pool=pool)
    assert again.sandbox["warm"] == [False] and pool.started == 2
    assert everything(again) == everything(fresh)


def test_changed_sandbox_settings_recycle_every_process(pool: PolicyPool) -> None:
    policy = follower()
    run_race(TRIAL, [policy], pool=pool)
    ((_, old),) = pool._idle
    # What the parent applies per evaluation does not: the process is reused, under them.
    per_run = SandboxOptions(action_timeout_s=0.08, spin_s=0.0)
    assert run_race(TRIAL, [policy], options=per_run, pool=pool).sandbox["warm"] == [True]
    assert pool._idle[0][1] is old and old.options.action_timeout_s == 0.08
    # What shapes the child does: every idle process is closed.
    limits = SandboxOptions(memory_bytes=768 << 20)
    assert run_race(TRIAL, [policy], options=limits, pool=pool).sandbox["warm"] == [False]
    assert old._proc is None
    assert pool_key(policy, limits) != pool_key(policy, OPTIONS)
    assert pool_key(policy, per_run) == pool_key(policy, OPTIONS)


def test_a_process_is_recycled_after_its_action_count() -> None:
    policy = follower()
    with PolicyPool(max_actions=100) as pool:
        result = run_race(TRIAL, [policy], pool=pool)
        assert result.sandbox["actions"][0] > 100
        assert len(pool) == 0
    with PolicyPool(max_actions=10**6) as pool:
        run_race(TRIAL, [policy], pool=pool)
        assert len(pool) == 1


def test_a_process_near_its_cpu_limit_is_recycled(pool: PolicyPool) -> None:
    policy = follower()
    first = pool.acquire(policy, OPTIONS)
    left = OPTIONS.cpu_seconds - first.usage()[0]  # a forked process has used next to none
    pool.release(first)
    proc = pool.acquire(policy, OPTIONS, cpu_reserve_s=left + 0.5)
    try:
        assert not proc.warm and pool.started == 2 and pool.recycled == 1
    finally:
        pool.release(proc)
    proc = pool.acquire(policy, OPTIONS, cpu_reserve_s=1.0)
    pool.release(proc)
    assert proc.warm


def test_the_pool_is_bounded_by_count_then_memory() -> None:
    a, b = follower(2.0, name="a"), follower(1.8, name="b")
    with PolicyPool(max_processes=1) as pool:
        run_race(TRIAL, [a], pool=pool)
        run_race(TRIAL, [b], pool=pool)
        assert [proc.policy.sha256 for _, proc in pool._idle] == [b.sha256]
        assert run_race(TRIAL, [a], pool=pool).sandbox["warm"] == [False]
    with PolicyPool(max_rss_bytes=1) as pool:
        run_race(TRIAL, [a], pool=pool)
        assert len(pool) == 0 and pool.recycled == 1
    rss = PolicyProcess(a)
    try:
        assert rss.usage()[1] > 1 << 20  # resident memory is read from /proc
    finally:
        rss.close()
