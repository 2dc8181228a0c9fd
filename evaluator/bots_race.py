"""Head-to-bot: an entrant's trials with built-in bot cars on the track.

DeepRacer's head-to-bot rules. Each trial of a head-to-bot race is a time trial with bot cars
(:attr:`~evaluator.race_settings.RaceConfig.bots`, 1 to 6, each at the top speed the
organizer set) driving round the track with the entrant:

* The entrant starts on the line exactly as in a time trial of the same seed (the same start
  jitter, obstacles and race conditions).
* The bots start at rest, spread evenly round the lap ahead of it: with n bots, bot k starts
  k/(n+1) of a lap ahead, nudged along the track by up to a tenth of the spacing, from the
  trial's seed.
* Each bot keeps to a lane, a line :data:`BOT_LANE_OFFSET_M` left or right of the centerline
  drawn from the trial's seed, and never changes it: the entrant overtakes on the other side.
  It is driven by :class:`~evaluator.drivers.PurePursuitDriver` (trusted code, in this
  process): it slows for corners and queues behind whatever its forward rays see (the
  entrant, another bot, a box) rather than run into it.
* Bots drive on until the entrant's trial ends; they never finish and are never ranked.
* The world's rules apply to every car: the car that hits another from behind is frozen for
  the collision penalty (the entrant's is counted in its trial), a car that leaves the track
  for the off-track penalty; race conditions (grip, latency, steering bias, sensor noise)
  apply to the bots too.

The entrant is ranked exactly like a time trial (:func:`~evaluator.results.rank_trials`).
Everything is drawn from the trial's seed, after the time trial's own draws, so the same
policy, settings and seed give the same result on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evaluator.drivers import PurePursuitDriver
from evaluator.race_settings import (
    DEFAULT_BOT_SPEED_MPS,
    DEFAULT_BOTS,
    MAX_BOTS,
    RaceConfigError,
    bot_name,
    parse_bots,
)
from evaluator.telemetry import CarLabel
from evaluator.world import World

BOT_LANE_OFFSET_M = 0.15  # a bot's line, this far left or right of the centerline
BOT_NUDGE = 0.1  # a bot's start moves along the track by up to this share of the spacing
#: A bot's laps count from this far ahead of its start, so it never completes one (a car
#: that completes the race's laps parks; a bot drives on until the trial ends).
BOT_NO_LAPS_M = 1.0e9


def bot_labels(speeds: Sequence[float]) -> list[CarLabel]:
    """The bots' names in results and replays: "Bot 1 (1.6 m/s)", ..., flagged as bots."""
    return [CarLabel(bot_name(k, v), bot=True) for k, v in enumerate(speeds, start=1)]


def start_with_bots(world: World, speeds: Sequence[float],
                    rng: np.random.Generator) -> list[PurePursuitDriver]:
    """Place the entrant (car 0) as a time trial starts and the bots (cars 1..n) ahead of
    it; return the bots' drivers, one a bot, in car order.

    ``rng`` is the trial's generator after the obstacles were drawn from it, as a time
    trial's :meth:`~evaluator.world.World.start_grid` gets it.
    """
    # The start jitter a one-car world's grid slot 0 gets: on the centerline, jittered.
    across, heading = world.start_jitter
    off = float(rng.uniform(-across, across))
    head = float(rng.uniform(-heading, heading))
    world.place(0, 0.0, offset=off, heading_offset_deg=head, origin=0.0)
    n = len(speeds)
    spacing = world.length / (n + 1)
    drivers = []
    for k, speed in enumerate(speeds, start=1):
        s = k * spacing + float(rng.uniform(-BOT_NUDGE, BOT_NUDGE)) * spacing
        lane = BOT_LANE_OFFSET_M if rng.random() < 0.5 else -BOT_LANE_OFFSET_M
        world.place(k, s, offset=lane, origin=s + BOT_NO_LAPS_M)
        drivers.append(PurePursuitDriver(speed, line_offset_m=lane))
    world.steps = 0
    world.observe()
    return drivers


def drive_bots(world: World, drivers: Sequence[PurePursuitDriver], actions: np.ndarray) -> None:
    """Write each bot's command for the next step into ``actions`` (rows 1..n)."""
    for k, driver in enumerate(drivers, start=1):
        actions[k] = driver.act(world, k)


def speeds_from_flags(count: int | None, speeds: str | None) -> tuple[float, ...]:
    """The bots of ``paddock evaluate --bots N --bot-speed S``: N bots (default
    :data:`~evaluator.race_settings.DEFAULT_BOTS`) all at S m/s (default
    :data:`~evaluator.race_settings.DEFAULT_BOT_SPEED_MPS`), or one speed a bot when S is a
    comma-separated list (then N, if given, must be its length)."""
    texts = [t.strip() for t in (speeds or str(DEFAULT_BOT_SPEED_MPS)).split(",")]
    try:
        values = [float(t) for t in texts]
    except ValueError:
        raise RaceConfigError(f"--bot-speed takes m/s, one number or one a bot separated by "
                              f"commas, got {speeds!r}") from None
    if len(values) == 1:
        n = DEFAULT_BOTS if count is None else count
        if not 1 <= n <= MAX_BOTS:
            raise RaceConfigError(f"--bots must be 1 to {MAX_BOTS}, got {n}")
        return parse_bots(values * n)
    if count is not None and count != len(values):
        raise RaceConfigError(f"--bots {count} with {len(values)} speeds in --bot-speed: give "
                              "one speed for all bots, or one a bot")
    return parse_bots(values)
