"""Replays: a compact, versioned recording of one race run that a browser can load quickly.

A replay holds the track's geometry, the static obstacles of the run and, for every car at
every control step, its pose, speed, steering, lap progress, completed laps, the command it
applied (steering, speed and the discrete action index) and flag bits. The byte format (gzip of
a small little-endian layout: preamble, JSON header, columnar integer blocks) is specified in
``docs/REPLAY.md``; this module is its reference encoder and decoder. It writes format 4 and
reads formats 1 to 4: a format-1 replay (written before the commands were kept) decodes with
``None`` in the command columns, and a format-1 or 2 replay (written before the obstacles
were kept) with ``None`` for the obstacles.

A policy's commands are what a rival would need to copy it, so format 4 keeps them per car:
the header says of each car whether its command columns are there, and
:func:`without_commands` gives the copy of a replay a spectator may have (the stored replay
keeps every car's commands; who sees which is the league's business).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

import numpy as np

from evaluator import _sim, version
from evaluator.errors import ReplayError
from evaluator.telemetry import (
    FLAG_COLLISION,
    FLAG_LAP,
    FLAG_OFF_TRACK,
    FLAG_RESET,
    Telemetry,
)

FORMAT_VERSION = 4  #: the version written; bump whenever the byte layout or a quantum changes
MAGIC = b"PDKREPLY"  #: first 8 bytes of the decompressed data
PREAMBLE = struct.Struct("<8sII")  #: magic, format version, header length in bytes
HEADER_ALIGN_BYTES = 4  #: the JSON header is space-padded so the blocks start 4-byte aligned
GZIP_MAGIC = b"\x1f\x8b"  #: first two bytes of any gzip stream
GZIP_LEVEL = 9  #: compression level (output is deterministic: mtime 0)
GZIP_WBITS = 16 + zlib.MAX_WBITS  #: zlib window bits selecting the gzip container
MAX_DECODED_BYTES = 64 * 1024 * 1024  #: refuse to inflate more than this (a corrupt length)

POSITION_QUANTUM_M = 1e-3  #: x, y and track geometry are stored in millimetres
ANGLE_QUANTUM_RAD = 1e-4  #: yaw and steering are stored in units of 0.1 mrad
SPEED_QUANTUM_MPS = 1e-3  #: speed is stored in mm/s
PROGRESS_QUANTUM_PCT = 1e-2  #: lap progress is stored in hundredths of a percent
COUNT_QUANTUM = 1.0  #: laps and flags are stored as they are


class _Column(NamedTuple):
    """One stored column: its name, little-endian integer type, quantum and coding."""

    name: str
    dtype: str
    quantum: float
    delta: bool


_STATE_COLUMNS: tuple[_Column, ...] = (
    _Column("x", "<i4", POSITION_QUANTUM_M, True),
    _Column("y", "<i4", POSITION_QUANTUM_M, True),
    _Column("yaw", "<i2", ANGLE_QUANTUM_RAD, True),
    _Column("steering", "<i2", ANGLE_QUANTUM_RAD, True),
    _Column("speed", "<i2", SPEED_QUANTUM_MPS, True),
    _Column("progress", "<i2", PROGRESS_QUANTUM_PCT, True),
    _Column("laps", "<i2", COUNT_QUANTUM, True),
)
#: The command a car applied during the step that led to a frame (format 2 on).
COMMAND_COLUMNS: tuple[_Column, ...] = (
    _Column("command_steering", "<i2", ANGLE_QUANTUM_RAD, True),
    _Column("command_speed", "<i2", SPEED_QUANTUM_MPS, True),
    _Column("action", "<i2", COUNT_QUANTUM, True),
)
_FLAGS_COLUMN = _Column("flags", "<u1", COUNT_QUANTUM, False)
#: The per-car columns of the format written, in block order (4-byte types first, so every
#: block stays aligned).
CAR_COLUMNS: tuple[_Column, ...] = (*_STATE_COLUMNS, *COMMAND_COLUMNS, _FLAGS_COLUMN)
#: The per-car columns of every format this module reads.
COLUMNS_BY_FORMAT: dict[int, tuple[_Column, ...]] = {
    1: (*_STATE_COLUMNS, _FLAGS_COLUMN),
    2: CAR_COLUMNS,
    3: CAR_COLUMNS,
    4: CAR_COLUMNS,  # the command columns only of the cars whose header says ``commands``
}
#: The track geometry blocks, in order: centerline, left border, right border (x then y).
TRACK_BLOCKS: tuple[str, ...] = ("centerline", "left_border", "right_border")
_TRACK_COLUMN = _Column("geometry", "<i4", POSITION_QUANTUM_M, True)
#: The obstacle blocks (format 3 on), in order: the columns of :attr:`Replay.obstacles`.
#: Absolute millimetres: a handful of boxes far apart gain nothing from delta coding.
OBSTACLE_COLUMNS: tuple[_Column, ...] = (
    _Column("x", "<i4", POSITION_QUANTUM_M, False),
    _Column("y", "<i4", POSITION_QUANTUM_M, False),
    _Column("radius", "<i4", POSITION_QUANTUM_M, False),
)
COMMANDS_SINCE = 2  #: the first format version that keeps the commands
OBSTACLES_SINCE = 3  #: the first format version that keeps the obstacles
#: The first format version whose header says per car whether its command columns are there
#: (and whose ``obstacles`` may be null: a replay rewritten from format 1 or 2).
COMMANDS_PER_CAR_SINCE = 4

#: Incident kinds and the flag bit that marks each (see :func:`incidents`).
INCIDENT_FLAGS: tuple[tuple[str, int], ...] = (
    ("off_track", FLAG_OFF_TRACK),
    ("collision", FLAG_COLLISION),
    ("reset", FLAG_RESET),
    ("lap", FLAG_LAP),
)

_T = TypeVar("_T")


@dataclass(eq=False)
class ReplayTrack:
    """What a viewer needs of the track: identity and the geometry to draw, in metres."""

    name: str
    digest: str  #: :attr:`evaluator.track.Track.digest`
    length: float  #: centerline length, metres
    centerline: np.ndarray  #: (N, 2) float64
    left_border: np.ndarray  #: (N, 2) float64
    right_border: np.ndarray  #: (N, 2) float64
    title: str = ""


@dataclass(eq=False)
class ReplayCar:
    """One car of a replay: who drove it and its per-frame columns (length ``frames``)."""

    name: str
    policy_sha256: str
    color: int  #: index into the viewer's palette
    x: np.ndarray  #: rear axle x, metres
    y: np.ndarray  #: rear axle y, metres
    yaw: np.ndarray  #: heading, radians in (-pi, pi]
    steering: np.ndarray  #: actual front-wheel angle, radians, positive left
    speed: np.ndarray  #: m/s
    progress: np.ndarray  #: percent of the current lap, 0-100 (100 once finished)
    laps: np.ndarray  #: completed laps, int32
    flags: np.ndarray  #: ``FLAG_*`` bits of :mod:`evaluator.telemetry`, uint8
    #: The command applied in the step that led to each frame (kept while frozen or parked):
    #: steering radians, speed m/s, and the discrete action index (int16, -1 continuous).
    #: ``None`` in a format-1 replay, which did not keep them, and for a car whose commands
    #: were withheld (:func:`without_commands`): all three or none.
    command_steering: np.ndarray | None = None
    command_speed: np.ndarray | None = None
    action: np.ndarray | None = None
    #: A built-in bot car of a head-to-bot race (its header entry says ``"bot": true``; a
    #: replay of any other run, or written before bots existed, has none).
    bot: bool = False

    @property
    def has_commands(self) -> bool:
        """Whether the replay kept this car's commands (format 2 on, unless withheld)."""
        return all(getattr(self, c.name) is not None for c in COMMAND_COLUMNS)


def no_obstacles() -> np.ndarray:
    """The obstacles of a run without any: an empty (0, 3) array."""
    return np.zeros((0, len(OBSTACLE_COLUMNS)))


@dataclass(eq=False)
class Replay:
    """One race run: track, obstacles, cars and their states at every frame (frame 0 is the
    grid)."""

    track: ReplayTrack
    seed: int
    dt: float  #: seconds between frames
    cars: list[ReplayCar]
    meta: dict[str, Any] = field(default_factory=dict)  #: free-form, JSON-serialisable
    #: The run's static boxes as the simulator models them, (K, 3) float64: centre x, y and
    #: the radius of the disc that cars touch and sensors see, metres (a viewer draws a box
    #: of side 2 x radius). ``None`` in a format-1 or 2 replay, which did not keep them (and
    #: in a format-4 replay rewritten from one).
    obstacles: np.ndarray | None = field(default_factory=no_obstacles)
    paddock_version: str = version.PADDOCK_VERSION
    sim_version: str = version.SIM_VERSION
    format_version: int = FORMAT_VERSION

    @property
    def frames(self) -> int:
        """Number of frames (control steps + 1)."""
        return int(self.cars[0].x.shape[0]) if self.cars else 0

    @property
    def duration(self) -> float:
        """Simulated seconds from the first frame to the last."""
        return max(self.frames - 1, 0) * self.dt

    def __eq__(self, other: object) -> bool:
        """Exact equality of every field and array (compare with :func:`quantise` output)."""
        if not isinstance(other, Replay):
            return NotImplemented
        scalars = ("seed", "dt", "meta", "paddock_version", "sim_version", "format_version")
        if any(getattr(self, k) != getattr(other, k) for k in scalars):
            return False
        a, b = self.track, other.track
        if (a.name, a.title, a.digest, a.length) != (b.name, b.title, b.digest, b.length):
            return False
        if not all(np.array_equal(getattr(a, k), getattr(b, k)) for k in TRACK_BLOCKS):
            return False
        if not _same_column(self.obstacles, other.obstacles):
            return False
        if len(self.cars) != len(other.cars):
            return False
        for c, d in zip(self.cars, other.cars, strict=True):
            if (c.name, c.policy_sha256, c.color, c.bot) != (d.name, d.policy_sha256, d.color,
                                                             d.bot):
                return False
            if not all(_same_column(getattr(c, k.name), getattr(d, k.name))
                       for k in CAR_COLUMNS):
                return False
        return True


def _same_column(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(a, b))


class Incident(NamedTuple):
    """Something a viewer can jump to: ``kind`` happened to car ``car`` at frame ``frame``."""

    frame: int
    car: int
    kind: str  #: one of the names in :data:`INCIDENT_FLAGS`


# ---------------------------------------------------------------------------------- building
def from_telemetry(tel: Telemetry, meta: Mapping[str, Any] | None = None,
                   colors: Sequence[int] | None = None) -> Replay:
    """Build the replay of a recorded run; car i gets palette colour ``colors[i]`` (default i)."""
    if tel.frames < 1:
        raise ReplayError("the telemetry holds no frames: capture the start before encoding")
    if colors is not None and len(colors) != len(tel.cars):
        raise ReplayError(f"{len(colors)} colours for {len(tel.cars)} cars")
    track = tel.track
    rtrack = ReplayTrack(
        name=track.name, title=track.title, digest=track.digest, length=track.length,
        centerline=np.array(track.centerline, dtype=np.float64),
        left_border=np.array(track.left_border, dtype=np.float64),
        right_border=np.array(track.right_border, dtype=np.float64),
    )
    progress = tel.lap_progress_pct()
    flags = tel.flags()
    actions = tel.action_index[: tel.frames]
    cars = []
    for i, label in enumerate(tel.cars):
        cars.append(ReplayCar(
            name=label.name, policy_sha256=label.policy_sha256,
            color=i if colors is None else int(colors[i]),
            x=tel.column(_sim.C_X)[:, i].copy(),
            y=tel.column(_sim.C_Y)[:, i].copy(),
            yaw=tel.column(_sim.C_TH)[:, i].copy(),
            steering=tel.column(_sim.C_DELTA)[:, i].copy(),
            speed=tel.column(_sim.C_V)[:, i].copy(),
            progress=progress[:, i].copy(),
            laps=tel.column(_sim.C_LAPS)[:, i].astype(np.int32),
            flags=flags[:, i].copy(),
            command_steering=tel.column(_sim.C_CMD_STEER)[:, i].copy(),
            command_speed=tel.column(_sim.C_CMD_SPEED)[:, i].copy(),
            action=(actions[:, i] if label.discrete
                    else np.full(tel.frames, -1)).astype(np.int16),
            bot=label.bot,
        ))
    obstacles = np.array([(o.x, o.y, o.radius) for o in tel.obstacles],
                         dtype=np.float64).reshape(-1, len(OBSTACLE_COLUMNS))
    return Replay(track=rtrack, seed=int(tel.seed), dt=float(tel.dt), cars=cars,
                  meta=dict(meta or {}), obstacles=obstacles)


# ---------------------------------------------------------------------------------- quantising
def _to_ints(values: np.ndarray, col: _Column, label: str) -> np.ndarray:
    """Quantise one column to int64 on its grid, checking it fits the stored type."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ReplayError(f"{label}: not every value is finite")
    ints = np.rint(arr / col.quantum).astype(np.int64)
    info = np.iinfo(np.dtype(col.dtype))
    if ints.size and (ints.min() < info.min or ints.max() > info.max):
        raise ReplayError(f"{label}: values {arr.min()}..{arr.max()} do not fit the stored "
                          f"{col.dtype} at a quantum of {col.quantum}")
    return ints


def _from_ints(ints: np.ndarray, col: _Column) -> np.ndarray:
    """The values a column's integers stand for (float64, or the integer type)."""
    if col.name == "laps":
        return ints.astype(np.int32)
    if col.name == "action":
        return ints.astype(np.int16)
    if col.name == "flags":
        return ints.astype(np.uint8)
    out: np.ndarray = ints.astype(np.float64) * col.quantum
    return out


def _wrap(values: np.ndarray, dtype: str) -> np.ndarray:
    """Reduce int64 values modulo 2**bits into the signed or unsigned range of ``dtype``."""
    info = np.iinfo(np.dtype(dtype))
    span = int(info.max) - int(info.min) + 1
    wrapped: np.ndarray = (values - int(info.min)) % span + int(info.min)
    return wrapped


def _pack(ints: np.ndarray, col: _Column) -> bytes:
    """Delta-code (first value absolute, differences modulo 2**bits) and serialise."""
    if col.delta:
        ints = _wrap(np.diff(ints, prepend=np.int64(0)), col.dtype)
    return ints.astype(col.dtype).tobytes()


def _unpack(buf: bytes, offset: int, count: int, col: _Column) -> np.ndarray:
    """Read ``count`` values at ``offset`` and undo the delta coding (as int64)."""
    raw = np.frombuffer(buf, dtype=np.dtype(col.dtype), count=count, offset=offset)
    ints = raw.astype(np.int64)
    if col.delta:
        ints = _wrap(np.cumsum(ints), col.dtype)
    return ints


def quantise(replay: Replay) -> Replay:
    """The replay snapped to the stored grid: exactly what ``decode(encode(replay))`` returns."""
    _check_shapes(replay)
    geometry: dict[str, Any] = {
        k: _from_ints(_to_ints(getattr(replay.track, k), _TRACK_COLUMN, k), _TRACK_COLUMN)
        for k in TRACK_BLOCKS}
    track = replace(replay.track, **geometry)
    cars = []
    for c in replay.cars:
        columns: dict[str, Any] = {
            col.name: _from_ints(_to_ints(getattr(c, col.name), col, col.name), col)
            for col in _columns(replay.format_version) if getattr(c, col.name) is not None}
        cars.append(replace(c, **columns))
    meta = json.loads(_meta_json(replay.meta))
    obstacles = replay.obstacles
    if obstacles is not None:
        obstacles = np.stack([_from_ints(_to_ints(obstacles[:, k], col, f"obstacle {col.name}"),
                                         col) for k, col in enumerate(OBSTACLE_COLUMNS)], axis=1)
    return replace(replay, track=track, cars=cars, meta=meta, obstacles=obstacles)


def _columns(fmt: int) -> tuple[_Column, ...]:
    """The per-car columns of format ``fmt`` (:class:`ReplayError` for one never written)."""
    try:
        return COLUMNS_BY_FORMAT[fmt]
    except KeyError:
        readable = ", ".join(str(v) for v in COLUMNS_BY_FORMAT)
        raise ReplayError(f"replay format version {fmt} is not supported "
                          f"(this reader reads versions {readable})") from None


# ---------------------------------------------------------------------------------- withholding
def without_commands(replay: Replay, keep: Collection[int] = ()) -> Replay:
    """The replay with the commands of every car not in ``keep`` (car indices) withheld.

    The cars left out keep their states (pose, speed, steering, progress, laps, flags) and
    lose the three command columns, which a spectator could otherwise turn into the policy's
    trace log. The result is a current-format replay whatever format ``replay`` was read
    from (a format-1 or 2 replay keeps ``None`` obstacles), so :func:`encode` writes it; the
    columns are shared with ``replay``, not copied.
    """
    kept = set(keep)
    cars = [c if i in kept else replace(c, command_steering=None, command_speed=None,
                                        action=None)
            for i, c in enumerate(replay.cars)]
    return replace(replay, cars=cars, format_version=FORMAT_VERSION)


def commands_of(replay: Replay) -> frozenset[int]:
    """The indices of the cars whose commands ``replay`` holds."""
    return frozenset(i for i, c in enumerate(replay.cars) if c.has_commands)


# ---------------------------------------------------------------------------------- encoding
def _meta_json(meta: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(meta), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"meta is not JSON-serialisable: {exc}") from None


def _check_shapes(replay: Replay) -> None:
    """Raise :class:`ReplayError` unless the arrays have consistent shapes."""
    if not replay.cars:
        raise ReplayError("a replay needs at least one car")
    frames = replay.frames
    if frames < 1:
        raise ReplayError("a replay needs at least one frame")
    n = int(np.shape(replay.track.centerline)[0])
    if n < 1:
        raise ReplayError("the track needs at least one point")
    for k in TRACK_BLOCKS:
        if np.shape(getattr(replay.track, k)) != (n, 2):
            raise ReplayError(f"track {k} must have shape ({n}, 2)")
    fmt = replay.format_version
    if OBSTACLES_SINCE <= fmt < COMMANDS_PER_CAR_SINCE or replay.obstacles is not None:
        _kept_obstacles(replay)
    for i, c in enumerate(replay.cars):
        # From format 4 a car keeps its three command columns or none of them.
        optional = fmt >= COMMANDS_PER_CAR_SINCE and all(
            getattr(c, col.name) is None for col in COMMAND_COLUMNS)
        for col in _columns(fmt):
            values = getattr(c, col.name)
            if values is None and optional and col in COMMAND_COLUMNS:
                continue
            if values is None:
                keeps = ("a car's three command columns or none" if col in COMMAND_COLUMNS
                         and fmt >= COMMANDS_PER_CAR_SINCE else "it")
                raise ReplayError(f"car {i} has no {col.name} (format {fmt} keeps {keeps})")
            if np.shape(values) != (frames,):
                raise ReplayError(f"car {i} {col.name} must have shape ({frames},)")


def _kept_obstacles(replay: Replay) -> np.ndarray:
    """The replay's obstacles, checked to be the (K, 3) array format 3 on keeps."""
    obstacles = replay.obstacles
    if obstacles is None:
        raise ReplayError(f"the replay has no obstacles (format {replay.format_version} keeps "
                          "them: an empty array for a run without any)")
    if np.ndim(obstacles) != 2 or np.shape(obstacles)[1] != len(OBSTACLE_COLUMNS):
        raise ReplayError(f"obstacles must have shape (K, {len(OBSTACLE_COLUMNS)}), "
                          f"got {np.shape(obstacles)}")
    return obstacles


def _header(replay: Replay, obstacles: np.ndarray | None) -> dict[str, Any]:
    t = replay.track
    return {
        "format": replay.format_version,
        "paddock_version": replay.paddock_version,
        "sim_version": replay.sim_version,
        "seed": replay.seed,
        "dt": replay.dt,
        "frames": replay.frames,
        "track": {"name": t.name, "title": t.title, "digest": t.digest, "length_m": t.length,
                  "points": int(t.centerline.shape[0])},
        "obstacles": None if obstacles is None else int(obstacles.shape[0]),
        "cars": [{"name": c.name, "policy_sha256": c.policy_sha256, "color": c.color,
                  "commands": c.has_commands,
                  # only on a bot: every other car's entry reads as it always did
                  **({"bot": True} if c.bot else {})} for c in replay.cars],
        "meta": json.loads(_meta_json(replay.meta)),
    }


def encode(replay: Replay) -> bytes:
    """Serialise a replay to the gzip-compressed format of ``docs/REPLAY.md``."""
    _check_shapes(replay)
    if replay.format_version != FORMAT_VERSION:
        raise ReplayError(f"this writer writes format {FORMAT_VERSION}, "
                          f"not {replay.format_version}")
    # Null for a replay rewritten from format 1 or 2: the run's boxes were never kept.
    obstacles = None if replay.obstacles is None else _kept_obstacles(replay)
    try:
        head = json.dumps(_header(replay, obstacles), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"replay header is not JSON-serialisable: {exc}") from None
    head += b" " * (-len(head) % HEADER_ALIGN_BYTES)
    parts = [PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(head)), head]
    for k in TRACK_BLOCKS:
        pts = getattr(replay.track, k)
        for axis in (0, 1):
            ints = _to_ints(pts[:, axis], _TRACK_COLUMN, f"track {k}")
            parts.append(_pack(ints, _TRACK_COLUMN))
    for j, col in enumerate(OBSTACLE_COLUMNS):
        if obstacles is not None:
            parts.append(_pack(_to_ints(obstacles[:, j], col, f"obstacle {col.name}"), col))
    for col in CAR_COLUMNS:
        for i, c in enumerate(replay.cars):
            values = getattr(c, col.name)
            if values is not None:  # a car without commands has no command blocks
                parts.append(_pack(_to_ints(values, col, f"car {i} {col.name}"), col))
    raw = b"".join(parts)
    return _gzip(raw)


def _gzip(raw: bytes) -> bytes:
    """Gzip ``raw`` deterministically (no file name, mtime 0)."""
    comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    return comp.compress(raw) + comp.flush()


# ---------------------------------------------------------------------------------- decoding
def _gunzip(data: bytes) -> bytes:
    """Inflate one gzip member, refusing truncated, corrupt, oversized or padded input."""
    if bytes(data[:2]) != GZIP_MAGIC:
        raise ReplayError("not a replay: the data is not gzip-compressed")
    inflater = zlib.decompressobj(GZIP_WBITS)
    try:
        raw = inflater.decompress(data, MAX_DECODED_BYTES + 1)
    except zlib.error as exc:
        raise ReplayError(f"corrupt replay: {exc}") from None
    if len(raw) > MAX_DECODED_BYTES:
        raise ReplayError(f"replay inflates to more than {MAX_DECODED_BYTES} bytes")
    if not inflater.eof:
        raise ReplayError("truncated replay: the gzip stream ends before its end marker")
    if inflater.unused_data:
        raise ReplayError(f"corrupt replay: {len(inflater.unused_data)} bytes after the "
                          "gzip stream")
    return raw


def _get(obj: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    """``obj[key]`` checked to be a ``kind`` (ints are accepted for floats, bools never)."""
    if key not in obj:
        raise ReplayError(f"replay header: {where} has no {key!r}")
    value = obj[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ReplayError(f"replay header: {where}.{key} must be {kind.__name__}, "
                          f"got {type(value).__name__}")
    return value


def _parse_header(text: bytes) -> dict[str, Any]:
    try:
        head = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"replay header is not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise ReplayError("replay header must be a JSON object")
    return head


def decode(data: bytes) -> Replay:
    """Read a replay written by :func:`encode`, or raise :class:`ReplayError` saying why not."""
    raw = _gunzip(data)
    if len(raw) < PREAMBLE.size:
        raise ReplayError(f"truncated replay: {len(raw)} bytes, shorter than the "
                          f"{PREAMBLE.size}-byte preamble")
    magic, fmt, head_len = PREAMBLE.unpack_from(raw)
    if magic != MAGIC:
        raise ReplayError(f"not a Paddock replay: magic {magic!r}, expected {MAGIC!r}")
    car_columns = _columns(fmt)
    start = PREAMBLE.size + head_len
    if start > len(raw):
        raise ReplayError(f"truncated replay: the header needs {head_len} bytes, "
                          f"{len(raw) - PREAMBLE.size} remain")
    head = _parse_header(raw[PREAMBLE.size:start])
    if _get(head, "format", int, "header") != fmt:
        raise ReplayError(f"corrupt replay: the header says format {head['format']}, "
                          f"the preamble {fmt}")
    frames = _get(head, "frames", int, "header")
    tdict = _get(head, "track", dict, "header")
    points = _get(tdict, "points", int, "track")
    car_dicts = _get(head, "cars", list, "header")
    if frames < 1 or points < 1 or not car_dicts:
        raise ReplayError(f"replay header: {frames} frames, {points} track points and "
                          f"{len(car_dicts)} cars; each must be at least 1")
    cars = [_car_head(cd, i, fmt) for i, cd in enumerate(car_dicts)]
    kept = fmt >= OBSTACLES_SINCE and not (fmt >= COMMANDS_PER_CAR_SINCE
                                           and head.get("obstacles", 0) is None)
    count = _get(head, "obstacles", int, "header") if kept else 0
    if count < 0:
        raise ReplayError(f"replay header: {count} obstacles, must be at least 0")
    track_bytes = len(TRACK_BLOCKS) * 2 * points * np.dtype(_TRACK_COLUMN.dtype).itemsize
    obstacle_bytes = sum(np.dtype(c.dtype).itemsize for c in OBSTACLE_COLUMNS) * count
    car_bytes = sum(np.dtype(col.dtype).itemsize * frames
                    for col in car_columns for car in cars if _stored(car, col))
    body = len(raw) - start
    announced = track_bytes + obstacle_bytes + car_bytes
    if body != announced:
        what = "truncated replay" if body < announced else "corrupt replay"
        raise ReplayError(f"{what}: {body} bytes of data after the header, the header "
                          f"announces {announced}")
    offset = start
    geometry: dict[str, np.ndarray] = {}
    for k in TRACK_BLOCKS:
        axes = []
        for _ in (0, 1):
            axes.append(_from_ints(_unpack(raw, offset, points, _TRACK_COLUMN), _TRACK_COLUMN))
            offset += points * np.dtype(_TRACK_COLUMN.dtype).itemsize
        geometry[k] = np.stack(axes, axis=1)
    obstacles = _read_obstacles(raw, offset, count) if kept else None
    offset += obstacle_bytes
    for col in car_columns:
        for car in cars:
            if _stored(car, col):
                setattr(car, col.name, _from_ints(_unpack(raw, offset, frames, col), col))
                offset += frames * np.dtype(col.dtype).itemsize
    track = ReplayTrack(name=_get(tdict, "name", str, "track"),
                        title=_get(tdict, "title", str, "track"),
                        digest=_get(tdict, "digest", str, "track"),
                        length=_get(tdict, "length_m", float, "track"), **geometry)
    dt = _get(head, "dt", float, "header")
    if not (math.isfinite(dt) and dt > 0.0):
        raise ReplayError(f"replay header: dt must be a positive number of seconds, got {dt}")
    return Replay(track=track, seed=_get(head, "seed", int, "header"), dt=dt, cars=cars,
                  meta=_get(head, "meta", dict, "header"),
                  paddock_version=_get(head, "paddock_version", str, "header"),
                  sim_version=_get(head, "sim_version", str, "header"),
                  format_version=fmt, obstacles=obstacles)


_EMPTY = np.zeros(0)


def _car_head(cd: Any, i: int, fmt: int) -> ReplayCar:
    """Car ``i`` as its header entry describes it, its columns not read yet: empty arrays
    for the columns stored, ``None`` for the command columns a format-1 replay or the car's
    ``"commands": false`` leaves out."""
    if not isinstance(cd, dict):
        raise ReplayError(f"replay header: car {i} must be a JSON object")
    where = f"cars[{i}]"
    if fmt >= COMMANDS_PER_CAR_SINCE:
        commands = _get(cd, "commands", bool, where)
    else:
        commands = fmt >= COMMANDS_SINCE
    stored = _EMPTY if commands else None
    bot = _get(cd, "bot", bool, where) if "bot" in cd else False  # optional, any format
    return ReplayCar(name=_get(cd, "name", str, where),
                     policy_sha256=_get(cd, "policy_sha256", str, where),
                     color=_get(cd, "color", int, where),
                     **{col.name: _EMPTY for col in _STATE_COLUMNS}, flags=_EMPTY,
                     command_steering=stored, command_speed=stored, action=stored, bot=bot)


def _stored(car: ReplayCar, col: _Column) -> bool:
    """Whether ``car`` has a block of column ``col`` (see :func:`_car_head`)."""
    return getattr(car, col.name) is not None


def _read_obstacles(raw: bytes, offset: int, count: int) -> np.ndarray:
    """The ``count`` obstacles whose blocks start at ``offset``, as a (count, 3) array."""
    columns = []
    for col in OBSTACLE_COLUMNS:
        columns.append(_from_ints(_unpack(raw, offset, count, col), col))
        offset += count * np.dtype(col.dtype).itemsize
    return np.stack(columns, axis=1)


# ---------------------------------------------------------------------------------- queries
def incidents(replay: Replay) -> list[Incident]:
    """Frames where a car goes off track, touches something, is reset or completes a lap.

    An incident is the first frame of a run of frames carrying its flag, so a car that stays
    off the track under training semantics is listed once. Sorted by frame, then car, then
    the order of :data:`INCIDENT_FLAGS`.
    """
    found: list[Incident] = []
    for i, c in enumerate(replay.cars):
        flags = np.asarray(c.flags, dtype=np.uint8)
        for kind, bit in INCIDENT_FLAGS:
            on = (flags & bit) != 0
            rising = on & ~np.concatenate(([False], on[:-1]))
            found.extend(Incident(int(t), i, kind) for t in np.flatnonzero(rising))
    order = {kind: k for k, (kind, _) in enumerate(INCIDENT_FLAGS)}
    found.sort(key=lambda inc: (inc.frame, inc.car, order[inc.kind]))
    return found
