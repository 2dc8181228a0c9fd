"""Race conditions on the website and the API: the organizer's form (presets and custom
values, refused values), the race page, the entry page's spread, and race creation over the
API."""

from __future__ import annotations

import html
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.conditions import PRESETS
from league.models import Race
from tests.support import replays as sample
from tests.support.pages import commit, fresh
from tests.web.api_support import token_for
from tests.web.test_organize_races import RACE


def _race(session: Session) -> Race:
    return fresh(session).scalars(sa.select(Race).order_by(Race.id.desc())).first()


def test_the_form_offers_presets_and_custom_values(org_client: Any) -> None:
    page = org_client.get("/organize/leagues/club/races/new").get_data(as_text=True)
    assert re.search(r'<option selected value="standard">standard</option>', page)
    assert 'value="custom">custom (below)</option>' in page
    # The custom fields show the default preset's values.
    assert re.search(r'name="cond_grip_pct"[^>]*value="5\.0"', page)
    assert re.search(r'name="cond_latency_steps"[^>]*value="1"', page)


def test_schedule_with_a_preset_and_with_custom_values(org_client: Any,
                                                       session: Session) -> None:
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "conditions_preset": "hard"})
    assert r.status_code == 302
    assert _race(session).conditions == PRESETS["hard"].to_dict()
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "name": "Custom", "conditions_preset": "custom",
                              "cond_grip_pct": "8", "cond_latency_steps": "2"})
    assert r.status_code == 302
    assert _race(session).conditions == {**PRESETS["none"].to_dict(), "preset": "custom",
                                         "grip_pct": 8.0, "latency_steps": 2}
    page = org_client.get(r.headers["Location"].replace("/organize", "")).get_data(as_text=True)
    race_page = org_client.get(f"/races/{_race(session).id}").get_data(as_text=True)
    shown = re.search(r'<dd class="race-conditions">([^<]*)</dd>', race_page)
    assert shown and html.unescape(shown.group(1)) == (
        "custom: start ±0.05 m and ±2°, grip ±8 %, latency 0-2 steps")
    del page


def test_out_of_range_values_are_refused_on_the_form(org_client: Any,
                                                     session: Session) -> None:
    before = fresh(session).scalar(sa.select(sa.func.count(Race.id)))
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "conditions_preset": "custom", "cond_grip_pct": "40"})
    assert r.status_code == 200  # the form again, with the error by the field
    page = r.get_data(as_text=True)
    assert re.search(r'id="cond_grip_pct-help"[^<]*</small>\s*<p class="error" role="alert">'
                     r'Number must be between 0\.0 and 25\.0', page)
    assert "<details class=\"conditions-custom\" open>" in page
    r = org_client.post("/organize/leagues/club/races/new",
                        data={**RACE, "conditions_preset": "stormy"})
    assert r.status_code == 200 and "Not a valid choice" in r.get_data(as_text=True)
    assert fresh(session).scalar(sa.select(sa.func.count(Race.id))) == before


def test_the_edit_form_shows_the_races_conditions(org_client: Any, session: Session,
                                                  make: Any, club: Any) -> None:
    race = make.race(session, club, conditions={"preset": "standard", "grip_pct": 10.0})
    commit(session)
    page = org_client.get(f"/organize/races/{race.id}/edit").get_data(as_text=True)
    assert '<option selected value="custom">' in page
    assert re.search(r'name="cond_grip_pct"[^>]*value="10\.0"', page)
    assert re.search(r'name="cond_ray_noise"[^>]*value="0\.02"', page)


def test_entry_page_shows_each_trials_conditions_and_the_spread(
        client: Any, session: Session, storage: Any, make: Any, login: Any,
        record_race: Any) -> None:
    data = sample.record_replay(record_race, sample.field_drivers(1), laps=1)
    tt = sample.time_trial(session, storage, make, data, trials=3)
    blocks = sample.trial_blocks(3)
    for block, grip in zip(blocks, (0.97, 1.02, 1.04), strict=True):
        block["conditions"] = {"grip_factor": grip, "latency_steps": 1,
                               "steering_bias_deg": -0.4, "ray_noise": 0.02}
    result = tt.job.result
    result.data = {**result.data, "trials": blocks,
                   "settings": {"conditions": PRESETS["standard"].to_dict()}}
    session.commit()
    login(client, tt.entry.racer)
    page = html.unescape(client.get(f"/garage/entries/{tt.entry.id}").get_data(as_text=True))
    assert "grip 97 %, latency 1 step, steering -0.4°, noise σ 0.02" in page
    assert "Race conditions standard: start ±0.15 m and ±6°" in page
    # trial_blocks: 31, 32 and 33 s: median 32, sample σ 1, range 2.
    assert re.search(r"Across 3 finished trials: median\s*<strong>0:32\.000</strong>, "
                     r"σ 1\.000 s,\s*range 2\.000 s", page)


def test_api_schedules_and_shows_conditions(client: Any, session: Session, make: Any,
                                            club: Any) -> None:
    organizer = make.organizer(session, club)
    token = token_for(session, organizer)
    commit(session)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"track": "oval", "closes_at": "2030-01-01T00:00:00Z"}
    r = client.post("/api/v1/leagues/club/races", json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["conditions"] == PRESETS["standard"].to_dict()
    r = client.post("/api/v1/leagues/club/races", headers=headers,
                    json={**body, "conditions": {"preset": "hard", "grip_pct": 20}})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["conditions"] == {**PRESETS["hard"].to_dict(), "preset": "custom",
                                          "grip_pct": 20.0}
    r = client.post("/api/v1/leagues/club/races", headers=headers,
                    json={**body, "conditions": {"grip_pct": 99}})
    assert r.status_code == 400
    r = client.post("/api/v1/leagues/club/races", headers=headers,
                    json={**body, "conditions": {"preset": "stormy"}})
    assert r.status_code == 400 and "none, standard, hard" in r.get_json()["error"]["message"]
    spec = client.get("/api/v1/openapi.json").get_json()
    schema = spec["components"]["schemas"]["RaceConditions"]["properties"]
    assert schema["grip_pct"]["anyOf"][0]["maximum"] == 25


def test_ids_past_the_database_are_not_found(client: Any) -> None:
    """Past 2**31 - 1 no row exists (PostgreSQL refuses the number): 404, never 500."""
    for url in ("/replays/3000000000", "/races/3000000000", "/evaluations/3000000000/replay",
                "/racers/x/3000000000", "/garage/entries/3000000000"):
        assert client.get(url).status_code in (404, 302), url
