"""Private telemetry: spectators get the cars' states, a policy's commands go only to its racer
and the league's organizers, on the viewer's data, the download and the API alike."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from evaluator import replay
from league.read import replays as read
from league.rules import leagues
from tests.support import replays as sample
from tests.support.replay_formats import as_format_1, as_format_2
from tests.web.api_support import token_for

ALL = frozenset({0, 1, 2})
NONE: frozenset[int] = frozenset()


@pytest.fixture(scope="module")
def stored(record_race: Any) -> bytes:
    """Three cars over two laps of the oval, every car's commands kept (as a worker stores)."""
    return sample.record_replay(record_race, sample.incident_drivers(record_race), laps=2)


def commands(data: bytes) -> frozenset[int]:
    """The cars whose commands ``data`` holds (and it decodes)."""
    return replay.commands_of(replay.decode(data))


def same_states(data: bytes, stored: bytes) -> bool:
    """Whether ``data`` shows every car exactly as the stored replay does."""
    got, ref = replay.decode(data), replay.decode(stored)
    return len(got.cars) == len(ref.cars) and all(
        (getattr(a, col) == getattr(b, col)).all()
        for a, b in zip(got.cars, ref.cars, strict=True)
        for col in ("x", "y", "yaw", "steering", "speed", "progress", "laps", "flags"))


def test_a_spectator_gets_a_time_trial_without_its_commands(client, session, storage, make,
                                                            login, stored) -> None:
    tt = sample.time_trial(session, storage, make, stored, trials=1, ranked=1)
    league = tt.race.league
    rival = make.user(session, "rival")
    organizer = make.organizer(session, league)
    admin = make.user(session, "root", "admin")
    session.commit()
    digest = hashlib.sha256(stored).hexdigest()
    url = f"/replays/{tt.replays[0].id}.bin"
    public = client.get(url)
    assert public.status_code == 200 and public.data != stored
    assert commands(public.data) == NONE and same_states(public.data, stored)
    assert public.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert public.headers["ETag"] == f'"{digest}-commands-none"'
    # a browser keeps a copy per session: signing in never reuses the spectator's copy
    assert "Cookie" in public.headers["Vary"]
    # the stored file's validator is not the spectator's: no 304 for it
    assert client.get(url, headers={"If-None-Match": f'"{digest}"'}).status_code == 200
    again = client.get(url, headers={"If-None-Match": public.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    login(client, rival)
    assert commands(client.get(url).data) == NONE
    for who in (tt.entry.racer, organizer, admin):
        login(client, who)
        own = client.get(url)
        assert own.data == stored, who.name
        assert own.headers["ETag"] == f'"{digest}"'
        assert own.headers["Cache-Control"].startswith("private")


def test_the_download_follows_the_same_rule(client, session, storage, make, login,
                                            stored) -> None:
    tt = sample.time_trial(session, storage, make, stored, trials=1, ranked=1)
    session.commit()
    url = f"/replays/{tt.replays[0].id}/download"
    public = client.get(url)
    assert public.headers["Content-Disposition"].startswith("attachment")
    assert commands(public.data) == NONE and public.headers["ETag"].endswith('-commands-none"')
    login(client, tt.entry.racer)
    assert client.get(url).data == stored


def test_a_heat_gives_a_racer_their_own_cars_commands(client, session, storage, make, login,
                                                      stored) -> None:
    race = make.race(session, format="head-to-head", name="Duel")
    racers = [make.user(session, name) for name in ("kim", "lee", "max")]
    entries = [make.entry(session, race, r, name=f"{r.name}-bot") for r in racers]
    _, job, rows = sample.heat(session, storage, make, stored, entries)
    organizer = make.organizer(session, race.league)
    session.commit()
    url = f"/replays/{rows[0].id}.bin"
    etags = set()
    for i, racer in enumerate(racers):
        login(client, racer)
        r = client.get(url)
        assert commands(r.data) == {i} and same_states(r.data, stored), racer.name
        mine, theirs = replay.decode(r.data).cars[i], replay.decode(stored).cars[i]
        assert mine.command_speed is not None and theirs.command_speed is not None
        assert (mine.command_speed == theirs.command_speed).all()
        etags.add(r.headers["ETag"])
    login(client, organizer)
    assert client.get(url).data == stored
    with client.session_transaction() as sess:
        sess.clear()
    assert commands(client.get(url).data) == NONE
    assert len(etags) == 3  # one copy per racer, each its own validator


def test_a_private_leagues_replay_stays_a_404_for_outsiders(client, session, storage, make,
                                                            login, stored) -> None:
    league = make.league(session, slug="secret", visibility="private")
    racer = make.user(session, "ada")
    leagues.join_league(session, league, racer, league.invite_code)
    tt = sample.time_trial(session, storage, make, stored, racer=racer,
                           race=make.race(session, league, name="Hidden"), trials=1, ranked=1)
    outsider = make.user(session, "eve")
    member = make.user(session, "bob")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    rid = tt.replays[0].id
    urls = [f"/replays/{rid}.bin", f"/replays/{rid}/download"]
    for who in (None, outsider):
        if who is not None:
            login(client, who)
        for url in urls:
            r = client.get(url)
            assert r.status_code == 404 and b"Hidden" not in r.data and stored not in r.data
            assert "ETag" not in r.headers
    login(client, member)  # a member watches it, without the racer's commands
    assert [commands(client.get(url).data) for url in urls] == [NONE, NONE]
    login(client, tt.entry.racer)
    assert [client.get(url).data for url in urls] == [stored, stored]


def test_the_api_download_follows_the_same_rule(api, session, storage, make, stored) -> None:
    league = make.league(session, slug="secret", visibility="private")
    racer = make.user(session, "ada")
    leagues.join_league(session, league, racer, league.invite_code)
    tt = sample.time_trial(session, storage, make, stored, racer=racer,
                           race=make.race(session, league, name="Hidden"), trials=1, ranked=1)
    member, outsider = make.user(session, "bob"), make.user(session, "eve")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    path = f"/evaluations/{tt.job.id}/replay"
    for token in (None, token_for(session, outsider)):
        for asked in (path, f"{path}?trial=1", f"{path}?trial=9"):
            r = api.get(asked, token)
            assert r.status_code == 404, asked
            assert r.get_json()["error"]["message"] == f"no evaluation {tt.job.id}"
    watched = api.get(path, token_for(session, member))
    assert watched.status_code == 200 and commands(watched.get_data()) == NONE
    assert watched.headers["Cache-Control"] == "private"
    assert "Authorization" in watched.headers["Vary"]
    own = api.get(path, token_for(session, tt.entry.racer))
    assert own.get_data() == stored
    assert own.headers["ETag"] == f'"{hashlib.sha256(stored).hexdigest()}"'
    assert own.headers["ETag"] != watched.headers["ETag"]
    organizer = api.get(path, token_for(session, make.organizer(session, league)))
    assert organizer.get_data() == stored


def test_older_stored_replays_are_rewritten_too(client, session, storage, make, login,
                                                stored) -> None:
    """A format-2 replay kept every car's commands: a spectator gets its format-4 copy (no
    obstacles kept, none invented); a format-1 replay has none to withhold."""
    old2, old1 = as_format_2(stored), as_format_1(stored)
    tt = sample.time_trial(session, storage, make, [old2, old1], trials=2, ranked=1)
    session.commit()
    two = client.get(f"/replays/{tt.replays[0].id}.bin").data
    copy = replay.decode(two)
    assert copy.format_version == 4 and copy.obstacles is None
    assert replay.commands_of(copy) == NONE and same_states(two, old2)
    one = client.get(f"/replays/{tt.replays[1].id}.bin").data
    assert commands(one) == NONE and same_states(one, old1)
    login(client, tt.entry.racer)
    assert client.get(f"/replays/{tt.replays[0].id}.bin").data == old2


def test_a_replay_that_cannot_be_read_is_never_served_to_a_spectator(
        client, session, storage, make, login, stored) -> None:
    """Rewriting is the only proof the commands are gone: bytes the server cannot read go to
    the racer as they are stored, to nobody else."""
    cut = stored[: len(stored) // 2]
    tt = sample.time_trial(session, storage, make, cut, trials=1, ranked=1)
    session.commit()
    url = f"/replays/{tt.replays[0].id}.bin"
    r = client.get(url)
    assert r.status_code == 500 and cut not in r.data
    login(client, tt.entry.racer)
    assert client.get(url).data == cut


def test_rewritten_copies_are_kept_per_digest_and_cars(session, storage, make,
                                                       stored, monkeypatch) -> None:
    """The second spectator costs no decoding: the copy is kept by stored digest and cars."""
    tt = sample.time_trial(session, storage, make, stored, trials=1, ranked=1)
    ctx = read.get_replay(session, tt.replays[0].id, None)
    copy = read.replay_copy(session, ctx, None)
    assert copy == read.ReplayCopy(hashlib.sha256(stored).hexdigest(), 1, NONE)
    first = read.copy_bytes(storage, copy)

    def refuse(data: bytes) -> replay.Replay:
        raise AssertionError("decoded again")

    monkeypatch.setattr(replay, "decode", refuse)
    assert read.copy_bytes(storage, copy) == first
    own = read.replay_copy(session, ctx, tt.entry.racer)
    assert own.stored and own.etag == copy.sha256 and read.copy_bytes(storage, own) == stored


def test_organizers_may_make_a_leagues_telemetry_public(client, session, storage, make,
                                                        login, stored) -> None:
    tt = sample.time_trial(session, storage, make, stored, trials=1, ranked=1)
    league = tt.race.league
    organizer = make.organizer(session, league)
    session.commit()
    url = f"/replays/{tt.replays[0].id}.bin"
    assert commands(client.get(url).data) == NONE
    login(client, organizer)
    r = client.post(f"/organize/leagues/{league.slug}",
                    data={"name": league.name, "description": "", "visibility": "public",
                          "telemetry_public": "y"})
    assert r.status_code == 302
    spectator = client.application.test_client()  # not signed in
    shown = spectator.get(url)
    assert shown.data == stored and commands(shown.data) == ALL
    page = client.get(f"/organize/leagues/{league.slug}").get_data(as_text=True)
    assert "telemetry public" in page and "False → True" in page  # in the audit log
