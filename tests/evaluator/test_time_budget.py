"""Time budgets: a policy that answers every action in time, but slowly, is stopped by its
inference-time budget instead of holding the evaluation for minutes; the wall-clock limit is
derived from the budgets; good policies race as before."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

import evaluator.sandbox as sandbox
from evaluator.cli import main
from evaluator.cli_policy import EXIT_TIMED_OUT
from evaluator.errors import TimeBudgetExceeded
from evaluator.observation import OBS_DIM
from evaluator.race import run_race
from evaluator.race_settings import RaceConfig
from evaluator.results import FINISHED, POLICY_ERROR
from evaluator.sandbox import SandboxOptions, evaluation_limit_s, inference_budget_s
from evaluator.validate import ValidatedPolicy, validate_policy
from tests.support.dbfixtures import policy_bytes
from tests.support.fake_children import slow_child

SLOW_S = 0.04  # per action: within the 50 ms deadline, far over the budget's average
BUDGET_S = 1.0  # a small budget, so the test takes seconds
DEFAULT_RACE = RaceConfig(track="oval", trials=3, time_cap=180.0)  # 8,100 actions at most
WALL_S = 8.0  # the slow runs below end well within this (without the budget: minutes)
OBS = np.zeros((1, OBS_DIM), dtype=np.float32)
# The per-action deadline, with room for a busy test machine (a loaded CI runner may take a
# 40 ms answer past 100 ms): the budget, not a deadline, is what must stop the slow policy.
DEADLINE_S = 1.0


def options(budget_s: float = 0.0) -> SandboxOptions:
    """No bubblewrap (the slow child lives in a temporary directory), the roomier deadline,
    an inference budget of ``budget_s`` (0: none)."""
    return SandboxOptions(use_bwrap=False, action_timeout_s=DEADLINE_S,
                          inference_budget_s=budget_s)


def slowpoke() -> ValidatedPolicy:
    """A valid policy that crawls (it would never finish a lap in time) and that the slow
    child thinks 40 ms over per action."""
    return validate_policy(policy_bytes(0.5, name="slowpoke"))


def follower() -> ValidatedPolicy:
    return validate_policy(policy_bytes(2.0, name="follower"))


@pytest.fixture
def slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy processes run the real child, slowed down for models named slowpoke."""
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", slow_child(tmp_path, b"slowpoke", SLOW_S))


def test_a_slow_time_trial_stops_at_its_inference_budget(slow: None) -> None:
    opts = options(BUDGET_S)
    t0 = time.monotonic()
    with pytest.raises(TimeBudgetExceeded) as info:
        run_race(DEFAULT_RACE, [slowpoke()], options=opts, record=False)
    took = time.monotonic() - t0
    err = info.value
    assert took < WALL_S, took
    assert err.budget_s == BUDGET_S and BUDGET_S < err.used_s < BUDGET_S + 3 * DEADLINE_S
    assert 0.9 * SLOW_S < err.used_s / err.actions < DEADLINE_S
    assert err.reason == (f"the policy used {err.used_s:.1f} s of inference in {err.actions} "
                          f"actions ({1000 * err.used_s / err.actions:.1f} ms each), over its "
                          f"budget of 1 s for this evaluation")


def test_in_a_heat_the_slow_car_is_retired_and_the_other_races_on(slow: None) -> None:
    """Each car is charged its own thinking time only: the fast car, whose answers wait in
    its pipe while the slow one's are read first, keeps well within its budget."""
    config = RaceConfig(track="oval", format="head-to-head", laps=1, trials=1, time_cap=30.0)
    opts = options(BUDGET_S)
    t0 = time.monotonic()
    result = run_race(config, [slowpoke(), follower()], options=opts, record=False)
    assert time.monotonic() - t0 < 2 * WALL_S
    slow_car, fast = result.cars
    assert slow_car.status == POLICY_ERROR
    found = re.fullmatch(r"the policy used (\d+\.\d) s of inference in (\d+) actions "
                         r"\((\d+\.\d) ms each\), over its budget of 1 s for this evaluation",
                         slow_car.error)
    assert found, slow_car.error
    used_s, each_ms = float(found.group(1)), float(found.group(3))
    assert BUDGET_S <= used_s < BUDGET_S + DEADLINE_S and each_ms >= 0.9 * 1000 * SLOW_S
    assert slow_car.trials[0].reason.startswith(slow_car.error + " (at ")
    assert fast.status == FINISHED and all(t.status == FINISHED for t in fast.trials)
    # Charged the slow car's waits, the fast car would have used its whole budget; its own
    # thinking is a fraction of it (half leaves room for a loaded machine's scheduling).
    assert result.sandbox["inference_s"][1] < BUDGET_S / 2, result.sandbox
    assert result.sandbox["inference_budget_s"] == BUDGET_S


def test_a_good_policy_keeps_far_within_the_default_budget() -> None:
    config = RaceConfig(track="oval", laps=1, trials=1, time_cap=60.0)
    result = run_race(config, [follower()], record=False)
    assert result.status == FINISHED
    budget = result.sandbox["inference_budget_s"]
    assert budget == inference_budget_s(config, 1, SandboxOptions()) == 10.0
    assert result.sandbox["inference_s"][0] < budget / 10


def test_the_default_budget_follows_the_race_within_bounds() -> None:
    opts = SandboxOptions()
    assert inference_budget_s(DEFAULT_RACE, 1, opts) == 40.5  # 8,100 actions × 5 ms
    assert inference_budget_s(DEFAULT_RACE.with_(time_cap=30.0), 1, opts) == 10.0  # floor
    assert inference_budget_s(DEFAULT_RACE.with_(trials=10), 1, opts) == 60.0  # ceiling
    h2h = DEFAULT_RACE.with_(format="head-to-head", trials=1)
    assert inference_budget_s(h2h, 2, opts) == 27.0  # 2 heats × 2,700 steps, each car asked
    fixed = SandboxOptions(inference_budget_s=7.5)
    assert inference_budget_s(DEFAULT_RACE, 1, fixed) == 7.5


def test_the_wall_clock_limit_is_derived_from_the_budgets() -> None:
    """Every load and every inference budget spent, the simulator's time on every step, with
    a margin: a policy within its budgets never meets the wall-clock limit; a slow one meets
    its budget minutes before the old limit (every action at its full deadline)."""
    opts = SandboxOptions()
    limit = evaluation_limit_s(DEFAULT_RACE, 1, opts)
    spent = (opts.load_timeout_s + inference_budget_s(DEFAULT_RACE, 1, opts)
             + 3 * opts.action_timeout_s + 8100 * sandbox.SIM_S_PER_STEP)
    assert limit == pytest.approx(sandbox.WALL_CLOCK_MARGIN * spent + sandbox.WALL_CLOCK_SLACK_S)
    assert limit < 8100 * opts.action_timeout_s  # under the slow policy's 6.75 minutes
    tighter = SandboxOptions(inference_budget_s=5.0)
    assert evaluation_limit_s(DEFAULT_RACE, 1, tighter) < limit
    assert evaluation_limit_s(DEFAULT_RACE, 1, SandboxOptions(evaluation_timeout_s=9)) == 9


def test_a_policy_process_alone_has_no_budget_unless_given_one(slow: None) -> None:
    with sandbox.PolicyProcess(slowpoke(), options()) as proc:
        for _ in range(3):
            proc.act(OBS)
        assert proc.inference_s >= 3 * SLOW_S
    opts = options(0.1)
    with sandbox.PolicyProcess(slowpoke(), opts) as proc:
        with pytest.raises(TimeBudgetExceeded):
            for _ in range(5):
                proc.act(OBS)
        # 40 ms each (more on a busy machine): the action that goes past 0.1 s is the last
        assert proc.actions in (2, 3) and proc.inference_s > opts.inference_budget_s



def test_paddock_evaluate_at_home_stops_at_the_same_budget(
        slow: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "slowpoke.onnx"
    model.write_bytes(policy_bytes(0.5, name="slowpoke"))
    t0 = time.monotonic()
    code = main(["evaluate", str(model), "--track", "oval", "--inference-budget", "1",
                 "--action-timeout-ms", str(1000 * DEADLINE_S), "--quiet"])
    assert time.monotonic() - t0 < WALL_S
    out, err = capsys.readouterr()
    assert code == EXIT_TIMED_OUT and out == ""
    line = err.strip().splitlines()[-1]
    assert re.fullmatch(r"paddock: error: time budget: the policy used 1\.\d s of inference in "
                        r"\d+ actions \([4-9]\d\.\d ms each\), over its budget of 1 s for this "
                        r"evaluation \(--inference-budget sets it\)", line), line
