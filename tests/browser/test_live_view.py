"""Live events in a real browser: every spectator of a heat on air sees the same race time,
whatever their computer's clock says; a late one lands at the live moment and may scrub back;
the overlays are transparent; the live view fits a phone; the event page counts down to the
start and then offers the live view.

The events are stored as the scheduler leaves them (league.rules.live, whose rules
tests/league/test_live_events.py covers): a live event whose slot, a real recorded heat of
two cars, goes on air at a known wall-clock moment, so the test knows the race time every
viewer should see.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session

from league.models import Entry, LiveEvent, LiveEventKind, Race, utcnow
from league.read import live as live_read
from league.rules import live
from tests.browser.test_a11y import AXE, FAILING_IMPACTS, RUN_AXE
from tests.browser.test_phones import PHONE, WIDTH
from tests.support import replays as sample
from tests.support.live import knockout_race, put_on_air

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LAPS = 4  # about 40 s of race: room for every check while the heat is on air
READY = "() => document.querySelector('canvas.live-canvas')?.dataset.ready === '1'"
SKEW_S = 3600  # the late viewer's computer clock is an hour slow
# A page's wall clock SKEW_S slow (its Date and performance.timeOrigin; intervals run true).
SLOW_CLOCK = """(() => {
  const skew = %d, realNow = Date.now.bind(Date);
  Date.now = () => realNow() - skew;
  Object.defineProperty(performance, "timeOrigin", { value: performance.timeOrigin - skew });
})();"""
COUNTDOWN_S = 10  # the event page is opened this long before the start
# A page's performance clock that jumps ahead by window.clockJump milliseconds when a test
# sets it, as a computer's does when it wakes from sleep.
JUMPING_CLOCK = """(() => {
  const realNow = performance.now.bind(performance);
  window.clockJump = 0;
  performance.now = () => realNow() + window.clockJump;
})();"""
SYNC_S = 1.0  # two viewers' race times may differ by less than this
TICKER_TIMES = """() => [...document.querySelectorAll('.live-ticker .live-ticker-time')]
    .map((el) => { const [m, s] = el.textContent.split(':'); return 60 * +m + +s; })"""


@pytest.fixture(scope="module")
def duel_bytes(record_race: Any) -> bytes:
    """Two clean cars over four laps of the oval."""
    return sample.record_replay(record_race, sample.field_drivers(2), laps=LAPS)


def finals(s: Session, make: Any, starts_in_s: float = 0.0) -> tuple[Race, list[Entry],
                                                                    LiveEvent]:
    """A knockout race of four rated racers and its finals event, scheduled through the
    rules to start ``starts_in_s`` seconds from now."""
    race, entries = knockout_race(s, make)
    now = utcnow()
    plan = live.Plan("Harbour finals", LiveEventKind.FINALS,
                     now + dt.timedelta(seconds=starts_in_s))
    return race, entries, live.schedule(s, race, make.organizer(s, race.league), plan, now)


def live_event(live_server: LiveServer, make: Any, data: bytes, *,
               on_air_in_s: float) -> tuple[int, float, list[str]]:
    """A live finals event whose first semifinal (one heat: ``data``) goes on air
    ``on_air_in_s`` seconds from now (negative: it has been on air that long), run by the
    scheduler's job: its id, that moment (epoch seconds) and the heat's two racers."""
    with live_server.session() as s:
        event = put_on_air(s, make, live_server.storage, [data], on_air_in_s=on_air_in_s,
                           title="Harbour finals")
        cars = live_read.event_index(s, event, utcnow())["slots"][0]["cars"]
        return event.id, live_read.epoch(event.slots[0].on_air_at) or 0.0, \
            [c["racer"] for c in cars]


def race_time(page: Any) -> tuple[float, float]:
    """The page's shown race time and the moment it was read (this machine's clock, which
    is the server's)."""
    before = time.time()
    shown = float(page.evaluate("() => document.body.dataset.raceTime"))
    return shown, (before + time.time()) / 2


def test_viewers_share_the_race_time_and_a_late_one_lands_live(
        live_server: LiveServer, new_page: Any, make: Any, duel_bytes: bytes,
        screenshot: Any) -> None:
    # On air for 9 s already: the first lap (about 13 s) is done while the test watches.
    event_id, on_air_at, racers = live_event(live_server, make, duel_bytes, on_air_in_s=-9.0)
    watch = live_server.url(f"/events/{event_id}/watch")

    first = new_page()
    first.goto(watch)
    first.wait_for_function(READY)
    time.sleep(2.0)
    late = new_page()
    late.add_init_script(SLOW_CLOCK % (SKEW_S * 1000))
    late.goto(watch)
    late.wait_for_function(READY)

    # The same instant on both pages: the first page's time carried to the moment the late
    # page was read. The late page's own clock is an hour slow: the server's time corrects it.
    a, a_at = race_time(first)
    b, b_at = race_time(late)
    assert abs((a + (b_at - a_at)) - b) < SYNC_S, (a, a_at, b, b_at)
    assert abs(b - (b_at - on_air_at)) < SYNC_S, "the late viewer is not at the live moment"
    assert b > 9.0, "the heat has been on air for a while"
    assert late.evaluate("() => document.body.dataset.liveSlot") == "1"

    tower = late.locator("[data-role=tower] tr")
    assert tower.count() == 2
    assert sorted(t.strip() for t in late.locator("[data-role=tower] .live-racer")
                  .all_inner_texts()) == sorted(racers)
    # The bracket: both semifinals, the one on air marked, its winner not known yet.
    assert late.locator("[data-role=bracket] .match").count() >= 3
    on_air = late.locator("[data-role=bracket] .match.on-air")
    assert on_air.count() == 1 and on_air.locator(".slot.winner").count() == 0
    assert sorted(on_air.locator(".slot").all_inner_texts()) == sorted(racers)

    # Past the first lap (about 13 s), with the late viewer's earlier segments all loaded.
    late.wait_for_function("() => parseFloat(document.body.dataset.raceTime) > 15"
                           " && !document.querySelector('.live-ticker-more')")
    live_lines = late.evaluate(TICKER_TIMES)
    shown, _ = race_time(late)
    assert all(t <= shown for t in live_lines), "the ticker runs ahead of the live moment"
    assert len(live_lines) >= 2, "the start and the first lap's fastest lap"
    screenshot(late, "late-viewer")

    # Scrubbing back five seconds from the keyboard, then to the start (Home): the ticker
    # goes back too, though the segments with the later events are loaded; then the L key
    # (the Live button's) returns to the live moment.
    late.focus("[data-role=scrub]")
    late.keyboard.press("Shift+ArrowLeft")
    late.wait_for_function("() => !document.querySelector('[data-role=golive]').disabled")
    behind, at = race_time(late)
    assert 3.5 < (at - on_air_at) - behind < 6.5, (behind, at - on_air_at)
    assert "behind live" in late.locator("[data-role=next]").inner_text()
    screenshot(late, "scrubbed-back")
    late.keyboard.press("Home")
    late.wait_for_function("() => parseFloat(document.body.dataset.raceTime) < 5")
    start_lines = late.evaluate(TICKER_TIMES)
    shown, _ = race_time(late)
    assert all(t <= shown for t in start_lines)
    assert len(start_lines) < len(live_lines)
    late.keyboard.press("l")
    late.wait_for_function("() => document.querySelector('[data-role=golive]').disabled")
    back, at = race_time(late)
    assert abs(back - (at - on_air_at)) < SYNC_S


def test_a_viewer_whose_clock_jumps_is_soon_back_at_the_live_moment(
        live_server: LiveServer, new_page: Any, issues: Any, make: Any,
        duel_bytes: bytes) -> None:
    event_id, on_air_at, _ = live_event(live_server, make, duel_bytes, on_air_in_s=-2.0)
    # Until its next look at the index, the page believes it is an hour later and asks for
    # segments that are not published yet.
    issues.allow(r"/live/1/\d+\.json.*404|404.*/live/1/\d+\.json")
    page = new_page()
    page.add_init_script(JUMPING_CLOCK)
    page.goto(live_server.url(f"/events/{event_id}/watch"))
    page.wait_for_function(READY)
    page.evaluate(f"() => {{ window.clockJump = {SKEW_S * 1000}; }}")  # it woke from sleep
    page.wait_for_function("() => parseFloat(document.body.dataset.raceTime) > 50")  # the end
    page.wait_for_function(f"""() => Math.abs(parseFloat(document.body.dataset.raceTime)
        - (Date.now() / 1000 - {on_air_at})) < {SYNC_S}""", timeout=8_000)
    shown, at = race_time(page)
    assert abs(shown - (at - on_air_at)) < SYNC_S


def test_overlay_is_transparent_and_shows_its_part(live_server: LiveServer, new_page: Any,
                                                   make: Any, duel_bytes: bytes,
                                                   screenshot: Any) -> None:
    event_id, _, _ = live_event(live_server, make, duel_bytes, on_air_in_s=-2.0)
    page = new_page()
    page.goto(live_server.url(f"/events/{event_id}/overlay/tower"))
    page.wait_for_function("() => document.querySelectorAll('[data-role=tower] tr').length === 2")
    for selector in ("html", "body"):
        assert page.evaluate(f"() => getComputedStyle(document.querySelector('{selector}'))"
                             ".backgroundColor") == "rgba(0, 0, 0, 0)"
    assert page.locator(".site-header").count() == 0
    screenshot(page, "tower")

    page.goto(live_server.url(f"/events/{event_id}/overlay/car"))
    page.wait_for_function(READY)
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") \
        == "rgba(0, 0, 0, 0)"
    screenshot(page, "car")


def test_live_view_fits_a_phone_and_has_no_serious_accessibility_violation(
        live_server: LiveServer, new_page: Any, make: Any, duel_bytes: bytes,
        screenshot: Any) -> None:
    event_id, _, _ = live_event(live_server, make, duel_bytes, on_air_in_s=-2.0)
    page = new_page(viewport=PHONE)
    page.goto(live_server.url(f"/events/{event_id}/watch"))
    page.wait_for_function(READY)
    page.wait_for_function("() => document.querySelectorAll('[data-role=tower] tr').length === 2")
    assert page.evaluate(WIDTH) <= PHONE["width"]
    screenshot(page, "phone")
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    assert page.evaluate(RUN_AXE, list(FAILING_IMPACTS)) == []


def test_event_page_counts_down_then_offers_the_live_view(
        live_server: LiveServer, new_page: Any, make: Any, screenshot: Any) -> None:
    with live_server.session() as s:
        _, _, event = finals(s, make, starts_in_s=COUNTDOWN_S)
        s.commit()
        event_id = event.id
    page = new_page(viewport=PHONE)
    page.goto(live_server.url(f"/events/{event_id}"))
    assert page.locator("time[datetime]").count() == 1
    countdown = page.locator("[data-countdown]")
    assert re.fullmatch(r"· starts in 0:[01]\d", countdown.inner_text())
    assert page.locator("[data-watch-live]").is_hidden()
    assert page.evaluate(WIDTH) <= PHONE["width"]
    screenshot(page, "countdown")
    page.wait_for_selector("[data-watch-live] a", state="visible",
                           timeout=(COUNTDOWN_S + 5) * 1000)
    assert countdown.is_hidden()
    page.locator("[data-watch-live] a").click()
    page.wait_for_url(f"**/events/{event_id}/watch")
