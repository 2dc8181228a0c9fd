"""Race timing for live events: the tower, the ticker and the segments of a heat's replay.

Most tests build replays by hand: cars driving round a circular track at speeds chosen so
that passes, laps and penalties fall on known frames. The last ones broadcast real
head-to-head heats of two shipped bots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evaluator import replay
from evaluator.race import RaceResult, run_race
from evaluator.race_settings import RaceConfig
from evaluator.race_timing import (
    SEGMENT_FRAMES,
    Broadcast,
    RaceEvent,
    format_time,
)
from evaluator.results import FINISHED
from evaluator.sandbox import SandboxOptions
from evaluator.telemetry import (
    FLAG_BLAME,
    FLAG_COLLISION,
    FLAG_DONE,
    FLAG_LAP,
    FLAG_OFF_TRACK,
    FLAG_PENALTY,
)
from evaluator.validate import validate_policy

DT = 1.0 / 15.0
RADIUS_M = 4.0
BOTS_DIR = Path(__file__).resolve().parents[2] / "evaluator" / "bots"


# ----------------------------------------------------------------------------- synthetic runs
def circle_track() -> replay.ReplayTrack:
    """A circle of radius RADIUS_M driven anticlockwise, the line at angle 0."""
    angles = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
    centre = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return replay.ReplayTrack(name="circle", digest="0" * 64, length=2.0 * np.pi * RADIUS_M,
                              centerline=centre * RADIUS_M,
                              left_border=centre * (RADIUS_M - 0.5),
                              right_border=centre * (RADIUS_M + 0.5), title="Circle")


def car(distance: Sequence[float] | np.ndarray, flags: Sequence[int] | None = None, *,
        laps: int | None = None, name: str = "model") -> replay.ReplayCar:
    """A car that has covered ``distance[t]`` laps at frame t (negative: behind the line).

    Laps, progress and ``FLAG_LAP`` follow from the distance; with ``laps`` the car is
    parked (``FLAG_DONE``, progress 100) from the frame it completes them.
    """
    d = np.asarray(distance, dtype=np.float64)
    whole = np.maximum(np.floor(d), 0).astype(np.int32)
    progress = np.clip((d - whole) * 100.0, 0.0, 100.0)
    bits = np.zeros(d.size, dtype=np.uint8) if flags is None else np.array(flags, np.uint8)
    bits[1:] |= np.where(np.diff(whole) > 0, FLAG_LAP, 0).astype(np.uint8)
    if laps is not None and (whole >= laps).any():
        done = int(np.argmax(whole >= laps))
        whole[done:], progress[done:] = laps, 100.0
        d[done:] = d[done]
        bits[done:] |= FLAG_DONE
        bits[done + 1:] &= ~np.uint8(FLAG_LAP)
    angle = 2.0 * np.pi * d
    zeros = np.zeros(d.size)
    return replay.ReplayCar(name=name, policy_sha256="", color=0,
                            x=RADIUS_M * np.cos(angle), y=RADIUS_M * np.sin(angle),
                            yaw=angle + np.pi / 2.0, steering=zeros,
                            speed=np.full(d.size, 2.0), progress=progress, laps=whole,
                            flags=bits)


def run(*cars: replay.ReplayCar, laps: int | None = None) -> replay.Replay:
    """A replay of ``cars`` on the circle (``laps`` in its meta when given)."""
    return replay.Replay(track=circle_track(), seed=1, dt=DT, cars=list(cars),
                         meta={"laps": laps} if laps else {})


def steady(frames: int, per_frame: float, start: float = 0.0) -> np.ndarray:
    """Distance of a car at a constant speed (laps per frame) from ``start``."""
    return start + per_frame * np.arange(frames)


def of_kind(b: Broadcast, kind: str) -> list[RaceEvent]:
    return [e for e in b.events if e.kind == kind]


# ----------------------------------------------------------------------------- ticker
def test_one_overtake_at_the_frame_of_the_pass() -> None:
    # B starts 0.01 laps behind, gains 0.001 laps a frame: level at frame 10, ahead from 11
    b = Broadcast(run(car(steady(150, 0.004)), car(steady(150, 0.005, -0.01))),
                  ["alice", "bob"], final=False)
    assert [e.text for e in of_kind(b, "start")] == ["Lights out: alice, bob on the grid"]
    passes = of_kind(b, "overtake")
    assert [(e.frame, e.cars) for e in passes] == [(11, (1, 0))]
    assert passes[0].text == "bob overtakes alice for P1"
    assert passes[0].t == pytest.approx(11 * DT, abs=1e-3)
    assert [r.car for r in b.tower(10)] == [0, 1] and [r.car for r in b.tower(11)] == [1, 0]


def test_grid_order_is_not_a_pass() -> None:
    # car 1 on pole (at the line), car 0 behind it: both have progress 0 at the start
    b = Broadcast(run(car(steady(60, 0.004, -0.02)), car(steady(60, 0.004))),
                  ["back", "pole"], final=False)
    assert [r.car for r in b.tower(0)] == [1, 0]
    assert of_kind(b, "overtake") == []


@pytest.mark.parametrize(("hold", "passes"), [(7, []), (8, [(50, (1, 0)), (58, (0, 1))])])
def test_a_short_flicker_is_not_a_pass(hold: int, passes: list[tuple[int, tuple[int, ...]]]
                                       ) -> None:
    side_by_side = steady(120, 0.004, -0.001)
    side_by_side[50:50 + hold] += 0.002  # B noses ahead for ``hold`` frames
    b = Broadcast(run(car(steady(120, 0.004)), car(side_by_side)), ["a", "b"], final=False)
    assert [(e.frame, e.cars) for e in of_kind(b, "overtake")] == passes


def test_fastest_laps_and_lap_times() -> None:
    a = np.concatenate([steady(100, 1 / 100), 1 + steady(90, 1 / 90),
                        2 + steady(95, 1 / 95), steady(20, 0.0, 3.0)])
    b = np.concatenate([steady(98, 1 / 98), 1 + steady(207, 1 / 120)])
    bc = Broadcast(run(car(a, laps=3), car(b), laps=3), ["alice", "bob"], final=False)
    fastest = of_kind(bc, "fastest_lap")
    assert [(e.frame, e.cars) for e in fastest] == [(98, (1,)), (190, (0,))]
    assert fastest[1].text == f"Fastest lap: alice {format_time(90 * DT)}"
    end = {r.car: r for r in bc.tower(bc.frames - 1)}
    assert end[0].last_lap_s == pytest.approx(95 * DT, abs=1e-3)
    assert end[0].best_lap_s == pytest.approx(90 * DT, abs=1e-3)
    assert end[1].last_lap_s == pytest.approx(120 * DT, abs=1e-3)
    assert end[1].best_lap_s == pytest.approx(98 * DT, abs=1e-3)
    assert (end[0].state, end[0].lap, end[1].state, end[1].lap) == ("finished", 3,
                                                                    "racing", 3)
    assert bc.tower(50)[0].last_lap_s is None
    assert [(e.frame, e.text) for e in of_kind(bc, "finish")] == [
        (285, f"alice finishes P1 in {format_time(285 * DT)}")]
    assert bc.head()["laps"] == 3


def test_penalties_off_track_and_contact() -> None:
    flags_a = [0] * 60
    for f in range(10, 21):
        flags_a[f] = FLAG_PENALTY
    for f in range(30, 41):
        flags_a[f] = FLAG_PENALTY
    flags_a[10] |= FLAG_OFF_TRACK
    flags_a[45] |= FLAG_COLLISION | FLAG_BLAME
    flags_b = [0] * 60
    flags_b[45] = flags_b[46] = FLAG_COLLISION
    b = Broadcast(run(car(steady(60, 0.004), flags_a), car(steady(60, 0.003), flags_b)),
                  ["alice", "bob"], final=False)
    penalties = {f: {r.car: r.penalties for r in b.tower(f)} for f in (5, 15, 25, 45)}
    assert penalties == {5: {0: 0, 1: 0}, 15: {0: 1, 1: 0}, 25: {0: 1, 1: 0},
                         45: {0: 2, 1: 0}}
    assert {r.car: r.state for r in b.tower(15)} == {0: "penalty", 1: "racing"}
    assert [(e.frame, e.cars) for e in of_kind(b, "off_track")] == [(10, (0,))]
    contact = of_kind(b, "collision")
    assert [(e.frame, e.cars) for e in contact] == [(45, (0, 1))]
    assert contact[0].text == "Contact: alice and bob; penalty for alice"


def test_gap_is_the_time_behind_the_leader() -> None:
    lag = 12  # B is where A was 12 frames ago
    a = steady(200, 0.003)
    b = Broadcast(run(car(a), car(a - lag * 0.003)), ["a", "b"], final=False)
    for frame in (60, 100, 199):
        leader, second = b.tower(frame)
        assert leader.gap_s is None
        assert second.gap_s is not None and abs(second.gap_s - lag * DT) <= DT


def test_finishers_lead_in_finishing_order_and_the_champion() -> None:
    fast, slow = steady(200, 1 / 80), steady(200, 1 / 90)
    b = Broadcast(run(car(slow, laps=2), car(fast, laps=2), laps=2), ["slow", "fast"],
                  final=True)
    end = b.tower(199)
    assert [(r.car, r.state) for r in end] == [(1, "finished"), (0, "finished")]
    assert end[1].gap_s == pytest.approx(20 * DT, abs=1e-3)
    assert [(e.frame, e.cars) for e in of_kind(b, "finish")] == [(160, (1,)), (180, (0,))]
    assert [(e.frame, e.text) for e in of_kind(b, "champion")] == [
        (160, "fast is the champion!")]


def test_without_a_finisher_the_leader_is_champion_at_the_last_frame() -> None:
    two = run(car(steady(50, 0.004)), car(steady(50, 0.005)))
    assert [(e.frame, e.cars) for e in of_kind(Broadcast(two, ["a", "b"], True), "champion")
            ] == [(49, (1,))]
    assert of_kind(Broadcast(two, ["a", "b"], final=False), "champion") == []


def test_a_retired_car_drops_to_the_back() -> None:
    flags = [0] * 40 + [FLAG_DONE] * 40
    stopped = steady(80, 0.006)
    stopped[40:] = stopped[39]
    b = Broadcast(run(car(stopped, flags), car(steady(80, 0.004))), ["a", "b"], final=False)
    assert [(r.car, r.state, r.gap_s) for r in b.tower(79)] == [(1, "racing", None),
                                                               (0, "retired", None)]
    assert of_kind(b, "finish") == [] and of_kind(b, "overtake") == []
    assert [(e.frame, e.cars) for e in of_kind(b, "retired")] == [(40, (0,))]


# ----------------------------------------------------------------------------- segments
def test_segments_cover_every_frame_once() -> None:
    flags = [0] * 100
    flags[7] = flags[44] = flags[99] = FLAG_OFF_TRACK
    rec = run(car(steady(100, 0.004), flags), car(steady(100, 0.005, -0.01)))
    b = Broadcast(rec, ["a", "b"], final=True)
    assert b.segments == 7  # 6 of 15 frames and one of 10
    segs = [b.segment(k) for k in range(b.segments)]
    assert [s["first_frame"] for s in segs] == [15 * k for k in range(7)]
    assert [len(s["cars"][0]["x"]) for s in segs] == [SEGMENT_FRAMES] * 6 + [10]
    for i, c in enumerate(rec.cars):
        for key, decimals in (("x", 3), ("y", 3), ("yaw", 3), ("progress", 2)):
            joined = [v for s in segs for v in s["cars"][i][key]]
            np.testing.assert_allclose(joined, getattr(c, key), atol=0.51 * 10.0 ** -decimals)
        assert [v for s in segs for v in s["cars"][i]["laps"]] == c.laps.tolist()
        assert [v for s in segs for v in s["cars"][i]["flags"]] == c.flags.tolist()
    shown = [(e["frame"], e["kind"], tuple(e["cars"])) for s in segs for e in s["events"]]
    assert sorted(shown) == sorted((e.frame, e.kind, e.cars) for e in b.events)
    assert len(b.events) >= 5  # start, three off-tracks, a pass, the champion
    for s in segs:
        last = s["first_frame"] + len(s["cars"][0]["x"]) - 1
        assert all(s["first_frame"] <= e["frame"] <= last for e in s["events"])
        assert s["tower"] == [r._asdict() for r in b.tower(last)]
    for k in (-1, b.segments):
        with pytest.raises(IndexError):
            b.segment(k)


def test_format_time() -> None:
    assert format_time(19.87) == "0:19.870"
    assert format_time(59.9996) == "1:00.000"
    assert format_time(125.4321) == "2:05.432"


def test_names_must_match_the_cars() -> None:
    with pytest.raises(ValueError, match="1 names for 2 cars"):
        Broadcast(run(car(steady(10, 0.01)), car(steady(10, 0.01))), ["a"], final=False)


# ----------------------------------------------------------------------------- real heats
@pytest.fixture(scope="module")
def heats() -> RaceResult:
    """Amateur against rookie, three laps of the oval: two heats (seats swapped) of about a
    minute each, the faster bot lapping the slower."""
    bots = [validate_policy((BOTS_DIR / f"{n}.onnx").read_bytes())
            for n in ("amateur", "rookie")]
    config = RaceConfig(track="oval", laps=3, trials=1, format="head-to-head", seed=3)
    return run_race(config, bots, options=SandboxOptions(action_timeout_s=1.0))


def test_a_real_heat_broadcast_matches_the_result(heats: RaceResult) -> None:
    assert len(heats.telemetry) == 2
    for h, tel in enumerate(heats.telemetry):
        stored = replay.decode(replay.encode(replay.from_telemetry(
            tel, {"race": heats.config.to_dict(), "trial": h + 1})))
        b = Broadcast(stored, ["alice", "bob"], final=True)
        trials = [c.trials[h] for c in heats.cars]
        heat_order = sorted(range(2), key=lambda i: trials[i].position or 0)
        end = b.tower(b.frames - 1)
        assert [r.car for r in end] == heat_order == heats.positions
        finished = {i for i, t in enumerate(trials) if t.status == FINISHED}
        finishes = of_kind(b, "finish")
        assert {e.cars[0] for e in finishes} == finished and len(finishes) == len(finished)
        for e in finishes:
            total = trials[e.cars[0]].total_time_s
            assert total is not None and format_time(total)[:-1] in e.text
        for r in end:
            assert r.best_lap_s == pytest.approx(min(trials[r.car].lap_times_s), abs=0.01)
        assert [e.cars for e in of_kind(b, "champion")] == [(heat_order[0],)]
        head = json.dumps(b.head())
        sizes = [len(json.dumps(b.segment(k))) for k in range(b.segments)]
        assert json.loads(head)["frames"] == stored.frames > 55 * 15
        assert max(sizes) < 20_000
