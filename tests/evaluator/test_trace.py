"""Tests for evaluator.trace: DeepRacer-style simulation trace CSV of recorded runs."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pytest

from evaluator import _sim, car, trace
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.telemetry import Telemetry
from evaluator.track_library import load_track

if TYPE_CHECKING:
    from conftest import RaceRecorder

LAPS = 2
HEADER = ("episode,steps,X,Y,yaw,steer,throttle,action,reward,done,all_wheels_on_track,"
          "progress,closest_waypoint,track_len,tstamp,episode_status,pause_duration")


@pytest.fixture(scope="module")
def heat(record_race: RaceRecorder) -> Telemetry:
    """Oval, 2 laps: a slow car, a fast car that rear-ends it, and a car that swerves off."""
    drivers: list[Driver] = [PurePursuitDriver(1.5), PurePursuitDriver(3.5, follow=False),
                             record_race.Swerver()]
    return record_race(load_track("oval"), drivers, 1800, LAPS)


def rows(tel: Telemetry, i: int, time_up: bool = False) -> list[trace.TraceRow]:
    return list(trace.trace_rows(7, tel, i, time_up))


def test_csv_header_and_row_counts(heat: Telemetry) -> None:
    out = io.StringIO()
    runs = [trace.TraceRun(10 + i, heat, i) for i in range(3)]
    written = trace.write_trace_csv(runs, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == HEADER
    assert tuple(lines[0].split(",")) == trace.TRACE_COLUMNS
    assert written == len(lines) - 1 == 3 * (heat.frames - 1)
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert Counter(r["episode"] for r in records) == {str(10 + i): heat.frames - 1
                                                      for i in range(3)}
    first = records[0]
    assert first["steps"] == "1" and first["reward"] == "0.0000" and first["action"] == "-1"
    assert first["done"] in ("True", "False") and first["all_wheels_on_track"] == "True"
    for r in records:  # every cell parses
        for key in ("X", "Y", "yaw", "steer", "throttle", "progress", "track_len", "tstamp",
                    "pause_duration"):
            float(r[key])
        int(r["closest_waypoint"])
        assert r["episode_status"] in trace.EPISODE_STATUSES
    # plain tuples work as runs too
    assert trace.write_trace_csv([(1, heat, 0, False)], io.StringIO()) == heat.frames - 1


def test_row_values(heat: Telemetry) -> None:
    tel = heat
    for i in range(3):
        got = rows(tel, i)
        assert [r.steps for r in got] == list(range(1, tel.frames))
        assert all(r.episode == 7 and r.reward == 0.0 and r.action == -1 for r in got)
        np.testing.assert_array_equal([r.X for r in got], tel.column(_sim.C_FX)[1:, i])
        np.testing.assert_array_equal([r.Y for r in got], tel.column(_sim.C_FY)[1:, i])
        np.testing.assert_allclose([r.tstamp for r in got],
                                   np.arange(1, tel.frames) / car.CONTROL_HZ)
        yaw = np.array([r.yaw for r in got])
        assert np.all((yaw > -180.0) & (yaw <= 180.0))
        steer = np.array([r.steer for r in got])
        assert np.all(np.abs(steer) <= car.MAX_STEER_DEG + 1e-9)
        throttle = np.array([r.throttle for r in got])
        assert np.all((throttle >= car.MIN_SPEED_MPS) & (throttle <= car.MAX_SPEED_MPS))
        progress = np.array([r.progress for r in got])
        assert np.all((progress >= 0.0) & (progress <= 100.0))
        assert all(r.track_len == pytest.approx(tel.track.length) for r in got)
        assert all(0 <= r.closest_waypoint < tel.track.num_points for r in got)
        np.testing.assert_allclose([r.pause_duration for r in got],
                                   tel.column(_sim.C_FREEZE)[1:, i] / car.CONTROL_HZ)
        wheels = tel.column(_sim.C_WHEELS)[1:, i]
        assert [r.all_wheels_on_track for r in got] == list(wheels == 4)


def test_statuses(heat: Telemetry) -> None:
    ev = heat.events[: heat.frames]
    all_statuses: set[str] = set()
    for i in range(3):
        got = rows(heat, i)
        status = [r.episode_status for r in got]
        all_statuses |= set(status)
        count = Counter(status)
        # a lap_complete row per lap, reading 100 %; progress restarts after it
        laps = [k for k, r in enumerate(got) if r.episode_status == "lap_complete"]
        assert len(laps) == LAPS == int(ev[:, i, _sim.E_LAP].sum())
        for k in laps:
            assert got[k].progress == 100.0
            if k + 1 < len(got) and got[k + 1].episode_status != "park":
                assert got[k + 1].progress < 10.0
        # off track and crashes on the step they happen, the reset step is prepare
        assert count["off_track"] == int(ev[:, i, _sim.E_OFFTRACK].sum())
        assert count["crashed"] == int(ev[:, i, _sim.E_BLAME].sum())
        assert count["prepare"] == int(ev[:, i, _sim.E_RESET].sum())
        for r in got:
            if r.episode_status == "pause":
                assert r.pause_duration > 0.0
            if r.episode_status == "in_progress":
                assert r.pause_duration == 0.0 and not r.done
        # parked after the last lap, done from the finish on
        finish = laps[-1]
        assert all(s == "park" for s in status[finish + 1:])
        assert [r.done for r in got] == [k >= finish for k in range(len(got))]
        assert "time_up" not in count
    assert {"in_progress", "lap_complete", "off_track", "crashed", "prepare", "pause",
            "park"} <= all_statuses
    assert all_statuses <= set(trace.EPISODE_STATUSES)


def test_time_up_on_the_final_row_only(record_race: RaceRecorder) -> None:
    tel = record_race(load_track("oval"), [PurePursuitDriver(2.0), record_race.Swerver()], 150,
                      LAPS)
    assert tel.frames == 151  # nobody finished: stopped by the cap
    for i in range(2):
        capped = rows(tel, i, time_up=True)
        assert capped[-1].episode_status == "time_up" and capped[-1].done
        assert all(r.episode_status != "time_up" and not r.done for r in capped[:-1])
        plain = rows(tel, i)
        assert plain[-1].episode_status != "time_up" and plain[-1].done


def test_finished_car_is_not_time_up(heat: Telemetry) -> None:
    got = rows(heat, 0, time_up=True)  # car 0 had finished before the last frame
    assert got[-1].episode_status == "park"


def test_discrete_action_index(record_race: RaceRecorder) -> None:
    tel = record_race(load_track("oval"), [PurePursuitDriver(2.0)], 20, 0, discrete=True)
    got = rows(tel, 0)
    assert [r.action for r in got] == [t % 5 for t in range(1, 21)]


def test_bad_car_index(heat: Telemetry) -> None:
    with pytest.raises(ValueError, match="car index 3"):
        rows(heat, 3)
