"""DeepRacer-style simulation trace logs of recorded runs, for the community's notebooks.

One CSV row per car per control step, from step 1, with DeepRacer's 17 columns::

    episode, steps, X, Y, yaw, steer, throttle, action, reward, done,
    all_wheels_on_track, progress, closest_waypoint, track_len, tstamp,
    episode_status, pause_duration

``X, Y`` are the front point, ``yaw`` and ``steer`` degrees, ``steer`` and ``throttle`` the
last command the car applied (unchanged while it is frozen or parked), ``action`` the
discrete action index or -1 for a continuous action space, ``reward`` always 0.0 (a race
has no reward function), ``progress`` the percent of the *current* lap (it restarts at every
line crossing and reads 100.0 on the ``lap_complete`` row, as in DeepRacer's evaluation
logs), ``tstamp`` simulated seconds and ``pause_duration`` the penalty seconds still to serve.

``episode_status`` is decided per row in this order: ``time_up`` (final row of a run that
hit the time cap, car not finished), ``lap_complete`` (a lap was completed in this step),
``park`` (finished earlier), ``off_track`` (left the track in this step), ``crashed``
(blamed for a collision in this step), ``prepare`` (put back on the track in this step),
``pause`` (serving a penalty), else ``in_progress``. Paddock has no rule that ends a run for
an immobilised or reversed car, so ``immobilized`` and ``reversed`` are never written.
``done`` is True once the car has finished and on a run's final row.

DeepRacer's notebooks read one car per log: pass one car per episode number (one file per
car, or distinct episode numbers for the cars of one run).

:func:`replay_trace_rows` rebuilds the rows from a decoded replay. Its values are the
replay's, so within the replay's quanta (docs/REPLAY.md) of the recording's, and the last rows
of a run cut short inside a penalty read the penalty left in the replay. Wheels on track and
the closest waypoint are computed again on the replay's track, as the simulator does. A
format-1 replay did not keep the commands: its ``steer`` and ``throttle`` are the car's actual
steering angle and speed, and ``action`` is -1.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import NamedTuple, TextIO

import numpy as np

from evaluator import _geometry as geo
from evaluator import _sim, car
from evaluator.errors import TrackError
from evaluator.replay import Replay
from evaluator.telemetry import (
    FLAG_BLAME,
    FLAG_DONE,
    FLAG_LAP,
    FLAG_OFF_TRACK,
    FLAG_PENALTY,
    FLAG_RESET,
    Telemetry,
)
from evaluator.track import SEARCH_RADIUS_M, Track
from evaluator.track_library import load_track

TRACE_COLUMNS: tuple[str, ...] = (
    "episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward", "done",
    "all_wheels_on_track", "progress", "closest_waypoint", "track_len", "tstamp",
    "episode_status", "pause_duration",
)

STATUS_IN_PROGRESS = "in_progress"
STATUS_PREPARE = "prepare"
STATUS_LAP_COMPLETE = "lap_complete"
STATUS_OFF_TRACK = "off_track"
STATUS_CRASHED = "crashed"
STATUS_IMMOBILIZED = "immobilized"  # never written: Paddock has no such rule
STATUS_REVERSED = "reversed"  # never written: Paddock has no such rule
STATUS_PAUSE = "pause"
STATUS_PARK = "park"
STATUS_TIME_UP = "time_up"
EPISODE_STATUSES: tuple[str, ...] = (
    STATUS_IN_PROGRESS, STATUS_PREPARE, STATUS_LAP_COMPLETE, STATUS_OFF_TRACK, STATUS_CRASHED,
    STATUS_IMMOBILIZED, STATUS_REVERSED, STATUS_PAUSE, STATUS_PARK, STATUS_TIME_UP,
)

NO_REWARD = 0.0  #: the reward column of an evaluation
CONTINUOUS_ACTION = -1  #: the action column of a continuous action space
LAP_COMPLETE_PCT = 100.0  #: progress on a lap_complete row
WHEELS = 4  #: wheel contact points of a car (all on track: all_wheels_on_track)
DECIMALS = 4  #: digits after the point for metres, degrees, m/s and percent
TIME_DECIMALS = 3  #: digits after the point for seconds


class TraceRow(NamedTuple):
    """One row of the trace log, typed (:func:`write_trace_csv` formats it)."""

    episode: int
    steps: int
    X: float  #: front point x, metres
    Y: float  #: front point y, metres
    yaw: float  #: degrees
    steer: float  #: commanded steering, degrees, positive left
    throttle: float  #: commanded speed, m/s
    action: int
    reward: float
    done: bool
    all_wheels_on_track: bool
    progress: float  #: percent of the current lap
    closest_waypoint: int
    track_len: float  #: metres
    tstamp: float  #: simulated seconds
    episode_status: str
    pause_duration: float  #: penalty seconds still to serve


class TraceRun(NamedTuple):
    """One car of one recorded run, as :func:`write_trace_csv` takes it."""

    episode: int
    telemetry: Telemetry
    car: int = 0
    time_up: bool = False  #: the run was stopped by the time cap


def _statuses(flags: np.ndarray, time_up: bool) -> list[str]:
    """``episode_status`` of frames 1.. of one car from its flag bits (see the module doc)."""
    out: list[str] = []
    last = len(flags) - 1
    for t in range(1, len(flags)):
        f = int(flags[t])
        if t == last and time_up and not f & FLAG_DONE:
            out.append(STATUS_TIME_UP)
        elif f & FLAG_LAP:
            out.append(STATUS_LAP_COMPLETE)
        elif f & FLAG_DONE:
            out.append(STATUS_PARK)
        elif f & FLAG_OFF_TRACK:
            out.append(STATUS_OFF_TRACK)
        elif f & FLAG_BLAME:
            out.append(STATUS_CRASHED)
        elif f & FLAG_RESET:
            out.append(STATUS_PREPARE)
        elif f & FLAG_PENALTY:
            out.append(STATUS_PAUSE)
        else:
            out.append(STATUS_IN_PROGRESS)
    return out


def trace_rows(episode: int, tel: Telemetry, car_index: int = 0,
               time_up: bool = False) -> Iterator[TraceRow]:
    """The trace rows of car ``car_index`` of a recorded run, one per step from step 1."""
    if not 0 <= car_index < len(tel.cars):
        raise ValueError(f"car index {car_index} out of range: the run has {len(tel.cars)} cars")
    i = car_index
    flags = tel.flags()[:, i]
    statuses = _statuses(flags, time_up)
    fx = tel.column(_sim.C_FX)[:, i]
    fy = tel.column(_sim.C_FY)[:, i]
    yaw = tel.yaw_deg()[:, i]
    steer_all, speed_all = tel.commanded()
    steer, throttle = steer_all[:, i], speed_all[:, i]
    discrete = tel.cars[i].discrete
    actions = tel.action_index[: tel.frames, i]
    wheels = tel.column(_sim.C_WHEELS)[:, i]
    progress = tel.lap_progress_pct()[:, i]
    waypoint = tel.closest_waypoint()[:, i]
    freeze = tel.column(_sim.C_FREEZE)[:, i]
    length = float(tel.track.length)
    last = tel.frames - 1
    for t in range(1, tel.frames):
        status = statuses[t - 1]
        yield TraceRow(
            episode=int(episode),
            steps=t,
            X=float(fx[t]),
            Y=float(fy[t]),
            yaw=float(yaw[t]),
            steer=float(steer[t]),
            throttle=float(throttle[t]),
            action=int(actions[t]) if discrete else CONTINUOUS_ACTION,
            reward=NO_REWARD,
            done=bool(flags[t] & FLAG_DONE) or t == last,
            all_wheels_on_track=bool(wheels[t] >= WHEELS),
            progress=LAP_COMPLETE_PCT if status == STATUS_LAP_COMPLETE else float(progress[t]),
            closest_waypoint=int(waypoint[t]),
            track_len=length,
            tstamp=t * tel.dt,
            episode_status=status,
            pause_duration=float(freeze[t]) / car.CONTROL_HZ,
        )


def format_row(row: TraceRow) -> list[str]:
    """The CSV cells of a row: fixed decimals, booleans as ``True``/``False`` like DeepRacer."""
    def num(v: float) -> str:
        return f"{v:.{DECIMALS}f}"

    return [
        str(row.episode), str(row.steps), num(row.X), num(row.Y), num(row.yaw), num(row.steer),
        num(row.throttle), str(row.action), num(row.reward), str(row.done),
        str(row.all_wheels_on_track), num(row.progress), str(row.closest_waypoint),
        num(row.track_len), f"{row.tstamp:.{TIME_DECIMALS}f}", row.episode_status,
        f"{row.pause_duration:.{TIME_DECIMALS}f}",
    ]


def write_trace_csv(runs: Iterable[tuple[int, Telemetry, int, bool]], out: TextIO) -> int:
    """Write the header and the rows of each (episode, telemetry, car, time_up); return rows."""
    return write_trace_rows((row for episode, tel, car_index, time_up in runs
                             for row in trace_rows(episode, tel, car_index, time_up)), out)


def replay_trace_rows(episode: int, replay: Replay, car_index: int = 0, time_up: bool = False,
                      track: Track | None = None) -> Iterator[TraceRow]:
    """The trace rows of car ``car_index`` of a decoded replay, one per step from step 1.

    ``track`` is the track the replay was recorded on (default: loaded by the replay's track
    name); its geometry must be the replay's (same digest). See the module docstring for what
    differs from :func:`trace_rows`.
    """
    if not 0 <= car_index < len(replay.cars):
        raise ValueError(f"car index {car_index} out of range: the replay has "
                         f"{len(replay.cars)} cars")
    track = track or load_track(replay.track.name)
    if track.digest != replay.track.digest:
        raise TrackError(f"track {replay.track.name!r} has changed since the replay was "
                         "recorded; its trace cannot be computed again")
    c = replay.cars[car_index]
    flags = np.asarray(c.flags, dtype=np.uint8)
    statuses = _statuses(flags, time_up)
    fx, fy = front_point(c.x, c.y, c.yaw)
    yaw = np.degrees(c.yaw)
    if c.command_steering is not None and c.command_speed is not None and c.action is not None:
        steer, throttle = np.degrees(c.command_steering), c.command_speed
        actions = c.action
    else:  # format 1: the car's actual steering and speed stand in for the command
        steer, throttle = np.degrees(c.steering), c.speed
        actions = np.full(replay.frames, CONTINUOUS_ACTION)
    wheels, waypoint = _wheels_and_waypoints(track, c.x, c.y, c.yaw, fx, fy, flags)
    pause = _penalty_left(flags) * replay.dt
    length = float(replay.track.length)
    last = replay.frames - 1
    for t in range(1, replay.frames):
        status = statuses[t - 1]
        yield TraceRow(
            episode=int(episode), steps=t, X=float(fx[t]), Y=float(fy[t]), yaw=float(yaw[t]),
            steer=float(steer[t]), throttle=float(throttle[t]), action=int(actions[t]),
            reward=NO_REWARD, done=bool(flags[t] & FLAG_DONE) or t == last,
            all_wheels_on_track=bool(wheels[t] >= WHEELS),
            progress=LAP_COMPLETE_PCT if status == STATUS_LAP_COMPLETE else float(c.progress[t]),
            closest_waypoint=int(waypoint[t]), track_len=length, tstamp=t * replay.dt,
            episode_status=status, pause_duration=float(pause[t]),
        )


def write_trace_rows(rows: Iterable[TraceRow], out: TextIO) -> int:
    """Write the header and ``rows`` as CSV; return how many rows were written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRACE_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(format_row(row))
        count += 1
    return count


def front_point(x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeepRacer's (x, y): the point ``car.FRONT_POINT_M`` ahead of the rear axle."""
    return x + car.FRONT_POINT_M * np.cos(yaw), y + car.FRONT_POINT_M * np.sin(yaw)


def _penalty_left(flags: np.ndarray) -> np.ndarray:
    """Steps of penalty still to serve per frame: the run of penalty frames from each frame."""
    left = np.zeros(len(flags))
    for t in range(len(flags) - 1, -1, -1):
        if flags[t] & FLAG_PENALTY:
            left[t] = 1.0 + (left[t + 1] if t + 1 < len(flags) else 0.0)
    return left


def _wheels_and_waypoints(track: Track, x: np.ndarray, y: np.ndarray, yaw: np.ndarray,
                          fx: np.ndarray, fy: np.ndarray,
                          flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wheels on the track surface and the closest waypoint per frame (as the simulator counts
    them: each point projected near the front point's previous segment)."""
    tseg = track.kernel.tseg
    seg_len = track.segment_lengths
    frames = len(x)
    wheels = np.zeros(frames, dtype=np.int64)
    waypoint = np.zeros(frames, dtype=np.int64)
    nx, ny = -np.sin(yaw) * car.AXLE_HALF_WIDTH_M, np.cos(yaw) * car.AXLE_HALF_WIDTH_M
    hint = -1
    for t in range(frames):
        if hint < 0 or flags[t] & FLAG_RESET:  # the start, or put back on the track
            seg, along, _ = geo.project_global(tseg, float(fx[t]), float(fy[t]))
        else:
            seg, along, _ = geo.project_local(tseg, float(fx[t]), float(fy[t]), hint,
                                              SEARCH_RADIUS_M)
        hint = int(seg)
        waypoint[t] = (hint + 1) % len(seg_len) if along > 0.5 * seg_len[hint] else hint
        for axle in (0.0, car.WHEELBASE_M):
            ax = float(x[t] + axle * np.cos(yaw[t]))
            ay = float(y[t] + axle * np.sin(yaw[t]))
            for side in (-1.0, 1.0):
                i, u, off = geo.project_local(tseg, ax + side * float(nx[t]),
                                              ay + side * float(ny[t]), hint, SEARCH_RADIUS_M)
                wheels[t] += bool(geo.inside(tseg, i, u, off))
    return wheels, waypoint
