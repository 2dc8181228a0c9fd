"""``paddock validate``, ``paddock pack`` and ``paddock evaluate``, called in-process through
``evaluator.cli.main`` and once as the installed ``paddock`` command.

The contract (DESIGN.md, "CLI"): exit 0 when the command ran, whatever the car did; a bad
model, track or flag is exit 2 and one line ``paddock: error: ...`` on stderr.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator.cli import main
from evaluator.metadata import parse_metadata
from evaluator.observation import I_HEADING, I_OFFSET, OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.validate import SIDECAR_NAME, load_policy_file

EXIT_INVALID = 2
# Short, quick races; a generous per-action budget so a busy machine does not fail a policy.
QUICK = ["--laps", "1", "--trials", "1", "--action-timeout-ms", "1000"]

# The keys DESIGN.md promises in `paddock evaluate --json`, and the ones the engine adds.
DESIGN_KEYS = {"paddock_version", "sim_version", "track", "format", "seed", "status",
               "ranking", "ranking_time_s", "trials", "error"}
EXTRA_KEYS = {"track_digest", "ranking_laps", "ranked_trial", "settings", "spread"}
DESIGN_TRIAL_KEYS = {"trial", "seed", "status", "laps_completed", "lap_times_s",
                     "total_time_s", "best_lap_s", "average_lap_s", "off_track_count",
                     "collision_count", "penalty_s", "completion_pct"}
EXTRA_TRIAL_KEYS = {"elapsed_s", "reason", "conditions"}
HEAT_KEYS = {"grid_slot", "position"}
CAR_KEYS = {"name", "sha256", "status", "ranking_time_s", "ranking_laps", "ranked_trial",
            "trials", "error", "points", "wins"}

CONTINUOUS_META = {"action_space_type": "continuous", "action_space": {
    "steering_angle": {"low": -30, "high": 30}, "speed": {"low": 2.0, "high": 2.0}}}


def write_policy(path: Path, *, speed: float = 2.0, name: str = "", embed: bool = True
                 ) -> Path:
    """Write a centerline follower at ``speed`` m/s; without ``embed`` it has no metadata."""
    meta = parse_metadata({**CONTINUOUS_META, "name": name, "action_space": {
        "steering_angle": {"low": -30, "high": 30}, "speed": {"low": speed, "high": speed}}})
    w = np.zeros((2, OBS_DIM), dtype=np.float32)
    w[0, I_HEADING], w[0, I_OFFSET] = -2.0, -1.0
    model = mlp_policy([(w, np.zeros(2, dtype=np.float32))], meta)
    if not embed:
        del model.metadata_props[:]
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Policy files shared by the tests of this module (never modified by them)."""
    d = tmp_path_factory.mktemp("models")
    bare_dir = d / "bare"
    bare_dir.mkdir()
    paths = {
        "driver": write_policy(d / "driver.onnx", name="driver"),
        "slow": write_policy(d / "slow.onnx", speed=0.5, name="slow"),
        "crawler": write_policy(d / "crawler.onnx", speed=0.1, name="crawler"),
        "bare": write_policy(bare_dir / "bare.onnx", embed=False),
        "garbage": d / "garbage.onnx",
        "sidecar": d / "sidecar.json",
        "discrete3": d / "discrete3.json",
    }
    paths["garbage"].write_bytes(b"this is not an onnx model\n" * 4)
    paths["sidecar"].write_text(json.dumps({**CONTINUOUS_META, "name": "from sidecar"}))
    paths["discrete3"].write_text(json.dumps({"action_space_type": "discrete", "action_space": [
        {"steering_angle": a, "speed": 1.0} for a in (-20, 0, 20)]}))
    return paths


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """``paddock ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single ``paddock: error:`` line of stderr (fails when there is more)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("paddock: error: "), err
    return lines[0]


def no_errors(err: str) -> None:
    """stderr may carry the sandbox-layers warning on some machines, never an error."""
    assert "error" not in err.lower(), err


# ----------------------------------------------------------------------------- validate
def test_validate_valid_model(capsys: pytest.CaptureFixture[str],
                              models: dict[str, Path]) -> None:
    code, out, err = run(capsys, "validate", models["driver"])
    assert code == 0
    assert out.splitlines()[0] == f"{models['driver']}: valid"
    assert "continuous, 2 outputs" in out and "sandbox" in out
    no_errors(err)


@pytest.mark.parametrize(("model", "extra", "rule"), [
    ("bare", [], "metadata"),  # no embedded metadata, no sidecar beside it
    ("garbage", [], "parse"),
    ("driver", ["--metadata", "discrete3"], "signature"),  # 2 outputs, 3 actions declared
])
def test_validate_invalid_model(capsys: pytest.CaptureFixture[str], models: dict[str, Path],
                                model: str, extra: list[str], rule: str) -> None:
    argv = ["validate", models[model], *[models.get(a, a) for a in extra]]
    code, out, err = run(capsys, *argv)
    assert code == EXIT_INVALID
    assert out == ""
    line = one_error_line(err)
    assert line.startswith(f"paddock: error: {rule}: {models[model]}: ")


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", tmp_path / "nowhere.onnx")
    assert code == EXIT_INVALID
    assert "nowhere.onnx: No such file or directory" in one_error_line(err)


def test_validate_json(capsys: pytest.CaptureFixture[str], models: dict[str, Path]) -> None:
    code, out, err = run(capsys, "validate", models["driver"], "--json")
    assert code == 0
    info = json.loads(out)
    assert info["valid"] is True
    assert info["sha256"] == hashlib.sha256(models["driver"].read_bytes()).hexdigest()
    assert info["name"] == "driver" and info["action_space_type"] == "continuous"
    assert info["output"] == {"name": "action", "size": 2}
    assert len(info["first_output"]) == 2  # it really ran once in the sandbox
    assert set(info["sandbox"]) >= {"layers", "missing", "load_time_s"}
    no_errors(err)


def test_validate_no_run_json_skips_the_sandbox(capsys: pytest.CaptureFixture[str],
                                               models: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "validate", models["driver"], "--no-run", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["valid"] is True and "sandbox" not in info and "first_output" not in info


def test_sidecar_beside_the_model_is_used(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    model = write_policy(tmp_path / "model.onnx", embed=False)
    code, _, err = run(capsys, "validate", model, "--no-run")
    assert code == EXIT_INVALID and "no metadata" in one_error_line(err)
    (tmp_path / SIDECAR_NAME).write_text(json.dumps({**CONTINUOUS_META, "name": "beside"}))
    code, out, err = run(capsys, "validate", model, "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "beside"


# ----------------------------------------------------------------------------- pack
def test_pack_embeds_the_sidecar_metadata(capsys: pytest.CaptureFixture[str],
                                          models: dict[str, Path], tmp_path: Path) -> None:
    packed = tmp_path / "packed.onnx"
    code, out, err = run(capsys, "pack", models["bare"], "--metadata", models["sidecar"],
                         "-o", packed)
    assert code == 0 and err == ""
    assert out.strip() == f"wrote {packed} ({packed.stat().st_size:,} bytes, continuous actions)"
    # the packed file stands on its own: no sidecar next to it
    assert not (packed.parent / SIDECAR_NAME).exists()
    policy = load_policy_file(packed)
    assert policy.metadata.name == "from sidecar"
    assert policy.metadata.action_spec.speed_range == (2.0, 2.0)
    code, out, err = run(capsys, "validate", packed)
    assert code == 0 and out.startswith(f"{packed}: valid")
    no_errors(err)


def test_pack_replaces_embedded_metadata(capsys: pytest.CaptureFixture[str],
                                         models: dict[str, Path], tmp_path: Path) -> None:
    packed = tmp_path / "renamed.onnx"
    code, _, _ = run(capsys, "pack", models["driver"], "--metadata", models["sidecar"],
                     "-o", packed)
    assert code == 0
    assert load_policy_file(packed).metadata.name == "from sidecar"


@pytest.mark.parametrize(("model", "metadata", "rule"), [
    ("garbage", "sidecar", "parse"),
    ("bare", "garbage", "metadata"),  # the metadata file is not JSON
    ("bare", "discrete3", "signature"),  # would embed metadata the graph does not match
])
def test_pack_refuses_cleanly(capsys: pytest.CaptureFixture[str], models: dict[str, Path],
                              tmp_path: Path, model: str, metadata: str, rule: str) -> None:
    packed = tmp_path / "out.onnx"
    code, out, err = run(capsys, "pack", models[model], "--metadata", models[metadata],
                         "-o", packed)
    assert code == EXIT_INVALID and out == ""
    assert one_error_line(err).startswith(f"paddock: error: {rule}: ")
    assert not packed.exists()


# ----------------------------------------------------------------------------- evaluate
def evaluate_json(capsys: pytest.CaptureFixture[str], *argv: str | Path
                  ) -> tuple[dict[str, Any], str]:
    code, out, err = run(capsys, "evaluate", *argv, "--json")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1  # one JSON object, nothing else on stdout
    return json.loads(out), err


def check_trial_keys(trial: dict[str, Any], heat: bool) -> None:
    assert set(trial) == DESIGN_TRIAL_KEYS | EXTRA_TRIAL_KEYS | (HEAT_KEYS if heat else set())


def test_evaluate_json_time_trial(capsys: pytest.CaptureFixture[str],
                                  models: dict[str, Path]) -> None:
    d, err = evaluate_json(capsys, models["driver"], *QUICK, "--seed", "3")
    no_errors(err)
    assert set(d) == DESIGN_KEYS | EXTRA_KEYS
    assert (d["track"], d["format"], d["seed"], d["ranking"]) == ("oval", "time-trial", 3,
                                                                 "total")
    assert d["status"] == "finished" and d["error"] is None
    assert len(d["trials"]) == 1
    t = d["trials"][0]
    check_trial_keys(t, heat=False)
    assert t["trial"] == 1 and t["status"] == "finished" and t["laps_completed"] == 1
    assert d["ranking_time_s"] == t["total_time_s"] == t["lap_times_s"][0]
    assert t["completion_pct"] == 100.0
    assert d["settings"]["laps"] == 1 and d["settings"]["seed"] == 3


def test_evaluate_json_head_to_head(capsys: pytest.CaptureFixture[str],
                                    models: dict[str, Path]) -> None:
    d, _ = evaluate_json(capsys, models["slow"], "--opponent", models["driver"], *QUICK,
                         "--format", "head-to-head", "--time-cap", "5")
    assert set(d) == DESIGN_KEYS | EXTRA_KEYS | {"cars", "positions"}
    assert d["format"] == "head-to-head"
    assert [c["name"] for c in d["cars"]] == ["slow", "driver"]
    assert sorted(d["positions"]) == [0, 1]
    for c in d["cars"]:
        assert set(c) == CAR_KEYS
        assert len(c["trials"]) == 2  # one round, two cars: two seat-swapped heats
        for t in c["trials"]:
            check_trial_keys(t, heat=True)
    assert d["trials"] == d["cars"][0]["trials"]  # the top-level trials are the entrant's


def test_opponent_implies_head_to_head(capsys: pytest.CaptureFixture[str],
                                       models: dict[str, Path]) -> None:
    d, _ = evaluate_json(capsys, models["driver"], "--opponent", models["slow"], *QUICK,
                         "--time-cap", "3")
    assert d["format"] == "head-to-head" and len(d["cars"]) == 2


def test_evaluate_exits_0_when_the_car_does_not_finish(capsys: pytest.CaptureFixture[str],
                                                       models: dict[str, Path]) -> None:
    d, _ = evaluate_json(capsys, models["crawler"], *QUICK, "--time-cap", "2")
    assert d["status"] == "dnf" and d["ranking_time_s"] is None and d["error"] is None
    t = d["trials"][0]
    assert t["status"] == "dnf" and "time cap" in t["reason"]
    assert t["lap_times_s"] == [] and t["total_time_s"] is None
    assert t["completion_pct"] < 100.0


def test_evaluate_text_output(capsys: pytest.CaptureFixture[str],
                              models: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "evaluate", models["driver"], *QUICK, "--time-cap", "20")
    assert code == 0
    assert out.startswith("time-trial on oval")
    assert "driver" in out and "finished" in out


@pytest.mark.parametrize(("flags", "message"), [
    (["--laps", "0"], "laps must be a whole number from 1 to 50, got 0"),
    (["--trials", "21"], "trials must be a whole number from 1 to 20, got 21"),
    (["--min-laps", "2"], "min_laps must be a whole number from 1 to 1, got 2"),
    (["--off-track-penalty", "-1"], "off_track_penalty must be 0 to 60 seconds"),
    (["--time-cap", "0"], "time_cap must be 1 to 3600 seconds"),
    (["--track", "no-such-track"], "no-such-track"),
    (["--format", "head-to-head"], "head-to-head races 2 to 8 policies, got 1"),
])
def test_evaluate_refuses_bad_settings(capsys: pytest.CaptureFixture[str],
                                       models: dict[str, Path], flags: list[str],
                                       message: str) -> None:
    argv = ["evaluate", models["driver"], "--laps", "1", "--trials", "1", *flags]
    code, out, err = run(capsys, *argv)
    assert code == EXIT_INVALID and out == ""
    assert message in one_error_line(err)


def test_evaluate_refuses_a_missing_track_file(capsys: pytest.CaptureFixture[str],
                                               models: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run(capsys, "evaluate", models["driver"], *QUICK,
                       "--track", tmp_path / "missing.csv")
    assert code != 0
    assert "missing.csv" in one_error_line(err)


def test_time_trial_with_opponents_is_refused(capsys: pytest.CaptureFixture[str],
                                              models: dict[str, Path]) -> None:
    code, _, err = run(capsys, "evaluate", models["driver"], "--opponent", models["slow"],
                       "--format", "time-trial", *QUICK)
    assert code == EXIT_INVALID
    assert "a time trial races one policy, got 2" in one_error_line(err)


@pytest.mark.parametrize(("model", "opponent", "rule"), [
    ("garbage", None, "parse"),
    ("bare", None, "metadata"),
    ("driver", "garbage", "parse"),  # a bad opponent is refused too
])
def test_evaluate_refuses_a_bad_model(capsys: pytest.CaptureFixture[str],
                                      models: dict[str, Path], model: str,
                                      opponent: str | None, rule: str) -> None:
    argv: list[str | Path] = ["evaluate", models[model], *QUICK]
    if opponent:
        argv += ["--opponent", models[opponent]]
    code, out, err = run(capsys, *argv)
    assert code == EXIT_INVALID and out == ""
    bad = models[opponent or model]
    assert one_error_line(err).startswith(f"paddock: error: {rule}: {bad}: ")


def test_evaluate_json_reports_an_invalid_policy(capsys: pytest.CaptureFixture[str],
                                                 models: dict[str, Path]) -> None:
    code, out, err = run(capsys, "evaluate", models["garbage"], *QUICK, "--json")
    assert code == EXIT_INVALID
    d = json.loads(out)
    assert set(d) == DESIGN_KEYS | EXTRA_KEYS  # the same shape as a result that ran
    assert d["status"] == "invalid_policy" and d["trials"] == []
    assert d["ranking_time_s"] is None and d["error"].startswith("parse: ")
    assert d["error"] in one_error_line(err)


def test_evaluate_missing_model_file(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    code, _, err = run(capsys, "evaluate", tmp_path / "gone.onnx", *QUICK)
    assert code == EXIT_INVALID
    assert "gone.onnx" in one_error_line(err)


# ----------------------------------------------------------------------------- the real command
def test_installed_command_gives_the_in_process_result(capsys: pytest.CaptureFixture[str],
                                                       models: dict[str, Path]) -> None:
    """The ``paddock`` executable prints the same JSON, bit for bit, as the in-process call:
    what a racer gets at home is what the league computes."""
    exe = Path(sys.executable).with_name("paddock")
    if not exe.exists():
        pytest.skip(f"the paddock command is not installed next to {sys.executable}")
    argv = [str(models["driver"]), *QUICK, "--trials", "2", "--seed", "9", "--json"]
    proc = subprocess.run([str(exe), "evaluate", *argv], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    no_errors(proc.stderr)
    d, _ = evaluate_json(capsys, *argv[:-1])
    assert json.loads(proc.stdout) == d
    bad = subprocess.run([str(exe), "evaluate", str(models["driver"]), "--laps", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == EXIT_INVALID and bad.stdout == ""
    assert "laps must be" in one_error_line(bad.stderr)


def test_evaluate_writes_replays_and_a_trace_log(capsys: pytest.CaptureFixture[str],
                                                 models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    from evaluator import replay

    out = tmp_path / "run.replay"
    csv_path = tmp_path / "trace.csv"
    code, stdout, _ = run(capsys, "evaluate", models["driver"], "--laps", "1", "--trials", "2",
                          "--action-timeout-ms", "1000", "--replay", out,
                          "--trace-csv", csv_path, "--json")
    assert code == 0
    result = json.loads(stdout)
    files = sorted(tmp_path.glob("run-*.replay"))
    assert [f.name for f in files] == ["run-1.replay", "run-2.replay"]  # one per trial
    for trial, path in zip(result["trials"], files, strict=True):
        r = replay.decode(path.read_bytes())
        assert r.seed == trial["seed"] and r.track.name == "oval"
        assert r.cars[0].policy_sha256 == load_policy_file(models["driver"]).sha256
        assert r.meta["trial"] == trial["trial"]
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("episode,steps,X,Y,yaw,steer,throttle,action,reward,done")
    rows = [line.split(",") for line in lines[1:]]
    assert {row[0] for row in rows} == {"1", "2"}  # the trial numbers as episodes
    laps_done = sum(1 for row in rows if row[15] == "lap_complete")
    assert laps_done == sum(t["laps_completed"] for t in result["trials"])
