"""The shared-memory channel between the race and one policy process: the parent's side.

Over pipes, every action costs a write and a read on each side and, whenever one side
sleeps, a wake-up by the kernel. With a core free for each side, this channel hands
observations and actions over in one shared buffer instead, which both sides watch for a
moment before they sleep, so a steady race makes no system call at all to cross processes.

**One buffer, nothing else.** The parent creates an anonymous memory file
(``memfd_create``), sized once and sealed against growing and shrinking (a child could not
make the parent's mapping fault by truncating it), maps it, and hands the child that one
descriptor at spawn; the child maps it before it locks itself down (``_policy_child``), so
its seccomp filter needs no call it did not allow before. No other memory or descriptor is
shared: when a side sleeps, the other wakes it with a four-byte token on the pipe it already
has (``WAKE_TOKEN``), and the pipes keep every control frame (configuration, model, reset,
an inference error, a batch larger than the buffer).

**Layout** (little-endian ``u32`` words, each side's on its own cache line; the offsets are
sent to the child in its configuration, :meth:`SharedBuffer.layout`)::

    REQ_SEQ, REQ_COUNT, CHILD_WAITING     written by the parent (the child's to read)
    ANS_SEQ, ANS_COUNT, PARENT_WAITING    written by the child
    observations  rows x obs_dim float32  written by the parent
    outputs       rows x out_size float32 written by the child

A request is numbered: the parent writes the observations, then ``REQ_COUNT`` (the number
of rows, or ``CONTROL`` for "a frame waits on the pipe"), then ``REQ_SEQ``; the child
answers with the outputs, ``ANS_COUNT`` (the rows answered, or ``ERROR_COUNT`` with the
message on the pipe), then ``ANS_SEQ`` set to the request's number. The parent never reads
back what it wrote and copies an answer out of the buffer before checking it (count,
finiteness), so a child scribbling on the buffer can only change its own answer, and one
that writes while not asked is caught at the next request (:meth:`SharedBuffer.untouched`).

**No lost wake-up.** A side about to sleep sets its ``..._WAITING`` word, then looks once
more for the other's write; the writer stores its number, then reads that word and sends a
token when it is set. Between the store and the load each side passes a full memory fence
(:func:`fence`), so one of the two always sees the other. The stores of a side are seen by
the other in the order they were made only on a machine with total store order: the channel
is offered on x86-64 Linux alone (:func:`supported`); elsewhere the pipes carry everything.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import platform
import struct
import sys
import threading
from typing import Any

import numpy as np

WAKE_TOKEN = 0xFFFFFFFD  #: the four bytes a side sends on its pipe to wake the other
WAKE_BYTES = struct.pack("<I", WAKE_TOKEN)
CONTROL = 0xFFFFFFFF  #: REQ_COUNT of a request whose frame waits on the pipe (reset, a big batch)
ERROR_COUNT = 0xFFFFFFFF  #: ANS_COUNT of an answer whose error message waits on the pipe
ROWS = 64  #: observations one request in the buffer holds at most (a time trial's trials)
LINE = 64  #: bytes of a cache line: each side's words live on their own
_FENCE = threading.Lock()
#: word offsets: the parent's line, then the child's
OFFSETS = {"req_seq": 0, "req_count": 4, "child_waiting": 8,
           "ans_seq": LINE, "ans_count": LINE + 4, "parent_waiting": LINE + 8}
MASK = 0xFFFFFFFF


def supported() -> bool:
    """Whether this machine can run the channel: Linux with ``memfd_create`` and file seals,
    on x86-64 (total store order: see the module's notes)."""
    return (sys.platform.startswith("linux") and hasattr(os, "memfd_create")
            and hasattr(fcntl, "F_ADD_SEALS")
            and platform.machine().lower() in ("x86_64", "amd64"))


def fence() -> None:
    """A full memory fence: taking and giving back a lock runs locked read-modify-write
    instructions, which on x86-64 order every earlier store before every later load."""
    _FENCE.acquire()
    _FENCE.release()


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


class SharedBuffer:
    """The parent's side of one policy process's shared buffer (see the module's notes)."""

    def __init__(self, obs_dim: int, out_size: int, rows: int = ROWS) -> None:
        self.rows, self.obs_dim, self.out_size = rows, obs_dim, out_size
        self.obs_at = 2 * LINE
        self.out_at = _align(self.obs_at + 4 * rows * obs_dim, LINE)
        self.size = _align(self.out_at + 4 * rows * out_size, mmap.PAGESIZE)
        self.fd = os.memfd_create("paddock-policy", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self.fd, self.size)
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            self._map = mmap.mmap(self.fd, self.size)
        except BaseException:
            os.close(self.fd)
            raise
        words = {name: ctypes.c_uint32.from_buffer(self._map, at)
                 for name, at in OFFSETS.items()}
        self._req_seq, self._req_count = words["req_seq"], words["req_count"]
        self._child_waiting = words["child_waiting"]
        self._ans_seq, self._ans_count = words["ans_seq"], words["ans_count"]
        self._parent_waiting = words["parent_waiting"]
        self._obs = np.frombuffer(self._map, np.float32, rows * obs_dim,
                                  self.obs_at).reshape(rows, obs_dim)
        self._out = np.frombuffer(self._map, np.float32, rows * out_size,
                                  self.out_at).reshape(rows, out_size)
        self._seq = 0  # the number of the last request
        self._answered = (0, 0)  # ANS_SEQ and ANS_COUNT as the last answer left them

    def layout(self) -> dict[str, Any]:
        """What the child needs to map and read the buffer (sent in its configuration)."""
        return {"fd": self.fd, "size": self.size, "rows": self.rows, "obs_at": self.obs_at,
                "out_at": self.out_at, **OFFSETS}

    def post(self, obs: np.ndarray) -> bool:
        """Write a request of ``len(obs)`` rows (at most :attr:`rows`); True when the child
        sleeps and must be woken."""
        k = obs.shape[0]
        self._obs[:k] = obs
        return self._publish(k)

    def post_control(self) -> bool:
        """Tell the child a control frame waits on its pipe; True when it must be woken."""
        return self._publish(CONTROL)

    def _publish(self, count: int) -> bool:
        self._seq = (self._seq + 1) & MASK
        self._req_count.value = count
        self._req_seq.value = self._seq
        fence()
        return bool(self._child_waiting.value)

    def answered(self) -> bool:
        """Whether the child has answered the last request."""
        return self._ans_seq.value == self._seq

    def untouched(self) -> bool:
        """Whether the child's words are as its last answer left them (a child writes only
        when asked)."""
        return (self._ans_seq.value, self._ans_count.value) == self._answered

    def answer(self, k: int) -> tuple[int, np.ndarray]:
        """The count the child wrote for the last request and a copy of ``k`` output rows
        (read once: what is checked is what is used)."""
        count = self._ans_count.value
        self._answered = (self._seq, count)
        return count, np.array(self._out[:k])

    def sleeping(self, asleep: bool) -> bool:
        """Say whether the parent is about to sleep; True when it need not (the answer is
        here)."""
        self._parent_waiting.value = int(asleep)
        if not asleep:
            return True
        fence()
        return self.answered()

    def clear(self) -> None:
        """Zero the observation and output rows (a new evaluation starts clean)."""
        self._obs[:] = 0.0
        self._out[:] = 0.0

    def close(self) -> None:
        """Unmap the buffer and close its descriptor."""
        for attr in ("_obs", "_out", "_req_seq", "_req_count", "_child_waiting", "_ans_seq",
                     "_ans_count", "_parent_waiting"):
            delattr(self, attr)  # the views hold the mapping open
        self._map.close()
        os.close(self.fd)
