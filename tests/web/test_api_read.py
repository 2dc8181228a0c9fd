"""Reading through the API: tracks, leagues, races, leaderboards, the caller; who sees what."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from evaluator.track_library import iter_tracks
from league.models import ApiToken, Race, RaceStatus, Rating, User, utcnow
from league.rules import leagues
from tests.support.dbfixtures import Database, Factory
from tests.web.api_support import (
    ApiClient,
    error_of,
    open_race,
    token_for,
)
from tests.web.conftest import sign_in


def _leagues(session: Session, make: Factory) -> tuple[User, User, User]:
    """Public 'club', unlisted 'quiet' and private 'secret' leagues of organizer olga, with
    'mia' a member of 'secret' and 'out' a racer of no league."""
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club", description="The club")
    make.league(session, olga, "quiet", visibility="unlisted")
    secret = make.league(session, olga, "secret", visibility="private")
    mia = make.user(session, "mia")
    leagues.join_league(session, secret, mia, secret.invite_code)
    out = make.user(session, "out")
    session.commit()
    return olga, mia, out


def test_tracks_are_listed_with_their_geometry(api: ApiClient) -> None:
    known = [t.name for t in iter_tracks()]
    r = api.get("/tracks")
    body = r.get_json()
    assert r.status_code == 200 and [t["name"] for t in body["items"]] == known
    oval = body["items"][known.index("oval")]
    assert oval["source"] == "library" and 20 < oval["length_m"] < 90
    assert len(oval["digest"]) == 64
    assert body["pagination"] == {"page": 1, "per_page": 50, "total": len(known), "pages": 1}
    page = api.get("/tracks", query_string={"page": 2, "per_page": 3}).get_json()
    assert [t["name"] for t in page["items"]] == known[3:6]
    assert page["pagination"]["pages"] == -(-len(known) // 3)
    assert error_of(api.get("/tracks?page=abc")) == (
        400, "invalid", "page: input should be a valid integer, unable to parse string as an "
                        "integer")
    assert error_of(api.get("/tracks?per_page=0"))[2].startswith("per_page: input should be "
                                                                 "greater than or equal to 1")


def test_leagues_are_listed_for_the_caller(api: ApiClient, session: Session,
                                           make: Factory) -> None:
    olga, mia, out = _leagues(session, make)
    slugs = lambda r: [x["slug"] for x in r.get_json()["items"]]  # noqa: E731
    assert slugs(api.get("/leagues")) == ["club"]
    assert slugs(api.get("/leagues", token_for(session, out))) == ["club"]
    assert sorted(slugs(api.get("/leagues", token_for(session, mia)))) == ["club", "secret"]
    assert sorted(slugs(api.get("/leagues", token_for(session, olga)))) == [
        "club", "quiet", "secret"]
    r = api.get("/leagues", token_for(session, olga), query_string={"per_page": 2, "page": 2})
    assert r.get_json()["pagination"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}
    assert len(r.get_json()["items"]) == 1
    club = api.get("/leagues").get_json()["items"][0]
    assert club["description"] == "The club" and club["visibility"] == "public"
    assert [d["name"] for d in club["divisions"]] == ["Pro", "Rookie"]
    assert club["created_at"].endswith("Z")


def test_a_private_league_is_a_404_to_anyone_outside_it(api: ApiClient, session: Session,
                                                        make: Factory) -> None:
    olga, mia, out = _leagues(session, make)
    secret = leagues.get_league(session, "secret", olga)
    leagues.create_season(session, secret, olga, "Spring", utcnow(),
                          utcnow() + dt.timedelta(days=30))
    session.commit()
    assert error_of(api.get("/leagues/secret"))[:2] == (404, "not_found")
    assert api.get("/leagues/secret", token_for(session, out)).status_code == 404
    assert api.get("/leagues/no-such-league").status_code == 404
    member = api.get("/leagues/secret", token_for(session, mia)).get_json()
    assert (member["member"], member["can_manage"], member["invite_code"]) == (
        True, False, None)
    assert [s["name"] for s in member["seasons"]] == ["Spring"]
    assert member["seasons"][0]["points_table"][:3] == [25, 18, 15]
    boss = api.get("/leagues/secret", token_for(session, olga)).get_json()
    assert boss["can_manage"] and boss["invite_code"] == secret.invite_code
    quiet = api.get("/leagues/quiet").get_json()  # unlisted: anyone with the slug
    assert quiet["slug"] == "quiet" and quiet["member"] is False


def test_races_are_listed_and_filtered(api: ApiClient, session: Session,
                                       make: Factory) -> None:
    olga, mia, out = _leagues(session, make)
    club = leagues.get_league(session, "club", olga)
    secret = leagues.get_league(session, "secret", olga)
    live = open_race(session, make, club, name="Live")
    live.status = RaceStatus.OPEN
    soon = open_race(session, make, club, name="Soon")
    done = open_race(session, make, club, name="Done")
    done.status = RaceStatus.CLOSED
    hidden = open_race(session, make, secret, name="Hidden")
    session.commit()
    names = lambda r: [x["name"] for x in r.get_json()["items"]]  # noqa: E731
    assert names(api.get("/races")) == ["Live", "Soon", "Done"]
    assert names(api.get("/races?status=open")) == ["Live"]
    assert names(api.get("/races?status=closed&league=club")) == ["Done"]
    assert names(api.get("/races", token_for(session, mia))) == ["Live", "Hidden", "Soon",
                                                                  "Done"]
    assert api.get("/races?league=secret").status_code == 404
    assert names(api.get("/races?league=secret", token_for(session, mia))) == ["Hidden"]
    assert error_of(api.get("/races?status=finished"))[:2] == (400, "invalid")
    assert "status:" in error_of(api.get("/races?status=finished"))[2]
    assert names(api.get("/leagues/club/races?status=scheduled")) == ["Soon"]
    assert api.get("/leagues/secret/races").status_code == 404
    r = api.get("/leagues/club/races", query_string={"per_page": 1})
    assert names(r) == ["Live"] and r.get_json()["pagination"]["total"] == 3
    one = api.get(f"/races/{soon.id}").get_json()
    assert {k: one[k] for k in ("id", "name", "league", "track", "format", "laps", "trials",
                                "ranking", "status", "min_laps", "division_ids")} == {
        "id": soon.id, "name": "Soon", "league": "club", "track": "oval",
        "format": "time-trial", "laps": 1, "trials": 1, "ranking": "total",
        "status": "scheduled", "min_laps": None, "division_ids": []}
    assert one["opens_at"] == soon.opens_at.isoformat() + "Z"
    assert api.get(f"/races/{hidden.id}").status_code == 404
    assert api.get(f"/races/{hidden.id}", token_for(session, out)).status_code == 404
    assert api.get(f"/races/{hidden.id}", token_for(session, mia)).status_code == 200
    assert api.get("/races/999999").status_code == 404


def test_a_time_trial_leaderboard_ranks_each_racers_best(api: ApiClient, session: Session,
                                                         make: Factory) -> None:
    race = make.race(session)
    ann, bob, cat = (make.racer(session, n) for n in ("ann", "bob", "cat"))
    make.result(session, make.entry(session, race, ann), 31.5)
    make.result(session, make.entry(session, race, bob), 30.25)
    make.result(session, make.entry(session, race, bob), 33.0)
    make.result(session, make.entry(session, race, cat), None, laps=0, status="dnf")
    session.commit()
    body = api.get(f"/races/{race.id}/leaderboard").get_json()
    assert (body["format"], body["race_id"], body["ranking"]) == ("time-trial", race.id,
                                                                 "total")
    rows = [(x["rank"], x["racer"], x["time_s"], x["gap_s"], x["submissions"])
            for x in body["items"]]
    assert rows == [(1, "bob", 30.25, 0.0, 2), (2, "ann", 31.5, 1.25, 1),
                    (None, "cat", None, None, 1)]
    assert body["items"][2]["reason"] == "completed 0 of the 1 laps needed to be ranked"
    page = api.get(f"/races/{race.id}/leaderboard?per_page=2&page=2").get_json()
    assert [x["racer"] for x in page["items"]] == ["cat"]
    assert page["pagination"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}
    assert api.get("/races/999999/leaderboard").status_code == 404


def test_a_head_to_head_leaderboard_has_ratings_and_the_bracket(
        api: ApiClient, session: Session, make: Factory) -> None:
    race = make.race(session, format="head-to-head", knockout_size=2)
    entries = [make.entry(session, race, make.racer(session, n)) for n in ("ann", "bob", "cy")]
    for entry, mu in zip(entries[:2], (30.0, 27.0), strict=True):
        session.add(Rating(race_id=race.id, entry_id=entry.id, mu=mu, sigma=2.0, heats=3))
    session.commit()
    body = api.get(f"/races/{race.id}/leaderboard").get_json()
    assert body["format"] == "head-to-head"
    assert [(x["rank"], x["racer"], x["rating"]) for x in body["items"]] == [
        (1, "ann", 24.0), (2, "bob", 21.0), (None, "cy", 0.0)]
    bracket = body["bracket"]
    assert (bracket["size"], bracket["seeds"]) == (2, [entries[0].id, entries[1].id])
    final = bracket["stages"][0]
    assert final["name"] == "final" and final["matches"][0]["entry_ids"] == [
        entries[0].id, entries[1].id]
    assert bracket["champion_id"] is None
    plain = make.race(session, race.league, format="head-to-head", name="No knockout")
    session.commit()
    assert api.get(f"/races/{plain.id}/leaderboard").get_json()["bracket"] is None


def test_me_needs_a_token_and_shows_its_user(api: ApiClient, session: Session,
                                             make: Factory) -> None:
    ada = make.user(session, "ada")
    token = token_for(session, ada)
    r = api.get("/me")
    assert error_of(r)[:2] == (401, "unauthorized") and "Bearer" in error_of(r)[2]
    me = api.get("/me", token).get_json()
    assert (me["id"], me["name"], me["email"], me["role"], me["can_organize"]) == (
        ada.id, "ada", "ada@example.org", "racer", False)


def test_bad_tokens_are_refused_everywhere(api: ApiClient, session: Session,
                                           make: Factory) -> None:
    ada = make.user(session, "ada")
    token = token_for(session, ada)
    for header in ("Basic YWRhOnB3", "Bearer", "Bearer pdk_not-a-token", "Token " + token):
        r = api.get("/leagues", headers={"Authorization": header})
        assert error_of(r)[:2] == (401, "unauthorized"), header
    row = session.scalar(sa.select(ApiToken).where(ApiToken.user_id == ada.id))
    assert row is not None
    row.revoked_at = utcnow()
    session.commit()
    r = api.get("/me", token)
    assert error_of(r) == (401, "unauthorized", "the API token is unknown or revoked")
    assert api.get("/leagues", token).status_code == 401
    assert api.get("/tracks", token).status_code == 200  # needs no identity at all


def test_the_website_login_is_not_an_api_identity(client: FlaskClient, session: Session,
                                                  make: Factory) -> None:
    ada = make.user(session, "ada")
    session.commit()
    api = ApiClient(sign_in(client, ada))
    assert api.get("/me").status_code == 401
    r = api.post("/leagues", json={"slug": "mine", "name": "Mine"})
    assert r.status_code == 401


def test_a_tokens_use_is_recorded_at_most_once_a_minute(api: ApiClient, session: Session,
                                                        make: Factory) -> None:
    ada = make.user(session, "ada")
    token = token_for(session, ada)

    def last_used() -> dt.datetime | None:
        value = session.scalar(sa.select(ApiToken.last_used_at)
                               .where(ApiToken.user_id == ada.id))
        session.rollback()  # end the read: on SQLite a transaction holds the write lock
        return value

    assert last_used() is None
    assert api.get("/me", token).status_code == 200
    first = last_used()
    assert first is not None and abs(utcnow() - first) < dt.timedelta(seconds=30)
    assert api.get("/me/entries", token).status_code == 200
    assert last_used() == first  # within the minute: nothing written
    old = first - dt.timedelta(minutes=5)
    session.execute(sa.update(ApiToken).values(last_used_at=old))
    session.commit()
    assert api.get("/me", token).status_code == 200
    assert last_used() > old  # type: ignore[operator]


def test_reads_take_no_write_lock(db: Database, api: ApiClient, session: Session,
                                  make: Factory) -> None:
    """A GET whose token use is already recorded reads only: it passes a held write lock."""
    ada = make.user(session, "ada")
    token = token_for(session, ada)
    assert api.get("/me", token).status_code == 200  # records the use
    race = make.race(session)
    session.commit()
    answers: list[int] = []

    def read() -> None:
        answers.append(api.get("/me", token).status_code)
        answers.append(api.get(f"/races/{race.id}", token).status_code)

    with db.engine.connect() as holder:
        lock = holder.begin()  # SQLite: BEGIN IMMEDIATE, the database's one write lock
        if db.backend == "postgresql":
            holder.execute(sa.select(ApiToken).with_for_update())  # every token row
            holder.execute(sa.select(Race).with_for_update())
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=5.0)
        waited = reader.is_alive()
        lock.rollback()
        reader.join()
    assert not waited, "a read waited for the write lock"
    assert answers == [200, 200]
