"""An organizer removes a racer from an unlisted league in a real browser: the page says the
invite link changed and shows the new one; the racer's old link no longer lets them in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from league.models import Membership, User
from tests.support.dbfixtures import PASSWORD

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer


def _log_in(page: Any, live_server: LiveServer, name: str) -> None:
    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def test_a_removed_racer_cannot_rejoin_with_the_old_link(
        live_server: LiveServer, new_page: Any, make: Any, screenshot: Any,
        issues: Any) -> None:
    with live_server.session() as s:
        olga = make.user(s, "olga", "organizer")
        league = make.league(s, olga, "quiet", name="Quiet Club", visibility="unlisted")
        old_link = live_server.url(f"/organize/join/quiet?code={league.invite_code}")
        league_id = league.id
        make.user(s, "ann")
        s.commit()
    issues.allow(r"status of 403")  # the refused join page answers 403

    ann = new_page()
    _log_in(ann, live_server, "ann")
    ann.goto(live_server.url("/leagues/quiet"))
    assert ann.get_by_text("Joining needs the invite link").is_visible()
    ann.goto(old_link)
    ann.get_by_role("button", name="Join Quiet Club").click()
    ann.wait_for_url("**/leagues/quiet")
    assert ann.get_by_text("You are a member").is_visible()

    org = new_page()
    _log_in(org, live_server, "olga")
    org.goto(live_server.url("/organize/leagues/quiet"))
    org.locator("#members tr", has_text="ann").get_by_role("button", name="Remove").click()
    org.wait_for_url("**/organize/leagues/quiet*")
    flash = org.locator(".flash", has_text="The invite link has changed")
    assert flash.is_visible()
    new_link = org.locator("#invite-link").input_value()
    assert new_link != old_link and new_link in flash.inner_text()
    screenshot(org, "1-removed")

    response = ann.goto(old_link)
    assert response is not None and response.status == 403
    assert ann.get_by_text("joining needs its current invite link").is_visible()
    screenshot(ann, "2-old-link")
    with live_server.session() as s:
        members = s.scalars(sa.select(User.name).join(Membership, Membership.user_id == User.id)
                            .where(Membership.league_id == league_id)).all()
        assert members == ["olga"]
