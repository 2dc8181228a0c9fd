"""The replay pages and data: viewer page, trials, bytes, download, and who may see them."""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

import pytest

from evaluator import replay
from league.rules import leagues, submissions
from tests.support import replays as sample
from tests.support.workers import race_one_job


@pytest.fixture(scope="module")
def replay_bytes(record_race: Any) -> bytes:
    """A real two-lap race of three cars with collisions, off-tracks and overtakes."""
    return sample.record_replay(record_race, sample.incident_drivers(record_race), laps=2)


def viewer_attrs(page: str) -> dict[str, str]:
    """The data attributes of the viewer element."""
    tag = re.search(r'<section id="replay-viewer"[^>]*>', page, re.S)
    assert tag, page
    found = re.finditer(r"data-([a-z-]+)=(?:\"([^\"]*)\"|'([^']*)')", tag.group(0))
    return {m.group(1): html.unescape(m.group(2) if m.group(2) is not None else m.group(3))
            for m in found}


def test_viewer_page_of_a_public_replay(client, session, storage, make, replay_bytes) -> None:
    tt = sample.time_trial(session, storage, make, replay_bytes)
    session.commit()
    r = client.get(f"/replays/{tt.replays[0].id}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "Sprint" in page and "Trial 1" in page and "quick v1" in page
    attrs = viewer_attrs(page)
    assert attrs["src"] == f"/replays/{tt.replays[0].id}.bin"
    assert json.loads(attrs["cars"]) == [{"name": "ada", "model": "quick v1"}]
    assert attrs["laps"] == str(tt.race.laps) and attrs["start"] == "0.00"
    assert '<script src="/static/js/replay_format.js" defer>' in page
    assert '<script src="/static/js/replay.js" defer>' in page
    assert 'href="/static/css/replay.css"' in page
    nojs = re.search(r"<noscript>(.*?)</noscript>", page, re.S)
    assert nojs and "needs JavaScript" in nojs.group(1)
    assert f'href="/replays/{tt.replays[0].id}/download"' in nojs.group(1)
    # The CSP allows no inline code: every script has a src, no style or on* attributes.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\sstyle=|\son[a-z]+=", page)


def test_job_page_opens_on_the_ranked_trial(client, session, storage, make,
                                            replay_bytes) -> None:
    tt = sample.time_trial(session, storage, make, replay_bytes, ranked=2)
    session.commit()
    page = client.get(f"/evaluations/{tt.job.id}/replay").get_data(as_text=True)
    assert "· Trial 2</span>" in page
    assert viewer_attrs(page)["src"] == f"/replays/{tt.replays[1].id}.bin"
    current = re.search(r'<a href="([^"]+)"\s+aria-current="page"', page)
    assert current and current.group(1) == f"/replays/{tt.replays[1].id}"
    for row in tt.replays:
        assert f'href="/replays/{row.id}"' in page
    assert "Trial 2 (ranked)" in page
    page = client.get(f"/evaluations/{tt.job.id}/replay?trial=3").get_data(as_text=True)
    assert viewer_attrs(page)["src"] == f"/replays/{tt.replays[2].id}.bin"
    assert client.get(f"/evaluations/{tt.job.id}/replay?trial=9").status_code == 404
    assert client.get(f"/evaluations/{tt.job.id}/replay?trial=x").status_code == 200
    assert client.get("/evaluations/999999/replay").status_code == 404


def test_start_time_from_the_query(client, session, storage, make, replay_bytes) -> None:
    tt = sample.time_trial(session, storage, make, replay_bytes, trials=1, ranked=1)
    session.commit()
    url = f"/replays/{tt.replays[0].id}"
    for query, start in (("?t=12.5", "12.50"), ("?t=-3", "0.00"), ("?t=soon", "0.00"),
                         ("?t=nan", "0.00"), ("?t=1e300", "0.00")):
        assert viewer_attrs(client.get(url + query).get_data(as_text=True))["start"] == start


def test_data_is_the_stored_file(client, session, storage, make, login, replay_bytes) -> None:
    """The racer is served the stored file (spectators: tests/web/test_replay_privacy.py)."""
    tt = sample.time_trial(session, storage, make, replay_bytes, trials=1, ranked=1)
    session.commit()
    login(client, tt.entry.racer)
    r = client.get(f"/replays/{tt.replays[0].id}.bin")
    assert r.status_code == 200 and r.data == replay_bytes
    assert r.mimetype == "application/octet-stream"
    assert "Content-Encoding" not in r.headers
    assert r.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    digest = hashlib.sha256(replay_bytes).hexdigest()
    assert r.headers["ETag"] == f'"{digest}"'
    assert replay.decode(r.data).frames > 100
    again = client.get(f"/replays/{tt.replays[0].id}.bin", headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == f'"{digest}"'
    other = client.get(f"/replays/{tt.replays[0].id}.bin", headers={"If-None-Match": '"abc"'})
    assert other.status_code == 200 and other.data == replay_bytes
    assert client.get("/replays/999999.bin").status_code == 404


def test_download_is_an_attachment(client, session, storage, make, login,
                                   replay_bytes) -> None:
    tt = sample.time_trial(session, storage, make, replay_bytes, trials=2, ranked=1)
    session.commit()
    login(client, tt.entry.racer)
    r = client.get(f"/replays/{tt.replays[1].id}/download")
    assert r.status_code == 200 and r.data == replay_bytes
    assert r.mimetype == "application/octet-stream"
    name = f"race-{tt.race.id}-entry-{tt.entry.id}-trial-2.pdkreplay"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert "Content-Encoding" not in r.headers


def test_private_replays_are_404_to_outsiders(client, session, storage, make, login,
                                              replay_bytes) -> None:
    league = make.league(session, slug="secret", visibility="private")
    tt = sample.time_trial(session, storage, make, replay_bytes,
                           race=make.race(session, league, trials=1), trials=1, ranked=1)
    outsider = make.user(session, "eve")
    member = make.user(session, "bob")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    rid = tt.replays[0].id
    urls = [f"/replays/{rid}", f"/replays/{rid}.bin", f"/replays/{rid}/download",
            f"/evaluations/{tt.job.id}/replay"]
    for url in urls:
        r = client.get(url)
        assert r.status_code == 404, url
        assert replay_bytes not in r.data and "Sprint" not in r.get_data(as_text=True)
    login(client, outsider)
    assert [client.get(url).status_code for url in urls] == [404] * 4
    login(client, member)
    assert [client.get(url).status_code for url in urls] == [200] * 4


def test_heat_replay_names_every_car(client, session, storage, make, replay_bytes) -> None:
    race = make.race(session, format="head-to-head", name="Duel")
    entries = [make.entry(session, race, make.racer(session, name), name=f"{name}-bot")
               for name in ("kim", "lee", "max")]
    heat, job, rows = sample.heat(session, storage, make, replay_bytes, entries)
    session.commit()
    page = client.get(f"/evaluations/{job.id}/replay").get_data(as_text=True)
    assert "Duel" in page and "· Heat 1</span>" in page and "Heat 2" in page
    assert json.loads(viewer_attrs(page)["cars"]) == [
        {"name": n, "model": f"{n}-bot v1"} for n in ("kim", "lee", "max")]
    assert re.search(r'<td class="num">1</td>\s*<td><a href="/racers/kim">kim</a>', page)
    r = client.get(f"/replays/{rows[1].id}/download")
    assert f"race-{race.id}-heat-{heat.id}-heat-2.pdkreplay" in r.headers["Content-Disposition"]


def test_replay_of_a_real_evaluation(client, db, session, storage, make) -> None:
    """A queued entry raced by a worker: its replays are what the viewer is served."""
    race = make.race(session, trials=2, name="Real run")
    racer = make.user(session, "ada")
    entry = submissions.submit_entry(session, storage, race, racer, make.policy(), now=make.now)
    job_id, laps = entry.jobs[0].id, race.laps
    session.commit()
    session.close()  # on SQLite an open transaction here would hold the worker's write lock
    assert race_one_job(db, storage) == job_id
    page = client.get(f"/evaluations/{job_id}/replay")
    assert page.status_code == 200
    src = viewer_attrs(page.get_data(as_text=True))["src"]
    data = client.get(src).data
    decoded = replay.decode(data)
    assert decoded.meta["job"] == job_id and decoded.meta["race"]["laps"] == laps
    assert decoded.track.name == "oval" and len(decoded.cars) == 1
    assert "Trial 1" in page.get_data(as_text=True) and "Trial 2" in page.get_data(as_text=True)
