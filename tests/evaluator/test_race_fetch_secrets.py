"""``paddock evaluate --race`` on a race that keeps secrets: the practice seed while its seed
is secret, a refusal while its track is a mystery (the API answers, without a server)."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator.race_fetch import RaceFetchError, league_race
from evaluator.track_library import load_track


def _answer(**change: Any) -> dict[str, Any]:
    """A race as ``GET /api/v1/races/<id>`` gives it."""
    body = {"track": "oval", "format": "time-trial", "laps": 1, "trials": 2,
            "ranking": "total", "off_track_penalty": 5.0, "collision_penalty": 5.0,
            "time_cap": 60.0, "min_laps": None, "seed": 31, "obstacles": 0,
            "conditions": {"preset": "none"}, "track_digest": load_track("oval").digest,
            "name": "Sprint", "seed_public": True, "practice_seed": None,
            "mystery_track": False}
    return {**body, **change}


def test_a_published_seed_is_the_races_own() -> None:
    race = league_race(_answer(), "https://league.example.org", 4)
    assert race.config.seed == 31 and race.practice is False


def test_a_secret_seed_runs_on_the_practice_seed() -> None:
    race = league_race(_answer(seed=None, seed_public=False, practice_seed=8_675_309),
                       "https://league.example.org", 4)
    assert race.config.seed == 8_675_309 and race.practice is True
    assert race.config.laps == 1 and race.track.name == "oval"  # the rest is the league's


def test_a_secret_seed_without_a_practice_seed_is_refused() -> None:
    with pytest.raises(RaceFetchError, match="seed is secret"):
        league_race(_answer(seed=None), "https://league.example.org", 4)


def test_a_mystery_track_is_refused_until_the_race_closes() -> None:
    with pytest.raises(RaceFetchError, match="mystery track, hidden until the race closes"):
        league_race(_answer(track=None, track_digest=None, mystery_track=True),
                    "https://league.example.org", 4)
