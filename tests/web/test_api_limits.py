"""Rate limits of the API: one budget per token (or address) for the whole API, and uploads."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy.orm import Session

from tests.support.dbfixtures import Factory
from tests.web.api_support import ApiClient, error_of, open_race, token_for


def test_the_whole_api_shares_one_limit_per_token(make_app: Callable[..., Flask],
                                                  session: Session, make: Factory) -> None:
    ann, bob = make.user(session, "ann"), make.user(session, "bob")
    first, second = token_for(session, ann), token_for(session, bob)
    api = ApiClient(make_app(RATELIMIT_ENABLED=True, RATELIMIT_API="3 per minute")
                    .test_client())
    for path in ("/me", "/leagues", "/races"):  # different endpoints, one budget
        r = api.get(path, first)
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "3"
    r = api.get("/me/entries", first)
    status, code, message = error_of(r)
    assert (status, code) == (429, "rate_limited")
    assert message == "too many requests: the limit is 3 per 1 minute; try again later"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    assert api.get("/me", second).status_code == 200  # another token has its own budget
    assert api.post("/leagues", first, json={}).status_code == 429  # writes count too


def test_uploads_have_their_own_limit(make_app: Callable[..., Flask], session: Session,
                                      make: Factory) -> None:
    race = open_race(session, make)
    race_id = race.id
    token = token_for(session, make.user(session, "ann"))
    api = ApiClient(make_app(RATELIMIT_ENABLED=True, RATELIMIT_UPLOAD="2 per hour")
                    .test_client())
    assert api.upload(race_id, make.policy(), token).status_code == 201
    assert api.upload(race_id, b"junk", token).status_code == 400  # refusals count too
    status, code, message = error_of(api.upload(race_id, make.policy(), token))
    assert (status, code) == (429, "rate_limited") and "2 per 1 hour" in message
    assert api.get(f"/races/{race_id}", token).status_code == 200  # reading goes on
