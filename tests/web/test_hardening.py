"""Abuse a public site sees: made-up tokens against rate limits, huge numbers in URLs, junk
query strings against the page cache, out-of-range settings that would break the scheduler."""

from __future__ import annotations

import datetime as dt

import pytest

from league.errors import InvalidInput
from league.rules import accounts, leagues
from tests.support.dbfixtures import PASSWORD
from tests.web.api_support import token_for


def test_made_up_bearer_headers_do_not_buy_fresh_login_attempts(make_app, make, session):
    make.user(session, "ada")
    session.commit()
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="2 per minute").test_client()
    for n in range(2):
        client.post("/login", data={"login": "ada", "password": "nope"},
                    headers={"Authorization": f"Bearer pdk_fake{n}"})
    r = client.post("/login", data={"login": "ada", "password": PASSWORD},
                    headers={"Authorization": "Bearer pdk_fake9"})
    assert r.status_code == 429


def test_every_token_of_one_user_shares_the_api_budget(make_app, make, session):
    user = make.user(session, "ada")
    first, second = token_for(session, user, "one"), token_for(session, user, "two")
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_API="3 per minute").test_client()
    for token in (first, second, first):
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 200
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize("path", [
    "/races/99999999999999999999999", "/garage/entries/99999999999999999999999",
    "/replays/99999999999999999999999", "/evaluations/1/replay?trial=99999999999999999999",
    "/api/v1/races/99999999999999999999999", "/api/v1/entries/99999999999999999999999",
])
def test_huge_numbers_in_urls_are_not_found(client, login, make, session, path):
    login(client, make.user(session, "ada"))
    session.commit()
    assert client.get(path).status_code in (404, 400)


def test_huge_page_numbers_are_fine(client, make, session):
    make.league(session)
    session.commit()
    assert client.get("/leagues?page=99999999999999999999").status_code == 200
    assert client.get("/api/v1/leagues?page=99999999999999999999").status_code == 400


def test_junk_query_strings_share_the_cached_page(app, client, make, session):
    from web import pagecache

    race = make.race(session)
    session.commit()
    for n in range(20):
        assert client.get(f"/races/{race.id}?junk={n}").status_code == 200
    with app.app_context():
        keys = pagecache.kept().pages.keys()
    assert len([k for k in keys if k[1] == f"/races/{race.id}"]) == 1


@pytest.mark.parametrize("settings, message", [
    ({"knockout_size": 3}, "knockout_size"),
    ({"heats_per_round": 0}, "heats_per_round"),
    ({"round_interval_s": 10**14}, "round_interval_s"),
    ({"max_entries_total": 10**12}, "max_entries_total"),
    ({"track": "oval.CSV"}, "not a path"),
    ({"track": "../oval"}, "not a path"),
])
def test_race_settings_out_of_range_are_refused(session, make, settings, message):
    league = make.league(session)
    with pytest.raises(InvalidInput, match=message):
        make.race(session, league, **settings)


def test_points_tables_and_divisions_are_bounded(session, make):
    league = make.league(session)
    org = make.organizer(session, league)
    start = dt.datetime(2026, 1, 1)
    for table in ([3_000_000_000], [1] * 1001, ["10", 5], [True]):
        with pytest.raises(InvalidInput, match="points table"):
            leagues.create_season(session, league, org, "S", start,
                                  start + dt.timedelta(days=9), points_table=table)
    with pytest.raises(InvalidInput, match="divisions"):
        leagues.create_league(session, org, "many", "Many", divisions=[f"D{i}" for i in range(21)])


def test_email_addresses_with_invisible_characters_are_refused(session):
    with pytest.raises(InvalidInput, match="not an e-mail address"):
        accounts.create_user(session, "ada", "a\u200bda@example.org", PASSWORD)
    user = accounts.create_user(session, "bob", "ＢＯＢ@example.org", PASSWORD)
    assert user.email == "bob@example.org"
