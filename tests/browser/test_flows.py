"""The racer's and the organizer's first visits, in a real browser, through the real pages."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from league.models import Entry, League, Race, Season
from league.rules import submissions
from tests.support.dbfixtures import PASSWORD
from tests.web.api_support import open_race

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

BOT = Path(__file__).resolve().parents[2] / "evaluator" / "bots" / "pro.onnx"
LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"


# live_server comes before page in every test's arguments: the server then stops after the
# browser pages are closed, not under a page still loading something.
def _open_race(live_server: LiveServer, make: Any) -> int:
    """A public league with a time trial open now (1 lap, 2 trials, on the oval)."""
    with live_server.session() as s:
        race = open_race(s, make, name="Sunday Sprint", trials=2, laps=1)
        race.status = "open"
        s.commit()
        return race.id


def test_racer_signs_up_uploads_follows_the_evaluation_and_watches_the_replay(
        live_server: LiveServer, page: Any, make: Any, tmp_path: Path, screenshot: Any,
        issues: Any) -> None:
    race_id = _open_race(live_server, make)
    issues.allow(r"status of 400")  # the refused upload answers 400 with its reason
    page.goto(live_server.url("/"))
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("User name").fill("ada")
    page.get_by_label("E-mail").fill("ada@example.org")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    # Sign-up answers alike for new and known addresses: it sends to the login page.
    page.wait_for_url("**/login*")
    page.get_by_label("User name or e-mail").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/garage/")
    screenshot(page, "1-signed-up")

    page.goto(live_server.url(f"/races/{race_id}"))
    page.get_by_role("link", name="Enter this race").click()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx file")
    page.set_input_files("input[name=model]", str(broken))
    page.get_by_role("button", name="Upload").click()
    error = page.locator(".field.has-error .error").first
    assert "model refused" in error.inner_text()
    screenshot(page, "2-refused-next-to-the-field")
    with live_server.session() as s:
        assert s.scalar(sa.select(sa.func.count(Entry.id))) == 0

    page.set_input_files("input[name=model]", str(BOT))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/garage/entries/*")
    page.goto(live_server.url("/garage/"))
    badge = page.locator("[data-entry]").first
    assert "queued" in badge.inner_text().lower()
    page.evaluate("() => { window.__stillTheSamePage = true; }")
    screenshot(page, "3-queued")
    worker = threading.Thread(target=live_server.run_queued_jobs)
    worker.start()
    try:
        page.wait_for_function(
            "() => /finished/i.test(document.querySelector('[data-entry]').textContent)",
            timeout=60_000)
    finally:
        worker.join(timeout=120)
    assert page.evaluate("() => window.__stillTheSamePage === true")  # updated without reload
    screenshot(page, "4-finished-live")

    page.locator("a[href*='/garage/entries/']").first.click()
    results = page.locator("table").filter(has_text="Trial").first
    assert results.locator("tbody tr").count() == 2
    screenshot(page, "5-results")
    page.locator("a[href*='/replay']").first.click()
    page.wait_for_function(LOADED)
    page.keyboard.press("Space")
    page.wait_for_function("() => window.paddockReplay.state().time > 0.5")
    page.keyboard.press("Space")
    before = page.evaluate("() => window.paddockReplay.state().time")
    slider = page.locator("input[type=range]").first
    slider.fill("0")
    after = page.evaluate("() => window.paddockReplay.state().time")
    assert after < before
    screenshot(page, "6-replay")


def test_organizer_creates_a_league_a_season_and_a_race(
        live_server: LiveServer, page: Any, make: Any, screenshot: Any) -> None:
    with live_server.session() as s:
        make.user(s, "olga", "organizer")
        s.commit()
    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="New league").click()
    page.get_by_label("Name").fill("Friday Racers")
    page.get_by_label("Address").fill("friday-racers")
    page.get_by_label("Divisions").fill("Gold\nSilver")
    screenshot(page, "1-new-league")
    page.get_by_role("button", name="Create the league").click()
    page.wait_for_url("**/organize/leagues/friday-racers")

    page.get_by_role("link", name="New season").click()
    page.get_by_label("Name").fill("Autumn 2026")
    page.get_by_role("button", name="Create the season").click()
    page.wait_for_url("**/organize/leagues/friday-racers*")

    page.get_by_role("link", name="Schedule a race").click()
    page.get_by_label("Name").fill("Royal Park Trial")
    page.get_by_label("Track", exact=True).select_option("royal-park")
    page.get_by_label("Season", exact=True).select_option(label="Autumn 2026")
    screenshot(page, "2-race-form")
    page.get_by_role("button", name="Schedule the race").click()
    page.wait_for_url("**/organize/races/*")
    screenshot(page, "3-race-managed")

    with live_server.session() as s:
        league = s.scalar(sa.select(League).where(League.slug == "friday-racers"))
        assert league is not None and [d.name for d in league.divisions] == ["Gold", "Silver"]
        season = s.scalar(sa.select(Season).where(Season.league_id == league.id))
        race = s.scalar(sa.select(Race).where(Race.league_id == league.id))
        assert season is not None and season.name == "Autumn 2026"
        assert race is not None and race.season_id == season.id
        assert (race.track, race.laps, race.trials, race.ranking, race.off_track_penalty) == (
            "royal-park", 3, 3, "total", 5.0)  # the form's defaults
    page.goto(live_server.url("/leagues/friday-racers"))
    assert page.get_by_text("Royal Park Trial").first.is_visible()
    screenshot(page, "4-league-page")


def test_a_discrete_policy_gets_its_action_breakdown(live_server: LiveServer, page: Any,
                                                     make: Any, screenshot: Any) -> None:
    """The entry page draws how often each action of a discrete action space was chosen."""
    race_id = _open_race(live_server, make)
    with live_server.session() as s:
        racer = make.user(s, "bea")
        entry = submissions.submit_entry(s, live_server.storage, s.get_one(Race, race_id),
                                         racer, make.discrete_policy())
        s.commit()
        entry_id = entry.id
    live_server.run_queued_jobs()
    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill("bea")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/garage/")
    page.goto(live_server.url(f"/garage/entries/{entry_id}"))
    figure = page.locator("[data-actions-figure]")
    figure.wait_for(state="visible")
    page.wait_for_function("() => !document.querySelector('[data-analysis-controls]').hidden")
    inked = page.evaluate("""() => {
        const c = document.querySelector('[data-chart="actions"]');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n;
    }""")
    assert inked > 1000  # labels and bars were drawn
    figure.scroll_into_view_if_needed()
    screenshot(page, "action-breakdown")
