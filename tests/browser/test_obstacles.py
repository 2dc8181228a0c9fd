"""Obstacles in replays: the viewer and the garage's analysis map draw the boxes of a run
where the simulator had them, and a car that runs into one visibly stops against it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from evaluator import _sim, car, replay
from evaluator.drivers import Driver, PurePursuitDriver
from evaluator.telemetry import CarLabel, Telemetry
from evaluator.track_library import load_track
from evaluator.world import OBSTACLE_OFFSET_M, World, spread_obstacles
from league.rules import submissions
from tests.support import replays as sample
from tests.support.dbfixtures import PASSWORD
from tests.support.replay_formats import as_format_2

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"
SEED = 5  # grid jitter and box layout of the recorded race
BOXES = 2
PENALTY_S = 2.0
MAX_STEPS = 900
BOX_FILL = (196, 160, 108)  # replay.js / analysis.js BOX_FILL, evaluator/render.py's cardboard
ASPHALT = (75, 80, 88)  # replay.js ASPHALT
GRID_SLACK_M = 2e-3  # positions are stored on a millimetre grid
HIT_RED = (255, 59, 48)  # replay.js BOX_HIT
PIXEL = """([x, y]) => Array.from(document.querySelector('.replay-canvas').getContext('2d')
    .getImageData(Math.round(x), Math.round(y), 1, 1).data).slice(0, 3)"""


class BoxHunter(Driver):
    """Drives the line through the boxes on one side of the centerline until it has run into
    one, then the centerline, which passes the boxes by."""

    def __init__(self, side_m: float) -> None:
        self.into = PurePursuitDriver(2.0, line_offset_m=side_m, follow=False)
        self.clear = PurePursuitDriver(2.0, follow=False)
        self.hit = False

    def act(self, world: World, i: int) -> tuple[float, float]:
        self.hit = self.hit or bool(world.events[i, _sim.E_OBJECT])
        return (self.clear if self.hit else self.into).act(world, i)


def record_box_race() -> Telemetry:
    """Two cars over a lap of the oval with two boxes laid out as a race trial lays them out
    (``spread_obstacles`` from the seed); one hunts the boxes on the left, one on the right."""
    track = load_track("oval")
    rng = np.random.default_rng(SEED)
    world = World(track, 2, race=True, off_track_penalty=PENALTY_S,
                  collision_penalty=PENALTY_S, laps=1,
                  obstacles=spread_obstacles(track, BOXES, rng))
    world.start_grid([0, 1], rng=rng)
    drivers = [BoxHunter(OBSTACLE_OFFSET_M), BoxHunter(-OBSTACLE_OFFSET_M)]
    tel = Telemetry(track, SEED, [CarLabel("lefty"), CarLabel("righty")], MAX_STEPS)
    tel.capture(world)
    actions = np.zeros((2, 2))
    while world.steps < MAX_STEPS and not (world.done(0) and world.done(1)):
        for i, d in enumerate(drivers):
            actions[i] = d.act(world, i)
        world.step(actions)
        tel.capture(world)
    return tel


@dataclass
class BoxRace:
    """The recorded race, its stored bytes, and the frames at which each car hit a box."""

    tel: Telemetry
    data: bytes
    hits: dict[int, list[int]]  #: car -> frames with a box contact, as the simulator saw it


@pytest.fixture(scope="module")
def box_race() -> BoxRace:
    tel = record_box_race()
    data = replay.encode(replay.from_telemetry(tel, meta={"race": {"track": "oval",
                                                                   "laps": 1}}))
    events = tel.events[: tel.frames]
    hits = {i: np.flatnonzero(events[:, i, _sim.E_OBJECT]).tolist() for i in range(2)}
    assert sum(len(f) for f in hits.values()) >= 1, "nobody ran into a box"
    return BoxRace(tel, data, hits)


def store(live_server: LiveServer, make: Any, *replays: bytes) -> list[int]:
    """Store ``replays`` as the heats of a head-to-head race of two entries; their ids."""
    with live_server.session() as s:
        race = make.race(s, name="Box Sprint", format="head-to-head", laps=1, obstacles=BOXES)
        entries = [make.entry(s, race, make.racer(s, n), name=n) for n in ("lefty", "righty")]
        _, job, rows = sample.heat(s, live_server.storage, make, replays[0], entries, heats=1)
        rows += [sample.add_replay(s, live_server.storage, job, heat, data)
                 for heat, data in enumerate(replays[1:], start=2)]
        s.commit()
        return [row.id for row in rows]


def open_viewer(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200
    page.wait_for_function(LOADED)


def near(rgb: list[int], want: tuple[int, int, int], tol: int = 12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, want, strict=True))


def test_a_collision_with_a_box_is_one_with_the_stored_box(box_race: BoxRace) -> None:
    """Whenever the simulator had a car touch a box, the decoded car reaches the decoded box."""
    r = replay.decode(box_race.data)
    assert r.obstacles is not None and r.obstacles.shape == (BOXES, 3)
    for i, frames in box_race.hits.items():
        c = r.cars[i]
        for f in frames:
            gap = min(math.dist((c.x[f] + d * math.cos(c.yaw[f]),
                                 c.y[f] + d * math.sin(c.yaw[f])), (bx, by))
                      - radius - car.COLLISION_RADIUS_M
                      for bx, by, radius in r.obstacles
                      for d in (car.COLLISION_DISC_REAR_M, car.COLLISION_DISC_FRONT_M))
            assert gap < GRID_SLACK_M, (i, f, gap)


def test_decoder_reads_the_obstacles_like_the_reference(
        page: Any, live_server: LiveServer, make: Any, box_race: BoxRace) -> None:
    """What replay_format.js reads of a stored replay is what evaluator/replay.py reads of the
    copy a spectator is served, frame by frame (no commands), and its boxes exactly."""
    (replay_id,) = store(live_server, make, box_race.data)
    open_viewer(page, live_server.url(f"/replays/{replay_id}"))
    ref = replay.without_commands(replay.decode(box_race.data))
    assert ref.obstacles is not None
    boxes = page.evaluate("() => window.paddockReplay.obstacles()")
    assert [(b["x"], b["y"], b["radius"]) for b in boxes] == [tuple(o) for o in
                                                              ref.obstacles.tolist()]
    columns = page.evaluate("""() => {
        const r = window.paddockReplay;
        const n = r.state().frames;
        return [0, 1].map((car) => Array.from({ length: n }, (_, f) => r.sample(f, car)));
    }""")
    for i, car_ref in enumerate(ref.cars):
        got = columns[i]
        assert len(got) == ref.frames
        for js, py in (("x", "x"), ("y", "y"), ("yaw", "yaw"), ("steering", "steering"),
                       ("speed", "speed"), ("progress", "progress"), ("laps", "laps"),
                       ("flags", "flags"), ("commandSteering", "command_steering"),
                       ("commandSpeed", "command_speed"), ("action", "action")):
            want = getattr(car_ref, py)
            assert [g[js] for g in got] == (
                [None] * ref.frames if want is None else want.tolist()), js
    # the viewer finds the box hits the simulator saw (the flag alone does not say "box")
    seen = {i: sorted({h["frame"] for b in boxes for h in b["hits"] if h["car"] == i})
            for i in range(2)}
    assert seen == box_race.hits


def test_the_viewer_draws_the_boxes(page: Any, live_server: LiveServer, make: Any,
                                    box_race: BoxRace, tmp_path: Any, screenshot: Any) -> None:
    """At each box's place the canvas shows cardboard; the same run stored as format 2 (no
    boxes kept) shows bare asphalt there."""
    with_boxes, without = store(live_server, make, box_race.data, as_format_2(box_race.data))
    open_viewer(page, live_server.url(f"/replays/{with_boxes}#t=0"))
    boxes = page.evaluate("() => window.paddockReplay.obstacles()")
    scale = page.evaluate("() => window.paddockReplay.state().camera.scale")
    # a point inside each box, off the tape drawn across its middle
    spots = [(b["px"] + b["radius"] * scale / 2, b["py"] + b["radius"] * scale / 2)
             for b in boxes]
    drawn = [page.evaluate(PIXEL, list(p)) for p in spots]
    screenshot(page, "boxes")
    open_viewer(page, live_server.url(f"/replays/{without}#t=0"))
    assert page.evaluate("() => window.paddockReplay.obstacles()") is None
    assert page.evaluate("() => window.paddockReplay.state().camera.scale") == scale
    bare = [page.evaluate(PIXEL, list(p)) for p in spots]
    for got, plain in zip(drawn, bare, strict=True):
        assert near(got, BOX_FILL) and near(plain, ASPHALT), (got, plain)


def test_a_car_stops_against_the_box_it_hit(page: Any, live_server: LiveServer, make: Any,
                                            box_race: BoxRace, screenshot: Any) -> None:
    """"Next incident" names the box, and at the moment of the hit the followed car sits
    against a drawn box whose outline flashes."""
    (replay_id,) = store(live_server, make, box_race.data)
    open_viewer(page, live_server.url(f"/replays/{replay_id}"))
    car_index, frames = next((i, f) for i, f in sorted(box_race.hits.items()) if f)
    page.locator(".replay-follow").select_option(str(car_index))
    for _ in range(10):
        page.get_by_role("button", name="Next incident").click()
        last = page.evaluate("() => window.paddockReplay.state().lastIncident")
        if last and last["kind"] == "collision" and last["car"] == car_index:
            break
    assert last["frame"] == frames[0]
    note = page.locator(".replay-note").inner_text()
    assert note.startswith("Collision with a box: " + ("lefty", "righty")[car_index]), note
    dt = 1.0 / car.CONTROL_HZ
    page.evaluate(f"() => {{ location.hash = '#t={(frames[0] + 3) * dt:.2f}'; }}")
    page.wait_for_function(f"() => window.paddockReplay.state().frame === {frames[0] + 3}")
    boxes = page.evaluate("() => window.paddockReplay.obstacles()")
    hit = next(b for b in boxes if any(h["frame"] == frames[0] for h in b["hits"]))
    view = page.evaluate("() => window.paddockReplay.state().camera")
    width, height = page.evaluate("() => window.paddockReplay.stats().canvas")
    me = page.evaluate(f"() => window.paddockReplay.sample({frames[0] + 3}, {car_index})")
    at = (width / 2 + (me["x"] - view["cx"]) * view["scale"],
          height / 2 - (me["y"] - view["cy"]) * view["scale"])
    half = hit["radius"] * view["scale"]
    # the middle of the box's side farthest from the car: its outline, not under the car
    edges = [(hit["px"] + dx * half, hit["py"] + dy * half)
             for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    far = max(edges, key=lambda e: math.dist(e, at))
    assert math.dist((hit["px"], hit["py"]), at) < 0.5 * view["scale"]  # the car is at the box
    assert near(page.evaluate(PIXEL, list(far)), HIT_RED, tol=40)
    screenshot(page, "hit")


def test_the_analysis_map_draws_each_trials_boxes(live_server: LiveServer, page: Any,
                                                  make: Any, screenshot: Any) -> None:
    """A time trial with boxes, evaluated by a worker: the entry page's racing-line map draws
    them, and the analysis data places them where the trial's replay has them."""
    with live_server.session() as s:
        race = make.race(s, trials=2, laps=1, name="Box trial", obstacles=BOXES)
        racer = make.user(s, "bea")
        entry = submissions.submit_entry(s, live_server.storage, race, racer, make.policy(),
                                         now=make.now)
        s.commit()
        entry_id, job_id = entry.id, entry.jobs[0].id
    assert live_server.run_queued_jobs() == [job_id]
    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill("bea")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/garage/")
    page.goto(live_server.url(f"/garage/entries/{entry_id}"))
    page.wait_for_function("() => !document.querySelector('[data-analysis-controls]').hidden")
    data = page.evaluate(f"""() => fetch('/garage/evaluations/{job_id}/analysis.json')
        .then((r) => r.json())""")
    assert [len(t["obstacles"]) for t in data["trials"]] == [BOXES, BOXES]
    assert data["trials"][0]["obstacles"] != data["trials"][1]["obstacles"]
    cardboard = page.evaluate("""([r, g, b]) => {
        const c = document.querySelector('[data-chart="line"]');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) {
            if (px[i] === r && px[i + 1] === g && px[i + 2] === b) n++;
        }
        return n;
    }""", list(BOX_FILL))
    assert cardboard > 2 * 20  # two boxes and the legend's, each many pixels
    page.locator('[data-chart="line"]').scroll_into_view_if_needed()
    screenshot(page, "analysis")
