"""The audit log on the organizer pages and through the API: organizers and admins read it,
everyone else gets nothing of it."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from sqlalchemy.orm import Session

from league.models import Role
from league.rules import leagues, submissions
from tests.web.api_support import ApiClient, token_for


def _seed(session: Session, make: Any) -> tuple[Any, Any, Any]:
    league = make.league(session, slug="club")
    olga = make.organizer(session, league)
    race = make.race(session, league, name="Sprint")
    entry = make.entry(session, race, make.racer(session, "ada"), name="fast")
    make.result(session, entry)
    submissions.disqualify_entry(session, entry, olga, "the model was not theirs")
    leagues.add_division(session, league, olga, "Gold")
    session.commit()
    return league, olga, entry


def test_the_organizer_page_and_the_full_log(client: Any, session: Session, make: Any,
                                             login: Any) -> None:
    _, olga, entry = _seed(session, make)
    login(client, olga)
    page = unescape(client.get("/organize/leagues/club").get_data(as_text=True))
    section = page[page.index('id="audit"'):]
    assert "entry disqualified" in section and "the model was not theirs" in section
    assert f"entry {entry.id} (ada, fast v1) in race {entry.race_id} (Sprint)" in section
    rows = re.findall(r"<tr>\s*<td><time", section)
    assert len(rows) == 3  # the race, the disqualification, the division
    full = unescape(client.get("/organize/leagues/club/audit").get_data(as_text=True))
    assert "Audit log" in full and "division added" in full and "race created" in full
    # Newest first: the division was added last.
    assert full.index("division added") < full.index("entry disqualified")


def test_nobody_else_reads_the_log(client: Any, app: Any, session: Session, make: Any,
                                   login: Any) -> None:
    league, olga, _ = _seed(session, make)
    ada = make.user(session, "ada2")
    admin = make.user(session, "root", Role.ADMIN)
    session.commit()
    login(client, ada)
    assert client.get("/organize/leagues/club/audit").status_code in (403, 404)
    api = ApiClient(app.test_client())
    r = api.get("/leagues/club/audit", token_for(session, ada))
    assert r.status_code == 403
    assert api.get("/leagues/club/audit").status_code == 401
    r = api.get("/leagues/club/audit?per_page=1", token_for(session, admin))
    assert r.status_code == 200
    body = r.get_json()
    assert body["pagination"]["total"] == 3 and len(body["items"]) == 1
    assert body["items"][0]["action"] == "division_added"
    assert body["items"][0]["actor_name"] == olga.name
    r = api.get("/leagues/club/audit", token_for(session, olga))
    events = r.get_json()["items"]
    disq = next(e for e in events if e["action"] == "entry_disqualified")
    assert disq["reason"] == "the model was not theirs" and disq["at"].endswith("Z")
    assert api.get("/leagues/nope/audit", token_for(session, olga)).status_code == 404
    del league
