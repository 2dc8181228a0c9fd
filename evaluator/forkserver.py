"""The fork server: policy processes forked from one that has already imported onnxruntime.

Starting a policy process costs about 0.1 s of wall-clock time and 0.17 s of CPU, nearly all
of it Python importing numpy and onnxruntime, far more than a short evaluation itself (a
3-lap, 3-trial time trial is 0.03 s of racing). A league worker starts one for every new
model. A :class:`ForkServer` is one process started as a policy process is (bubblewrap's
namespaces and mounts, a clean environment, ``_policy_child.py``), which does its imports
once and then forks a child for every policy process asked of it (0.006 s a start); the
child then does what a freshly started one does from there: it reads its configuration,
locks itself down (resource limits, an unprivileged user, no new privileges, Landlock,
seccomp), reports, and only then reads the model. :class:`~evaluator.sandbox.PolicyProcess`
talks to it over the same pipes either way (``tests/evaluator/test_forkserver.py`` checks
the layers, the results, the descriptors and the deaths are those of a started process).

**What a child shares.** Nothing from another job: the server never reads a job's model or
an observation (only its own built-in one-node warm-up model, which runs onnxruntime's
one-time set-up), so a child starts from the server's memory as it was after the imports,
and a new child is never forked from a used one. A child keeps only its three pipes and the
shared buffer's descriptor (every other one, the server's socket included, is closed before
its configuration is read). Children of one server share its namespaces, where started
processes had a set each: what keeps them apart is what keeps any policy from its
neighbours, the filter each installs before it reads its model (seccomp refuses signals to
other processes, ``ptrace``, reads of another process's memory and every file, ``/proc``
included; Landlock refuses the file system too). So a server is used only when its first
child, a probe, is seen with that filter (:func:`evaluator.sandbox.start_fork_server`).

**Retirement.** Every child is a copy of its server, down to the stack canary and the
address layout, which a policy that crashes onnxruntime on purpose could probe one upload
at a time. A server forks no more (:attr:`ForkServer.usable`) once a child has crashed
(:data:`CRASH_SIGNALS`), a fork has failed, or it has forked :data:`MAX_FORKS` children or
served :data:`MAX_AGE_S`; the pool starts another, and closes the retired one when its last
child has ended. Children are told apart by the fork's number, not their pid, which wraps.

**Lifetime.** A :class:`~evaluator.policy_pool.PolicyPool` starts its server with its first
new process and closes it with the pool, or when the sandbox settings change; children die
with the server (``PR_SET_PDEATHSIG``), and the server with its worker (bubblewrap's
``--die-with-parent``; a server outside bubblewrap ends when its socket closes). A server
that died is replaced by a new one; when none can start, the pool's processes start the
ordinary way until the sandbox settings change.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
from types import TracebackType
from typing import IO

from evaluator.errors import PolicyFailed

log = logging.getLogger(__name__)

# The message format and kinds are _policy_child's (the server's side); repeated here because
# the parent never imports that file. A message's number is the fork's, given by this side.
FORK, READY, BORN, EXITED, FAILED = 1, 2, 3, 4, 5
MESSAGE = struct.Struct("<IIi")
CREDENTIALS = struct.Struct("3i")  # pid, uid, gid of the sender, as this process sees them
START_TIMEOUT_S = 30.0
FORK_TIMEOUT_S = 5.0  #: a fork answered later than this retires the server
#: a server forks this many children at most, and serves this long at most, before another
#: takes over: every child is a copy of it, down to the stack canary and the address layout
MAX_FORKS = 500
MAX_AGE_S = 3600.0
#: a child that dies of one of these crashed: its server forks no more (a crash may have been
#: a probe of the layout every sibling shares)
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT,
                           signal.SIGFPE, signal.SIGSYS})


class ForkServer:
    """One fork server process, and the children it forked for this process."""

    def __init__(self, command: list[str], env: dict[str, str], *, namespaces: bool,
                 home: str | None = None, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start ``command`` (the policy child script, under bubblewrap or not; the server's
        arguments are appended) and wait for its imports. ``namespaces`` says whether it runs
        under bubblewrap; ``home``, a directory removed with the server. Raises
        :class:`PolicyFailed` when it does not come up within ``timeout_s``."""
        self.namespaces = namespaces
        self.home = home
        self.forks = 0  #: children forked so far
        #: why the server forks no more ("" while it does): it is closed once its last child
        #: has ended (:meth:`idle`), since its children die with it
        self.retired = ""
        self._started = time.monotonic()
        self._exits: dict[int, int] = {}  # fork number -> exit code, until asked for
        self._live: set[int] = set()  # fork numbers of the children not reported ended
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock = mine
        try:
            self._proc = subprocess.Popen(
                [*command, "--fork-server", str(theirs.fileno())], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env=env,
                start_new_session=True, close_fds=True, pass_fds=(theirs.fileno(),))
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        try:
            kind, _, _, _ = self._message(time.monotonic() + timeout_s, READY)
        except BaseException:
            self.close()
            raise
        if kind != READY:
            self.close()
            raise PolicyFailed("the fork server could not start")

    @property
    def alive(self) -> bool:
        """Whether the server is running."""
        return self._sock.fileno() >= 0 and self._proc.poll() is None

    @property
    def usable(self) -> bool:
        """Whether the server may fork another child: running, not retired, within
        :data:`MAX_FORKS` and :data:`MAX_AGE_S` (the ends it has reported are read first,
        so a crash retires it before the next fork)."""
        self._drain()
        if not self.retired and self.forks >= MAX_FORKS:
            self.retire(f"{self.forks} children forked")
        if not self.retired and time.monotonic() - self._started > MAX_AGE_S:
            self.retire("an hour old")
        return self.alive and not self.retired

    def retire(self, why: str) -> None:
        """Fork no more; the children forked so far go on."""
        if not self.retired:
            log.info("fork server: retired: %s", why)
            self.retired = why

    def idle(self) -> bool:
        """Whether every child has ended (or the server has)."""
        self._drain()
        return not self._live or not self.alive

    def fork(self, stdin_r: int, stdout_w: int, stderr_w: int,
             shared_fd: int | None) -> ForkedChild:
        """A new child whose stdin, stdout and stderr are these pipe ends, with the shared
        buffer (when given) at the same descriptor number as here. The caller keeps (and
        closes) its copies of the descriptors it passed. A failure retires the server (its
        other children go on) and raises :class:`PolicyFailed`."""
        fds = [stdin_r, stdout_w, stderr_w] + ([shared_fd] if shared_fd is not None else [])
        self.forks += 1
        number = self.forks
        try:
            socket.send_fds(self._sock, [MESSAGE.pack(FORK, number, shared_fd or 0)], fds)
            kind, _, pid, _ = self._message(time.monotonic() + FORK_TIMEOUT_S, BORN, number)
            if kind != BORN or pid <= 0:
                raise PolicyFailed("it could not fork")
            self._live.add(number)
            return ForkedChild(self, number, pid)
        except (OSError, PolicyFailed) as err:
            why = err.reason if isinstance(err, PolicyFailed) else str(err)
            self.retire(f"a fork failed: {why}")
            raise PolicyFailed(f"the fork server failed: {why}") from err

    def _message(self, deadline: float, want: int, number: int = 0
                 ) -> tuple[int, int, int, int]:
        """The next message of kind ``want`` (for fork ``number``, when given) or FAILED,
        recording ends on the way: (kind, fork number, pid as seen here from the
        credentials, value)."""
        while True:
            got = self._receive(max(deadline - time.monotonic(), 0.0))
            if got is None:
                if not self.alive:
                    raise PolicyFailed("the fork server died")
                raise PolicyFailed("the fork server did not answer in time")
            if got[0] == FAILED or (got[0] == want and got[1] in (number, 0)):
                return got

    def _drain(self) -> None:
        """Read every message waiting (the ends of children)."""
        try:
            while self._sock.fileno() >= 0 and self._receive(0.0) is not None:
                pass
        except OSError:
            pass

    def _receive(self, timeout_s: float) -> tuple[int, int, int, int] | None:
        """One message within ``timeout_s`` (ends recorded), or None."""
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if not ready:
            return None
        data, ancillary, _, _ = self._sock.recvmsg(MESSAGE.size,
                                                   socket.CMSG_SPACE(CREDENTIALS.size))
        if len(data) != MESSAGE.size:  # the server has gone
            self._proc.poll()
            return None
        kind, number, value = MESSAGE.unpack(data)
        pid = 0
        for level, typ, payload in ancillary:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = CREDENTIALS.unpack(payload[:CREDENTIALS.size])[0]
        if kind == EXITED:
            self._exits[number] = value
            self._live.discard(number)
            if value < 0 and -value in CRASH_SIGNALS:
                self.retire(f"a child crashed ({signal.Signals(-value).name})")
        return kind, number, pid, value

    def exit_code(self, number: int, timeout_s: float) -> int | None:
        """The exit code of fork ``number`` once the server has reported it; None when it
        does not within ``timeout_s`` (the server itself has ended)."""
        deadline = time.monotonic() + timeout_s
        while number not in self._exits:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._sock.fileno() < 0:
                return None
            try:
                if self._receive(min(remaining, 0.05)) is None and not self.alive:
                    return None
            except OSError:
                return None
        return self._exits.pop(number)

    def close(self) -> None:
        """Stop the server (its children die with it)."""
        self._sock.close()
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._proc.wait()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ForkedChild:
    """A child of a fork server, as :class:`subprocess.Popen` shows a child: its pid (as
    seen here), its end (``poll``, ``wait``, ``returncode``: negative for a signal; a child
    whose end the server did not report died with the server, by SIGKILL, and is
    :attr:`lost`), and the parent's ends of its pipes (``stdin``, ``stdout``, ``stderr``),
    set by the caller. It is signalled through a pidfd (:meth:`kill`): the server, not this
    process, reaps it."""

    def __init__(self, server: ForkServer, number: int, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.lost = False  #: its end went unreported: the server had ended
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        self._server = server
        self._number = number
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError as err:
            if err.errno != errno.ESRCH:  # no pidfd here: the child cannot be watched
                os.kill(pid, signal.SIGKILL)
                raise PolicyFailed(f"cannot watch a forked child: {err}") from err
            # ESRCH: it has already ended and been reaped; its code comes from the server

    def _ended(self, timeout_s: float) -> bool:
        if self._pidfd is None:
            return True
        ready, _, _ = select.select([self._pidfd], [], [], timeout_s)
        return bool(ready)

    def _settle(self) -> int:
        if self.returncode is None:
            code = self._server.exit_code(self._number, 2.0)
            self.lost = code is None
            self.returncode = -signal.SIGKILL if code is None else code
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        return self.returncode

    def poll(self) -> int | None:
        """The exit code when the child has ended, else None."""
        if self.returncode is not None:
            return self.returncode
        return self._settle() if self._ended(0.0) else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child's end; :class:`subprocess.TimeoutExpired` past ``timeout``."""
        if self.returncode is None and not self._ended(timeout if timeout is not None
                                                       else 1e9):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        return self._settle()

    def kill(self) -> None:
        """SIGKILL the child, if it has not ended."""
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
