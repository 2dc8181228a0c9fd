"""Head-to-bot races on the site and in the API: scheduling one by form and by API (bad bot
settings refused with a clear error, nothing created), the race page naming the bots (and a
kept copy of it changing with them), and end to end: a real worker process evaluates an
entry with the bots on track, the leaderboard ranks it like a time trial and its replay
names the bots."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from evaluator import cli, replay
from league.models import EvaluationJob, JobKind, JobStatus, Race, Replay
from league.rules import races, submissions
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory
from tests.support.pages import all_races, field_errors, fresh
from tests.support.workers import league_result, run_worker_once
from tests.web.api_support import ApiClient, error_of, open_race, token_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RACE = {"name": "Bots", "track": "oval", "format": "head-to-bot", "laps": "1",
        "ranking": "total", "off_track_penalty": "5", "collision_penalty": "5", "trials": "2",
        "time_cap": "60", "obstacles": "0", "seed": "99", "conditions_preset": "none",
        "bot_count": "3", "bot_speeds": "1.2, 1.6, 2", "opens_at": "2026-07-01T18:00",
        "closes_at": "2026-07-08T18:00", "season": "0", "round_interval_s": "600",
        "heats_per_round": "1", "knockout_size": "0"}


# ---------------------------------------------------------------------------- the form
def test_an_organizer_schedules_a_head_to_bot_race(org_client: FlaskClient,
                                                   session: Session) -> None:
    form = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    assert '<option value="head-to-bot">Head-to-bot</option>' in form
    assert 'name="bot_count"' in form and 'name="bot_speeds"' in form
    r = org_client.post("/organize/leagues/club/races/new", data=RACE)
    assert r.status_code == 302, r.get_data(as_text=True)
    (race,) = all_races(session)
    assert race.format == "head-to-bot"
    assert race.bots == [{"speed": 1.2}, {"speed": 1.6}, {"speed": 2.0}]
    assert race.config()["bots"] == race.bots
    edit = org_client.get(f"/organize/races/{race.id}/edit").get_data(as_text=True)
    assert re.search(r'name="bot_count"[^>]*value="3"', edit)
    assert re.search(r'name="bot_speeds"[^>]*value="1.2, 1.6, 2"', edit)
    manage = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    assert "Bot 1 (1.2 m/s), Bot 2 (1.6 m/s), Bot 3 (2 m/s)" in manage


def test_one_speed_is_every_bots_and_other_formats_have_none(org_client: FlaskClient,
                                                             session: Session) -> None:
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "bot_count": "2", "bot_speeds": "1.5"})
    assert r.status_code == 302, r.get_data(as_text=True)
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "name": "Alone", "format": "time-trial"})
    assert r.status_code == 302, r.get_data(as_text=True)
    bots, alone = all_races(session)
    assert bots.bots == [{"speed": 1.5}, {"speed": 1.5}]
    assert (alone.format, alone.bots) == ("time-trial", [])
    assert "bots" not in alone.config()  # a time trial's settings read as they always did


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"bot_speeds": "fast"}, "bot_speeds", "speeds in m/s, one for every bot or one a bot"),
    ({"bot_speeds": "9"}, "bot_speeds", "bot 1's speed must be 0.5 to 4 m/s, got 9.0"),
    ({"bot_speeds": "1, 0.1, 2"}, "bot_speeds", "bot 2's speed must be 0.5 to 4 m/s"),
    ({"bot_count": "2"}, "bot_speeds", "3 speeds for 2 bots: give one speed for every bot"),
    ({"bot_count": "7", "bot_speeds": "1"}, "bot_count", "Number must be between 1 and 6."),
    ({"bot_count": "0", "bot_speeds": "1"}, "bot_count", "Number must be between 1 and 6."),
], ids=["not a number", "too fast", "too slow", "count and speeds", "too many", "none"])
def test_bad_bots_are_refused_on_the_form(org_client: FlaskClient, session: Session,
                                          change: dict[str, str], field: str,
                                          message: str) -> None:
    r = org_client.post("/organize/leagues/club/races/new", data={**RACE, **change})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert any(message in e for e in field_errors(html, field)), field_errors(html, field)
    assert 'value="Bots"' in html  # what was typed is kept
    assert all_races(session) == []


# ------------------------------------------------------------------------ the race page
def test_the_race_page_names_the_bots_and_follows_their_change(
        client: FlaskClient, session: Session, make: Factory, login: Any) -> None:
    race = open_race(session, make, format="head-to-bot", bots=[{"speed": 1.6}, {"speed": 2}])
    racer = make.user(session, "ada")
    session.commit()
    enter = login(client, racer).get(f"/garage/races/{race.id}/enter").get_data(as_text=True)
    assert "<dt>Bots</dt><dd>Bot 1 (1.6 m/s), Bot 2 (2 m/s)</dd>" in enter
    client.post("/logout")
    page = client.get(f"/races/{race.id}").get_data(as_text=True)
    assert "Head-to-bot" in page
    assert re.search(r'<dd class="race-bots">Bot 1 \(1.6 m/s\), Bot 2 \(2 m/s\) ', page)
    assert "for hitting a bot from behind" in page
    assert "--race" in page  # racers can race it at home
    # the kept copy of the page goes when the bots change
    races.update_race(session, race, make.organizer(session, race.league), race.name,
                      race.opens_at, race.closes_at, bots=[{"speed": 3.5}])
    session.commit()
    page = client.get(f"/races/{race.id}").get_data(as_text=True)
    assert re.search(r'<dd class="race-bots">Bot 1 \(3.5 m/s\) ', page)
    assert "Bot 2" not in page


# ----------------------------------------------------------------------------- the API
def test_the_api_schedules_and_shows_a_head_to_bot_race(api: ApiClient, session: Session,
                                                        make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    r = api.post("/leagues/club/races", token, json={
        "track": "oval", "format": "head-to-bot", "bots": [{"speed": 1.6}, {"speed": 2.4}],
        "closes_at": "2030-01-01T00:00:00Z"})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    assert body["format"] == "head-to-bot"
    assert body["bots"] == [{"speed": 1.6}, {"speed": 2.4}]
    assert api.get(f"/races/{body['id']}").get_json()["bots"] == body["bots"]
    board = api.get(f"/races/{body['id']}/leaderboard").get_json()
    assert (board["format"], board["items"]) == ("head-to-bot", [])
    r = api.post("/leagues/club/races", token, json={"track": "oval",
                                                     "closes_at": "2030-01-01T00:00:00Z"})
    assert r.status_code == 201 and r.get_json()["bots"] == []


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"format": "head-to-bot"}, 400, "bots: a head-to-bot race needs 1 to 6 bot cars"),
    ({"format": "head-to-bot", "bots": []}, 400, "bots: a head-to-bot race needs 1 to 6"),
    ({"format": "head-to-bot", "bots": [{"speed": 9}]}, 400,
     "bots: bot 1's speed must be 0.5 to 4 m/s, got 9"),
    ({"format": "time-trial", "bots": [{"speed": 1}]}, 400,
     "bots: only a head-to-bot race has bot cars, this is time-trial"),
    ({"format": "head-to-head", "bots": [{"speed": 1}]}, 400,
     "bots: only a head-to-bot race has bot cars, this is head-to-head"),
    ({"format": "head-to-bot", "bots": [{"speed": 1}] * 7}, 400,
     "bots: list should have at most 6 items"),
    ({"format": "head-to-bot", "bots": [{"speed": "fast"}]}, 400, "bots"),
], ids=["no bots", "empty", "too fast", "time trial", "head-to-head", "seven", "not a number"])
def test_the_api_refuses_bad_bots_clearly(api: ApiClient, session: Session, make: Factory,
                                          body: dict[str, Any], status: int,
                                          message: str) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    got, _code, text = error_of(api.post("/leagues/club/races", token, json={
        "track": "oval", "closes_at": "2030-01-01T00:00:00Z", **body}))
    assert got == status and message in text, text
    assert session.scalar(sa.select(sa.func.count(Race.id))) == 0


# ------------------------------------------------------------------------- end to end
def test_a_worker_races_an_entry_against_the_bots(db: Database, session: Session,
                                                  storage: Storage, make: Factory,
                                                  client: FlaskClient, api: ApiClient,
                                                  tmp_path: Path) -> None:
    race = open_race(session, make, format="head-to-bot", trials=2, time_cap=60.0, seed=5,
                     conditions="none", bots=[{"speed": 0.8}, {"speed": 1.4}],
                     collision_penalty=2.0)
    racer = make.user(session, "ada")
    entry = submissions.submit_entry(session, storage, race, racer, make.policy(),
                                     now=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    (job,) = entry.jobs  # one evaluation job per entry, as in a time trial
    assert job.kind == JobKind.TIME_TRIAL
    race_id, job_id = race.id, job.id
    session.commit()
    session.close()

    run_worker_once(db, storage, tmp_path)

    done = fresh(session).get(EvaluationJob, job_id)
    assert done is not None and done.status == JobStatus.SUCCEEDED, done.log if done else ""
    assert done.result is not None
    data = done.result.data
    assert data["format"] == "head-to-bot" and data["status"] == "finished"
    assert data["settings"]["bots"] == [{"speed": 0.8}, {"speed": 1.4}]
    assert "cars" not in data  # bots are not ranked

    board = api.get(f"/races/{race_id}/leaderboard").get_json()
    assert board["format"] == "head-to-bot"
    (row,) = board["items"]
    assert (row["rank"], row["racer"], row["time_s"]) == (1, "ada", data["ranking_time_s"])
    page = client.get(f"/races/{race_id}").get_data(as_text=True)
    assert '<table class="leaderboard">' in page and "ada" in page

    # one replay per trial, the bots in it by name; the viewer draws it
    replays = list(session.scalars(sa.select(Replay).where(Replay.job_id == job_id)
                                   .order_by(Replay.trial)))
    assert [r.trial for r in replays] == [1, 2]
    served = client.get(f"/replays/{replays[0].id}.bin")
    assert served.status_code == 200
    cars = replay.decode(served.data).cars
    assert [(c.name, c.bot) for c in cars[1:]] == [("Bot 1 (0.8 m/s)", True),
                                                   ("Bot 2 (1.4 m/s)", True)]
    assert not cars[0].bot
    assert client.get(f"/evaluations/{job_id}/replay?trial=2").status_code == 200


def test_evaluate_at_home_equals_the_leagues_head_to_bot_result(
        served: str, db: Database, session: Session, storage: Storage, make: Factory,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = PROJECT_ROOT / "evaluator" / "bots" / "pro.onnx"
    race = open_race(session, make, name="Bot Sprint", format="head-to-bot", laps=1,
                     trials=2, seed=4242, conditions="standard",
                     bots=[{"speed": 1.0}, {"speed": 2.2}])
    stored = league_result(session, db, storage, make, race, model.read_bytes())

    code = cli.main(["evaluate", str(model), "--quiet", "--race", str(race.id), "--server",
                     served, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == stored  # the bots came with the race's settings
    assert stored["settings"]["bots"] == [{"speed": 1.0}, {"speed": 2.2}]
    code = cli.main(["evaluate", str(model), "--race", str(race.id), "--server", served,
                     "--bots", "2"])
    assert code == 2 and "leave out --bots" in capsys.readouterr().err
