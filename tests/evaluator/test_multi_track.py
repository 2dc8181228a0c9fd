"""Time trials on several tracks: one track unchanged, the per-track blocks and their sum,
the seeds, the ranking of unfinished entries, the settings' checks and ``paddock evaluate``.

Real races of small ONNX policies in their sandboxed children, one lap per track.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator import replay
from evaluator.cli import main
from evaluator.metadata import parse_metadata
from evaluator.multi_track import (
    MultiTrackResult,
    combine,
    combined_key,
    invalid_tracks_result,
    load_tracks,
    run_tracks,
    track_seed,
)
from evaluator.observation import I_HEADING, I_OFFSET, OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.race import run_race, trial_seed
from evaluator.race_fetch import RaceFetchError, league_race
from evaluator.race_settings import RaceConfig, RaceConfigError
from evaluator.results import DNF, FINISHED, POLICY_ERROR
from evaluator.sandbox import SandboxOptions, evaluation_limit_s
from evaluator.track_library import load_track
from evaluator.validate import ValidatedPolicy, validate_policy

OPTIONS = SandboxOptions(action_timeout_s=1.0)  # rules, not deadlines, are tested here


def follower(speed: float) -> ValidatedPolicy:
    """Follows the centerline at ``speed`` m/s."""
    meta = parse_metadata({"name": "follower", "action_space_type": "continuous",
                           "action_space": {"steering_angle": {"low": -30, "high": 30},
                                            "speed": {"low": speed, "high": speed}}})
    w = np.zeros((2, OBS_DIM), dtype=np.float32)
    w[0, I_HEADING], w[0, I_OFFSET] = -2.0, -1.0
    return validate_policy(mlp_policy([(w, np.zeros(2, dtype=np.float32))],
                                      meta).SerializeToString())


@pytest.fixture(scope="module")
def driver() -> ValidatedPolicy:
    return follower(2.0)


def config(**settings: Any) -> RaceConfig:
    return RaceConfig(**{"track": "oval", "laps": 1, "trials": 2, "seed": 7, **settings})


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


# ------------------------------------------------------------------------- one track
def test_one_track_is_run_race_byte_for_byte(driver: ValidatedPolicy) -> None:
    cfg = config()
    alone = run_race(cfg, [driver], options=OPTIONS)
    through = run_tracks(cfg, [driver], options=OPTIONS)
    assert not isinstance(through, MultiTrackResult)
    assert json.dumps(through.to_dict()) == json.dumps(alone.to_dict())
    assert "extra_tracks" not in cfg.to_dict() and "tracks" not in through.to_dict()


# ------------------------------------------------------------------------ two tracks
@pytest.fixture(scope="module")
def two(driver: ValidatedPolicy) -> MultiTrackResult:
    result = run_tracks(config(extra_tracks=("kidney",)), [driver], options=OPTIONS)
    assert isinstance(result, MultiTrackResult)
    return result


def test_each_track_is_its_own_one_track_race(two: MultiTrackResult,
                                               driver: ValidatedPolicy) -> None:
    data = two.to_dict()
    assert [b["track"] for b in data["tracks"]] == ["oval", "kidney"]
    # the first track runs under the race seed: its block is the one-track race's
    first = run_race(config(), [driver], options=OPTIONS).to_dict()
    assert data["tracks"][0]["seed"] == 7
    assert data["tracks"][0]["ranking_time_s"] == first["ranking_time_s"]
    assert data["trials"][:2] == [{**t, "track": "oval"} for t in first["trials"]]
    # the second under a seed of its own, which `paddock evaluate --seed` repeats alone
    seed2 = track_seed(7, 2)
    assert seed2 not in (7, trial_seed(7, 1), trial_seed(7, 2))
    alone = run_race(config(track="kidney", seed=seed2), [driver], options=OPTIONS).to_dict()
    block = data["tracks"][1]
    assert (block["seed"], block["track_digest"]) == (seed2, alone["track_digest"])
    assert block["ranking_time_s"] == alone["ranking_time_s"]
    assert [t["seed"] for t in data["trials"][2:]] == [t["seed"] for t in alone["trials"]]


def test_the_total_is_the_sum_of_the_tracks(two: MultiTrackResult) -> None:
    data = two.to_dict()
    times = [b["ranking_time_s"] for b in data["tracks"]]
    assert data["status"] == FINISHED and all(t is not None for t in times)
    assert data["ranking_time_s"] == pytest.approx(sum(times), abs=1e-6)
    assert data["ranking_time_s"] > max(times)
    assert data["tracks_finished"] == 2 and data["ranking_laps"] == 2
    assert data["track"] == "oval" and data["settings"]["extra_tracks"] == ["kidney"]


def test_trials_and_replays_are_numbered_across_tracks(two: MultiTrackResult) -> None:
    data = two.to_dict()
    assert [(t["trial"], t["track"]) for t in data["trials"]] == [
        (1, "oval"), (2, "oval"), (3, "kidney"), (4, "kidney")]
    assert [b["trials"] for b in data["tracks"]] == [[1, 2], [3, 4]]
    assert data["tracks"][1]["ranked_trial"] in (3, 4)
    assert data["ranked_trial"] == data["tracks"][0]["ranked_trial"]
    assert [tel.track.name for tel in two.telemetry] == ["oval", "oval", "kidney", "kidney"]


def test_multi_track_is_deterministic(two: MultiTrackResult, driver: ValidatedPolicy) -> None:
    again = run_tracks(config(extra_tracks=("kidney",)), [driver], options=OPTIONS)
    assert as_json(again.to_dict()) == as_json(two.to_dict())


def test_a_track_not_finished_leaves_no_total(driver: ValidatedPolicy) -> None:
    # 20 s are enough for a lap of the oval (24.8 m) but not of the speedway (47.6 m)
    result = run_tracks(config(extra_tracks=("speedway",), time_cap=20.0), [driver],
                        options=OPTIONS)
    data = result.to_dict()
    assert [b["status"] for b in data["tracks"]] == [FINISHED, DNF]
    assert data["status"] == DNF and data["ranking_time_s"] is None
    assert data["tracks_finished"] == 1
    assert data["finished_time_s"] == data["tracks"][0]["ranking_time_s"]


def test_the_wall_clock_limit_covers_every_track() -> None:
    one, two = config(), config(extra_tracks=("kidney",))
    assert evaluation_limit_s(two, 1, OPTIONS) > evaluation_limit_s(one, 1, OPTIONS)


# --------------------------------------------------------------------------- ranking
def block(track: str, status: str, time_s: float | None, laps: int = 1) -> dict[str, Any]:
    return {"track": track, "track_digest": "d" + track, "seed": 1, "status": status,
            "ranking_time_s": time_s, "ranking_laps": laps if time_s is not None else 0,
            "ranked_trial": 1 if time_s is not None else None, "trials": [], "spread": {},
            "error": "crashed" if status == POLICY_ERROR else None}


def combined(*blocks: dict[str, Any]) -> dict[str, Any]:
    cfg = config(trials=1, extra_tracks=tuple(b["track"] for b in blocks[1:]),
                 track=blocks[0]["track"])
    return combine(cfg, blocks)


def test_unfinished_entries_rank_after_finishers_by_tracks_then_time() -> None:
    fast_all = combined(block("oval", FINISHED, 10.0), block("kidney", FINISHED, 12.0))
    slow_all = combined(block("oval", FINISHED, 11.0), block("kidney", FINISHED, 13.0))
    one_quick = combined(block("oval", FINISHED, 5.0), block("kidney", DNF, None))
    one_slow = combined(block("oval", FINISHED, 9.0), block("kidney", POLICY_ERROR, None))
    none = combined(block("oval", DNF, None), block("kidney", DNF, None))
    assert fast_all["ranking_time_s"] == 22.0 and one_quick["ranking_time_s"] is None
    assert (one_quick["status"], one_slow["status"], none["status"]) == (
        DNF, POLICY_ERROR, DNF)
    assert one_slow["error"] == "kidney: crashed"
    shuffled = [none, one_slow, slow_all, one_quick, fast_all]
    assert sorted(shuffled, key=combined_key) == [fast_all, slow_all, one_quick, one_slow,
                                                  none]


def test_a_refused_policy_gets_a_block_per_track() -> None:
    cfg = config(extra_tracks=("kidney",))
    data = invalid_tracks_result(cfg, load_tracks(cfg), "not a model")
    assert data["status"] == "invalid_policy"
    assert [b["status"] for b in data["tracks"]] == ["invalid_policy"] * 2


# -------------------------------------------------------------------------- settings
@pytest.mark.parametrize(("settings", "words"), [
    ({"extra_tracks": ("oval",)}, "oval is listed twice"),
    ({"extra_tracks": ("kidney", "pinwheel", "speedway", "switchback", "brake-point")},
     "at most 5 tracks"),
    ({"extra_tracks": ("kidney",), "format": "head-to-head"}, "time trials"),
    ({"extra_tracks": "kidney"}, "a list of track names"),
])
def test_bad_track_lists_are_refused(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(RaceConfigError, match=words):
        config(**settings)


# ------------------------------------------------------------------------------- CLI
def test_paddock_evaluate_on_two_tracks(tmp_path: Path, driver: ValidatedPolicy,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "driver.onnx"
    model.write_bytes(driver.data)
    out = tmp_path / "run.pdkreplay"

    def evaluate(*flags: str) -> dict[str, Any]:
        code = main(["evaluate", str(model), "--laps", "1", "--trials", "1", "--seed", "3",
                     "--json", "--quiet", *flags])
        stdout, _ = capsys.readouterr()
        assert code == 0
        data: dict[str, Any] = json.loads(stdout)
        return data

    repeated = evaluate("--track", "oval", "--track", "kidney", "--replay", str(out))
    listed = evaluate("--tracks", "oval,kidney")
    assert as_json(repeated) == as_json(listed)
    assert [b["track"] for b in repeated["tracks"]] == ["oval", "kidney"]
    assert sorted(p.name for p in tmp_path.glob("run-*.pdkreplay")) == [
        "run-1.pdkreplay", "run-2.pdkreplay"]
    assert [replay.decode(p.read_bytes()).track.name
            for p in sorted(tmp_path.glob("run-*.pdkreplay"))] == ["oval", "kidney"]


def test_paddock_evaluate_refuses_a_track_twice(tmp_path: Path, driver: ValidatedPolicy,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "driver.onnx"
    model.write_bytes(driver.data)
    code = main(["evaluate", str(model), "--tracks", "oval,oval", "--quiet"])
    _, err = capsys.readouterr()
    assert code != 0 and "oval is listed twice" in err


# ------------------------------------------------------------------------ --race
def race_body(**changes: Any) -> dict[str, Any]:
    """A league race as its API gives it: two tracks."""
    tracks = [{"track": n, "track_digest": load_track(n).digest} for n in ("oval", "kidney")]
    body = {**config().to_dict(), "min_laps": None, "name": "Double", "tracks": tracks,
            "track_digest": tracks[0]["track_digest"]}
    body.pop("extra_tracks", None)
    return {**body, **changes}


def test_a_league_race_brings_its_tracks() -> None:
    race = league_race(race_body(), "https://league.example.org", 4)
    assert race.config.tracks == ("oval", "kidney")
    assert [t.name for t in race.tracks] == ["oval", "kidney"] and race.track.name == "oval"
    one = league_race(race_body(tracks=None), "https://league.example.org", 4)
    assert one.config.tracks == ("oval",) and [t.name for t in one.tracks] == ["oval"]


@pytest.mark.parametrize(("tracks", "words"), [
    ([{"track": "oval", "track_digest": "0" * 64}], "track 'oval' here is not the geometry"),
    ([{"track": "kidney", "track_digest": "0" * 64}], "names 'oval' as its track but lists"),
    (["oval", "kidney"], "not a list of tracks with their digests"),
], ids=["digest", "first", "shape"])
def test_a_league_race_whose_tracks_differ_is_refused(tracks: list[Any], words: str) -> None:
    body = race_body()
    body["tracks"] = tracks + body["tracks"][1:] if isinstance(tracks[0], dict) else tracks
    with pytest.raises(RaceFetchError, match=words):
        league_race(body, "https://league.example.org", 4)
