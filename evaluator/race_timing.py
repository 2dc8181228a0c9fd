"""Race timing for live events: a heat's replay cut into one-second segments, with the
timing tower and the ticker a broadcast shows (the JSON shapes: ``docs/LIVE.md``).

:class:`Broadcast` reads a decoded :class:`~evaluator.replay.Replay` once and derives
everything from its columns (laps, lap progress, flag bits): the running order at every
frame, lap times interpolated to the line crossing (as :class:`~evaluator.world.World`
times them), penalties, and the events of the ticker. Serving a segment afterwards only
slices arrays. Pure: no database, no web framework.

A car whose ``FLAG_DONE`` appears in the same frame as its ``FLAG_LAP`` has *finished* (it
completed its last lap); one whose ``FLAG_DONE`` appears without a lap has been *retired*
(its policy failed) and stands where it stopped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from evaluator.car import FRONT_POINT_M
from evaluator.replay import Replay, ReplayCar, ReplayTrack
from evaluator.telemetry import (
    FLAG_BLAME,
    FLAG_COLLISION,
    FLAG_DONE,
    FLAG_LAP,
    FLAG_OFF_TRACK,
    FLAG_PENALTY,
)

SEGMENT_FRAMES = 15  #: frames per segment: one second of race time at 15 Hz
OVERTAKE_HOLD_FRAMES = 8  #: a new order between two cars must hold this long to be a pass
ROUND_POSITION = 3  #: decimals of x, y, yaw and the track geometry (millimetres)
ROUND_PROGRESS = 2  #: decimals of lap progress, percent
ROUND_TIME = 3  #: decimals of times and gaps, seconds

FINISHED, RETIRED, PENALTY, OFF_TRACK, RACING = (
    "finished", "retired", "penalty", "off_track", "racing")  #: tower states


class RaceEvent(NamedTuple):
    """One ticker line: ``kind`` happened to ``cars`` at ``frame`` (``t`` seconds)."""

    t: float
    frame: int
    kind: str  #: start, overtake, off_track, collision, fastest_lap, finish, retired, champion
    cars: tuple[int, ...]
    text: str


class TowerRow(NamedTuple):
    """One car's line of the timing tower (see :meth:`Broadcast.tower` for each field)."""

    car: int
    position: int
    gap_s: float | None
    lap: int
    last_lap_s: float | None
    best_lap_s: float | None
    penalties: int
    state: str


@dataclass(frozen=True, eq=False)
class _Timing:
    """What the tower needs of one car, derived once from its replay columns."""

    distance: np.ndarray  #: laps + progress/100 per frame; held at the line once finished
    reach: np.ndarray  #: running maximum of ``distance`` (when it first got that far)
    laps: np.ndarray  #: completed laps per frame
    flags: np.ndarray  #: flag bits per frame
    lap_frames: np.ndarray  #: frames of the lap completions
    lap_s: np.ndarray  #: each lap's time, seconds (the first from frame 0)
    penalties: np.ndarray  #: penalty episodes begun up to each frame
    finish_frame: int | None  #: the frame it completed its last lap
    finish_s: float | None  #: its race time at the line
    retire_frame: int | None  #: the frame it was taken out of the race


def format_time(seconds: float) -> str:
    """Return ``seconds`` as ``m:ss.mmm``."""
    ms = int(round(seconds * 1000.0))
    minutes, ms = divmod(ms, 60_000)
    return f"{minutes}:{ms // 1000:02d}.{ms % 1000:03d}"


def race_laps(replay: Replay) -> int | None:
    """The laps of the race the replay records, from its ``meta`` (``laps``, or the race
    settings' ``race.laps``); None when it does not say."""
    race = replay.meta.get("race")
    laps = replay.meta.get("laps", race.get("laps") if isinstance(race, dict) else None)
    return laps if isinstance(laps, int) and not isinstance(laps, bool) and laps > 0 else None


def _rising(on: np.ndarray) -> np.ndarray:
    """Frames where ``on`` becomes true (frame 0 counts when it starts true)."""
    return on & ~np.concatenate(([False], on[:-1]))


def _before_line(car: ReplayCar, track: ReplayTrack) -> np.ndarray:
    """Laps from the start line to the car's front point along the line's direction, at most
    0: how far a car on a back grid slot is behind (its stored progress is 0 there)."""
    centre = track.centerline
    tangent = centre[1 % len(centre)] - centre[-1]
    tangent = tangent / max(float(np.hypot(*tangent)), 1e-9)
    front_x = car.x + FRONT_POINT_M * np.cos(car.yaw) - centre[0, 0]
    front_y = car.y + FRONT_POINT_M * np.sin(car.yaw) - centre[0, 1]
    along: np.ndarray = np.minimum(front_x * tangent[0] + front_y * tangent[1], 0.0)
    return along / track.length


def _timing(car: ReplayCar, dt: float, track: ReplayTrack) -> _Timing:
    """Derive one car's tower columns.

    Its distance is laps + progress/100, and before the start line the (negative) distance
    to it (:func:`_before_line`); from its finish it stays at the line, from its retirement
    where it stopped.

    A lap is timed where the distance crosses the whole number, interpolated within the
    step; the finishing step's distance after the line is not stored (progress stays at
    100), so its crossing uses the distance the car's speed covers in a step.
    """
    flags = np.asarray(car.flags, dtype=np.int64)
    laps = np.asarray(car.laps, dtype=np.int64)
    raw = laps + np.asarray(car.progress, dtype=np.float64) / 100.0
    behind = (laps == 0) & (raw <= 0.0)
    raw[behind] = _before_line(car, track)[behind]
    done = _rising((flags & FLAG_DONE) != 0)
    lap = (flags & FLAG_LAP) != 0
    finish = np.flatnonzero(done & lap)
    retire = np.flatnonzero(done & ~lap)
    distance = raw.copy()
    finish_frame = int(finish[0]) if finish.size else None
    retire_frame = int(retire[0]) if retire.size else None
    if finish_frame is not None:
        distance[finish_frame:] = laps[finish_frame]
    if retire_frame is not None:
        distance[retire_frame:] = distance[retire_frame - 1] if retire_frame else 0.0
    lap_frames = np.flatnonzero(lap & (np.arange(lap.size) > 0))
    crossing = []
    for f in lap_frames:
        before = raw[f - 1]
        after = (raw[f] if f != finish_frame
                 else before + abs(car.speed[f]) * dt / track.length)
        frac = 1.0 if after <= before else min(max((laps[f] - before) / (after - before),
                                                   0.0), 1.0)
        crossing.append((f - 1 + frac) * dt)
    lap_s = np.diff(np.array(crossing, dtype=np.float64), prepend=0.0)
    return _Timing(distance=distance, reach=np.maximum.accumulate(distance), laps=laps,
                   flags=flags, lap_frames=lap_frames, lap_s=lap_s,
                   penalties=np.cumsum(_rising((flags & FLAG_PENALTY) != 0)),
                   finish_frame=finish_frame,
                   finish_s=crossing[-1] if finish_frame is not None else None,
                   retire_frame=retire_frame)


def _running_order(timings: Sequence[_Timing]) -> np.ndarray:
    """The tower's order at every frame, (frames, cars) of car indices, leader first.

    The rule, in the order the code applies it:

    1. cars that have finished come first, by their time at the line (earlier first);
    2. then the cars still in the race, by distance (laps + progress/100; negative before
       the start line) descending;
    3. then the retired cars, by the distance at which they stopped, descending;
    4. a tie goes to the lower car index.

    At the last frame this is :func:`evaluator.heat_order.heat_order`'s finishing order.
    """
    frames = timings[0].distance.size
    group = np.ones((frames, len(timings)))
    key = np.empty((frames, len(timings)))
    for i, tm in enumerate(timings):
        key[:, i] = -tm.distance
        if tm.finish_frame is not None and tm.finish_s is not None:
            group[tm.finish_frame:, i] = 0.0
            key[tm.finish_frame:, i] = tm.finish_s
        if tm.retire_frame is not None:
            group[tm.retire_frame:, i] = 2.0
    index = np.broadcast_to(np.arange(len(timings), dtype=np.float64), group.shape)
    order: np.ndarray = np.lexsort((index, key, group), axis=-1)
    return order


class Broadcast:
    """The live broadcast of one heat: its head, segments, tower and ticker, precomputed.

    ``names[i]`` is car i's display name (the racer's); ``final`` whether this heat decides
    a champion (its ticker then ends with a ``champion`` event).
    """

    def __init__(self, replay: Replay, names: Sequence[str], final: bool) -> None:
        if len(names) != len(replay.cars):
            raise ValueError(f"{len(names)} names for {len(replay.cars)} cars")
        if replay.frames < 1:
            raise ValueError("the replay holds no frames")
        self.replay = replay
        self.names = list(names)
        self.final = final
        self.dt = float(replay.dt)
        self.frames = replay.frames
        self.segments = math.ceil(self.frames / SEGMENT_FRAMES)
        self.timings = [_timing(c, self.dt, replay.track) for c in replay.cars]
        finished = [int(tm.laps[tm.finish_frame]) for tm in self.timings
                    if tm.finish_frame is not None]
        self.laps = race_laps(replay) or (max(finished) if finished else None)
        self.order = _running_order(self.timings)
        self.positions = np.argsort(self.order, axis=1) + 1  # (frames, cars), 1-based
        self.events = sorted(self._events(), key=lambda e: (e.frame, _KIND_ORDER[e.kind]))
        self._columns = self._car_columns()

    # ------------------------------------------------------------------ serving
    def head(self) -> dict[str, Any]:
        """The slot's head: track, obstacles, cars, dt, frames, segments and the race's laps
        (from the replay's meta, else the laps the finishers completed; null if neither)."""
        r, trk = self.replay, self.replay.track
        obstacles = ([] if r.obstacles is None
                     else np.round(r.obstacles, ROUND_POSITION).tolist())
        return {
            "track": {"name": trk.name, "title": trk.title,
                      "length_m": round(float(trk.length), ROUND_POSITION),
                      **{k: np.round(getattr(trk, k), ROUND_POSITION).tolist()
                         for k in ("centerline", "left_border", "right_border")}},
            "obstacles": obstacles,
            "cars": [{"name": n, "model": c.name, "color": c.color, "bot": c.bot}
                     for n, c in zip(self.names, r.cars, strict=True)],
            "dt": self.dt, "frames": self.frames, "laps": self.laps,
            "segments": self.segments}

    def segment(self, k: int) -> dict[str, Any]:
        """Segment ``k``: frames ``15k … 15k + 14`` (the last one fewer), the tower at its
        last frame and the events of its frames; the caller adds the slot number ``n``.

        Raises IndexError for a ``k`` outside ``0 … segments − 1``.
        """
        if not 0 <= k < self.segments:
            raise IndexError(f"segment {k} of a broadcast of {self.segments} segments")
        lo, hi = k * SEGMENT_FRAMES, min((k + 1) * SEGMENT_FRAMES, self.frames)
        return {"k": k, "first_frame": lo, "dt": self.dt,
                "cars": [{name: col[lo:hi] for name, col in car.items()}
                         for car in self._columns],
                "tower": [row._asdict() for row in self.tower(hi - 1)],
                "events": [{**e._asdict(), "cars": list(e.cars)} for e in self.events
                           if lo <= e.frame < hi]}

    def _car_columns(self) -> list[dict[str, list[Any]]]:
        """Every car's columns as rounded JSON-ready lists (sliced per segment)."""
        out = []
        for c in self.replay.cars:
            out.append({
                **{k: np.round(getattr(c, k), ROUND_POSITION).tolist()
                   for k in ("x", "y", "yaw")},
                "progress": np.round(c.progress, ROUND_PROGRESS).tolist(),
                "laps": np.asarray(c.laps, dtype=np.int64).tolist(),
                "flags": np.asarray(c.flags, dtype=np.int64).tolist()})
        return out

    # ------------------------------------------------------------------ tower
    def tower(self, frame: int) -> list[TowerRow]:
        """The timing tower at ``frame``, leader first.

        - ``position``: 1 … n in :func:`_running_order`;
        - ``gap_s``: null for the leader and for a retired car; for a finished car its time
          at the line minus the winner's; otherwise how long ago the leader was where this
          car is now (interpolated on the leader's distance series);
        - ``lap``: the lap being driven (laps completed + 1), at most the race's laps;
        - ``last_lap_s``, ``best_lap_s``: of the laps completed so far (null before one);
        - ``penalties``: penalty episodes begun so far (rising edges of ``FLAG_PENALTY``);
        - ``state``: finished, retired, penalty (frozen), off_track or racing, the first
          that applies.
        """
        if not 0 <= frame < self.frames:
            raise IndexError(f"frame {frame} of a replay of {self.frames} frames")
        order = [int(i) for i in self.order[frame]]
        rows = []
        for pos, i in enumerate(order, start=1):
            tm = self.timings[i]
            done = np.searchsorted(tm.lap_frames, frame, side="right")
            laps_done = int(tm.laps[frame])
            lap = laps_done + 1 if self.laps is None else min(laps_done + 1, self.laps)
            rows.append(TowerRow(
                car=i, position=pos, gap_s=self._gap(order[0], i, frame), lap=lap,
                last_lap_s=round(float(tm.lap_s[done - 1]), ROUND_TIME) if done else None,
                best_lap_s=round(float(tm.lap_s[:done].min()), ROUND_TIME) if done else None,
                penalties=int(tm.penalties[frame]), state=self._state(i, frame)))
        return rows

    def _gap(self, leader: int, i: int, frame: int) -> float | None:
        """Car i's gap to the leader at ``frame`` (the rule: :meth:`tower`)."""
        tm, lead = self.timings[i], self.timings[leader]
        if i == leader or (tm.retire_frame is not None and tm.retire_frame <= frame):
            return None
        if tm.finish_frame is not None and tm.finish_frame <= frame:
            assert tm.finish_s is not None and lead.finish_s is not None  # finishers lead
            return round(float(tm.finish_s - lead.finish_s), ROUND_TIME)
        reach, x = lead.reach[: frame + 1], tm.distance[frame]
        j = int(np.searchsorted(reach, x, side="left"))
        if j > frame:
            return 0.0
        at = 0.0
        if j > 0:
            step = reach[j] - reach[j - 1]
            at = (j - 1 + (x - reach[j - 1]) / step) * self.dt if step > 0 else j * self.dt
        return round(max(frame * self.dt - float(at), 0.0), ROUND_TIME)

    def _state(self, i: int, frame: int) -> str:
        """Car i's state at ``frame`` (the rule: :meth:`tower`)."""
        tm = self.timings[i]
        flags = int(tm.flags[frame])
        if tm.finish_frame is not None and tm.finish_frame <= frame:
            return FINISHED
        if tm.retire_frame is not None and tm.retire_frame <= frame:
            return RETIRED
        if flags & FLAG_PENALTY:
            return PENALTY
        return OFF_TRACK if flags & FLAG_OFF_TRACK else RACING

    # ------------------------------------------------------------------ ticker
    def _event(self, frame: int, kind: str, cars: Sequence[int], text: str) -> RaceEvent:
        return RaceEvent(round(frame * self.dt, ROUND_TIME), frame, kind, tuple(cars), text)

    def _in_race(self, i: int, frame: int) -> bool:
        """Whether car i has neither finished nor retired by ``frame``."""
        tm = self.timings[i]
        return all(f is None or f > frame for f in (tm.finish_frame, tm.retire_frame))

    def _events(self) -> list[RaceEvent]:
        """Every ticker event of the heat, unsorted."""
        grid = ", ".join(self.names[int(i)] for i in self.order[0])
        events = [self._event(0, "start", [int(i) for i in self.order[0]],
                              f"Lights out: {grid} on the grid")]
        events += self._overtakes() + self._incidents() + self._fastest_laps()
        events += self._finishes()
        return events

    def _overtakes(self) -> list[RaceEvent]:
        """A pass between two cars still in the race, reported at the frame it began.

        The order of each pair is debounced: a new order counts once it has held for
        :data:`OVERTAKE_HOLD_FRAMES` frames (or to the end of the heat), so two cars side by
        side do not flicker the ticker; the grid order itself is never a pass. A car that is
        frozen serving a penalty can be passed; finishing or retiring is not a pass.
        """
        out = []
        n = len(self.timings)
        for a in range(n):
            for b in range(a + 1, n):
                ahead = self.positions[:, a] < self.positions[:, b]
                changes = [int(c) for c in np.flatnonzero(ahead[1:] != ahead[:-1]) + 1]
                stable = bool(ahead[0])
                for c, end in itertools.pairwise([*changes, self.frames]):
                    if ahead[c] == stable or (end - c < OVERTAKE_HOLD_FRAMES
                                              and end != self.frames):
                        continue
                    stable = bool(ahead[c])
                    if self._in_race(a, c) and self._in_race(b, c):
                        p, q = (a, b) if stable else (b, a)
                        out.append(self._event(c, "overtake", [p, q],
                                               f"{self.names[p]} overtakes {self.names[q]} "
                                               f"for P{self.positions[c, p]}"))
        return out

    def _incidents(self) -> list[RaceEvent]:
        """Leaving the track (each car) and contacts (the cars touching in one frame
        together, with who was penalised)."""
        out = []
        contacts: dict[int, list[int]] = {}
        for i, tm in enumerate(self.timings):
            for f in np.flatnonzero(_rising((tm.flags & FLAG_OFF_TRACK) != 0)):
                out.append(self._event(int(f), "off_track", [i],
                                       f"{self.names[i]} goes off track"))
            for c in np.flatnonzero(_rising((tm.flags & FLAG_COLLISION) != 0)):
                contacts.setdefault(int(c), []).append(i)
        for frame, cars in contacts.items():
            who = " and ".join(self.names[i] for i in cars)
            text = f"Contact: {who}" if len(cars) > 1 else f"{who} makes contact"
            blamed = [self.names[i] for i in cars
                      if self.timings[i].flags[frame] & FLAG_BLAME]
            if blamed:
                text += f"; penalty for {' and '.join(blamed)}"
            out.append(self._event(frame, "collision", cars, text))
        return out

    def _fastest_laps(self) -> list[RaceEvent]:
        """Each lap that is the fastest of the heat so far (a tie does not beat it)."""
        laps = sorted((int(f), i, float(s)) for i, tm in enumerate(self.timings)
                      for f, s in zip(tm.lap_frames, tm.lap_s, strict=True))
        out, best = [], math.inf
        for f, i, s in laps:
            if s < best:
                best = s
                out.append(self._event(f, "fastest_lap", [i], f"Fastest lap: {self.names[i]} "
                                                             f"{format_time(s)}"))
        return out

    def _finishes(self) -> list[RaceEvent]:
        """Each finish with its position and time, each retirement, and on a final the
        champion: the winner at its finish, or the leader at the last frame when nobody
        finished."""
        out = []
        last = self.frames - 1
        for i, tm in enumerate(self.timings):
            if tm.finish_frame is not None and tm.finish_s is not None:
                pos = int(self.positions[last, i])
                out.append(self._event(tm.finish_frame, "finish", [i],
                                       f"{self.names[i]} finishes P{pos} in "
                                       f"{format_time(tm.finish_s)}"))
            if tm.retire_frame is not None:
                out.append(self._event(tm.retire_frame, "retired", [i],
                                       f"{self.names[i]} retires"))
        if self.final:
            winner = int(self.order[last, 0])
            frame = self.timings[winner].finish_frame
            out.append(self._event(last if frame is None else frame, "champion", [winner],
                                   f"{self.names[winner]} is the champion!"))
        return out


#: Events of one frame in ticker order.
_KIND_ORDER = {k: n for n, k in enumerate(
    ("start", "overtake", "off_track", "collision", "fastest_lap", "retired", "finish",
     "champion"))}
