"""The race engine: determinism, penalties, the time cap, head-to-head blame and seats,
ranking, discrete policies and the settings' validation.

Every race here is a real one: small ONNX policies built with ``mlp_policy``, each run in its
sandboxed child process, one lap of the shipped oval (24.8 m).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator import replay, sandbox, trace
from evaluator.metadata import parse_metadata
from evaluator.observation import I_HEADING, I_OFFSET, OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.race import RaceResult, run_race, trial_seed
from evaluator.race_settings import RANKINGS, RaceConfig, RaceConfigError
from evaluator.results import DNF, FINISHED, POLICY_ERROR, TrialResult, rank_trials
from evaluator.sandbox import SandboxOptions
from evaluator.validate import ValidatedPolicy, validate_policy
from evaluator.world import penalty_steps
from tests.support.fake_children import CHILD_MAIN, write_child

# A generous per-action budget: these tests check the rules, not the deadline, and must not
# flake on a busy machine running them in parallel.
OPTIONS = SandboxOptions(action_timeout_s=1.0)
STEPS_PER_S = 15


# ----------------------------------------------------------------------------- policies
def continuous(speed: float, *, follow: bool = True, steer_bias: float = 0.0,
               name: str = "") -> ValidatedPolicy:
    """A linear continuous policy at one fixed speed (the metadata's speed range is a point).

    ``follow`` steers back to the centerline (heading and offset feedback); without it the
    steering is constant: ``tanh(steer_bias)`` of full lock, 0 is straight ahead.
    """
    meta = parse_metadata({"name": name, "action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -30, "high": 30}, "speed": {"low": speed, "high": speed}}})
    w = np.zeros((2, OBS_DIM), dtype=np.float32)
    if follow:
        w[0, I_HEADING], w[0, I_OFFSET] = -2.0, -1.0
    b = np.array([steer_bias, 0.0], dtype=np.float32)
    return validate_policy(mlp_policy([(w, b)], meta).SerializeToString())


DISCRETE_ACTIONS = [(-20.0, 1.0), (20.0, 1.0), (-20.0, 2.0), (20.0, 2.0)]


def discrete(right: int, left: int) -> ValidatedPolicy:
    """A discrete policy over DISCRETE_ACTIONS whose largest logit is always ``right`` or
    ``left``: both get a large bias, and the centerline feedback picks between them."""
    meta = parse_metadata({"action_space_type": "discrete", "action_space": [
        {"steering_angle": a, "speed": s} for a, s in DISCRETE_ACTIONS]})
    w = np.zeros((len(DISCRETE_ACTIONS), OBS_DIM), dtype=np.float32)
    b = np.zeros(len(DISCRETE_ACTIONS), dtype=np.float32)
    w[left, I_HEADING], w[left, I_OFFSET] = -2.0, -1.0
    w[right, I_HEADING], w[right, I_OFFSET] = 2.0, 1.0
    b[left] = b[right] = 10.0
    return validate_policy(mlp_policy([(w, b)], meta).SerializeToString())


@pytest.fixture(scope="module")
def driver() -> ValidatedPolicy:
    """Follows the centerline at 2 m/s: a clean lap of the oval in about 13 s."""
    return continuous(2.0, name="driver")


def race(policies: list[ValidatedPolicy], **settings: Any) -> RaceResult:
    """One race on the oval, one lap, one trial unless told otherwise."""
    settings = {"track": "oval", "laps": 1, "trials": 1, **settings}
    return run_race(RaceConfig(**settings), policies, options=OPTIONS)


def as_json(result: RaceResult) -> str:
    return json.dumps(result.to_dict(), sort_keys=True)


# ----------------------------------------------------------------------------- determinism
def test_same_policy_settings_and_seed_give_the_same_json(driver: ValidatedPolicy) -> None:
    first = race([driver], trials=2, seed=7)
    second = race([driver], trials=2, seed=7)
    assert first.status == FINISHED
    assert as_json(first) == as_json(second)


def test_trial_seeds_derive_from_the_race_seed(driver: ValidatedPolicy) -> None:
    a = race([driver], trials=2, seed=0, time_cap=2).to_dict()
    b = race([driver], trials=2, seed=1, time_cap=2).to_dict()
    seeds_a = [t["seed"] for t in a["trials"]]
    seeds_b = [t["seed"] for t in b["trials"]]
    assert seeds_a == [trial_seed(0, 1), trial_seed(0, 2)]
    assert seeds_b == [trial_seed(1, 1), trial_seed(1, 2)]
    assert len(set(seeds_a + seeds_b)) == 4


def test_a_trial_does_not_depend_on_how_many_trials_run(driver: ValidatedPolicy) -> None:
    # Time-trial trials run in lockstep, one batched message to the policy per step; the
    # batch must not leak between trials.
    one = race([driver], trials=1, seed=3)
    three = race([driver], trials=3, seed=3)
    trials = three.to_dict()["trials"]
    assert one.to_dict()["trials"][0] == trials[0]
    # the start jitter differs per trial, so the comparison above is not vacuous
    assert len({t["total_time_s"] for t in trials}) == 3
    tel1, tel3 = one.telemetry[0], three.telemetry[0]
    assert tel1.frames == tel3.frames
    assert np.array_equal(tel1.state[:tel1.frames], tel3.state[:tel3.frames])


def test_head_to_head_is_deterministic(driver: ValidatedPolicy) -> None:
    slow = continuous(0.5, name="slow")
    first = race([slow, driver], format="head-to-head", time_cap=6, seed=5)
    second = race([slow, driver], format="head-to-head", time_cap=6, seed=5)
    assert as_json(first) == as_json(second)


# ----------------------------------------------------------------------------- penalties
@pytest.fixture(scope="module")
def straight() -> ValidatedPolicy:
    """Never steers: leaves the oval at every bend, is put back further on, and still gets
    round (each reset faces the track and gains a little progress)."""
    return continuous(2.0, follow=False, name="straight")


def test_off_track_penalties_show_in_the_total_time(straight: ValidatedPolicy) -> None:
    short = race([straight], off_track_penalty=2, time_cap=300).cars[0].trials[0]
    long = race([straight], off_track_penalty=10, time_cap=300).cars[0].trials[0]
    assert short.status == long.status == FINISHED
    count = short.off_track_count
    assert count > 0
    assert long.off_track_count == count  # a single car: the penalty does not change the path
    assert short.penalty_s == count * 2.0
    assert long.penalty_s == count * 10.0
    # Each extra frozen second is on the clock: the lap crossing is interpolated at the same
    # point within the same (shifted) step, so the difference is exact up to the rounding.
    assert long.total_time_s is not None and short.total_time_s is not None
    assert long.total_time_s - short.total_time_s == pytest.approx(count * 8.0, abs=2e-6)
    assert long.elapsed_s - short.elapsed_s == pytest.approx(count * 8.0, abs=1e-9)


def test_penalty_is_the_time_actually_lost(straight: ValidatedPolicy) -> None:
    """A penalty that is not a whole number of 1/15 s steps freezes for the nearest whole
    number of steps; penalty_s reports that freeze, which is what the clock shows."""
    free = race([straight], off_track_penalty=0, time_cap=300).cars[0].trials[0]
    odd = race([straight], off_track_penalty=2.5, time_cap=300).cars[0].trials[0]
    assert free.penalty_s == 0.0
    count = odd.off_track_count
    assert count == free.off_track_count > 0
    per_incident = penalty_steps(2.5) / STEPS_PER_S  # 38 steps
    assert odd.penalty_s == pytest.approx(count * per_incident, abs=1e-9)
    assert odd.total_time_s is not None and free.total_time_s is not None
    assert odd.total_time_s - free.total_time_s == pytest.approx(odd.penalty_s, abs=2e-6)


# ----------------------------------------------------------------------------- time cap
def test_slow_policy_reaches_the_time_cap() -> None:
    crawler = continuous(0.1, name="crawler")
    result = race([crawler], time_cap=3, trials=2)
    assert result.status == DNF
    car = result.cars[0]
    assert car.ranking_time_s is None and car.ranked_trial is None
    for t in result.to_dict()["trials"]:
        assert t["status"] == DNF
        assert "time cap" in t["reason"] and "3 s" in t["reason"]
        assert t["laps_completed"] == 0 and t["lap_times_s"] == []
        assert t["total_time_s"] is None
        assert 0.0 < t["completion_pct"] < 100.0
        assert t["elapsed_s"] == 3.0
    d = result.to_dict()
    assert d["status"] == DNF and d["ranking_time_s"] is None and d["error"] is None


def test_crashing_policy_reaches_the_time_cap() -> None:
    """Full lock: a circle tighter than the track, off track again after every reset."""
    spinner = continuous(2.0, follow=False, steer_bias=5.0, name="spinner")
    t = race([spinner], time_cap=10, off_track_penalty=1).cars[0].trials[0]
    assert t.status == DNF and t.reason.startswith("time cap of 10 s")
    assert t.off_track_count > 0 and t.penalty_s == t.off_track_count * 1.0
    assert t.completion_pct < 100.0


def test_min_laps_ranks_a_trial_that_ran_out_of_time(driver: ValidatedPolicy) -> None:
    # about 13 s a lap: the 20 s cap allows one lap of two
    ranked = race([driver], laps=2, min_laps=1, time_cap=20)
    t = ranked.cars[0].trials[0]
    assert t.status == DNF and t.laps_completed == 1
    assert ranked.status == FINISHED
    assert ranked.cars[0].ranking_time_s == t.total_time_s
    assert ranked.to_dict()["ranking_laps"] == 1
    unranked = race([driver], laps=2, time_cap=20)
    assert unranked.status == DNF and unranked.cars[0].ranking_time_s is None


# ----------------------------------------------------------------------------- head-to-head
def test_the_car_hitting_from_behind_is_blamed(driver: ValidatedPolicy) -> None:
    slow = continuous(0.5, name="slow")
    result = race([slow, driver], format="head-to-head", time_cap=20, collision_penalty=3,
                  off_track_penalty=2)
    slow_heats, fast_heats = result.cars[0].trials, result.cars[1].trials
    # heat 1: the slow car on pole, the fast one right behind it runs into it
    assert (slow_heats[0].grid_slot, fast_heats[0].grid_slot) == (0, 1)
    hit = fast_heats[0]
    assert hit.collision_count > 0
    assert hit.penalty_s == hit.collision_count * 3.0 + hit.off_track_count * 2.0
    assert slow_heats[0].collision_count == 0 and slow_heats[0].penalty_s == 0.0
    # heat 2: seats swapped, the fast car on pole drives away, nobody touches
    assert (slow_heats[1].grid_slot, fast_heats[1].grid_slot) == (1, 0)
    assert slow_heats[1].collision_count == fast_heats[1].collision_count == 0
    assert fast_heats[1].status == FINISHED and fast_heats[1].position == 1
    assert fast_heats[1].penalty_s == 0.0


def test_seats_rotate_through_the_grid_within_each_round() -> None:
    cars = [continuous(v, name=f"car {v}") for v in (0.5, 1.0, 1.5)]
    rounds = 2
    result = race(cars, format="head-to-head", trials=rounds, time_cap=2, seed=11)
    d = result.to_dict()
    n = len(cars)
    assert len(d["cars"]) == n and sorted(d["positions"]) == list(range(n))
    assert d["trials"] == d["cars"][0]["trials"]  # the entrant's heats
    for c in d["cars"]:
        assert [t["trial"] for t in c["trials"]] == list(range(1, rounds * n + 1))
        for r in range(rounds):
            heats = c["trials"][r * n:(r + 1) * n]
            assert sorted(t["grid_slot"] for t in heats) == list(range(n))  # every slot once
            assert {t["seed"] for t in heats} == {trial_seed(11, r + 1)}  # one seed a round
    for h in range(rounds * n):  # every heat fills every slot and gives every position
        assert sorted(c["trials"][h]["grid_slot"] for c in d["cars"]) == list(range(n))
        assert sorted(c["trials"][h]["position"] for c in d["cars"]) == list(range(1, n + 1))


def test_two_cars_swap_seats_every_heat(driver: ValidatedPolicy) -> None:
    result = race([continuous(0.5), driver], format="head-to-head", trials=2, time_cap=2)
    assert [t.grid_slot for t in result.cars[0].trials] == [0, 1, 0, 1]
    assert [t.grid_slot for t in result.cars[1].trials] == [1, 0, 1, 0]
    assert len(result.telemetry) == 4  # trials = rounds x cars heats


def test_every_heat_is_what_it_would_be_raced_alone(driver: ValidatedPolicy) -> None:
    """The heats of a race run in lockstep, each car's observations of every heat in one
    message: the first round's heats of a two-round race are, byte for byte, the heats of the
    one-round race with the same seed, and the second round's are another round's."""
    cars = [continuous(1.5, name="slower"), driver]
    two = race(cars, format="head-to-head", trials=2, conditions="standard", seed=7)
    one = race(cars, format="head-to-head", trials=1, conditions="standard", seed=7)

    def encoded(result: RaceResult) -> list[bytes]:
        return [replay.encode(replay.from_telemetry(t, {})) for t in result.telemetry]

    assert encoded(two)[:2] == encoded(one)
    assert encoded(two)[2:] != encoded(one)
    for i in range(2):
        assert [t.to_dict() for t in two.cars[i].trials[:2]] == \
            [t.to_dict() for t in one.cars[i].trials]


FAILING_AFTER = r'''
_rows, _failing = [0], [False]
_real_session, _real_inference = _session, _inference


def _session(model):
    _failing[0] = b"failing" in model
    return _real_session(model)


def _inference(session, cfg):
    run = _real_inference(session, cfg)

    def failing(obs):
        _rows[0] += 1
        out = run(obs)
        return out * float("nan") if _failing[0] and _rows[0] > __ROWS__ else out

    return failing
'''


def test_a_policy_failing_mid_race_is_retired_from_every_heat_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: ValidatedPolicy) -> None:
    """A car (the model named "failing") whose answers turn to NaN after 60 observations (30
    steps of two heats raced together) is retired from both heats at the same moment; the
    other car races both to the finish and wins them."""

    src = sandbox.CHILD_SCRIPT.read_text()
    extra = FAILING_AFTER.replace("__ROWS__", "60")
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", write_child(
        tmp_path, "failing_child.py", src.replace(CHILD_MAIN, extra + CHILD_MAIN)))
    opts = SandboxOptions(action_timeout_s=1.0, use_bwrap=False)
    config = RaceConfig(track="oval", laps=1, trials=1, format="head-to-head")
    result = run_race(config, [continuous(1.5, name="failing"), driver], options=opts)
    failing, other = result.cars
    assert failing.status == POLICY_ERROR and "non-finite" in failing.error
    reasons = [t.reason for t in failing.trials]
    assert [t.status for t in failing.trials] == [POLICY_ERROR, POLICY_ERROR]
    assert reasons[0] == reasons[1] == f"{failing.error} (at 2.00 s)", reasons
    assert [t.status for t in other.trials] == [FINISHED, FINISHED]
    assert [t.position for t in other.trials] == [1, 1] and result.positions == [1, 0]


# ----------------------------------------------------------------------------- ranking
def trial(n: int, laps: list[float], status: str = FINISHED) -> TrialResult:
    return TrialResult(n, seed=n, status=status, laps_completed=len(laps),
                       lap_times_s=list(laps))


@pytest.mark.parametrize(("ranking", "winner", "value"), [
    ("total", 1, 20.0),  # 10 + 10 beats 9 + 12
    ("best-lap", 2, 9.0),  # 9 beats 10
    ("average-lap", 1, 10.0),  # 10 beats 10.5
])
def test_rank_trials_by_each_method(ranking: str, winner: int, value: float) -> None:
    trials = [trial(1, [10.0, 10.0]), trial(2, [9.0, 12.0])]
    best, got = rank_trials(trials, ranking, 2)
    assert best is trials[winner - 1]
    assert got == value


def test_rank_trials_needs_the_minimum_laps() -> None:
    short = trial(1, [5.0], status=DNF)
    assert rank_trials([short], "total", 2) == (None, None)
    assert rank_trials([short], "total", 1) == (short, 5.0)  # a DNF with enough laps counts


@pytest.mark.parametrize("ranking", RANKINGS)
def test_rank_trials_more_laps_beat_fewer(ranking: str) -> None:
    one_fast_lap = trial(1, [5.0], status=DNF)
    two_slow_laps = trial(2, [14.0, 14.0])
    assert rank_trials([one_fast_lap, two_slow_laps], ranking, 1)[0] is two_slow_laps


def test_rank_trials_never_ranks_a_policy_error() -> None:
    crashed = trial(1, [1.0, 1.0], status=POLICY_ERROR)
    slow = trial(2, [20.0, 20.0])
    assert rank_trials([crashed, slow], "total", 2) == (slow, 40.0)
    assert rank_trials([crashed], "best-lap", 1) == (None, None)
    assert rank_trials([], "total", 1) == (None, None)


@pytest.mark.parametrize("ranking", RANKINGS)
def test_rank_trials_tie_keeps_the_earlier_trial(ranking: str) -> None:
    trials = [trial(1, [11.0, 9.0]), trial(2, [9.0, 11.0]), trial(3, [11.0, 9.0])]
    best, _ = rank_trials(trials, ranking, 2)
    assert best is trials[0]


@pytest.mark.parametrize(("ranking", "field"), [
    ("total", "total_time_s"), ("best-lap", "best_lap_s"), ("average-lap", "average_lap_s")])
def test_ranking_time_is_the_ranked_trials_time(driver: ValidatedPolicy, ranking: str,
                                                field: str) -> None:
    d = race([driver], laps=2, trials=2, ranking=ranking, seed=4).to_dict()
    assert d["status"] == FINISHED and d["ranking"] == ranking
    ranked = d["trials"][d["ranked_trial"] - 1]
    assert ranked["trial"] == d["ranked_trial"]
    assert d["ranking_time_s"] == ranked[field]
    assert d["ranking_time_s"] == min(t[field] for t in d["trials"])


# ----------------------------------------------------------------------------- discrete
@pytest.mark.parametrize(("pair", "speed"), [((0, 1), 1.0), ((2, 3), 2.0)])
def test_discrete_policy_drives_its_argmax_action(pair: tuple[int, int], speed: float) -> None:
    result = race([discrete(*pair)], time_cap=60)
    t = result.cars[0].trials[0]
    assert t.status == FINISHED and t.off_track_count == 0
    tel = result.telemetry[0]
    chosen = tel.action_index[1:tel.frames, 0]
    assert set(chosen.tolist()) == set(pair)  # both steering choices, only those two
    steer, commanded = tel.commanded()
    assert np.all(commanded[1:, 0] == speed)
    assert set(np.round(steer[1:, 0], 9).tolist()) == {-20.0, 20.0}
    # the indices recorded are the actions driven
    table = np.array(DISCRETE_ACTIONS)
    assert np.all(commanded[1:, 0] == table[chosen, 1])
    assert t.total_time_s is not None
    # a lap of 24.8 m cannot be faster than the commanded speed allows
    assert t.total_time_s > result.track.length / speed
    # the stored replay keeps what was chosen: its trace log is the recording's
    stored = replay.decode(replay.encode(replay.from_telemetry(tel)))
    assert stored.cars[0].action is not None
    np.testing.assert_array_equal(stored.cars[0].action[1:], chosen)
    live = list(trace.trace_rows(1, tel, 0))
    rebuilt = list(trace.replay_trace_rows(1, stored, 0, track=result.track))
    assert [r.action for r in rebuilt] == [r.action for r in live] == chosen.tolist()
    np.testing.assert_allclose([r.steer for r in rebuilt], [r.steer for r in live], atol=3e-3)
    np.testing.assert_allclose([r.throttle for r in rebuilt], [r.throttle for r in live],
                               atol=6e-4)


def test_faster_discrete_actions_give_a_faster_lap() -> None:
    slow = race([discrete(0, 1)], time_cap=60).cars[0].trials[0]
    fast = race([discrete(2, 3)], time_cap=60).cars[0].trials[0]
    assert slow.total_time_s is not None and fast.total_time_s is not None
    assert fast.total_time_s < 0.6 * slow.total_time_s


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(("changes", "message"), [
    ({"format": "drag-race"}, r"format must be one of time-trial, head-to-head, head-to-bot, "
                              r"got 'drag-race'"),
    ({"ranking": "fastest"}, r"ranking must be one of total, best-lap, average-lap"),
    ({"laps": 0}, r"laps must be a whole number from 1 to 50, got 0"),
    ({"laps": 2.5}, r"laps must be a whole number"),
    ({"laps": True}, r"laps must be a whole number"),
    ({"trials": 0}, r"trials must be a whole number from 1 to 20, got 0"),
    ({"seed": -1}, r"seed must be a whole number"),
    ({"off_track_penalty": -1}, r"off_track_penalty must be 0 to 60 seconds, got -1"),
    ({"collision_penalty": -0.5}, r"collision_penalty must be 0 to 60 seconds, got -0.5"),
    ({"off_track_penalty": float("nan")}, r"off_track_penalty must be 0 to 60 seconds"),
    ({"laps": 3, "min_laps": 4}, r"min_laps must be a whole number from 1 to 3, got 4"),
    ({"min_laps": 0}, r"min_laps must be a whole number from 1 to 3, got 0"),
    ({"time_cap": 0}, r"time_cap must be 1 to 3600 seconds, got 0"),
    ({"obstacles": 13}, r"obstacles must be a whole number from 0 to 12, got 13"),
])
def test_race_config_rejects_bad_settings(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RaceConfigError, match=message):
        RaceConfig(**changes)
    with pytest.raises(RaceConfigError, match=message):  # a copy is checked again
        RaceConfig().with_(**changes)


def test_race_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="laps"):
        RaceConfig(laps=0)


def test_race_config_defaults_and_min_laps() -> None:
    cfg = RaceConfig()
    assert (cfg.format, cfg.laps, cfg.trials, cfg.ranking) == ("time-trial", 3, 3, "total")
    assert cfg.required_laps == 3 and cfg.to_dict()["min_laps"] == 3
    assert RaceConfig(min_laps=2).required_laps == 2


def test_run_race_checks_the_number_of_policies(driver: ValidatedPolicy) -> None:
    with pytest.raises(RaceConfigError, match="a time trial races one policy, got 2"):
        run_race(RaceConfig(), [driver, driver], options=OPTIONS)
    with pytest.raises(RaceConfigError, match="head-to-head races 2 to 8 policies, got 1"):
        run_race(RaceConfig(format="head-to-head"), [driver], options=OPTIONS)


@pytest.mark.parametrize("options", [
    SandboxOptions(use_bwrap=False, action_timeout_s=1.0),
    SandboxOptions(spin_s=0.0, child_spin_s=0.0, action_timeout_s=1.0),
], ids=["without-bubblewrap", "without-busy-waiting"])
def test_the_sandbox_setup_never_changes_a_result(driver: ValidatedPolicy,
                                                  options: SandboxOptions) -> None:
    cfg = RaceConfig(track="oval", laps=1, trials=2, seed=11)
    reference = run_race(cfg, [driver], options=SandboxOptions(action_timeout_s=1.0))
    other = run_race(cfg, [driver], options=options)
    assert as_json(other) == as_json(reference)


def test_a_root_parent_runs_policies_as_nobody(driver: ValidatedPolicy) -> None:
    result = race([driver], laps=1, trials=1)
    if os.geteuid() == 0:
        assert result.sandbox["layers"]["user"] == "nobody"
    else:
        assert result.sandbox["layers"]["user"] == "unprivileged"
