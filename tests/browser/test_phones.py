"""Phones and keyboards: no page scrolls sideways at 390 px; the replay viewer works from the
keyboard (Space on a focused button, a skip link to the viewer)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from league.models import utcnow
from league.rules import leagues
from tests.support import replays as sample
from tests.support.dbfixtures import PASSWORD

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

PHONE = {"width": 390, "height": 844}
LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"
WIDTH = "() => document.documentElement.scrollWidth"


@dataclass
class Site:
    """A league with a running season, a race with a full leaderboard and a replay."""

    slug: str
    season_id: int
    race_id: int
    replay_id: int
    organizer: str
    racer: str
    entry_id: int
    ghost_id: int  #: another trial of the replay's evaluation, to compare it with

    def pages(self) -> dict[str, str]:
        """Every page to check, by a short name."""
        return {
            "home": "/", "leagues": "/leagues", "league": f"/leagues/{self.slug}",
            "season": f"/leagues/{self.slug}/seasons/{self.season_id}",
            "race": f"/races/{self.race_id}", "replay": f"/replays/{self.replay_id}",
            "compare": f"/replays/{self.replay_id}?ghost={self.ghost_id}",
            "tracks": "/tracks", "track": "/tracks/oval",
        }


@pytest.fixture(scope="module")
def replay_bytes(record_race: Any) -> bytes:
    """Three cars over two laps of the oval."""
    return sample.record_replay(record_race, sample.incident_drivers(record_race), laps=2)


def seed_site(live_server: LiveServer, make: Any, replay_bytes: bytes) -> Site:
    """A league, a running season and a race in it whose leaderboard has long names."""
    with live_server.session() as s:
        league = make.league(s, slug="harbour-racing-club-of-the-north",
                             name="Harbour Racing Club of the North",
                             description="Weekly time trials on every track of the harbour.")
        organizer = make.organizer(s, league)
        now = utcnow()
        season = leagues.create_season(s, league, organizer, "Autumn championship 2026",
                                       now - dt.timedelta(days=5), now + dt.timedelta(days=60))
        trial = sample.time_trial(
            s, live_server.storage, make, replay_bytes, trials=3,
            race=make.race(s, league, name="Sunday Sprint on the Royal Park circuit", trials=3,
                           season=season, opens_at=now - dt.timedelta(days=1),
                           closes_at=now + dt.timedelta(days=6)))
        for i, name in enumerate(("maximilian-the-very-fast", "lee", "kim_andersson_racing")):
            entry = make.entry(s, trial.race, make.racer(s, name), name=f"{name}-policy-v3")
            make.result(s, entry, time_s=31.5 + i)
        s.commit()
        return Site(league.slug, season.id, trial.race.id, trial.replays[0].id,
                    organizer.name, trial.entry.racer.name, trial.entry.id,
                    trial.replays[1].id)


def log_in(page: Any, live_server: LiveServer, name: str) -> None:
    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


# The elements sticking out past the right edge that are not inside a scrolling wrapper:
# what makes a page too wide, named for the failure message.
OVERFLOWING = """(limit) => [...document.querySelectorAll("body *")].filter((e) => {
    if (e.getBoundingClientRect().right <= limit + 0.5) return false;
    for (let p = e.parentElement; p; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== "visible") return false;
    }
    return true;
}).slice(-6).map((e) => `${e.tagName.toLowerCase()}.${e.className} `
                       + `${Math.round(e.getBoundingClientRect().right)}px`)"""


def page_width(page: Any, live_server: LiveServer, path: str, name: str,
               screenshot: Any) -> str | None:
    """Open ``path``; what sticks out if it is wider than the phone, else None."""
    response = page.goto(live_server.url(path))
    assert response is not None and response.status == 200, path
    if path.startswith("/replays/"):
        page.wait_for_function(LOADED)
    screenshot(page, name)
    width = page.evaluate(WIDTH)
    if width <= PHONE["width"]:
        return None
    return f"{path} is {width} px wide: {page.evaluate(OVERFLOWING, PHONE['width'])}"


def test_public_pages_fit_a_phone(live_server: LiveServer, new_page: Any, make: Any,
                                  replay_bytes: bytes, screenshot: Any) -> None:
    site = seed_site(live_server, make, replay_bytes)
    page = new_page(viewport=PHONE)
    wide = [page_width(page, live_server, path, name, screenshot)
            for name, path in site.pages().items()]
    too_wide = [w for w in wide if w]
    assert not too_wide, "\n".join(too_wide)


def test_leaderboard_shows_rank_racer_time_and_gap_on_a_phone(
        live_server: LiveServer, new_page: Any, make: Any, replay_bytes: bytes) -> None:
    site = seed_site(live_server, make, replay_bytes)
    page = new_page(viewport=PHONE)
    page.goto(live_server.url(f"/races/{site.race_id}"))
    board = page.locator("table.leaderboard").first
    for header in ("Rank", "Racer", "Time", "Gap"):
        cell = board.locator("thead th", has_text=header).first
        box = cell.bounding_box()
        assert box is not None and cell.is_visible(), header
        assert box["x"] + box["width"] <= PHONE["width"], f"{header} column is off-screen"


def test_head_to_head_race_shows_rank_racer_and_rating_on_a_phone(
        live_server: LiveServer, new_page: Any, make: Any, replay_bytes: bytes,
        screenshot: Any) -> None:
    with live_server.session() as s:
        race = make.race(s, name="Harbour Sprint", format="head-to-head", laps=2)
        entries = [make.entry(s, race, make.racer(s, n), name=f"{n}-bot")
                   for n in ("kim-andersson-racing", "lee", "max")]
        _, _, replays = sample.heat(s, live_server.storage, make, replay_bytes, entries)
        s.commit()
        race_id, replay_id = race.id, replays[0].id
    page = new_page(viewport=PHONE)
    wide = [page_width(page, live_server, path, name, screenshot)
            for name, path in (("replay", f"/replays/{replay_id}"),
                               ("race", f"/races/{race_id}"))]
    too_wide = [w for w in wide if w]
    assert not too_wide, "\n".join(too_wide)
    ratings = page.locator("table.ratings").first
    for header in ("Rank", "Racer", "Rating"):
        cell = ratings.locator("thead th", has_text=header).first
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"], header


def test_racer_and_organizer_pages_fit_a_phone(live_server: LiveServer, new_page: Any,
                                               make: Any, replay_bytes: bytes,
                                               screenshot: Any) -> None:
    site = seed_site(live_server, make, replay_bytes)
    racer = new_page(viewport=PHONE)
    log_in(racer, live_server, site.racer)
    wide = [page_width(racer, live_server, path, name, screenshot)
            for name, path in (("garage", "/garage/"),
                               ("garage-entry", f"/garage/entries/{site.entry_id}"),
                               ("notifications", "/account/notifications"))]
    organizer = new_page(viewport=PHONE)
    log_in(organizer, live_server, site.organizer)
    for name, path in (("organize-league", f"/organize/leagues/{site.slug}"),
                       ("organize-race", f"/organize/races/{site.race_id}"),
                       ("organize-new-race", f"/organize/leagues/{site.slug}/races/new")):
        wide.append(page_width(organizer, live_server, path, name, screenshot))
    too_wide = [w for w in wide if w]
    assert not too_wide, "\n".join(too_wide)


def test_space_on_a_focused_frame_button_steps_and_does_not_play(
        live_server: LiveServer, page: Any, make: Any, replay_bytes: bytes) -> None:
    site = seed_site(live_server, make, replay_bytes)
    page.goto(live_server.url(f"/replays/{site.replay_id}#t=1"))
    page.wait_for_function(LOADED)
    before = page.evaluate("() => window.paddockReplay.state()")
    page.locator("[data-action=forward]").focus()
    page.keyboard.press("Space")
    after = page.evaluate("() => window.paddockReplay.state()")
    assert not after["playing"]
    assert after["time"] > before["time"]
    page.locator("[data-action=play]").focus()
    page.keyboard.press("Space")
    assert page.evaluate("() => window.paddockReplay.state().playing")


def test_skip_link_moves_focus_to_the_viewer(live_server: LiveServer, page: Any, make: Any,
                                             replay_bytes: bytes) -> None:
    site = seed_site(live_server, make, replay_bytes)
    page.goto(live_server.url(f"/replays/{site.replay_id}"))
    page.wait_for_function(LOADED)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    skip = page.evaluate("() => document.activeElement")
    assert skip is not None
    link = page.get_by_role("link", name="Skip to the replay viewer")
    assert link.evaluate("(a) => a === document.activeElement")
    assert link.is_visible()  # shown while focused
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.id === 'replay-viewer'")
    page.keyboard.press("Tab")  # the next stop is inside the viewer
    assert page.evaluate(
        "() => document.getElementById('replay-viewer').contains(document.activeElement)")


def test_focus_ring_on_the_play_button_is_visible(live_server: LiveServer, page: Any,
                                                  make: Any, replay_bytes: bytes,
                                                  screenshot: Any) -> None:
    site = seed_site(live_server, make, replay_bytes)
    page.goto(live_server.url(f"/replays/{site.replay_id}"))
    page.wait_for_function(LOADED)
    page.locator("[data-action=back]").focus()
    page.keyboard.press("Tab")  # keyboard focus: :focus-visible applies
    style = page.evaluate("""() => {
        const s = getComputedStyle(document.activeElement);
        return [document.activeElement.dataset.action, s.outlineStyle, s.outlineWidth,
                s.outlineColor];
    }""")
    assert style[0] == "play" and style[1] == "solid" and float(style[2][:-2]) >= 2
    assert style[3] != "rgb(20, 33, 61)"  # not the button's own dark ink
    screenshot(page, "play-focused")
