"""A racer's matchups page in a real browser: the rating chart draws, without any console
error or CSP violation (the page fixture fails the test on those)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from league.models import RaceStatus
from tests.league.test_matchups import _play_round
from tests.web.test_matchups_pages import _duel

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

INKED = """() => {
  const c = document.querySelector('[data-rating-canvas]');
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;
  return inked;
}"""


def test_rating_chart_draws(page: Any, live_server: LiveServer, make: Any,
                            screenshot: Any) -> None:
    with live_server.session() as s:
        race, _ = _duel(s, make)
        s.commit()
        race_id = race.id

    response = page.goto(live_server.url(f"/races/{race_id}/racers/ann"))
    assert response is not None and response.status == 200
    page.wait_for_selector("[data-rating-chart][data-drawn='true']", state="attached")
    assert page.evaluate(INKED) > 1000
    assert "new version" in page.locator("[data-rating-legend]").inner_text()
    screenshot(page, "rating-chart")


def test_profile_draws_a_chart_per_head_to_head_race(page: Any, live_server: LiveServer,
                                                     make: Any, screenshot: Any) -> None:
    with live_server.session() as s:
        first, entries = _duel(s, make)
        rematch = make.race(s, first.league, format="head-to-head", seed=8, name="Rematch")
        rematch.status = RaceStatus.OPEN
        ids = [make.entry(s, rematch, e.racer).id for e in entries[:2]]
        _play_round(s, rematch, make.now + dt.timedelta(hours=1), ids)
        s.commit()

    response = page.goto(live_server.url("/racers/ann"))
    assert response is not None and response.status == 200
    charts = page.locator(".profile-matchups [data-rating-chart]")
    assert charts.count() == 2
    page.wait_for_function("() => [...document.querySelectorAll('[data-rating-chart]')]"
                           ".every((f) => f.dataset.drawn === 'true')")
    inked = page.evaluate("""() => [...document.querySelectorAll('[data-rating-canvas]')]
        .map((c) => c.getContext('2d').getImageData(0, 0, c.width, c.height).data
        .filter((v, i) => i % 4 === 3 && v > 0).length)""")
    assert len(inked) == 2 and min(inked) > 1000, inked
    screenshot(page, "profile")
