"""Secret seeds and mystery tracks, through the site and the API on a real evaluation: what a
racer, a spectator and the organizers see while the race is open, and after it closes; the
organizer publishing the seed; ``paddock evaluate --race`` on the practice seed."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import cli
from evaluator import replay as replay_format
from evaluator.race import trial_seed
from league.models import AuditEvent, EvaluationJob, Replay, utcnow
from league.rules import races, seasons, submissions
from tests.support.workers import race_one_job
from tests.web.api_support import PREFIX, ApiClient, token_for

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "evaluator" / "bots" / "pro.onnx"
SEED = 987654321  #: a seed no page shows by chance
TRIALS = 2


@dataclass
class Raced:
    race: Any
    racer: Any
    organizer: Any
    job: EvaluationJob
    replay: Replay

    @property
    def secrets(self) -> list[str]:
        """The race's seed and its trials' seeds, as they would be written out."""
        return [str(SEED), *(str(trial_seed(SEED, t)) for t in range(1, TRIALS + 1))]


def _raced(session: Session, db: Any, storage: Any, make: Any, **kw: Any) -> Raced:
    """An open race with one entry of the pro bot, evaluated by a real worker."""
    now = utcnow()
    kw.setdefault("seed_public", False)  # as a new race of the form or the API
    race = make.race(session, name=kw.pop("name", "Harbour Sprint"), track="royal-park",
                     laps=1, trials=TRIALS, seed=SEED, obstacles=1, conditions="standard",
                     opens_at=now - dt.timedelta(hours=1), closes_at=now + dt.timedelta(days=1),
                     **kw)
    racer = make.user(session, "ada")
    submissions.submit_entry(session, storage, race, racer, BOT.read_bytes())
    session.commit()
    assert race_one_job(db, storage) is not None
    session.expire_all()
    job = session.scalars(sa.select(EvaluationJob)).one()
    replay = session.scalars(sa.select(Replay).where(Replay.job_id == job.id)
                             .order_by(Replay.trial)).first()
    assert replay is not None
    return Raced(race, racer, make.organizer(session, race.league), job, replay)


def _close(session: Session, raced: Raced) -> None:
    seasons.close_race_now(session, raced.race, raced.organizer)
    session.commit()


class _Viewer:
    """``who`` (None: a visitor) on the site (signed in) and on the API (with a token; every
    answer checked against the served OpenAPI document)."""

    def __init__(self, app: Any, session: Session, login: Any, who: Any) -> None:
        self.browser = app.test_client()
        if who is not None:
            login(self.browser, who)
        self.api = ApiClient(app.test_client())
        self.token = None if who is None else token_for(session, who, f"t{id(self)}")

    def get(self, url: str) -> Any:
        if url.startswith(PREFIX):
            return self.api.get(url.removeprefix(PREFIX), self.token)
        return self.browser.get(url)

    def post(self, url: str, **kw: Any) -> Any:
        if url.startswith(PREFIX):
            return self.api.post(url.removeprefix(PREFIX), self.token, **kw)
        return self.browser.post(url, **kw)


def _as(app: Any, session: Session, login: Any, who: Any) -> _Viewer:
    """``who`` as :class:`_Viewer`."""
    return _Viewer(app, session, login, who)


def _pages(app: Any, session: Session, raced: Raced, login: Any, who: Any) -> dict[str, str]:
    """What ``who`` (None: a visitor) is served about the race, page by page."""
    client = _as(app, session, login, who)
    r, j = raced.race.id, raced.job.id
    urls = [f"/races/{r}", f"/api/v1/races/{r}", "/api/v1/races",
            f"/replays/{raced.replay.id}.bin", f"/api/v1/evaluations/{j}/replay"]
    if who is not None:
        urls += [f"/garage/entries/{raced.job.entry_id}", f"/api/v1/evaluations/{j}",
                 f"/garage/races/{r}/enter"]
    out = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        out[url] = (_replay_text(response.data) if url.endswith((".bin", "/replay"))
                    else response.get_data(as_text=True))
    return out


def _replay_text(data: bytes) -> str:
    """A replay's header as text (what a viewer of the file learns besides the frames)."""
    decoded = replay_format.decode(data)
    return json.dumps({"seed": decoded.seed, "meta": decoded.meta, "track": decoded.track.name})


def test_a_secret_seed_is_nowhere_while_open_and_everywhere_after_close(
        app: Any, session: Session, db: Any, storage: Any, make: Any, login: Any) -> None:
    raced = _raced(session, db, storage, make)
    assert raced.race.seed_public is False  # a new race keeps its seed secret
    for who in (None, raced.racer):
        for url, text in _pages(app, session, raced, login, who).items():
            for secret in raced.secrets:
                assert secret not in text, (who, url, secret)
    client = _as(app, session, login, raced.racer)
    api = client.get(f"/api/v1/races/{raced.race.id}").get_json()
    assert api["seed"] is None and api["seed_public"] is False
    assert api["practice_seed"] == races.practice_seed(raced.race) != SEED
    evaluation = client.get(f"/api/v1/evaluations/{raced.job.id}").get_json()["result"]
    assert evaluation["seed"] is None and evaluation["settings"]["seed"] is None
    assert [t["seed"] for t in evaluation["trials"]] == [None] * TRIALS
    assert evaluation["ranking_time_s"] is not None  # the rest as stored
    page = client.get(f"/races/{raced.race.id}").get_data(as_text=True)
    assert "secret until the race closes" in page and str(api["practice_seed"]) in page

    # The organizers set the seed: they see it all along.
    organizer = _pages(app, session, raced, login, raced.organizer)
    assert str(SEED) in organizer[f"/races/{raced.race.id}"]
    assert str(SEED) in organizer[f"/api/v1/races/{raced.race.id}"]
    assert str(trial_seed(SEED, 1)) in organizer[f"/garage/entries/{raced.job.entry_id}"]
    assert str(trial_seed(SEED, 1)) in organizer[f"/replays/{raced.replay.id}.bin"]

    _close(session, raced)
    for who in (None, raced.racer):
        pages = _pages(app, session, raced, login, who)
        client = _as(app, session, login, who)
        assert str(SEED) in pages[f"/races/{raced.race.id}"]
        assert str(SEED) in pages[f"/api/v1/races/{raced.race.id}"]
        assert str(trial_seed(SEED, 1)) in pages[f"/replays/{raced.replay.id}.bin"]
        if who is not None:
            assert str(trial_seed(SEED, 1)) in pages[f"/garage/entries/{raced.job.entry_id}"]
            stored = session.get_one(EvaluationJob, raced.job.id).result
            assert stored is not None
            data = stored.data
            session.commit()  # SQLite: the test's transaction holds the write lock
            assert client.get(f"/api/v1/evaluations/{raced.job.id}").get_json()["result"] \
                == data
    api = client.get(f"/api/v1/races/{raced.race.id}").get_json()
    assert api["seed"] == SEED and api["practice_seed"] is None


def test_the_organizer_publishes_the_seed_and_it_is_audited(
        app: Any, session: Session, make: Any, login: Any) -> None:
    race = make.race(session, name="Open Book", seed=SEED, seed_public=False)
    organizer = make.organizer(session, race.league)
    racer = make.user(session, "bob")
    session.commit()
    assert _as(app, session, login, racer).post(f"/api/v1/races/{race.id}/secrecy",
                                       json={"seed_public": True}).status_code == 403
    client = _as(app, session, login, organizer)
    assert client.post(f"/api/v1/races/{race.id}/secrecy",
                       json={"seed_public": "yes"}).status_code in (400, 422)
    answer = client.post(f"/api/v1/races/{race.id}/secrecy", json={"seed_public": True})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["seed"] == SEED and answer.get_json()["seed_public"] is True
    client = _as(app, session, login, None)
    assert str(SEED) in client.get(f"/races/{race.id}").get_data(as_text=True)
    assert client.get(f"/api/v1/races/{race.id}").get_json()["seed"] == SEED
    logged = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert logged is not None and logged.details["changed"]["seed_public"] == [False, True]


def test_new_races_keep_their_seed_secret_unless_published(
        app: Any, session: Session, make: Any, login: Any) -> None:
    league = make.league(session, slug="sprint")
    organizer = make.organizer(session, league)
    session.commit()
    client = _as(app, session, login, organizer)
    closes = (utcnow() + dt.timedelta(days=2)).isoformat()
    made = client.post(f"/api/v1/leagues/{league.slug}/races",
                       json={"track": "oval", "closes_at": closes})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()  # the organizer is answered with the seed: a random one
    assert body["seed_public"] is False and isinstance(body["seed"], int)
    published = client.post(f"/api/v1/leagues/{league.slug}/races",
                            json={"track": "oval", "closes_at": closes, "seed": 77,
                                  "seed_public": True, "mystery_track": True}).get_json()
    assert published["seed_public"] is True and published["mystery_track"] is True
    assert published["name"] == "Mystery track"  # not named after the hidden track
    client = _as(app, session, login, None)
    seen = client.get(f"/api/v1/races/{published['id']}").get_json()
    assert seen["seed"] == 77 and seen["track"] is None
    assert client.get(f"/api/v1/races/{body['id']}").get_json()["seed"] is None


def test_the_race_form_publishes_the_seed(app: Any, session: Session, make: Any,
                                          login: Any) -> None:
    race = make.race(session, name="Form Race", seed=SEED, seed_public=False)
    session.commit()
    client = _as(app, session, login, make.organizer(session, race.league))
    form = client.get(f"/organize/races/{race.id}/edit").get_data(as_text=True)
    assert "Publish the seed while the race is open" in form and "Mystery track" in form
    page = client.get(f"/organize/races/{race.id}")
    assert page.status_code == 200 and "secret until the race closes" in \
        page.get_data(as_text=True)


def test_home_uses_the_practice_seed_while_the_seed_is_secret(
        served: str, session: Session, make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    race = make.race(session, name="Secret Sprint", track="royal-park", seed=SEED, trials=2,
                     seed_public=False)
    session.commit()
    code = cli.main(["evaluate", str(BOT), "--quiet", "--race", str(race.id), "--server",
                     served, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    practice = races.practice_seed(race)
    assert f"on the practice seed {practice}" in err and "will differ" in err
    home = json.loads(out)
    assert home["seed"] == practice and home["track"] == "royal-park"
    assert str(SEED) not in out


def test_a_mystery_track_is_hidden_until_the_race_closes(
        app: Any, session: Session, db: Any, storage: Any, make: Any, login: Any,
        served: str, capsys: pytest.CaptureFixture[str]) -> None:
    raced = _raced(session, db, storage, make, name="Night Run", mystery_track=True,
                   seed_public=True)
    race, job = raced.race, raced.job
    league_slug = race.league.slug
    hidden_words = ("royal-park", "Royal Park", race.track_digest)
    for who in (None, raced.racer):
        client = _as(app, session, login, who)
        for url in (f"/races/{race.id}", f"/api/v1/races/{race.id}", "/api/v1/races", "/",
                    f"/leagues/{league_slug}"):
            text = client.get(url).get_data(as_text=True)
            assert "Night Run" in text, url
            for word in hidden_words:
                assert word not in text, (who, url, word)
        assert "Night Run" not in client.get("/tracks/royal-park").get_data(as_text=True)
        page = client.get(f"/races/{race.id}").get_data(as_text=True)
        assert "Mystery track: 61 m long, 1.1 m wide" in page
        assert f"/evaluations/{job.id}/replay" not in page  # the leaderboard's link waits
        api = client.get(f"/api/v1/races/{race.id}").get_json()
        assert api["track"] is None and api["track_digest"] is None
        assert api["track_length_m"] == 61.0 and api["track_width_m"] == 1.1
        for url in (f"/replays/{raced.replay.id}", f"/replays/{raced.replay.id}.bin",
                    f"/evaluations/{job.id}/replay", f"/api/v1/evaluations/{job.id}/replay"):
            response = client.get(url)
            assert response.status_code == 404, url
            assert "hidden until the race closes" in response.get_data(as_text=True), url
    organizer = _as(app, session, login, raced.organizer)  # who set the track sees it
    assert "royal-park" in organizer.get(f"/races/{race.id}").get_data(as_text=True)
    assert organizer.get(f"/replays/{raced.replay.id}.bin").status_code == 200
    # the racer's own garage: times, but no replay, trace or analysis
    entry_page = client.get(f"/garage/entries/{job.entry_id}").get_data(as_text=True)
    assert "royal-park" not in entry_page and "Mystery" not in entry_page.split("<main")[0]
    assert f"/evaluations/{job.id}/replay" not in entry_page
    assert "track is a mystery until the race closes" in entry_page
    assert client.get(f"/garage/evaluations/{job.id}/trace.csv").status_code == 404
    assert client.get(f"/garage/evaluations/{job.id}/analysis.json").status_code == 404
    result = client.get(f"/api/v1/evaluations/{job.id}").get_json()["result"]
    assert result["track"] is None and result["settings"]["track"] is None
    assert result["ranking_time_s"] is not None
    enter = client.get(f"/garage/races/{race.id}/enter").get_data(as_text=True)
    assert "royal-park" not in enter and "cannot be run at home" in enter
    code = cli.main(["evaluate", str(BOT), "--quiet", "--race", str(race.id), "--server",
                     served])
    assert code == 2 and "mystery track" in capsys.readouterr().err

    _close(session, raced)
    client = _as(app, session, login, None)
    page = client.get(f"/races/{race.id}").get_data(as_text=True)
    assert "royal-park" in page and f"/evaluations/{job.id}/replay" in page
    assert client.get(f"/api/v1/races/{race.id}").get_json()["track"] == "royal-park"
    assert "Night Run" in client.get("/tracks/royal-park").get_data(as_text=True)
    assert client.get(f"/replays/{raced.replay.id}.bin").status_code == 200
    assert client.get(f"/api/v1/evaluations/{job.id}/replay").status_code == 200
    client = _as(app, session, login, raced.racer)
    assert client.get(f"/garage/evaluations/{job.id}/analysis.json").status_code == 200
