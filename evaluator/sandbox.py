"""Running an untrusted policy in its own locked-down child process.

The simulator and the clock stay in this (trusted) process; each policy gets a child that
receives observations and returns fixed-size float32 outputs: in one buffer shared with it
where the machine allows (:mod:`evaluator.channel`, ``SandboxOptions.shared_memory``), else
over its pipes, which carry every control frame either way. Layers, outermost first:

* a clean environment (``ORT_DISABLE_TELEMETRY=1``, a throwaway empty ``HOME``, cwd ``/``,
  one thread) and a new process group, so a kill takes everything the child started;
* bubblewrap, when installed: new user, network, PID, IPC, UTS and cgroup namespaces, and a
  read-only view of only the directories Python and onnxruntime are loaded from;
* inside the child, before the model is read: resource limits (address space, CPU seconds,
  open files, file size 0, no core dumps), dropping root to ``nobody``, ``no_new_privs``,
  Landlock with no file-system or TCP rights, and a seccomp allow-list (see ``_policy_child``);
* deadlines enforced here, on every wait for the child and every write to it: one to load
  the model, one per action. An action's deadline is the policy's own time: a child kept
  waiting for a core by a busy machine gets more wall-clock time, up to
  :data:`STARVED_WAIT_FACTOR` times the deadline (:meth:`PolicyProcess.act`). Over one
  evaluation a policy has an inference-time budget too
  (:func:`inference_budget_s`, :class:`~evaluator.errors.TimeBudgetExceeded`), and the whole
  evaluation a wall-clock limit (:func:`evaluation_limit_s`), checked by whoever runs the
  race (:class:`WallClock`).

Any overrun, crash or malformed answer (a wrong count, a non-finite value, a write to the
shared buffer or the pipe out of turn) raises :class:`PolicyFailed` with the reason, after the
whole process group was killed.

:attr:`PolicyProcess.layers` is this process's own observation: the limits, user,
``no_new_privs``, seccomp mode and namespaces are read from ``/proc`` once the child reports
that it has locked itself down. Only Landlock cannot be seen from outside; it is taken from
that report, which the child writes before it reads a byte of the model (nothing the child
says after the model is loaded is believed). ``SandboxOptions(strict=True)`` turns a missing
required layer (:func:`missing_required`) into :class:`SandboxUnavailable`.

A process normally lives for one evaluation. A league worker keeps its processes warm across
evaluations instead (:mod:`evaluator.policy_pool`): between two, :meth:`PolicyProcess.reset`
starts the per-evaluation figures (actions, inference time against the budget, deadlines)
from zero under the next evaluation's options and has the child recreate its buffers, so
the next result is the one a fresh process gives. The limits set inside the child (address
space, CPU seconds) are for its whole life; the pool recycles a process before they could
make a difference (:func:`evaluation_cpu_s`). Its new processes are forked from a fork
server (:func:`start_fork_server`, :mod:`evaluator.forkserver`) that has done the imports,
0.006 s instead of 0.1: each is the same child from its configuration on, with the same
layers, seen from here in the same way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from evaluator import channel
from evaluator.car import CONTROL_HZ
from evaluator.errors import PolicyFailed, SandboxUnavailable, TimeBudgetExceeded
from evaluator.forkserver import ForkedChild, ForkServer
from evaluator.observation import OBS_DIM
from evaluator.race_settings import RaceConfig
from evaluator.validate import ValidatedPolicy

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("_policy_child.py")
ERROR_FRAME = 0xFFFFFFFF
RESET_FRAME = 0xFFFFFFFE  # a warm process starts its next evaluation clean (see reset)
MAX_HELLO_BYTES = 64 * 1024
LOADING = "loading the model"
RESETTING = "starting a new evaluation"
ACTING = "choosing an action"
STDERR_TAIL_BYTES = 4096  # how much of a dead child's stderr is read for the reason
MAX_ERROR_BYTES = 1000  # longest inference error message read from the child
LAYERS = ("clean_env", "namespaces", "rlimits", "user", "no_new_privs", "landlock", "seccomp")
#: layers a strict sandbox cannot do without; besides them it needs one of CONTAINMENT
REQUIRED_LAYERS = ("clean_env", "rlimits", "user", "no_new_privs", "seccomp")
CONTAINMENT = ("landlock", "namespaces")  # keeps the child off files and other processes
CONTAINMENT_NAME = "landlock or namespaces"
#: what to install (or switch on) for each missing requirement, said by strict refusals
INSTALL_HINTS = {
    "seccomp": "install libseccomp, apt-get install libseccomp2",
    CONTAINMENT_NAME: "install bubblewrap, apt-get install bubblewrap, or run a kernel with "
                      "Landlock enabled (Linux 5.13 or later, 'landlock' in its lsm= list)",
    "no_new_privs": "run on Linux 3.5 or later",
    "rlimits": "allow the worker to set resource limits",
    "user": "run the worker as an unprivileged user, or as root so the child becomes nobody",
    "clean_env": "",
}
STRICT_ENV = "PADDOCK_SANDBOX_STRICT"  # "1": a missing layer is an error (read by from_env)
BWRAP_ENV = "PADDOCK_SANDBOX_BWRAP"  # "0": do not use bubblewrap even when installed
WRITING = "sending observations"
NOBODY = 65534  # the uid the child becomes when the worker runs as root
EXIT_SIGNAL_BASE = 128  # bubblewrap exits 128 + n when the policy died of signal n
# The inference-time budget of one policy over one evaluation (inference_budget_s): this
# average per action over the most actions the race can ask for, within these bounds. The
# per-action deadline stops one slow answer; the budget stops a policy that answers each
# action in time but so slowly that it would hold a worker for minutes.
INFERENCE_MS_PER_ACTION = 5.0
MIN_INFERENCE_BUDGET_S = 10.0
MAX_INFERENCE_BUDGET_S = 60.0
# The default wall-clock limit of an evaluation (evaluation_limit_s) is every load at its full
# budget, every policy's whole inference budget (and one last message past it) and the
# simulator's own time, this much per world step, times the margin, plus a minute: a race of
# policies that keep their deadlines and budgets never reaches it.
SIM_S_PER_STEP = 0.005
WALL_CLOCK_MARGIN = 1.5
WALL_CLOCK_SLACK_S = 60.0
# An action's deadline counts the policy's own time. Past it, a child that has not had the
# deadline's worth of CPU time on the request (the machine kept it waiting for a core) is given
# more wall-clock time, as long as it still needs, up to this many times the deadline; a
# policy that computes (or loops) for the deadline, or stays silent that long, fails as before.
STARVED_WAIT_FACTOR = 4.0
MIN_STARVED_WAIT_S = 0.002  # each extension is at least this long (the CPU clock's grain)


@dataclass(frozen=True)
class SandboxOptions:
    """Limits and layers of policy processes."""

    #: budget for one action (per observation): the policy's own time, and wall-clock time up
    #: to :data:`STARVED_WAIT_FACTOR` times it while a busy machine keeps the policy waiting
    action_timeout_s: float = 0.05
    load_timeout_s: float = 10.0  #: wall-clock budget to start and load the model
    memory_bytes: int = 1 << 30  #: address-space limit of the child
    cpu_seconds: int = 600  #: CPU-time limit of the child over its whole life
    open_files: int = 32  #: open file descriptors the child may hold
    use_bwrap: bool = True  #: use bubblewrap namespaces when it is installed and works
    #: a pool's new processes are forked from its fork server (:mod:`evaluator.forkserver`);
    #: off, each is started on its own (processes started outside a pool always are)
    fork_server: bool = True
    strict: bool = False  #: refuse to run when a required layer is missing
    spin_s: float = 0.0002  #: how long the parent busy-waits for an answer before sleeping
    child_spin_s: float = 0.0005  #: how long the child busy-waits for a request (0: sleep)
    #: hand observations and actions over in a buffer shared with the child
    #: (:mod:`evaluator.channel`) where the machine supports it; else, or off, over the pipes
    shared_memory: bool = True
    #: wall-clock limit of one whole evaluation, seconds; 0: derived from the race
    #: (:func:`evaluation_limit_s`)
    evaluation_timeout_s: float = 0.0
    #: inference time one policy process may use, seconds; 0: derived from the race
    #: (:func:`inference_budget_s`, which ``run_race`` sets here). A :class:`PolicyProcess`
    #: started with 0 has no budget
    inference_budget_s: float = 0.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> SandboxOptions:
        """Options with the operator's settings (``PADDOCK_SANDBOX_STRICT``, ``..._BWRAP``)."""
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {"strict": env.get(STRICT_ENV, "0") == "1",
                              "use_bwrap": env.get(BWRAP_ENV, "1") != "0"}
        kw.update(overrides)
        return cls(**kw)

    @property
    def shared_buffer(self) -> bool:
        """Whether observations and actions travel in the shared buffer: asked for
        (``shared_memory``) and supported on this machine (:func:`channel.supported`)."""
        return self.shared_memory and channel.supported()


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


def missing_required(layers: dict[str, Any]) -> list[str]:
    """The requirements of a strict sandbox that ``layers`` lack: each of
    :data:`REQUIRED_LAYERS`, and ``"landlock or namespaces"`` when neither took effect."""
    missing = [name for name in REQUIRED_LAYERS if not layers.get(name)]
    if not any(layers.get(name) for name in CONTAINMENT):
        missing.append(CONTAINMENT_NAME)
    return missing


def describe_missing(missing: list[str]) -> str:
    """The missing requirements with what to install for each, in one line."""
    return "; ".join(f"{name}: {INSTALL_HINTS[name]}" if INSTALL_HINTS.get(name) else name
                     for name in missing)


def probe_layers(options: SandboxOptions | None = None,
                 fork_server: ForkServer | None = None) -> dict[str, Any]:
    """The layers a policy process gets on this machine: a shipped bot is started (never
    strictly; forked by ``fork_server`` when given) and observed, as a worker checks before it
    takes any job."""
    from importlib import resources  # noqa: PLC0415 - only the probe needs the bot

    from evaluator.validate import validate_policy  # noqa: PLC0415

    data = resources.files("evaluator").joinpath("bots", "rookie.onnx").read_bytes()
    opts = dataclasses.replace(options or SandboxOptions(), strict=False)
    with PolicyProcess(validate_policy(data), opts, fork_server=fork_server) as proc:
        if fork_server is not None and not isinstance(proc._proc, ForkedChild):
            raise PolicyFailed("the fork server did not fork the probe")
        return dict(proc.layers)


def _max_steps(config: RaceConfig, cars: int) -> int:
    """World steps on one track at most: every trial (time trial) or heat (a head-to-head
    round has a heat per car) run to its time cap. It is also the most actions one policy
    can be asked for there."""
    heats = config.trials * (cars if config.head_to_head else 1)
    return heats * int(round(config.time_cap * CONTROL_HZ))


def inference_budget_s(config: RaceConfig, cars: int, options: SandboxOptions) -> float:
    """The inference time one policy may use on one track of an evaluation, in seconds:
    ``options.inference_budget_s`` when set, else ``INFERENCE_MS_PER_ACTION`` for each action
    the race can ask for at most, kept between ``MIN_INFERENCE_BUDGET_S`` and
    ``MAX_INFERENCE_BUDGET_S`` (the default time trial, three trials of 180 s: 40.5 s).

    A policy's inference time is the time from sending it observations to its answer, summed
    (:attr:`PolicyProcess.inference_s`); it stays well under the budget for a policy that
    answers in a few milliseconds, however long the race.
    """
    if options.inference_budget_s > 0:
        return options.inference_budget_s
    derived = _max_steps(config, cars) * INFERENCE_MS_PER_ACTION / 1000.0
    return round(min(MAX_INFERENCE_BUDGET_S, max(MIN_INFERENCE_BUDGET_S, derived)), 1)


def evaluation_limit_s(config: RaceConfig, cars: int, options: SandboxOptions) -> float:
    """The wall-clock limit of one evaluation: ``options.evaluation_timeout_s`` when set,
    else, with a margin, on each track: every policy loading at its full budget and using its
    whole inference budget (:func:`inference_budget_s`) plus the one last message that takes
    it past (a time trial's message asks for every trial's action, one action's deadline
    each), and the simulator's own time for every step of every trial or heat run to its time
    cap. A race on several tracks loads the policies and runs the trials once per track.
    """
    if options.evaluation_timeout_s > 0:
        return options.evaluation_timeout_s
    last_message_s = (1 if config.head_to_head else config.trials) * options.action_timeout_s
    policies = cars * (options.load_timeout_s + inference_budget_s(config, cars, options)
                       + last_message_s)
    budget = len(config.tracks) * (policies + _max_steps(config, cars) * SIM_S_PER_STEP)
    return WALL_CLOCK_MARGIN * budget + WALL_CLOCK_SLACK_S


def evaluation_cpu_s(config: RaceConfig, cars: int, options: SandboxOptions) -> float:
    """The most CPU time one policy process can use in one evaluation on one track: its whole
    load budget, its inference budget (:func:`inference_budget_s`) and the one last message
    past it, and the child's short busy wait (``child_spin_s``) after each of the most
    requests the race can make. A warm process (:mod:`evaluator.policy_pool`) is reused only
    while this much is left of its CPU-time limit, so it never meets the limit where a fresh
    process would not."""
    last_message_s = (1 if config.head_to_head else config.trials) * options.action_timeout_s
    return (options.load_timeout_s + inference_budget_s(config, cars, options) + last_message_s
            + _max_steps(config, cars) * options.child_spin_s)


class EvaluationTimedOut(Exception):
    """Raised when an evaluation runs past its wall-clock limit.

    Not a :class:`~evaluator.errors.PaddockError` on purpose: it is the verdict of whoever
    runs the race on the whole evaluation, not a property of a policy or a setting, and each
    caller records it in its own way (the league as a ``timeout`` failure).
    """

    def __init__(self, limit_s: float) -> None:
        shown = f"{limit_s:g}" if limit_s < 100 else f"{limit_s:.0f}"
        super().__init__(f"the evaluation ran past its wall-clock limit of {shown} s")
        self.limit_s = limit_s


class WallClock:
    """The wall-clock limit of one evaluation, started now."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s

    @property
    def expired(self) -> bool:
        """Whether the limit has passed."""
        return time.monotonic() > self.deadline

    def check(self) -> None:
        """Raise :class:`EvaluationTimedOut` once the limit has passed."""
        if self.expired:
            raise EvaluationTimedOut(self.limit_s)


def _clean_env(home: str) -> dict[str, str]:
    return {"HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "ORT_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def _command(options: SandboxOptions, home: str) -> tuple[list[str], bool]:
    """The command starting the policy child script under ``options`` (bubblewrap's
    namespaces, ``home`` bound writable, where asked for and working), and whether it runs
    in the namespaces."""
    cmd = [sys.executable, "-I", "-B", str(CHILD_SCRIPT)]
    namespaces = options.use_bwrap and bwrap_works()
    if namespaces:
        cmd = [shutil.which("bwrap") or "bwrap", *_bwrap_args(), "--bind", home, home, *cmd]
    return cmd, namespaces


def start_fork_server(options: SandboxOptions) -> ForkServer:
    """A fork server (:mod:`evaluator.forkserver`) whose children are policy processes
    under ``options``' bubblewrap setting; the rest of the options reach each child in its
    configuration, as they reach a freshly started one.

    Its first child is a probe (a shipped bot, :func:`probe_layers`): children of one server
    share its namespaces, and what keeps them apart is the seccomp filter each installs, so
    a server whose children would run without it (``no_new_privs`` and ``seccomp`` not seen
    from here) is not used. Raises :class:`PolicyFailed` when it cannot start or is not used.
    """
    home = tempfile.mkdtemp(prefix="paddock-forks-")
    cmd, namespaces = _command(options, home)
    try:
        server = ForkServer(cmd, _clean_env(home), namespaces=namespaces, home=home)
    except (OSError, PolicyFailed) as err:
        shutil.rmtree(home, ignore_errors=True)
        raise PolicyFailed(f"the fork server could not start: {err}") from err
    try:
        layers = probe_layers(options, server)
    except (PolicyFailed, SandboxUnavailable) as err:
        server.close()
        raise PolicyFailed(f"the fork server's probe failed: {err}") from err
    if not (layers.get("no_new_privs") and layers.get("seccomp")):
        server.close()
        raise PolicyFailed("the fork server is not used: its children would run without "
                           "seccomp, which keeps them apart")
    return server


class PolicyProcess:
    """One policy in one sandboxed child process; use as a context manager."""

    def __init__(self, policy: ValidatedPolicy, options: SandboxOptions | None = None, *,
                 wait: bool = True, fork_server: ForkServer | None = None) -> None:
        """Start the child and hand it the model; with ``wait`` off, call :meth:`wait_ready`
        later (so several policies can load at once). With a running ``fork_server``, the
        child is forked from it (imports done) instead of started from scratch."""
        self.policy = policy
        self._fork_server = fork_server
        self.options = options or SandboxOptions()
        self.out_size = policy.output_size
        self.layers: dict[str, Any] = {}
        self.onnxruntime_version = ""
        self.load_time_s = 0.0
        self.actions = 0  #: actions answered in this evaluation
        #: time spent answering in this evaluation, summed: from each send to its answer
        #: (:meth:`receive`)
        self.inference_s = 0.0
        self.lifetime_actions = 0  #: actions answered since the process started
        #: whether this evaluation got the process warm, from an earlier one (:meth:`reset`)
        self.warm = False
        self._child_pid = 0  # the policy's own process (inside bubblewrap), once observed
        self._schedstat_fd: int | None = None  # its CPU clock, held open (_child_cpu)
        self._sent_at = 0.0
        self._answered_at: float | None = None  # set by await_answers
        self._proc: subprocess.Popen[bytes] | ForkedChild | None = None
        #: the throwaway home of a child started on its own (a forked one has its server's)
        self._home: str | None = None
        self._poll = select.poll()
        self._wpoll = select.poll()
        self._pending = 0
        self._deadline = 0.0
        self._action_budget_s = 0.0  # the pending request's deadline, from its send
        #: (time.monotonic(), the child's CPU seconds) when the parent first slept on the
        #: pending request: what a late answer's CPU time is measured from (:meth:`_later`)
        self._cpu_mark: tuple[float, float | None] | None = None
        self._ready = False
        #: the shared buffer, while the child uses it (else requests go over the pipes)
        self._shm: channel.SharedBuffer | None = None
        self._posted = False  # the pending request is in the shared buffer
        self._stash = b""  # bytes read off the child's pipe ahead of their reader
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
        self._started = time.monotonic()
        if opts.shared_buffer:
            self._shm = channel.SharedBuffer(OBS_DIM, self.out_size)
        server = self._fork_server
        if server is not None and server.usable:
            try:
                self._proc = self._fork(server)
                self._namespaces = server.namespaces
                self._bwrap_exit = False
            except PolicyFailed as err:  # the server is retired: start this one from scratch
                log.warning("policy process: %s; starting it on its own", err.reason)
                self._proc = None
                self._started = time.monotonic()
        if self._proc is None:
            self._home = tempfile.mkdtemp(prefix="paddock-policy-")
            cmd, self._namespaces = _command(opts, self._home)
            self._bwrap_exit = self._namespaces  # bubblewrap reports a signal as a status
            passed = (self._shm.fd,) if self._shm is not None else ()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, cwd="/",
                                          env=_clean_env(self._home), start_new_session=True,
                                          close_fds=True, pass_fds=passed)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._wfd = self._proc.stdin.fileno()
        self._rfd = self._proc.stdout.fileno()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._poll.register(self._rfd, select.POLLIN)
        self._wpoll.register(self._wfd, select.POLLOUT)
        p = self.policy
        cfg = {"memory_bytes": opts.memory_bytes, "cpu_seconds": opts.cpu_seconds,
               "open_files": opts.open_files, "input_name": p.input_name,
               "input_shape": list(p.input_shape), "output_name": p.output_name,
               "output_size": p.output_size, "output_shape": list(p.output_shape),
               "obs_dim": OBS_DIM, "spin_s": opts.child_spin_s,
               "shared": self._shm.layout() if self._shm is not None else None}
        blob = json.dumps(cfg).encode()
        frames = struct.pack("<I", len(blob)) + blob + struct.pack("<I", len(p.data)) + p.data
        self._send(frames, self._started + opts.load_timeout_s, LOADING)

    def _fork(self, server: ForkServer) -> ForkedChild:
        """The child, forked by ``server``, with pipes as a started child's."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        theirs = (stdin_r, stdout_w, stderr_w)
        try:
            child = server.fork(*theirs, self._shm.fd if self._shm is not None else None)
        except BaseException:
            for fd in (*theirs, stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise
        for fd in theirs:
            os.close(fd)
        child.stdin = os.fdopen(stdin_w, "wb", buffering=0)
        child.stdout = os.fdopen(stdout_r, "rb", buffering=0)
        child.stderr = os.fdopen(stderr_r, "rb", buffering=0)
        return child

    def wait_ready(self) -> None:
        """Wait for the child's report (its lockdown, which is then observed from here) and
        its greeting (the model is loaded)."""
        if self._ready:
            return
        opts = self.options
        deadline = self._started + opts.load_timeout_s
        report = self._frame(deadline)
        self.layers = self._observe(report.get("layers"))
        if self._shm is not None and report.get("channel") != "shared":
            self._drop_shared()  # a child that does not speak it is served over the pipes
        hello = self._frame(deadline)
        self.load_time_s = time.monotonic() - self._started
        self.onnxruntime_version = str(hello.get("onnxruntime", ""))
        if "error" in hello:
            self._kill()
            raise PolicyFailed(f"the model failed to load: {_one_line(str(hello['error']))}")
        missing = missing_required(self.layers)
        if missing and opts.strict:
            self._kill()
            raise SandboxUnavailable("sandbox layers missing: " + describe_missing(missing)
                                     + f" (set {STRICT_ENV}=0 to run without them)")
        self._ready = True

    def _drop_shared(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm = None

    @property
    def channel(self) -> str:
        """How observations and actions travel: ``"shared"`` (memory) or ``"pipe"``."""
        return "pipe" if self._shm is None else "shared"

    def _frame(self, deadline: float) -> dict[str, Any]:
        """One JSON object from the child (the report or the greeting)."""
        try:
            (n,) = struct.unpack("<I", self._recv(4, deadline, LOADING))
            if n > MAX_HELLO_BYTES:
                raise PolicyFailed("the policy process sent a malformed greeting")
            doc = json.loads(self._recv(n, deadline, LOADING))
        except (OSError, ValueError, RecursionError) as err:
            self._kill()
            raise PolicyFailed(f"the policy process failed to start: {err}") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("layers", {}), dict):
            self._kill()
            raise PolicyFailed("the policy process sent a malformed greeting")
        return doc

    def _observe(self, reported: dict[str, Any] | None) -> dict[str, Any]:
        """The layers as seen from here, in ``/proc``, once the child has locked itself down.

        The child's own report counts for Landlock alone, which leaves no trace outside; it
        was written before the model was read, and only with ``no_new_privs`` (which Landlock
        needs) seen here.
        """
        assert self._proc is not None
        layers: dict[str, Any] = {"clean_env": True, "namespaces": False, "rlimits": False,
                                  "user": False, "no_new_privs": False, "landlock": False,
                                  "seccomp": False}
        try:
            pid = _innermost(self._proc.pid)
            status = _proc_status(pid)
        except (OSError, ValueError):
            return layers  # nothing can be seen: nothing is believed
        if pid != self._child_pid:
            self._close_schedstat()
        self._child_pid = pid
        layers["rlimits"] = self._limits_hold(pid)
        layers["namespaces"] = self._namespaces and _in_namespaces(pid, status)
        layers["user"] = _user(status)
        layers["no_new_privs"] = status.get("NoNewPrivs") == "1"
        layers["seccomp"] = status.get("Seccomp") == "2"  # a filter is installed
        landlock = (reported or {}).get("landlock")
        if layers["no_new_privs"] and type(landlock) is int and landlock >= 1:
            layers["landlock"] = landlock  # the Landlock ABI version
        return layers

    def _limits_hold(self, pid: int) -> bool:
        """Whether the child's hard resource limits are at most what was asked."""
        opts = self.options
        want = {"Max address space": opts.memory_bytes, "Max cpu time": opts.cpu_seconds + 1,
                "Max file size": 0, "Max core file size": 0, "Max open files": opts.open_files}
        try:
            hard = _proc_limits(pid)
        except (OSError, ValueError):
            return False
        return all(name in hard and hard[name] <= most for name, most in want.items())

    @property
    def alive(self) -> bool:
        """Whether the child is loaded, running and owes no answer."""
        proc = self._proc
        return (proc is not None and self._ready and not self._pending
                and proc.poll() is None)

    def reset(self, policy: ValidatedPolicy, options: SandboxOptions) -> None:
        """Make this (warm) process ready for another evaluation of the same model.

        The per-evaluation figures (:attr:`actions`, :attr:`inference_s`, the deadlines) start
        from zero under ``options`` (this evaluation's deadlines and inference budget), and
        the child drops its input and output buffers and binds new zeroed ones
        (``_policy_child``'s reset frame), so nothing of the last evaluation is left but the
        loaded model. :attr:`load_time_s` becomes the time the reset took. ``policy`` must be
        the model the process was started with (the same bytes); ``options`` must limit the
        child as the ones it was started with did (:func:`evaluator.policy_pool.pool_key`).
        Raises :class:`PolicyFailed`, the process killed, when the child does not answer.
        """
        if policy.sha256 != self.policy.sha256:
            raise ValueError("a warm policy process serves only the model it loaded")
        if not self.alive:
            raise PolicyFailed("the policy process is not running")
        self.policy, self.options = policy, options
        self.actions, self.inference_s = 0, 0.0
        self._sent_at, self._answered_at, self._deadline = 0.0, None, 0.0
        started = time.monotonic()
        deadline = started + options.load_timeout_s
        if self._shm is not None:
            self._shm.clear()
        self._control(struct.pack("<I", RESET_FRAME), deadline, RESETTING)
        n = self._word(deadline, RESETTING)
        if n != RESET_FRAME:
            self._kill()
            raise PolicyFailed("the policy process answered a reset with something else")
        self.load_time_s = time.monotonic() - started
        self.warm = True

    def usage(self) -> tuple[float, int, int]:
        """The child's CPU seconds used so far, its resident memory and its address space
        (bytes), read from ``/proc``; (0, 0, 0) when they cannot be read."""
        pid = self._child_pid
        if not pid:
            return 0.0, 0, 0
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = _proc_status(pid)
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime, stime
            rss = int(status.get("VmRSS", "0 kB").split()[0]) * 1024
            size = int(status.get("VmSize", "0 kB").split()[0]) * 1024
        except (OSError, ValueError, IndexError):
            return 0.0, 0, 0
        return cpu, rss, size

    def missing_layers(self) -> list[str]:
        """Names of the layers that did not take effect (some may be optional: see
        :func:`missing_required`)."""
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
        self._close_schedstat()
        self._drop_shared()
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if isinstance(proc, ForkedChild):
            proc.kill()  # through its pidfd: its fork server, not this process, reaps it
        else:
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

        The deadline (``action_timeout_s`` per observation) is the policy's own time: when it
        passes without an answer and the child has had less CPU time than that since the
        request (the machine kept it waiting for a core), the wait goes on until the child
        has had it, or until :data:`STARVED_WAIT_FACTOR` times the deadline of wall-clock
        time (:meth:`_later`). So a policy that answers in time on a quiet machine answers
        in time on a busy one too, and the same race gives the same result.
        """
        self.send(obs)
        return self.receive()

    def send(self, obs: np.ndarray) -> None:
        """Send observations without waiting (pair with :meth:`receive`)."""
        if self._proc is None or not self._ready:
            raise PolicyFailed("the policy process is not running")
        k = obs.shape[0]
        data = np.ascontiguousarray(obs, dtype=np.float32)
        self._sent_at, self._answered_at = time.monotonic(), None
        self._action_budget_s = self.options.action_timeout_s * k
        self._deadline = self._sent_at + self._action_budget_s
        self._cpu_mark = None
        self._pending = k
        shm = self._shm
        self._posted = shm is not None and k <= shm.rows
        if shm is None or not self._posted:
            self._control(struct.pack("<I", k) + data.tobytes(), self._deadline, WRITING)
            return
        if not shm.untouched():
            self._kill()
            raise PolicyFailed("the policy process wrote to the shared buffer while not asked")
        if shm.post(data):
            self._send(channel.WAKE_BYTES, self._deadline, WRITING)

    def _control(self, frame: bytes, deadline: float, doing: str) -> None:
        """Send a frame over the pipe; with the shared buffer, tell the child it is there."""
        self._send(frame, deadline, doing)
        if self._shm is not None and self._shm.post_control():
            self._send(channel.WAKE_BYTES, deadline, doing)

    def receive(self) -> np.ndarray:
        """Receive the outputs for the last :meth:`send`, checked for count and finiteness,
        and charge the time they took to the policy's inference budget: past it, the process
        is killed and :class:`~evaluator.errors.TimeBudgetExceeded` raised."""
        k, deadline = self._pending, self._deadline
        self._pending = 0
        if self._posted:
            out = self._shared_answer(k, deadline)
        else:
            out = self._pipe_answer(k, deadline)
        if not _all_finite(out):
            self._kill()
            raise PolicyFailed(f"the policy returned a non-finite value: {out.tolist()[:4]}")
        self.actions += k
        self.lifetime_actions += k
        self.inference_s += (self._answered_at or time.monotonic()) - self._sent_at
        budget = self.options.inference_budget_s
        if budget > 0 and self.inference_s > budget:
            self._kill()
            raise TimeBudgetExceeded(self.inference_s, self.actions, budget)
        return out

    def _pipe_answer(self, k: int, deadline: float) -> np.ndarray:
        """The outputs of a request sent over the pipe, read off the pipe."""
        if self._shm is not None:  # wake tokens may come first: read the header on its own
            n, buf = self._word(deadline, ACTING), b""
        else:  # one read normally brings the whole answer: the child writes it in one call
            buf = self._recv(4 + 4 * k * self.out_size, deadline, ACTING, at_least=4)
            (n,), buf = struct.unpack("<I", buf[:4]), buf[4:]
        self._check_count(n, k, buf, deadline)
        size = 4 * k * self.out_size
        if len(buf) < size:
            buf += self._recv(size - len(buf), deadline, ACTING)
        return np.frombuffer(buf, dtype=np.float32).reshape(k, self.out_size)

    def _shared_answer(self, k: int, deadline: float) -> np.ndarray:
        """The outputs of a request in the shared buffer: watched for ``spin_s``, then
        slept for on the pipe (which also brings an error frame or the child's death)."""
        shm = self._shm
        assert shm is not None
        spin_until = time.monotonic() + self.options.spin_s
        while not shm.answered():
            now = time.monotonic()
            if now < spin_until and now < deadline:
                os.sched_yield()  # the core to the child, should they share it
                continue
            try:
                while not shm.sleeping(True):  # the busy wait is over: sleep on the pipe
                    (n,) = struct.unpack("<I", self._recv(4, deadline, ACTING, spin=False))
                    if time.monotonic() > self._deadline:  # a flood of tokens is no answer
                        self._later()
                    if n != channel.WAKE_TOKEN:
                        self._check_count(n, k, b"", deadline)
                        self._kill()
                        raise PolicyFailed("the policy process wrote to its pipe out of turn")
            finally:
                if self._shm is not None:
                    shm.sleeping(False)
        n, out = shm.answer(k)
        if n == channel.ERROR_COUNT:
            self._check_count(self._word(deadline, ACTING), k, b"", deadline)
        self._check_count(n, k, b"", deadline)
        return out

    def _check_count(self, n: int, k: int, rest: bytes, deadline: float) -> None:
        """Raise :class:`PolicyFailed`, the process killed, unless the child's answer header
        ``n`` announces ``k`` outputs: an inference error frame (its message read from
        ``rest`` and the pipe) or a wrong count."""
        if n == ERROR_FRAME:
            if len(rest) < 4:
                rest += self._recv(4 - len(rest), deadline, ACTING)
            (size,) = struct.unpack("<I", rest[:4])
            size = min(size, MAX_ERROR_BYTES)
            if len(rest) < 4 + size:
                rest += self._recv(4 + size - len(rest), deadline, ACTING)
            self._kill()
            raise PolicyFailed("inference failed: "
                               + _one_line(rest[4:4 + size].decode("utf-8", "replace")))
        if n != k:
            self._kill()
            raise PolicyFailed(f"the policy process answered {n} actions for {k} observations")

    def _wake_only(self) -> bool:
        """With the pipe readable while a shared-buffer answer is awaited: whether it held
        one wake token and the answer is still not there. Anything else read is kept for
        :meth:`receive`, which then reads what the child sent."""
        try:
            word = os.read(self._rfd, 4)
        except BlockingIOError:
            return self._shm is not None and not self._shm.answered()
        if word == channel.WAKE_BYTES and self._shm is not None:
            return not self._shm.answered()
        self._stash += word
        return False

    def _word(self, deadline: float, doing: str) -> int:
        """The next frame header on the child's pipe; past wake tokens when the shared buffer
        is in use (on the pipes alone, every word is a header)."""
        while True:
            (n,) = struct.unpack("<I", self._recv(4, deadline, doing))
            if doing == ACTING:
                deadline = self._deadline  # a starved policy's may have moved (_later)
            if self._shm is None or n != channel.WAKE_TOKEN:
                return int(n)
            if time.monotonic() > deadline:  # a flood of tokens is no answer
                deadline = self._overdue(deadline, doing)

    def _send(self, data: bytes, deadline: float, doing: str) -> None:
        """Write all of ``data`` by ``deadline``: a child that stops reading is timed out."""
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(self._wfd, view):]
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._wpoll.poll(left * 1000.0):
                        self._kill()
                        raise PolicyFailed(f"timed out {doing}: the policy process stopped "
                                           f"reading (budget {self._budget_ms(doing):.0f} "
                                           "ms)") from None
        except BrokenPipeError as err:
            raise PolicyFailed(self._death(doing)) from err

    def _budget_ms(self, doing: str) -> float:
        opts = self.options
        return 1000.0 * (opts.load_timeout_s if doing in (LOADING, RESETTING)
                         else opts.action_timeout_s)

    def _recv(self, n: int, deadline: float, doing: str, at_least: int | None = None,
              spin: bool = True) -> bytes:
        """Read up to ``n`` bytes, returning once ``at_least`` (default all ``n``) arrived;
        with ``spin``, the pipe is watched for ``spin_s`` before the process sleeps."""
        buf, self._stash = self._stash[:n], self._stash[n:]
        want = n if at_least is None else at_least
        spin_until = time.monotonic() + (self.options.spin_s if spin else 0.0)
        while len(buf) < want:
            try:  # a short busy wait first: the answer is usually microseconds away
                chunk = os.read(self._rfd, n - len(buf))
            except BlockingIOError:
                now = time.monotonic()
                if now < spin_until and now < deadline:
                    continue
                left = deadline - now
                if left > 0:
                    if doing == ACTING:
                        self._mark_cpu()
                    if self._poll.poll(left * 1000.0):
                        continue
                deadline = self._overdue(deadline, doing)
                continue
            if not chunk:
                raise PolicyFailed(self._death(doing))
            buf += chunk
        return buf

    def _overdue(self, deadline: float, doing: str) -> float:
        """``deadline`` passed while ``doing`` something with no answer: the deadline to wait
        for now (a starved policy's action, :meth:`_later`), else the child is killed and
        :class:`PolicyFailed` raised."""
        if doing != ACTING:
            raise self._timed_out(doing)
        self._later()
        return max(deadline, self._deadline)

    def _later(self) -> None:
        """The pending request's deadline passed with no answer: if the child has had less
        CPU time on it than its deadline (the machine kept it waiting for a core), move the
        deadline to when it could have had the rest, but not past :data:`STARVED_WAIT_FACTOR`
        times the deadline from the request; else (it computed that long, stayed silent that
        long, or its CPU time cannot be read) kill it and raise :class:`PolicyFailed`.

        The CPU time before the parent first slept on the request is not read (that would
        cost every fast answer a read of ``/proc``): it is taken to be all the wall-clock
        time until then, a fraction of a millisecond when the machine is not busy."""
        budget = self._action_budget_s
        cap = self._sent_at + budget * STARVED_WAIT_FACTOR
        now = time.monotonic()
        self._mark_cpu()
        mark = self._cpu_mark
        cpu = self._child_cpu()
        if mark is None or mark[1] is None or cpu is None or now >= cap:
            raise self._timed_out(ACTING)
        used = (mark[0] - self._sent_at) + (cpu - mark[1])
        if used >= budget:
            raise self._timed_out(ACTING)
        self._deadline = min(cap, now + max(budget - used, MIN_STARVED_WAIT_S))

    def _mark_cpu(self) -> None:
        """Note the child's CPU time now, unless it was noted for the pending request."""
        if self._cpu_mark is None:
            self._cpu_mark = (time.monotonic(), self._child_cpu())

    def _child_cpu(self) -> float | None:
        """The CPU time the policy's own process has had, seconds (its main thread, which runs
        the inference: one thread), or None when it cannot be read.

        Its ``/proc/<pid>/schedstat`` is opened once and read again from the start each time
        (a twelfth of the cost of opening it per read); the descriptor stays bound to that
        process, so a later process given the same number is never read instead."""
        if not self._child_pid:
            return None
        try:
            if self._schedstat_fd is None:
                self._schedstat_fd = os.open(f"/proc/{self._child_pid}/schedstat",
                                             os.O_RDONLY)
            return int(os.pread(self._schedstat_fd, 128, 0).split(b" ", 1)[0]) / 1e9
        except (OSError, ValueError):
            return None

    def _close_schedstat(self) -> None:
        fd, self._schedstat_fd = self._schedstat_fd, None
        if fd is not None:
            os.close(fd)

    def _timed_out(self, doing: str) -> PolicyFailed:
        """Kill the child that missed its deadline ``doing`` something; the error to raise."""
        self._kill()
        return PolicyFailed(f"timed out {doing} (budget {self._budget_ms(doing):.0f} ms)")

    def _death(self, doing: str) -> str:
        proc = self._proc
        try:
            code = proc.wait(timeout=2) if proc is not None else None
        except subprocess.TimeoutExpired:
            code = None
        self._kill()
        if isinstance(proc, ForkedChild) and proc.lost:
            return f"the policy process died while {doing} (its fork server had ended)"
        if code is not None and self._bwrap_exit and code > EXIT_SIGNAL_BASE:
            code = EXIT_SIGNAL_BASE - code  # bubblewrap passes a signal death on as a status
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:  # a real-time signal has no name
                name = f"signal {-code}"
            why = {"SIGXCPU": "its CPU-time limit", "SIGKILL": "a kill",
                   "SIGSEGV": "a crash",
                   "SIGSYS": "a system call outside the sandbox's allow-list; the kernel "
                             "log names it"}.get(name, name)
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


def await_answers(procs: Sequence[PolicyProcess]) -> None:
    """Wait for the answers of policies asked at once, noting when each one's arrives.

    The parent reads answers one policy after the other; without this, a policy whose answer
    waited while the parent read a slower one's would be charged that wait. Answers in a
    shared buffer are watched for the shortest ``spin_s`` of those asked, then every child's
    pipe is slept on (for its wake token, an error frame or its death). It returns when
    every policy has answered or the earliest deadline has passed;
    :meth:`PolicyProcess.receive` then reads each answer (and enforces the deadlines).
    """
    waiting = {p._rfd: p for p in procs if p._pending and p._answered_at is None}
    shared = [p for p in waiting.values() if p._posted]
    if shared:
        spin_until = time.monotonic() + min(p.options.spin_s for p in shared)
        while True:
            now = time.monotonic()
            for p in shared:
                if p._answered_at is None and p._shm is not None and p._shm.answered():
                    p._answered_at = now
                    del waiting[p._rfd]
            if not waiting or now >= spin_until:
                break
            os.sched_yield()
    poller = select.poll()
    for fd, p in list(waiting.items()):
        if p._posted and p._shm is not None and p._shm.sleeping(True):
            p._answered_at = time.monotonic()
            del waiting[fd]
        else:
            poller.register(fd, select.POLLIN)
    for p in waiting.values():
        p._mark_cpu()  # what a late answer's CPU time is measured from (PolicyProcess._later)
    while waiting:
        left = min(p._deadline for p in waiting.values()) - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000.0):
            proc = waiting[fd]
            if proc._posted and proc._wake_only():
                continue  # a token came before the answer was seen: keep waiting
            proc._answered_at = time.monotonic()
            poller.unregister(fd)
            del waiting[fd]
    for p in shared:
        if p._shm is not None:
            p._shm.sleeping(False)


SMALL_ANSWER = 64  # values up to which _all_finite checks in Python (numpy's call costs more)


def _all_finite(out: np.ndarray) -> bool:
    """Whether every value of ``out`` is finite (no NaN, no infinity). An answer of a few
    values is checked value by value, a few times faster than numpy's ``isfinite`` there."""
    if out.size <= SMALL_ANSWER:
        return all(map(math.isfinite, out.ravel().tolist()))
    return bool(np.isfinite(out).all())


def _one_line(text: str) -> str:
    """Text from the child (error messages quote racer-chosen names) made one printable line."""
    return "".join(ch if ch.isprintable() else " " if ch.isspace() else "?"
                   for ch in text.strip())


def _innermost(pid: int) -> int:
    """The deepest descendant of ``pid`` (the policy's Python under bubblewrap), or ``pid``."""
    for _ in range(8):  # bubblewrap puts at most two processes in between
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            return pid
        pid = int(children[0])
    return pid


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in lines)}


def _proc_limits(pid: int) -> dict[str, float]:
    """Hard limits by name (``Max open files``); ``unlimited`` is infinity."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, values = line[:26].strip(), line[26:].split()
        if len(values) >= 2:
            out[name] = float("inf") if values[1] == "unlimited" else float(values[1])
    return out


def _in_namespaces(pid: int, status: dict[str, str]) -> bool:
    """Whether ``pid`` is in a PID namespace and a network namespace of its own."""
    if len(status.get("NSpid", "").split()) < 2:
        return False
    try:
        return os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    except OSError:  # not ours to look at: a nested PID namespace is what is seen
        return True


def _user(status: dict[str, str]) -> str | bool:
    """``nobody`` or ``unprivileged`` when no uid of the child is root, else False."""
    uids = [int(u) for u in status.get("Uid", "0").split()]
    if not uids or 0 in uids:
        return False
    return "nobody" if set(uids) == {NOBODY} else "unprivileged"
