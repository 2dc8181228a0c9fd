"""Tests for evaluator.trace.replay_trace_rows: the trace CSV rebuilt from a stored replay."""

from __future__ import annotations

import copy
import csv
import io
from typing import TYPE_CHECKING

import numpy as np
import pytest

from evaluator import replay, trace
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.errors import TrackError
from evaluator.telemetry import CarLabel, Telemetry
from evaluator.track_library import load_track
from tests.support.replay_formats import as_format_1

if TYPE_CHECKING:
    from conftest import RaceRecorder

LAPS = 2
EXACT = ("episode", "steps", "action", "reward", "done", "all_wheels_on_track",
         "closest_waypoint", "track_len", "tstamp", "episode_status")


@pytest.fixture(scope="module")
def heat(record_race: RaceRecorder) -> Telemetry:
    """Oval, 2 laps: a slow car, a fast car that rear-ends it, and a car that swerves off."""
    drivers: list[Driver] = [PurePursuitDriver(1.5), PurePursuitDriver(3.5, follow=False),
                             record_race.Swerver()]
    return record_race(load_track("oval"), drivers, 1800, LAPS)


@pytest.fixture(scope="module")
def stored(heat: Telemetry) -> replay.Replay:
    """The heat as a worker stores it and the website reads it back."""
    return replay.decode(replay.encode(replay.from_telemetry(heat)))


def test_rows_match_the_recording(heat: Telemetry, stored: replay.Replay) -> None:
    statuses: set[str] = set()
    for i in range(3):
        recorded = list(trace.trace_rows(4, heat, i))
        rebuilt = list(trace.replay_trace_rows(4, stored, i))
        assert len(rebuilt) == len(recorded) == heat.frames - 1
        for key in EXACT:
            assert [getattr(r, key) for r in rebuilt] == [getattr(r, key) for r in recorded]
        # steer and throttle are the commands, within the replay's quanta (0.05 mrad, 0.5 mm/s)
        for key, tol in (("X", 6e-4), ("Y", 6e-4), ("yaw", 3e-3), ("progress", 6e-3),
                         ("pause_duration", 1e-9), ("steer", 3e-3), ("throttle", 6e-4)):
            np.testing.assert_allclose([getattr(r, key) for r in rebuilt],
                                       [getattr(r, key) for r in recorded], atol=tol, rtol=0)
        statuses |= {r.episode_status for r in rebuilt}
    assert {"off_track", "crashed", "prepare", "pause", "lap_complete", "park"} <= statuses


def test_discrete_actions_come_back(heat: Telemetry) -> None:
    """A discrete policy's action indices are kept exactly; a continuous car writes -1."""
    tel = copy.deepcopy(heat)
    tel.cars[1] = CarLabel(tel.cars[1].name, discrete=True)
    tel.action_index[: tel.frames, 1] = np.arange(tel.frames) % 5
    tel.action_index[0, 1] = -1
    stored = replay.decode(replay.encode(replay.from_telemetry(tel)))
    recorded = [r.action for r in trace.trace_rows(1, tel, 1)]
    rebuilt = [r.action for r in trace.replay_trace_rows(1, stored, 1)]
    assert rebuilt == recorded and set(rebuilt) == {0, 1, 2, 3, 4}
    assert {r.action for r in trace.replay_trace_rows(1, stored, 0)} == {-1}


def test_format_1_replays_fall_back_to_the_cars_state(stored: replay.Replay) -> None:
    """A replay kept before the commands were: actual steering and speed, action -1."""
    old = replay.decode(as_format_1(replay.encode(stored)))
    for i in range(3):
        rows = list(trace.replay_trace_rows(4, old, i))
        current = list(trace.replay_trace_rows(4, stored, i))
        np.testing.assert_allclose([r.steer for r in rows], np.degrees(old.cars[i].steering[1:]))
        np.testing.assert_allclose([r.throttle for r in rows], old.cars[i].speed[1:])
        assert {r.action for r in rows} == {-1}
        for key in EXACT + ("X", "Y", "yaw", "progress", "pause_duration"):
            assert [getattr(r, key) for r in rows] == [getattr(r, key) for r in current]


def test_csv_has_deepracer_columns_and_a_row_per_step(stored: replay.Replay) -> None:
    out = io.StringIO()
    count = trace.write_trace_rows(trace.replay_trace_rows(1, stored, 2, time_up=True), out)
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(out.getvalue().splitlines()[0].split(",")) == trace.TRACE_COLUMNS
    assert count == len(records) == stored.frames - 1
    assert [int(r["steps"]) for r in records] == list(range(1, stored.frames))


def test_time_up_and_refusals(stored: replay.Replay, record_race: RaceRecorder) -> None:
    tel = record_race(load_track("oval"), [PurePursuitDriver(2.0)], 60, LAPS)
    capped = replay.decode(replay.encode(replay.from_telemetry(tel)))
    rows = list(trace.replay_trace_rows(1, capped, 0, time_up=True))
    assert rows[-1].episode_status == "time_up" and rows[-1].done
    assert not any(r.done for r in rows[:-1])
    with pytest.raises(ValueError, match="car index 3"):
        next(trace.replay_trace_rows(1, stored, 3))
    stored_elsewhere = replay.decode(replay.encode(replay.from_telemetry(tel)))
    stored_elsewhere.track.digest = "0" * 64
    with pytest.raises(TrackError, match="has changed"):
        next(trace.replay_trace_rows(1, stored_elsewhere, 0))
