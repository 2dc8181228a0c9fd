"""Comparing two runs of a race: the ghost on the viewer page, the runs offered, the links
from the leaderboard and the garage, and ghosts that cannot be shown."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

import league.models as m
from league.read import replays
from tests.support import replays as sample
from tests.web.test_replays import viewer_attrs


@pytest.fixture(scope="module")
def runs(record_race: Any) -> dict[str, bytes]:
    """Two real one-car runs of two laps of the oval: a quick car and a slower one."""
    from evaluator.drivers import PurePursuitDriver

    return {"fast": sample.record_replay(record_race, [PurePursuitDriver(2.6)], laps=2),
            "slow": sample.record_replay(record_race, [PurePursuitDriver(2.0)], laps=2)}


@dataclass
class Seeded:
    race: m.Race
    ada: m.User
    bob: m.User
    ada_job: m.EvaluationJob  #: the leader's run
    bob_v1_job: m.EvaluationJob
    bob_v2_job: m.EvaluationJob
    ada_replay: m.Replay
    bob_v1_replay: m.Replay
    bob_v2_replays: list[m.Replay]  #: two trials
    other_race_replay: m.Replay
    private_replay: m.Replay
    heat_replay: m.Replay


def _run(session: Any, storage: Any, make: Any, race: m.Race, racer: m.User, data: bytes,
         time_s: float, trials: int = 1, name: str = "quick"
         ) -> tuple[m.EvaluationJob, list[m.Replay]]:
    entry = make.entry(session, race, racer, name=name)
    blocks = sample.trial_blocks(trials, time_s - 1)
    result = make.result(session, entry, time_s=time_s, laps=2,
                         data={"ranked_trial": 1, "trials": blocks})
    job = session.get_one(m.EvaluationJob, result.job_id)
    return job, [sample.add_replay(session, storage, job, t, data)
                 for t in range(1, trials + 1)]


@pytest.fixture
def seeded(session: Any, storage: Any, make: Any, runs: dict[str, bytes]) -> Seeded:
    league = make.league(session, slug="open")
    race = make.race(session, league, name="Harbour Sprint", laps=2)
    ada = make.user(session, "ada")
    bob = make.user(session, "bob")
    ada_job, ada_rows = _run(session, storage, make, race, ada, runs["fast"], 40.0)
    v1_job, v1_rows = _run(session, storage, make, race, bob, runs["slow"], 55.0)
    v2_job, v2_rows = _run(session, storage, make, race, bob, runs["slow"], 50.0, trials=2)
    other = make.race(session, league, name="Other", laps=2)
    _, other_rows = _run(session, storage, make, other, ada, runs["fast"], 40.0)
    secret = make.league(session, slug="secret", visibility="private")
    _, private_rows = _run(session, storage, make, make.race(session, secret, name="Hidden"),
                           ada, runs["fast"], 40.0)
    h2h = make.race(session, league, name="Duel", format="head-to-head", laps=2)
    entries = [make.entry(session, h2h, make.racer(session, n)) for n in ("kim", "lee")]
    _, _, heat_rows = sample.heat(session, storage, make, runs["fast"], entries)
    session.commit()
    return Seeded(race, ada, bob, ada_job, v1_job, v2_job, ada_rows[0], v1_rows[0], v2_rows,
                  other_rows[0], private_rows[0], heat_rows[0])


def problem(page: str) -> str:
    found = re.search(r'class="flash error replay-ghost-problem"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def test_leaderboard_rows_compare_with_the_leader(client: Any, seeded: Seeded) -> None:
    page = client.get(f"/races/{seeded.race.id}").get_data(as_text=True)
    links = re.findall(r'<a class="compare-link" href="([^"]+)"', page)
    # bob is second (his best entry, v2); the leader's own row has no link to itself.
    assert links == [f"/evaluations/{seeded.bob_v2_job.id}/replay?vs={seeded.ada_job.id}"]


def test_a_run_with_the_leader_as_its_ghost(client: Any, seeded: Seeded) -> None:
    r = client.get(f"/evaluations/{seeded.bob_v2_job.id}/replay?vs={seeded.ada_job.id}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    attrs = viewer_attrs(page)
    assert attrs["src"] == f"/replays/{seeded.bob_v2_replays[0].id}.bin"
    assert attrs["ghost-src"] == f"/replays/{seeded.ada_replay.id}.bin"
    assert json.loads(attrs["ghost"]) == {"name": "ada", "model": "quick v1"}
    # Both replays start downloading with the page; the comparison script is loaded.
    for row in (seeded.bob_v2_replays[0], seeded.ada_replay):
        assert f'<link rel="preload" href="/replays/{row.id}.bin"' in page
    assert '<script src="/static/js/compare.js" defer>' in page
    assert "Compared with the ghost of" in page and "ada · quick v1 · trial 1" in page
    assert re.search(r'<tr class="ghost-row">.*?ada.*?ghost', page, re.S)
    assert 'class="replay-sectors"' in page and not problem(page)
    # The same comparison by replay numbers; the picker shows it selected.
    page = client.get(f"/replays/{seeded.bob_v2_replays[0].id}?ghost={seeded.ada_replay.id}"
                      ).get_data(as_text=True)
    assert viewer_attrs(page)["ghost-src"] == f"/replays/{seeded.ada_replay.id}.bin"
    assert re.search(rf'<option value="{seeded.ada_replay.id}" selected>', page)


def test_without_a_ghost_nothing_of_the_comparison(client: Any, seeded: Seeded) -> None:
    page = client.get(f"/replays/{seeded.ada_replay.id}").get_data(as_text=True)
    assert "ghost-src" not in viewer_attrs(page)
    assert "compare.js" not in page and "replay-sectors" not in page
    assert 'class="replay-compare"' in page  # ... but the picker is there


@pytest.mark.parametrize("query, expected", [
    ("ghost=abc", "“abc” is not a replay number."),
    ("ghost=0", "“0” is not a replay number."),
    ("ghost=99999999999999999999999", "is not a replay number."),
    ("ghost=3000000000", "is not a replay number."),  # past any id (PostgreSQL: 32-bit)
    ("vs=-4", "“-4” is not an evaluation number."),
    ("ghost=987654", "cannot be compared with replay 987654: no replay 987654."),
    ("vs=987654", "cannot be compared with evaluation 987654: no evaluation 987654."),
])
def test_a_ghost_that_does_not_exist(client: Any, seeded: Seeded, query: str,
                                     expected: str) -> None:
    r = client.get(f"/replays/{seeded.ada_replay.id}?{query}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert expected in problem(page)
    assert "ghost-src" not in viewer_attrs(page)


def test_ghosts_that_cannot_be_compared(client: Any, seeded: Seeded) -> None:
    own = f"/replays/{seeded.ada_replay.id}"

    def note(query: str) -> str:
        return problem(client.get(f"{own}?{query}").get_data(as_text=True))

    # A replay of a private league looks exactly like a missing one.
    hidden = seeded.private_replay.id
    assert note(f"ghost={hidden}") == (f"This run cannot be compared with replay {hidden}: "
                                       f"no replay {hidden}.")
    assert "another race (Other)" in note(f"ghost={seeded.other_race_replay.id}")
    assert "cannot be compared with itself" in note(f"ghost={seeded.ada_replay.id}")
    assert "heats cannot be compared" in note(f"ghost={seeded.heat_replay.id}")
    heat_page = client.get(f"/replays/{seeded.heat_replay.id}?ghost={seeded.ada_replay.id}")
    assert "heats cannot be compared" in problem(heat_page.get_data(as_text=True))
    assert 'class="replay-compare"' not in heat_page.get_data(as_text=True)


def test_runs_offered_as_ghosts(session: Any, seeded: Seeded) -> None:
    run = replays.get_replay(session, seeded.bob_v2_replays[0].id, seeded.bob)
    offered = [(c.group, c.title, c.replay_id, c.time_s)
               for c in replays.ghost_choices(session, run, seeded.bob)]
    assert offered == [
        ("This evaluation", "Trial 2", seeded.bob_v2_replays[1].id, 51.0),
        ("Your runs", "quick v1", seeded.bob_v1_replay.id, 55.0),
        ("Leaderboard", "1. ada · quick v1", seeded.ada_replay.id, 40.0),
    ]  # never the run itself (bob's v2, second on the leaderboard)
    visitor = [c.group for c in replays.ghost_choices(session, run, None)]
    assert visitor == ["This evaluation", "Leaderboard"]


def test_garage_compares_with_the_previous_version(client: Any, login: Any,
                                                   seeded: Seeded) -> None:
    login(client, seeded.bob)
    want = f"/evaluations/{seeded.bob_v2_job.id}/replay?vs={seeded.bob_v1_job.id}"
    garage = client.get("/garage/").get_data(as_text=True)
    assert html.unescape(garage).count(want) == 1  # v2's row only: v1 has no earlier version
    assert ">vs v1</a>" in garage
    v2_entry = seeded.bob_v2_job.entry_id
    page = client.get(f"/garage/entries/{v2_entry}").get_data(as_text=True)
    assert "Compare with my previous version" in page and want in html.unescape(page)
    v1_page = client.get(f"/garage/entries/{seeded.bob_v1_job.entry_id}").get_data(as_text=True)
    assert "Compare with my previous version" not in v1_page


def test_replay_lookups_reveal_nothing_of_a_private_league(client: Any, session: Any,
                                                           seeded: Seeded) -> None:
    """No evaluation, no such trial and no replay answer alike until the viewer may see it."""
    hidden_job = seeded.private_replay.job_id
    bodies = {}
    for url in (f"/api/v1/evaluations/{hidden_job}/replay",
                f"/api/v1/evaluations/{hidden_job}/replay?trial=9",
                f"/api/v1/evaluations/{hidden_job}/replay?trial=1"):
        r = client.get(url)
        assert r.status_code == 404
        bodies[url] = r.get_json()["error"]["message"]
    assert set(bodies.values()) == {f"no evaluation {hidden_job}"}
