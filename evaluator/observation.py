"""The observation vector, version ``v1``: layout, units and bounds.

Every environment and the race engine produce the same float32 vector, so one policy drives
in a time trial and in a head-to-head. Rays start at the car's front point (DeepRacer's x, y).

=======  =====================================  =======================  ===========  =========
index    meaning                                unit before scaling      bounds       scaling
=======  =====================================  =======================  ===========  =========
0-10     distance to the track border along 11  m, 0 to 5               [0, 1]       / 5 m
         rays at -90, -72, ..., +72, +90
         degrees from the heading (negative is
         right)
11-21    distance to the nearest car or         m, 0 to 5               [0, 1]       / 5 m
         obstacle along the same 11 rays
         (1 when nothing is in range)
22       speed                                  m/s, 0 to 4             [0, 1]       / 4 m/s
23       steering angle (actual, positive left) degrees, -30 to 30      [-1, 1]      / 30 deg
24       heading relative to the track          radians, -pi to pi      [-1, 1]      / pi
         direction (positive: pointing left)
25       lateral offset of the front point from  m                       [-3, 3]      / half
         the centerline (positive left)                                               width on
                                                                                      that side
26-29    track curvature 0.5, 1, 2 and 4 m      1/m, positive left      [-1, 1]      x 0.5 m
         ahead along the centerline
=======  =====================================  =======================  ===========  =========
"""

from __future__ import annotations

import numpy as np

from evaluator._detmath import RAD_PER_DEG, sincos
from evaluator.version import OBSERVATION_VERSION

NUM_RAYS = 11  # rays per sensor
RAY_FOV_DEG = 180.0  # field of view, centred on the heading
RAY_RANGE_M = 5.0  # longest distance a ray reports
LOOKAHEAD_M = (0.5, 1.0, 2.0, 4.0)  # where the curvature ahead is sampled
CURVATURE_SCALE_M = 0.5  # curvature is multiplied by this (a 0.5 m radius reads 1)
OFFSET_CLIP = 3.0  # the scaled lateral offset is clipped to +- this

I_TRACK_RAYS = 0
I_OBJECT_RAYS = NUM_RAYS
I_SPEED = 2 * NUM_RAYS
I_STEERING = I_SPEED + 1
I_HEADING = I_SPEED + 2
I_OFFSET = I_SPEED + 3
I_CURVATURE = I_SPEED + 4
OBS_DIM = I_CURVATURE + len(LOOKAHEAD_M)

VERSION = OBSERVATION_VERSION


def ray_angles_deg() -> np.ndarray:
    """Angles of the rays relative to the heading, degrees, right to left."""
    return np.linspace(-RAY_FOV_DEG / 2, RAY_FOV_DEG / 2, NUM_RAYS)


def ray_directions() -> np.ndarray:
    """Unit vectors of the rays in the car frame (x forward, y left), shape (NUM_RAYS, 2)."""
    out = np.empty((NUM_RAYS, 2))
    for k, deg in enumerate(ray_angles_deg()):
        s, c = sincos(float(deg) * RAD_PER_DEG)
        out[k] = (c, s)
    return out


def bounds() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of every observation element, float32."""
    low = np.zeros(OBS_DIM, dtype=np.float32)
    high = np.ones(OBS_DIM, dtype=np.float32)
    low[I_STEERING] = -1.0
    low[I_HEADING] = -1.0
    low[I_OFFSET] = -OFFSET_CLIP
    high[I_OFFSET] = OFFSET_CLIP
    low[I_CURVATURE:] = -1.0
    return low, high
