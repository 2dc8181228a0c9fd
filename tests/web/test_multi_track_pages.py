"""Races on several tracks on the site and in the API: scheduling one by form and by API
(bad lists refused with a clear error, nothing created), the race page drawing every track,
and end to end: a real worker process evaluates an entry on both tracks, and the leaderboard
page and the API show each track's time and their sum, with a replay per trial and track."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from evaluator import replay
from evaluator.track_library import load_track
from league.models import EvaluationJob, JobStatus, Race, Replay
from league.rules import submissions
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory
from tests.support.pages import all_races, field_errors, fresh
from tests.support.workers import run_worker_once
from tests.web.api_support import ApiClient, error_of, open_race, token_for

RACE = {"name": "Double", "track": "oval", "track_2": "kidney", "format": "time-trial",
        "laps": "1", "ranking": "total", "off_track_penalty": "5", "collision_penalty": "5",
        "trials": "2", "time_cap": "60", "obstacles": "0", "seed": "99",
        "conditions_preset": "none", "opens_at": "2026-07-01T18:00",
        "closes_at": "2026-07-08T18:00", "season": "0", "round_interval_s": "600",
        "heats_per_round": "1", "knockout_size": "0"}


def _select(html: str, name: str) -> str:
    """The select element of field ``name``."""
    found = re.search(rf'<select[^>]* id="{name}".*?</select>', html, re.S)
    assert found is not None, name
    return found.group(0)


# ---------------------------------------------------------------------------- the form
def test_an_organizer_schedules_a_race_on_two_tracks(org_client: FlaskClient,
                                                     session: Session) -> None:
    form = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    assert 'name="track_2"' in form and 'name="track_5"' in form
    r = org_client.post("/organize/leagues/club/races/new", data={**RACE, "track_3": "",
                                                                  "track_4": "pinwheel"})
    assert r.status_code == 302, r.get_data(as_text=True)
    (race,) = all_races(session)
    assert race.extra_tracks == [
        {"track": "kidney", "track_digest": load_track("kidney").digest},
        {"track": "pinwheel", "track_digest": load_track("pinwheel").digest}]
    manage = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    assert re.search(r"<dt>Tracks</dt><dd><a [^>]*>oval</a>, <a [^>]*>kidney</a>, "
                     r"<a [^>]*>pinwheel</a>", manage)
    edit = org_client.get(f"/organize/races/{race.id}/edit").get_data(as_text=True)
    assert '<option selected value="kidney">' in _select(edit, "track_2")
    assert '<option selected value="pinwheel">' in _select(edit, "track_3")
    assert '<option selected value="">' in _select(edit, "track_4")


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"track_2": "oval"}, "track_2", "oval is already a track of this race: each track once"),
    ({"track_3": "kidney"}, "track_3", "kidney is already a track of this race"),
    ({"track_2": "nowhere"}, "track_2", "unknown track 'nowhere': choose one from the list"),
    ({"format": "head-to-head"}, "track_2", "several tracks are for time trials"),
], ids=["first twice", "second twice", "unknown", "head-to-head"])
def test_a_bad_track_list_is_refused_on_the_form(org_client: FlaskClient, session: Session,
                                                 change: dict[str, str], field: str,
                                                 message: str) -> None:
    r = org_client.post("/organize/leagues/club/races/new", data={**RACE, **change})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert any(message in e for e in field_errors(html, field)), field_errors(html, field)
    assert 'value="Double"' in html  # what was typed is kept
    assert all_races(session) == []


def test_the_race_page_draws_every_track(client: FlaskClient, session: Session,
                                         make: Factory) -> None:
    race = make.race(session, extra_tracks=["kidney", "pinwheel"])
    session.commit()
    page = client.get(f"/races/{race.id}").get_data(as_text=True)
    for name in ("oval", "kidney", "pinwheel"):
        assert re.search(rf'<img class="track-drawing" src="/tracks/{name}\.svg', page), name
    assert "Track 2: <a" in page and "Track 3: <a" in page
    assert "3: every entry races each, ranked by the sum of its tracks' times" in page


# ----------------------------------------------------------------------------- the API
def test_the_api_schedules_and_shows_a_race_on_two_tracks(api: ApiClient, session: Session,
                                                          make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    r = api.post("/leagues/club/races", token, json={
        "track": "oval", "tracks": ["oval", "kidney"], "closes_at": "2030-01-01T00:00:00Z"})
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    tracks = [{"track": n, "track_digest": load_track(n).digest} for n in ("oval", "kidney")]
    assert (body["track"], body["tracks"]) == ("oval", tracks)
    assert api.get(f"/races/{body['id']}", token).get_json()["tracks"] == tracks
    one = api.post("/leagues/club/races", token, json={
        "track": "oval", "closes_at": "2030-01-01T00:00:00Z"}).get_json()
    assert one["tracks"] == tracks[:1]


@pytest.mark.parametrize(("tracks", "extra", "message"), [
    (["oval", "oval"], {}, "tracks: each track once; oval is listed twice"),
    (["oval", "kidney", "pinwheel", "speedway", "switchback", "brake-point"], {},
     "tracks: a race has at most 5 tracks, got 6"),
    (["oval", "nowhere"], {}, "tracks: unknown track 'nowhere'"),
    (["kidney", "oval"], {}, "tracks: the first of the tracks is the race's track ('oval')"),
    (["oval", "kidney"], {"format": "head-to-head"}, "tracks: several tracks are for time "
                                                     "trials"),
], ids=["twice", "six", "unknown", "first", "head-to-head"])
def test_a_bad_track_list_is_refused_by_the_api(api: ApiClient, session: Session,
                                                make: Factory, tracks: list[str],
                                                extra: dict[str, Any], message: str) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    status, code, text = error_of(api.post("/leagues/club/races", token, json={
        "track": "oval", "tracks": tracks, "closes_at": "2030-01-01T00:00:00Z", **extra}))
    assert (status, code) == (400, "invalid") and text.startswith(message), text
    assert session.scalar(sa.select(sa.func.count(Race.id))) == 0


# ------------------------------------------------------------------------- end to end
def test_a_worker_evaluates_an_entry_on_both_tracks(db: Database, session: Session,
                                                    storage: Storage, make: Factory,
                                                    client: FlaskClient, api: ApiClient,
                                                    login: Any, tmp_path: Path) -> None:
    race = open_race(session, make, extra_tracks=["kidney"], trials=2, time_cap=60.0,
                     seed=5, conditions="none")
    racer = make.user(session, "ada")
    entry = submissions.submit_entry(session, storage, race, racer, make.policy(),
                                     now=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    race_id, job_id, entry_id = race.id, entry.jobs[0].id, entry.id
    session.commit()
    session.close()

    run_worker_once(db, storage, tmp_path)

    job = fresh(session).get(EvaluationJob, job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job.log if job else ""
    assert job.result is not None
    data = job.result.data
    times = [b["ranking_time_s"] for b in data["tracks"]]
    assert [b["track"] for b in data["tracks"]] == ["oval", "kidney"]
    assert data["status"] == "finished" and None not in times
    assert data["ranking_time_s"] == pytest.approx(sum(times), abs=1e-6)
    # one replay per trial and track, each drawn on its own track
    replays = list(session.scalars(sa.select(Replay).where(Replay.job_id == job_id)
                                   .order_by(Replay.trial)))
    assert [r.trial for r in replays] == [1, 2, 3, 4]
    assert [replay.decode(storage.get("replays", r.sha256)).track.name for r in replays] == [
        "oval", "oval", "kidney", "kidney"]
    viewer = client.get(f"/evaluations/{job_id}/replay?trial=3")
    assert viewer.status_code == 200
    html = viewer.get_data(as_text=True)
    for n, name in ((1, "oval"), (3, "kidney"), (4, "kidney")):
        assert f"Trial {n} · {name}" in html
    # a run is compared only with runs on its own track
    other = client.get(f"/evaluations/{job_id}/replay?trial=3&ghost={replays[0].id}")
    assert "is a run on another track (oval): only runs on kidney compare" in unescape(
        other.get_data(as_text=True))
    same = client.get(f"/evaluations/{job_id}/replay?trial=3&ghost={replays[3].id}")
    assert "only runs on" not in unescape(same.get_data(as_text=True))

    board = api.get(f"/races/{race_id}/leaderboard").get_json()
    (row,) = board["items"]
    assert (row["rank"], row["racer"]) == (1, "ada")
    assert row["track_times_s"] == times and row["time_s"] == data["ranking_time_s"]

    page = client.get(f"/races/{race_id}").get_data(as_text=True)
    table = page[page.index('<table class="leaderboard">'):]
    assert re.search(r'<th class="num track-time">oval</th><th class="num track-time">'
                     r'kidney</th><th class="num">Total time \(sum\)</th>', table)

    def shown(seconds: float) -> str:
        minutes, millis = divmod(round(seconds * 1000), 60_000)
        return f"{minutes}:{millis / 1000:06.3f}"

    cells = [f'<td class="track-time">{shown(t)}</td>' for t in times]
    assert "".join(cells) + f"<td>{shown(data['ranking_time_s'])}</td>" in table

    # the racer's entry page: each track's result, and each trial's track
    garage = login(client, racer).get(f"/garage/entries/{entry_id}").get_data(as_text=True)
    assert "over 2 laps on 2 tracks" in garage
    for name, t in zip(("oval", "kidney"), times, strict=True):
        assert re.search(rf"<strong>{name}</strong>: .*?{re.escape(shown(t))}", garage, re.S)
    assert '3 <span class="muted trial-track">kidney</span>' in garage
