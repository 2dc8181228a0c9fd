"""A racer watches their run against the leader's: two cars, a live delta, sector times."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import league.models as m
from evaluator import replay
from evaluator.drivers import PurePursuitDriver
from tests.support import replays as sample

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"
LAPS = 2
SECTORS = 10


@pytest.fixture(scope="module")
def runs(record_race: Any) -> dict[str, bytes]:
    return {"fast": sample.record_replay(record_race, [PurePursuitDriver(2.6)], laps=LAPS),
            "slow": sample.record_replay(record_race, [PurePursuitDriver(2.0)], laps=LAPS)}


def _run(s: Any, storage: Any, make: Any, race: m.Race, racer: m.User, data: bytes,
         time_s: float) -> m.EvaluationJob:
    entry = make.entry(s, race, racer, name="quick")
    result = make.result(s, entry, time_s=time_s, laps=LAPS,
                         data={"ranked_trial": 1, "trials": sample.trial_blocks(1, time_s - 1)})
    job = s.get_one(m.EvaluationJob, result.job_id)
    sample.add_replay(s, storage, job, 1, data)
    return job


@pytest.fixture
def race_id(live_server: LiveServer, make: Any, runs: dict[str, bytes]) -> int:
    with live_server.session() as s:
        race = make.race(s, name="Harbour Sprint", laps=LAPS)
        _run(s, live_server.storage, make, race, make.user(s, "ada"), runs["fast"], 40.0)
        _run(s, live_server.storage, make, race, make.user(s, "bob"), runs["slow"], 52.0)
        s.commit()
        return race.id


def sector_times(data: bytes) -> list[float]:
    """The ten sector times of the run's car over its laps, computed here from the decoded
    replay (the rule docs/REPLAY.md states), to check what the viewer shows."""
    r = replay.decode(data)
    car = r.cars[0]
    parked = (car.flags & 64) != 0
    reach = np.maximum.accumulate(np.where(parked, car.laps, car.laps + car.progress / 100.0))
    frames = np.arange(r.frames) * r.dt

    def first_reached(d: float) -> float:
        k = int(np.argmax(reach >= d))
        assert reach[k] >= d
        if k == 0:
            return 0.0
        return float(frames[k - 1] + (d - reach[k - 1]) / (reach[k] - reach[k - 1]) * r.dt)

    return [sum(first_reached(lap + (k + 1) / SECTORS) - first_reached(lap + k / SECTORS)
                for lap in range(LAPS)) for k in range(SECTORS)]


def compare(page: Any) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate("() => window.paddockReplay.compare()")
    return value


def go_to(page: Any, t: float) -> dict[str, Any]:
    page.evaluate(f"() => {{ location.hash = '#t={t:.2f}'; }}")
    page.wait_for_function(f"() => Math.abs(window.paddockReplay.state().time - {t}) < 0.01")
    page.wait_for_timeout(50)  # one animation frame: the delta and HUD follow
    return compare(page)


def pixel(page: Any, x: float, y: float) -> list[int]:
    found: list[int] = page.evaluate(
        f"""() => Array.from(document.querySelector('.replay-canvas').getContext('2d')
            .getImageData({round(x)}, {round(y)}, 1, 1).data)""")
    return found


def test_a_run_against_the_leader(page: Any, live_server: LiveServer, race_id: int,
                                  runs: dict[str, bytes], screenshot: Any) -> None:
    page.goto(live_server.url(f"/races/{race_id}"))
    page.get_by_role("link", name="vs leader").click()
    page.wait_for_function(LOADED)
    assert re.search(r"/evaluations/\d+/replay\?vs=\d+$", page.url)
    st = page.evaluate("() => window.paddockReplay.state()")
    assert st["ghost"] and st["cars"] == 1 and st["error"] is None
    # The timeline runs to the slower of the two runs.
    slow, fast = replay.decode(runs["slow"]), replay.decode(runs["fast"])
    assert st["duration"] == pytest.approx(max(slow.duration, fast.duration), abs=0.01)

    start = compare(page)
    assert start["delta"] == 0 and start["ghost"]["name"] == "ada"
    # Ten seconds in, the leader's ghost is ahead: two cars apart on the canvas, each drawn
    # where it is (this run's car red, the ghost translucent white).
    early = go_to(page, 10.0)
    run_px, ghost_px = early["run"], early["ghostCar"]
    assert np.hypot(run_px["px"] - ghost_px["px"], run_px["py"] - ghost_px["py"]) > 20
    r, g, b, _ = pixel(page, run_px["px"], run_px["py"])
    assert r > 150 and g < 120 and b < 120, (r, g, b)
    r, g, b, _ = pixel(page, ghost_px["px"], ghost_px["py"])
    assert min(r, g, b) > 130, (r, g, b)
    screenshot(page, "ghost")
    # The delta grows while the slower car loses time, and the page shows it.
    later = go_to(page, 20.0)
    assert 0 < early["delta"] < later["delta"]
    assert early["text"] != later["text"] and later["text"].startswith("+")
    shown = page.locator(".replay-delta-value").inner_text()
    assert shown == f"+{later['delta']:.2f} s"
    # Playing changes the delta as it goes.
    page.get_by_role("button", name="Play").click()
    page.wait_for_function(f"() => window.paddockReplay.compare().delta > {later['delta']}")
    page.get_by_role("button", name="Pause").click()

    # The sector table: ten sectors and the total, the faster time marked in each row, the
    # times those of the replays.
    rows = page.locator(".replay-sectors tbody tr")
    assert rows.count() == SECTORS + 1
    sectors = compare(page)["sectors"]
    assert [s["run"] for s in sectors] == pytest.approx(sector_times(runs["slow"]), abs=0.01)
    assert [s["ghost"] for s in sectors] == pytest.approx(sector_times(runs["fast"]), abs=0.01)
    for k in range(SECTORS + 1):
        cells = rows.nth(k).locator("td")
        marked = [i for i in range(2) if cells.nth(i).inner_text().startswith("▲")]
        assert marked == [1], rows.nth(k).inner_text()  # the leader's ghost is faster

    # The address carries both runs and the moment: opening it again shows the same.
    page.wait_for_function("() => /#t=\\d/.test(location.hash)")
    url = page.url
    moment = float(re.search(r"#t=([\d.]+)", url).group(1))  # type: ignore[union-attr]
    again = page.context.new_page()
    again.goto(url)
    again.wait_for_function(LOADED)
    st = again.evaluate("() => window.paddockReplay.state()")
    assert st["ghost"] and st["time"] == pytest.approx(moment, abs=0.01)
    again.close()


def test_choosing_a_ghost_on_the_viewer(page: Any, live_server: LiveServer,
                                        race_id: int) -> None:
    page.goto(live_server.url(f"/races/{race_id}"))
    page.locator("table.leaderboard tbody tr").nth(1).get_by_role("link", name="Replay").click()
    page.wait_for_function(LOADED)
    assert not page.evaluate("() => window.paddockReplay.state().ghost")
    page.evaluate("() => { location.hash = '#t=12.00'; }")
    page.wait_for_function("() => window.paddockReplay.state().time === 12")
    page.get_by_label("Compare with").select_option(label="1. ada · quick v1 · 0:40.000")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_function(LOADED)
    assert re.search(r"/replays/\d+\?ghost=\d+&t=12\.00", page.url)
    st = page.evaluate("() => window.paddockReplay.state()")
    assert st["ghost"] and st["time"] == 12
    assert compare(page)["delta"] > 0
