"""A spectator follows a head-to-head race in a real browser: from the race page's heat
list to the heat's replay, which plays with both cars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from league.models import RaceStatus
from tests.support import replays as sample

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"


@pytest.fixture(scope="module")
def duel_bytes(record_race: Any) -> bytes:
    """Two clean cars over one lap of the oval."""
    return sample.record_replay(record_race, sample.field_drivers(2), laps=1)


def test_race_page_heat_list_to_a_playing_replay(page: Any, live_server: LiveServer,
                                                 make: Any, duel_bytes: bytes,
                                                 screenshot: Any) -> None:
    with live_server.session() as s:
        race = make.race(s, name="Harbour Duel", format="head-to-head", laps=1)
        race.status = RaceStatus.OPEN
        entries = [make.entry(s, race, make.racer(s, n), name=f"{n}-bot") for n in ("kim", "lee")]
        _, job, _ = sample.heat(s, live_server.storage, make, duel_bytes, entries)
        s.commit()
        race_id, job_id = race.id, job.id

    response = page.goto(live_server.url(f"/races/{race_id}"))
    assert response is not None and response.status == 200
    heat = page.locator("ol.heats li.heat").first
    assert "Round 1" in heat.locator(".heat-title").inner_text()
    cars = heat.locator("table.heat-cars tbody tr")
    assert cars.count() == 2
    assert cars.nth(0).locator("td").nth(1).inner_text().strip() == "kim"
    screenshot(page, "race-heats")

    heat.get_by_role("link", name="Replay").click()
    page.wait_for_url(f"**/evaluations/{job_id}/replay")
    page.wait_for_function(LOADED)
    st = page.evaluate("() => window.paddockReplay.state()")
    assert st["cars"] == 2 and st["error"] is None
    assert sorted(page.locator(".replay-car").all_inner_texts()) == ["kim", "lee"]
    assert "Round 1" in page.locator("h1 + .replay-facts").inner_text()
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > 0.5")
    assert page.evaluate("() => window.paddockReplay.state()")["playing"]
    screenshot(page, "heat-replay")
