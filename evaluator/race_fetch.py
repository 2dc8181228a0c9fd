"""A league race's settings, fetched from its server: ``paddock evaluate --race ID --server
URL`` evaluates at home exactly as the league does.

The race comes from the league's public API (``GET /api/v1/races/<id>``, with a token for a
private league): every setting of the race engine, the track's name and its geometry's digest
(a race on several tracks: ``tracks``, each track's name and digest). Every track must be the
same geometry here (a library track, or one imported under the same name); otherwise the
evaluation would not be comparable and is refused.

While the race's seed is secret (until the race closes, unless its organizers published it)
the API gives ``seed: null`` and a ``practice_seed``: the race is then run with the practice
seed, so everything but the exact runs is the league's (settings, conditions, track), and
``LeagueRace.practice`` says so. A mystery track (``track: null`` until the race closes)
cannot be raced at home and is refused.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from evaluator.errors import PaddockError
from evaluator.race_settings import Format, RaceConfig, RaceConfigError
from evaluator.track import Track
from evaluator.track_library import load_track

TIMEOUT_S = 20.0  # seconds to wait for the league's answer
#: The race's settings under the API's names, which are ``RaceConfig``'s.
SETTINGS = ("track", "format", "laps", "trials", "ranking", "off_track_penalty",
            "collision_penalty", "time_cap", "min_laps", "seed", "obstacles", "conditions")


class RaceFetchError(PaddockError):
    """Raised when a league race cannot be fetched or raced here as the league races it."""


@dataclass(frozen=True)
class LeagueRace:
    """A league race as ``paddock evaluate`` runs it."""

    race_id: int
    name: str
    url: str  #: the race's page on its league's site
    config: RaceConfig
    track: Track  #: the first track
    tracks: tuple[Track, ...] = ()  #: every track, the first included (``config.tracks``)
    #: the race's seed is secret: ``config`` has the league's practice seed instead, so the
    #: times differ from the league's
    practice: bool = False


def race_url(server: str, race_id: int) -> str:
    """The API address of race ``race_id`` on ``server`` (``https://league.example.org``)."""
    parts = urllib.parse.urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RaceFetchError(f"--server must be the league's address, like "
                             f"https://league.example.org, got {server!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/api/v1/races/{race_id}"


def fetch_race(server: str, race_id: int, token: str | None = None) -> LeagueRace:
    """Race ``race_id`` of the league at ``server``, ready to evaluate here."""
    url = race_url(server, race_id)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        hint = (" (a private league's race needs --token, or PADDOCK_TOKEN)"
                if err.code in (401, 404) and not token else "")
        raise RaceFetchError(f"{url} answered HTTP {err.code}: no such race there{hint}"
                             if err.code == 404 else
                             f"{url} answered HTTP {err.code}{hint}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RaceFetchError(f"could not reach {url}: {reason}") from err
    except ValueError as err:
        raise RaceFetchError(f"{url} did not answer with a race (not JSON)") from err
    return league_race(body, server, race_id)


def league_race(body: Any, server: str, race_id: int) -> LeagueRace:
    """A race from its API JSON: its settings checked, its track loaded and compared."""
    if not isinstance(body, dict) or any(k not in body for k in (*SETTINGS, "track_digest")):
        raise RaceFetchError(f"the answer for race {race_id} is not a race this version of "
                             "paddock can read (is --server a Paddock league?)")
    if body["track"] is None:
        raise RaceFetchError(f"race {race_id} is on a mystery track, hidden until the race "
                             "closes: it cannot be raced at home before then")
    settings = {k: body[k] for k in SETTINGS}
    if body.get("bots"):  # a head-to-bot race's bot cars (a league before bots sends none)
        settings["bots"] = body["bots"]
    practice = settings["seed"] is None
    if practice:
        settings["seed"] = body.get("practice_seed")
        if settings["seed"] is None:
            raise RaceFetchError(f"race {race_id}'s seed is secret and the league gave no "
                                 "practice seed")
    if body["format"] == Format.HEAD_TO_HEAD:
        raise RaceFetchError(f"race {race_id} is {body['format']}: its heats race the other "
                             "racers' models, which stay on the league; --race evaluates time "
                             "trials and head-to-bot races (use --opponent with models of "
                             "your own)")
    listed = _listed_tracks(body, race_id)
    try:
        config = RaceConfig(**settings,
                            extra_tracks=tuple(name for name, _ in listed[1:]))
    except (RaceConfigError, TypeError) as err:
        raise RaceFetchError(f"race {race_id}'s settings cannot be raced here: {err}") from err
    tracks = tuple(_same_track(name, digest, race_id) for name, digest in listed)
    page = race_url(server, race_id).replace("/api/v1/races/", "/races/")
    return LeagueRace(race_id, str(body.get("name", "")), page, config, tracks[0], tracks,
                      practice)


def _listed_tracks(body: dict[str, Any], race_id: int) -> list[tuple[str, str]]:
    """The race's tracks as (name, digest) pairs, its first track first: the answer's
    ``tracks`` (a race on several), else its ``track`` and ``track_digest``."""
    listed = body.get("tracks")
    if not listed:
        return [(body["track"], body["track_digest"])]
    if not isinstance(listed, list) or not all(
            isinstance(t, dict) and isinstance(t.get("track"), str)
            and isinstance(t.get("track_digest"), str) for t in listed):
        raise RaceFetchError(f"the tracks of race {race_id} are not a list of tracks with "
                             "their digests (is --server a Paddock league?)")
    if listed[0]["track"] != body["track"]:
        raise RaceFetchError(f"race {race_id} names {body['track']!r} as its track but lists "
                             f"{listed[0]['track']!r} first")
    return [(t["track"], t["track_digest"]) for t in listed]


def _same_track(name: str, digest: str, race_id: int) -> Track:
    """Track ``name`` here, if it has the geometry ``digest`` the race is run on."""
    try:
        track = load_track(name)
    except PaddockError as err:
        raise RaceFetchError(f"race {race_id} is on track {name!r}, which is not here: "
                             f"{err} (import it with paddock tracks import)") from err
    if track.digest != digest:
        raise RaceFetchError(f"track {name!r} here is not the geometry race {race_id} "
                             f"is run on ({track.digest[:12]} here, {digest[:12]} "
                             "there): update paddock or import the league's track")
    return track
