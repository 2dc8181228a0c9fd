"""Portable, bit-reproducible elementary functions for the simulator.

Why this module exists: the platform's ``sin``/``cos``/``atan2`` come from the C library, and
different C libraries (glibc versions, musl, macOS) may round the last bit differently. The
simulator feeds those values back into the car state, so one differing bit would grow into a
different lap time. Every function here uses only IEEE-754 basic operations (+, -, *, /, sqrt),
which are correctly rounded everywhere, evaluated in a fixed order. Numba compiles them without
fast-math, so no fused multiply-add or reassociation changes the order.
"""

from __future__ import annotations

import math

import numba as nb

PI = 3.141592653589793
HALF_PI = 1.5707963267948966
# Cody-Waite split of pi/2: HALF_PI_HI has trailing zero bits so k * HALF_PI_HI is exact.
HALF_PI_HI = 1.5707963267341256
HALF_PI_LO = 6.077100506506192e-11
TWO_PI = 6.283185307179586
DEG_PER_RAD = 57.29577951308232
RAD_PER_DEG = 0.017453292519943295

#: The one compilation setting of the simulator: cached, GIL released, and never fast-math
#: (fast-math would allow fused multiply-add and reassociation, breaking reproducibility).
jit = nb.njit(cache=True, nogil=True)


@jit
def _sin_poly(r: float) -> float:
    """sin(r) for |r| <= pi/4 (Taylor series to r^17, error below 1e-16)."""
    r2 = r * r
    p = 1.0 / 355687428096000.0
    p = -1.0 / 1307674368000.0 + r2 * p
    p = 1.0 / 6227020800.0 + r2 * p
    p = -1.0 / 39916800.0 + r2 * p
    p = 1.0 / 362880.0 + r2 * p
    p = -1.0 / 5040.0 + r2 * p
    p = 1.0 / 120.0 + r2 * p
    p = -1.0 / 6.0 + r2 * p
    return r + r * r2 * p


@jit
def _cos_poly(r: float) -> float:
    """cos(r) for |r| <= pi/4 (Taylor series to r^18)."""
    r2 = r * r
    p = -1.0 / 6402373705728000.0
    p = 1.0 / 20922789888000.0 + r2 * p
    p = -1.0 / 87178291200.0 + r2 * p
    p = 1.0 / 479001600.0 + r2 * p
    p = -1.0 / 3628800.0 + r2 * p
    p = 1.0 / 40320.0 + r2 * p
    p = -1.0 / 720.0 + r2 * p
    p = 1.0 / 24.0 + r2 * p
    return 1.0 - 0.5 * r2 + r2 * r2 * p


@jit
def sincos(a: float) -> tuple[float, float]:
    """Return (sin(a), cos(a)) for any finite angle in radians, reproducibly."""
    k = int(round(a / HALF_PI))
    r = (a - k * HALF_PI_HI) - k * HALF_PI_LO
    s = _sin_poly(r)
    c = _cos_poly(r)
    q = k & 3
    if q == 0:
        return s, c
    if q == 1:
        return c, -s
    if q == 2:
        return -s, -c
    return -c, s


@jit
def _atan_unit(z: float) -> float:
    """atan(z) for 0 <= z <= 1: two angle halvings, then a short odd series."""
    t = z / (1.0 + math.sqrt(1.0 + z * z))
    t = t / (1.0 + math.sqrt(1.0 + t * t))
    t2 = t * t
    p = 1.0 / 19.0
    p = -1.0 / 17.0 + t2 * p
    p = 1.0 / 15.0 + t2 * p
    p = -1.0 / 13.0 + t2 * p
    p = 1.0 / 11.0 + t2 * p
    p = -1.0 / 9.0 + t2 * p
    p = 1.0 / 7.0 + t2 * p
    p = -1.0 / 5.0 + t2 * p
    p = 1.0 / 3.0 + t2 * p
    return 4.0 * (t - t * t2 * p)


@jit
def atan2(y: float, x: float) -> float:
    """Return the angle of (x, y) in (-pi, pi], reproducibly; atan2(0, 0) is 0."""
    ax = abs(x)
    ay = abs(y)
    if ax == 0.0 and ay == 0.0:
        return 0.0
    if ay <= ax:
        a = _atan_unit(ay / ax)
    else:
        a = HALF_PI - _atan_unit(ax / ay)
    if x < 0.0:
        a = PI - a
    if y < 0.0:
        a = -a
    return a


@jit
def wrap_angle(a: float) -> float:
    """Wrap an angle in radians into (-pi, pi]."""
    while a > PI:
        a -= TWO_PI
    while a <= -PI:
        a += TWO_PI
    return a


@jit
def tan(a: float) -> float:
    """tan(a) for |a| < pi/2, reproducibly."""
    s, c = sincos(a)
    return s / c
