"""Live event pages and their JSON through the test client: the index, heads and segments
published on time and cached as documented, private leagues, the organizer's form and the
API (schedule, list, show, cancel), a held heat's replay."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import (
    League,
    LiveEvent,
    LiveEventKind,
    LiveEventStatus,
    User,
    Visibility,
    utcnow,
)
from league.rules import leagues, live
from league.storage import Storage
from tests.support.dbfixtures import Factory
from tests.support.live import knockout_race, put_on_air, tick
from tests.support.replays import field_drivers, record_replay
from tests.web.api_support import ApiClient, error_of, token_for
from web.extensions import db as flask_db

SEC = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def heat_replays(record_race: Any) -> list[bytes]:
    """A match's two seat-swapped one-lap heats of two real cars."""
    return [record_replay(record_race, field_drivers(2), laps=1),
            record_replay(record_race, list(reversed(field_drivers(2))), laps=1)]


def _epoch(moment: dt.datetime | None) -> float:
    assert moment is not None
    return moment.replace(tzinfo=dt.UTC).timestamp()


def test_the_index_says_what_is_on_air_and_is_cached_for_a_second(
        client: FlaskClient, session: Session, make: Factory, storage: Storage,
        heat_replays: list[bytes]) -> None:
    event = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0)
    before = time.time()
    r = client.get(f"/events/{event.id}/live.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "public, max-age=1"
    index = r.get_json()
    assert before - 1 <= index["server_time"] <= time.time() + 1
    assert (index["title"], index["status"], index["kind"]) == ("Finals night", "live",
                                                                "finals")
    first, second = index["slots"][:2]
    assert (first["n"], first["title"], first["state"]) == (1, "Semifinal 1, heat 1 of 2",
                                                            "on_air")
    assert first["on_air_at"] == pytest.approx(_epoch(event.slots[0].on_air_at))
    # segments 0..5 by race time 3 s (2 s ahead); one more if the request came a second late
    assert 6 <= first["released"] <= int(index["server_time"] - first["on_air_at"] + 2) + 1
    assert [c["racer"] for c in first["cars"]] == ["r1", "r4"]
    assert first["replay"] is None
    assert second["state"] == "waiting" and second["released"] == 0
    assert index["bracket"][0]["stage"] == "semifinal"
    assert all(m["winner"] is None for m in index["bracket"][0]["matches"])


def test_segments_are_published_on_time_and_never_change(
        client: FlaskClient, session: Session, make: Factory, storage: Storage,
        heat_replays: list[bytes]) -> None:
    event = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0)
    head = client.get(f"/events/{event.id}/live/1/head.json")
    assert head.status_code == 200 and "immutable" in head.headers["Cache-Control"]
    assert [c["name"] for c in head.get_json()["cars"]] == ["r1", "r4"]
    assert head.get_json()["track"]["name"] == "oval"
    seg = client.get(f"/events/{event.id}/live/1/4.json")
    assert seg.status_code == 200 and "immutable" in seg.headers["Cache-Control"]
    body = seg.get_json()
    assert (body["n"], body["k"], body["first_frame"]) == (1, 4, 60)
    assert len(body["cars"]) == 2 and len(body["cars"][0]["x"]) == 15
    assert {row["position"] for row in body["tower"]} == {1, 2}
    assert client.get(f"/events/{event.id}/live/1/4.json").data == seg.data
    # Ahead of the live moment by more than the lead: not published.
    ahead = client.get(f"/events/{event.id}/live/1/9.json")
    assert ahead.status_code == 404 and b"not published yet" in ahead.data
    # A slot not on air yet has neither head nor segments... (the next semifinal's heat is
    # not raced: it has no slot at all)
    assert client.get(f"/events/{event.id}/live/9/head.json").status_code == 404


def test_a_private_leagues_event_is_for_its_members(
        make_app: Callable[..., Any], session: Session, make: Factory, storage: Storage,
        heat_replays: list[bytes], login: Callable[[FlaskClient, User], FlaskClient]) -> None:
    league = make.league(session, slug="secret-club", visibility=Visibility.PRIVATE)
    event = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0, league=league)
    client = make_app().test_client()
    for url in (f"/events/{event.id}", f"/events/{event.id}/watch",
                f"/events/{event.id}/live.json", f"/events/{event.id}/live/1/head.json",
                f"/events/{event.id}/live/1/0.json", f"/events/{event.id}/overlay/tower"):
        assert client.get(url).status_code == 404, url
    member = make.user(session, "mia")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    login(client, member)
    assert client.get(f"/events/{event.id}/live/1/0.json").status_code == 200


def test_a_fresh_public_index_is_answered_without_a_query(
        make_app: Callable[..., Any], session: Session, make: Factory, storage: Storage,
        heat_replays: list[bytes]) -> None:
    public = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0)
    app = make_app()
    client = app.test_client()
    statements: list[str] = []

    def count(*args: Any, **_: Any) -> None:
        statements.append(str(args[2]).lower())

    with app.app_context():
        engine = flask_db.engine
    first = client.get(f"/events/{public.id}/live.json")
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        again = client.get(f"/events/{public.id}/live.json")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["slots"] == first.get_json()["slots"]
    assert not [s for s in statements if "select" in s], statements


def test_a_private_index_just_built_for_a_member_is_refused_to_others(
        make_app: Callable[..., Any], session: Session, make: Factory, storage: Storage,
        heat_replays: list[bytes], login: Callable[[FlaskClient, User], FlaskClient]) -> None:
    app = make_app()
    client = app.test_client()
    league = make.league(session, slug="secret-club", visibility=Visibility.PRIVATE)
    hidden = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0, league=league)
    member = make.user(session, "mia")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    assert login(app.test_client(), member).get(
        f"/events/{hidden.id}/live.json").status_code == 200
    assert client.get(f"/events/{hidden.id}/live.json").status_code == 404


def test_event_watch_and_overlay_pages_render(client: FlaskClient, session: Session,
                                              make: Factory, storage: Storage,
                                              heat_replays: list[bytes]) -> None:
    event = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0)
    page = client.get(f"/events/{event.id}")
    assert page.status_code == 200 and b"Finals night" in page.data
    assert b"Semifinal 1, heat 1 of 2" in page.data
    watch = client.get(f"/events/{event.id}/watch")
    assert watch.status_code == 200 and f"/events/{event.id}/live.json".encode() in watch.data
    for part in ("tower", "ticker", "car"):
        overlay = client.get(f"/events/{event.id}/overlay/{part}")
        assert overlay.status_code == 200, part
        assert b"site-header" not in overlay.data  # no site chrome on a stream
    assert client.get(f"/events/{event.id}/overlay/everything").status_code == 404
    assert client.get("/events/999999/watch").status_code == 404


def test_a_held_heats_replay_opens_when_it_has_been_aired(
        client: FlaskClient, session: Session, make: Factory, storage: Storage,
        heat_replays: list[bytes]) -> None:
    event = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0)
    job_id = event.slots[0].job_id
    r = client.get(f"/evaluations/{job_id}/replay")
    assert r.status_code == 404 and b"its replay opens when its broadcast ends" in r.data
    ended = max(live.slot_end(s) for s in event.slots)
    tick(session, storage, ended)
    session.commit()
    assert client.get(f"/evaluations/{job_id}/replay").status_code == 200


def test_organizers_schedule_and_cancel_from_the_site(
        org_client: FlaskClient, make_app: Callable[..., Any], session: Session,
        make: Factory, club: League) -> None:
    race, _ = knockout_race(session, make, league=club)
    race_id = race.id
    session.commit()  # (reading race.id now would begin a transaction: SQLite's write lock)
    form = org_client.get(f"/organize/races/{race_id}/live")
    assert form.status_code == 200 and b"Schedule a live event" in form.data
    starts = (utcnow() + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    bad = org_client.post(f"/organize/races/{race_id}/live", data={
        "title": "Finals", "kind": "showcase", "starts_at": starts, "size": 4, "delay_s": 5})
    assert bad.status_code == 200 and b"a showcase airs the best runs of a time trial" in bad.data
    r = org_client.post(f"/organize/races/{race_id}/live", data={
        "title": "Finals", "kind": "finals", "starts_at": starts, "size": "", "delay_s": 5})
    assert r.status_code == 302, r.get_data(as_text=True)
    (event,) = session.scalars(sa.select(LiveEvent)).all()
    event_id = event.id
    assert (event.title, event.kind, event.status) == ("Finals", "finals", "scheduled")
    session.rollback()  # end the read: on SQLite a transaction holds the write lock
    page = org_client.get(r.headers["Location"])
    assert b"Finals" in page.data and b"Cancel" in page.data
    visitor = make_app().test_client()
    assert b"Cancel" not in visitor.get(f"/events/{event_id}").data  # only organizers
    assert visitor.get(f"/organize/races/{race_id}/live").status_code in (302, 404)
    assert org_client.post(f"/events/{event_id}/cancel").status_code == 302
    assert session.get_one(LiveEvent, event_id).status == LiveEventStatus.CANCELLED


def test_the_api_schedules_lists_shows_and_cancels(api: ApiClient, session: Session,
                                                   make: Factory, club: League) -> None:
    race, entries = knockout_race(session, make, league=club)
    organizer = token_for(session, make.organizer(session, club))
    racer = token_for(session, entries[0].racer)
    session.commit()
    plan = {"title": "Finals night", "kind": "finals",
            "starts_at": (utcnow() + dt.timedelta(hours=1)).isoformat() + "Z"}
    refused = api.post(f"/races/{race.id}/events", racer, json=plan)
    assert refused.status_code == 403
    assert error_of(api.post(f"/races/{race.id}/events", organizer,
                             json={**plan, "kind": "showcase"})) == (
        400, "invalid", "kind: a showcase airs the best runs of a time trial; this race is "
                        "head-to-head")
    r = api.post(f"/races/{race.id}/events", organizer, json=plan)
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert (body["title"], body["status"], body["slots"], body["watch"]) == (
        "Finals night", "scheduled", [], f"/events/{body['id']}/watch")
    assert api.post(f"/races/{race.id}/events", organizer, json=plan).status_code == 409
    listed = api.get(f"/races/{race.id}/events").get_json()["items"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert api.get(f"/events/{body['id']}").get_json()["kind"] == "finals"
    assert api.request("DELETE", f"/events/{body['id']}", racer).status_code == 403
    gone = api.request("DELETE", f"/events/{body['id']}", organizer)
    assert gone.status_code == 200 and gone.get_json()["status"] == "cancelled"
    assert api.request("DELETE", f"/events/{body['id']}", organizer).status_code == 409
    assert api.get("/events/2147483648").status_code == 404
    assert json.loads(api.get("/events/0").get_data())["error"]["code"] == "not_found"


def test_the_league_page_lists_its_live_events(client: FlaskClient, session: Session,
                                               make: Factory, storage: Storage,
                                               heat_replays: list[bytes]) -> None:
    event = put_on_air(session, make, storage, heat_replays, on_air_in_s=-3.0)
    slug = event.race.league.slug
    page = client.get(f"/leagues/{slug}").get_data(as_text=True)
    assert "Live events" in page and f"/events/{event.id}/watch" in page
    assert "Watch Finals night" in page and "live now" in page
    live.schedule(session, make.race(session, event.race.league, name="TT"),
                  make.organizer(session, event.race.league),
                  live.Plan("Showcase", LiveEventKind.SHOWCASE,
                            utcnow() + dt.timedelta(hours=1), size=3), utcnow())
    session.commit()
    time.sleep(1.1)  # past the visitors' page cache
    page = client.get(f"/leagues/{slug}").get_data(as_text=True)
    assert "Showcase" in page and "scheduled" in page


def test_the_close_confirmation_says_the_knockout_waits_for_the_event(
        org_client: FlaskClient, session: Session, make: Factory, club: League) -> None:
    race, _ = knockout_race(session, make, league=club)
    race_id = race.id
    live.schedule(session, race, make.organizer(session, club),
                  live.Plan("Finals night", LiveEventKind.FINALS,
                            utcnow() + dt.timedelta(hours=1)), utcnow())
    session.commit()
    page = org_client.get(f"/organize/races/{race_id}").get_data(as_text=True)
    assert "Closing runs the knockout finals first" in page
    assert "The knockout waits for the live event" in page and "Finals night" in page


def test_the_race_page_says_when_its_event_is_and_when_it_is_live(
        client: FlaskClient, login: Callable[[FlaskClient, User], FlaskClient],
        session: Session, make: Factory, storage: Storage, heat_replays: list[bytes]) -> None:
    race, _ = knockout_race(session, make)
    event = live.schedule(session, race, make.organizer(session, race.league),
                          live.Plan("Finals night", LiveEventKind.FINALS,
                                    utcnow() + dt.timedelta(hours=1)), utcnow())
    race_id, event_id, racer = race.id, event.id, make.user(session, "viewer")
    session.commit()
    login(client, racer)
    for _ in range(2):  # the second view is the page kept for this session
        page = client.get(f"/races/{race_id}").get_data(as_text=True)
        assert "Finals night" in page and f"/events/{event_id}\"" in page
        assert "live now" not in page
    session.get_one(LiveEvent, event_id).status = LiveEventStatus.LIVE
    session.commit()
    page = client.get(f"/races/{race_id}").get_data(as_text=True)
    assert "live now" in page and f"/events/{event_id}/watch" in page
