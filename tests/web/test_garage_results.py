"""The garage during and after a real evaluation: live status, results per trial, the trace
CSV and the analysis data (the job is raced in this process, as a worker would)."""

from __future__ import annotations

import csv
import io

import numpy as np
import sqlalchemy as sa

from evaluator import replay, trace
from evaluator.telemetry import FLAG_RESET
from league.models import Entry, Replay
from tests.support.dbfixtures import DISCRETE_ACTIONS
from tests.web.garage_support import claim, open_race, race_claimed, upload

STATUS_KEYS = {"entry_id", "status", "job_id", "attempts", "queued_at", "started_at",
               "finished_at", "failure_kind", "reason", "result_id", "result_status", "time_s",
               "disqualified", "label", "css", "final"}


def _entered(client, login, session, make, policy=None, **race_kw):
    """Ada's entry in an open race (uploaded through the form): (entry id, job id)."""
    race = open_race(session, make, name="Cup", **race_kw)
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    data = make.policy(speed=3.6) if policy is None else policy
    assert upload(client, race.id, data, name="fast").status_code == 302
    entry = session.scalars(sa.select(Entry)).one()
    ids = entry.id, entry.jobs[0].id
    session.commit()
    return ids


def test_status_through_a_jobs_life(client, login, session, make, db, storage):
    entry_id, job_id = _entered(client, login, session, make)
    url = f"/garage/entries/{entry_id}/status.json"
    queued = client.get(url).get_json()
    assert set(queued) == STATUS_KEYS
    assert (queued["status"], queued["label"], queued["final"], queued["css"]) == \
        ("queued", "queued", False, "status-queued")
    assert (queued["job_id"], queued["attempts"], queued["result_id"]) == (job_id, 0, None)
    assert queued["queued_at"] and queued["started_at"] is None

    assert claim(db) == job_id
    running = client.get(url).get_json()
    assert (running["status"], running["attempts"], running["final"]) == ("running", 1, False)
    assert running["label"] == "running, attempt 1" and running["started_at"]
    page = client.get(f"/garage/entries/{entry_id}").get_data(as_text=True)
    assert "attempt 1" in page and 'data-reload-when-final="true"' in page

    race_claimed(db, storage, job_id)
    done = client.get(url).get_json()
    assert (done["status"], done["result_status"], done["final"]) == \
        ("succeeded", "finished", True)
    assert done["time_s"] > 0 and done["finished_at"] and done["result_id"]
    assert done["label"].startswith("finished 0:") and done["css"] == "status-finished"
    garage = client.get("/garage/").get_data(as_text=True)
    assert 'data-final="true"' in garage and done["label"] in garage
    assert '<td class="num">1</td>' in garage  # ranked first of one


def test_entry_page_results_trace_and_analysis(client, login, session, make, db, storage):
    entry_id, job_id = _entered(client, login, session, make, trials=2, laps=2,
                                off_track_penalty=2.0)
    race_claimed(db, storage, claim(db))
    html = client.get(f"/garage/entries/{entry_id}").get_data(as_text=True)
    replays = {r.trial: r for r in session.scalars(sa.select(Replay).where(
        Replay.job_id == job_id))}
    entry = session.get(Entry, entry_id)
    result = entry.jobs[0].result.data
    session.commit()
    assert f"Results of evaluation {job_id}" in html
    for t in result["trials"]:
        assert f"/evaluations/{job_id}/replay?trial={t['trial']}" in html
        assert f"/garage/evaluations/{job_id}/trace.csv?trial={t['trial']}" in html
        assert f"/replays/{replays[t['trial']].id}/download" in html
    assert f'data-analysis-url="/garage/evaluations/{job_id}/analysis.json"' in html
    assert "js/analysis.js" in html and "<noscript>" in html

    r = client.get(f"/garage/evaluations/{job_id}/trace.csv?trial=2")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == \
        f'attachment; filename="paddock-evaluation-{job_id}-trial-2.csv"'
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert tuple(rows[0]) == trace.TRACE_COLUMNS and len(rows[0]) == 17
    decoded = replay.decode(storage.get("replays", replays[2].sha256))
    assert len(rows) - 1 == decoded.frames - 1  # one row per step
    assert [int(row[1]) for row in rows[1:]] == list(range(1, decoded.frames))
    assert client.get(f"/garage/evaluations/{job_id}/trace.csv?trial=9").status_code == 404
    default = client.get(f"/garage/evaluations/{job_id}/trace.csv")
    assert f"trial-{result['ranked_trial']}.csv" in default.headers["Content-Disposition"]

    data = client.get(f"/garage/evaluations/{job_id}/analysis.json").get_json()
    assert [t["trial"] for t in data["trials"]] == [1, 2]
    got = data["trials"][1]
    car = decoded.cars[0]
    frames = np.array(got["samples"]["frame"])
    np.testing.assert_allclose(got["samples"]["speed"], car.speed[frames], atol=5e-4)
    np.testing.assert_allclose(got["samples"]["progress"], car.progress[frames], atol=5e-4)
    assert got["lap_times_s"] == result["trials"][1]["lap_times_s"]
    assert len(got["off_tracks"]) == result["trials"][1]["off_track_count"] > 0
    assert len(data["laps"]) == 4 and data["lap_time_spread"]["min"] == min(
        lap["time_s"] for lap in data["laps"])
    assert len(data["track"]["left_border"]) == len(decoded.track.left_border)


def test_the_action_breakdown_of_a_discrete_policy(client, login, session, make, db, storage):
    entry_id, job_id = _entered(client, login, session, make, policy=make.discrete_policy(),
                                trials=2)
    race_claimed(db, storage, claim(db))
    html = client.get(f"/garage/entries/{entry_id}").get_data(as_text=True)
    assert "data-actions-figure" in html and "Action breakdown" in html
    data = client.get(f"/garage/evaluations/{job_id}/analysis.json").get_json()
    assert data["action_space"] == "discrete"
    for t in data["trials"]:
        actions = t["actions"]
        assert [(a["index"], a["steering_deg"], a["speed"]) for a in actions] == \
            [(k, s, v) for k, (s, v) in enumerate(DISCRETE_ACTIONS)]
        counts = [a["count"] for a in actions]
        assert counts[0] > 0 and counts[1] > 0 and counts[2:] == [0, 0]
        # one choice per frame driven, except the frames a car is put back on the track in
        # (it served its penalty during that step: the policy was not asked)
        row = session.scalars(sa.select(Replay).where(Replay.job_id == job_id,
                                                      Replay.trial == t["trial"])).one()
        flags = replay.decode(storage.get("replays", row.sha256)).cars[0].flags
        resets = sum(1 for f in t["samples"]["frame"] if flags[f] & FLAG_RESET)
        assert sum(counts) == len(t["samples"]["frame"]) - resets
    # the trace CSV of the same trial counts the same choices
    r = client.get(f"/garage/evaluations/{job_id}/trace.csv?trial=1")
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert {int(row["action"]) for row in rows} - {-1} == {0, 1}
    # -1 only where the policy was not asked: serving a penalty, or put back on the track
    assert {row["episode_status"] for row in rows if row["action"] == "-1"} <= \
        {"pause", "prepare", "off_track"}
    # steer and throttle are the chosen actions' (within the replay's 0.05 mrad quantum)
    assert {(round(float(row["steer"]), 2), float(row["throttle"])) for row in rows} == \
        {DISCRETE_ACTIONS[0], DISCRETE_ACTIONS[1]}


def test_a_continuous_policy_has_no_action_breakdown(client, login, session, make, db,
                                                     storage):
    _, job_id = _entered(client, login, session, make)
    race_claimed(db, storage, claim(db))
    data = client.get(f"/garage/evaluations/{job_id}/analysis.json").get_json()
    assert data["action_space"] == "continuous"
    assert [t["actions"] for t in data["trials"]] == [None]


def test_a_league_organizer_may_download_the_trace(client, login, session, make, db, storage):
    entry_id, job_id = _entered(client, login, session, make)
    race_claimed(db, storage, claim(db))
    entry = session.get(Entry, entry_id)
    organizer = make.organizer(session, entry.race.league)
    bob = make.user(session, "bob")
    session.commit()
    login(client, organizer)
    assert client.get(f"/garage/evaluations/{job_id}/trace.csv").status_code == 200
    assert client.get(f"/garage/evaluations/{job_id}/analysis.json").status_code == 200
    login(client, bob)
    assert client.get(f"/garage/evaluations/{job_id}/trace.csv").status_code == 404
    assert client.get(f"/garage/evaluations/{job_id}/analysis.json").status_code == 404
