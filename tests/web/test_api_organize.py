"""Organizers through the API: leagues, seasons, races, closing a race; and the refusals."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import EvaluationJob, JobStatus, League, Race, RaceStatus, Season, utcnow
from league.rules import leagues
from tests.support.dbfixtures import Factory
from tests.web.api_support import ApiClient, error_of, open_race, token_for

START = "2026-12-01T00:00:00Z"
END = "2027-03-01T00:00:00Z"


def test_an_organizer_creates_a_league(api: ApiClient, session: Session,
                                       make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    token = token_for(session, olga)
    r = api.post("/leagues", token, json={
        "slug": "night-club", "name": "Night  Club", "description": "After dark",
        "visibility": "private", "divisions": ["Gold", "Silver"]})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert (body["slug"], body["name"], body["visibility"]) == ("night-club", "Night Club",
                                                                "private")
    assert [(d["name"], d["tier"]) for d in body["divisions"]] == [("Gold", 1), ("Silver", 2)]
    assert body["can_manage"] and body["member"] and body["invite_code"]
    league = session.scalar(sa.select(League).where(League.slug == "night-club"))
    assert league is not None and league.invite_code == body["invite_code"]
    session.rollback()  # end the read: on SQLite a transaction holds the write lock
    plain = api.post("/leagues", token, json={"slug": "day-club", "name": "Day"}).get_json()
    assert plain["visibility"] == "public" and [d["name"] for d in plain["divisions"]] == [
        "Division 1"]


@pytest.mark.parametrize("body, status, message", [
    ({"slug": "club", "name": "Again"}, 409, "the slug 'club' is taken"),
    ({"slug": "No Spaces", "name": "x"}, 400,
     "a slug is 3-64 lowercase letters, digits and '-'"),
    ({"slug": "fine", "name": "x", "visibility": "secret"}, 400,
     "visibility: input should be 'public', 'unlisted' or 'private'"),
    ({"slug": "fine", "name": 12}, 400, "name: input should be a valid string"),
    ({"slug": "fine", "name": "x", "divisions": "Gold"}, 400,
     "divisions: input should be a valid array"),
    ({"name": "x"}, 400, "slug: field required"),
    ({"slug": "fine", "name": "x", "colour": "red"}, 400,
     "colour: extra inputs are not permitted"),
    ([1, 2], 400, "the request body: input should be an object"),
], ids=["taken", "bad slug", "bad visibility", "name type", "divisions type", "missing",
        "unknown field", "not an object"])
def test_a_league_that_cannot_be_created(api: ApiClient, session: Session, make: Factory,
                                         body: object, status: int, message: str) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    assert error_of(api.post("/leagues", token, json=body))[::2] == (status, message)


def test_only_organizers_create_leagues(api: ApiClient, session: Session,
                                        make: Factory) -> None:
    token = token_for(session, make.user(session, "ann"))
    assert error_of(api.post("/leagues", token, json={"slug": "mine", "name": "Mine"})) == (
        403, "forbidden", "only organizers can create leagues")
    assert api.post("/leagues", json={"slug": "mine", "name": "Mine"}).status_code == 401
    r = api.post("/leagues", token, data="slug=mine",
                 content_type="application/x-www-form-urlencoded")
    assert error_of(r)[:2] == (400, "bad_request")


def test_seasons_are_added_by_the_leagues_organizers(api: ApiClient, session: Session,
                                                     make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    make.league(session, olga, "secret", visibility="private")
    ann = make.user(session, "ann")
    boss, racer = token_for(session, olga), token_for(session, ann)
    r = api.post("/leagues/club/seasons", boss, json={
        "name": "Winter", "starts_at": START, "ends_at": "2027-03-01T01:00:00+01:00",
        "points_table": [10, 5, 1], "promote": 1, "relegate": 1})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert (body["name"], body["league"], body["status"], body["points_table"]) == (
        "Winter", "club", "planned", [10, 5, 1])
    assert (body["starts_at"], body["ends_at"]) == ("2026-12-01T00:00:00Z",
                                                    "2027-03-01T00:00:00Z")
    season = session.get(Season, body["id"])
    assert season is not None and season.ends_at == dt.datetime(2027, 3, 1)
    session.rollback()
    times = {"starts_at": START, "ends_at": END}
    assert error_of(api.post("/leagues/club/seasons", racer, json=times)) == (
        403, "forbidden", "only this league's organizers can do that")
    assert api.post("/leagues/secret/seasons", racer, json=times).status_code == 404
    assert error_of(api.post("/leagues/club/seasons", boss,
                             json={"starts_at": END, "ends_at": START})) == (
        400, "invalid", "a season must end after it starts")
    assert error_of(api.post("/leagues/club/seasons", boss,
                             json={"starts_at": "next monday", "ends_at": END}))[::2] == (
        400, "starts_at: input should be a valid datetime, invalid character in year")
    assert error_of(api.post("/leagues/club/seasons", boss,
                             json={**times, "points_table": [1, 5]}))[0] == 400


def test_an_organizer_schedules_a_race_with_every_setting(api: ApiClient, session: Session,
                                                          make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    club = make.league(session, olga, "club")
    season = leagues.create_season(session, club, olga, "Winter", utcnow(),
                                   utcnow() + dt.timedelta(days=90))
    session.commit()
    season_id, rookie_id = season.id, club.divisions[1].id
    token = token_for(session, olga)  # commits: the test's session holds no lock
    r = api.post("/leagues/club/races", token, json={
        "track": "oval", "closes_at": "2030-01-01T00:00:00Z"})
    assert r.status_code == 201, r.get_data(as_text=True)
    race = r.get_json()
    assert {k: race[k] for k in ("name", "track", "format", "laps", "trials", "ranking",
                                 "off_track_penalty", "collision_penalty", "time_cap",
                                 "min_laps", "seed_public", "mystery_track", "obstacles",
                                 "status", "season_id")} == {
        "name": "oval", "track": "oval", "format": "time-trial", "laps": 3, "trials": 3,
        "ranking": "total", "off_track_penalty": 5.0, "collision_penalty": 5.0,
        "time_cap": 180.0, "min_laps": None, "seed_public": False, "mystery_track": False,
        "obstacles": 0, "status": "scheduled", "season_id": None}
    assert isinstance(race["seed"], int)  # a random seed, kept secret until the race closes
    opens = dt.datetime.fromisoformat(race["opens_at"].rstrip("Z"))
    assert abs(opens - utcnow()) < dt.timedelta(minutes=1)
    full = {"name": "Finals", "track": "oval", "format": "head-to-head", "laps": 2,
            "trials": 1, "ranking": "best-lap", "off_track_penalty": 2, "collision_penalty": 3.5,
            "time_cap": 120, "min_laps": 1, "seed": 42, "obstacles": 2,
            "opens_at": "2029-06-01T10:00:00Z", "closes_at": "2029-06-02T10:00:00Z",
            "season_id": season_id, "division_ids": [rookie_id],
            "max_entries_per_day": 2, "max_entries_total": 5, "round_interval_s": 300,
            "heats_per_round": 2, "knockout_size": 4, "seed_public": True,
            "mystery_track": True}
    body = api.post("/leagues/club/races", token, json=full).get_json()
    for key, value in full.items():
        assert body[key] == value, key
    stored = session.get(Race, body["id"])
    assert stored is not None and [d.name for d in stored.divisions] == ["Rookie"]
    assert stored.opens_at == dt.datetime(2029, 6, 1, 10) and stored.knockout_size == 4


@pytest.mark.parametrize("change, message", [
    ({"track": "nowhere"}, "unknown track 'nowhere'; known tracks: oval, "),
    ({"track": "../etc/passwd"}, "a race's track is a library or imported track name"),
    ({"laps": 0}, "laps must be a whole number from 1 to"),
    ({"laps": "3"}, "laps: input should be a valid integer"),
    ({"ranking": "fastest"}, "ranking: input should be 'total', 'best-lap' or 'average-lap'"),
    ({"closes_at": "2020-01-01T00:00:00Z"}, "a race must close after it opens"),
    ({"season_id": 999999}, "season_id: no season 999999 in this league"),
    ({"division_ids": [999999]}, "division_ids: no division 999999 in this league"),
    ({"max_entries_total": -1}, "max_entries_total must be a whole number from 0 to 100000"),
    ({"closes_at": None}, "closes_at: input should be a valid datetime"),
], ids=["track", "path", "laps", "laps type", "ranking", "window", "season", "division",
        "limit", "closes_at"])
def test_a_race_that_cannot_be_scheduled(api: ApiClient, session: Session, make: Factory,
                                         change: dict[str, object], message: str) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    body = {"track": "oval", "closes_at": "2030-01-01T00:00:00Z", **change}
    status, code, text = error_of(api.post("/leagues/club/races", token, json=body))
    assert (status, code) == (400, "invalid") and message in text, text
    assert session.scalar(sa.select(sa.func.count(Race.id))) == 0


def test_races_are_scheduled_by_the_leagues_organizers_only(api: ApiClient, session: Session,
                                                            make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    other = make.user(session, "otto", "organizer")
    make.league(session, olga, "club")
    make.league(session, olga, "secret", visibility="private")
    make.league(session, other, "elsewhere")
    session.commit()
    body = {"track": "oval", "closes_at": "2030-01-01T00:00:00Z"}
    otto = token_for(session, other)
    assert error_of(api.post("/leagues/club/races", otto, json=body))[:2] == (403, "forbidden")
    assert api.post("/leagues/secret/races", otto, json=body).status_code == 404
    elsewhere = leagues.get_league(session, "elsewhere", other)
    season = leagues.create_season(session, elsewhere, other, "S", utcnow(),
                                   utcnow() + dt.timedelta(days=9))
    session.commit()
    r = api.post("/leagues/club/races", token_for(session, olga),
                 json={**body, "season_id": season.id})
    assert error_of(r)[2] == f"season_id: no season {season.id} in this league"


def test_an_organizer_closes_a_race_early(api: ApiClient, session: Session,
                                          make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    club = make.league(session, olga, "club")
    season = leagues.create_season(session, club, olga, "S", utcnow() - dt.timedelta(days=1),
                                   utcnow() + dt.timedelta(days=9), points_table=[10, 6])
    race = open_race(session, make, club, season=season)
    ann, bob = make.user(session, "ann"), make.user(session, "bob")
    for racer in (ann, bob):
        leagues.join_league(session, club, racer)
    make.result(session, make.entry(session, race, ann), 30.0)
    make.result(session, make.entry(session, race, bob), 32.0)
    queued = make.entry(session, race, bob)
    session.add(EvaluationJob(entry_id=queued.id))
    session.commit()
    path = f"/races/{race.id}/close"
    assert error_of(api.post(path, token_for(session, ann)))[:2] == (403, "forbidden")
    assert api.post(path).status_code == 401
    assert api.post("/races/999999/close", token_for(session, olga)).status_code == 404
    r = api.post(path, token_for(session, olga))
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["race"]["status"] == "closed" and body["race"]["closed_at"].endswith("Z")
    assert [(p["racer"], p["position"], p["points"]) for p in body["points"]] == [
        ("ann", 1, 10), ("bob", 2, 6)]
    job = session.scalar(sa.select(EvaluationJob).where(EvaluationJob.entry_id == queued.id))
    assert job is not None and job.status == JobStatus.CANCELLED
    session.rollback()
    again = api.post(path, token_for(session, olga)).get_json()
    assert again["points"] == body["points"]  # closing twice changes nothing
    session.expire_all()
    closed = session.get(Race, race.id)
    assert closed is not None and closed.status == RaceStatus.CLOSED
