"""The sandboxed side of a policy process (run as a script, never imported by the parent).

Started by :mod:`evaluator.sandbox` as ``python -I -B _policy_child.py`` with a clean
environment, cwd ``/`` and nothing but three pipes (and, for the shared channel, the one
descriptor of its buffer, mapped before the lockdown). It imports onnxruntime first, then locks
itself down (resource limits, an unprivileged user, no new privileges, Landlock with no
file-system or TCP access, a seccomp allow-list: no sockets, processes, exec, files or
signals to others), reports which layers took effect, and only then reads the untrusted model
bytes from stdin. From there it answers observation frames with action frames until stdin
closes. It imports nothing from the evaluator package, so it stays small and fast to start.

Protocol (little-endian): parent sends ``u32 config_len, config JSON, u32 model_len, model``;
child answers ``u32 len, report JSON`` (the layers it applied, written before the model is
read) and, once the model is loaded, ``u32 len, hello JSON``. Then per request the parent
sends ``u32 k`` and ``k`` observations (float32); the child answers ``u32 k`` and ``k``
outputs (float32), or ``u32 0xFFFFFFFF, u32 len, message`` when inference failed.

With a shared buffer (the configuration's ``shared``: a descriptor and the offsets of
:mod:`evaluator.channel`'s layout), the child maps it before it locks itself down and says
``"channel": "shared"`` in its report. Requests then come in the buffer, numbered: the child
watches the request number for ``spin_s``, then sleeps on stdin until a wake token
(``u32 0xFFFFFFFD``) or a frame arrives; it writes the outputs, the count and the number
back, and a wake token on stdout when the parent sleeps. A request counted ``0xFFFFFFFF``
means a frame waits on stdin (a reset, or a batch larger than the buffer, answered on stdout
as above); an inference error is written on stdout as above, its count ``0xFFFFFFFF``.

Run as ``_policy_child.py --fork-server FD`` it is a fork server (:mod:`evaluator.forkserver`):
it does its imports once, then forks a child per request on the socket ``FD``; the child puts
the pipes and buffer it was handed at descriptors 0, 1, 2 (and the buffer's number), closes
every other one and goes on as a started child does from :func:`main` (nothing above has read
a job's model or an observation). See :func:`serve_forks` for the messages.

A warm process (:mod:`evaluator.policy_pool`) serves several evaluations of the same model.
Between them the parent sends ``u32 0xFFFFFFFE`` (reset): the child drops its input and output
buffers and binds new zeroed ones, runs the same warm-up inference a fresh child runs, and
answers ``u32 0xFFFFFFFE``. What is left from the previous evaluation is the loaded model
alone: a policy's inference session holds no state between calls (the validator admits one
input, the observation, so a recurrent network starts from its default state on every call).
"""

import ctypes
import fcntl
import gc
import json
import mmap
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnxruntime as ort

ERROR_FRAME = 0xFFFFFFFF
RESET_FRAME = 0xFFFFFFFE  # between evaluations: start the next one clean
WAKE_TOKEN = 0xFFFFFFFD  # shared channel: "look at the buffer", on either pipe
CONTROL = 0xFFFFFFFF  # shared channel: REQ_COUNT of a request whose frame is on stdin
NOBODY = 65534  # uid and gid of the unprivileged user
PR_SET_NO_NEW_PRIVS = 38
LANDLOCK_CREATE_RULESET, LANDLOCK_RESTRICT_SELF = 444, 446  # same number on every arch
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_FS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}  # ABI -> number of fs access bits
CLONE_THREAD = 0x00010000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE, SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 1, 4, 7
EPERM, ENOSYS = 1, 38
SECCOMP_LIBRARIES = ("libseccomp.so.2", "libseccomp.so")
# The seccomp filter is an allow-list: what the child was measured to call once locked down
# (strace over races of the shipped bots, an inference error, a load error and a clean exit:
# read, write, pselect6, sched_yield, brk, mmap, munmap, futex, newfstatat, stat, rt_sigaction,
# exit_group, ioctl FIONBIO/TCGETS) and the calls of the same kind a bigger model or another C
# library may make (memory, threads, clocks, its own ids and limits, signals to itself). A
# call on neither list kills the child with SIGSYS, which the parent reports as a call outside
# the allow-list.
ALLOWED_SYSCALLS = (
    "read", "write", "readv", "writev", "pread64", "pwrite64", "fsync", "fdatasync", "close",
    "fstat", "stat", "lstat", "newfstatat", "statx", "lseek", "fcntl", "dup", "pselect6",
    "select", "poll", "ppoll", "sched_yield", "brk", "mmap", "munmap", "mremap", "mprotect",
    "madvise", "mincore", "futex", "set_robust_list", "rseq", "membarrier",
    "sched_getaffinity", "getcpu", "getrandom", "clock_gettime", "clock_getres",
    "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getpid", "getppid", "gettid",
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "getrusage", "uname", "sysinfo", "getcwd", "rt_sigaction", "rt_sigprocmask",
    "rt_sigreturn", "rt_sigpending", "sigaltstack", "arch_prctl", "restart_syscall", "exit",
    "exit_group",
)
# ioctl requests allowed on the child's pipes: FIONBIO, TCGETS, FIOCLEX, FIONCLEX, TIOCGWINSZ
ALLOWED_IOCTLS = (0x5421, 0x5401, 0x5451, 0x5450, 0x5413)
ALLOWED_PRCTLS = (15, 16)  # PR_SET_NAME, PR_GET_NAME: threads may name themselves
# Refused with EPERM (a clean error in Python) rather than a kill: what a compromised child
# would try first, and what Python itself may attempt on an error path (opening a file).
DENIED_SYSCALLS = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto",
    "sendmsg", "recvfrom", "recvmsg", "execve", "execveat", "fork", "vfork", "ptrace",
    "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
    "unshare", "setns", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at", "userfaultfd", "io_uring_setup", "personality",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "memfd_create", "mknod", "mknodat", "quotactl", "swapon", "swapoff", "reboot", "acct",
    "settimeofday", "clock_settime", "adjtimex", "iopl", "ioperm", "syslog",
    # signals and handles to other processes (a neighbour of the same user is in reach
    # without bubblewrap's PID namespace or Landlock's signal scope, kernel 6.12 and later)
    "kill", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
    "pidfd_send_signal", "pidfd_getfd", "process_madvise", "process_mrelease", "kcmp",
    "get_robust_list", "sched_setaffinity", "sched_setparam", "sched_setscheduler",
    "sched_setattr", "setpriority", "ioprio_set", "migrate_pages", "move_pages",
    # the file system (Landlock refuses these too, where the kernel has it)
    "open", "openat", "openat2", "creat", "access", "faccessat", "faccessat2", "readlink",
    "readlinkat", "getdents64", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod",
    "fchmodat", "chown", "fchown", "lchown", "fchownat", "truncate", "ftruncate", "statfs",
    "fstatfs", "chdir", "fchdir", "utimensat", "pipe", "pipe2", "inotify_init1",
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_pending = bytearray()  # bytes read from stdin but not consumed yet
READ_CHUNK = 1 << 16  # a request is read whole in one call when the pipe holds it
MAX_SPIN_S = 0.01  # the longest busy wait the parent may ask for, seconds
_spin_s = 0.0  # how long an empty stdin is polled before sleeping (set from the config)


def _read_exact(n: int) -> bytes:
    """The next ``n`` bytes of stdin (one read usually brings a whole request).

    Once serving, stdin is non-blocking and an empty pipe is polled for a short while before
    the process sleeps: waking a sleeping process costs tens of microseconds on an idle (or
    virtual) CPU, several times the inference itself, and the next request is usually only
    a simulator step away.
    """
    spin_until = 0.0
    while len(_pending) < n:
        try:
            chunk = os.read(0, max(READ_CHUNK, n - len(_pending)))
        except BlockingIOError:
            now = time.perf_counter()
            if not spin_until:
                spin_until = now + _spin_s
            if now < spin_until:
                os.sched_yield()
            else:
                select.select([0], [], [])
            continue
        if not chunk:
            raise EOFError
        _pending.extend(chunk)
    out = bytes(_pending[:n])
    del _pending[:n]
    return out


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def _frame() -> bytes:
    (n,) = struct.unpack("<I", _read_exact(4))
    return _read_exact(n)


def _limits(cfg: dict[str, Any]) -> bool:
    mem = int(cfg["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = int(cfg["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (cfg["open_files"], cfg["open_files"]))
    return True


def _drop_user() -> str:
    """As root, become nobody (RLIMIT_NPROC means nothing to root)."""
    if os.getuid() != 0 and os.geteuid() != 0:
        return "unprivileged"
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise OSError("could not drop root")
    return "nobody"


def _no_new_privs(libc: ctypes.CDLL) -> bool:
    return bool(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)


def _landlock(libc: ctypes.CDLL) -> int | bool:
    """Forbid every file-system access and TCP bind/connect from here on."""
    abi = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return False
    fs_bits = LANDLOCK_FS_BITS.get(abi, 16)
    attr = [(1 << fs_bits) - 1]
    if abi >= 4:
        attr.append(0b11)  # bind and connect TCP
    if abi >= 6:
        attr.append(0b11)  # abstract unix sockets and signals outside the sandbox
    buf = struct.pack(f"<{len(attr)}Q", *attr)
    cbuf = ctypes.create_string_buffer(buf, len(buf))
    fd = libc.syscall(LANDLOCK_CREATE_RULESET, cbuf, ctypes.c_size_t(len(buf)), 0)
    if fd < 0:
        return False
    ok = libc.syscall(LANDLOCK_RESTRICT_SELF, fd, 0) == 0
    os.close(fd)
    return abi if ok else False


def _load_seccomp() -> ctypes.CDLL | None:
    """Open libseccomp now: once Landlock is on, no library can be opened."""
    for name in SECCOMP_LIBRARIES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _seccomp(lib: ctypes.CDLL | None) -> bool:
    """Load the allow-list filter; False when libseccomp or the kernel cannot."""
    if lib is None:
        return False
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_KILL_PROCESS)
    if not ctx:
        return False
    try:
        return all(_rules(lib, ctx)) and lib.seccomp_load(ctx) == 0
    finally:
        lib.seccomp_release(ctx)


def _rules(lib: ctypes.CDLL, ctx: int) -> Iterator[bool]:
    """Add every rule of the filter, yielding whether each was accepted."""

    def add(action: int, call: str, *cmps: tuple[int, int, int, int]) -> bool:
        nr = lib.seccomp_syscall_resolve_name(call.encode())
        if nr < 0:
            return True  # not on this architecture
        arr = (_ArgCmp * max(len(cmps), 1))(*(_ArgCmp(*c) for c in cmps))
        return bool(lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr) == 0)

    refuse = 0x00050000 | EPERM
    for call in ALLOWED_SYSCALLS:
        yield add(SCMP_ACT_ALLOW, call)
    for call in DENIED_SYSCALLS:
        yield add(refuse, call)
    me = os.getpid()  # as this process sees it (inside bubblewrap's PID namespace, too)
    # Signals to itself (abort, raise) but to no other process.
    yield add(SCMP_ACT_ALLOW, "tgkill", (0, SCMP_CMP_EQ, me, 0))
    yield add(refuse, "tgkill", (0, SCMP_CMP_NE, me, 0))
    # Its own resource limits, read or lowered, not another process's.
    yield add(SCMP_ACT_ALLOW, "prlimit64", (0, SCMP_CMP_EQ, 0, 0))
    yield add(refuse, "prlimit64", (0, SCMP_CMP_NE, 0, 0))
    for request in ALLOWED_IOCTLS:
        yield add(SCMP_ACT_ALLOW, "ioctl", (1, SCMP_CMP_EQ, request, 0))
    for option in ALLOWED_PRCTLS:
        yield add(SCMP_ACT_ALLOW, "prctl", (0, SCMP_CMP_EQ, option, 0))
    # Threads, not processes: clone needs CLONE_THREAD; clone3 reports "not implemented" so
    # the C library falls back to clone.
    yield add(SCMP_ACT_ALLOW, "clone", (0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
    yield add(refuse, "clone", (0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
    yield add(0x00050000 | ENOSYS, "clone3")


def _lock_down(cfg: dict[str, Any]) -> dict[str, Any]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    seccomp = _load_seccomp()
    layers: dict[str, Any] = {"rlimits": _limits(cfg)}
    layers["user"] = _drop_user()
    if _fork_server_pid:  # changing the user cleared the death signal: set it again
        _die_with(_fork_server_pid)
    layers["no_new_privs"] = _no_new_privs(libc)
    layers["landlock"] = _landlock(libc) if layers["no_new_privs"] else False
    layers["seccomp"] = _seccomp(seccomp) if layers["no_new_privs"] else False
    return layers


def _session(model: bytes) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.log_severity_level = 3
    opts.enable_mem_pattern = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def _send_frame(doc: dict[str, Any]) -> None:
    data = json.dumps(doc).encode()
    _write(struct.pack("<I", len(data)) + data)


def main() -> None:
    cfg = json.loads(_frame())
    shared = _Shared(cfg["shared"]) if cfg.get("shared") else None  # mapped before lockdown
    # The report goes out before a byte of the model is parsed, while only this file's code
    # has run: the parent believes nothing the child says after that.
    _send_frame({"layers": _lock_down(cfg), "channel": "shared" if shared else "pipe"})
    model = _frame()
    hello: dict[str, Any] = {"onnxruntime": ort.__version__}
    try:
        session = _session(model)
    except Exception as err:  # noqa: BLE001 - any load failure is reported, not raised
        hello["error"] = f"{type(err).__name__}: {err}"[:500]
        _send_frame(hello)
        return
    del model
    _send_frame(hello)
    global _spin_s
    _spin_s = min(max(float(cfg.get("spin_s", 0.0)), 0.0), MAX_SPIN_S)
    os.set_blocking(0, False)
    if shared is None:
        _serve_pipe(session, cfg)
    else:
        _serve_shared(session, cfg, shared)


def _serve_pipe(session: Any, cfg: dict[str, Any]) -> None:
    """Answer every request over the pipes until stdin closes."""
    infer = _inference(session, cfg)
    while True:
        try:
            (k,) = struct.unpack("<I", _read_exact(4))
        except EOFError:
            return
        if k == 0:
            return
        infer = _pipe_request(k, session, cfg, infer)


def _pipe_request(k: int, session: Any, cfg: dict[str, Any],
                  infer: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Serve one request read off stdin, its header ``k`` already read (a reset, or ``k``
    observations); returns the inference function from here on."""
    if k == RESET_FRAME:  # a new evaluation: nothing of the last one is kept
        infer = _inference(session, cfg)
        _write(struct.pack("<I", RESET_FRAME))
        return infer
    obs_dim, out_size = int(cfg["obs_dim"]), int(cfg["output_size"])
    obs = np.frombuffer(_read_exact(4 * obs_dim * k), dtype=np.float32).reshape(k, obs_dim)
    out = np.empty((k, out_size), dtype=np.float32)
    if _run(infer, obs, out, k):
        _write(struct.pack("<I", k) + out.tobytes())
    return infer


def _run(infer: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, out: np.ndarray,
         k: int) -> bool:
    """Outputs for the first ``k`` rows of ``obs`` into ``out``, one row at a time; False
    (the error frame written to stdout) when inference failed."""
    try:
        for i in range(k):
            out[i] = infer(obs[i])
    except Exception as err:  # noqa: BLE001 - reported to the parent as a policy error
        msg = f"{type(err).__name__}: {err}"[:500].encode()
        _write(struct.pack("<II", ERROR_FRAME, len(msg)) + msg)
        return False
    return True


# ---------------------------------------------------------------------------- shared channel
# The parent's evaluator.channel describes the buffer; its offsets arrive in the
# configuration. This side repeats only the token values, the fence and the waiting.
_FENCE = threading.Lock()


def _fence() -> None:
    """A full memory fence (a lock's locked read-modify-write instructions, on x86-64)."""
    _FENCE.acquire()
    _FENCE.release()


class _Shared:
    """The child's view of the shared buffer the parent handed over at spawn."""

    def __init__(self, layout: dict[str, Any]) -> None:
        fd, size, rows = int(layout["fd"]), int(layout["size"]), int(layout["rows"])
        self.map = mmap.mmap(fd, size)  # keeps its own duplicate of the descriptor
        os.close(fd)
        self.rows = rows
        word = ctypes.c_uint32.from_buffer
        self.req_seq, self.req_count = word(self.map, layout["req_seq"]), word(
            self.map, layout["req_count"])
        self.child_waiting = word(self.map, layout["child_waiting"])
        self.ans_seq, self.ans_count = word(self.map, layout["ans_seq"]), word(
            self.map, layout["ans_count"])
        self.parent_waiting = word(self.map, layout["parent_waiting"])
        self.layout = layout

    def views(self, obs_dim: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The observation and output rows, as arrays over the buffer."""
        rows, at = self.rows, self.layout
        obs = np.frombuffer(self.map, np.float32, rows * obs_dim, int(at["obs_at"]))
        out = np.frombuffer(self.map, np.float32, rows * out_size, int(at["out_at"]))
        return obs.reshape(rows, obs_dim), out.reshape(rows, out_size)

    def wait(self, last: int) -> int:
        """The number of the next request after ``last``: watched for ``_spin_s``, then
        slept for on stdin (the parent sends a token when it sees this side waiting)."""
        spin_until = time.perf_counter() + _spin_s
        while self.req_seq.value == last:
            if time.perf_counter() < spin_until:
                os.sched_yield()
                continue
            self.child_waiting.value = 1
            _fence()
            if self.req_seq.value == last:
                select.select([0], [], [])
                _drain_tokens()
            self.child_waiting.value = 0
        return int(self.req_seq.value)

    def answer(self, seq: int, count: int) -> None:
        """Publish the answer to request ``seq`` (its outputs already written) and wake the
        parent when it sleeps."""
        self.ans_count.value = count
        self.ans_seq.value = seq
        _fence()
        if self.parent_waiting.value:
            _write(struct.pack("<I", WAKE_TOKEN))


def _drain_tokens() -> None:
    """Read what stdin holds and drop the wake tokens at its head (EOFError once closed)."""
    try:
        chunk = os.read(0, READ_CHUNK)
    except BlockingIOError:
        return
    if not chunk:
        raise EOFError
    _pending.extend(chunk)
    while _pending[:4] == _WAKE_BYTES:
        del _pending[:4]


def _next_word() -> int:
    """The next frame header on stdin, past any wake tokens."""
    while True:
        (word,) = struct.unpack("<I", _read_exact(4))
        if word != WAKE_TOKEN:
            return int(word)


def _serve_shared(session: Any, cfg: dict[str, Any], shared: _Shared) -> None:
    """Answer requests through the shared buffer (control frames still come on stdin)
    until stdin closes."""
    infer = _inference(session, cfg)
    obs, out = shared.views(int(cfg["obs_dim"]), int(cfg["output_size"]))
    last = 0
    while True:
        try:
            last = shared.wait(last)
        except EOFError:
            return
        k = int(shared.req_count.value)
        if k == CONTROL:
            try:
                infer = _pipe_request(_next_word(), session, cfg, infer)
            except EOFError:
                return
            continue
        k = min(k, shared.rows)
        if _run(infer, obs, out, k):
            shared.answer(last, k)
        else:
            shared.answer(last, ERROR_FRAME)


_WAKE_BYTES = struct.pack("<I", WAKE_TOKEN)


def _inference(session: Any, cfg: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """A function running one observation, through bound buffers (half the overhead of run)."""
    in_name, out_name = cfg["input_name"], cfg["output_name"]
    in_shape, out_shape = tuple(cfg["input_shape"]), tuple(cfg["output_shape"])
    x = np.zeros(in_shape, dtype=np.float32)
    y = np.zeros(out_shape, dtype=np.float32)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    try:
        binding = session.io_binding()
        binding.bind_cpu_input(in_name, x)
        binding.bind_output(out_name, "cpu", 0, np.float32, list(out_shape), y.ctypes.data)
        session.run_with_iobinding(binding)
    except Exception:  # noqa: BLE001 - fall back to the plain call
        binding = None
    if binding is not None:
        run_bound = session.run_with_iobinding

        def bound(row: np.ndarray) -> np.ndarray:
            flat_x[:] = row
            run_bound(binding)
            return flat_y

        return bound
    run = session.run

    def plain(row: np.ndarray) -> np.ndarray:
        result = np.asarray(run([out_name], {in_name: row.reshape(in_shape)})[0])
        if result.size != flat_y.size:
            raise ValueError(f"the model returned {result.size} values, expected {flat_y.size}")
        return result.reshape(-1)

    return plain

# ---------------------------------------------------------------------------- fork server
# Messages on the fork server's socket (SOCK_SEQPACKET, one message each): u32 kind, u32
# number, i32 value. The worker sends FORK with the fork's number and the child's pipe ends
# (stdin's read end, stdout's and stderr's write ends) and the shared buffer's descriptor
# attached, ``value`` the descriptor number the buffer must have in the child (0: none). The
# server answers READY once (after its imports), FAILED when it cannot fork, and EXITED (the
# fork's number, ``value`` the exit code, negative for a signal) for every child it reaps. A
# new child sends BORN with its fork's number first thing: the kernel attaches its
# credentials, so the worker reads the child's pid as seen from the worker.
FORK, READY, BORN, EXITED, FAILED = 1, 2, 3, 4, 5
MESSAGE = struct.Struct("<IIi")
PR_SET_PDEATHSIG = 1
HIGH_FD = 256  # received descriptors are moved above this before taking their places
_fork_server_pid = 0  # a forked child: its fork server's pid (0: a started child)
# A one-node ONNX model (y = Identity(x), float32 [1, 1], opset 17): the fork server loads it
# once so that onnxruntime's one-time set-up (about 2.5 ms) is done before any child forks.
WARM_UP_MODEL = (b'\x08\x08\x12\x00:B\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x04warmZ\x13'
                 b'\n\x01x\x12\x0e\n\x0c\x08\x01\x12\x08\n\x02\x08\x01\n\x02\x08\x01b\x13\n\x01y'
                 b'\x12\x0e\n\x0c\x08\x01\x12\x08\n\x02\x08\x01\n\x02\x08\x01B\x04\n\x00\x10\x11')


def serve_forks(fd: int) -> None:
    """Run as the fork server on the socket ``fd``: fork a policy process per FORK message,
    until the worker closes the socket.

    The server runs this file's code only and never reads a job's model (only its own
    one-node warm-up, :data:`WARM_UP_MODEL`); it is single-threaded (it says FAILED and stops
    otherwise, since forking a threaded process is unsafe). Each child starts as a fresh
    process would from here (:func:`main`), with its imports done."""
    sock = socket.socket(fileno=fd)
    session = _session(WARM_UP_MODEL)
    session.run(None, {"x": np.zeros((1, 1), dtype=np.float32)})
    del session
    gc.collect()  # the warm-up session is gone before any child is forked
    if len(os.listdir("/proc/self/task")) != 1:
        sock.send(MESSAGE.pack(FAILED, 0, 0))
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    me = os.getpid()
    numbers: dict[int, int] = {}  # child's pid -> its fork's number
    sock.send(MESSAGE.pack(READY, 0, 0))
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in ready:
            _drain(wake_r)
            _reap(sock, numbers)
        if sock.fileno() not in ready:
            continue
        msg, fds, _, _ = socket.recv_fds(sock, MESSAGE.size, 4)
        if len(msg) != MESSAGE.size:
            return  # the worker closed the socket: the children die with this process
        kind, number, shm_target = MESSAGE.unpack(msg)
        if kind != FORK or len(fds) != (4 if shm_target else 3):
            for f in fds:
                os.close(f)
            sock.send(MESSAGE.pack(FAILED, 0, 0))
            continue
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            _forked(sock, fds, shm_target, me, number)  # never returns
        for f in fds:
            os.close(f)
        if pid < 0:
            sock.send(MESSAGE.pack(FAILED, number, 0))
        else:
            numbers[pid] = number


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _reap(sock: socket.socket, numbers: dict[int, int]) -> None:
    """Report every child that has ended, by its fork's number."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        sock.send(MESSAGE.pack(EXITED, numbers.pop(pid, 0), code))


def _forked(sock: socket.socket, fds: list[int], shm_target: int, server: int,
            number: int) -> None:
    """The new child: a session of its own, dead with the server, its descriptors in place
    and every other one closed; then the policy process's :func:`main`. Never returns."""
    code = 1
    try:
        os.setsid()
        global _fork_server_pid
        _fork_server_pid = server
        _die_with(server)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sock.send(MESSAGE.pack(BORN, number, 0))
        _adopt(sock, fds, [0, 1, 2] + ([shm_target] if shm_target else []))
        main()
        code = 0
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback is the parent's last words
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _die_with(server: int) -> None:
    """Be killed when the fork server dies (``PR_SET_PDEATHSIG``, which the kernel clears
    when the process changes its user); exit now when it already has."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != server:
        os._exit(1)


def _adopt(sock: socket.socket, fds: list[int], targets: list[int]) -> None:
    """Put ``fds`` at the numbers ``targets`` and close every other descriptor (the server's
    socket and pipe among them)."""
    high = [fcntl.fcntl(f, fcntl.F_DUPFD, HIGH_FD) for f in fds]
    for moved, target in zip(high, targets, strict=True):
        os.dup2(moved, target)
    sock.detach()
    keep = set(targets)
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fork-server"]:
        serve_forks(int(sys.argv[2]))
        sys.exit(0)
    try:
        main()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
