"""Accessibility: axe-core (vendored in tests/browser/vendor) finds no serious or critical
violation on the pages people use most, on a desktop and on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_phones import LOADED, PHONE, log_in, seed_site
from tests.support import replays as sample

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")
# Runs through the DevTools protocol, which the site's CSP (no inline script) does not cover.
RUN_AXE = """async (impacts) => {
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations.filter((v) => impacts.includes(v.impact)).map((v) =>
        `${v.impact} ${v.id}: ${v.help} at `
        + v.nodes.slice(0, 4).map((n) => n.target.join(" ")).join(", "));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    """The axe-core script."""
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def replay_bytes(record_race: Any) -> bytes:
    """Three cars over two laps of the oval."""
    return sample.record_replay(record_race, sample.incident_drivers(record_race), laps=2)


def violations(page: Any, live_server: LiveServer, path: str, axe_source: str) -> list[str]:
    """The serious and critical axe violations of ``path``, each with where it is."""
    response = page.goto(live_server.url(path))
    assert response is not None and response.status == 200, path
    if path.startswith("/replays/"):
        page.wait_for_function(LOADED)
    page.evaluate(axe_source + "\n;0")
    found: list[str] = page.evaluate(RUN_AXE, list(FAILING_IMPACTS))
    return [f"{path}: {v}" for v in found]


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_no_serious_accessibility_violations(live_server: LiveServer, new_page: Any,
                                             make: Any, replay_bytes: bytes, axe_source: str,
                                             viewport: dict[str, int] | None) -> None:
    site = seed_site(live_server, make, replay_bytes)
    options = {"viewport": viewport} if viewport else {}
    spectator = new_page(**options)
    found = [v for path in site.pages().values()
             for v in violations(spectator, live_server, path, axe_source)]
    racer = new_page(**options)
    log_in(racer, live_server, site.racer)
    found += violations(racer, live_server, "/garage/", axe_source)
    organizer = new_page(**options)
    log_in(organizer, live_server, site.organizer)
    for path in (f"/organize/races/{site.race_id}", f"/organize/leagues/{site.slug}",
                 f"/organize/leagues/{site.slug}/races/new"):
        found += violations(organizer, live_server, path, axe_source)
    assert not found, "\n".join(found)
