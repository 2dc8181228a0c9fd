"""Private telemetry in a real browser: a spectator's viewer has the cars' states and no
commands (null columns); a racer's has their own car's commands, decoded from format 4."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evaluator import replay
from tests.support import replays as sample
from tests.support.dbfixtures import PASSWORD

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

LOADED = "() => window.paddockReplay && window.paddockReplay.state().loaded"
NAMES = ("kim", "lee", "max")


@pytest.fixture(scope="module")
def heat_bytes(record_race: Any) -> bytes:
    """Three cars over two laps of the oval, every car's commands kept."""
    return sample.record_replay(record_race, sample.incident_drivers(record_race), laps=2)


def seed_heat(live_server: LiveServer, make: Any, data: bytes) -> int:
    """A public head-to-head heat of three racers who can log in; its first replay's id."""
    with live_server.session() as s:
        race = make.race(s, name="Night Duel", format="head-to-head", laps=2)
        entries = [make.entry(s, race, make.user(s, n), name=f"{n}-bot") for n in NAMES]
        _, _, rows = sample.heat(s, live_server.storage, make, data, entries, heats=1)
        s.commit()
        return int(rows[0].id)


def columns(page: Any, frames: list[int], cars: int) -> list[list[dict[str, Any]]]:
    """``sample(frame, car)`` of every car at ``frames``, as the viewer decoded them."""
    value: list[list[dict[str, Any]]] = page.evaluate(
        """([frames, cars]) => Array.from({ length: cars }, (_, i) =>
            frames.map((f) => window.paddockReplay.sample(f, i)))""", [frames, cars])
    return value


def watch(page: Any, live_server: LiveServer, replay_id: int) -> None:
    response = page.goto(live_server.url(f"/replays/{replay_id}"))
    assert response is not None and response.status == 200
    page.wait_for_function(LOADED)
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => window.paddockReplay.state().time > 0.5")
    assert page.evaluate("() => window.paddockReplay.state().error") is None


def test_a_spectator_sees_states_and_a_racer_their_own_commands(
        page: Any, live_server: LiveServer, make: Any, heat_bytes: bytes) -> None:
    replay_id = seed_heat(live_server, make, heat_bytes)
    ref = replay.decode(heat_bytes)
    frames = sorted({0, 1, ref.frames // 2, ref.frames - 1})

    watch(page, live_server, replay_id)
    for i, got in enumerate(columns(page, frames, 3)):
        car = ref.cars[i]
        for f, g in zip(frames, got, strict=True):
            assert (g["x"], g["speed"], g["laps"]) == (
                pytest.approx(float(car.x[f]), abs=1e-9),
                pytest.approx(float(car.speed[f]), abs=1e-9), int(car.laps[f]))
            assert (g["commandSteering"], g["commandSpeed"], g["action"]) == (None,) * 3

    page.goto(live_server.url("/login"))
    page.get_by_label("User name or e-mail").fill("lee")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/garage/")
    watch(page, live_server, replay_id)
    for i, got in enumerate(columns(page, frames, 3)):
        car = ref.cars[i]
        assert car.command_steering is not None and car.command_speed is not None
        assert car.action is not None
        for f, g in zip(frames, got, strict=True):
            commands = (g["commandSteering"], g["commandSpeed"], g["action"])
            if NAMES[i] == "lee":
                assert commands == (pytest.approx(float(car.command_steering[f]), abs=1e-9),
                                    pytest.approx(float(car.command_speed[f]), abs=1e-9),
                                    int(car.action[f]))
            else:
                assert commands == (None,) * 3, (i, f)
