"""Home = league: ``paddock evaluate MODEL --race ID --server URL`` fetches a race's settings
from its league's site and computes exactly the result the league stored for that model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from evaluator import cli
from league.models import utcnow
from tests.support.workers import league_result

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "evaluator" / "bots" / "pro.onnx"


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["evaluate", str(BOT), "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_at_home_equals_the_leagues_result(
        served: str, db: Any, session: Session, storage: Any, make: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    now = utcnow()
    race = make.race(session, name="Harbour Sprint", track="royal-park", laps=1, trials=2,
                     seed=424242, obstacles=1, conditions="standard",
                     opens_at=now - dt.timedelta(hours=1), closes_at=now + dt.timedelta(days=1))
    stored = league_result(session, db, storage, make, race, BOT.read_bytes())

    code, out, err = evaluate(capsys, "--race", str(race.id), "--server", served, "--json")
    assert code == 0, err
    assert f"race {race.id} (Harbour Sprint)" in err
    home = json.loads(out)
    assert home == stored  # every field: settings, seed, trials, conditions, spread
    assert home["settings"]["conditions"]["preset"] == "standard"
    assert len({t["total_time_s"] for t in home["trials"]}) == 2  # the trials differ


def test_race_flags_are_refused_and_bad_servers_explained(
        served: str, session: Session, make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    race = make.race(session, name="Duel", format="head-to-head")
    secret = make.race(session, make.league(session, slug="secret", visibility="private"))
    session.commit()
    code, _, err = evaluate(capsys, "--race", str(race.id), "--server", served, "--laps", "2",
                            "--seed", "3")
    assert code == 2 and "leave out --laps, --seed" in err
    code, _, err = evaluate(capsys, "--race", str(race.id))
    assert code == 2 and "--server URL" in err
    code, _, err = evaluate(capsys, "--race", str(race.id), "--server", served)
    assert code == 2 and "is head-to-head" in err
    code, _, err = evaluate(capsys, "--race", str(secret.id), "--server", served)
    assert code == 2 and "no such race there (a private league's race needs --token" in err
    code, _, err = evaluate(capsys, "--race", "5", "--server", "ftp://example.org")
    assert code == 2 and "--server must be the league's address" in err
    code, _, err = evaluate(capsys, "--race", "5", "--server", "http://127.0.0.1:9")
    assert code == 2 and "could not reach http://127.0.0.1:9/api/v1/races/5" in err


def test_the_race_page_and_entry_form_show_the_exact_command(
        client: Any, session: Session, make: Any, login: Any) -> None:
    now = utcnow()
    race = make.race(session, opens_at=now - dt.timedelta(hours=1),
                     closes_at=now + dt.timedelta(days=1))
    racer = make.user(session, "ada")
    session.commit()
    command = f"paddock evaluate model.onnx --race {race.id} --server http://localhost"
    assert command in client.get(f"/races/{race.id}").get_data(as_text=True)
    login(client, racer)
    assert command in client.get(f"/garage/races/{race.id}/enter").get_data(as_text=True)
