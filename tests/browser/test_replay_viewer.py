"""A spectator without an account watches replays in a real browser."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from evaluator import replay
from league.rules import submissions
from tests.support import replays as sample
from tests.support.dbfixtures import PASSWORD
from tests.support.replay_formats import as_format_1, as_format_2

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"


@pytest.fixture(scope="module")
def heat_bytes(record_race: Any) -> bytes:
    """Three cars over two laps of the oval: collisions, off-tracks and overtakes."""
    return sample.record_replay(record_race, sample.incident_drivers(record_race), laps=2)


@dataclass
class Seeded:
    """A public head-to-head race with one raced heat, and a private league's replay."""

    job_id: int
    replay_id: int
    private_replay_id: int
    names: list[str]


@pytest.fixture
def seeded(live_server: LiveServer, make: Any, heat_bytes: bytes) -> Seeded:
    with live_server.session() as s:
        race = make.race(s, name="Harbour Sprint", format="head-to-head", laps=2)
        names = ["kim", "lee", "max"]
        entries = [make.entry(s, race, make.racer(s, n), name=f"{n}-bot") for n in names]
        _, job, rows = sample.heat(s, live_server.storage, make, heat_bytes, entries)
        secret = make.league(s, slug="secret", visibility="private")
        hidden = sample.time_trial(s, live_server.storage, make, heat_bytes,
                                   race=make.race(s, secret, name="Hidden"), trials=1, ranked=1)
        s.commit()
        return Seeded(job.id, rows[0].id, hidden.replays[0].id, names)


def state(page: Any) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate("() => window.paddockReplay.state()")
    return value


def open_viewer(page: Any, url: str) -> dict[str, Any]:
    response = page.goto(url)
    assert response is not None and response.status == 200
    page.wait_for_function(LOADED)
    return state(page)


def log_in(page: Any, live_server: LiveServer, name: str) -> None:
    """Sign ``page`` in as ``name``: a stored replay is served as it is to its own racer (a
    spectator gets a copy without the commands, see tests/browser/test_replay_telemetry.py)."""
    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/garage/")


def hash_time(page: Any) -> float:
    match = re.search(r"#t=([\d.]+)$", page.url)
    assert match, page.url
    return float(match.group(1))


def test_spectator_watches_a_public_replay(page: Any, live_server: LiveServer,
                                           seeded: Seeded, screenshot: Any) -> None:
    fetched: list[str] = []
    warnings: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if r.url.endswith(".bin") else None)
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    st = open_viewer(page, live_server.url(f"/evaluations/{seeded.job_id}/replay"))
    # The preloaded replay is the one the viewer uses: downloaded once, no unused preload.
    assert len(fetched) == 1 and not [w for w in warnings if "preload" in w], warnings
    assert st["cars"] == 3 and st["time"] == 0 and not st["playing"] and st["error"] is None
    assert page.locator(".replay-message").is_hidden()
    rows = page.locator(".replay-standings tbody tr")
    assert rows.count() == 3
    assert sorted(page.locator(".replay-car").all_inner_texts()) == seeded.names
    assert "1/2" in rows.first.inner_text()
    screenshot(page, "loaded")

    # Play: time runs; pause: it stops, and the address keeps the moment.
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > 0.5")
    assert state(page)["playing"]
    page.get_by_role("button", name="Pause").click()
    paused = state(page)
    assert not paused["playing"]
    page.wait_for_timeout(250)
    assert state(page)["time"] == paused["time"]
    page.wait_for_function("() => location.hash.startsWith('#t=')")
    assert hash_time(page) == pytest.approx(paused["time"], abs=0.006)

    # Scrub: a click in the middle of the slider moves time and the cars.
    before = [page.evaluate(f"() => window.paddockReplay.sample({paused['frame']}, {i})")
              for i in range(3)]
    slider = page.locator(".replay-slider")
    box = slider.bounding_box()
    assert box is not None
    slider.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    scrubbed = state(page)
    assert scrubbed["time"] == pytest.approx(scrubbed["duration"] / 2,
                                             abs=scrubbed["duration"] * 0.05)
    after = [page.evaluate(f"() => window.paddockReplay.sample({scrubbed['frame']}, {i})")
             for i in range(3)]
    assert all(lap_pct(b) - lap_pct(a) > 20 and (a["x"], a["y"]) != (b["x"], b["y"])
               for a, b in zip(before, after, strict=True))
    assert page.locator(".replay-time").inner_text().startswith(clock(scrubbed["time"]))
    page.wait_for_function(f"() => location.hash === '#t={scrubbed['time']:.2f}'")
    screenshot(page, "scrubbed")

    # Speed: at 4x, simulated time runs about four times faster than the clock.
    page.locator(".replay-speed").select_option("4")
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > "
                           f"{scrubbed['time'] + 0.1}")
    t0 = page.evaluate("() => [performance.now(), window.paddockReplay.state().time]")
    page.wait_for_timeout(500)
    t1 = page.evaluate("() => [performance.now(), window.paddockReplay.state().time]")
    rate = (t1[1] - t0[1]) / ((t1[0] - t0[0]) / 1000)
    assert state(page)["speed"] == 4 and 2.5 < rate < 4.5
    page.keyboard.press("Space")
    assert not state(page)["playing"]

    # Next incident: jumps to a moment just before an off-track, collision or overtake.
    page.keyboard.press("Home")
    page.get_by_role("button", name="Next incident").click()
    first = state(page)
    incident = first["lastIncident"]
    assert incident and incident["kind"] in ("off_track", "collision", "overtake")
    assert first["time"] == pytest.approx(max(0.0, incident["time"] - 1.0), abs=1e-6)
    labels = {"off_track": "Off track", "collision": "Collision", "overtake": "Overtake"}
    note = page.locator(".replay-note").inner_text()
    assert note.startswith(labels[incident["kind"]]) and seeded.names[incident["car"]] in note
    page.keyboard.press("n")
    second = state(page)["lastIncident"]
    assert second["time"] > incident["time"]
    kinds = {x["kind"] for x in page.evaluate("() => window.paddockReplay.incidents()")}
    assert kinds == {"off_track", "collision", "overtake"}

    # Follow a car: the camera centres on it, zoomed in; the address restores the moment.
    whole = state(page)["camera"]["scale"]
    page.locator(".replay-follow").select_option(label="Follow lee")
    followed = state(page)
    assert followed["follow"] == 1 and followed["camera"]["scale"] >= 2.5 * whole
    car = page.evaluate(f"() => window.paddockReplay.sample({followed['frame']}, 1)")
    assert math.dist((followed["camera"]["cx"], followed["camera"]["cy"]),
                     (car["x"], car["y"])) < 0.3
    assert "lee" in page.locator(".replay-standings tr.following").inner_text()
    page.keyboard.press("ArrowRight")
    assert state(page)["frame"] == followed["frame"] + 1
    screenshot(page, "follow")
    moment = state(page)["time"]
    page.wait_for_function(f"() => location.hash === '#t={moment:.2f}'")
    page.reload()
    page.wait_for_function(LOADED)
    assert state(page)["time"] == pytest.approx(moment, abs=0.006)
    page.goto(live_server.url(f"/replays/{seeded.replay_id}#t=7.5"))
    page.wait_for_function(LOADED)
    assert state(page)["time"] == pytest.approx(7.5)


def test_a_real_evaluation_plays(page: Any, live_server: LiveServer, make: Any) -> None:
    """An uploaded model raced by a worker: its ranked trial opens and plays."""
    with live_server.session() as s:
        race = make.race(s, trials=2, laps=1, name="Evening trial")
        entry = submissions.submit_entry(s, live_server.storage, race, make.racer(s, "ada"),
                                         make.policy(), now=make.now)
        job_id = entry.jobs[0].id
        s.commit()
    assert live_server.run_queued_jobs() == [job_id]
    st = open_viewer(page, live_server.url(f"/evaluations/{job_id}/replay"))
    assert st["cars"] == 1 and st["duration"] > 5
    assert "Evening trial" in page.locator("h1").inner_text()
    page.keyboard.press("Space")
    page.wait_for_function("() => window.paddockReplay.state().time > 0.3")
    assert "1/1" in page.locator(".replay-standings tbody tr").inner_text()


def test_private_league_replay_is_404(page: Any, live_server: LiveServer, seeded: Seeded,
                                      issues: Any, screenshot: Any) -> None:
    issues.allow(r"status of 404")
    for path in (f"/replays/{seeded.private_replay_id}",
                 f"/replays/{seeded.private_replay_id}.bin"):
        response = page.goto(live_server.url(path))
        assert response is not None and response.status == 404
        assert "Hidden" not in page.content()
    assert page.locator("#replay-viewer").count() == 0
    screenshot(page, "private")


def test_decoder_matches_the_reference(page: Any, live_server: LiveServer, seeded: Seeded,
                                       heat_bytes: bytes) -> None:
    """What replay.js reads is what evaluator/replay.py reads, frame by frame (a spectator's
    copy: the states, no commands)."""
    open_viewer(page, live_server.url(f"/replays/{seeded.replay_id}"))
    ref = replay.without_commands(replay.decode(heat_bytes))
    frames = sorted({0, 1, 2, ref.frames // 3, ref.frames // 2, ref.frames - 1})
    for i, car in enumerate(ref.cars):
        for f in frames:
            got = page.evaluate(f"() => window.paddockReplay.sample({f}, {i})")
            for col in ("x", "y", "yaw", "steering", "speed", "progress"):
                assert got[col] == pytest.approx(float(getattr(car, col)[f]), abs=1e-9), col
            assert (got["laps"], got["flags"]) == (int(car.laps[f]), int(car.flags[f]))
            assert car.command_steering is None and car.command_speed is None
            assert (got["commandSteering"], got["commandSpeed"], got["action"]) == (None,) * 3
    ours = [(x["frame"], x["car"], x["kind"])
            for x in page.evaluate("() => window.paddockReplay.incidents()")
            if x["kind"] != "overtake"]
    theirs = [tuple(x) for x in replay.incidents(ref) if x.kind in ("off_track", "collision")]
    assert ours == theirs and len(ours) > 3


def test_a_replay_kept_before_format_2_still_plays(page: Any, live_server: LiveServer,
                                                   make: Any, heat_bytes: bytes) -> None:
    """Format-1 replays (no command columns) stored by earlier releases go on playing."""
    old = as_format_1(heat_bytes)
    ref = replay.decode(old)
    with live_server.session() as s:
        tt = sample.time_trial(s, live_server.storage, make, old, trials=1, ranked=1)
        s.commit()
    view = open_viewer(page, live_server.url(f"/replays/{tt.replays[0].id}"))
    assert view["loaded"] and ref.format_version == 1
    last = ref.frames - 1
    for i, car in enumerate(ref.cars):
        got = page.evaluate(f"() => window.paddockReplay.sample({last}, {i})")
        assert got["x"] == pytest.approx(float(car.x[last]), abs=1e-9)
        assert (got["commandSteering"], got["commandSpeed"], got["action"]) == (None,) * 3
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > 0.5")


def test_a_replay_kept_before_format_3_still_plays(page: Any, live_server: LiveServer,
                                                   make: Any, heat_bytes: bytes) -> None:
    """Format-2 replays (no obstacles kept) stored by earlier releases go on playing."""
    old = as_format_2(heat_bytes)
    ref = replay.decode(old)
    with live_server.session() as s:
        tt = sample.time_trial(s, live_server.storage, make, old, trials=1, ranked=1)
        s.commit()
    log_in(page, live_server, "ada")  # its racer is served the stored format-2 file
    view = open_viewer(page, live_server.url(f"/replays/{tt.replays[0].id}"))
    assert view["loaded"] and ref.format_version == 2 and ref.obstacles is None
    assert page.evaluate("() => window.paddockReplay.obstacles()") is None
    last = ref.frames - 1
    for i, car in enumerate(ref.cars):
        got = page.evaluate(f"() => window.paddockReplay.sample({last}, {i})")
        assert car.command_speed is not None and car.action is not None
        assert (got["x"], got["commandSpeed"], got["action"]) == (
            float(car.x[last]), float(car.command_speed[last]), int(car.action[last]))
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > 0.5")


def corrupt_versions(good: bytes) -> dict[str, tuple[bytes, str]]:
    """Broken replay files and the message the viewer must give for each."""
    raw = zlib.decompress(good, replay.GZIP_WBITS)
    regzip = zlib.compressobj(9, zlib.DEFLATED, replay.GZIP_WBITS)
    version5 = regzip.compress(raw[:8] + (5).to_bytes(4, "little") + raw[12:]) + regzip.flush()
    regzip = zlib.compressobj(9, zlib.DEFLATED, replay.GZIP_WBITS)
    short = regzip.compress(raw[:-10]) + regzip.flush()
    return {
        "not-gzip": (b"PK\x03\x04 this is a zip file", "not gzip-compressed"),
        "truncated": (good[: len(good) // 2], "gzip stream is damaged or truncated"),
        "version": (version5, "format version 5 is not supported"),
        "short": (short, "truncated replay"),
    }


def test_a_broken_replay_says_why(page: Any, live_server: LiveServer, make: Any,
                                  heat_bytes: bytes, screenshot: Any) -> None:
    broken = corrupt_versions(heat_bytes)
    with live_server.session() as s:
        tt = sample.time_trial(s, live_server.storage, make, [d for d, _ in broken.values()],
                               trials=len(broken), ranked=None)
        ids = [r.id for r in tt.replays]
        s.commit()
    log_in(page, live_server, "ada")  # the server rewrites no file it cannot read for others
    for (name, (_, why)), replay_id in zip(broken.items(), ids, strict=True):
        page.goto(live_server.url(f"/replays/{replay_id}"))
        page.wait_for_function("() => window.paddockReplay.state().error")
        message = page.locator(".replay-message")
        assert why in message.inner_text() and message.inner_text().startswith(
            "This replay cannot be shown:"), name
        assert not state(page)["loaded"]
        if name == "version":
            screenshot(page, name)


def test_without_javascript_the_page_offers_the_download(new_page: Any,
                                                         live_server: LiveServer,
                                                         seeded: Seeded,
                                                         screenshot: Any) -> None:
    page = new_page(java_script_enabled=False)
    page.goto(live_server.url(f"/replays/{seeded.replay_id}"))
    assert page.locator("#replay-viewer").is_hidden()
    # Playwright's visibility and text helpers skip <noscript> content, so look at the box.
    notice = page.locator(".replay-nojs")
    assert "The replay viewer needs JavaScript" in notice.text_content()
    box = notice.bounding_box()
    assert box is not None and box["height"] > 10
    link = notice.locator("a")
    assert link.get_attribute("href") == f"/replays/{seeded.replay_id}/download"
    screenshot(page, "nojs")


def test_eight_cars_on_a_sharp_screen(new_page: Any, live_server: LiveServer, make: Any,
                                      record_race: Any, screenshot: Any) -> None:
    data = sample.record_replay(record_race, sample.field_drivers(8), track="royal-park",
                                laps=1)
    with live_server.session() as s:
        race = make.race(s, name="Grand Prix", format="head-to-head", track="royal-park")
        entries = [make.entry(s, race, make.racer(s, f"racer{i}")) for i in range(8)]
        _, job, _ = sample.heat(s, live_server.storage, make, data, entries, heats=1)
        s.commit()
    page = new_page(device_scale_factor=2)
    open_viewer(page, live_server.url(f"/evaluations/{job.id}/replay#t=9"))
    stats = page.evaluate("() => window.paddockReplay.stats()")
    box = page.locator(".replay-canvas").bounding_box()
    assert box is not None and stats["devicePixelRatio"] == 2
    assert stats["canvas"] == [round(box["width"] * 2), round(box["height"] * 2)]
    assert page.locator(".replay-standings tbody tr").count() == 8
    page.locator(".replay-speed").select_option("8")
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > 20")
    page.keyboard.press("Space")
    screenshot(page, "eight-cars")
    playback = page.evaluate("() => window.paddockReplay.stats()")["playback"]
    assert playback["speed"] == 8 and playback["frames"] > 10


def lap_pct(sample: dict[str, Any]) -> float:
    """How far a car has raced, in percent of a lap."""
    return float(sample["laps"] * 100 + sample["progress"])


def clock(seconds: float) -> str:
    """The viewer's m:ss.ss."""
    cs = round(seconds * 100)
    return f"{cs // 6000}:{(cs % 6000) / 100:05.2f}"


def test_viewer_benchmark_prints_json(chromium: Any) -> None:
    """benchmarks/replay_viewer.py --quick runs and reports what it promises."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "replay_viewer.py"),
                           "--quick"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["first_frame_ms"]["time_trial_3_laps"]["median_ms"] > 0
    assert out["replays"]["frames"]["head_to_head"] > 1000
    for speed in ("1x", "8x"):
        assert out["playback"][speed]["frames"] > 10 and out["playback"][speed]["fps"] > 0
    assert set(out["targets_met"]) == set(out["targets"])
