"""Telemetry: every car's state at every control step of one race run (a trial or a heat).

The race engine copies the world's state rows once per step (cheap: one array copy); the
replay and trace-log writers derive what they need from it afterwards, vectorised.
Frame 0 is the start (the grid), frame t the state after step t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evaluator import _sim, car
from evaluator._detmath import DEG_PER_RAD
from evaluator.errors import SimulationError
from evaluator.track import Track
from evaluator.world import Obstacle, World

# Flag bits of one car in one frame (shared by the replay format and the trace log).
FLAG_OFF_TRACK = 1  # all four wheels off during this step
FLAG_PENALTY = 2  # frozen, serving a penalty
FLAG_COLLISION = 4  # touched another car or an obstacle during this step
FLAG_BLAME = 8  # was given the collision penalty this step
FLAG_LAP = 16  # completed a lap during this step
FLAG_RESET = 32  # put back on the track this step
FLAG_DONE = 64  # finished its laps (parked)
FLAG_GHOST = 128  # passes through other cars (after a reset, until clear)


@dataclass(frozen=True)
class CarLabel:
    """Who drove a car in a run."""

    name: str  #: display name (the policy's metadata name or a label)
    policy_sha256: str = ""  #: digest of the policy file, empty for built-in drivers
    discrete: bool = False  #: whether ``action_index`` is meaningful
    bot: bool = False  #: a built-in bot car of a head-to-bot race (never ranked)


@dataclass(eq=False)
class Telemetry:
    """Recorded states of ``len(cars)`` cars over up to ``max_steps`` steps."""

    track: Track
    seed: int
    cars: list[CarLabel]
    max_steps: int
    state: np.ndarray = field(init=False)  #: (frames, cars, _sim.NUM_STATE)
    events: np.ndarray = field(init=False)  #: (frames, cars, _sim.NUM_EVENTS)
    action_index: np.ndarray = field(init=False)  #: (frames, cars) int16, -1 continuous
    frames: int = 0  #: frames recorded so far
    #: The world's static obstacles, taken at the first capture (the replay draws them).
    obstacles: tuple[Obstacle, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        n = len(self.cars)
        self.state = np.zeros((self.max_steps + 1, n, _sim.NUM_STATE))
        self.events = np.zeros((self.max_steps + 1, n, _sim.NUM_EVENTS), dtype=np.uint8)
        self.action_index = np.full((self.max_steps + 1, n), -1, dtype=np.int16)

    def capture(self, world: World, action_index: np.ndarray | None = None) -> None:
        """Record the world as it is now (call once at the start, then after every step)."""
        t = self.frames
        if t > self.max_steps:
            raise SimulationError(f"telemetry holds {self.max_steps} steps; the run went on")
        self.state[t] = world.cars
        if t:
            self.events[t] = world.events
        else:
            self.obstacles = tuple(world.obstacles)
        if action_index is not None:
            self.action_index[t] = action_index
        self.frames = t + 1

    # ------------------------------------------------------------------ derived columns
    def column(self, col: int) -> np.ndarray:
        """One state column for every recorded frame and car: (frames, cars)."""
        return self.state[: self.frames, :, col]

    def flags(self) -> np.ndarray:
        """Flag bits (``FLAG_*``) per frame and car, uint8."""
        ev = self.events[: self.frames]
        out = np.zeros(ev.shape[:2], dtype=np.uint8)
        out |= np.where(ev[:, :, _sim.E_OFFTRACK] > 0, FLAG_OFF_TRACK, 0).astype(np.uint8)
        out |= np.where(self.column(_sim.C_FREEZE) > 0, FLAG_PENALTY, 0).astype(np.uint8)
        out |= np.where(ev[:, :, _sim.E_CRASH] > 0, FLAG_COLLISION, 0).astype(np.uint8)
        out |= np.where(ev[:, :, _sim.E_BLAME] > 0, FLAG_BLAME, 0).astype(np.uint8)
        out |= np.where(ev[:, :, _sim.E_LAP] > 0, FLAG_LAP, 0).astype(np.uint8)
        out |= np.where(ev[:, :, _sim.E_RESET] > 0, FLAG_RESET, 0).astype(np.uint8)
        out |= np.where(self.column(_sim.C_DONE) > 0, FLAG_DONE, 0).astype(np.uint8)
        out |= np.where(self.column(_sim.C_GHOST) > 0, FLAG_GHOST, 0).astype(np.uint8)
        return out

    def lap_progress_pct(self) -> np.ndarray:
        """Percent of the current lap done (0-100; 100 once finished), per frame and car."""
        length = self.track.length
        s = self.column(_sim.C_S_TOTAL) - self.column(_sim.C_S_ORIGIN)
        frac = (s - self.column(_sim.C_LAPS) * length) / length
        pct: np.ndarray = np.where(self.column(_sim.C_DONE) > 0, 100.0,
                                   np.clip(frac, 0.0, 1.0) * 100.0)
        return pct

    def yaw_deg(self) -> np.ndarray:
        """Heading in degrees, (-180, 180]."""
        return self.column(_sim.C_TH) * DEG_PER_RAD

    def steering_deg(self) -> np.ndarray:
        """Actual front-wheel angle in degrees, positive left."""
        return self.column(_sim.C_DELTA) * DEG_PER_RAD

    def commanded(self) -> tuple[np.ndarray, np.ndarray]:
        """The commanded (steering degrees, speed m/s) of the step that led to each frame."""
        return (self.column(_sim.C_CMD_STEER) * DEG_PER_RAD,
                self.column(_sim.C_CMD_SPEED))

    def closest_waypoint(self) -> np.ndarray:
        """Index of the centerline point nearest the front point, per frame and car."""
        seg = self.column(_sim.C_SEG).astype(np.int64)
        t = self.column(_sim.C_T)
        seg_len = self.track.segment_lengths
        nxt = (seg + 1) % len(seg_len)
        return np.where(t > 0.5 * seg_len[seg], nxt, seg)

    @property
    def dt(self) -> float:
        """Seconds between frames."""
        return 1.0 / car.CONTROL_HZ
