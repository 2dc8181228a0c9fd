"""Tests for evaluator.track, evaluator.track_files (importers, validation) and
evaluator.track_library (the library, imported tracks, the cache)."""

from __future__ import annotations

import io
import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import evaluator.track_library as library_mod
from evaluator._detmath import PI, sincos
from evaluator.errors import TrackError
from evaluator.track import Track
from evaluator.track_files import MIN_HALF_WIDTH_M
from evaluator.track_library import (
    TrackCache,
    import_track,
    iter_tracks,
    library_names,
    load_track,
)

NARROWED = {"Austin.npy"}  # the importer narrows the inside of its tightest corners


# ----------------------------------------------------------------------------- helpers
def ellipse(n: int = 120, a: float = 4.0, b: float = 3.0, clockwise: bool = False) -> np.ndarray:
    """Points of an ellipse, counter-clockwise unless asked (reproducible sincos)."""
    pts = np.empty((n, 2))
    for k in range(n):
        s, c = sincos(2.0 * PI * k / n)
        pts[k] = (a * c, b * s)
    return pts[::-1].copy() if clockwise else pts


def circle(radius: float = 3.0, n: int = 200, clockwise: bool = False) -> Track:
    pts = ellipse(n, radius, radius, clockwise)
    w = np.full(n, 0.5)
    return Track.from_arrays("circle", pts, w, w)


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def csv_bytes(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def as_csv_rows(pts: np.ndarray, wr: np.ndarray, wl: np.ndarray) -> np.ndarray:
    return np.column_stack([pts, wr, wl])


def dedup(arr: np.ndarray) -> np.ndarray:
    """Drop repeated consecutive rows (by centerline) and the closing repeat, like the importer."""
    c = arr[:, 0:2]
    keep = np.concatenate(([True], np.hypot(*np.diff(c, axis=0).T) > 1e-6))
    arr = arr[keep]
    if np.hypot(*(arr[-1, 0:2] - arr[0, 0:2])) <= 1e-6:
        arr = arr[:-1]
    return arr


def signed_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


# ----------------------------------------------------------------------------- DeepRacer
def test_deepracer_npy_import(deepracer_npy: Path) -> None:
    path = deepracer_npy
    filename = path.name
    raw = np.load(path)
    track = Track.from_npy(path)

    assert track.name == Path(filename).stem.lower()
    assert track.source == str(path)
    centre = raw[:, 0:2]
    polyline = float(np.sum(np.hypot(*np.diff(centre, axis=0).T)))
    if np.hypot(*(centre[-1] - centre[0])) > 1e-6:  # the importer closes the loop itself
        polyline += float(np.hypot(*(centre[-1] - centre[0])))
    assert track.length == pytest.approx(polyline, rel=0.05)
    assert 5.0 < track.length < 100.0

    arr = dedup(raw)
    assert track.num_points == arr.shape[0]
    np.testing.assert_array_equal(track.centerline, arr[:, 0:2])
    w_in = np.hypot(*(arr[:, 2:4] - arr[:, 0:2]).T)
    w_out = np.hypot(*(arr[:, 4:6] - arr[:, 0:2]).T)
    # Driving counter-clockwise, the inner border is on the left.
    ccw = signed_area(arr[:, 0:2]) > 0
    want_left, want_right = (w_in, w_out) if ccw else (w_out, w_in)
    if filename in NARROWED:
        assert track.notes and "narrowed" in track.notes[0]
        assert np.all(track.width_left <= want_left + 1e-12)
        assert np.all(track.width_right <= want_right + 1e-12)
        changed = (track.width_left < want_left - 1e-12) | (track.width_right < want_right - 1e-12)
        count = int(re.search(r"at (\d+) points", track.notes[0]).group(1))  # type: ignore[union-attr]
        assert changed.sum() == count
        assert 0 < count < 0.5 * track.num_points  # only the corners, not the whole track
        # untouched elsewhere
        np.testing.assert_allclose(track.width_left[~changed], want_left[~changed], atol=1e-9)
        np.testing.assert_allclose(track.width_right[~changed], want_right[~changed], atol=1e-9)
        assert np.all(track.width_left >= MIN_HALF_WIDTH_M)
    else:
        assert track.notes == ()
        np.testing.assert_allclose(track.width_left, want_left, atol=1e-9)
        np.testing.assert_allclose(track.width_right, want_right, atol=1e-9)
    assert track._border_crossing() is None


def test_deepracer_asymmetric_widths_go_to_the_right_side(deepracer_tracks_dir: Path) -> None:
    """Oval_track has different inner and outer widths: the inner one must be on the inside."""
    path = deepracer_tracks_dir / "Oval_track.npy"
    if not path.exists():
        pytest.skip(f"{path} not available")
    raw = dedup(np.load(path))
    w_in = np.hypot(*(raw[:, 2:4] - raw[:, 0:2]).T)
    w_out = np.hypot(*(raw[:, 4:6] - raw[:, 0:2]).T)
    assert np.max(np.abs(w_in - w_out)) > 0.01  # the premise: the file is asymmetric
    fwd = Track.from_npy(path)
    # The same file driven the other way round: the inside is now on the right.
    rev = Track.from_npy(npy_bytes(raw[::-1].copy()), name="oval-reversed")
    inside_fwd = fwd.width_left if fwd.curvature.mean() > 0 else fwd.width_right
    inside_rev = rev.width_left if rev.curvature.mean() > 0 else rev.width_right
    np.testing.assert_allclose(inside_fwd, w_in, atol=1e-9)
    np.testing.assert_allclose(inside_rev, w_in[::-1], atol=1e-9)
    # the file's inner border points project onto the inside of the track
    for t, raw_t in ((fwd, raw), (rev, raw[::-1])):
        inside_sign = 1.0 if t.curvature.mean() > 0 else -1.0
        offsets = np.array([t.project(x, y).offset for x, y in raw_t[:, 2:4]])
        assert np.all(offsets * inside_sign > 0)


# ----------------------------------------------------------------------------- CSV round trip
def _round_trip_tracks(deepracer_dir: Path | None) -> list[Track]:
    out = [circle(), Track.from_arrays("ell", ellipse(), np.full(120, 0.3), np.full(120, 0.6))]
    out += [load_track(n) for n in library_names()]
    if deepracer_dir is not None:
        out += [Track.from_npy(p) for p in sorted(deepracer_dir.glob("*.npy"))]
    return out


def test_to_csv_from_csv_round_trip(stadium_track: Track) -> None:
    directory = Path(__file__).resolve().parents[2] / "../shared/deepracer-tracks"
    tracks = _round_trip_tracks(directory if directory.is_dir() else None)  # optional here
    tracks.append(stadium_track)
    for t in tracks:
        text = t.to_csv()
        back = Track.from_csv(text.encode(), name=t.name)
        for a, b in ((t.centerline, back.centerline), (t.width_left, back.width_left),
                     (t.width_right, back.width_right)):
            assert a.dtype == b.dtype == np.float64
            np.testing.assert_array_equal(a, b)
        assert back.digest == t.digest, t.name
        assert back.notes == ()  # an already fitted track needs no further narrowing


def test_csv_import_with_header_comments_and_blank_lines() -> None:
    pts = ellipse()
    wl = np.full(len(pts), 0.6)
    wr = np.full(len(pts), 0.3)
    body = csv_bytes(as_csv_rows(pts, wr, wl)).decode()
    text = ("# My track\n# exported by hand\n\nx_m,y_m,w_tr_right_m,w_tr_left_m\n"
            + body.replace("\n", "\n\n", 3) + "\n# trailing comment\n")
    t = Track.from_csv(text.encode(), name="mine")
    np.testing.assert_array_equal(t.centerline, pts)
    # column 3 is the right width, column 4 the left one
    np.testing.assert_array_equal(t.width_left, wl)
    np.testing.assert_array_equal(t.width_right, wr)
    assert t.name == "mine"
    # a UTF-8 byte-order mark and Windows line ends are fine too
    t2 = Track.from_csv(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(), name="mine")
    assert t2.digest == t.digest


def test_csv_and_npy_files_by_path(tmp_path: Path) -> None:
    pts = ellipse()
    w = np.full(len(pts), 0.5)
    (tmp_path / "My Track.csv").write_bytes(csv_bytes(as_csv_rows(pts, w, w)))
    t = Track.from_file(tmp_path / "My Track.csv")
    assert t.name == "my-track"  # derived from the file name, made valid
    assert t.source == str(tmp_path / "My Track.csv")
    radial = pts / np.hypot(*pts.T)[:, None]  # from the middle outward
    arr = np.hstack([pts, pts - 0.5 * radial, pts + 0.5 * radial])  # center | inner | outer
    np.save(tmp_path / "e.npy", arr)
    t2 = Track.from_file(tmp_path / "e.npy")
    np.testing.assert_array_equal(t2.centerline, pts)
    np.testing.assert_allclose(t2.width_left, 0.5)
    with pytest.raises(TrackError, match="unknown track format"):
        Track.from_file(tmp_path / "e.txt")


# ----------------------------------------------------------------------------- malformed
def _bad_inputs(tmp_path: Path) -> list[tuple[str, object, str]]:
    """(label, callable producing the import, regex the message must match)."""
    pts = ellipse()
    n = len(pts)
    w = np.full(n, 0.5)
    good6 = np.hstack([pts, pts * 0.9, pts * 1.1])
    with_nan = good6.copy()
    with_nan[7, 1] = np.nan
    with_inf = good6.copy()
    with_inf[3, 4] = np.inf
    rows = as_csv_rows(pts, w, w)
    arc = ellipse(240)[:120]  # half an ellipse: an open arc
    return [
        ("npy N x 5", lambda: Track.from_npy(npy_bytes(good6[:, :5])), r"N x 6.*shape \(120, 5\)"),
        ("npy 1-d", lambda: Track.from_npy(npy_bytes(good6.ravel())), r"N x 6"),
        ("npy strings", lambda: Track.from_npy(npy_bytes(good6.astype(str))), r"dtype|numbers"),
        ("npy NaN", lambda: Track.from_npy(npy_bytes(with_nan)), r"row 7.*non-finite"),
        ("npy inf", lambda: Track.from_npy(npy_bytes(with_inf)), r"row 3.*non-finite"),
        ("npy empty", lambda: Track.from_npy(b""), r"not a readable \.npy"),
        ("npy garbage", lambda: Track.from_npy(b"hello, world\n" * 10), r"not a readable \.npy"),
        ("npy few points", lambda: Track.from_npy(npy_bytes(good6[::20])), r"only 6 points.*8"),
        ("csv 3 columns", lambda: Track.from_csv(csv_bytes(rows[:, :3])),
         r"line 1: expected 4 columns.*got 3"),
        ("csv NaN", lambda: Track.from_csv(csv_bytes(np.where(
            np.arange(rows.size).reshape(rows.shape) == 9, np.nan, rows))),
         r"non-finite"),
        ("csv inf", lambda: Track.from_csv(b"inf,0,0.5,0.5\n" + csv_bytes(rows)), r"non-finite"),
        ("csv non-numeric", lambda: Track.from_csv(
            csv_bytes(rows[:5]) + b"\n1.0,abc,0.5,0.5\n" + csv_bytes(rows[5:])),
         r"line 6: not a number.*abc"),
        ("csv empty", lambda: Track.from_csv(b""), r"no data rows"),
        ("csv only comments", lambda: Track.from_csv(b"# nothing\nx_m,y_m,a,b\n"),
         r"no data rows"),
        ("csv not utf-8", lambda: Track.from_csv(b"\xff\xfe1,2,3\n"), r"UTF-8"),
        ("csv few points", lambda: Track.from_csv(csv_bytes(rows[::20])), r"only 6 points"),
        ("open arc", lambda: Track.from_arrays("arc", arc, w, w), r"not closed"),
        ("arrays wrong shape", lambda: Track.from_arrays("x", pts[:, :1], w, w), r"N x 2"),
        ("widths mismatch", lambda: Track.from_arrays("x", pts, w[:-1], w),
         r"one left and one right width"),
        ("width too small", lambda: Track.from_arrays("x", pts, np.full(n, 0.05), w),
         r"left width 0\.050 m at point 0"),
        ("too short", lambda: Track.from_arrays("x", pts * 0.1, w, w), r"long; expected"),
        ("unreadable path", lambda: Track.from_npy(tmp_path / "missing.npy"),
         r"missing\.npy: cannot read"),
        ("directory", lambda: Track.from_csv(tmp_path), r"cannot read"),
        ("load missing file", lambda: load_track(str(tmp_path / "nope.csv")), r"no such track"),
        ("csv extra column", lambda: Track.from_csv(
            "\n".join(",".join(str(v) for v in r) for r in rows).replace(
                "0.5", "0,5", 1).encode()), r"line 1: expected 4 columns.*got 5"),
    ]


def test_malformed_inputs_are_refused_with_a_message(tmp_path: Path) -> None:
    for label, make, pattern in _bad_inputs(tmp_path):
        with pytest.raises(TrackError) as info:
            make()  # type: ignore[operator]
        assert re.search(pattern, str(info.value)), f"{label}: {info.value}"


def test_pickled_object_array_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (Path.touch, (marker,))

    arr = np.empty((10, 6), dtype=object)
    arr[:] = 1.0
    arr[0, 0] = Boom()
    data = npy_bytes(arr, allow_pickle=True)
    # Premise: unpickling this file really would run code.
    np.load(io.BytesIO(data), allow_pickle=True)
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.npy"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(TrackError, match=r"not a readable \.npy|dtype"):
            Track.from_npy(source)
    with pytest.raises(TrackError):
        load_track(str(path))
    assert not marker.exists()


def test_figure_eight_is_self_intersecting() -> None:
    n = 200
    pts = np.empty((n, 2))
    for k in range(n):
        s, _ = sincos(2.0 * PI * k / n)
        s2, _ = sincos(4.0 * PI * k / n)
        pts[k] = (6.0 * s, 3.0 * s2)
    w = np.full(n, 0.5)
    with pytest.raises(TrackError, match="self-intersecting border"):
        Track.from_arrays("eight", pts, w, w)


def _square_loop(extra: list[tuple[float, float]]) -> np.ndarray:
    """An 8 m square loop (counter-clockwise) with ``extra`` points spliced into the top edge."""
    pts: list[tuple[float, float]] = []
    pts += [(x * 0.2, 0.0) for x in range(40)]
    pts += [(8.0, y * 0.2) for y in range(40)]
    pts += [(8.0 - x * 0.2, 8.0) for x in range(18)]  # 8.0 .. 4.6
    pts += extra
    pts += [(3.4 - x * 0.2, 8.0) for x in range(17)]  # 3.4 .. 0.2
    pts += [(0.0, 8.0 - y * 0.2) for y in range(40)]
    return np.array(pts)


def test_hairpin_too_tight_for_its_width_is_refused() -> None:
    """A 10 cm wide finger poking out of the loop: narrowing can never make it fit."""
    gap = 0.1
    finger: list[tuple[float, float]] = []
    finger += [(4.0 + gap / 2, 8.0 + y * 0.2) for y in range(8)]
    for k in range(6):
        s, c = sincos(PI * k / 6)
        finger.append((4.0 + gap / 2 * c, 9.6 + gap / 2 * s))
    finger += [(4.0 - gap / 2, 9.6 - y * 0.2) for y in range(8)]
    pts = _square_loop([(4.4, 8.0), (4.2, 8.0)] + finger + [(3.8, 8.0), (3.6, 8.0)])
    w = np.full(len(pts), 0.5)
    with pytest.raises(TrackError, match="self-intersecting border.*too tight"):
        Track.from_arrays("finger", pts, w, w)


def test_spike_is_refused() -> None:
    pts = _square_loop([(4.4, 8.0), (4.2, 8.0), (4.0, 9.5), (3.8, 8.0), (3.6, 8.0)])
    w = np.full(len(pts), 0.5)
    with pytest.raises(TrackError, match=r"turns \d+ degrees at point \d+"):
        Track.from_arrays("spike", pts, w, w)


def test_tight_corner_is_narrowed_and_noted() -> None:
    """Square corners with 0.5 m half widths fold their inside border: narrowed, not refused."""
    pts = _square_loop([(4.4, 8.0), (4.2, 8.0), (4.0, 8.0), (3.8, 8.0), (3.6, 8.0)])
    w = np.full(len(pts), 0.5)
    t = Track.from_arrays("square", pts, w, w)
    assert t.notes and "narrowed the inside of tight corners" in t.notes[0]
    assert t._border_crossing() is None
    # counter-clockwise: the corners' inside is the left; the right keeps its width
    np.testing.assert_array_equal(t.width_right, w)
    assert t.width_left.min() < 0.5
    assert t.width_left.min() >= MIN_HALF_WIDTH_M
    # mid-way along the edges (far from the corners) nothing changes
    assert t.width_left[20] == 0.5
    assert t.width_left[60] == 0.5


def test_duplicate_points_and_closing_repeat_are_dropped() -> None:
    pts = ellipse()
    w = np.linspace(0.4, 0.6, len(pts))
    doubled = np.vstack([pts[:10], pts[9:10], pts[10:], pts[:1]])
    wd = np.concatenate([w[:10], w[9:10], w[10:], w[:1]])
    t = Track.from_arrays("dup", doubled, wd, wd)
    np.testing.assert_array_equal(t.centerline, pts)
    np.testing.assert_array_equal(t.width_left, w)


@pytest.mark.parametrize("name", ["", "Oval", "my track", "-lead", "a" * 64, "x/y", "é"])
def test_invalid_names(name: str) -> None:
    pts = ellipse()
    w = np.full(len(pts), 0.5)
    with pytest.raises(TrackError, match="invalid track name"):
        Track.from_arrays(name, pts, w, w)


@pytest.mark.parametrize("name", ["a", "oval-2", "my_track", "9lives", "a" * 63])
def test_valid_names(name: str) -> None:
    pts = ellipse()
    w = np.full(len(pts), 0.5)
    assert Track.from_arrays(name, pts, w, w).name == name


# ----------------------------------------------------------------------------- queries
def test_project_point_on_centerline(stadium_track: Track) -> None:
    t = stadium_track
    for s in (0.0, 1.234, 3.9, 7.5, 12.0, 20.3, t.length - 0.05):
        x, y, heading = t.point_at(s)
        p = t.project(x, y)
        assert p.offset == pytest.approx(0.0, abs=1e-9)
        assert p.s == pytest.approx(s, abs=1e-9)
        assert p.on_track
        assert p.heading == pytest.approx(heading, abs=1e-12)
        assert p.next_index == (p.index + 1) % t.num_points
        assert t.arc_length[p.index] <= p.s + 1e-9 <= t.arc_length[p.index + 1] + 2e-9


def test_project_offsets_on_a_straight(stadium_track: Track) -> None:
    t = stadium_track  # the start straight runs along +x on y = 0: left is +y
    for x in (-3.0, 0.55, 2.0):
        left = t.project(x, 0.3)
        assert left.offset == pytest.approx(0.3, abs=1e-12)
        assert left.s == pytest.approx(x % t.length, abs=1e-9)
        assert left.heading == pytest.approx(0.0, abs=1e-12)
        right = t.project(x, -0.3)
        assert right.offset == pytest.approx(-0.3, abs=1e-12)
        assert t.is_on_track(x, 0.535) and t.is_on_track(x, -0.535)  # the border is on
        assert not t.is_on_track(x, 0.536) and not t.is_on_track(x, -0.536)
        assert left.width_left == pytest.approx(0.535)
    # projection near a hint agrees with the global one
    assert t.project(2.0, 0.3, hint=18).s == pytest.approx(2.0)


def test_point_at_and_project_round_trip(oval_track: Track, stadium_track: Track) -> None:
    for t in (oval_track, stadium_track):
        for s in np.linspace(0.0, t.length, 37, endpoint=False):
            x, y, _ = t.point_at(float(s))
            p = t.project(x, y)
            assert p.s == pytest.approx(float(s), abs=1e-6)
            x2, y2, _ = t.point_at(p.s)
            assert math.hypot(x2 - x, y2 - y) < 1e-9
        # s wraps
        a = t.point_at(1.0)
        b = t.point_at(1.0 + t.length)
        c = t.point_at(1.0 - t.length)
        assert a == pytest.approx(b) and a == pytest.approx(c)


@pytest.mark.parametrize("clockwise", [False, True])
def test_curvature_of_a_circle(clockwise: bool) -> None:
    radius = 3.0
    t = circle(radius, clockwise=clockwise)
    sign = -1.0 if clockwise else 1.0
    for s in np.linspace(0.0, t.length, 11, endpoint=False):
        assert t.curvature_at(float(s)) == pytest.approx(sign / radius, rel=0.01)
    assert t.min_radius == pytest.approx(radius, rel=0.01)
    assert t.length == pytest.approx(2 * math.pi * radius, rel=0.001)


def test_curvature_of_the_stadium(stadium_track: Track) -> None:
    t = stadium_track
    assert t.curvature_at(1.0) == 0.0  # on the start straight
    assert t.curvature_at(4.0 + math.pi) == pytest.approx(0.5, rel=0.01)  # mid first turn
    assert t.curvature_at(t.length - 1.0) == 0.0


def test_library_oval_turns_left_at_constant_radius(oval_track: Track) -> None:
    k = oval_track.curvature
    assert k.min() >= -1e-9  # counter-clockwise: never a right turn
    turning = k[k > 0.5 * k.max()]
    r = 1.0 / turning
    assert np.median(r) == pytest.approx(oval_track.min_radius, rel=0.05)


def test_digest_is_stable_and_sensitive() -> None:
    pts = ellipse()
    w = np.full(len(pts), 0.5)
    a = Track.from_arrays("a", pts, w, w)
    b = Track.from_arrays("b", pts.copy(), w.copy(), w.copy(), title="Other", description="d")
    assert a.digest == b.digest  # geometry only: names and titles do not matter
    assert re.fullmatch(r"[0-9a-f]{64}", a.digest)
    w2 = w.copy()
    w2[17] = 0.5000001
    assert Track.from_arrays("a", pts, w2, w).digest != a.digest
    assert Track.from_arrays("a", pts, w, w2).digest != a.digest
    # swapping left and right is a different track
    assert Track.from_arrays("a", pts, w2, w).digest != Track.from_arrays("a", pts, w, w2).digest
    p2 = pts.copy()
    p2[3, 0] += 1e-9
    assert Track.from_arrays("a", p2, w, w).digest != a.digest


def test_track_arrays_are_read_only(stadium_track: Track) -> None:
    with pytest.raises(ValueError):
        stadium_track.centerline[0, 0] = 1.0
    with pytest.raises(ValueError):
        stadium_track.kernel.tseg[0, 0] = 1.0


# ----------------------------------------------------------------------------- library
def test_library_has_the_oval() -> None:
    names = library_names()
    assert names[0] == "oval"
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", library_names())
def test_library_track_is_valid(name: str) -> None:
    t = load_track(name)
    assert t.name == name
    assert t.source == "library"
    assert t.title and t.description
    assert load_track(name) is t  # cached
    assert 5.0 <= t.length <= 2000.0
    assert t._border_crossing() is None
    # shipped tracks are 1.07 m wide and need no importer adjustment
    again = Track.from_csv(t.to_csv().encode(), name=name)
    assert again.notes == () and again.digest == t.digest
    assert t.mean_width == pytest.approx(1.07, abs=0.01)
    summary = t.summary()
    assert summary["name"] == name and summary["digest"] == t.digest


def test_unknown_track_lists_known_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PADDOCK_TRACKS_DIR", str(tmp_path))
    with pytest.raises(TrackError) as info:
        load_track("nope")
    msg = str(info.value)
    assert "'nope'" in msg
    for name in library_names():
        assert name in msg


def test_import_track_then_load_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "user-tracks"
    monkeypatch.setenv("PADDOCK_TRACKS_DIR", str(user))
    monkeypatch.setattr(library_mod, "_CACHE", TrackCache())
    assert library_mod.user_tracks_dir() == user
    pts = ellipse()
    wl, wr = np.full(len(pts), 0.6), np.full(len(pts), 0.4)
    src = tmp_path / "src.csv"
    src.write_bytes(csv_bytes(as_csv_rows(pts, wr, wl)))

    imported = import_track(src, "my-ellipse", description="an ellipse")
    assert (user / "my-ellipse.csv").exists()
    assert (user / "catalog.json").exists()
    loaded = load_track("my-ellipse")
    assert loaded.digest == imported.digest == Track.from_csv(src).digest
    assert loaded.description == "an ellipse"
    np.testing.assert_array_equal(loaded.width_left, wl)
    names = [t.name for t in iter_tracks()]
    assert names[: len(library_names())] == library_names()
    assert names.count("my-ellipse") == 1

    # a fresh process (empty cache) finds it from the catalog on disk
    monkeypatch.setattr(library_mod, "_CACHE", TrackCache())
    assert load_track("my-ellipse").digest == imported.digest
    # a second import keeps the first
    import_track(src, "second")
    assert {t.name for t in iter_tracks()} >= {"my-ellipse", "second"}
    with pytest.raises(TrackError, match="unknown track 'third'.*my-ellipse"):
        load_track("third")

    with pytest.raises(TrackError, match="library track"):
        import_track(src, "oval")
    with pytest.raises(TrackError, match="invalid track name"):
        import_track(src, "Bad Name")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(TrackError, match="expected 4 columns"):
        import_track(bad, "bad")
    assert not (user / "bad.csv").exists()


# ----------------------------------------------------------------------------- the cache
def test_a_reimported_track_is_read_anew(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cache is keyed by content: replacing an imported track's file (here, or from
    another process) is seen by the next load, while an unchanged file gives the same object."""
    monkeypatch.setenv("PADDOCK_TRACKS_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(library_mod, "_CACHE", TrackCache())
    pts = ellipse()
    for k, half_width in enumerate((0.5, 0.4)):
        src = tmp_path / f"v{k}.csv"
        w = np.full(len(pts), half_width)
        src.write_bytes(csv_bytes(as_csv_rows(pts, w, w)))
        import_track(src, "club")
        loaded = load_track("club")
        assert loaded.mean_width == pytest.approx(2 * half_width)
        assert load_track("club") is loaded


def test_path_loads_are_cached_by_content(tmp_path: Path) -> None:
    pts = ellipse()
    w = np.full(len(pts), 0.5)
    path = tmp_path / "loop.csv"
    path.write_bytes(csv_bytes(as_csv_rows(pts, w, w)))
    first = load_track(str(path))
    assert load_track(path) is first
    path.write_bytes(csv_bytes(as_csv_rows(pts * 1.1, w, w)))
    second = load_track(path)
    assert second is not first and second.digest != first.digest


def test_the_cache_is_bounded() -> None:
    cache = TrackCache(size=2)
    tracks = [circle(radius) for radius in (2.0, 3.0, 4.0)]
    for k, t in enumerate(tracks):
        assert cache.put((str(k), ".csv", "", "", "", ""), t) is t
    assert cache.get(("0", ".csv", "", "", "", "")) is None  # the oldest went first
    assert cache.get(("2", ".csv", "", "", "", "")) is tracks[2]


def test_equal_geometry_from_two_sources_is_one_track() -> None:
    cache = TrackCache()
    a, b = circle(), circle()
    assert a.digest == b.digest and a is not b
    assert cache.put(("a", ".csv", "", "", "", ""), a) is a
    assert cache.put(("b", ".csv", "", "", "", ""), b) is a  # the kept one of that digest
    renamed = Track("other", a.centerline, a.width_left, a.width_right)
    assert cache.put(("c", ".csv", "", "", "", ""), renamed) is renamed  # another name


def test_concurrent_loads_share_one_track(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library_mod, "_CACHE", TrackCache())
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(lambda _: load_track("royal-park"), range(32)))
    assert all(t is loaded[0] for t in loaded)
