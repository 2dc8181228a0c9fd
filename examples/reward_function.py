"""A DeepRacer-style reward function for the Paddock examples.

It is written the DeepRacer way: one plain ``reward_function(params)`` with no imports, reading
DeepRacer's ``params`` keys, so the same file works in the DeepRacer console and in Paddock
(``gymnasium.make("paddock/TimeTrial-v0", reward_function=reward_function)``). Replace it with
your own; ``train_sb3.py --reward-function FILE`` loads any file that defines one.
"""

TOP_SPEED = 4.0  # m/s: the fastest speed an action can command
SHARP_STEERING = 15.0  # degrees: steering harder than this at speed is damped
FAST = 2.5  # m/s: what "at speed" means for the damping above
SHARP_AT_SPEED_FACTOR = 0.6  # what a sharp, fast action keeps of its reward
OFF_TRACK_REWARD = 1e-3  # a wheel outside the track, or going the wrong way, earns (nearly) nothing


def reward_function(params):
    """Reward fast driving near the centerline, plus the lap's progress per step."""
    if (params["is_offtrack"] or params["is_reversed"]
            or not params["all_wheels_on_track"]):
        return OFF_TRACK_REWARD

    # 1.0 on the centerline, falling linearly to 0.0 at the border: wide enough to leave
    # room for a racing line through the corners.
    half_width = 0.5 * params["track_width"]
    centred = max(0.0, 1.0 - params["distance_from_center"] / half_width)

    # `speed` is the commanded speed of the action (DeepRacer's meaning), not the measured one.
    pace = params["speed"] / TOP_SPEED
    reward = centred * (0.5 + pace)

    # Sharp steering at high speed is what throws the car off the track.
    if abs(params["steering_angle"]) > SHARP_STEERING and params["speed"] > FAST:
        reward *= SHARP_AT_SPEED_FACTOR

    # Percent of the lap per step so far: pays a quick line more than a slow, careful one.
    if params["steps"] > 0:
        reward += params["progress"] / params["steps"]

    return float(reward)
