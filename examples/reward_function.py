"""A DeepRacer-style reward function for the Paddock examples: the rate of progress.

It is written the DeepRacer way: one plain ``reward_function(params)`` with no imports, reading
DeepRacer's ``params`` keys, so the same file works in the DeepRacer console and in Paddock
(``gymnasium.make("paddock/TimeTrial-v0", reward_function=reward_function)``). Replace it with
your own; ``train_sb3.py --reward-function FILE`` loads any file that defines one.

Each step earns the distance along the track it covered, scaled so that a step at the top speed
(4 m/s, 15 steps a second) earns about 1: the policy that covers a lap in fewest steps earns
most. ``progress`` is a share of the lap, so the step's part of it is the difference from the
previous call's, which the function remembers in a module-level global, as DeepRacer reward
functions often do. That memory belongs to one environment: ``train_sb3.py`` loads a copy of
this file for each environment it steps. Leaving the track earns (nearly) nothing, and ends a
training episode.
"""

TOP_STEP_M = 4.0 / 15.0  # metres one step covers at 4 m/s
OFF_TRACK_REWARD = 1e-3  # a wheel outside the track, or going the wrong way, earns (nearly) nothing

_last = {"steps": 0, "progress": 0.0}  # the previous call's step and progress


def reward_function(params):
    """Reward the distance along the track covered since the previous step."""
    steps = params["steps"]
    progress = params["progress"]
    if steps <= _last["steps"]:  # a new episode: its first step starts from 0
        _last["progress"] = 0.0
    delta = progress - _last["progress"]
    _last["steps"] = steps
    _last["progress"] = progress

    if (params["is_offtrack"] or params["is_reversed"]
            or not params["all_wheels_on_track"]):
        return OFF_TRACK_REWARD
    if delta < -50.0:  # a lap was completed: the next lap's progress starts again from 0
        delta += 100.0
    metres = delta / 100.0 * params["track_length"]
    return float(max(0.0, metres) / TOP_STEP_M)
