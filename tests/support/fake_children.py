"""Stand-ins for the sandbox's policy child, for tests of what the parent does when the child
is compromised: a script is this framing (length-prefixed JSON and bytes on stdin and stdout,
as ``evaluator/_policy_child.py`` speaks) followed by the misbehaviour under test."""

from __future__ import annotations

import os
from pathlib import Path

#: ``read(n)`` exactly n bytes of stdin (exit quietly when the parent closes it) and
#: ``send(doc)`` one length-prefixed JSON frame on stdout.
FRAMING = r'''
import json, os, struct


def read(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            raise SystemExit(0)
        buf += chunk
    return buf


def send(doc):
    data = json.dumps(doc).encode()
    os.write(1, struct.pack("<I", len(data)) + data)

'''


def write_child(tmp_path: Path, name: str, source: str) -> Path:
    """``source`` as the script ``name`` in ``tmp_path``, where a sandboxed child (another
    user, under bubblewrap) may read it."""
    path = tmp_path / name
    path.write_text(source)
    os.chmod(tmp_path, 0o755)
    return path
