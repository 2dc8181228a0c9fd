"""Compiled geometry kernels over a track's packed arrays.

A track is packed (see :meth:`evaluator.track.Track.kernel`) into:

``tseg`` (N, 9) float64, one row per centerline vertex / segment *i* (vertex i -> vertex i+1):
    x, y, s (arc length at the vertex), ux, uy (unit direction of segment i), length of segment i,
    left width, right width, curvature (1/m, positive to the left) at the vertex.
``border`` (2N, 4): border segments x0, y0, x1, y1 (left border first, then right).
``gmeta`` (5,): uniform grid origin x, y, cell size, nx, ny.
``gstart`` (nx*ny + 1,) int32 and ``gitems`` int32: CSR lists of border segments per cell.

Only IEEE basic operations are used, in a fixed order, so results are reproducible.
"""

from __future__ import annotations

import math

import numpy as np

from evaluator._detmath import atan2, jit

# Packed column indices of ``tseg``.
TX, TY, TS, TUX, TUY, TLEN, TWL, TWR, TK = range(9)
TSEG_COLS = 9

_INF = 1e300


@jit
def project_segment(tseg: np.ndarray, i: int, px: float, py: float) -> tuple[float, float, float]:
    """Project (px, py) on segment i: (clamped t along it, squared distance, signed cross)."""
    vx = px - tseg[i, TX]
    vy = py - tseg[i, TY]
    ux = tseg[i, TUX]
    uy = tseg[i, TUY]
    t = vx * ux + vy * uy
    if t < 0.0:
        t = 0.0
    elif t > tseg[i, TLEN]:
        t = tseg[i, TLEN]
    qx = tseg[i, TX] + t * ux
    qy = tseg[i, TY] + t * uy
    dx = px - qx
    dy = py - qy
    cross = ux * vy - uy * vx
    return t, dx * dx + dy * dy, cross


@jit
def project_local(
    tseg: np.ndarray, px: float, py: float, hint: int, radius: float
) -> tuple[int, float, float]:
    """Nearest segment to (px, py) within ``radius`` metres of arc around segment ``hint``.

    Returns (segment index, t along it, signed lateral offset, positive left). Searching only
    near the previous answer keeps the projection continuous where the track doubles back
    (a hairpin's other leg may be closer in space but is far along the track).
    """
    n = tseg.shape[0]
    best_i = hint
    best_t, best_d2, best_c = project_segment(tseg, hint, px, py)
    # forward
    travelled = 0.0
    i = hint
    for _ in range(n - 1):
        travelled += tseg[i, TLEN]
        i += 1
        if i == n:
            i = 0
        if travelled > radius:
            break
        t, d2, c = project_segment(tseg, i, px, py)
        if d2 < best_d2:
            best_i, best_t, best_d2, best_c = i, t, d2, c
    travelled = 0.0
    i = hint
    for _ in range(n - 1):
        i -= 1
        if i < 0:
            i = n - 1
        travelled += tseg[i, TLEN]
        if travelled > radius:
            break
        t, d2, c = project_segment(tseg, i, px, py)
        if d2 < best_d2:
            best_i, best_t, best_d2, best_c = i, t, d2, c
    off = math.sqrt(best_d2)
    if best_c < 0.0:
        off = -off
    return best_i, best_t, off


@jit
def project_global(tseg: np.ndarray, px: float, py: float) -> tuple[int, float, float]:
    """Nearest segment to (px, py) over the whole track: (index, t, signed offset)."""
    n = tseg.shape[0]
    best_i = 0
    best_t, best_d2, best_c = project_segment(tseg, 0, px, py)
    for i in range(1, n):
        t, d2, c = project_segment(tseg, i, px, py)
        if d2 < best_d2:
            best_i, best_t, best_d2, best_c = i, t, d2, c
    off = math.sqrt(best_d2)
    if best_c < 0.0:
        off = -off
    return best_i, best_t, off


@jit
def widths_at(tseg: np.ndarray, i: int, t: float) -> tuple[float, float]:
    """Left and right widths interpolated at t metres along segment i."""
    n = tseg.shape[0]
    j = i + 1
    if j == n:
        j = 0
    f = t / tseg[i, TLEN]
    wl = tseg[i, TWL] + (tseg[j, TWL] - tseg[i, TWL]) * f
    wr = tseg[i, TWR] + (tseg[j, TWR] - tseg[i, TWR]) * f
    return wl, wr


@jit
def inside(tseg: np.ndarray, i: int, t: float, offset: float) -> bool:
    """Whether a point at signed ``offset`` from segment i (at t) lies on the track surface.

    A point exactly on the border counts as on the track.
    """
    wl, wr = widths_at(tseg, i, t)
    if offset >= 0.0:
        return offset <= wl
    return -offset <= wr


@jit
def locate_s(tseg: np.ndarray, length: float, s: float, hint: int) -> tuple[int, float]:
    """Segment index and t for arc length ``s`` (wrapped), walking from segment ``hint``."""
    n = tseg.shape[0]
    s = s % length
    if s >= length or s < 0.0:  # rounding of a tiny negative s
        s = 0.0
    i = hint
    while i > 0 and s < tseg[i, TS]:
        i -= 1
    while i < n - 1 and s >= tseg[i, TS] + tseg[i, TLEN]:
        i += 1
    t = s - tseg[i, TS]
    if t > tseg[i, TLEN]:
        t = tseg[i, TLEN]
    return i, t


@jit
def point_at(tseg: np.ndarray, length: float, s: float, hint: int) -> tuple[float, float, int]:
    """Centerline point at arc length ``s``: (x, y, segment index)."""
    i, t = locate_s(tseg, length, s, hint)
    return tseg[i, TX] + t * tseg[i, TUX], tseg[i, TY] + t * tseg[i, TUY], i


@jit
def curvature_at(tseg: np.ndarray, length: float, s: float, hint: int) -> float:
    """Curvature (1/m, positive left) interpolated at arc length ``s``."""
    n = tseg.shape[0]
    i, t = locate_s(tseg, length, s, hint)
    j = i + 1
    if j == n:
        j = 0
    f = t / tseg[i, TLEN]
    kappa: float = tseg[i, TK] + (tseg[j, TK] - tseg[i, TK]) * f
    return kappa


@jit
def ray_segment(
    ox: float, oy: float, dx: float, dy: float, x0: float, y0: float, x1: float, y1: float
) -> float:
    """Distance along the unit ray (o, d) to segment (x0,y0)-(x1,y1), or a huge number."""
    ex = x1 - x0
    ey = y1 - y0
    den = dx * ey - dy * ex
    if den == 0.0:
        return _INF
    wx = x0 - ox
    wy = y0 - oy
    t = (wx * ey - wy * ex) / den
    u = (wx * dy - wy * dx) / den
    if t >= 0.0 and u >= 0.0 and u <= 1.0:
        return t
    return _INF


@jit
def ray_circle(ox: float, oy: float, dx: float, dy: float, cx: float, cy: float, r: float) -> float:
    """Distance along the unit ray (o, d) to a circle, 0 if o is inside, else a huge number."""
    wx = cx - ox
    wy = cy - oy
    c = wx * wx + wy * wy - r * r
    if c <= 0.0:
        return 0.0
    b = wx * dx + wy * dy
    if b <= 0.0:
        return _INF
    disc = b * b - c
    if disc < 0.0:
        return _INF
    return b - math.sqrt(disc)


@jit
def _dda_axis(o: float, d: float, c: int, g0: float, cell: float) -> tuple[int, float, float]:
    """Grid walk set-up along one axis: (cell step, ray length to the first cell boundary,
    ray length between boundaries) for origin coordinate o, direction component d, cell c."""
    if d > 0.0:
        return 1, ((c + 1) * cell + g0 - o) / d, cell / d
    if d < 0.0:
        return -1, (c * cell + g0 - o) / d, -cell / d
    return 0, _INF, _INF


@jit
def cast_ray(
    border: np.ndarray,
    gmeta: np.ndarray,
    gstart: np.ndarray,
    gitems: np.ndarray,
    ox: float,
    oy: float,
    dx: float,
    dy: float,
    max_dist: float,
) -> float:
    """Distance from (ox, oy) along unit direction (dx, dy) to the first border, capped.

    Walks the uniform grid cell by cell (Amanatides-Woo) and tests only the border segments
    listed in each visited cell; stops as soon as a hit lies within the cells walked so far.
    """
    gx0 = gmeta[0]
    gy0 = gmeta[1]
    cell = gmeta[2]
    nx = int(gmeta[3])
    ny = int(gmeta[4])
    fx = (ox - gx0) / cell
    fy = (oy - gy0) / cell
    if fx < 0.0 or fy < 0.0 or fx >= nx or fy >= ny:
        return max_dist
    cx = int(fx)
    cy = int(fy)
    step_x, t_max_x, t_dx = _dda_axis(ox, dx, cx, gx0, cell)
    step_y, t_max_y, t_dy = _dda_axis(oy, dy, cy, gy0, cell)
    best = max_dist
    while True:
        c = cy * nx + cx
        for k in range(gstart[c], gstart[c + 1]):
            j = gitems[k]
            t = ray_segment(
                ox, oy, dx, dy, border[j, 0], border[j, 1], border[j, 2], border[j, 3]
            )
            if t < best:
                best = t
        t_exit = t_max_x if t_max_x < t_max_y else t_max_y
        if best <= t_exit or t_exit >= max_dist:
            break
        if t_max_x < t_max_y:
            cx += step_x
            t_max_x += t_dx
            if cx < 0 or cx >= nx:
                break
        else:
            cy += step_y
            t_max_y += t_dy
            if cy < 0 or cy >= ny:
                break
    return best


@jit
def segments_cross(
    ax: float, ay: float, bx: float, by: float, cx: float, cy: float, dx: float, dy: float
) -> bool:
    """Whether segments AB and CD properly cross (each strictly separates the other's ends)."""
    d1 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx)
    d2 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx)
    d3 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    d4 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
    if ((d1 > 0.0 and d2 < 0.0) or (d1 < 0.0 and d2 > 0.0)) and (
        (d3 > 0.0 and d4 < 0.0) or (d3 < 0.0 and d4 > 0.0)
    ):
        return True
    return False


@jit
def first_crossing(segs: np.ndarray, ring: int) -> tuple[int, int]:
    """First pair of properly crossing segments, or (-1, -1).

    ``segs`` holds closed rings of ``ring`` segments each, stacked; segments adjacent within a
    ring (they share an end point) are not compared.
    """
    m = segs.shape[0]
    for a in range(m):
        ax0 = min(segs[a, 0], segs[a, 2])
        ax1 = max(segs[a, 0], segs[a, 2])
        ay0 = min(segs[a, 1], segs[a, 3])
        ay1 = max(segs[a, 1], segs[a, 3])
        for b in range(a + 1, m):
            if a // ring == b // ring:
                d = b - a
                if d == 1 or d == ring - 1:
                    continue
            if max(segs[b, 0], segs[b, 2]) < ax0 or min(segs[b, 0], segs[b, 2]) > ax1:
                continue
            if max(segs[b, 1], segs[b, 3]) < ay0 or min(segs[b, 1], segs[b, 3]) > ay1:
                continue
            if segments_cross(
                segs[a, 0], segs[a, 1], segs[a, 2], segs[a, 3],
                segs[b, 0], segs[b, 1], segs[b, 2], segs[b, 3],
            ):
                return a, b
    return -1, -1


@jit
def vertex_curvature(pts: np.ndarray, seg_len: np.ndarray, smooth_m: float) -> np.ndarray:
    """Signed curvature at each vertex of a closed polyline, smoothed over +-``smooth_m``."""
    n = pts.shape[0]
    raw = np.empty(n)
    for i in range(n):
        p = i - 1 if i > 0 else n - 1
        q = i + 1 if i < n - 1 else 0
        ax = pts[i, 0] - pts[p, 0]
        ay = pts[i, 1] - pts[p, 1]
        bx = pts[q, 0] - pts[i, 0]
        by = pts[q, 1] - pts[i, 1]
        turn = atan2(ax * by - ay * bx, ax * bx + ay * by)
        raw[i] = turn / (0.5 * (seg_len[p] + seg_len[i]))
    out = np.empty(n)
    for i in range(n):
        acc = raw[i] * (seg_len[i - 1 if i > 0 else n - 1] + seg_len[i])
        wsum = seg_len[i - 1 if i > 0 else n - 1] + seg_len[i]
        # walk both ways, weighting each neighbour by the arc it represents
        dist = 0.0
        j = i
        for _ in range(n // 2):
            dist += seg_len[j]
            j = j + 1 if j < n - 1 else 0
            if dist > smooth_m:
                break
            w = seg_len[j - 1 if j > 0 else n - 1] + seg_len[j]
            acc += raw[j] * w
            wsum += w
        dist = 0.0
        j = i
        for _ in range(n // 2):
            j = j - 1 if j > 0 else n - 1
            dist += seg_len[j]
            if dist > smooth_m:
                break
            w = seg_len[j - 1 if j > 0 else n - 1] + seg_len[j]
            acc += raw[j] * w
            wsum += w
        out[i] = acc / wsum
    return out
