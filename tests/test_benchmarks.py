"""The benchmarks run and print the JSON they promise (speed targets are not tested here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sim_benchmark_quick_prints_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sim.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["sim_version"]
    for key in ("single_env_steps_per_s", "vector_car_steps_per_s", "raw_world_step_us"):
        assert key in result
    assert result["single_env_steps_per_s"] > 0
    assert all(v > 0 for v in result["vector_car_steps_per_s"].values())


def test_evaluate_benchmark_quick_prints_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "evaluate.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    summary = result["summary"]
    for key in ("time_trial_steps_per_s", "time_trial_steps_per_s_warm",
                "time_trial_3x3_wall_s", "head_to_head_heat_race_steps_per_s"):
        assert summary[key] > 0
    assert result["time_trial_3x3"]["status"] == "finished"
    assert result["time_trial_3x3"]["car_steps"] > 0
    for figure in result["warm_vs_fresh"].values():  # consecutive evaluations, warm vs fresh
        assert figure["fresh_s"] > 0 and figure["warm_s"] > 0 and figure["speedup"] > 0
    assert summary["warm_time_trial_speedup"] > 0 and summary["warm_heat_speedup"] > 0
    for figure in result["warm_vs_fresh"].values():
        assert figure["forked_s"] > 0 and figure["forked_speedup"] > 0
    limit = result["in_process_limit"]  # the same worlds, the same model: the same steps
    assert limit["same_car_steps"] is True and limit["in_process"]["car_steps"] > 0
    for how in ("started", "forked", "warm"):
        assert 0 < summary[f"time_trial_3x3_fraction_of_in_process_{how}"] == \
            limit[f"fraction_{how}"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (the load tool) is not installed")
def test_web_benchmark_quick_prints_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "web.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert set(result["targets"]) == {"race_page_p95_ms", "league_page_p95_ms", "errors"}
    for name in ("race_page", "league_page"):
        figures = result["pages"][name]
        assert figures["status"] == 200 and figures["errors"] == 0
        assert figures["requests"] > 0 and figures["p95_ms"] > 0
        assert figures["first_request_ms"] > 0


def test_live_benchmark_quick_prints_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "live.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert set(result["targets"]) == {"lag_p95_s", "errors", "heat_slowdown_ratio"}
    event = result["events"]["watched"]  # the event ran for real: its heat raced and aired
    assert event["status"] == "finished" and event["slots"] >= 2
    assert event["heats"] and all(h["status"] == "succeeded" for h in event["heats"])
    assert result["events"]["unwatched"] is None  # the full run's baseline event only
    assert result["errors"] == 0 and result["lag_samples"] > 0
    assert result["statuses"]["segment"].get("200", 0) > 0
    assert result["response_ms"]["index"]["p95"] > 0
