"""The API keeps the contract its OpenAPI document states.

Schemathesis (``st run``, the command line) reads the document the app serves and sends every
operation requests generated from it: valid ones, which the API must accept, and invalid ones,
which it must refuse with a 4xx; every response must be one the document declares, body,
content type and headers included, and none may be a server error. The app is served for real
(werkzeug, in a thread) on a seeded database: a public and a private league, a time trial with
an entry and a head-to-head race with heats, and an organizer whose token the run uses.
Strings are drawn from ASCII: the names' patterns state the control characters the league
refuses, and the document only words the rest of its rule (format, private-use and unassigned
characters, NFKC), which no pattern of reasonable size can hold.

The plain tests below pin down what the first such runs found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import RaceStatus, Result
from tests.league.test_heats_read import raced_heat
from tests.support.dbfixtures import Factory
from tests.web.api_support import ApiClient, error_of, open_race, token_for

ST = Path(sys.executable).with_name("st")
SEED = 20261203
EXAMPLES = 8  # per operation and phase (the coverage phase adds its boundary cases)
BIG = 2**64 + 1  # past SQLite's and PostgreSQL's integers
MAX_ID = 2**31 - 1  # the largest id the document allows (the database's integer)

# Rules across fields, or over data a schema cannot hold, which the document states in its
# descriptions: a request that satisfies the schema may still break one and be refused (400).
CONFIG = """\
[[operations]]
# the track exists, a race closes after it opens, min_laps <= laps, the season and the
# divisions are the league's
include-path = "/leagues/{slug}/races"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
# a season ends after it starts, its points table goes down, a percentage is at most 100
include-path = "/leagues/{slug}/seasons"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
# the uploaded file must be a policy the validator accepts
include-path = "/races/{race_id}/entries"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409",
                                                     "429"]
"""


def _seed(session: Session, make: Factory) -> str:
    """A public league with a time trial and a head-to-head race with heats, a private league,
    and the token of their organizer."""
    olga = make.user(session, "olga", "organizer")
    club = make.league(session, olga, "club")
    make.league(session, olga, "secret", visibility="private")
    sprint = open_race(session, make, club, name="Sprint")
    make.result(session, make.entry(session, sprint, make.racer(session, "ann")), 31.5)
    duel = open_race(session, make, club, name="Duel", format="head-to-head")
    duel.status = RaceStatus.OPEN
    cars = [make.entry(session, duel, make.racer(session, f"r{k}")) for k in range(3)]
    for round_no, pair in enumerate(([0, 1], [1, 2], [0, 2]), start=1):
        raced_heat(session, [cars[i] for i in pair], round_no=round_no)
    for result in session.scalars(sa.select(Result).where(Result.entry_id.is_(None))):
        # as a worker stores it: the first car's block at the top, as `paddock evaluate`
        first = result.data["cars"][0]
        result.data = {**result.data, "status": first["status"], "trials": first["trials"],
                       "ranking_time_s": first["ranking_time_s"], "ranking_laps": 1}
    session.commit()
    return token_for(session, olga)


def test_the_api_keeps_its_documented_contract(served: str, api: ApiClient, session: Session,
                                               make: Factory, tmp_path: Path) -> None:
    token = _seed(session, make)
    session.close()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.ndjson"
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run(
        [str(ST), "--config-file", str(config), "run", f"{served}/api/v1/openapi.json",
         "--header", f"Authorization: Bearer {token}", "--checks", "all", "--seed", str(SEED),
         "--max-examples", str(EXAMPLES), "--generation-codec", "ascii", "--workers", "1",
         "--no-shrink",
         "--generation-database", "none", "--report", "ndjson",
         "--report-ndjson-path", str(report), "--request-timeout", "10"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    tested, failures = _outcome(report)
    assert not failures and run.returncode == 0, (
        "\n".join(sorted(failures)) + "\n" + run.stdout[-6000:] + run.stderr[-2000:])
    documented = {f"{method.upper()} {path}" for path, item in api.doc["paths"].items()
                  for method in item}
    assert documented - {"GET /openapi.json"} <= tested  # the run reads that one itself


def _outcome(report: Path) -> tuple[set[str], set[str]]:
    """The operations the run tested ('METHOD /path', and 'Stateful tests' for sequences
    following the document's links) and its failed checks ('ST101 not_a_server_error POST
    /leagues')."""
    tested: set[str] = set()
    failures: set[str] = set()
    for line in report.read_text().splitlines():
        scenario: dict[str, Any] | None = json.loads(line).get("ScenarioFinished")
        if scenario is None:
            continue
        label = scenario["recorder"]["label"]
        tested.add(label)
        for checks in scenario["recorder"].get("checks", {}).values():
            for check in checks:
                if check["status"] in ("failure", "error"):
                    code = check.get("failure_info", {}).get("failure", {}).get("code", "")
                    failures.add(f"{code} {check['name']} {label}")
    return tested, failures


# ----------------------------------------------------------------- what the runs found
def test_a_huge_division_id_is_refused_not_a_server_error(api: ApiClient, session: Session,
                                                          make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    body = {"track": "oval", "closes_at": "2030-01-01T00:00:00Z"}
    for field, value in (("division_ids", [BIG]), ("division_ids", [MAX_ID + 1]),
                         ("season_id", BIG), ("division_ids", [0])):
        status, code, message = error_of(api.post("/leagues/club/races", token,
                                                  json={**body, field: value}))
        assert (status, code) == (400, "invalid") and message.startswith(field), message


@pytest.mark.parametrize("path", [
    f"/races/{BIG}", f"/races/{BIG}/leaderboard", f"/races/{BIG}/heats",
    f"/races/{MAX_ID + 1}", f"/entries/{BIG}", f"/evaluations/{BIG}",
    f"/evaluations/{BIG}/replay", "/races/0", "/races/" + "9" * 5000,
])
def test_a_huge_id_in_a_path_names_nothing(api: ApiClient, session: Session, make: Factory,
                                           path: str) -> None:
    token = token_for(session, make.user(session, "ann"))
    r = api.get(path, token)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_huge_numbers_in_a_body_or_a_query_are_refused(api: ApiClient, session: Session,
                                                       make: Factory) -> None:
    olga = make.user(session, "olga", "organizer")
    make.league(session, olga, "club")
    token = token_for(session, olga)
    race = {"track": "oval", "closes_at": "2030-01-01T00:00:00Z"}
    for field in ("laps", "seed", "max_entries_total", "round_interval_s", "knockout_size"):
        assert api.post("/leagues/club/races", token,
                        json={**race, field: BIG}).status_code == 400, field
    season = {"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-02-01T00:00:00Z"}
    for change in ({"promote": BIG}, {"points_table": [BIG]}):
        assert api.post("/leagues/club/seasons", token,
                        json={**season, **change}).status_code == 400, change
    for query in ({"page": BIG}, {"per_page": BIG}, {"per_page": 201}):
        assert error_of(api.get("/races", query_string=query))[:2] == (400, "invalid")
    far = {"starts_at": "0001-01-01T00:00:00+14:00", "ends_at": "2030-02-01T00:00:00Z"}
    assert error_of(api.post("/leagues/club/seasons", token, json=far))[:2] == (400, "invalid")


def test_the_document_states_the_bounds_the_api_checks(api: ApiClient) -> None:
    schemas = api.doc["components"]["schemas"]
    race = schemas["RaceCreate"]["properties"]
    assert (race["laps"]["minimum"], race["laps"]["maximum"]) == (1, 50)
    assert race["seed"]["maximum"] == 2**63 - 1
    assert race["division_ids"]["items"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    assert race["track"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,62}$"
    assert race["knockout_size"]["enum"] == [0, 2, 4, 8, 16, None]
    assert race["name"]["maxLength"] == 120 and "pattern" in race["name"]
    league = schemas["LeagueCreate"]["properties"]
    assert "pattern" in league["slug"] and league["name"]["minLength"] == 1
    assert league["divisions"]["items"]["maxLength"] == 80
    season = schemas["SeasonCreate"]["properties"]
    assert season["points_table"]["anyOf"][0]["items"]["maximum"] == 1_000_000
    assert schemas["Disqualify"]["properties"]["reason"]["maxLength"] == 2000
    for path, item in api.doc["paths"].items():
        for op in item.values():
            for param in op.get("parameters", []):
                schema = param["schema"]
                if schema.get("type") == "integer":
                    assert "maximum" in schema and schema["minimum"] >= 1, (path, param)
                if param["in"] == "path" and schema["type"] == "string":
                    assert "pattern" in schema, (path, param)


@pytest.mark.parametrize("path", ["/leagues/No%20Spaces", "/leagues/a%00b",
                                  "/races?league=a%00b", "/leagues/club/races?status=open"])
def test_text_that_cannot_name_anything_is_never_looked_up(api: ApiClient, session: Session,
                                                           make: Factory, path: str) -> None:
    """A NUL byte reaching PostgreSQL would be a server error: malformed slugs are refused
    before any query."""
    make.league(session, make.user(session, "olga", "organizer"), "club")
    session.commit()
    r = api.get(path)
    assert r.status_code in (200, 400, 404)
    assert r.status_code == 200 or r.get_json()["error"]["code"] in ("invalid", "not_found")
