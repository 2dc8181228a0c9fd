"""The compiled simulation step: dynamics, track state, race rules, collisions and sensors.

One call advances every car of a world by one control step and writes their observations, so
the Python side pays one dispatch per step whatever the number of cars. A batch of independent
single-car worlds on one track is the same call with interaction switched off.

Constants reach the kernels through the ``phys`` array (built by :mod:`evaluator.world` from
:mod:`evaluator.car` and :mod:`evaluator.observation`) rather than as globals, so that changing
a constant can never leave a stale compiled kernel in numba's cache.
"""

from __future__ import annotations

import numpy as np

from evaluator import _geometry as geo
from evaluator._detmath import PI, RAD_PER_DEG, atan2, jit, sincos, wrap_angle

# Car state columns ----------------------------------------------------------------------
C_X, C_Y, C_TH, C_V, C_DELTA = 0, 1, 2, 3, 4  # rear axle x, y (m), heading, speed, steering
C_SEG, C_T, C_OFF, C_S = 5, 6, 7, 8  # front point: segment, t on it, signed offset, wrapped s
C_S_TOTAL, C_S_PREV, C_S_ORIGIN = 9, 10, 11  # unwrapped s now / before this step / at origin
C_LAPS, C_FREEZE, C_RESET_S = 12, 13, 14  # laps done, control steps still frozen, reset s
C_GHOST, C_DONE, C_RACE = 15, 16, 17  # passes through cars; finished; race semantics
C_WHEELS, C_SLIDE = 18, 19  # wheels on track (0-4); slid during the step
C_CMD_STEER, C_CMD_SPEED = 20, 21  # last commanded steering (rad) and speed
C_FX, C_FY = 22, 23  # front point
C_STEPS_OFF = 24  # consecutive control steps with all wheels off (training semantics)
NUM_STATE = 25

# Per-step events -------------------------------------------------------------------------
E_OFFTRACK, E_CRASH, E_BLAME, E_LAP, E_RESET, E_OBJECT = 0, 1, 2, 3, 4, 5
NUM_EVENTS = 6

# step_world results (bit flags); STEP_NOISE_SPENT: the block of sensor noise is used up
STEP_OK, STEP_BAD_ACTION, STEP_LAP, STEP_NOISE_SPENT = 0, 1, 2, 4

# Race conditions state (see step_conditions) -------------------------------------------------
Q_BIAS, Q_HEAD, Q_ROW, Q_RAY0 = 0, 1, 2, 3  # steering bias (deg); latency ring head;
NUM_COND = 4  # next row of the noise block; first ray reading of the observation

# World configuration -------------------------------------------------------------------------
K_OFF_PEN_STEPS, K_COL_PEN_STEPS, K_INTERACT, K_LAPS = 0, 1, 2, 3
NUM_CFG = 4

# Physical constants (see evaluator.car) ------------------------------------------------------
(P_SUB_DT, P_SUBSTEPS, P_WB, P_AHW, P_FRONT, P_MIN_V, P_MAX_V, P_MAX_STEER, P_STEER_RATE,
 P_ACCEL, P_BRAKE, P_GRIP, P_SCRUB, P_COLL_R, P_DISC_REAR, P_DISC_FRONT, P_RAY_RANGE,
 P_SEARCH_R, P_CURV_SCALE, P_OFFSET_CLIP) = range(20)
NUM_PHYS = 20


@jit
def _integrate(cars: np.ndarray, i: int, steer_cmd: float, speed_cmd: float,
               phys: np.ndarray) -> None:
    """Advance car i by one control step of fixed substeps (kinematic bicycle, grip limit)."""
    dt = phys[P_SUB_DT]
    max_steer = phys[P_MAX_STEER]
    steer_cmd = min(max(steer_cmd, -max_steer), max_steer)
    speed_cmd = min(max(speed_cmd, phys[P_MIN_V]), phys[P_MAX_V])
    cars[i, C_CMD_STEER] = steer_cmd
    cars[i, C_CMD_SPEED] = speed_cmd
    x = cars[i, C_X]
    y = cars[i, C_Y]
    th = cars[i, C_TH]
    v = cars[i, C_V]
    delta = cars[i, C_DELTA]
    max_dd = phys[P_STEER_RATE] * dt
    slide = 0.0
    for _ in range(int(phys[P_SUBSTEPS])):
        dd = steer_cmd - delta
        if dd > max_dd:
            dd = max_dd
        elif dd < -max_dd:
            dd = -max_dd
        delta += dd
        if v < speed_cmd:
            v = min(v + phys[P_ACCEL] * dt, speed_cmd)
        else:
            v = max(v - phys[P_BRAKE] * dt, speed_cmd)
        sd, cd = sincos(delta)
        kappa = sd / cd / phys[P_WB]
        lat = v * v * abs(kappa)
        if lat > phys[P_GRIP]:
            # The tyres cannot hold the curvature asked for: run wide at the grip limit and
            # lose speed while sliding.
            kappa = phys[P_GRIP] / (v * v) if kappa > 0.0 else -phys[P_GRIP] / (v * v)
            v = max(v - phys[P_SCRUB] * dt, 0.0)
            slide = 1.0
        dth = v * kappa * dt
        sm, cm = sincos(th + 0.5 * dth)
        x += v * cm * dt
        y += v * sm * dt
        th = wrap_angle(th + dth)
    cars[i, C_X] = x
    cars[i, C_Y] = y
    cars[i, C_TH] = th
    cars[i, C_V] = v
    cars[i, C_DELTA] = delta
    cars[i, C_SLIDE] = slide


@jit
def _track_state(tseg: np.ndarray, length: float, cars: np.ndarray, i: int,
                 phys: np.ndarray, local: bool) -> None:
    """Project car i's front point and advance its unwrapped progress."""
    s_th, c_th = sincos(cars[i, C_TH])
    fx = cars[i, C_X] + phys[P_FRONT] * c_th
    fy = cars[i, C_Y] + phys[P_FRONT] * s_th
    cars[i, C_FX] = fx
    cars[i, C_FY] = fy
    if local:
        seg, t, off = geo.project_local(tseg, fx, fy, int(cars[i, C_SEG]), phys[P_SEARCH_R])
    else:
        seg, t, off = geo.project_global(tseg, fx, fy)
    s = tseg[seg, geo.TS] + t
    ds = s - cars[i, C_S]
    half = 0.5 * length
    if ds > half:
        ds -= length
    elif ds < -half:
        ds += length
    if local:
        cars[i, C_S_TOTAL] += ds
    cars[i, C_SEG] = seg
    cars[i, C_T] = t
    cars[i, C_OFF] = off
    cars[i, C_S] = s


@jit
def _wheels_on(tseg: np.ndarray, cars: np.ndarray, i: int, phys: np.ndarray) -> int:
    """Count car i's wheel contact points that lie on the track surface."""
    s_th, c_th = sincos(cars[i, C_TH])
    nx = -s_th * phys[P_AHW]
    ny = c_th * phys[P_AHW]
    hint = int(cars[i, C_SEG])
    on = 0
    for axle in range(2):
        ax = cars[i, C_X] + axle * phys[P_WB] * c_th
        ay = cars[i, C_Y] + axle * phys[P_WB] * s_th
        for side in (-1.0, 1.0):
            seg, t, off = geo.project_local(tseg, ax + side * nx, ay + side * ny, hint,
                                            phys[P_SEARCH_R])
            if geo.inside(tseg, seg, t, off):
                on += 1
    return on


@jit
def place_car(tseg: np.ndarray, length: float, cars: np.ndarray, i: int, s: float,
              offset: float, heading_offset: float, phys: np.ndarray) -> None:
    """Put car i at rest with its front point at arc length s, ``offset`` left of centre."""
    seg, t = geo.locate_s(tseg, length, s, 0)
    ux = tseg[seg, geo.TUX]
    uy = tseg[seg, geo.TUY]
    fx = tseg[seg, geo.TX] + t * ux - offset * uy
    fy = tseg[seg, geo.TY] + t * uy + offset * ux
    th = wrap_angle(atan2(uy, ux) + heading_offset)
    s_th, c_th = sincos(th)
    cars[i, C_X] = fx - phys[P_FRONT] * c_th
    cars[i, C_Y] = fy - phys[P_FRONT] * s_th
    cars[i, C_TH] = th
    cars[i, C_V] = 0.0
    cars[i, C_DELTA] = 0.0
    cars[i, C_SEG] = seg
    old_s = cars[i, C_S]
    _track_state(tseg, length, cars, i, phys, False)
    # keep the unwrapped progress continuous across the move
    ds = cars[i, C_S] - old_s
    if ds > 0.5 * length:
        ds -= length
    elif ds < -0.5 * length:
        ds += length
    cars[i, C_S_TOTAL] += ds
    cars[i, C_WHEELS] = _wheels_on(tseg, cars, i, phys)


@jit
def _discs(cars: np.ndarray, i: int, phys: np.ndarray) -> tuple[float, float, float, float]:
    s_th, c_th = sincos(cars[i, C_TH])
    return (cars[i, C_X] + phys[P_DISC_REAR] * c_th, cars[i, C_Y] + phys[P_DISC_REAR] * s_th,
            cars[i, C_X] + phys[P_DISC_FRONT] * c_th, cars[i, C_Y] + phys[P_DISC_FRONT] * s_th)


@jit
def _cars_touch(cars: np.ndarray, i: int, j: int, phys: np.ndarray) -> bool:
    ax0, ay0, ax1, ay1 = _discs(cars, i, phys)
    bx0, by0, bx1, by1 = _discs(cars, j, phys)
    lim = 4.0 * phys[P_COLL_R] * phys[P_COLL_R]
    for px, py in ((ax0, ay0), (ax1, ay1)):
        for qx, qy in ((bx0, by0), (bx1, by1)):
            if (px - qx) * (px - qx) + (py - qy) * (py - qy) < lim:
                return True
    return False


@jit
def _touches_object(cars: np.ndarray, i: int, obst: np.ndarray, phys: np.ndarray) -> bool:
    ax0, ay0, ax1, ay1 = _discs(cars, i, phys)
    for k in range(obst.shape[0]):
        lim = (phys[P_COLL_R] + obst[k, 2]) * (phys[P_COLL_R] + obst[k, 2])
        for px, py in ((ax0, ay0), (ax1, ay1)):
            if (px - obst[k, 0]) * (px - obst[k, 0]) + (py - obst[k, 1]) * (py - obst[k, 1]) < lim:
                return True
    return False


@jit
def _put_back(tseg: np.ndarray, length: float, cars: np.ndarray, i: int, phys: np.ndarray,
              ev: np.ndarray) -> None:
    """End car i's freeze: put it at rest on the centerline at the progress it had when it
    was frozen, facing the track direction (a reset event)."""
    place_car(tseg, length, cars, i, cars[i, C_RESET_S], 0.0, 0.0, phys)
    ev[i, E_RESET] = 1.0


@jit
def _freeze(tseg: np.ndarray, length: float, cars: np.ndarray, i: int, steps: float,
            phys: np.ndarray, ev: np.ndarray) -> None:
    """Freeze car i where it stands for ``steps`` control steps: the penalty rule.

    The car stops and becomes a ghost; ``step_world`` counts the steps down while the clock
    runs (the car's actions are ignored), then puts it back (:func:`_put_back`). With no steps
    to serve it is put back at once. Only cars with race semantics are ever frozen.
    """
    cars[i, C_GHOST] = 1.0
    cars[i, C_FREEZE] = steps
    cars[i, C_RESET_S] = cars[i, C_S]
    cars[i, C_V] = 0.0
    if steps <= 0.0:
        _put_back(tseg, length, cars, i, phys, ev)


@jit
def _leave_track(tseg: np.ndarray, length: float, cars: np.ndarray, i: int,
                 cfg: np.ndarray, phys: np.ndarray, ev: np.ndarray) -> None:
    """Apply the off-track rule to car i, whose four wheels are all off the track.

    Race semantics: freeze for the off-track penalty (:func:`_freeze`; a zero penalty still
    puts the car back on the centerline at once). Training semantics: only the event (the
    environment ends the episode).
    """
    ev[i, E_OFFTRACK] = 1.0
    cars[i, C_STEPS_OFF] += 1.0
    if cars[i, C_RACE] > 0.0:
        _freeze(tseg, length, cars, i, cfg[K_OFF_PEN_STEPS], phys, ev)


@jit
def _blame(tseg: np.ndarray, length: float, cars: np.ndarray, i: int, steps: float,
           phys: np.ndarray, ev: np.ndarray) -> None:
    """Apply the collision penalty of ``steps`` control steps to car i, blamed for a contact.

    A blamed car is a ghost until it is clear of every car and object, whatever its semantics.
    With race semantics it also freezes (:func:`_freeze`); a zero collision penalty freezes
    nothing, so the car drives on through the contact as a ghost (unlike a zero off-track
    penalty, which still puts the car back on the centerline).
    """
    ev[i, E_BLAME] = 1.0
    cars[i, C_GHOST] = 1.0
    if cars[i, C_RACE] > 0.0 and steps > 0.0:
        _freeze(tseg, length, cars, i, steps, phys, ev)


@jit
def _collisions(tseg: np.ndarray, length: float, cars: np.ndarray, obst: np.ndarray,
                cfg: np.ndarray, phys: np.ndarray, ev: np.ndarray) -> None:
    """Detect car-car and car-object contacts and blame the car that hits from behind.

    Blame goes to the car that is behind along the track at the moment of contact (measured
    locally, so a leader lapping a slower car is blamed when it runs into it); cars level to
    within a centimetre share the blame. A blamed car gets the collision penalty
    (:func:`_blame`) and is a ghost (passes through cars, unseen by sensors) until it is clear
    of everyone.
    """
    n = cars.shape[0]
    pen = cfg[K_COL_PEN_STEPS]
    for i in range(n):
        if cars[i, C_GHOST] > 0.0 or cars[i, C_DONE] > 0.0:
            continue
        if obst.shape[0] > 0 and _touches_object(cars, i, obst, phys):
            ev[i, E_CRASH] = 1.0
            ev[i, E_OBJECT] = 1.0
            _blame(tseg, length, cars, i, pen, phys, ev)
    if cfg[K_INTERACT] == 0.0:
        return
    for i in range(n):
        for j in range(i + 1, n):
            if cars[i, C_GHOST] > 0.0 or cars[i, C_DONE] > 0.0:
                break
            if cars[j, C_GHOST] > 0.0 or cars[j, C_DONE] > 0.0:
                continue
            if not _cars_touch(cars, i, j, phys):
                continue
            ev[i, E_CRASH] = 1.0
            ev[j, E_CRASH] = 1.0
            d = cars[i, C_S] - cars[j, C_S]
            if d > 0.5 * length:
                d -= length
            elif d < -0.5 * length:
                d += length
            if d <= 0.01:
                _blame(tseg, length, cars, i, pen, phys, ev)
            if d >= -0.01:
                _blame(tseg, length, cars, j, pen, phys, ev)


@jit
def _unghost(cars: np.ndarray, obst: np.ndarray, cfg: np.ndarray, phys: np.ndarray) -> None:
    """Make ghosts solid again once they are unfrozen and clear of every car and object."""
    n = cars.shape[0]
    for i in range(n):
        if cars[i, C_GHOST] == 0.0 or cars[i, C_FREEZE] > 0.0 or cars[i, C_DONE] > 0.0:
            continue
        clear = not (obst.shape[0] > 0 and _touches_object(cars, i, obst, phys))
        if clear and cfg[K_INTERACT] != 0.0:
            for j in range(n):
                if j != i and cars[j, C_DONE] == 0.0 and _cars_touch(cars, i, j, phys):
                    clear = False
                    break
        if clear:
            cars[i, C_GHOST] = 0.0


@jit
def observe(tseg: np.ndarray, border: np.ndarray, gmeta: np.ndarray, gstart: np.ndarray,
            gitems: np.ndarray, length: float, obst: np.ndarray, cars: np.ndarray,
            cfg: np.ndarray, phys: np.ndarray, rays: np.ndarray, look: np.ndarray,
            obs: np.ndarray) -> None:
    """Write every car's observation vector (layout in :mod:`evaluator.observation`)."""
    n = cars.shape[0]
    nr = rays.shape[0]
    rng = phys[P_RAY_RANGE]
    reach = rng + phys[P_DISC_FRONT] + phys[P_COLL_R] + phys[P_FRONT]
    for i in range(n):
        s_th, c_th = sincos(cars[i, C_TH])
        ox = cars[i, C_FX]
        oy = cars[i, C_FY]
        for k in range(nr):
            dx = c_th * rays[k, 0] - s_th * rays[k, 1]
            dy = s_th * rays[k, 0] + c_th * rays[k, 1]
            d = geo.cast_ray(border, gmeta, gstart, gitems, ox, oy, dx, dy, rng)
            obs[i, k] = d / rng
            best = rng
            if cfg[K_INTERACT] != 0.0:
                for j in range(n):
                    if j == i or cars[j, C_GHOST] > 0.0 or cars[j, C_DONE] > 0.0:
                        continue
                    if abs(cars[j, C_X] - ox) > reach or abs(cars[j, C_Y] - oy) > reach:
                        continue
                    ax0, ay0, ax1, ay1 = _discs(cars, j, phys)
                    t = geo.ray_circle(ox, oy, dx, dy, ax0, ay0, phys[P_COLL_R])
                    best = min(best, t)
                    t = geo.ray_circle(ox, oy, dx, dy, ax1, ay1, phys[P_COLL_R])
                    best = min(best, t)
            for m in range(obst.shape[0]):
                t = geo.ray_circle(ox, oy, dx, dy, obst[m, 0], obst[m, 1], obst[m, 2])
                best = min(best, t)
            obs[i, nr + k] = best / rng
        base = 2 * nr
        obs[i, base] = cars[i, C_V] / phys[P_MAX_V]
        obs[i, base + 1] = cars[i, C_DELTA] / phys[P_MAX_STEER]
        seg = int(cars[i, C_SEG])
        ux = tseg[seg, geo.TUX]
        uy = tseg[seg, geo.TUY]
        obs[i, base + 2] = atan2(ux * s_th - uy * c_th, ux * c_th + uy * s_th) / PI
        wl, wr = geo.widths_at(tseg, seg, cars[i, C_T])
        off = cars[i, C_OFF]
        rel = off / wl if off >= 0.0 else off / wr
        clip = phys[P_OFFSET_CLIP]
        obs[i, base + 3] = min(max(rel, -clip), clip)
        for k in range(look.shape[0]):
            kap = geo.curvature_at(tseg, length, cars[i, C_S] + look[k], seg)
            obs[i, base + 4 + k] = min(max(kap * phys[P_CURV_SCALE], -1.0), 1.0)


@jit
def step_world(tseg: np.ndarray, border: np.ndarray, gmeta: np.ndarray, gstart: np.ndarray,
               gitems: np.ndarray, length: float, obst: np.ndarray, cars: np.ndarray,
               actions: np.ndarray, cfg: np.ndarray, phys: np.ndarray, rays: np.ndarray,
               look: np.ndarray, obs: np.ndarray, ev: np.ndarray) -> int:
    """Advance every car by one control step under the race rules; write events and obs.

    ``actions`` holds (steering in degrees, speed in m/s) per car; frozen and finished cars
    ignore theirs. Returns STEP_BAD_ACTION (and changes nothing) when an action is not finite,
    else STEP_OK, with STEP_LAP added when some car completed a lap.

    Off track means all four wheels outside the track (the rule: :func:`_leave_track`). A car
    with race semantics then freezes where it is for the off-track penalty while the clock runs
    and is put back on the centerline at the progress it had, facing the track direction; a
    car with training semantics only reports the event (the environment ends the episode).
    """
    n = cars.shape[0]
    for i in range(n):
        if not (np.isfinite(actions[i, 0]) and np.isfinite(actions[i, 1])):
            return STEP_BAD_ACTION
    ev[:, :] = 0.0
    result = STEP_OK
    for i in range(n):
        cars[i, C_S_PREV] = cars[i, C_S_TOTAL]
        if cars[i, C_DONE] > 0.0:
            continue
        if cars[i, C_FREEZE] > 0.0:
            cars[i, C_FREEZE] -= 1.0
            if cars[i, C_FREEZE] <= 0.0:
                cars[i, C_FREEZE] = 0.0
                _put_back(tseg, length, cars, i, phys, ev)
            continue
        _integrate(cars, i, actions[i, 0] * RAD_PER_DEG, actions[i, 1], phys)
        _track_state(tseg, length, cars, i, phys, True)
        wheels = _wheels_on(tseg, cars, i, phys)
        cars[i, C_WHEELS] = wheels
        lap = np.floor((cars[i, C_S_TOTAL] - cars[i, C_S_ORIGIN]) / length)
        if lap > cars[i, C_LAPS]:
            cars[i, C_LAPS] = lap
            ev[i, E_LAP] = 1.0
            result |= STEP_LAP
            if cfg[K_LAPS] > 0.0 and lap >= cfg[K_LAPS]:
                cars[i, C_DONE] = 1.0
                cars[i, C_GHOST] = 1.0
                continue
        if wheels == 0:
            _leave_track(tseg, length, cars, i, cfg, phys, ev)
        else:
            cars[i, C_STEPS_OFF] = 0.0
    _collisions(tseg, length, cars, obst, cfg, phys, ev)
    _unghost(cars, obst, cfg, phys)
    observe(tseg, border, gmeta, gstart, gitems, length, obst, cars, cfg, phys, rays, look, obs)
    return result


@jit
def _clip(x: float, lo: float, hi: float) -> float:
    """``np.clip`` of one float64, its exact comparisons: a value equal to a bound is kept
    (so -0.0 stays -0.0 at a bound of 0.0), NaN passes through."""
    if x != x:
        return x
    t = lo if x < lo else x
    return hi if t > hi else t


@jit
def add_ray_noise(obs: np.ndarray, noise: np.ndarray, cond: np.ndarray) -> int:
    """Add the next row of the sensor-noise block to every car's ray readings, clipped to
    [0, 1]. ``noise`` is (rows, cars, rays): row r is what the r-th call adds. Returns
    STEP_NOISE_SPENT when that was the block's last row (draw the next block before the next
    call), else STEP_OK."""
    row = int(cond[Q_ROW])
    r0 = int(cond[Q_RAY0])
    for i in range(noise.shape[1]):
        for k in range(noise.shape[2]):
            obs[i, r0 + k] = _clip(obs[i, r0 + k] + noise[row, i, k], 0.0, 1.0)
    row += 1
    cond[Q_ROW] = row
    return STEP_NOISE_SPENT if row >= noise.shape[0] else STEP_OK


@jit
def step_conditions(tseg: np.ndarray, border: np.ndarray, gmeta: np.ndarray,
                    gstart: np.ndarray, gitems: np.ndarray, length: float, obst: np.ndarray,
                    cars: np.ndarray, actions: np.ndarray, cfg: np.ndarray, phys: np.ndarray,
                    rays: np.ndarray, look: np.ndarray, obs: np.ndarray, ev: np.ndarray,
                    cond: np.ndarray, delayed: np.ndarray, applied: np.ndarray,
                    moving: np.ndarray, noise: np.ndarray) -> int:
    """:func:`step_world` under a trial's race conditions (:mod:`evaluator.conditions`).

    ``actions`` is what the policies commanded. Each car's steering gets the bias
    ``cond[Q_BIAS]``; with a latency of L steps (``delayed`` is (L, cars, 2), a ring whose
    oldest entry is at ``cond[Q_HEAD]``) the command applied is the one of L steps ago, and
    this one waits its turn. The cars' command state keeps what was commanded, not what was
    applied (for cars that were moving when the step began: ``moving`` is scratch, as is
    ``applied``). Then the next row of the sensor-noise block is added to the ray readings
    (:func:`add_ray_noise`; ``noise`` has no rows without sensor noise).

    Returns as :func:`step_world`, plus STEP_NOISE_SPENT when the noise block is used up. A
    non-finite action changes nothing (not even the latency ring): STEP_BAD_ACTION.
    """
    n = cars.shape[0]
    for i in range(n):
        if not (np.isfinite(actions[i, 0]) and np.isfinite(actions[i, 1])):
            return STEP_BAD_ACTION
    bias = cond[Q_BIAS]
    lat = delayed.shape[0]
    head = int(cond[Q_HEAD])
    for i in range(n):
        moving[i] = 1.0 if cars[i, C_DONE] == 0.0 and cars[i, C_FREEZE] <= 0.0 else 0.0
        steer = actions[i, 0] + bias
        speed = actions[i, 1]
        if lat > 0:
            applied[i, 0] = delayed[head, i, 0]
            applied[i, 1] = delayed[head, i, 1]
            delayed[head, i, 0] = steer
            delayed[head, i, 1] = speed
        else:
            applied[i, 0] = steer
            applied[i, 1] = speed
    if lat > 0:
        cond[Q_HEAD] = (head + 1) % lat
    result = step_world(tseg, border, gmeta, gstart, gitems, length, obst, cars, applied, cfg,
                        phys, rays, look, obs, ev)
    max_steer = phys[P_MAX_STEER]
    for i in range(n):
        if moving[i] != 0.0:
            cars[i, C_CMD_STEER] = _clip(actions[i, 0] * RAD_PER_DEG, -max_steer, max_steer)
            cars[i, C_CMD_SPEED] = _clip(actions[i, 1], phys[P_MIN_V], phys[P_MAX_V])
    if noise.shape[0] > 0:
        result |= add_ray_noise(obs, noise, cond)
    return result
