"""The site's 404 page, and the new-race form's defaults (open now, in the running season)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.db import READ_ONLY
from league.models import SeasonStatus, utcnow
from league.rules import leagues


def test_a_missing_page_is_a_404_in_the_site_style_with_navigation(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert '<link rel="stylesheet" href="/static/css/paddock.css' in page
    assert '<nav class="nav" aria-label="Main">' in page
    assert 'href="/leagues"' in page and "skip-link" in page
    assert "<h1>404 · Not Found</h1>" in page
    assert 'id="content"' in page


def test_a_missing_api_path_still_answers_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def _organizer_client(client: FlaskClient, make: Any, session: Session, login: Any,
                      season_status: SeasonStatus | None) -> tuple[FlaskClient, int | None]:
    club = make.league(session)
    org = make.organizer(session, club)
    season_id = None
    if season_status is not None:
        start = utcnow() - dt.timedelta(days=10)
        leagues.create_season(session, club, org, "Old", start - dt.timedelta(days=90),
                              start - dt.timedelta(days=1))
        season = leagues.create_season(session, club, org, "Running", start,
                                       start + dt.timedelta(days=90))
        leagues.create_season(session, club, org, "Next", start + dt.timedelta(days=91),
                              start + dt.timedelta(days=180))
        season.status = season_status
        season_id = season.id
    session.commit()
    session.connection(execution_options={READ_ONLY: True})
    return login(client, org), season_id


def test_new_race_opens_now_and_belongs_to_the_running_season(
        client: FlaskClient, make: Any, session: Session, login: Any) -> None:
    org_client, season_id = _organizer_client(client, make, session, login,
                                              SeasonStatus.ACTIVE)
    before = utcnow().replace(second=0, microsecond=0)
    page = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    after = utcnow()
    opens = re.search(r'name="opens_at"[^>]*value="([^"]+)"', page)
    closes = re.search(r'name="closes_at"[^>]*value="([^"]+)"', page)
    assert opens and closes
    opens_at = dt.datetime.strptime(opens.group(1), "%Y-%m-%dT%H:%M")
    assert before <= opens_at <= after  # now, not the next full hour
    closes_at = dt.datetime.strptime(closes.group(1), "%Y-%m-%dT%H:%M")
    assert closes_at - opens_at == dt.timedelta(days=7)
    assert re.search(rf'<option selected value="{season_id}">Running</option>', page)


def test_new_race_without_a_running_season_has_no_season(
        client: FlaskClient, make: Any, session: Session, login: Any) -> None:
    org_client, _ = _organizer_client(client, make, session, login, SeasonStatus.PLANNED)
    page = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    assert '<option selected value="0">No season</option>' in page
