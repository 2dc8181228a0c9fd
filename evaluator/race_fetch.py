"""A league race's settings, fetched from its server: ``paddock evaluate --race ID --server
URL`` evaluates at home exactly as the league does.

The race comes from the league's public API (``GET /api/v1/races/<id>``, with a token for a
private league): every setting of the race engine, the track's name and its geometry's digest.
The track must be the same geometry here (a library track, or one imported under the same
name); otherwise the evaluation would not be comparable and is refused.
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
    track: Track


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
    if body["format"] != Format.TIME_TRIAL:
        raise RaceFetchError(f"race {race_id} is {body['format']}: its heats race the other "
                             "racers' models, which stay on the league; --race evaluates time "
                             "trials (use --opponent with models of your own)")
    try:
        config = RaceConfig(**{k: body[k] for k in SETTINGS})
    except (RaceConfigError, TypeError) as err:
        raise RaceFetchError(f"race {race_id}'s settings cannot be raced here: {err}") from err
    try:
        track = load_track(config.track)
    except PaddockError as err:
        raise RaceFetchError(f"race {race_id} is on track {config.track!r}, which is not here: "
                             f"{err} (import it with paddock tracks import)") from err
    if track.digest != body["track_digest"]:
        raise RaceFetchError(f"track {config.track!r} here is not the geometry race {race_id} "
                             f"is run on ({track.digest[:12]} here, {body['track_digest'][:12]} "
                             "there): update paddock or import the league's track")
    page = race_url(server, race_id).replace("/api/v1/races/", "/races/")
    return LeagueRace(race_id, str(body.get("name", "")), page, config, track)
