"""The car: a 1/18-scale vehicle like DeepRacer's, and its limits.

The state is the rear-axle centre (x, y), the heading, the speed and the actual steering angle.
Dynamics are a kinematic bicycle with actuator limits and a grip limit: when the lateral
acceleration the steering asks for exceeds what the tyres hold, the car runs wide on the
largest curvature the grip allows and scrubs speed — so a hairpin taken at 4 m/s slides off.
All values are SI units; angles in the state are radians.
"""

from __future__ import annotations

# Control and integration
CONTROL_HZ = 15  # control steps per second of simulated time (DeepRacer's rate)
SUBSTEPS = 4  # physics substeps per control step
DT_S = 1.0 / CONTROL_HZ  # one control step, seconds
SUB_DT_S = DT_S / SUBSTEPS  # one physics substep, seconds

# Geometry (reference point: centre of the rear axle)
WHEELBASE_M = 0.165  # rear axle to front axle
AXLE_HALF_WIDTH_M = 0.08  # axle centre to a wheel contact point
FRONT_POINT_M = 0.14  # DeepRacer's (x, y): this far ahead of the reference point
BODY_REAR_M = 0.06  # bumper behind the rear axle
BODY_FRONT_M = 0.24  # bumper ahead of the rear axle
BODY_HALF_WIDTH_M = 0.10  # half the body width
COLLISION_RADIUS_M = 0.10  # the body is two discs of this radius ...
COLLISION_DISC_REAR_M = 0.03  # ... centred this far ahead of the rear axle
COLLISION_DISC_FRONT_M = 0.15  # ... and this far

# Actuation limits
MIN_SPEED_MPS = 0.1  # slowest commanded speed
MAX_SPEED_MPS = 4.0  # fastest commanded speed
MAX_STEER_DEG = 30.0  # steering lock, either side (positive turns left)
STEER_RATE_DEG_S = 360.0  # how fast the steering servo turns
ACCEL_MPS2 = 3.5  # strongest acceleration
BRAKE_MPS2 = 6.0  # strongest braking

# Grip
GRIP_MPS2 = 5.0  # largest lateral acceleration the tyres hold
SCRUB_MPS2 = 2.5  # extra deceleration while sliding
