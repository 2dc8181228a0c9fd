"""Shared fixtures: the shipped oval, a stadium built in code, the DeepRacer track files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluator import car
from evaluator._detmath import PI, sincos
from evaluator.drivers import Driver, PurePursuitDriver, record_drivers
from evaluator.telemetry import CarLabel, Telemetry
from evaluator.track import Track
from evaluator.track_library import load_track
from evaluator.world import World

# The league's database fixtures (both backends) and factories, for tests/league and tests/web.
pytest_plugins = ("tests.support.dbfixtures",)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DEEPRACER_TRACKS_DIR = (PROJECT_ROOT / "../shared/deepracer-tracks").resolve()
DEEPRACER_FILES = (  # the route files of /work/shared/deepracer-tracks
    "2022_reinvent_champ_ccw.npy",
    "Austin.npy",
    "Monaco.npy",
    "Oval_track.npy",
    "Spain_track.npy",
    "jyllandsringen_pro.npy",
    "reInvent2019_track.npy",
    "reinvent_base.npy",
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``deepracer_npy`` runs once per DeepRacer route file."""
    if "deepracer_npy" in metafunc.fixturenames:
        metafunc.parametrize("deepracer_npy", DEEPRACER_FILES, indirect=True)


def stadium(
    straight: float = 8.0, radius: float = 2.0, half_width: float = 0.535, spacing: float = 0.1
) -> Track:
    """A counter-clockwise stadium whose start line is mid-way along a straight.

    The bottom straight lies exactly on y = 0, driving towards +x, from x = -straight/2 to
    +straight/2, with the line at the origin; the turns are half circles of ``radius`` around
    (+-straight/2, radius). Built with the simulator's reproducible sincos only, so the
    arrays are the same bits on every machine.
    """
    half = straight / 2.0
    n_straight = round(straight / spacing)
    n_turn = round(PI * radius / spacing)
    pts: list[tuple[float, float]] = []
    for k in range(n_straight // 2):  # line -> end of the bottom straight
        pts.append((k * spacing, 0.0))
    for k in range(n_turn):  # right-hand half circle, going up
        s, c = sincos(PI * k / n_turn)
        pts.append((half + radius * s, radius - radius * c))
    for k in range(n_straight):  # top straight, going -x
        pts.append((half - k * spacing, 2.0 * radius))
    for k in range(n_turn):  # left-hand half circle, going down
        s, c = sincos(PI * k / n_turn)
        pts.append((-half - radius * s, radius + radius * c))
    for k in range(n_straight // 2):  # start of the bottom straight -> line
        pts.append((-half + k * spacing, 0.0))
    arr = np.array(pts)
    w = np.full(arr.shape[0], half_width)
    return Track.from_arrays("stadium", arr, w, w, title="Test stadium")


@pytest.fixture(scope="session")
def stadium_track() -> Track:
    """The default :func:`stadium`: 8 m straights, 2 m radius turns, 1.07 m wide."""
    return stadium()


@pytest.fixture(scope="session")
def oval_track() -> Track:
    """The shipped ``oval`` library track."""
    return load_track("oval")


@pytest.fixture(scope="session")
def deepracer_tracks_dir() -> Path:
    """``../shared/deepracer-tracks`` next to the project; skips when it is not there."""
    if not any(DEEPRACER_TRACKS_DIR.glob("*.npy")):
        pytest.skip(f"DeepRacer track files not available in {DEEPRACER_TRACKS_DIR}")
    return DEEPRACER_TRACKS_DIR


@pytest.fixture
def deepracer_npy(request: pytest.FixtureRequest, deepracer_tracks_dir: Path) -> Path:
    """Path of one DeepRacer route file (see :func:`pytest_generate_tests`); skips if absent."""
    path = deepracer_tracks_dir / str(request.param)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


RECORD_SEED = 3  # grid jitter of recorded races
RECORD_PENALTY_S = 2.0  # off-track and collision penalty of recorded races
SWERVE_STEPS = 45  # the swerver drives the line for two such periods, then turns in for one


class Swerver(Driver):
    """Follows the line, but every third period holds full left lock until it leaves."""

    def __init__(self) -> None:
        self.line = PurePursuitDriver(2.0)

    def act(self, world: World, i: int) -> tuple[float, float]:
        if (world.steps // SWERVE_STEPS) % 3 == 2:
            return car.MAX_STEER_DEG, 2.5
        return self.line.act(world, i)


class RaceRecorder:
    """Races built-in drivers from a grid under race rules, recording every step."""

    seed = RECORD_SEED
    penalty_s = RECORD_PENALTY_S
    Swerver = Swerver

    def __call__(self, track: Track, drivers: list[Driver], steps: int, laps: int, *,
                 labels: list[CarLabel] | None = None, discrete: bool = False) -> Telemetry:
        """With ``discrete``, step t records action index t % 5 for every car."""
        n = len(drivers)
        if labels is None:
            labels = [CarLabel(f"car-{i}", discrete=discrete) for i in range(n)]
        return record_drivers(
            track, drivers, steps, laps=laps, penalty_s=RECORD_PENALTY_S, seed=RECORD_SEED,
            labels=labels,
            action_index=(lambda w: np.full(n, w.steps % 5)) if discrete else None)


@pytest.fixture(scope="session")
def record_race() -> RaceRecorder:
    """A callable recording a race of built-in drivers (``record_race.Swerver`` swerves off)."""
    return RaceRecorder()
