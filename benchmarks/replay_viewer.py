"""Benchmark of the replay viewer in headless Chromium: prints one JSON object, progress on stderr.

Run from the repository root with the project's venv (needs /usr/bin/chromium)::

    .venv/bin/python benchmarks/replay_viewer.py            # about 40 seconds
    .venv/bin/python benchmarks/replay_viewer.py --quick    # smoke run, about 15 seconds

The site runs much as in the browser tests: the app on a fresh SQLite file and storage in a
temporary directory, served by Werkzeug (threaded, in its own process) on a free port.
Replays are recorded races of the built-in pure-pursuit drivers on ``royal-park`` (61 m),
encoded by ``evaluator.replay`` exactly as an evaluation's replays are, and stored as a
public race's results.

* ``first_frame_ms``: a new browser context (empty cache) navigates to the viewer of a 3-lap
  replay; the page's own clock (``performance.now()``, zero at navigation start) when the
  first frame is drawn: HTML, scripts, fetching the replay, inflating, decoding, the derived
  data (race positions, incidents) and drawing. For a one-car time trial and an 8-car
  head-to-head heat; ``wall_ms`` is the same seen from this script (``goto`` until loaded).
  And for a comparison: the time trial's replay with another racer's run of the same race as
  its ghost (``?ghost=``): both replays fetched and decoded, the delta and sector table
  derived, the first frame drawn with both cars.
* ``playback``: the 8-car replay played at 1x and at 8x for a few seconds; inside the page,
  every ``requestAnimationFrame`` interval and draw is timed (``window.paddockReplay.stats()``):
  frames per second, mean, 95th percentile and worst frame interval, mean and worst draw.

Headless Chromium draws on the CPU (``--disable-gpu``) at the display's 60 Hz.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evaluator import replay, version
from evaluator.drivers import Driver, PurePursuitDriver, record_drivers
from evaluator.telemetry import Telemetry
from evaluator.track import Track
from evaluator.track_library import load_track
from league.db import Base, make_engine, session_factory
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    PolicyModel,
    Race,
    Result,
    Role,
    User,
)
from league.models import Replay as ReplayRow
from league.rules import leagues, races
from league.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
TRACK = "royal-park"
LAPS = 3
CARS = 8
SEED = 11
PENALTY_S = 5.0
VIEWPORT = {"width": 1280, "height": 900}
TARGETS = {"first_frame_ms": 1000.0, "playback_fps": 55.0, "worst_frame_ms": 50.0}
LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"
# The site in its own process: run as a script, this directory comes first on sys.path, where
# benchmarks/web.py would hide the ``web`` package. Prints its port, then serves.
SERVE = """
import sys
from werkzeug.serving import make_server
from web import create_app
app = create_app({"DATABASE_URL": sys.argv[1], "PADDOCK_STORAGE_DIR": sys.argv[2],
                  "SECRET_KEY": "benchmark", "RATELIMIT_ENABLED": False})
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ replays
def record(track: Track, drivers: list[Driver], laps: int) -> Telemetry:
    """Race ``drivers`` from a grid under race rules until all finish, recording every step."""
    return record_drivers(track, drivers, 15 * 60 * laps, laps=laps, penalty_s=PENALTY_S,
                          seed=SEED)


def replay_bytes(track: Track, drivers: list[Driver]) -> bytes:
    """An encoded replay of ``drivers`` racing ``LAPS`` laps of ``track``."""
    tel = record(track, drivers, LAPS)
    return replay.encode(replay.from_telemetry(tel, meta={"race": {"track": track.name,
                                                                   "laps": LAPS}}))


def field(cars: int) -> list[Driver]:
    """A field of line-followers with different speeds, grip and lines."""
    return [PurePursuitDriver(min(4.0, 2.2 + 0.25 * i), lateral_accel=3.0 + 0.3 * (i % 4),
                              line_offset_m=0.15 * (-1) ** i) for i in range(cars)]


# ------------------------------------------------------------------------------ the site
def seed(factory: Any, storage: Storage, tt: bytes, h2h: bytes,
         ghost: bytes) -> tuple[int, int, int]:
    """A public league with a time trial and a head-to-head race; their replays' ids (the
    time trial's, the heat's, and another racer's run of the time trial: the ghost)."""
    with factory() as s:
        users = [User(name=f"racer{i}", email=f"racer{i}@example.org", password_hash="!")
                 for i in range(CARS + 1)]
        s.add_all(users)
        s.flush()
        organizer = users[0]
        organizer.role = Role.ORGANIZER
        league = leagues.create_league(s, organizer, "bench", "Benchmark league")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        window = (now - dt.timedelta(days=1), now + dt.timedelta(days=7))
        tt_race = races.create_race(s, league, organizer, "Time trial", *window, track=TRACK,
                                      laps=LAPS, trials=1)
        h2h_race = races.create_race(s, league, organizer, "Grand prix", *window,
                                       track=TRACK, laps=LAPS, format="head-to-head")
        entries = [_entry(s, h2h_race, u) for u in users[1:]]
        tt_entry = _entry(s, tt_race, users[1], "time-trial-bot")
        tt_job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=tt_entry.id,
                               status=JobStatus.SUCCEEDED)
        ghost_job = EvaluationJob(kind=JobKind.TIME_TRIAL,
                                  entry_id=_entry(s, tt_race, users[2], "ghost-bot").id,
                                  status=JobStatus.SUCCEEDED)
        heat = Heat(race_id=h2h_race.id, round_no=1, seed=SEED,
                    entry_ids=[e.id for e in entries])
        s.add_all([tt_job, ghost_job, heat])
        s.flush()
        heat_job = EvaluationJob(kind=JobKind.HEAT, heat_id=heat.id, status=JobStatus.SUCCEEDED)
        s.add(heat_job)
        s.flush()
        ids = []
        for job, data in ((tt_job, tt), (heat_job, h2h), (ghost_job, ghost)):
            s.add(Result(job_id=job.id, entry_id=job.entry_id, status="finished",
                         data={"status": "finished", "ranked_trial": 1, "trials": []}))
            row = ReplayRow(job_id=job.id, trial=1, sha256=storage.put("replays", data),
                            size_bytes=len(data))
            s.add(row)
            s.flush()
            ids.append(row.id)
        s.commit()
        return ids[0], ids[1], ids[2]


def _entry(session: Any, race: Race, user: User, name: str = "bot") -> Entry:
    model = PolicyModel(owner_id=user.id, name=name, sha256="0" * 64, size_bytes=1,
                        model_metadata={}, validation={})
    session.add(model)
    session.flush()
    entry = Entry(race_id=race.id, racer_id=user.id, model_id=model.id)
    session.add(entry)
    session.flush()
    return entry


# ------------------------------------------------------------------------------ measuring
def first_frame(browser: Any, url: str, runs: int, ghost: bool = False) -> dict[str, Any]:
    """Navigation to first drawn frame, each time in a new context (nothing cached); with
    ``ghost``, the frame must show the ghost's car too."""
    inside, outside = [], []
    for _ in range(runs):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function(LOADED, polling=5)
        outside.append((time.perf_counter() - started) * 1000)
        stats = page.evaluate("() => window.paddockReplay.stats()")
        if ghost and not page.evaluate("() => window.paddockReplay.state().ghost"):
            raise RuntimeError(f"{url}: the viewer shows no ghost")
        inside.append(stats["firstFrameMs"])
        context.close()
    return {"median_ms": round(statistics.median(inside), 1), "max_ms": round(max(inside), 1),
            "runs_ms": [round(v, 1) for v in inside],
            "wall_median_ms": round(statistics.median(outside), 1),
            "last_run_split_ms": {"script_start": round(stats["scriptMs"], 1),
                                  "fetch_wait": round(stats["fetchMs"], 1),
                                  "decode": round(stats["decodeMs"], 1),
                                  "setup": round(stats["setupMs"], 1),
                                  "first_draw": round(stats["firstDrawMs"], 1)}}


def playback(browser: Any, url: str, speed: str, seconds: float) -> dict[str, Any]:
    """Play from the start at ``speed`` for ``seconds`` and read the page's frame timings."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(LOADED)
    page.locator(".replay-speed").select_option(speed)
    page.get_by_role("button", name="Play").click()
    page.wait_for_timeout(seconds * 1000)
    stats = page.evaluate("() => window.paddockReplay.stats()")
    state = page.evaluate("() => window.paddockReplay.state()")
    context.close()
    run = stats["playback"]
    return {"speed": run["speed"], "seconds": round(run["elapsedMs"] / 1000, 2),
            "frames": run["frames"], "fps": round(run["fps"], 1),
            "mean_frame_ms": round(run["meanFrameMs"], 2),
            "p95_frame_ms": round(run["p95FrameMs"], 2),
            "worst_frame_ms": round(run["worstFrameMs"], 2),
            "mean_draw_ms": round(run["meanDrawMs"], 3),
            "worst_draw_ms": round(run["worstDrawMs"], 3),
            "replay_time_reached_s": round(state["time"], 2), "still_playing": state["playing"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter playback")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    runs, seconds = (3, 2.0) if args.quick else (10, 5.0)
    load_at_start = os.getloadavg()
    track = load_track(TRACK)
    _log(f"recording a {LAPS}-lap time trial and an {CARS}-car race on {TRACK}")
    tt, h2h = replay_bytes(track, field(1)), replay_bytes(track, field(CARS))
    ghost = replay_bytes(track, [PurePursuitDriver(2.8, lateral_accel=3.3)])
    with tempfile.TemporaryDirectory(prefix="paddock-replay-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'site.sqlite3'}"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        storage = Storage(Path(tmp) / "storage")
        tt_id, h2h_id, ghost_id = seed(session_factory(engine), storage, tt, h2h, ghost)
        server = subprocess.Popen([sys.executable, "-c", SERVE, url, str(storage.root)],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline())}"
        driver = sync_playwright().start()
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            _log("warming up")
            first_frame(browser, f"{base}/replays/{tt_id}", 1)
            _log(f"first frame, {runs} runs each")
            first = {"time_trial_3_laps": first_frame(browser, f"{base}/replays/{tt_id}", runs),
                     "head_to_head_8_cars_3_laps": first_frame(
                         browser, f"{base}/replays/{h2h_id}", runs),
                     "comparison_with_a_ghost": first_frame(
                         browser, f"{base}/replays/{tt_id}?ghost={ghost_id}", runs,
                         ghost=True)}
            _log(f"playing 8 cars for {seconds} s at 1x and at 8x")
            play = {f"{s}x": playback(browser, f"{base}/replays/{h2h_id}", s, seconds)
                    for s in ("1", "8")}
            browser_version = browser.version
        finally:
            browser.close()
            driver.stop()
            server.terminate()
            server.wait(timeout=30)
            engine.dispose()
    frames = {"time_trial": replay.decode(tt).frames, "head_to_head": replay.decode(h2h).frames}
    summary = {
        "first_frame_ms_time_trial": first["time_trial_3_laps"]["median_ms"],
        "first_frame_ms_8_cars": first["head_to_head_8_cars_3_laps"]["median_ms"],
        "first_frame_ms_comparison": first["comparison_with_a_ghost"]["median_ms"],
        "fps_8_cars_1x": play["1x"]["fps"], "fps_8_cars_8x": play["8x"]["fps"],
        "worst_frame_ms_8_cars": max(play["1x"]["worst_frame_ms"],
                                     play["8x"]["worst_frame_ms"]),
    }
    met = {
        "first_frame_ms": max(summary["first_frame_ms_time_trial"],
                              summary["first_frame_ms_8_cars"],
                              summary["first_frame_ms_comparison"]) <= TARGETS["first_frame_ms"],
        "playback_fps": min(summary["fps_8_cars_1x"], summary["fps_8_cars_8x"])
        >= TARGETS["playback_fps"],
        "worst_frame_ms": summary["worst_frame_ms_8_cars"] <= TARGETS["worst_frame_ms"],
    }
    out = {"summary": summary, "targets": TARGETS, "targets_met": met,
           "first_frame_ms": first, "playback": play,
           "replays": {"track": TRACK, "laps": LAPS, "frames": frames,
                       "bytes": {"time_trial": len(tt), "head_to_head": len(h2h)}},
           "quick": args.quick, "paddock_version": version.PADDOCK_VERSION,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "chromium": browser_version,
                       "load_average_1_5_15_min_at_start": load_at_start,
                       "load_average_1_5_15_min_at_end": os.getloadavg()}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
