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
included; Landlock refuses the file system too).

**Lifetime.** A :class:`~evaluator.policy_pool.PolicyPool` starts its server with its first
new process and closes it with the pool, or when the sandbox settings change; children die
with the server (``PR_SET_PDEATHSIG``), and the server with its worker (bubblewrap's
``--die-with-parent``; a server outside bubblewrap ends when its socket closes). A server
that died is replaced by a new one; when none can start, the pool's processes start the
ordinary way until the sandbox settings change.
"""

from __future__ import annotations

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

# The message format and kinds are _policy_child's (the server's side); repeated here because
# the parent never imports that file.
FORK, READY, BORN, EXITED, FAILED = 1, 2, 3, 4, 5
MESSAGE = struct.Struct("<IIi")
CREDENTIALS = struct.Struct("3i")  # pid, uid, gid of the sender, as this process sees them
#: the exit code of a child whose end the server did not report (the server itself died)
UNKNOWN_EXIT = 255
START_TIMEOUT_S = 30.0


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
        self._exits: dict[int, int] = {}  # child's pid as the server sees it -> exit code
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
        return self._proc.poll() is None and self._sock.fileno() >= 0

    def fork(self, stdin_r: int, stdout_w: int, stderr_w: int, shared_fd: int | None,
             timeout_s: float) -> ForkedChild:
        """A new child whose stdin, stdout and stderr are these pipe ends, with the shared
        buffer (when given) at the same descriptor number as here. The caller keeps (and
        closes) its copies of the descriptors it passed."""
        fds = [stdin_r, stdout_w, stderr_w] + ([shared_fd] if shared_fd is not None else [])
        deadline = time.monotonic() + timeout_s
        try:
            socket.send_fds(self._sock, [MESSAGE.pack(FORK, 0, shared_fd or 0)], fds)
            kind, pid, host_pid, _ = self._message(deadline, BORN)
        except (OSError, PolicyFailed) as err:
            self.close()
            raise PolicyFailed(f"the fork server failed: {err}") from err
        if kind != BORN or host_pid <= 0:
            raise PolicyFailed("the fork server could not fork a policy process")
        return ForkedChild(self, pid, host_pid)

    def _message(self, deadline: float, want: int) -> tuple[int, int, int, int]:
        """The next message of kind ``want`` or FAILED, recording exits on the way: (kind,
        pid as the server sees it, pid as seen here from the credentials, value)."""
        while True:
            got = self._receive(max(deadline - time.monotonic(), 0.0))
            if got is None:
                if not self.alive:
                    raise PolicyFailed("the fork server died")
                raise PolicyFailed("the fork server did not answer in time")
            if got[0] in (want, FAILED):
                return got

    def _receive(self, timeout_s: float) -> tuple[int, int, int, int] | None:
        """One message within ``timeout_s`` (exits recorded), or None."""
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if not ready:
            return None
        data, ancillary, _, _ = self._sock.recvmsg(MESSAGE.size,
                                                   socket.CMSG_SPACE(CREDENTIALS.size))
        if len(data) != MESSAGE.size:
            self._proc.poll()
            return None
        kind, pid, value = MESSAGE.unpack(data)
        host_pid = 0
        for level, typ, payload in ancillary:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                host_pid = CREDENTIALS.unpack(payload[:CREDENTIALS.size])[0]
        if kind == EXITED:
            self._exits[pid] = value
        return kind, pid, host_pid, value

    def exit_code(self, pid: int, timeout_s: float) -> int:
        """The exit code of the child the server knows as ``pid``, once the server has
        reported it (:data:`UNKNOWN_EXIT` when it does not within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while pid not in self._exits:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._sock.fileno() < 0:
                return UNKNOWN_EXIT
            try:
                if self._receive(remaining) is None and not self.alive:
                    return UNKNOWN_EXIT
            except OSError:
                return UNKNOWN_EXIT
        return self._exits.pop(pid)

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
    seen here), its end (``poll``, ``wait``, ``returncode``: negative for a signal), and the
    parent's ends of its pipes (``stdin``, ``stdout``, ``stderr``), set by the caller."""

    def __init__(self, server: ForkServer, server_pid: int, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        self._server = server
        self._server_pid = server_pid
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # already gone (and reaped): its code comes from the server
            self._pidfd = None

    def _ended(self, timeout_s: float) -> bool:
        if self._pidfd is None:
            return True
        ready, _, _ = select.select([self._pidfd], [], [], timeout_s)
        return bool(ready)

    def _settle(self) -> int:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self._server_pid, 2.0)
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

