"""Replays in the byte layouts of earlier format versions (docs/REPLAY.md), made from current
ones, for the tests that older stored replays go on playing."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from evaluator import replay


def as_format_3(data: bytes) -> bytes:
    """A stored format-4 replay that keeps every car's commands and its obstacles, rewritten
    the way format 3 stored it (docs/REPLAY.md): the same blocks, the cars' headers without
    ``commands``. Replays kept before format 4 look like this, and they must go on playing."""
    raw = zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)
    magic, fmt, head_len = struct.unpack_from("<8sII", raw)
    assert fmt == 4, f"expected a format-4 replay, got format {fmt}"
    start = 16 + head_len
    head = json.loads(raw[16:start])
    assert head["obstacles"] is not None, "format 3 keeps the obstacles"
    head["format"] = 3
    for car in head["cars"]:
        assert car.pop("commands") is True, "format 3 keeps every car's commands"
    return _repack(magic, 3, head, raw[start:])


def as_format_2(data: bytes) -> bytes:
    """A stored format-3 (or 4, see :func:`as_format_3`) replay rewritten the way format 2
    stored it (docs/REPLAY.md): the same header without ``obstacles`` and the same blocks
    without the obstacle blocks. Replays kept before format 3 look like this, and they must go
    on playing."""
    raw = zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)
    if struct.unpack_from("<8sII", raw)[1] == 4:
        data = as_format_3(data)
        raw = zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)
    magic, fmt, head_len = struct.unpack_from("<8sII", raw)
    assert fmt == 3, f"expected a format-3 replay, got format {fmt}"
    start = 16 + head_len
    head = json.loads(raw[16:start])
    head["format"] = 2
    count = head.pop("obstacles")
    offset = start + 6 * 4 * head["track"]["points"]
    end = offset + 4 * len(replay.OBSTACLE_COLUMNS) * count
    return _repack(magic, 2, head, raw[start:offset] + raw[end:])


def as_format_1(data: bytes) -> bytes:
    """A stored format-2, 3 or 4 replay rewritten the way format 1 stored it (docs/REPLAY.md):
    the format-2 header and blocks without the command columns. Replays kept before format 2
    look like this, and they must go on playing."""
    raw = zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)
    if struct.unpack_from("<8sII", raw)[1] in (3, 4):
        raw = zlib.decompress(as_format_2(data), wbits=16 + zlib.MAX_WBITS)
    magic, fmt, head_len = struct.unpack_from("<8sII", raw)
    assert fmt == 2, f"expected a format-2 replay, got format {fmt}"
    start = 16 + head_len
    head = json.loads(raw[16:start])
    head["format"] = 1
    frames, cars = head["frames"], len(head["cars"])
    offset = start + 6 * 4 * head["track"]["points"]
    kept = [raw[start:offset]]
    for col in replay.COLUMNS_BY_FORMAT[2]:
        size = np.dtype(col.dtype).itemsize * frames * cars
        if col in replay.COLUMNS_BY_FORMAT[1]:
            kept.append(raw[offset:offset + size])
        offset += size
    assert offset == len(raw)
    return _repack(magic, 1, head, b"".join(kept))


def _repack(magic: bytes, fmt: int, head: dict[str, object], blocks: bytes) -> bytes:
    """Preamble, space-padded JSON header and ``blocks``, gzipped."""
    text = json.dumps(head, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    out = struct.pack("<8sII", magic, fmt, len(text)) + text + blocks
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return comp.compress(out) + comp.flush()
