"""Format 4 of evaluator.replay: commands kept per car, withheld cars, and the older formats
still read (docs/REPLAY.md, "Withheld commands")."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from evaluator import replay, trace
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.errors import ReplayError
from evaluator.track_library import load_track
from tests.support.replay_formats import as_format_1, as_format_2, as_format_3

if TYPE_CHECKING:
    from conftest import RaceRecorder

STATE = ("x", "y", "yaw", "steering", "speed", "progress", "laps", "flags")
COMMANDS = tuple(c.name for c in replay.COMMAND_COLUMNS)
STEPS_PER_LAP = 900


@pytest.fixture(scope="module")
def three_cars(record_race: RaceRecorder) -> replay.Replay:
    """Three cars, two laps of the oval, discrete action indices recorded; the swerver
    commands more than its wheels reach."""
    drivers: list[Driver] = [PurePursuitDriver(1.5), PurePursuitDriver(3.5, follow=False),
                             record_race.Swerver()]
    tel = record_race(load_track("oval"), drivers, 2 * STEPS_PER_LAP, laps=2, discrete=True)
    return replay.quantise(replay.from_telemetry(tel, meta={"trial": 1}))


def inflate(data: bytes) -> tuple[dict[str, Any], bytes, int]:
    """The header, the inflated bytes and the offset of the first block."""
    raw = zlib.decompress(data, replay.GZIP_WBITS)
    head_len = struct.unpack_from("<I", raw, 12)[0]
    return json.loads(raw[16:16 + head_len]), raw, 16 + head_len


def regzip(raw: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, replay.GZIP_WBITS)
    return comp.compress(raw) + comp.flush()


def with_header(data: bytes, edit: dict[str, object]) -> bytes:
    head, raw, start = inflate(data)
    text = json.dumps({**head, **edit}).encode()
    text += b" " * (-len(text) % 4)
    return regzip(raw[:12] + struct.pack("<I", len(text)) + text + raw[start:])


def test_format_4_round_trips_with_every_cars_commands(three_cars: replay.Replay) -> None:
    data = replay.encode(three_cars)
    head, raw, _ = inflate(data)
    assert struct.unpack_from("<I", raw, 8)[0] == 4 == replay.FORMAT_VERSION
    assert head["format"] == 4
    assert [c["commands"] for c in head["cars"]] == [True, True, True]
    back = replay.decode(data)
    assert back == three_cars and back.format_version == 4
    assert replay.commands_of(back) == {0, 1, 2}
    assert back.cars[1].action is not None and (back.cars[1].action >= 0).any()


@pytest.mark.parametrize("keep", [set(), {1}, {0, 2}])
def test_withheld_cars_decode_without_commands(three_cars: replay.Replay,
                                               keep: set[int]) -> None:
    public = replay.without_commands(three_cars, keep=keep)
    assert public.format_version == 4 and replay.commands_of(public) == keep
    assert replay.commands_of(three_cars) == {0, 1, 2}  # the original keeps its commands
    data = replay.encode(public)
    head, raw, start = inflate(data)
    assert [c["commands"] for c in head["cars"]] == [i in keep for i in range(3)]
    # the withheld cars' command blocks are not in the file at all
    f, n = three_cars.frames, three_cars.track.centerline.shape[0]
    car_start = start + 6 * 4 * n + 3 * 4 * head["obstacles"]
    assert len(raw) == car_start + f * (3 * (4 + 4 + 5 * 2 + 1) + len(keep) * 3 * 2)
    back = replay.decode(data)
    assert back == public == replay.quantise(public)
    for i, (got, ref) in enumerate(zip(back.cars, three_cars.cars, strict=True)):
        for col in STATE:
            np.testing.assert_array_equal(getattr(got, col), getattr(ref, col))
        for col in COMMANDS:
            if i in keep:
                np.testing.assert_array_equal(getattr(got, col), getattr(ref, col))
            else:
                assert getattr(got, col) is None, (i, col)
        assert got.has_commands == (i in keep)
    assert replay.incidents(back) == replay.incidents(three_cars)


def test_a_withheld_car_gives_the_trace_of_a_replay_without_commands(
        three_cars: replay.Replay) -> None:
    """The trace log of a spectator's copy is the fallback a format-1 replay gets: the actual
    steering and speed, action -1, nothing of what the policy asked for."""
    data = replay.encode(three_cars)
    public = replay.decode(replay.encode(replay.without_commands(three_cars)))
    old = replay.decode(as_format_1(data))
    csvs = []
    for r in (public, old, three_cars):
        out = io.StringIO()
        trace.write_trace_rows(trace.replay_trace_rows(1, r, 2), out)
        csvs.append(out.getvalue())
    assert csvs[0] == csvs[1] != csvs[2]


def test_formats_1_to_3_still_decode_and_rewrite_as_format_4(
        three_cars: replay.Replay) -> None:
    data = replay.encode(three_cars)
    v3, v2, v1 = (replay.decode(convert(data))
                  for convert in (as_format_3, as_format_2, as_format_1))
    assert (v3.format_version, v2.format_version, v1.format_version) == (3, 2, 1)
    assert replay.commands_of(v3) == replay.commands_of(v2) == {0, 1, 2}
    assert replay.commands_of(v1) == frozenset()
    assert v3.obstacles is not None and v2.obstacles is None and v1.obstacles is None
    for old in (v3, v2, v1):
        for got, ref in zip(old.cars, three_cars.cars, strict=True):
            for col in STATE:
                np.testing.assert_array_equal(getattr(got, col), getattr(ref, col))
        with pytest.raises(ReplayError, match=f"writes format 4, not {old.format_version}"):
            replay.encode(old)
        copy = replay.decode(replay.encode(replay.without_commands(old, keep={0})))
        assert copy.format_version == 4
        assert replay.commands_of(copy) == ({0} if old.format_version > 1 else frozenset())
        assert (copy.obstacles is None) == (old.obstacles is None)
        for got, ref in zip(copy.cars, old.cars, strict=True):
            for col in STATE:
                np.testing.assert_array_equal(getattr(got, col), getattr(ref, col))
    # a format-2 replay's copy says it never kept the obstacles
    head, _, _ = inflate(replay.encode(replay.without_commands(v2)))
    assert head["obstacles"] is None


def test_malformed_format_4_is_refused(three_cars: replay.Replay) -> None:
    data = replay.encode(replay.without_commands(three_cars, keep={0}))
    head, _, _ = inflate(data)
    cars: list[dict[str, Any]] = head["cars"]
    missing = [{k: v for k, v in c.items() if k != "commands"} for c in cars]
    with pytest.raises(ReplayError, match="has no 'commands'"):
        replay.decode(with_header(data, {"cars": missing}))
    with pytest.raises(ReplayError, match="commands must be bool"):
        replay.decode(with_header(data, {"cars": [{**c, "commands": 1} for c in cars]}))
    with pytest.raises(ReplayError, match="truncated replay"):  # says more blocks than there are
        replay.decode(with_header(data, {"cars": [{**c, "commands": True} for c in cars]}))
    with pytest.raises(ReplayError, match="corrupt replay"):
        replay.decode(with_header(data, {"cars": [{**c, "commands": False} for c in cars]}))
    partial = replay.quantise(three_cars)
    partial.cars[2].command_speed = None
    with pytest.raises(ReplayError, match="car 2 has no command_speed .*command columns or none"):
        replay.encode(partial)


def test_rewriting_a_three_lap_replay_takes_milliseconds(record_race: RaceRecorder) -> None:
    """What the website pays once per stored replay and viewer kind: decode, withhold, encode."""
    drivers: list[Driver] = [PurePursuitDriver(2.5), PurePursuitDriver(2.0, line_offset_m=0.2)]
    tel = record_race(load_track("forest-ridge"), drivers, 3 * STEPS_PER_LAP, laps=3)
    data = replay.encode(replay.from_telemetry(tel, meta={"trial": 1}))
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        public = replay.encode(replay.without_commands(replay.decode(data)))
        runs.append(time.perf_counter() - t0)
    frames = tel.frames
    print(f"\nrewriting a {frames}-frame 2-car replay ({len(data)} B) without commands: "
          f"{len(public)} B, best {min(runs) * 1e3:.1f} ms, worst {max(runs) * 1e3:.1f} ms")
    assert len(public) < len(data)
    assert replay.commands_of(replay.decode(public)) == frozenset()
    assert min(runs) < 1.0  # milliseconds in practice; a generous bound on a shared machine
