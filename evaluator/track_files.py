"""Track files: the formats a track is imported from, and the checks raw arrays must pass.

Formats (both in metres):

* DeepRacer ``.npy``: float array N x 6: center x, y | inner x, y | outer x, y.
* CSV ``x_m,y_m,w_tr_right_m,w_tr_left_m`` (comment lines start with ``#``, one header line
  may precede the data), the format of the shipped library and of ``paddock tracks import``.

A reader turns a file's bytes into :class:`TrackArrays` (centerline, left and right widths);
:func:`clean` then validates and tidies them, and :func:`fit_widths` narrows corners whose
border would fold over itself. :meth:`evaluator.track.Track.from_arrays` applies both.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from evaluator.errors import TrackError

NPY, CSV = ".npy", ".csv"  # the file formats, by extension
MIN_POINTS = 8  # fewer distinct centerline points cannot describe a circuit
MIN_HALF_WIDTH_M = 0.10  # narrowest accepted half width (the car is 0.20 m wide)
MAX_HALF_WIDTH_M = 5.0  # widest accepted half width
CLOSING_GAP_FACTOR = 3.0  # last->first gap allowed, in median segment lengths
DUPLICATE_EPS_M = 1e-6  # consecutive points closer than this are one point
FIT_PLATEAU_M = 0.6  # a narrowed corner keeps its deepest cut this far either way ...
FIT_AVERAGE_M = 0.4  # ... and the cut then blends out over this distance
MAX_NAME_CHARS = 63  # longest track name

_NAME_RE = re.compile(rf"^[a-z0-9][a-z0-9_-]{{0,{MAX_NAME_CHARS - 1}}}$")


class TrackArrays(NamedTuple):
    """What a track file holds: centerline points and the widths either side, metres."""

    centerline: np.ndarray  #: (N, 2)
    width_left: np.ndarray  #: (N,) to the left border in the driving direction
    width_right: np.ndarray  #: (N,)


# --------------------------------------------------------------------- reading
def read_source(file: str | os.PathLike[str] | bytes) -> tuple[str, bytes]:
    """Return a file's label for messages (its path, or ``<bytes>``) and its bytes."""
    if isinstance(file, bytes):
        return "<bytes>", file
    path = Path(file)
    try:
        return str(path), path.read_bytes()
    except OSError as err:
        raise TrackError(f"{path}: cannot read ({err.strerror})") from err


def format_of(path: str | os.PathLike[str]) -> str:
    """Return the format of a track file from its extension (``.npy`` or ``.csv``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (NPY, CSV):
        raise TrackError(f"{path}: unknown track format {suffix!r} (expected .npy or .csv)")
    return suffix


def parse(raw: bytes, label: str, fmt: str) -> TrackArrays:
    """Read the arrays of a track file's bytes in format ``fmt`` (``.npy`` or ``.csv``)."""
    readers: dict[str, Callable[[bytes, str], TrackArrays]] = {NPY: parse_npy, CSV: parse_csv}
    return readers[fmt](raw, label)


def parse_npy(raw: bytes, label: str) -> TrackArrays:
    """Read a DeepRacer route file (N x 6: center | inner | outer border points)."""
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise TrackError(f"{label}: not a readable .npy array ({err})") from err
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != 6:
        shape = getattr(arr, "shape", None)
        raise TrackError(
            f"{label}: expected an N x 6 array (center x,y | inner x,y | outer x,y), "
            f"got shape {shape}"
        )
    if arr.dtype.kind not in "fiu":
        raise TrackError(f"{label}: expected numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    _check_finite(arr, label)
    center, inner, outer = arr[:, 0:2], arr[:, 2:4], arr[:, 4:6]
    w_in = np.sqrt(np.sum((inner - center) ** 2, axis=1))
    w_out = np.sqrt(np.sum((outer - center) ** 2, axis=1))
    # Which border is on the left depends on the driving direction: ask the cross product
    # of the local direction with the inner offset, by majority over all points.
    tangent = np.roll(center, -1, axis=0) - np.roll(center, 1, axis=0)
    rel = inner - center
    cross = tangent[:, 0] * rel[:, 1] - tangent[:, 1] * rel[:, 0]
    inner_is_left = int(np.sum(cross > 0)) >= int(np.sum(cross < 0))
    wl, wr = (w_in, w_out) if inner_is_left else (w_out, w_in)
    return TrackArrays(center, wl, wr)


def parse_csv(raw: bytes, label: str) -> TrackArrays:
    """Read a CSV track ``x_m,y_m,w_tr_right_m,w_tr_left_m``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TrackError(f"{label}: not UTF-8 text") from err
    rows: list[list[float]] = []
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        try:
            values = [float(c) for c in cells]
        except ValueError:
            if not rows and not header_seen and not any(_is_number(c) for c in cells):
                header_seen = True  # one header line may precede the data
                continue
            raise TrackError(f"{label}: line {lineno}: not a number in {line!r}") from None
        if len(values) != 4:
            raise TrackError(
                f"{label}: line {lineno}: expected 4 columns "
                f"x_m,y_m,w_tr_right_m,w_tr_left_m, got {len(values)}"
            )
        rows.append(values)
    if not rows:
        raise TrackError(f"{label}: no data rows")
    arr = np.array(rows, dtype=np.float64)
    _check_finite(arr, label)
    return TrackArrays(arr[:, 0:2], arr[:, 3], arr[:, 2])


def csv_text(title: str, centerline: np.ndarray, width_left: np.ndarray,
             width_right: np.ndarray) -> str:
    """Write arrays in the CSV format (round-trips exactly through ``repr`` floats)."""
    lines = [f"# {title}", "# x_m,y_m,w_tr_right_m,w_tr_left_m"]
    rows = zip(centerline.tolist(), width_right.tolist(), width_left.tolist(), strict=True)
    for (x, y), wr, wl in rows:
        lines.append(f"{x!r},{y!r},{wr!r},{wl!r}")
    return "\n".join(lines) + "\n"


def check_name(name: str) -> None:
    """Raise :class:`TrackError` unless ``name`` is a valid track name (never a path)."""
    if not _NAME_RE.match(name):
        raise TrackError(f"invalid track name {name!r}: use 1-{MAX_NAME_CHARS} lowercase "
                         "letters, digits, '-' or '_'")


def name_from_label(label: str) -> str:
    """Return a track name made from a file's name (lowercase, ``-`` for anything else)."""
    stem = Path(label).stem.lower()
    stem = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or "track"
    return stem[:MAX_NAME_CHARS]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_finite(arr: np.ndarray, label: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise TrackError(f"{label}: row {row} holds a non-finite value (NaN or infinity)")


# --------------------------------------------------------------------- checks
def clean(pts: np.ndarray, wl: np.ndarray, wr: np.ndarray, label: str) -> TrackArrays:
    """Validate shapes and values; drop repeated points and the closing duplicate."""
    label = label or "track"
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise TrackError(f"{label}: centerline must be N x 2, got shape {pts.shape}")
    if wl.shape != (pts.shape[0],) or wr.shape != (pts.shape[0],):
        raise TrackError(f"{label}: need one left and one right width per centerline point")
    pts = pts.astype(np.float64)
    wl = wl.astype(np.float64)
    wr = wr.astype(np.float64)
    for arr in (pts, wl, wr):
        _check_finite(arr.reshape(arr.shape[0], -1), label)
    if pts.shape[0] < MIN_POINTS:
        raise TrackError(
            f"{label}: only {pts.shape[0]} points; a track needs at least {MIN_POINTS}"
        )
    step = np.diff(pts, axis=0)
    keep = np.concatenate(([True], np.sqrt(np.sum(step * step, axis=1)) > DUPLICATE_EPS_M))
    pts, wl, wr = pts[keep], wl[keep], wr[keep]
    gap = float(np.sqrt(np.sum((pts[-1] - pts[0]) ** 2)))
    if gap <= DUPLICATE_EPS_M:
        pts, wl, wr = pts[:-1], wl[:-1], wr[:-1]
    if pts.shape[0] < MIN_POINTS:
        raise TrackError(
            f"{label}: only {pts.shape[0]} distinct points; a track needs at least {MIN_POINTS}"
        )
    seg = np.sqrt(np.sum(np.diff(pts, axis=0) ** 2, axis=1))
    median = float(np.median(seg))
    gap = float(np.sqrt(np.sum((pts[-1] - pts[0]) ** 2)))
    if gap > CLOSING_GAP_FACTOR * median + 1e-3:
        raise TrackError(
            f"{label}: not closed: the last point is {gap:.2f} m from the first while points "
            f"are {median:.2f} m apart; a track must be a loop"
        )
    for side, w in (("left", wl), ("right", wr)):
        bad = np.flatnonzero((w < MIN_HALF_WIDTH_M) | (w > MAX_HALF_WIDTH_M))
        if bad.size:
            i = int(bad[0])
            raise TrackError(
                f"{label}: {side} width {w[i]:.3f} m at point {i}; each side must be "
                f"{MIN_HALF_WIDTH_M:g} to {MAX_HALF_WIDTH_M:g} m"
            )
    return TrackArrays(np.ascontiguousarray(pts), np.ascontiguousarray(wl),
                       np.ascontiguousarray(wr))


def fit_widths(
    pts: np.ndarray, wl: np.ndarray, wr: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Narrow the inside of corners so that no mitred border segment folds over.

    Offsetting segment i (length l) by widths w at its ends shortens it by
    w_i*tan(phi_i/2) + w_i+1*tan(phi_i+1/2), phi being the turn at each end towards that
    side; keeping that below ``factor`` * l keeps the border simple. tan(phi/2) is computed
    as |a x b| / (1 + a.b) from the unit directions, without trigonometry. Returns the new
    left and right widths and how many points were narrowed.
    """
    d = np.roll(pts, -1, axis=0) - pts
    seg = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    u = d / seg[:, None]
    a = np.roll(u, 1, axis=0)  # incoming direction at each vertex
    cross = a[:, 0] * u[:, 1] - a[:, 1] * u[:, 0]
    dot = a[:, 0] * u[:, 0] + a[:, 1] * u[:, 1]
    half_tan = np.abs(cross) / np.maximum(1.0 + dot, 1e-9)
    out = []
    changed = np.zeros(pts.shape[0], dtype=bool)
    arc = np.concatenate(([0.0], np.cumsum(seg)))
    for w, side in ((wl, cross > 0.0), (wr, cross < 0.0)):
        shrink = np.where(side, half_tan, 0.0)
        per_seg = shrink + np.roll(shrink, -1)  # vertex i and i+1 of segment i
        with np.errstate(divide="ignore"):
            cap_seg = np.where(per_seg > 0.0, factor * seg / per_seg, np.inf)
        cap = np.minimum(cap_seg, np.roll(cap_seg, 1))  # a vertex ends two segments
        cut = np.maximum(w - cap, 0.0)
        if np.any(cut > 0.0):
            # Narrow smoothly: the largest cut within FIT_PLATEAU_M, averaged over the shorter
            # FIT_AVERAGE_M, so the border bends instead of notching; each point still loses
            # at least its own cut, since every average only sees points of its plateau.
            cut = _window(_window(cut, arc, FIT_PLATEAU_M, np.max), arc, FIT_AVERAGE_M,
                          np.mean)
        new_w = w - cut
        new_w = np.maximum(new_w, MIN_HALF_WIDTH_M)
        changed |= new_w < w
        out.append(np.ascontiguousarray(new_w))
    return out[0], out[1], int(changed.sum())


def _window(values: np.ndarray, arc: np.ndarray, radius: float, fn: Any) -> np.ndarray:
    """Apply ``fn`` to the values within ``radius`` metres of arc around each point (closed)."""
    n = values.shape[0]
    length = arc[-1]
    out = np.empty(n)
    for i in range(n):
        d = np.abs(arc[:-1] - arc[i])
        d = np.minimum(d, length - d)
        out[i] = fn(values[d <= radius])
    return out
