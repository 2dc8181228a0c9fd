"""Organizer pages for races: schedule and edit a race, close it early (season points),
re-run and disqualify entries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.conditions import PRESETS
from league.models import (
    EvaluationJob,
    JobStatus,
    League,
    Race,
    RacePoints,
    RaceStatus,
    Rating,
)
from league.rules import leagues
from league.rules.leaderboard import race_leaderboard
from tests.support.pages import all_races, commit, field_errors, fresh

DAY = dt.timedelta(days=1)
RACE = {"name": "Sunday Sprint", "track": "kidney", "format": "time-trial", "laps": "5",
        "ranking": "best-lap", "min_laps": "2", "off_track_penalty": "2.5",
        "collision_penalty": "10", "trials": "4", "time_cap": "240", "obstacles": "3",
        "seed": "1234567890123", "opens_at": "2026-07-01T18:00", "closes_at": "2026-07-08T18:00",
        "season": "0", "max_entries_per_day": "3", "max_entries_total": "",
        "round_interval_s": "600", "heats_per_round": "1", "knockout_size": "0"}


# ------------------------------------------------------------------ schedule a race

def test_new_race_form_has_every_setting_with_defaults(org_client):
    page = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    for name, value in (("laps", "3"), ("trials", "3"), ("off_track_penalty", "5.0"),
                        ("collision_penalty", "5.0"), ("time_cap", "180.0"), ("obstacles", "0"),
                        ("round_interval_s", "600"), ("heats_per_round", "1")):
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', page), name
    assert re.search(r'name="seed"[^>]*value="\d+"', page)
    assert re.search(r'name="opens_at"[^>]*type="datetime-local" value="\d{4}-\d\d-\d\dT\d\d:\d\d"',
                     page)
    assert '<option selected value="total">Total time</option>' in page
    assert '<option selected value="time-trial">' in page
    assert '<option value="harbour-streets">' in page and "Times are in UTC" in page
    for size in ("2", "4", "8", "16"):
        assert f'<option value="{size}">{size}</option>' in page
    assert 'type="checkbox" value=' in page and ">Rookie</label>" in page
    assert "the fastest single lap" in page  # the ranking methods are explained


def test_schedule_a_race_with_every_setting(org_client, session, club):
    season = leagues.create_season(session, club, _org(session, club), "S1",
                                   dt.datetime(2026, 6, 1), dt.datetime(2026, 9, 1))
    rookie = club.divisions[1].id
    commit(session)
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "season": str(season.id), "divisions": [str(rookie)]})
    assert r.status_code == 302
    race = all_races(session)[0]
    assert r.headers["Location"] == f"/organize/races/{race.id}"
    assert race.config() == {"track": "kidney", "format": "time-trial", "laps": 5, "trials": 4,
                             "ranking": "best-lap", "off_track_penalty": 2.5,
                             "collision_penalty": 10.0, "time_cap": 240.0, "min_laps": 2,
                             "seed": 1234567890123, "obstacles": 3,
                             "conditions": PRESETS["standard"].to_dict()}  # the default
    assert (race.name, race.season_id, [d.id for d in race.divisions]) == \
        ("Sunday Sprint", season.id, [rookie])
    assert (race.opens_at, race.closes_at) == (dt.datetime(2026, 7, 1, 18),
                                               dt.datetime(2026, 7, 8, 18))
    assert (race.max_entries_per_day, race.max_entries_total) == (3, None)
    assert race.status == RaceStatus.SCHEDULED and race.track_digest
    page = org_client.get(r.headers["Location"]).get_data(as_text=True)
    for text in ("Sunday Sprint", "kidney", "best lap", "ranked from 2", "off track 2.5 s",
                 "1234567890123", "Rookie", "S1", "3 a day, no limit in total",
                 "Race Sunday Sprint scheduled", "Close now", "No entry yet"):
        assert text in page, text


def test_head_to_head_settings(org_client, session):
    data = {**RACE, "format": "head-to-head", "round_interval_s": "3600", "heats_per_round": "2",
            "knockout_size": "8"}
    assert org_client.post("/organize/leagues/club/races/new", data=data).status_code == 302
    race = all_races(session)[0]
    assert (race.format, race.round_interval_s, race.heats_per_round, race.knockout_size) == \
        ("head-to-head", 3600, 2, 8)


@pytest.mark.parametrize("data, field, message", [
    ({"laps": "0"}, "laps", "a whole number from 1 to 50"),
    ({"laps": "51"}, "laps", "Number must be between 1 and 50"),
    ({"laps": "three"}, "laps", "a whole number from 1 to 50"),
    ({"min_laps": "6"}, "min_laps", "at most the number of laps"),
    ({"closes_at": "2026-07-01T17:00"}, "closes_at", "a race must close after it opens"),
    ({"opens_at": ""}, "opens_at", "a date and time in UTC"),
    ({"track": "atlantis"}, "track", "unknown track 'atlantis'"),
    ({"track": "../etc/passwd"}, "track", "unknown track"),
    ({"off_track_penalty": "61"}, "off_track_penalty", "Number must be between 0.0 and 60.0"),
    ({"collision_penalty": ""}, "collision_penalty", "0 to 60 seconds"),
    ({"time_cap": "0"}, "time_cap", "1 to 3600 seconds"),
    ({"trials": "21"}, "trials", "Number must be between 1 and 20"),
    ({"obstacles": "13"}, "obstacles", "Number must be between 0 and 12"),
    ({"seed": "-1"}, "seed", "Number must be between 0 and"),
    ({"ranking": "fastest"}, "ranking", "Not a valid choice"),
    ({"format": "relay"}, "format", "Not a valid choice"),
    ({"knockout_size": "3"}, "knockout_size", "Not a valid choice"),
    ({"heats_per_round": "0"}, "heats_per_round", "Number must be between 1 and 20"),
    ({"round_interval_s": "5"}, "round_interval_s", "Number must be between 60 and"),
    ({"max_entries_per_day": "0"}, "max_entries_per_day", "Number must be between 1"),
    ({"season": "999"}, "season", "Not a valid choice"),
    ({"divisions": ["999"]}, "divisions", "not a valid choice"),
    ({"name": "x" * 121}, "name", "Field cannot be longer than 120 characters"),
    ({"name": "bad\u202ename"}, "name", "invisible or direction-changing"),
])
def test_schedule_a_race_refuses_bad_input(org_client, session, data, field, message):
    r = org_client.post("/organize/leagues/club/races/new", data={**RACE, **data})
    assert r.status_code == 200
    errors = field_errors(r.get_data(as_text=True), field)
    assert any(message in e for e in errors), errors
    assert all_races(session) == []


def test_a_season_of_another_league_is_not_offered(org_client, make, session):
    other = make.league(session, slug="other")
    season = leagues.create_season(session, other, _org(session, other), "Theirs",
                                   dt.datetime(2026, 6, 1), dt.datetime(2026, 9, 1))
    commit(session)
    page = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    assert "Theirs" not in page
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "season": str(season.id)})
    assert r.status_code == 200 and all_races(session) == []


# ------------------------------------------------------------------ edit a race

def test_edit_a_race(org_client, make, session, club):
    race = make.race(session, club, name="Old", laps=3)
    commit(session)
    page = org_client.get(f"/organize/races/{race.id}/edit").get_data(as_text=True)
    assert 'value="Old"' in page and "Save the race" in page
    r = org_client.post(f"/organize/races/{race.id}/edit", data={**RACE, "laps": "4"})
    assert r.status_code == 302
    race = all_races(session)[0]
    assert (race.name, race.laps, race.track) == ("Sunday Sprint", 4, "kidney")


def test_edit_a_race_with_entries_keeps_its_rules(org_client, make, session, club):
    race = make.race(session, club, name="Old", laps=3)
    make.entry(session, race, make.racer(session, "ann"))
    data = {"name": "Renamed", "track": "oval", "format": "time-trial", "laps": "3",
            "ranking": "total", "min_laps": "", "off_track_penalty": "5", "collision_penalty": "5",
            "trials": "1", "time_cap": "180", "obstacles": "0", "seed": "0",
            "opens_at": race.opens_at.strftime("%Y-%m-%dT%H:%M"),
            "closes_at": "2026-12-24T12:00", "season": "0", "max_entries_per_day": "",
            "max_entries_total": "", "round_interval_s": "600", "heats_per_round": "1",
            "knockout_size": "0"}
    commit(session)
    page = org_client.get(f"/organize/races/{race.id}/edit").get_data(as_text=True)
    assert "This race has entries" in page
    r = org_client.post(f"/organize/races/{race.id}/edit", data={**data, "laps": "5"})
    assert r.status_code == 200
    assert any("can no longer change" in e
               for e in field_errors(r.get_data(as_text=True), "laps") +
               re.findall(r'role="alert">([^<]*)<', r.get_data(as_text=True)))
    assert all_races(session)[0].laps == 3
    r = org_client.post(f"/organize/races/{race.id}/edit", data=data)
    assert r.status_code == 302
    race = all_races(session)[0]
    assert (race.name, race.closes_at, race.laps) == ("Renamed", dt.datetime(2026, 12, 24, 12), 3)


# ------------------------------------------------------------------ manage a race

def _org(session: Session, league: League) -> Any:
    from league.models import User
    user = session.get(User, league.created_by_id)
    assert user is not None
    return user


def _season_race(session: Session, make: Any, club: League) -> tuple[Race, list[Any]]:
    """A race in a season with points 10, 6, 4 and three ranked entries (ann fastest)."""
    season = leagues.create_season(session, club, _org(session, club), "S1",
                                   make.now - 30 * DAY, make.now + 30 * DAY,
                                   points_table=[10, 6, 4])
    race = make.race(session, club, season=season)
    entries = []
    for name, time_s in (("ann", 30.0), ("bob", 31.0), ("cy", 32.0)):
        racer = make.racer(session, name)
        leagues.join_league(session, club, racer)
        entry = make.entry(session, race, racer)
        make.result(session, entry, time_s)
        entries.append(entry)
    return race, entries


def test_race_page_lists_entries(org_client, make, session, club):
    race, entries = _season_race(session, make, club)
    commit(session)
    page = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    for text in (">ann<", ">bob<", ">cy<", "follower v1", "0:30.000", "succeeded", "Re-run",
                 "Disqualify", "(3)"):
        assert text in page, text
    rows = [page.index(f'id="e{e.id}"') for e in entries]
    assert rows[2] < rows[1] < rows[0]  # newest first (same time: the later entry first)
    page = org_client.get(f"/organize/races/{race.id}?per_page=2&page=2").get_data(as_text=True)
    assert "Page 2 of 2" in page and page.count('class="num"><a href="/garage/entries/') == 1


def test_close_a_race_early_awards_season_points(org_client, make, session, club):
    race, _ = _season_race(session, make, club)
    commit(session)
    r = org_client.post(f"/organize/races/{race.id}/close")  # not confirmed
    assert r.status_code == 200
    assert field_errors(r.get_data(as_text=True), "confirm") == ["tick the box to confirm"]
    assert all_races(session)[0].status != RaceStatus.CLOSED
    r = org_client.post(f"/organize/races/{race.id}/close", data={"confirm": "y"})
    assert r.status_code == 302
    race = all_races(session)[0]
    assert race.status == RaceStatus.CLOSED and race.closed_at is not None
    points = session.execute(sa.select(RacePoints.position, RacePoints.points)
                             .where(RacePoints.race_id == race.id)
                             .order_by(RacePoints.position)).all()
    assert [tuple(p) for p in points] == [(1, 10), (2, 6), (3, 4)]
    page = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    assert "Race closed; season points recorded for 3 racers" in page
    assert "This race is closed" in page and "Close now" not in page
    r = org_client.post(f"/organize/races/{race.id}/close", data={"confirm": "y"})
    assert r.status_code == 302  # closing twice changes nothing
    assert fresh(session).scalar(sa.select(sa.func.count(RacePoints.id))) == 3
    r = org_client.get(f"/organize/races/{race.id}/edit")
    assert r.status_code == 302  # a closed race can no longer be edited


def test_disqualify_removes_an_entry_from_the_leaderboard(org_client, make, session, club):
    race, (ann, _, _) = _season_race(session, make, club)
    commit(session)
    url = f"/organize/entries/{ann.id}/disqualify"
    r = org_client.post(url, data={f"dq{ann.id}-reason": "  "})
    assert r.status_code == 200
    assert field_errors(r.get_data(as_text=True), f"dq{ann.id}-reason") == \
        ["a disqualification needs a reason"]
    assert [row.racer for row in race_leaderboard(fresh(session), race)][0] == "ann"
    r = org_client.post(url, data={f"dq{ann.id}-reason": "copied <b>model</b>"})
    assert r.status_code == 302
    board = race_leaderboard(fresh(session), all_races(session)[0])
    assert [row.racer for row in board] == ["bob", "cy"]
    page = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    assert "copied &lt;b&gt;model&lt;/b&gt;" in page and "<b>model" not in page


def test_rerun_queues_a_new_job(org_client, make, session, club):
    race, (ann, _, _) = _season_race(session, make, club)
    commit(session)
    r = org_client.post(f"/organize/entries/{ann.id}/rerun")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"#e{ann.id}")
    jobs = fresh(session).scalars(sa.select(EvaluationJob).where(
        EvaluationJob.entry_id == ann.id).order_by(EvaluationJob.id)).all()
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED, JobStatus.QUEUED]
    assert "queued again" in org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)


def test_head_to_head_entries_are_not_rerun(org_client, make, session, club):
    race = make.race(session, club, format="head-to-head")
    entry = make.entry(session, race, make.racer(session, "ann"))
    commit(session)
    assert "Re-run" not in org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    r = org_client.post(f"/organize/entries/{entry.id}/rerun", follow_redirects=True)
    assert "nothing to re-run" in r.get_data(as_text=True)
    assert fresh(session).scalar(sa.select(sa.func.count(EvaluationJob.id))) == 0


def test_other_leagues_entries_are_not_found(org_client, make, session):
    other = make.league(session, slug="other")
    race = make.race(session, other)
    entry = make.entry(session, race, make.racer(session, "ann"))
    commit(session)
    assert org_client.post(f"/organize/entries/{entry.id}/rerun").status_code == 404
    assert org_client.post(f"/organize/entries/{entry.id}/disqualify",
                           data={f"dq{entry.id}-reason": "x"}).status_code == 404
    assert org_client.get(f"/organize/races/{race.id}").status_code == 404
    assert org_client.post("/organize/entries/999999/rerun").status_code == 404
    assert org_client.get("/organize/races/999999").status_code == 404
    assert fresh(session).scalar(sa.select(sa.func.count(EvaluationJob.id))) == 0


def test_race_actions_refuse_posts_without_the_csrf_token(make_app, make, session, login,
                                                          club):
    race, (ann, _, _) = _season_race(session, make, club)
    org = make.organizer(session, club)
    commit(session)
    client = login(make_app(WTF_CSRF_ENABLED=True).test_client(), org)
    for url, data in ((f"/organize/races/{race.id}/close", {"confirm": "y"}),
                      (f"/organize/entries/{ann.id}/rerun", {}),
                      (f"/organize/entries/{ann.id}/disqualify", {f"dq{ann.id}-reason": "x"}),
                      ("/organize/leagues/club/races/new", RACE)):
        r = client.post(url, data=data)
        assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True), url
    assert all_races(session)[0].status != RaceStatus.CLOSED
    assert fresh(session).scalar(sa.select(sa.func.count(EvaluationJob.id))) == 3
    page = client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    token = re.search(rf'id="dq{ann.id}-csrf_token" name="dq{ann.id}-csrf_token" type="hidden" '
                      r'value="([^"]+)"', page)
    assert token is not None
    r = client.post(f"/organize/entries/{ann.id}/disqualify",
                    data={f"dq{ann.id}-reason": "late", f"dq{ann.id}-csrf_token": token.group(1)})
    assert r.status_code == 302
    assert [row.racer for row in race_leaderboard(fresh(session), race)] == ["bob", "cy"]


def test_close_now_on_a_head_to_head_race_with_a_knockout_runs_the_finals_first(
        org_client, make, session, club):
    """The page says closing runs the finals; closing puts the race in its finals (the
    knockout's first stage queued, no points yet) and the page then says so, with no form."""
    race = make.race(session, club, format="head-to-head", seed=7, knockout_size=2)
    race.status = RaceStatus.OPEN
    for k in range(2):
        racer = make.racer(session, f"h{k}")
        leagues.join_league(session, club, racer)
        entry = make.entry(session, race, racer)
        session.add(Rating(race_id=race.id, entry_id=entry.id, mu=30.0 - k, sigma=1.0,
                           heats=3))
    commit(session)
    page = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    assert "Closing runs the knockout finals first" in page and "Close now" in page
    r = org_client.post(f"/organize/races/{race.id}/close", data={"confirm": "y"})
    assert r.status_code == 302
    race = all_races(session)[0]
    assert race.status == RaceStatus.FINALS and race.closed_at is None
    assert fresh(session).scalar(sa.select(sa.func.count(RacePoints.id))) == 0
    page = org_client.get(f"/organize/races/{race.id}").get_data(as_text=True)
    assert "Knockout finals started" in page and "Close now" not in page
    assert "The knockout finals are being raced" in page
    public = org_client.get(f"/races/{race.id}").get_data(as_text=True)
    assert "it is raced after the race closes" not in public
