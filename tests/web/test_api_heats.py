"""A head-to-head race through the API: its heats (newest first, paginated, filtered by racer)
and a racer's matchups; the visibility rules of the rest of the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

from league.models import Entry, JobStatus, Race, RaceStatus
from league.rules import leagues
from tests.league.test_heats_read import raced_heat
from tests.support.dbfixtures import Factory
from tests.web.api_support import ApiClient, error_of, token_for
from tests.web.test_matchups_pages import _duel

MIN = dt.timedelta(minutes=1)


def _race(session: Session, make: Factory, racers: int = 3,
          **kw: Any) -> tuple[Race, list[Entry]]:
    race = make.race(session, format="head-to-head", seed=7, name="Duel", **kw)
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(racers)]
    return race, entries


def test_heats_list_cars_results_and_replays(api: ApiClient, session: Session,
                                             make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    _, first = raced_heat(session, [a, b], winner=1, times=(43.25, 41.0), incidents=1)
    _, second = raced_heat(session, [a, c], winner=0, round_no=2)
    session.commit()
    body = api.get(f"/races/{race.id}/heats").get_json()
    assert body["pagination"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}
    newest, oldest = body["items"]
    assert (newest["title"], newest["evaluation_id"]) == ("Round 2", second.id)
    assert (oldest["title"], oldest["evaluation_id"]) == ("Round 1", first.id)
    assert oldest["raced"] and oldest["evaluation_status"] == "succeeded"
    assert oldest["winner_id"] == b.id and oldest["race_id"] == race.id
    assert oldest["replay"] == f"/api/v1/evaluations/{first.id}/replay"
    assert oldest["watch"] == f"/evaluations/{first.id}/replay"
    winner, loser = oldest["cars"]
    assert winner == {"entry_id": b.id, "racer": "r1", "model": "follower v1", "position": 1,
                      "status": "finished", "time_s": 41.0, "gap_s": None, "laps": 1,
                      "off_tracks": 4, "collisions": 2, "penalty_s": 5.0}
    assert (loser["racer"], loser["position"], loser["gap_s"], loser["off_tracks"],
            loser["collisions"], loser["penalty_s"]) == ("r0", 2, 2.25, 2, 0, 0.0)


def test_heats_not_raced_yet_have_no_replay(api: ApiClient, session: Session,
                                            make: Factory) -> None:
    race, (a, b, _) = _race(session, make)
    _, job = raced_heat(session, [a, b], job_status=JobStatus.QUEUED)
    session.commit()
    (heat,) = api.get(f"/races/{race.id}/heats").get_json()["items"]
    assert (heat["raced"], heat["evaluation_status"], heat["evaluation_id"]) == (
        False, "queued", job.id)
    assert heat["replay"] is None and heat["watch"] is None and heat["winner_id"] is None
    assert [car["position"] for car in heat["cars"]] == [None, None]


def test_heats_are_paginated_and_filtered_by_racer(api: ApiClient, session: Session,
                                                   make: Factory) -> None:
    race, (a, b, c) = _race(session, make)
    for n in range(1, 56):
        raced_heat(session, [a, b] if n % 5 else [b, c], round_no=n)
    session.commit()
    first = api.get(f"/races/{race.id}/heats").get_json()
    assert len(first["items"]) == 50 and first["pagination"]["pages"] == 2
    assert first["items"][0]["title"] == "Round 55"
    second = api.get(f"/races/{race.id}/heats", query_string={"page": 2}).get_json()
    assert [h["title"] for h in second["items"]] == [f"Round {n}" for n in (5, 4, 3, 2, 1)]
    small = api.get(f"/races/{race.id}/heats", query_string={"per_page": 7, "page": 3})
    assert small.get_json()["pagination"] == {"page": 3, "per_page": 7, "total": 55,
                                              "pages": 8}
    only_c = api.get(f"/races/{race.id}/heats", query_string={"racer": "r2"}).get_json()
    assert only_c["pagination"]["total"] == 11
    assert all("r2" in [car["racer"] for car in h["cars"]] for h in only_c["items"])
    nobody = api.get(f"/races/{race.id}/heats", query_string={"racer": "nobody"}).get_json()
    assert nobody["items"] == [] and nobody["pagination"]["total"] == 0
    status, code, message = error_of(api.get(f"/races/{race.id}/heats",
                                             query_string={"racer": "no one"}))
    assert (status, code) == (400, "invalid") and message.startswith("racer: ")


def test_a_time_trial_has_no_heats_or_matchups(api: ApiClient, session: Session,
                                               make: Factory) -> None:
    race = make.race(session, name="Sprint")
    make.entry(session, race, make.racer(session, "ann"))
    session.commit()
    for path in (f"/races/{race.id}/heats", f"/races/{race.id}/racers/ann/matchups"):
        assert error_of(api.get(path)) == (404, "not_found",
                                           f"race {race.id} is a time trial: it has no heats")
    assert api.get("/races/999999/heats").status_code == 404


def test_a_private_leagues_heats_are_for_its_members(api: ApiClient, session: Session,
                                                     make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    secret = make.league(session, olga, "secret", visibility="private")
    race, (a, b, _) = _race(session, make, league=secret)
    raced_heat(session, [a, b])
    mia, out = make.user(session, "mia"), make.user(session, "out")
    leagues.join_league(session, secret, mia, secret.invite_code)
    session.commit()
    heats, matchups = f"/races/{race.id}/heats", f"/races/{race.id}/racers/r0/matchups"
    for path in (heats, matchups):
        assert error_of(api.get(path))[:2] == (404, "not_found")
        assert error_of(api.get(path, token_for(session, out)))[:2] == (404, "not_found")
        assert api.get(path, token_for(session, mia)).status_code == 200
        assert api.get(path, "pdk_not-a-token").status_code == 401
    assert len(api.get(heats, token_for(session, olga)).get_json()["items"]) == 1


def test_a_racers_matchups(api: ApiClient, session: Session, make: Factory) -> None:
    race, entries = _duel(session, make)
    session.commit()
    body = api.get(f"/races/{race.id}/racers/ann/matchups").get_json()
    assert (body["race_id"], body["racer"]) == (race.id, "ann")
    assert {o["racer"] for o in body["opponents"]} == {"bob", "cy"}
    assert all(o["lost"] == 0 and o["heats"] == o["won"] > 0 for o in body["opponents"])
    assert all(h["position"] == 1 and "ann" not in h["opponents"] for h in body["heats"])
    assert [p["label"] for p in body["history"]] == ["R1", "R2", "R3"]
    for point in body["history"]:
        assert point["rating"] == pytest.approx(point["mu"] - 3 * point["sigma"])
    assert [(v["model"], v["point"]) for v in body["versions"]] == [
        ("follower v1", 0), ("follower v2", 2)]
    cy = api.get(f"/races/{race.id}/racers/cy/matchups").get_json()
    assert all(o["won"] == 0 for o in cy["opponents"])  # cy is last in every heat
    assert error_of(api.get(f"/races/{race.id}/racers/dan/matchups"))[:2] == (
        404, "not_found")
    assert error_of(api.get(f"/races/{race.id}/racers/x/matchups")) == (
        404, "not_found", "no racer 'x'")  # not a user name: nothing is looked up
