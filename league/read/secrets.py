"""What an open race keeps secret, taken out of what pages and the API serve.

Two rules decide it (:func:`league.rules.races.seed_shown` and
:func:`league.rules.races.track_hidden`): a race's seed is secret until the race closes
unless its organizers published it, and a mystery track is hidden until the race closes.
The league's organizers and the admins see both. Stored results and replays never change:
what a viewer is served is a copy with the secret parts left out (:func:`shown_result`, and
for replays :func:`league.read.replays.replay_copy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from evaluator.errors import PaddockError
from evaluator.track import Track
from evaluator.track_library import load_track
from league.models import Race, User
from league.rules.races import seed_shown, track_hidden

SEED_KEYS = ("seed",)  #: a result block's keys that hold a seed
TRACK_KEYS = ("track", "track_digest")  #: a result block's keys that name the track


@dataclass(frozen=True)
class Secrets:
    """What one viewer may not see of one race."""

    seed: bool  #: the race's seed (and its trials' and heats' seeds) is hidden
    track: bool  #: the race's track is hidden (a mystery track, race not closed)

    @property
    def any(self) -> bool:
        """Whether anything is hidden."""
        return self.seed or self.track


def race_secrets(session: Session, race: Race, viewer: User | None) -> Secrets:
    """What ``viewer`` may not see of ``race`` (the two rules of :mod:`league.rules.races`)."""
    return Secrets(seed=not seed_shown(session, race, viewer),
                   track=track_hidden(session, race, viewer))


def shown_result(data: Mapping[str, Any], secrets: Secrets) -> dict[str, Any]:
    """A stored result (``paddock evaluate --json``'s object) as ``secrets`` lets it be shown:
    a hidden seed is None wherever the result holds one (the race's, ``settings.seed``, each
    trial's and each head-to-head car's heats'), a hidden track's name and digest are None.
    Nothing else changes; with nothing hidden it is the stored result itself."""
    if not secrets.any:
        return dict(data)
    hidden = (SEED_KEYS if secrets.seed else ()) + (TRACK_KEYS if secrets.track else ())
    return {k: None if k in hidden else _without(v, hidden) for k, v in data.items()}


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    """``value`` with every ``keys`` entry of every object in it set to None."""
    if isinstance(value, Mapping):
        return {k: None if k in keys else _without(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


@dataclass(frozen=True)
class TrackShape:
    """What a mystery track shows of itself: its size, not which track it is."""

    length_m: float  #: centerline length, metres
    width_m: float  #: mean width from border to border, metres


def track_shape(race: Race) -> TrackShape | None:
    """The length and width of ``race``'s track (None when the track is gone)."""
    try:
        track = load_track(race.track)
    except PaddockError:
        return None
    return shape_of(track)


def shape_of(track: Track) -> TrackShape:
    """A track's length (to the metre) and mean width (to 10 cm): rounded, so that they do not
    give its exact geometry away."""
    return TrackShape(length_m=float(round(track.length)),
                      width_m=round(float(track.mean_width), 1))
