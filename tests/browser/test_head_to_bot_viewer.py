"""A head-to-bot race in the replay viewer: a worker races an uploaded model against two bot
cars, and the viewer draws the bots in grey, names them and lists them after the entrant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from league.rules import submissions

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"
BOT_GREY = "rgb(176, 180, 186)"  # replay.js BOT_COLOR


def test_the_viewer_names_and_draws_the_bots(page: Any, live_server: LiveServer, make: Any,
                                             screenshot: Any) -> None:
    with live_server.session() as s:
        race = make.race(s, format="head-to-bot", laps=1, trials=1, name="Bot Sprint",
                         bots=[{"speed": 1.2}, {"speed": 2.0}])
        entry = submissions.submit_entry(s, live_server.storage, race, make.racer(s, "ada"),
                                         make.policy(), now=make.now)
        job_id = entry.jobs[0].id
        s.commit()
    assert live_server.run_queued_jobs() == [job_id]
    response = page.goto(live_server.url(f"/evaluations/{job_id}/replay"))
    assert response is not None and response.status == 200
    page.wait_for_function(LOADED)
    assert page.evaluate("() => window.paddockReplay.state().cars") == 3
    page.keyboard.press("Space")
    page.wait_for_function("() => window.paddockReplay.state().time > 1.0")
    rows = page.locator(".replay-standings tbody tr")
    texts = rows.all_inner_texts()
    assert len(texts) == 3
    assert "ada" in texts[0]  # the entrant first: the bots are not in the race
    assert "Bot 1 (1.2 m/s)" in texts[1] and "Bot 2 (2 m/s)" in texts[2]
    assert all("built-in bot" in t for t in texts[1:])
    swatches = page.locator(".replay-standings tbody tr .replay-swatch")
    colours = [swatches.nth(k).evaluate("e => getComputedStyle(e).backgroundColor")
               for k in range(3)]
    assert colours[0] != BOT_GREY and colours[1:] == [BOT_GREY, BOT_GREY]
    screenshot(page, "bots")
