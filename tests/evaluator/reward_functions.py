"""DeepRacer's classic example reward functions, written exactly the DeepRacer way.

Plain functions of ``params`` with no imports from Paddock: a racer pastes these into the
DeepRacer console and into Paddock unchanged.
"""


def follow_center_line(params):
    """Reward staying near the centerline: three bands, widest band earns least."""
    width = params["track_width"]
    off_center = params["distance_from_center"]
    if off_center <= 0.1 * width:
        return 1.0
    if off_center <= 0.25 * width:
        return 0.5
    if off_center <= 0.5 * width:
        return 0.1
    return 1e-3  # at or past the border


def stay_inside_borders(params):
    """Reward any line that keeps all wheels on and 5 cm inside the border."""
    margin = 0.5 * params["track_width"] - params["distance_from_center"]
    if params["all_wheels_on_track"] and margin >= 0.05:
        return 1.0
    return 1e-3


def prevent_zig_zag(params):
    """The centerline bands, scaled down by 0.8 when steering harder than 15 degrees."""
    reward = follow_center_line(params)
    if abs(params["steering_angle"]) > 15:
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
