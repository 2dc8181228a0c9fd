"""Tests for evaluator.replay: round trip, byte layout, obstacles, earlier formats, size budget,
bad data and incidents."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from evaluator import _sim, car, replay, trace, version
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.errors import PaddockError, ReplayError
from evaluator.metadata import parse_metadata
from evaluator.observation import I_HEADING, I_OFFSET, OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.race import RaceResult, run_race, trial_seed
from evaluator.race_settings import RaceConfig
from evaluator.sandbox import SandboxOptions
from evaluator.telemetry import FLAG_BLAME, FLAG_LAP, CarLabel, Telemetry
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.validate import validate_policy
from evaluator.world import OBSTACLE_RADIUS_M, spread_obstacles
from tests.support.replay_formats import as_format_1, as_format_2, as_format_3

if TYPE_CHECKING:
    from conftest import RaceRecorder

SEED = 3
PENALTY_S = 2.0
SWERVE_STEPS = 45  # the swerver drives the line for two such periods, then turns in for one
MINUTE_STEPS = 60 * car.CONTROL_HZ
BUDGET_BYTES_PER_CAR_MINUTE = 10 * 1024
REPLAY_DOC = Path(__file__).resolve().parents[2] / "docs" / "REPLAY.md"
SHA = "ab" * 32
OBSTACLES = 2


@pytest.fixture(scope="module")
def incident_run(record_race: RaceRecorder) -> Telemetry:
    """Oval, 2 laps: a slow car, a fast car that rear-ends it, and a car that swerves off."""
    drivers: list[Driver] = [PurePursuitDriver(1.5), PurePursuitDriver(3.5, follow=False),
                             record_race.Swerver()]
    labels = [CarLabel(f"car-{i}", policy_sha256=SHA if i else "") for i in range(3)]
    return record_race(load_track("oval"), drivers, 1800, laps=2, labels=labels)


@pytest.fixture(scope="module")
def incident_replay(incident_run: Telemetry) -> replay.Replay:
    return replay.from_telemetry(incident_run, meta={"trial": 2, "laps": 2, "mode": "heat"})


def raw_bytes(r: replay.Replay) -> bytes:
    return zlib.decompress(replay.encode(r), replay.GZIP_WBITS)


def gzip(raw: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, replay.GZIP_WBITS)
    return comp.compress(raw) + comp.flush()


# ---------------------------------------------------------------------------------- round trip
def test_round_trip_within_quantisation(incident_run: Telemetry,
                                        incident_replay: replay.Replay) -> None:
    r = incident_replay
    back = replay.decode(replay.encode(r))
    assert back == replay.quantise(r)
    assert back.frames == r.frames == incident_run.frames
    assert back.seed == incident_run.seed and back.dt == pytest.approx(1.0 / car.CONTROL_HZ)
    assert back.meta == {"trial": 2, "laps": 2, "mode": "heat"}
    for orig, got in zip(r.cars, back.cars, strict=True):
        assert (got.name, got.policy_sha256, got.color) == (orig.name, orig.policy_sha256,
                                                            orig.color)
        for col in replay.CAR_COLUMNS:
            a, b = getattr(orig, col.name), getattr(got, col.name)
            if col.name in ("laps", "flags"):
                np.testing.assert_array_equal(a, b)
            else:
                assert np.max(np.abs(a - b)) <= 0.5 * col.quantum * (1 + 1e-9), col.name
    t = back.track
    assert (t.name, t.digest, t.length) == (r.track.name, r.track.digest, r.track.length)
    for k in replay.TRACK_BLOCKS:
        assert np.max(np.abs(getattr(t, k) - getattr(r.track, k))) <= 0.5e-3 * (1 + 1e-9)


def test_from_telemetry_columns(incident_run: Telemetry, incident_replay: replay.Replay) -> None:
    tel, r = incident_run, incident_replay
    assert [c.color for c in r.cars] == [0, 1, 2]
    assert [c.policy_sha256 for c in r.cars] == ["", SHA, SHA]
    np.testing.assert_array_equal(r.cars[1].x, tel.column(_sim.C_X)[:, 1])
    np.testing.assert_array_equal(r.cars[2].steering, tel.column(_sim.C_DELTA)[:, 2])
    np.testing.assert_array_equal(r.cars[0].flags, tel.flags()[:, 0])
    assert r.cars[0].progress[-1] == 100.0 and r.cars[0].laps[-1] == 2
    assert r.track.digest == tel.track.digest
    np.testing.assert_array_equal(r.track.left_border, tel.track.left_border)
    colored = replay.from_telemetry(tel, colors=[5, 6, 7])
    assert [c.color for c in colored.cars] == [5, 6, 7]
    with pytest.raises(ReplayError, match="colours"):
        replay.from_telemetry(tel, colors=[1])


def test_header_records_versions_and_encoding_is_deterministic(
        incident_replay: replay.Replay) -> None:
    data = replay.encode(incident_replay)
    assert data == replay.encode(incident_replay)
    back = replay.decode(data)
    assert back.paddock_version == version.PADDOCK_VERSION
    assert back.sim_version == version.SIM_VERSION
    assert back.format_version == replay.FORMAT_VERSION


def test_byte_layout_follows_the_spec(incident_replay: replay.Replay) -> None:
    """Decode car 0's x and the flags by hand, the way docs/REPLAY.md tells a viewer to."""
    r = incident_replay
    raw = raw_bytes(r)
    magic, fmt, head_len = struct.unpack_from("<8sII", raw, 0)
    assert (magic, fmt) == (b"PDKREPLY", 4)
    start = 16 + head_len
    assert start % 4 == 0
    head = json.loads(raw[16:start])
    assert head["frames"] == r.frames and head["track"]["points"] == r.track.centerline.shape[0]
    assert [c["name"] for c in head["cars"]] == ["car-0", "car-1", "car-2"]
    assert head["obstacles"] == 0  # no obstacle blocks between the track and the cars
    n, f, cars = head["track"]["points"], head["frames"], len(head["cars"])
    # centerline x: int32 millimetres, delta-coded
    cx = np.cumsum(np.frombuffer(raw, "<i4", n, start).astype(np.int64))
    np.testing.assert_allclose(cx / 1000, r.track.centerline[:, 0], atol=5e-4)
    car_start = start + 6 * n * 4
    x0 = np.cumsum(np.frombuffer(raw, "<i4", f, car_start).astype(np.int64))
    np.testing.assert_allclose(x0 / 1000, r.cars[0].x, atol=5e-4)
    flags_start = len(raw) - cars * f
    flags2 = np.frombuffer(raw, "<u1", f, flags_start + 2 * f)
    np.testing.assert_array_equal(flags2, r.cars[2].flags)
    # the commanded speed of car 1: int16 mm/s, delta-coded, after x, y and six int16 columns
    speed_start = car_start + 2 * cars * f * 4 + 6 * cars * f * 2 + f * 2
    cmd1 = np.cumsum(np.frombuffer(raw, "<i2", f, speed_start).astype(np.int64))
    np.testing.assert_allclose(cmd1 / 1000, r.cars[1].command_speed, atol=5e-4)
    assert len(raw) == car_start + cars * f * (4 + 4 + 2 * 8 + 1)


def test_commands_come_from_the_recording(incident_run: Telemetry,
                                          incident_replay: replay.Replay) -> None:
    tel, r = incident_run, incident_replay
    for i, c in enumerate(r.cars):
        assert c.has_commands
        np.testing.assert_array_equal(c.command_steering, tel.column(_sim.C_CMD_STEER)[:, i])
        np.testing.assert_array_equal(c.command_speed, tel.column(_sim.C_CMD_SPEED)[:, i])
        assert c.action is not None and set(c.action.tolist()) == {-1}  # continuous drivers
    # the swerving car commands more steering than its wheels reach at once
    c = r.cars[2]
    assert np.max(np.abs(c.command_steering - c.steering)) > 1e-3


def test_format_1_replays_still_decode(incident_replay: replay.Replay) -> None:
    """Replays stored before the commands were kept: every other column as before."""
    old = replay.decode(as_format_1(replay.encode(incident_replay)))
    new = replay.quantise(incident_replay)
    assert old.format_version == 1 and old.frames == new.frames
    for a, b in zip(old.cars, new.cars, strict=True):
        assert not a.has_commands and a.command_speed is None and a.action is None
        for col in replay.COLUMNS_BY_FORMAT[1]:
            np.testing.assert_array_equal(getattr(a, col.name), getattr(b, col.name))
    assert replay.incidents(old) == replay.incidents(new)
    assert replay.quantise(old) == old
    with pytest.raises(ReplayError, match="writes format 4, not 1"):
        replay.encode(old)
    new.cars[0].action = None
    with pytest.raises(ReplayError, match="car 0 has no action"):
        replay.encode(new)


# ---------------------------------------------------------------------------------- obstacles
@pytest.fixture(scope="module")
def obstacle_race() -> RaceResult:
    """Two trials of one lap of the oval with two boxes each, raced by the race engine with a
    small ONNX policy that follows the centerline at 2 m/s."""
    meta = parse_metadata({"action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -30, "high": 30}, "speed": {"low": 2.0, "high": 2.0}}})
    w = np.zeros((2, OBS_DIM), dtype=np.float32)
    w[0, I_HEADING], w[0, I_OFFSET] = -2.0, -1.0
    policy = validate_policy(mlp_policy([(w, np.zeros(2, np.float32))], meta)
                             .SerializeToString())
    config = RaceConfig(track="oval", laps=1, trials=2, obstacles=OBSTACLES, seed=SEED,
                        time_cap=30.0)
    return run_race(config, [policy], options=SandboxOptions(action_timeout_s=1.0))


def test_the_race_engine_records_each_trials_obstacles(obstacle_race: RaceResult) -> None:
    """Every trial's telemetry, and so its replay, keeps the boxes that trial raced with."""
    track = obstacle_race.track
    replays = [replay.from_telemetry(tel) for tel in obstacle_race.telemetry]
    assert len(replays) == 2
    for t, (tel, r) in enumerate(zip(obstacle_race.telemetry, replays, strict=True), start=1):
        placed = spread_obstacles(track, OBSTACLES, np.random.default_rng(trial_seed(SEED, t)))
        assert list(tel.obstacles) == placed
        assert r.obstacles is not None
        np.testing.assert_array_equal(r.obstacles, [(o.x, o.y, o.radius) for o in placed])
    assert replays[0].obstacles is not None and replays[1].obstacles is not None
    assert not np.array_equal(replays[0].obstacles, replays[1].obstacles)  # a layout per trial


def test_round_trip_keeps_the_obstacles(obstacle_race: RaceResult) -> None:
    r = replay.from_telemetry(obstacle_race.telemetry[0], meta={"trial": 1})
    back = replay.decode(replay.encode(r))
    assert back == replay.quantise(r) and back.format_version == 4
    assert r.obstacles is not None and back.obstacles is not None
    assert back.obstacles.shape == (OBSTACLES, 3)
    assert np.max(np.abs(back.obstacles[:, :2] - r.obstacles[:, :2])) <= 0.5e-3 * (1 + 1e-9)
    np.testing.assert_array_equal(back.obstacles[:, 2], OBSTACLE_RADIUS_M)
    assert replay.quantise(back) == back
    bare = replay.quantise(r)
    bare.obstacles = replay.no_obstacles()  # a run without boxes keeps an empty list
    none = replay.decode(replay.encode(bare))
    assert none.obstacles is not None and none.obstacles.shape == (0, 3) and none == bare


def test_obstacle_blocks_follow_the_spec(obstacle_race: RaceResult) -> None:
    """Read the boxes by hand, the way docs/REPLAY.md tells a viewer to."""
    r = replay.from_telemetry(obstacle_race.telemetry[1])
    raw = raw_bytes(r)
    head_len = struct.unpack_from("<8sII", raw, 0)[2]
    start = 16 + head_len
    head = json.loads(raw[16:start])
    assert head["format"] == 4 and head["obstacles"] == OBSTACLES
    at = start + 6 * 4 * head["track"]["points"]
    blocks = np.frombuffer(raw, "<i4", 3 * OBSTACLES, at).reshape(3, OBSTACLES)
    assert r.obstacles is not None
    np.testing.assert_allclose(blocks.T / 1000, r.obstacles, atol=5e-4)  # absolute mm
    car_start = at + 3 * 4 * OBSTACLES
    x0 = np.cumsum(np.frombuffer(raw, "<i4", r.frames, car_start).astype(np.int64))
    np.testing.assert_allclose(x0 / 1000, r.cars[0].x, atol=5e-4)
    assert len(raw) == car_start + r.frames * (4 + 4 + 2 * 8 + 1)


def test_format_2_replays_still_decode(obstacle_race: RaceResult,
                                       incident_replay: replay.Replay) -> None:
    """Replays stored before the obstacles were kept: no obstacles, every column as before."""
    for r in (replay.from_telemetry(obstacle_race.telemetry[0]), incident_replay):
        old = replay.decode(as_format_2(replay.encode(r)))
        new = replay.quantise(r)
        assert old.format_version == 2 and old.obstacles is None
        for a, b in zip(old.cars, new.cars, strict=True):
            assert a.has_commands
            for col in replay.CAR_COLUMNS:
                np.testing.assert_array_equal(getattr(a, col.name), getattr(b, col.name))
        assert replay.incidents(old) == replay.incidents(new)
        assert replay.quantise(old) == old
        with pytest.raises(ReplayError, match="writes format 4, not 2"):
            replay.encode(old)
    new.obstacles = None  # format 4 writes unknown obstacles (a rewritten format 2) as null
    assert replay.decode(replay.encode(new)).obstacles is None
    new.obstacles = np.zeros((2, 2))
    with pytest.raises(ReplayError, match="shape"):
        replay.encode(new)
    new.obstacles = np.array([[0.0, np.inf, 0.12]])
    with pytest.raises(ReplayError, match="finite"):
        replay.encode(new)


def test_the_trace_never_reads_the_obstacles(obstacle_race: RaceResult) -> None:
    """The trace CSV of a format-3 replay is, byte for byte, that of the same run stored as
    format 2."""
    r = replay.from_telemetry(obstacle_race.telemetry[0])
    data = replay.encode(r)
    csvs = []
    for stored in (data, as_format_2(data)):
        out = io.StringIO()
        rows = trace.replay_trace_rows(1, replay.decode(stored), 0, track=obstacle_race.track)
        assert trace.write_trace_rows(rows, out) == r.frames - 1
        csvs.append(out.getvalue())
    assert csvs[0] == csvs[1]


def test_malformed_obstacles_raise(obstacle_race: RaceResult) -> None:
    raw = raw_bytes(replay.from_telemetry(obstacle_race.telemetry[0]))
    head_len = struct.unpack_from("<I", raw, 12)[0]
    head = json.loads(raw[16:16 + head_len])

    def with_header(h: object) -> bytes:
        text = json.dumps(h).encode()
        text += b" " * (-len(text) % 4)
        return gzip(raw[:12] + struct.pack("<I", len(text)) + text + raw[16 + head_len:])

    with pytest.raises(ReplayError, match="'obstacles'"):
        replay.decode(with_header({k: v for k, v in head.items() if k != "obstacles"}))
    with pytest.raises(ReplayError, match="obstacles must be int"):
        replay.decode(with_header({**head, "obstacles": 2.0}))
    with pytest.raises(ReplayError, match="-1 obstacles"):
        replay.decode(with_header({**head, "obstacles": -1}))
    with pytest.raises(ReplayError, match="truncated replay"):
        replay.decode(with_header({**head, "obstacles": OBSTACLES + 1}))
    with pytest.raises(ReplayError, match="corrupt replay"):
        replay.decode(with_header({**head, "obstacles": OBSTACLES - 1}))


def test_yaw_wraps_across_pi(incident_replay: replay.Replay) -> None:
    r = replay.quantise(incident_replay)
    c = r.cars[0]
    c.yaw = np.where(np.arange(r.frames) % 2 == 0, 3.1415, -3.1415)
    back = replay.decode(replay.encode(r))
    np.testing.assert_array_equal(back.cars[0].yaw, c.yaw)


# ---------------------------------------------------------------------------------- size
def test_size_budget_one_minute(record_race: RaceRecorder) -> None:
    """Two cars lapping for 60 s on the longest library track fit the budget, geometry too."""
    track = max((load_track(n) for n in ("royal-park", "forest-ridge")),
                key=lambda t: t.num_points)
    drivers: list[Driver] = [PurePursuitDriver(2.5),
                             PurePursuitDriver(2.0, line_offset_m=0.2)]
    labels = [CarLabel(f"car-{i}", policy_sha256=SHA if i else "") for i in range(len(drivers))]
    tel = record_race(track, drivers, MINUTE_STEPS, laps=0, labels=labels)
    assert tel.frames == MINUTE_STEPS + 1
    r = replay.from_telemetry(tel, meta={"trial": 1})
    data = replay.encode(r)
    cars = len(r.cars)
    minutes = r.duration / 60.0
    first = replay.quantise(r)
    for c in first.cars:
        for col in replay.CAR_COLUMNS:
            setattr(c, col.name, getattr(c, col.name)[:1])
    fixed = len(replay.encode(first))  # header + geometry (+ one frame)
    head_len = struct.unpack_from("<8sII", raw_bytes(r), 0)[2]
    per_car_minute = (len(data) - fixed) / cars / minutes
    print(f"\nreplay of {cars} cars x {r.frames} frames on {track.name} "
          f"({track.num_points} points): {len(data)} bytes gzipped; header JSON {head_len} B, "
          f"header + geometry {fixed} B gzipped; {per_car_minute:.0f} B per car-minute "
          f"without, {len(data) / cars / minutes:.0f} B with the geometry shared out")
    assert len(data) / cars / minutes <= BUDGET_BYTES_PER_CAR_MINUTE
    assert per_car_minute <= BUDGET_BYTES_PER_CAR_MINUTE


def test_obstacles_cost_a_few_bytes_once_per_replay(obstacle_race: RaceResult) -> None:
    """Format 3 against format 2 for the same run: the boxes are stored once, not per frame."""
    r = replay.from_telemetry(obstacle_race.telemetry[0], meta={"trial": 1})
    bare = replay.quantise(r)
    bare.obstacles = replay.no_obstacles()
    sizes = {}
    for name, run in (("2 obstacles", r), ("none", bare)):
        data = replay.encode(run)
        sizes[name] = (len(as_format_2(data)), len(as_format_3(data)))
    print(f"\nreplay of {r.frames} frames on oval, format 2 -> format 3 bytes: {sizes}")
    with_boxes, without = (new - old for old, new in sizes.values())
    assert 0 < without <= 16  # the header's "obstacles":0
    assert without < with_boxes <= without + OBSTACLES * 3 * 4 + 8


# ---------------------------------------------------------------------------------- bad data
def test_replay_error_is_a_paddock_value_error() -> None:
    assert issubclass(ReplayError, PaddockError) and issubclass(ReplayError, ValueError)


@pytest.mark.parametrize("cut", [1, 8, 100, 0.5, 0.9])
def test_truncated_data_raises(incident_replay: replay.Replay, cut: float) -> None:
    data = replay.encode(incident_replay)
    keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    with pytest.raises(ReplayError, match="truncated|corrupt|gzip"):
        replay.decode(data[:keep])


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_corrupted_data_raises(incident_replay: replay.Replay, where: float) -> None:
    data = bytearray(replay.encode(incident_replay))
    data[int(len(data) * where)] ^= 0x55
    with pytest.raises(ReplayError):
        replay.decode(bytes(data))


def test_not_gzip_and_trailing_bytes_raise(incident_replay: replay.Replay) -> None:
    with pytest.raises(ReplayError, match="not gzip"):
        replay.decode(b"PDKREPLY not compressed")
    with pytest.raises(ReplayError, match="not gzip"):
        replay.decode(b"")
    with pytest.raises(ReplayError, match="after the gzip stream"):
        replay.decode(replay.encode(incident_replay) + b"\0")


def test_wrong_magic_and_version_raise(incident_replay: replay.Replay) -> None:
    raw = raw_bytes(incident_replay)
    with pytest.raises(ReplayError, match="magic"):
        replay.decode(gzip(b"NOTREPLY" + raw[8:]))
    with pytest.raises(ReplayError, match="version 5 is not supported"):
        replay.decode(gzip(raw[:8] + struct.pack("<I", 5) + raw[12:]))
    with pytest.raises(ReplayError, match="the header says format 4, the preamble 1"):
        replay.decode(gzip(raw[:8] + struct.pack("<I", 1) + raw[12:]))
    with pytest.raises(ReplayError, match="preamble"):
        replay.decode(gzip(raw[:10]))


def test_body_length_must_match_the_header(incident_replay: replay.Replay) -> None:
    raw = raw_bytes(incident_replay)
    with pytest.raises(ReplayError, match="truncated replay"):
        replay.decode(gzip(raw[:-3]))
    with pytest.raises(ReplayError, match="corrupt replay"):
        replay.decode(gzip(raw + b"\0\0"))
    head_len = struct.unpack_from("<I", raw, 12)[0]
    with pytest.raises(ReplayError, match="header needs"):
        replay.decode(gzip(raw[:12] + struct.pack("<I", len(raw)) + raw[16:]))
    assert head_len % 4 == 0


def test_malformed_header_raises(incident_replay: replay.Replay) -> None:
    raw = raw_bytes(incident_replay)
    head_len = struct.unpack_from("<I", raw, 12)[0]
    head = json.loads(raw[16:16 + head_len])

    def with_header(h: object) -> bytes:
        text = json.dumps(h).encode()
        text += b" " * (-len(text) % 4)
        return gzip(raw[:12] + struct.pack("<I", len(text)) + text + raw[16 + head_len:])

    assert replay.decode(with_header(head)) == replay.quantise(incident_replay)
    with pytest.raises(ReplayError, match="not JSON"):
        replay.decode(gzip(raw[:16] + b"x" + raw[17:]))
    with pytest.raises(ReplayError, match="JSON object"):
        replay.decode(with_header([1, 2]))
    for key in ("frames", "cars", "seed", "sim_version"):
        broken = {k: v for k, v in head.items() if k != key}
        with pytest.raises(ReplayError, match=repr(key)):
            replay.decode(with_header(broken))
    with pytest.raises(ReplayError, match="seed must be int"):
        replay.decode(with_header({**head, "seed": "3"}))
    with pytest.raises(ReplayError, match="dt must be"):
        replay.decode(with_header({**head, "dt": -1.0}))
    with pytest.raises(ReplayError, match="header says format"):
        replay.decode(with_header({**head, "format": 7}))


def test_encode_rejects_what_it_cannot_store(incident_replay: replay.Replay) -> None:
    r = replay.quantise(incident_replay)
    with pytest.raises(ReplayError, match="JSON"):
        replay.encode(replay.Replay(r.track, r.seed, r.dt, r.cars, meta={"x": {1, 2}}))
    with pytest.raises(ReplayError, match="JSON"):
        replay.encode(replay.Replay(r.track, r.seed, r.dt, r.cars, meta={"x": float("nan")}))
    with pytest.raises(ReplayError, match="at least one car"):
        replay.encode(replay.Replay(r.track, r.seed, r.dt, []))
    bad = replay.quantise(incident_replay)
    bad.seed = np.int64(3)  # type: ignore[assignment]
    with pytest.raises(ReplayError, match="header is not JSON"):
        replay.encode(bad)
    bad = replay.quantise(incident_replay)
    bad.cars[0].x = bad.cars[0].x.copy()
    bad.cars[0].x[5] = np.nan
    with pytest.raises(ReplayError, match="finite"):
        replay.encode(bad)
    bad = replay.quantise(incident_replay)
    bad.cars[1].speed = bad.cars[1].speed + 100.0
    with pytest.raises(ReplayError, match="do not fit"):
        replay.encode(bad)
    bad = replay.quantise(incident_replay)
    bad.cars[2].laps = bad.cars[2].laps[:-1]
    with pytest.raises(ReplayError, match="shape"):
        replay.encode(bad)


def test_empty_telemetry_is_refused(oval_track: Track) -> None:
    tel = Telemetry(oval_track, 0, [CarLabel("a")], 10)
    with pytest.raises(ReplayError, match="no frames"):
        replay.from_telemetry(tel)


# ---------------------------------------------------------------------------------- incidents
def test_incidents(incident_run: Telemetry, incident_replay: replay.Replay) -> None:
    found = replay.incidents(incident_replay)
    assert found == sorted(found, key=lambda i: (i.frame, i.car))
    kinds = Counter((i.car, i.kind) for i in found)
    ev = incident_run.events[: incident_run.frames]
    for i in range(3):
        assert kinds[(i, "lap")] == 2
        assert kinds[(i, "off_track")] == int(ev[:, i, _sim.E_OFFTRACK].sum())
        assert kinds[(i, "reset")] == int(ev[:, i, _sim.E_RESET].sum())
        assert kinds[(i, "collision")] == int(ev[:, i, _sim.E_CRASH].sum())
    assert kinds[(2, "off_track")] >= 2  # the swerver
    assert kinds[(1, "collision")] >= 1  # the fast car behind
    flags = incident_run.flags()
    assert (flags[:, 1] & FLAG_BLAME).any()
    for inc in found:
        if inc.kind == "lap":
            assert flags[inc.frame, inc.car] & FLAG_LAP
    assert {i.kind for i in found} == {k for k, _ in replay.INCIDENT_FLAGS}


def test_incidents_report_the_first_frame_of_a_run() -> None:
    flags = np.array([0, 1, 1, 1, 0, 1, 5, 4], dtype=np.uint8)
    zeros = np.zeros(len(flags))
    points = np.zeros((3, 2))
    track = replay.ReplayTrack("t", "", 1.0, points, points, points)
    one = replay.ReplayCar("a", "", 0, zeros, zeros, zeros, zeros, zeros, zeros,
                           zeros.astype(np.int32), flags)
    r = replay.Replay(track, 0, 1.0 / car.CONTROL_HZ, [one])
    assert replay.incidents(r) == [replay.Incident(1, 0, "off_track"),
                                   replay.Incident(5, 0, "off_track"),
                                   replay.Incident(6, 0, "collision")]


# ---------------------------------------------------------------------------------- the spec
def test_spec_lists_every_column() -> None:
    doc = REPLAY_DOC.read_text(encoding="utf-8")
    types = {"<i4": "int32", "<i2": "int16", "<u1": "uint8"}
    for col in replay.CAR_COLUMNS:
        assert f"| `{col.name}` | {types[col.dtype]} |" in doc, col.name
    assert replay.MAGIC.decode() in doc
    assert f"format version {replay.FORMAT_VERSION}" in doc
