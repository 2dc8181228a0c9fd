"""Entries through the API: uploads, refusals, following an entry, its evaluation and replay,
re-runs and disqualification; another racer sees none of it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import replay
from evaluator.race import run_race
from evaluator.validate import validate_policy
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobKind,
    JobStatus,
    PolicyModel,
    Race,
    RaceStatus,
    Result,
    User,
)
from league.rules import leagues
from league.rules.races import race_config
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory
from tests.web.api_support import (
    ApiClient,
    error_of,
    evaluate_queued,
    open_race,
    token_for,
)

METADATA = {"action_space_type": "continuous", "name": "sidecar",
            "action_space": {"steering_angle": {"low": -30, "high": 30},
                             "speed": {"low": 1.0, "high": 1.0}}}


def _setup(session: Session, make: Factory, **race: object) -> tuple[Race, User, User, User]:
    """An open race in the public league 'club'; its organizer, racer ann and racer bob."""
    olga = make.user(session, "olga", "organizer")
    league = make.league(session, olga, "club")
    r = open_race(session, make, league, **race)
    ann, bob = make.user(session, "ann"), make.user(session, "bob")
    session.commit()
    return r, olga, ann, bob


def _stored_models(storage: Storage) -> list[Path]:
    return [p for p in (storage.root / "models").rglob("*") if p.is_file()] \
        if (storage.root / "models").exists() else []


def test_an_upload_is_validated_stored_and_queued(api: ApiClient, session: Session,
                                                  storage: Storage, make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make)
    token = token_for(session, ann)
    data = make.policy()
    r = api.upload(race.id, data, token)
    assert r.status_code == 201, r.get_data(as_text=True)
    entry = r.get_json()
    assert (entry["race_id"], entry["racer"], entry["user_id"]) == (race.id, "ann", ann.id)
    model = entry["model"]
    assert (model["name"], model["version"], model["size_bytes"]) == ("follower", 1, len(data))
    assert model["sha256"] == hashlib.sha256(data).hexdigest()
    assert storage.get("models", model["sha256"]) == data
    assert model["metadata"]["action_space_type"] == "continuous"
    assert entry["status"]["status"] == "queued" and entry["status"]["attempts"] == 0
    (job,) = entry["evaluations"]
    assert (job["status"], job["kind"], job["id"]) == ("queued", "time_trial",
                                                       entry["status"]["job_id"])
    assert api.get(f"/entries/{entry['id']}", token).get_json() == entry
    again = api.upload(race.id, make.policy(1.0), token, metadata=json.dumps(METADATA),
                       name="Second try")
    assert again.status_code == 201
    assert (again.get_json()["model"]["name"], again.get_json()["model"]["version"]) == (
        "Second try", 1)
    sidecar = api.upload(race.id, make.policy(1.0), token,
                         metadata=json.dumps(METADATA).encode()).get_json()
    assert sidecar["model"]["name"] == "sidecar"
    assert sidecar["model"]["metadata"]["action_space"]["speed"] == {"low": 1.0, "high": 1.0}


def test_a_refused_model_stores_nothing(api: ApiClient, session: Session, storage: Storage,
                                        make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make)
    race_id, token = race.id, token_for(session, ann)
    status, code, message = error_of(api.upload(race.id, b"not an onnx file", token))
    assert (status, code) == (400, "invalid") and message.startswith("model refused: ")
    bad_meta = dict(METADATA, action_space_type="wobbly")
    status, code, message = error_of(api.upload(race.id, make.policy(), token,
                                                metadata=json.dumps(bad_meta)))
    assert (status, code) == (400, "invalid") and "wobbly" in message
    assert error_of(api.upload(race.id, make.policy(), token, metadata="{not json"))[0] == 400
    assert session.scalar(sa.select(sa.func.count(PolicyModel.id))) == 0
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 0
    assert session.scalar(sa.select(sa.func.count(EvaluationJob.id))) == 0
    session.rollback()  # end the read: on SQLite a transaction holds the write lock
    assert _stored_models(storage) == []
    path = f"/races/{race_id}/entries"
    r = api.post(path, token, data={"name": "no file"}, content_type="multipart/form-data")
    assert error_of(r) == (400, "invalid", "model: field required")
    r = api.post(path, token, json={"model": "x"})
    assert error_of(r) == (400, "invalid", "model: field required")


def test_uploads_the_race_does_not_take(api: ApiClient, session: Session,
                                        make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make, max_entries_total=1)
    token = token_for(session, ann)
    policy = make.policy()
    assert error_of(api.upload(race.id, policy, None))[:2] == (401, "unauthorized")
    assert api.upload(999999, policy, token).status_code == 404
    assert api.upload(race.id, policy, token).status_code == 201
    assert error_of(api.upload(race.id, policy, token)) == (
        429, "limit_exceeded", "you have used all 1 entries of this race")
    club = race.league
    later = open_race(session, make, club, name="Later",
                      opens_at=dt.datetime.now() + dt.timedelta(days=2))
    done = open_race(session, make, club, name="Done")
    done.status = RaceStatus.CLOSED
    pros = open_race(session, make, club, name="Pros only", divisions=[club.divisions[0]])
    secret = make.league(session, olga, "secret", visibility="private")
    hidden = open_race(session, make, secret, name="Hidden")
    session.commit()
    code, _, message = error_of(api.upload(later.id, policy, token))
    assert code == 409 and message.startswith("this race opens at ")
    assert error_of(api.upload(done.id, policy, token)) == (409, "conflict",
                                                           "this race is closed")
    assert error_of(api.upload(pros.id, policy, token)) == (403, "forbidden",
                                                           "this race is for racers of Pro")
    assert error_of(api.upload(hidden.id, policy, token))[:2] == (404, "not_found")


def test_a_body_over_the_size_limit_is_a_413(api: ApiClient, session: Session,
                                             make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make)
    r = api.upload(race.id, b"\0" * (18 * 1024 * 1024), token_for(session, ann))
    assert error_of(r)[:2] == (413, "too_large")
    r = api.post("/leagues", token_for(session, olga), data=b"{" * (18 * 1024 * 1024),
                 content_type="application/json")
    assert r.status_code == 413


def test_an_entry_is_seen_by_its_racer_and_the_organizers_only(
        api: ApiClient, session: Session, make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make)
    entry = api.upload(race.id, make.policy(), token_for(session, ann)).get_json()
    path = f"/entries/{entry['id']}"
    assert api.get(path, token_for(session, ann)).status_code == 200
    assert api.get(path, token_for(session, olga)).get_json()["racer"] == "ann"
    assert error_of(api.get(path, token_for(session, bob)))[:2] == (404, "not_found")
    assert error_of(api.get(path))[:2] == (401, "unauthorized")
    assert api.get("/entries/999999", token_for(session, ann)).status_code == 404
    job = f"/evaluations/{entry['status']['job_id']}"
    assert api.get(job, token_for(session, ann)).get_json()["status"] == "queued"
    assert api.get(job, token_for(session, bob)).status_code == 404
    assert api.get(job).status_code == 404
    assert api.get(f"{job}/replay", token_for(session, bob)).status_code == 404
    mine = api.get("/me/entries", token_for(session, ann)).get_json()
    assert [e["id"] for e in mine["items"]] == [entry["id"]]
    assert api.get("/me/entries", token_for(session, bob)).get_json()["items"] == []


def test_the_league_result_is_the_one_at_home(db: Database, api: ApiClient, session: Session,
                                              storage: Storage, make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make, trials=2)
    token = token_for(session, ann)
    data = make.policy()
    entry = api.upload(race.id, data, token).get_json()
    job_id = evaluate_queued(db, storage)
    assert job_id == entry["status"]["job_id"]
    status = api.get(f"/entries/{entry['id']}", token).get_json()["status"]
    assert (status["status"], status["result_status"], status["attempts"]) == (
        "succeeded", "finished", 1)
    home = run_race(race_config(race), [validate_policy(data)], record=False).to_dict()
    evaluation = api.get(f"/evaluations/{job_id}", token).get_json()
    assert evaluation["result"] == home
    assert status["time_s"] == home["ranking_time_s"]
    assert [r["trial"] for r in evaluation["replays"]] == [1, 2]
    assert (evaluation["entry_id"], evaluation["race_id"], evaluation["heat_id"]) == (
        entry["id"], race.id, None)
    r = api.get(f"/evaluations/{job_id}/replay", token)
    assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment")
    decoded = replay.decode(r.get_data())
    assert decoded.meta["trial"] == home["ranked_trial"] and decoded.meta["job"] == job_id
    second = api.get(f"/evaluations/{job_id}/replay?trial=2", token_for(session, olga))
    assert replay.decode(second.get_data()).meta["trial"] == 2
    assert error_of(api.get(f"/evaluations/{job_id}/replay?trial=3", token))[0] == 404
    assert error_of(api.get(f"/evaluations/{job_id}/replay?trial=x", token))[:2] == (
        400, "invalid")
    # replays are public like the race they belong to; the result details are not
    watched = api.get(f"/evaluations/{job_id}/replay?trial=2", token_for(session, bob))
    assert replay.decode(watched.get_data()).meta["trial"] == 2
    assert api.get(f"/evaluations/{job_id}/replay").status_code == 200
    assert api.get(f"/evaluations/{job_id}", token_for(session, bob)).status_code == 404
    race.league.visibility = "private"
    session.commit()
    assert api.get(f"/evaluations/{job_id}/replay").status_code == 404
    assert api.get(f"/evaluations/{job_id}/replay", token_for(session, bob)).status_code == 404
    assert api.get(f"/evaluations/{job_id}/replay", token_for(session, olga)).status_code == 200
    race.league.visibility = "public"
    session.commit()
    board = api.get(f"/races/{race.id}/leaderboard").get_json()
    assert [(x["racer"], x["time_s"]) for x in board["items"]] == [
        ("ann", home["ranking_time_s"])]


def test_heats_are_seen_by_everyone_who_sees_the_race(api: ApiClient, session: Session,
                                                      make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    ids = []
    for slug, visibility in (("club", "public"), ("secret", "private")):
        league = make.league(session, olga, slug, visibility=visibility)
        race = make.race(session, league, format="head-to-head")
        entries = [make.entry(session, race, make.racer(session, f"{slug}-{n}"))
                   for n in ("a", "b")]
        heat = Heat(race_id=race.id, round_no=1, seed=1, entry_ids=[e.id for e in entries])
        session.add(heat)
        session.flush()
        job = EvaluationJob(kind=JobKind.HEAT, heat_id=heat.id, status=JobStatus.SUCCEEDED)
        session.add(job)
        session.flush()
        data = {"format": "head-to-head", "status": "finished", "trials": [],
                "positions": [1, 0], "cars": [{"name": "a"}, {"name": "b"}]}
        session.add(Result(job_id=job.id, status="finished", data=data))
        ids.append(job.id)
    session.commit()
    public = api.get(f"/evaluations/{ids[0]}").get_json()
    assert (public["kind"], public["entry_id"], public["result"]["positions"]) == (
        "heat", None, [1, 0])
    assert api.get(f"/evaluations/{ids[1]}").status_code == 404
    assert api.get(f"/evaluations/{ids[1]}", token_for(session, olga)).status_code == 200
    assert api.get(f"/evaluations/{ids[0]}/replay").status_code == 404  # none stored


def test_organizers_rerun_and_disqualify(api: ApiClient, session: Session,
                                         make: Factory) -> None:
    race, olga, ann, bob = _setup(session, make)
    boss, racer = token_for(session, olga), token_for(session, ann)
    entry = api.upload(race.id, make.policy(), racer).get_json()
    path = f"/entries/{entry['id']}"
    rerun = api.post(f"{path}/rerun", boss)
    assert rerun.status_code == 201
    assert (rerun.get_json()["status"], rerun.get_json()["entry_id"]) == ("queued",
                                                                         entry["id"])
    assert error_of(api.post(f"{path}/rerun", racer))[:2] == (403, "forbidden")
    assert error_of(api.post(f"{path}/rerun", token_for(session, bob)))[0] == 404
    assert error_of(api.post(f"{path}/disqualify", racer, json={"reason": "mine"}))[0] == 403
    assert error_of(api.post(f"{path}/disqualify", boss, json={})) == (
        400, "invalid", "reason: field required")
    assert error_of(api.post(f"{path}/disqualify", boss, json={"reason": 7})) == (
        400, "invalid", "reason: input should be a valid string")
    assert error_of(api.post(f"{path}/disqualify", boss, json={"reason": "x", "why": 1})) == (
        400, "invalid", "why: extra inputs are not permitted")
    assert error_of(api.post(f"{path}/disqualify", boss, data="{oops",
                             content_type="application/json")) == (
        400, "bad_request", "the request body is not valid JSON")
    assert error_of(api.post(f"{path}/disqualify", boss, json={"reason": "  "})) == (
        400, "invalid", "a disqualification needs a reason")
    r = api.post(f"{path}/disqualify", boss, json={"reason": "copied model"})
    body = r.get_json()
    assert r.status_code == 200 and body["disqualified"] and \
        body["disqualified_reason"] == "copied model"
    assert [e["status"] for e in body["evaluations"]] == ["cancelled", "cancelled"]
    assert body["status"]["reason"] == "disqualified: copied model"
    assert error_of(api.post(f"{path}/rerun", boss)) == (
        409, "conflict", "a disqualified entry is not re-run")


def test_organizers_of_a_private_league_see_its_entries(api: ApiClient, session: Session,
                                                        make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    secret = make.league(session, olga, "secret", visibility="private")
    race = open_race(session, make, secret)
    mia, out = make.user(session, "mia"), make.user(session, "out")
    leagues.join_league(session, secret, mia, secret.invite_code)
    session.commit()
    entry = api.upload(race.id, make.policy(), token_for(session, mia)).get_json()
    assert api.get(f"/entries/{entry['id']}", token_for(session, olga)).status_code == 200
    assert api.get(f"/entries/{entry['id']}", token_for(session, out)).status_code == 404
    assert api.upload(race.id, make.policy(), token_for(session, out)).status_code == 404
    assert api.get(f"/races/{race.id}/leaderboard", token_for(session, out)).status_code == 404
