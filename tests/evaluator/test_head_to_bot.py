"""Head-to-bot: the entrant's trials with built-in bot cars, the bots' placement, movement
and determinism, the collision penalty, time-trial ranking, replays naming the bots, the
settings and ``paddock evaluate --bots``.

Real races: small ONNX policies in their sandboxed children on the shipped oval (24.8 m).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator import _sim, replay
from evaluator.bots_race import (
    BOT_LANE_OFFSET_M,
    drive_bots,
    speeds_from_flags,
    start_with_bots,
)
from evaluator.cli import main
from evaluator.metadata import parse_metadata
from evaluator.observation import I_HEADING, I_OFFSET, OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.race import RaceResult, run_race, trial_seed
from evaluator.race_settings import (
    SOLO_FORMATS,
    Format,
    RaceConfig,
    RaceConfigError,
    bot_name,
    parse_bots,
)
from evaluator.results import FINISHED, rank_trials
from evaluator.sandbox import SandboxOptions
from evaluator.track import Track
from evaluator.validate import ValidatedPolicy, validate_policy
from evaluator.version import SIM_VERSION
from evaluator.world import World

OPTIONS = SandboxOptions(action_timeout_s=1.0)  # the rules are tested here, not the deadline
# sha256 of the float64 observations of a fixed 600-step head-to-bot rollout (see
# test_golden_head_to_bot_rollout), as test_determinism's GOLDEN pins the other formats: if
# it changes, the simulation or the bots' placement or driving changed, and head-to-bot
# results are no longer comparable with those recorded before. Bump
# evaluator.version.SIM_VERSION and update the constant in the same change.
GOLDEN_SIM_VERSION = "1"
GOLDEN_HEAD_TO_BOT = "b3e93a69bf1cfc90e6e4dd90dd5a8f7d4477e021e079708ec72ea92bd7fe4c54"


def centerline_driver(speed: float) -> ValidatedPolicy:
    """Steers back to the centerline at one fixed speed: it runs into a bot in its way."""
    meta = parse_metadata({"name": f"driver {speed:g}", "action_space_type": "continuous",
                           "action_space": {"steering_angle": {"low": -30, "high": 30},
                                            "speed": {"low": speed, "high": speed}}})
    w = np.zeros((2, OBS_DIM), dtype=np.float32)
    w[0, I_HEADING], w[0, I_OFFSET] = -2.0, -1.0
    return validate_policy(mlp_policy([(w, np.zeros(2, dtype=np.float32))],
                                      meta).SerializeToString())


@pytest.fixture(scope="module")
def driver() -> ValidatedPolicy:
    return centerline_driver(2.0)


def race(policy: ValidatedPolicy, **settings: Any) -> RaceResult:
    settings = {"track": "oval", "format": "head-to-bot", "laps": 1, "trials": 1,
                "bots": [{"speed": 1.0}], **settings}
    return run_race(RaceConfig(**settings), [policy], options=OPTIONS)


def as_json(result: RaceResult) -> str:
    return json.dumps(result.to_dict(), sort_keys=True)


def xy(result: RaceResult, trial: int, frame: int, car: int) -> np.ndarray:
    tel = result.telemetry[trial]
    return tel.state[frame, car, [_sim.C_X, _sim.C_Y]]


# ------------------------------------------------------------------------ the bots on track
def test_bots_start_spread_ahead_and_drive_round(driver: ValidatedPolicy) -> None:
    speeds = [0.8, 1.2, 1.6]
    result = race(driver, bots=[{"speed": v} for v in speeds], seed=4)
    tel = result.telemetry[0]
    assert tel.state.shape[1] == 4  # the entrant and three bots
    start_s = tel.state[0, :, _sim.C_S]
    length = result.track.length
    # bot k starts k/4 of the lap ahead, give or take a tenth of the spacing
    for k in (1, 2, 3):
        assert abs(start_s[k] - k * length / 4) <= 0.1 * length / 4 + 1e-9
    # each keeps its lane, left or right of the centerline
    offsets = tel.state[1:tel.frames, 1:, _sim.C_OFF]
    assert np.all(np.abs(np.abs(offsets.mean(axis=0)) - BOT_LANE_OFFSET_M) < 0.05)
    # they move, the faster further, and never finish (they drive until the trial ends)
    last = tel.frames - 1
    covered = tel.state[last, 1:, _sim.C_S_TOTAL] - tel.state[0, 1:, _sim.C_S_TOTAL]
    assert np.all(covered > 2.0)
    assert covered[0] < covered[2]
    assert not tel.state[last, 1:, _sim.C_DONE].any()
    assert tel.cars[1].name == "Bot 1 (0.8 m/s)" and all(c.bot for c in tel.cars[1:])
    assert not tel.cars[0].bot


def test_same_policy_settings_and_seed_give_the_same_race(driver: ValidatedPolicy) -> None:
    first = race(driver, bots=[{"speed": 1.0}, {"speed": 2.5}], trials=2, seed=11)
    second = race(driver, bots=[{"speed": 1.0}, {"speed": 2.5}], trials=2, seed=11)
    assert as_json(first) == as_json(second)
    for a, b in zip(first.telemetry, second.telemetry, strict=True):
        assert a.frames == b.frames
        assert np.array_equal(a.state[:a.frames], b.state[:b.frames])
    other = race(driver, bots=[{"speed": 1.0}, {"speed": 2.5}], trials=2, seed=12)
    assert not np.array_equal(first.telemetry[0].state[0], other.telemetry[0].state[0])


def test_the_entrant_starts_as_in_the_time_trial(driver: ValidatedPolicy) -> None:
    with_bots = race(driver, seed=9, time_cap=1)
    alone = run_race(RaceConfig(track="oval", laps=1, trials=1, seed=9, time_cap=1), [driver],
                     options=OPTIONS)
    assert np.array_equal(with_bots.telemetry[0].state[0, 0], alone.telemetry[0].state[0, 0])
    assert with_bots.to_dict()["trials"][0]["seed"] == trial_seed(9, 1)


def test_golden_head_to_bot_rollout(stadium_track: Track) -> None:
    """The entrant's fixed commands and three bots on the formula-built stadium, from a fixed
    trial seed: the same bits on every machine."""
    assert SIM_VERSION == GOLDEN_SIM_VERSION
    world = World(stadium_track, 4, race=True, off_track_penalty=1.0, collision_penalty=1.0,
                  laps=10)
    drivers = start_with_bots(world, (1.0, 2.0, 3.0),
                              np.random.default_rng(trial_seed(12345, 1)))
    h = hashlib.sha256(np.ascontiguousarray(world.obs, dtype="<f8").tobytes())
    act = np.zeros((4, 2))
    for k in range(600):
        act[0] = (((k * 7) % 40 - 20) * 1.0, ((k * 3) % 50) / 12.5)  # degrees, m/s
        drive_bots(world, drivers, act)
        world.step(act)
        h.update(np.ascontiguousarray(world.obs, dtype="<f8").tobytes())
    assert h.hexdigest() == GOLDEN_HEAD_TO_BOT


# ------------------------------------------------------------------------ the rules
def test_hitting_a_bot_from_behind_costs_the_collision_penalty() -> None:
    fast = centerline_driver(3.0)
    hit = race(fast, bots=[{"speed": 0.5}], laps=2, trials=2, collision_penalty=3,
               off_track_penalty=2, time_cap=60)
    trials = hit.cars[0].trials
    assert sum(t.collision_count for t in trials) > 0
    for t in trials:
        assert t.penalty_s == pytest.approx(t.collision_count * 3.0 + t.off_track_count * 2.0)
    # the penalty is time lost: without it the same race is faster
    free = race(fast, bots=[{"speed": 0.5}], laps=2, trials=2, collision_penalty=0,
                off_track_penalty=2, time_cap=60)
    hit_time, free_time = hit.cars[0].ranking_time_s, free.cars[0].ranking_time_s
    assert hit_time is not None and free_time is not None and hit_time > free_time
    # the replay marks the entrant's blame
    flags = replay.from_telemetry(hit.telemetry[0]).cars[0].flags
    assert (flags & 8).any() == (trials[0].collision_count > 0)


def test_ranked_like_a_time_trial(driver: ValidatedPolicy) -> None:
    result = race(driver, bots=[{"speed": 0.7}, {"speed": 3.0}], trials=3, seed=2,
                  ranking="best-lap")
    out = result.to_dict()
    assert out["format"] == Format.HEAD_TO_BOT and out["status"] == FINISHED
    assert "cars" not in out and "positions" not in out  # bots are not ranked
    best, value = rank_trials(result.cars[0].trials, "best-lap", 1)
    assert best is not None and out["ranked_trial"] == best.trial
    assert out["ranking_time_s"] == round(value, 6)
    assert out["spread"]["finished"] == 3
    assert out["settings"]["bots"] == [{"speed": 0.7}, {"speed": 3.0}]
    assert len(result.cars) == 1


def test_a_time_trials_result_has_no_bots(driver: ValidatedPolicy) -> None:
    out = run_race(RaceConfig(track="oval", laps=1, trials=1, time_cap=1), [driver],
                   options=OPTIONS).to_dict()
    assert "bots" not in out["settings"]
    assert Format.HEAD_TO_BOT in SOLO_FORMATS and Format.HEAD_TO_HEAD not in SOLO_FORMATS


# ------------------------------------------------------------------------ replays
def test_the_replay_names_and_flags_the_bots(driver: ValidatedPolicy) -> None:
    result = race(driver, bots=[{"speed": 1.6}, {"speed": 2.0}], time_cap=3)
    data = replay.encode(replay.from_telemetry(result.telemetry[0], {"trial": 1}))
    back = replay.decode(data)
    assert [(c.name, c.bot) for c in back.cars] == [
        ("driver 2", False), ("Bot 1 (1.6 m/s)", True), ("Bot 2 (2 m/s)", True)]
    assert back == replay.quantise(replay.from_telemetry(result.telemetry[0], {"trial": 1}))
    cars = _header(data)["cars"]
    assert "bot" not in cars[0] and cars[1]["bot"] is True


def test_a_replay_without_bots_has_no_bot_key(driver: ValidatedPolicy) -> None:
    alone = run_race(RaceConfig(track="oval", laps=1, trials=1, time_cap=1), [driver],
                     options=OPTIONS)
    data = replay.encode(replay.from_telemetry(alone.telemetry[0]))
    assert all("bot" not in c for c in _header(data)["cars"])
    assert not replay.decode(data).cars[0].bot


def _header(data: bytes) -> dict[str, Any]:
    import gzip

    raw = gzip.decompress(data)
    _, _, length = replay.PREAMBLE.unpack_from(raw)
    head: dict[str, Any] = json.loads(raw[replay.PREAMBLE.size:replay.PREAMBLE.size + length])
    return head


# ------------------------------------------------------------------------ settings
@pytest.mark.parametrize(("changes", "message"), [
    ({"bots": []}, r"bots: a head-to-bot race needs 1 to 6 bot cars"),
    ({"bots": [{"speed": 1.0}] * 7}, r"bots: at most 6 bot cars, got 7"),
    ({"bots": [{"speed": 0.2}]}, r"bots: bot 1's speed must be 0.5 to 4 m/s, got 0.2"),
    ({"bots": [{"speed": 1.0}, {"speed": 4.5}]}, r"bot 2's speed must be 0.5 to 4 m/s"),
    ({"bots": [{"speed": "fast"}]}, r"bot 1's speed must be 0.5 to 4 m/s, got 'fast'"),
    ({"bots": [{"speed": True}]}, r"bot 1's speed must be"),
    ({"bots": [{"speed": float("nan")}]}, r"bot 1's speed must be"),
    ({"bots": [{"speed": 1.0, "lane": 1}]}, r'bot 1 must be \{"speed": m/s\}'),
    ({"bots": "three"}, r"bots must be a list of bot cars"),
    ({"format": "time-trial", "bots": [{"speed": 1.0}]},
     r"bots: only a head-to-bot race has bot cars, this is time-trial"),
])
def test_bad_bots_are_refused_clearly(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RaceConfigError, match=message):
        RaceConfig(**{"format": "head-to-bot", **changes})


def test_bots_read_from_json_or_speeds() -> None:
    cfg = RaceConfig(format="head-to-bot", bots=[{"speed": 1}, 2.5])
    assert cfg.bots == (1.0, 2.5)
    assert cfg.to_dict()["bots"] == [{"speed": 1.0}, {"speed": 2.5}]
    assert RaceConfig(**cfg.to_dict()).bots == cfg.bots
    assert parse_bots([]) == () and bot_name(2, 1.25) == "Bot 2 (1.25 m/s)"


@pytest.mark.parametrize(("count", "speeds", "expected"), [
    (None, None, (1.5, 1.5, 1.5)),
    (2, "2", (2.0, 2.0)),
    (None, "1, 2.5", (1.0, 2.5)),
    (2, "1,2.5", (1.0, 2.5)),
])
def test_bot_flags(count: int | None, speeds: str | None,
                   expected: tuple[float, ...]) -> None:
    assert speeds_from_flags(count, speeds) == expected


@pytest.mark.parametrize(("count", "speeds", "message"), [
    (0, None, r"--bots must be 1 to 6, got 0"),
    (7, "1", r"--bots must be 1 to 6, got 7"),
    (2, "1,2,3", r"--bots 2 with 3 speeds in --bot-speed"),
    (None, "quick", r"--bot-speed takes m/s"),
    (None, "9", r"bot 1's speed must be 0.5 to 4 m/s"),
])
def test_bad_bot_flags(count: int | None, speeds: str | None, message: str) -> None:
    with pytest.raises(RaceConfigError, match=message):
        speeds_from_flags(count, speeds)


def test_paddock_evaluate_races_bots(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     driver: ValidatedPolicy) -> None:
    model = tmp_path / "driver.onnx"
    model.write_bytes(driver.data)
    code = main(["evaluate", str(model), "--bots", "2", "--bot-speed", "1.2,2", "--laps", "1",
                 "--trials", "1", "--action-timeout-ms", "1000", "--conditions", "none",
                 "--json", "--replay", str(tmp_path / "run.replay")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["format"] == "head-to-bot"
    assert out["settings"]["bots"] == [{"speed": 1.2}, {"speed": 2.0}]
    back = replay.decode((tmp_path / "run.replay").read_bytes())
    assert [c.name for c in back.cars if c.bot] == ["Bot 1 (1.2 m/s)", "Bot 2 (2 m/s)"]
    # the same as the engine gives for the same settings
    same = race(driver, bots=[{"speed": 1.2}, {"speed": 2.0}], conditions="none")
    assert out["trials"] == same.to_dict()["trials"]


def test_paddock_evaluate_refuses_bad_bots(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path, driver: ValidatedPolicy) -> None:
    model = tmp_path / "driver.onnx"
    model.write_bytes(driver.data)
    assert main(["evaluate", str(model), "--bots", "9"]) == 2
    assert "--bots must be 1 to 6, got 9" in capsys.readouterr().err
    assert main(["evaluate", str(model), "--format", "time-trial", "--bots", "1"]) == 2
    assert "only a head-to-bot race has bot cars" in capsys.readouterr().err
