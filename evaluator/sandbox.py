"""Running an untrusted policy in its own locked-down child process.

The simulator and the clock stay in this (trusted) process; each policy gets a child that
receives observations and returns fixed-size float32 outputs over pipes. Layers, outermost
first:

* a clean environment (``ORT_DISABLE_TELEMETRY=1``, a throwaway empty ``HOME``, cwd ``/``,
  one thread) and a new process group, so a kill takes everything the child started;
* bubblewrap, when installed: new user, network, PID, IPC, UTS and cgroup namespaces, and a
  read-only view of only the directories Python and onnxruntime are loaded from;
* inside the child, before the model is read: resource limits (address space, CPU seconds,
  open files, file size 0, no core dumps), dropping root to ``nobody``, ``no_new_privs``,
  Landlock with no file-system or TCP rights, and a seccomp filter (see ``_policy_child``);
* deadlines enforced here: one to load the model, one per action.

Any overrun, crash or malformed answer raises :class:`PolicyFailed` with the reason, after the
whole process group was killed. :attr:`PolicyProcess.layers` reports which layers took effect;
``SandboxOptions(strict=True)`` turns a missing layer into :class:`SandboxUnavailable`.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from evaluator.errors import PolicyFailed, SandboxUnavailable
from evaluator.observation import OBS_DIM
from evaluator.validate import ValidatedPolicy

CHILD_SCRIPT = Path(__file__).with_name("_policy_child.py")
ERROR_FRAME = 0xFFFFFFFF
MAX_HELLO_BYTES = 64 * 1024
LOADING = "loading the model"
ACTING = "choosing an action"
STDERR_TAIL_BYTES = 4096  # how much of a dead child's stderr is read for the reason
MAX_ERROR_BYTES = 1000  # longest inference error message read from the child
LAYERS = ("clean_env", "namespaces", "rlimits", "user", "no_new_privs", "landlock", "seccomp")
STRICT_ENV = "PADDOCK_SANDBOX_STRICT"  # "1": a missing layer is an error (read by from_env)
BWRAP_ENV = "PADDOCK_SANDBOX_BWRAP"  # "0": do not use bubblewrap even when installed


@dataclass(frozen=True)
class SandboxOptions:
    """Limits and layers of policy processes."""

    action_timeout_s: float = 0.05  #: wall-clock budget for one action (per observation)
    load_timeout_s: float = 10.0  #: wall-clock budget to start and load the model
    memory_bytes: int = 1 << 30  #: address-space limit of the child
    cpu_seconds: int = 600  #: CPU-time limit of the child over its whole life
    open_files: int = 32  #: open file descriptors the child may hold
    use_bwrap: bool = True  #: use bubblewrap namespaces when it is installed and works
    strict: bool = False  #: refuse to run when any layer is missing
    spin_s: float = 0.0002  #: how long the parent busy-waits for an answer before sleeping
    child_spin_s: float = 0.0005  #: how long the child busy-waits for a request (0: sleep)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> SandboxOptions:
        """Options with the operator's settings (``PADDOCK_SANDBOX_STRICT``, ``..._BWRAP``)."""
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {"strict": env.get(STRICT_ENV, "0") == "1",
                              "use_bwrap": env.get(BWRAP_ENV, "1") != "0"}
        kw.update(overrides)
        return cls(**kw)


@lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and can start Python with onnxruntime here."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    probe = [sys.executable, "-I", "-B", "-c", "import numpy, onnxruntime"]
    try:
        proc = subprocess.run([exe, *_bwrap_args(), *probe], capture_output=True,
                              timeout=30, check=False, env=_clean_env("/tmp"))
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _bwrap_args() -> list[str]:
    """bubblewrap's namespaces and mounts: only what Python and onnxruntime load from, read-only.

    Unprivileged, bubblewrap makes a user namespace and runs the child as nobody in it. As
    root it does not: in a user namespace the child would still be root to the host's file
    permissions. It keeps only the right to change user, and the child becomes the real
    nobody itself after its imports (see ``_policy_child._drop_user``).
    """
    if os.geteuid() == 0:
        args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                "--cap-add", "CAP_SETGID"]
    else:
        args = ["--unshare-all", "--cap-drop", "ALL", "--uid", "65534", "--gid", "65534"]
    args += ["--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
             "--tmpfs", "/tmp", "--chdir", "/"]
    mounts: list[str] = []
    for top in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.exists():
            mounts.append(top)
    import numpy  # noqa: PLC0415 - where the child's imports live
    import onnxruntime  # noqa: PLC0415
    sites = [str(Path(mod.__file__ or "").parent.parent) for mod in (numpy, onnxruntime)]
    for extra in (sys.base_prefix, sys.prefix, str(CHILD_SCRIPT.parent), *sites):
        real = os.path.realpath(extra)
        if not any(real == m or real.startswith(m + "/") for m in mounts):
            mounts.append(real)
    for m in mounts:
        args += ["--ro-bind", m, m]
    return args


def available_cores() -> int:
    """CPU cores this process may run on (its affinity, where the system reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _clean_env(home: str) -> dict[str, str]:
    return {"HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "ORT_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


class PolicyProcess:
    """One policy in one sandboxed child process; use as a context manager."""

    def __init__(self, policy: ValidatedPolicy, options: SandboxOptions | None = None, *,
                 wait: bool = True) -> None:
        """Start the child and hand it the model; with ``wait`` off, call :meth:`wait_ready`
        later (so several policies can load at once)."""
        self.policy = policy
        self.options = options or SandboxOptions()
        self.out_size = policy.output_size
        self.layers: dict[str, Any] = {}
        self.onnxruntime_version = ""
        self.load_time_s = 0.0
        self.actions = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._home = tempfile.mkdtemp(prefix="paddock-policy-")
        self._poll = select.poll()
        self._pending = 0
        self._deadline = 0.0
        self._ready = False
        try:
            self._spawn()
            if wait:
                self.wait_ready()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self) -> None:
        opts = self.options
        cmd = [sys.executable, "-I", "-B", str(CHILD_SCRIPT)]
        self._namespaces = opts.use_bwrap and bwrap_works()
        if self._namespaces:
            cmd = [shutil.which("bwrap") or "bwrap", *_bwrap_args(),
                   "--bind", self._home, self._home, *cmd]
        self._started = time.monotonic()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, cwd="/",
                                      env=_clean_env(self._home), start_new_session=True,
                                      close_fds=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._wfd = self._proc.stdin.fileno()
        self._rfd = self._proc.stdout.fileno()
        os.set_blocking(self._rfd, False)
        self._poll.register(self._rfd, select.POLLIN)
        p = self.policy
        cfg = {"memory_bytes": opts.memory_bytes, "cpu_seconds": opts.cpu_seconds,
               "open_files": opts.open_files, "input_name": p.input_name,
               "input_shape": list(p.input_shape), "output_name": p.output_name,
               "output_size": p.output_size, "output_shape": list(p.output_shape),
               "obs_dim": OBS_DIM, "spin_s": opts.child_spin_s}
        blob = json.dumps(cfg).encode()
        self._send(struct.pack("<I", len(blob)) + blob + struct.pack("<I", len(p.data)) + p.data)

    def wait_ready(self) -> None:
        """Wait for the child's greeting: the model is loaded and the layers are known."""
        if self._ready:
            return
        opts = self.options
        deadline = self._started + opts.load_timeout_s
        try:
            (n,) = struct.unpack("<I", self._recv(4, deadline, LOADING))
            if n > MAX_HELLO_BYTES:
                raise PolicyFailed("the policy process sent a malformed greeting")
            hello = json.loads(self._recv(n, deadline, LOADING))
        except (OSError, ValueError, RecursionError) as err:
            self._kill()
            raise PolicyFailed(f"the policy process failed to start: {err}") from err
        if not isinstance(hello, dict) or not isinstance(hello.get("layers", {}), dict):
            self._kill()  # the child is untrusted once it has read the model
            raise PolicyFailed("the policy process sent a malformed greeting")
        self.load_time_s = time.monotonic() - self._started
        self.layers = {"clean_env": True, "namespaces": self._namespaces,
                       **hello.get("layers", {})}
        self.onnxruntime_version = str(hello.get("onnxruntime", ""))
        if "error" in hello:
            self._kill()
            raise PolicyFailed(f"the model failed to load: {_one_line(str(hello['error']))}")
        missing = self.missing_layers()
        if missing and opts.strict:
            self._kill()
            raise SandboxUnavailable("sandbox layers missing: " + ", ".join(missing)
                                     + f" (unset {STRICT_ENV} to run without them)")
        self._ready = True

    def missing_layers(self) -> list[str]:
        """Names of the layers that did not take effect."""
        return [name for name in LAYERS if not self.layers.get(name)]

    def close(self) -> None:
        """Stop the child and remove its throwaway home."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # The child keeps nothing worth flushing: stopping it outright is instant, where
            # waiting for a polite exit costs tens of milliseconds per evaluation.
            self._kill()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            self._proc = None
        shutil.rmtree(self._home, ignore_errors=True)

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

    def __enter__(self) -> PolicyProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Outputs for a batch of observations: (k, 30) in, (k, output size) float32 out.

        Each row is run on its own (batch 1), so a trial's actions never depend on how many
        trials share the call. Raises :class:`PolicyFailed` on a deadline overrun, a crash,
        an inference error or a non-finite output.
        """
        self.send(obs)
        return self.receive()

    def send(self, obs: np.ndarray) -> None:
        """Send observations without waiting (pair with :meth:`receive`)."""
        if self._proc is None or not self._ready:
            raise PolicyFailed("the policy process is not running")
        k = obs.shape[0]
        data = np.ascontiguousarray(obs, dtype=np.float32)
        self._deadline = time.monotonic() + self.options.action_timeout_s * k
        self._pending = k
        self._send(struct.pack("<I", k) + data.tobytes())

    def receive(self) -> np.ndarray:
        """Receive the outputs for the last :meth:`send`, checked for count and finiteness."""
        k, deadline = self._pending, self._deadline
        self._pending = 0
        expected = 4 + 4 * k * self.out_size
        # One read normally brings the whole answer: the child writes it in one call.
        buf = self._recv(expected, deadline, ACTING, at_least=4)
        (n,) = struct.unpack("<I", buf[:4])
        if n == ERROR_FRAME:
            if len(buf) < 8:
                buf += self._recv(8 - len(buf), deadline, ACTING)
            (size,) = struct.unpack("<I", buf[4:8])
            size = min(size, MAX_ERROR_BYTES)
            if len(buf) < 8 + size:
                buf += self._recv(8 + size - len(buf), deadline, ACTING)
            self._kill()
            raise PolicyFailed("inference failed: "
                               + _one_line(buf[8:8 + size].decode("utf-8", "replace")))
        if n != k:
            self._kill()
            raise PolicyFailed(f"the policy process answered {n} actions for {k} observations")
        if len(buf) < expected:
            buf += self._recv(expected - len(buf), deadline, ACTING)
        raw = buf[4:]
        out = np.frombuffer(raw, dtype=np.float32).reshape(k, self.out_size)
        if not np.isfinite(out).all():
            self._kill()
            raise PolicyFailed(f"the policy returned a non-finite value: {out.tolist()[:4]}")
        self.actions += k
        return out

    def _send(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._wfd, view):]
        except BrokenPipeError as err:
            raise PolicyFailed(self._death("receiving data")) from err

    def _recv(self, n: int, deadline: float, doing: str, at_least: int | None = None) -> bytes:
        """Read up to ``n`` bytes, returning once ``at_least`` (default all ``n``) arrived."""
        buf = b""
        want = n if at_least is None else at_least
        spin_until = time.monotonic() + self.options.spin_s
        while len(buf) < want:
            try:  # a short busy wait first: the answer is usually microseconds away
                chunk = os.read(self._rfd, n - len(buf))
            except BlockingIOError:
                now = time.monotonic()
                if now < spin_until and now < deadline:
                    continue
                left = deadline - now
                if left <= 0 or not self._poll.poll(left * 1000.0):
                    self._kill()
                    budget = (self.options.load_timeout_s if doing == LOADING
                              else self.options.action_timeout_s)
                    raise PolicyFailed(f"timed out {doing} "
                                       f"(budget {budget * 1000:.0f} ms)") from None
                continue
            if not chunk:
                raise PolicyFailed(self._death(doing))
            buf += chunk
        return buf

    def _death(self, doing: str) -> str:
        proc = self._proc
        try:
            code = proc.wait(timeout=2) if proc is not None else None
        except subprocess.TimeoutExpired:
            code = None
        self._kill()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:  # a real-time signal has no name
                name = f"signal {-code}"
            why = {"SIGXCPU": "its CPU-time limit", "SIGKILL": "a kill",
                   "SIGSEGV": "a crash", "SIGSYS": "a forbidden system call"}.get(name, name)
            return f"the policy process died while {doing} ({name}: {why})"
        return f"the policy process exited while {doing} (exit status {code}){self._last_words()}"

    def _last_words(self) -> str:
        """The last line the child wrote to stderr, cleaned, for the DNF reason."""
        proc = self._proc
        if proc is None or proc.stderr is None:
            return ""
        fd = proc.stderr.fileno()
        os.set_blocking(fd, False)
        try:
            tail = os.read(fd, STDERR_TAIL_BYTES)
        except (BlockingIOError, OSError):
            return ""
        lines = [ln for ln in tail.decode("utf-8", "replace").splitlines() if ln.strip()]
        if not lines:
            return ""
        text = "".join(ch if ch.isprintable() else "?" for ch in lines[-1].strip())
        return ": " + text[:300]


def _one_line(text: str) -> str:
    """Text from the child (error messages quote racer-chosen names) made one printable line."""
    return "".join(ch if ch.isprintable() else " " if ch.isspace() else "?"
                   for ch in text.strip())
