"""DeepRacer's reward-function ``params`` dictionary, computed from a world.

The keys and their semantics follow DeepRacer's 26-row table (27 names: ``x`` and ``y`` share
a row; see the project's DEEPRACER notes): ``x`` and ``y`` are the car's front point,
``speed`` and ``steering_angle`` the commanded action, ``progress`` the share of the lap done
since the episode's start, in percent. ``waypoints`` is DeepRacer's list of (x, y) tuples,
one read-only list shared by every call and free to copy (:class:`Waypoints`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

from evaluator import _sim, car, observation
from evaluator._detmath import DEG_PER_RAD
from evaluator.errors import RewardFunctionError
from evaluator.world import World

REWARD_LIMIT = 1e5  # DeepRacer rejects rewards outside [-1e5, 1e5]
CAMERA_HALF_FOV_DEG = 60.0  # object_in_camera: the next object within this of the heading
CAMERA_RANGE_M = observation.RAY_RANGE_M  # ... and this close
_BODY_CENTRE = 0.5 * (car.BODY_FRONT_M - car.BODY_REAR_M) / car.FRONT_POINT_M

PARAM_KEYS = (
    "all_wheels_on_track", "x", "y", "heading", "distance_from_center", "is_left_of_center",
    "progress", "steps", "speed", "steering_angle", "track_width", "track_length",
    "waypoints", "closest_waypoints", "is_offtrack", "is_crashed", "is_reversed",
    "closest_objects", "objects_location", "objects_left_of_center", "objects_speed",
    "objects_heading", "objects_distance", "objects_distance_from_center", "object_in_camera",
    "projection_distance", "sim_time",
)

RewardFunction = Callable[[dict[str, Any]], float]


class Waypoints(list[tuple[float, float]]):
    """A track's centerline points as ``params["waypoints"]`` holds them: DeepRacer's list of
    (x, y) tuples, read-only, and the same object in every ``params`` of a world.

    Copying returns the object itself, deep copies included: nothing in it can change, and
    training loops copy ``info`` (and so ``params``) on every step (Stable-Baselines3's
    vectorised environments deep-copy their infos), which for a list of a few hundred points
    cost more than the step. Changing it raises :class:`TypeError`; ``list(waypoints)`` is a
    copy to change. Pickled (to another process) it is a plain list.
    """

    __slots__ = ()

    def __copy__(self) -> Waypoints:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Waypoints:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def _read_only(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise TypeError("params['waypoints'] is read-only: copy it with list() to change it")

    append = extend = insert = remove = pop = clear = sort = reverse = _read_only
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only


class Params(dict[str, Any]):
    """One step's ``params``: a plain dictionary of DeepRacer's keys, cheap to deep-copy.

    Every value is a number, a bool, the shared read-only :class:`Waypoints`, or a fresh list
    of numbers, bools or tuples of numbers; so a deep copy is a new dictionary with new
    lists, made without :mod:`copy`'s walk over every element (Stable-Baselines3 deep-copies
    ``info``, and with it ``params``, on every step).
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> Params:
        copied = Params({key: list(value) if type(value) is list else value
                         for key, value in self.items()})
        memo[id(self)] = copied
        return copied


class ParamsBuilder:
    """Builds ``params`` for the cars of one world, sharing what never changes."""

    def __init__(self, world: World, *, solo: bool = False) -> None:
        self.world = world
        self.solo = solo  # a batch of independent cars: the others are not objects
        track = world.track
        self.waypoints = Waypoints(track.waypoints)
        self.n = track.num_points
        self.length = world.length
        self._wl = track.width_left.tolist()
        self._wr = track.width_right.tolist()
        self._seg_len = track.segment_lengths.tolist()
        self._static = []
        for o in world.obstacles:
            p = track.project(o.x, o.y)
            self._static.append((float(o.x), float(o.y), p.s, p.offset))

    def build(self, i: int, steps: int) -> dict[str, Any]:
        """The params of car i after ``steps`` steps of its episode."""
        w = self.world
        c = w.cars[i].tolist()
        seg = int(c[_sim.C_SEG])
        nxt = seg + 1 if seg + 1 < self.n else 0
        f = c[_sim.C_T] / self._seg_len[seg]
        width = (self._wl[seg] + (self._wl[nxt] - self._wl[seg]) * f
                 + self._wr[seg] + (self._wr[nxt] - self._wr[seg]) * f)
        off = c[_sim.C_OFF]
        wheels = c[_sim.C_WHEELS]
        heading_err = float(w.obs[i, observation.I_HEADING])
        params = Params({
            "all_wheels_on_track": wheels == 4.0,
            "x": c[_sim.C_FX],
            "y": c[_sim.C_FY],
            "heading": c[_sim.C_TH] * DEG_PER_RAD,
            "distance_from_center": abs(off),
            "is_left_of_center": off > 0.0,
            "progress": 100.0 * w.lap_progress(i),
            "steps": steps,
            "speed": c[_sim.C_CMD_SPEED],
            "steering_angle": c[_sim.C_CMD_STEER] * DEG_PER_RAD,
            "track_width": width,
            "track_length": self.length,
            "waypoints": self.waypoints,
            "closest_waypoints": [seg, nxt],
            "is_offtrack": wheels == 0.0,
            "is_crashed": bool(w.events[i, _sim.E_CRASH]),
            "is_reversed": abs(heading_err) > 0.5,
            "projection_distance": c[_sim.C_S],
            "sim_time": steps / car.CONTROL_HZ,  # the episode's, not the world's
        })
        self._objects(i, c, params)
        return params

    def _objects(self, i: int, c: list[float], params: dict[str, Any]) -> None:
        """Fill the object keys: the other cars first (by car index), then the obstacles."""
        w = self.world
        loc: list[tuple[float, float]] = []
        left: list[bool] = []
        speed: list[float] = []
        heading: list[float] = []
        dist: list[float] = []
        dfc: list[float] = []
        for j in range(0 if self.solo else w.num_cars):
            if j == i:
                continue
            o = w.cars[j].tolist()
            loc.append((o[_sim.C_X] + (o[_sim.C_FX] - o[_sim.C_X]) * _BODY_CENTRE,
                        o[_sim.C_Y] + (o[_sim.C_FY] - o[_sim.C_Y]) * _BODY_CENTRE))
            left.append(o[_sim.C_OFF] > 0.0)
            speed.append(o[_sim.C_V])
            heading.append(o[_sim.C_TH] * DEG_PER_RAD)
            dist.append(o[_sim.C_S])
            dfc.append(abs(o[_sim.C_OFF]))
        for x, y, s, off in self._static:
            loc.append((x, y))
            left.append(off > 0.0)
            speed.append(0.0)
            heading.append(0.0)
            dist.append(s)
            dfc.append(abs(off))
        closest = [0, 0]
        in_camera = False
        if dist:
            ego_s = c[_sim.C_S]
            ahead_gap = [(d - ego_s) % self.length for d in dist]
            ahead = min(range(len(dist)), key=ahead_gap.__getitem__)
            behind = max(range(len(dist)), key=ahead_gap.__getitem__)
            closest = [behind, ahead]
            dx = loc[ahead][0] - c[_sim.C_FX]
            dy = loc[ahead][1] - c[_sim.C_FY]
            bearing = math.degrees(math.atan2(dy, dx)) - c[_sim.C_TH] * DEG_PER_RAD
            bearing = (bearing + 180.0) % 360.0 - 180.0
            in_camera = (abs(bearing) <= CAMERA_HALF_FOV_DEG
                         and math.hypot(dx, dy) <= CAMERA_RANGE_M)
        params["closest_objects"] = closest
        params["objects_location"] = loc
        params["objects_left_of_center"] = left
        params["objects_speed"] = speed
        params["objects_heading"] = heading
        params["objects_distance"] = dist
        params["objects_distance_from_center"] = dfc
        params["object_in_camera"] = in_camera


def call_reward_function(fn: RewardFunction, params: dict[str, Any]) -> float:
    """Run a racer's reward function; anything but a finite number within +-1e5 is an error."""
    try:
        value = fn(params)
    except Exception as err:  # the racer's code: any failure is reported, never swallowed
        raise RewardFunctionError(
            f"reward function raised {type(err).__name__}: {err}"
        ) from err
    not_a_number = f"reward function must return a number, got {type(value).__name__}"
    if isinstance(value, str | bytes | bytearray):  # float("1.0") would accept text
        raise RewardFunctionError(not_a_number)
    try:
        reward = float(value)  # ints, floats, numpy scalars
    except (TypeError, ValueError) as err:
        raise RewardFunctionError(not_a_number) from err
    if not math.isfinite(reward):
        raise RewardFunctionError(f"reward function returned {reward}; it must be finite")
    if abs(reward) > REWARD_LIMIT:
        raise RewardFunctionError(
            f"reward function returned {reward:g}; rewards must lie within +-{REWARD_LIMIT:g}"
        )
    return reward
