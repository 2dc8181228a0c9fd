"""Stand-ins for the sandbox's policy child, for tests of what the parent does when the child
is compromised: a script is this framing (length-prefixed JSON and bytes on stdin and stdout,
as ``evaluator/_policy_child.py`` speaks) followed by the misbehaviour under test; or the real
child with a slowness added (:func:`slow_child`)."""

from __future__ import annotations

import os
from pathlib import Path

from evaluator.sandbox import CHILD_SCRIPT

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


#: The line of ``evaluator/_policy_child.py`` that code is added in front of.
CHILD_MAIN = '\nif __name__ == "__main__":'

#: The real child, but a model whose bytes hold ``__MARK__`` thinks ``__DELAY__`` seconds
#: more per action (a busy wait: no system call the sandbox would refuse).
SLOW_INFERENCE = r'''
import time as _slow_time

_plain_session, _plain_inference = _session, _inference
_slow = [False]


def _session(model):
    _slow[0] = __MARK__ in model
    return _plain_session(model)


def _inference(session, cfg):
    run = _plain_inference(session, cfg)

    def slow_run(obs):
        if _slow[0]:
            until = _slow_time.monotonic() + __DELAY__
            while _slow_time.monotonic() < until:
                pass
        return run(obs)

    return slow_run
'''


def slow_child(tmp_path: Path, mark: bytes, delay_s: float) -> Path:
    """The real policy child, except that models whose bytes hold ``mark`` (their name, say)
    are valid but slow: ``delay_s`` more per action."""
    src = CHILD_SCRIPT.read_text()
    assert src.count(CHILD_MAIN) == 1
    extra = SLOW_INFERENCE.replace("__MARK__", repr(mark)).replace("__DELAY__", repr(delay_s))
    return write_child(tmp_path, "slow_child.py", src.replace(CHILD_MAIN, extra + CHILD_MAIN))
