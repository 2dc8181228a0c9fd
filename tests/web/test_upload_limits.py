"""Limits on uploads, on the website and through the API: a racer's queued evaluations are
capped (an upload past the cap is refused, saying why, and stores nothing), one upload budget
per user is shared by the site and the API, and new races take a daily entry limit."""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.db import READ_ONLY
from league.models import Entry, EvaluationJob, JobStatus, PolicyModel, Race, User
from league.rules.races import DEFAULT_ENTRIES_PER_DAY
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory
from tests.web.api_support import ApiClient, error_of, open_race, token_for
from tests.web.garage_support import run_queued, upload

CAP_MESSAGE = ("you have 3 evaluations waiting or running, the most a racer may have at "
               "once: upload again when one of them finishes (nothing was stored)")


def counts(session: Session, user_id: int) -> tuple[int, int]:
    """The user's entries and models, as committed now."""
    session.rollback()
    session.connection(execution_options={READ_ONLY: True})
    entries = session.scalar(sa.select(sa.func.count(Entry.id))
                             .where(Entry.racer_id == user_id))
    models = session.scalar(sa.select(sa.func.count(PolicyModel.id))
                            .where(PolicyModel.owner_id == user_id))
    return entries or 0, models or 0


def racer(session: Session, make: Factory, name: str = "ada") -> User:
    user = make.user(session, name)
    session.commit()
    return user


# ------------------------------------------------------------------------ queued cap
def test_the_site_refuses_a_fourth_waiting_upload_and_takes_it_once_one_finishes(
        client: FlaskClient, login: Callable[..., FlaskClient], session: Session,
        make: Factory, db: Database, storage: Storage) -> None:
    league = make.league(session)
    first = open_race(session, make, league, name="One")
    second = open_race(session, make, league, name="Two")
    ada = racer(session, make)
    race_ids, ada_id = (first.id, second.id), ada.id
    login(client, ada)
    for k in range(3):  # the cap counts across races
        r = upload(client, race_ids[k % 2], make.policy(), name=f"m{k}")
        assert r.status_code == 302, r.get_data(as_text=True)
    r = upload(client, race_ids[1], make.policy(), name="m3")
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert CAP_MESSAGE in html.replace("&#39;", "'"), html
    assert counts(session, ada_id) == (3, 3)  # nothing stored
    run_queued(db, storage)  # one finishes...
    r = upload(client, race_ids[1], make.policy(), name="m3")  # ...and the same file goes in
    assert r.status_code == 302, r.get_data(as_text=True)
    assert counts(session, ada_id) == (4, 4)


def test_the_api_refuses_it_with_429_and_a_clear_message(make_app: Callable[..., Flask],
                                                         session: Session,
                                                         make: Factory) -> None:
    league = make.league(session)
    race = open_race(session, make, league)
    h2h = open_race(session, make, league, name="Duel", format="head-to-head")
    race_id, h2h_id = race.id, h2h.id
    ada = racer(session, make)
    ada_id = ada.id
    token = token_for(session, ada)
    other = token_for(session, racer(session, make, "bob"))
    api = ApiClient(make_app().test_client())
    for _ in range(3):
        assert api.upload(race_id, make.policy(), token).status_code == 201
    assert error_of(api.upload(race_id, make.policy(), token)) == \
        (429, "limit_exceeded", CAP_MESSAGE)
    assert counts(session, ada_id) == (3, 1)
    assert api.upload(race_id, make.policy(), other).status_code == 201  # each racer's own
    # a head-to-head entry queues no job of its own: it is neither refused nor counted
    assert api.upload(h2h_id, make.policy(), token).status_code == 201


def test_the_operator_sets_the_cap(make_app: Callable[..., Flask], session: Session,
                                   make: Factory) -> None:
    race_id = open_race(session, make).id
    token = token_for(session, racer(session, make))
    one = ApiClient(make_app(PADDOCK_MAX_QUEUED_PER_RACER="1").test_client())
    assert one.upload(race_id, make.policy(), token).status_code == 201
    status, code, message = error_of(one.upload(race_id, make.policy(), token))
    assert (status, code) == (429, "limit_exceeded")
    assert message.startswith("you have 1 evaluation waiting or running, the most")
    uncapped = ApiClient(make_app(PADDOCK_MAX_QUEUED_PER_RACER="0").test_client())
    for _ in range(4):
        assert uncapped.upload(race_id, make.policy(), token).status_code == 201
    session.rollback()
    assert session.scalar(sa.select(sa.func.count(EvaluationJob.id)).where(
        EvaluationJob.status == JobStatus.QUEUED)) == 5


# ------------------------------------------------------------------ one upload budget
def test_site_and_api_uploads_draw_from_one_budget_per_user(
        make_app: Callable[..., Flask], login: Callable[..., FlaskClient], session: Session,
        make: Factory) -> None:
    race_id = open_race(session, make).id
    ada = racer(session, make)
    token, bob = token_for(session, ada), token_for(session, racer(session, make, "bob"))
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_UPLOAD="2 per hour",
                   PADDOCK_MAX_QUEUED_PER_RACER="0")
    site = login(app.test_client(), ada)
    api = ApiClient(app.test_client())
    assert upload(site, race_id, make.policy()).status_code == 302
    assert api.upload(race_id, make.policy(), token).status_code == 201
    status, code, message = error_of(api.upload(race_id, make.policy(), token))
    assert (status, code) == (429, "rate_limited") and "2 per 1 hour" in message
    r = upload(site, race_id, make.policy())
    assert r.status_code == 429 and "too many requests" in r.get_data(as_text=True)
    assert api.upload(race_id, make.policy(), bob).status_code == 201  # bob's own budget
    assert api.get(f"/races/{race_id}", token).status_code == 200  # reading goes on


# ------------------------------------------------------------------ daily entry limit
def test_a_new_race_takes_the_default_daily_limit(make_app: Callable[..., Flask],
                                                  login: Callable[..., FlaskClient],
                                                  session: Session, make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    club = make.league(session, olga, "club")
    old = open_race(session, make, club, name="Older")  # made before: keeps no limit
    old_id = old.id
    session.commit()
    app = make_app()
    page = login(app.test_client(), olga).get("/organize/leagues/club/races/new")
    assert re.search(rf'name="max_entries_per_day"[^>]*value="{DEFAULT_ENTRIES_PER_DAY}"',
                     page.get_data(as_text=True))
    api = ApiClient(app.test_client())
    token = token_for(session, olga)
    body = {"track": "oval", "closes_at": "2030-01-01T00:00:00Z"}
    made = api.post("/leagues/club/races", token, json=body).get_json()
    assert made["max_entries_per_day"] == DEFAULT_ENTRIES_PER_DAY == 10
    unlimited = api.post("/leagues/club/races", token,
                         json={**body, "max_entries_per_day": None}).get_json()
    assert unlimited["max_entries_per_day"] is None
    session.rollback()
    assert session.get(Race, old_id).max_entries_per_day is None  # type: ignore[union-attr]
