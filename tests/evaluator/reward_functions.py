"""DeepRacer's classic example reward functions, written exactly the DeepRacer way.

Plain functions of ``params`` with no imports from Paddock: a racer pastes these into the
DeepRacer console and into Paddock unchanged.
"""


def follow_center_line(params):
    """Example 1: follow the center line."""
    # Read input parameters
    track_width = params["track_width"]
    distance_from_center = params["distance_from_center"]

    # Calculate 3 markers that are at varying distances away from the center line
    marker_1 = 0.1 * track_width
    marker_2 = 0.25 * track_width
    marker_3 = 0.5 * track_width

    # Give higher reward if the car is closer to center line and vice versa
    if distance_from_center <= marker_1:
        reward = 1.0
    elif distance_from_center <= marker_2:
        reward = 0.5
    elif distance_from_center <= marker_3:
        reward = 0.1
    else:
        reward = 1e-3  # likely crashed/ close to off track

    return float(reward)


def stay_inside_borders(params):
    """Example 2: stay inside the two borders."""
    # Read input parameters
    all_wheels_on_track = params["all_wheels_on_track"]
    distance_from_center = params["distance_from_center"]
    track_width = params["track_width"]

    # Give a very low reward by default
    reward = 1e-3

    # Give a high reward if no wheels go off the track and
    # the car is somewhere in between the track borders
    if all_wheels_on_track and (0.5 * track_width - distance_from_center) >= 0.05:
        reward = 1.0

    # Always return a float value
    return float(reward)


def prevent_zig_zag(params):
    """Example 3: penalize steering, which helps mitigate zig-zag behaviors."""
    # Read input parameters
    distance_from_center = params["distance_from_center"]
    track_width = params["track_width"]
    abs_steering = abs(params["steering_angle"])  # Only need the absolute steering angle

    # Calculate 3 marks that are farther and father away from the center line
    marker_1 = 0.1 * track_width
    marker_2 = 0.25 * track_width
    marker_3 = 0.5 * track_width

    # Give higher reward if the car is closer to center line and vice versa
    if distance_from_center <= marker_1:
        reward = 1.0
    elif distance_from_center <= marker_2:
        reward = 0.5
    elif distance_from_center <= marker_3:
        reward = 0.1
    else:
        reward = 1e-3  # likely crashed/ close to off track

    # Steering penality threshold, change the number based on your action space setting
    ABS_STEERING_THRESHOLD = 15

    # Penalize reward if the car is steering too much
    if abs_steering > ABS_STEERING_THRESHOLD:
        reward *= 0.8

    return float(reward)


def waypoint_heading(params):
    """A common community variant: reward pointing along the next waypoints."""
    import math

    waypoints = params["waypoints"]
    closest_waypoints = params["closest_waypoints"]
    heading = params["heading"]

    next_point = waypoints[closest_waypoints[1]]
    prev_point = waypoints[closest_waypoints[0]]
    track_direction = math.degrees(
        math.atan2(next_point[1] - prev_point[1], next_point[0] - prev_point[0])
    )
    direction_diff = abs(track_direction - heading)
    if direction_diff > 180:
        direction_diff = 360 - direction_diff

    reward = 1.0
    if direction_diff > 10.0:
        reward *= 0.5
    if params["is_offtrack"] or params["is_reversed"]:
        reward = 1e-3
    return float(reward)


ALL = (follow_center_line, stay_inside_borders, prevent_zig_zag, waypoint_heading)
