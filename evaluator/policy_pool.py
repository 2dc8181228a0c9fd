"""Warm policy processes: a small pool of sandboxed children one worker keeps across its jobs.

Starting a policy process (spawn, sandbox lockdown, model load) costs far more than a whole
short evaluation: a round robin of head-to-head heats would spend most of its time starting
processes. A :class:`PolicyPool`, owned by one long-lived process (a league worker, for its
lifetime), keeps them: :meth:`PolicyPool.acquire` returns an idle process of the same model
(by sha256) started under the same sandbox limits, else starts one; :meth:`PolicyPool.release`
gives it back after the evaluation. :func:`evaluator.race.run_race` takes its processes from a
pool when it is given one, so a model's time trials and every heat of a round robin reuse its
process. Without a pool (``paddock evaluate`` at home) each evaluation starts its own.

**New processes are forked.** A pool starts a fork server (:mod:`evaluator.forkserver`) with
its first new process, and every later new process (a model it has not raced yet, or one
recycled) is forked from it with the imports already done: 0.006 s instead of 0.1 s of
wall-clock time and 0.17 s of CPU, which dominated a league worker's time trials of new
models. The server is closed with the pool and when the sandbox settings change; a dead one
is replaced, and so is one that may fork no more (a fork failed, a child crashed, or it
forked 500 children or served an hour: every child is a copy of it, down to its stack
canary and address layout), which is closed once its last child has ended. One that cannot
start, or whose children would run without seccomp, leaves the pool starting processes the
ordinary way, as does ``SandboxOptions(fork_server=False)`` (``PADDOCK_SANDBOX_FORK=0``
for a worker).

**The same result as a fresh process.** A reused process is reset first
(:meth:`~evaluator.sandbox.PolicyProcess.reset`): the per-evaluation figures (actions,
inference time against the budget, deadlines) start from zero under this evaluation's options,
and the child recreates its zeroed input and output buffers and runs the same warm-up
inference a fresh child runs. What it keeps is the loaded model, and an onnxruntime session
holds no state between calls: the validator admits exactly one input, the observation, so no
model carries a recurrent state from one call to the next (a recurrent layer starts from its
default state on every call). The result JSON of an evaluation is bit for bit what a fresh
process gives, whatever ran in the pool before (``tests/evaluator/test_policy_pool.py``).

**The key** is the model's sha256 and signature, and the options that shape the child: its
resource limits, bubblewrap, strictness, its busy wait, its channel and load budget. The
options the parent applies per evaluation (the action deadline, the inference budget, the
parent's busy wait, the wall-clock limit) are set anew on every reuse, so a model's time
trials and heats share its process. Once the child-shaping options change (the operator
changed the sandbox settings), every idle process is closed.

**Recycling.** A process is closed, not kept, after any error of its evaluation (a failed
or retired car, a budget overrun, an aborted or crashed race), after ``max_actions`` answers
over its life, when its address space is past half its limit, or when too little of its CPU
time limit is left for another evaluation (:func:`evaluator.sandbox.evaluation_cpu_s`). Idle
processes are bounded by count (``max_processes``, least recently used closed first) and by
their summed resident memory (``max_rss_bytes``, from ``/proc/<pid>/status``). A pool is used
by one thread.
"""

from __future__ import annotations

import dataclasses
import logging
from types import TracebackType
from typing import Any

from evaluator.errors import PolicyFailed
from evaluator.forkserver import ForkServer
from evaluator.sandbox import PolicyProcess, SandboxOptions, start_fork_server
from evaluator.validate import ValidatedPolicy

log = logging.getLogger(__name__)

MAX_PROCESSES = 4  #: idle processes a pool keeps at most
MAX_RSS_BYTES = 512 << 20  #: summed resident memory of the idle processes at most
MAX_ACTIONS = 200_000  #: answers over a process's life after which it is recycled
ADDRESS_SPACE_SHARE = 0.5  #: a process past this share of its address-space limit is recycled


def child_options(options: SandboxOptions) -> SandboxOptions:
    """``options`` without what the parent applies per evaluation (deadline, budgets, its own
    busy wait): what shapes a child for its whole life."""
    return dataclasses.replace(options, action_timeout_s=0.0, spin_s=0.0,
                               evaluation_timeout_s=0.0, inference_budget_s=0.0)


def pool_key(policy: ValidatedPolicy, options: SandboxOptions) -> tuple[Any, ...]:
    """What a warm process must match to serve an evaluation: the model and its signature,
    and the options that shaped the child (:func:`child_options`)."""
    return (policy.sha256, policy.input_name, tuple(policy.input_shape), policy.output_name,
            tuple(policy.output_shape), policy.output_size, child_options(options))


class PolicyPool:
    """Idle policy processes of one worker, least recently used first."""

    def __init__(self, max_processes: int = MAX_PROCESSES, max_rss_bytes: int = MAX_RSS_BYTES,
                 max_actions: int = MAX_ACTIONS) -> None:
        if max_processes < 0:
            raise ValueError(f"max_processes must be 0 or more, got {max_processes}")
        self.max_processes = max_processes
        self.max_rss_bytes = max_rss_bytes
        self.max_actions = max_actions
        self._server: ForkServer | None = None
        self._retired: list[ForkServer] = []  # fork no more; closed once their children end
        self._server_failed = False  # it could not start under the current settings
        self._idle: list[tuple[tuple[Any, ...], PolicyProcess]] = []
        self._child_options: SandboxOptions | None = None
        self.started = 0  #: processes started by :meth:`acquire`
        self.reused = 0  #: warm processes handed out by :meth:`acquire`
        self.recycled = 0  #: processes closed instead of kept (errors, bounds, limits)

    def __len__(self) -> int:
        """Idle processes held."""
        return len(self._idle)

    def acquire(self, policy: ValidatedPolicy, options: SandboxOptions, *,
                cpu_reserve_s: float = 0.0, wait: bool = True) -> PolicyProcess:
        """A process for one evaluation of ``policy`` under ``options``: a warm one, reset
        (:meth:`PolicyProcess.reset`), when one is idle, with at least ``cpu_reserve_s`` of
        its CPU-time limit left; else a new one (with ``wait`` off, it is still loading).
        Give it back with :meth:`release`."""
        child = child_options(options)
        if child != self._child_options:
            if self._child_options is not None:
                log.info("policy pool: sandbox settings changed, closing %d idle process(es)",
                         len(self._idle))
            self.close()
            self._server_failed = False
            self._child_options = child
        key = pool_key(policy, options)
        for i in range(len(self._idle) - 1, -1, -1):
            held, proc = self._idle[i]
            if held != key:
                continue
            del self._idle[i]
            cpu_s = proc.usage()[0]
            if cpu_s + cpu_reserve_s > options.cpu_seconds:
                self._recycle(proc, f"{cpu_s:.0f} s of its CPU-time limit used")
                continue
            try:
                proc.reset(policy, options)
            except PolicyFailed as err:
                self._recycle(proc, f"its reset failed: {err.reason}")
                continue
            self.reused += 1
            return proc
        proc = PolicyProcess(policy, options, wait=wait, fork_server=self._fork_server(child))
        self.started += 1
        return proc

    def _fork_server(self, options: SandboxOptions) -> ForkServer | None:
        """The fork server to fork a new process from, another one started when there is
        none or it may fork no more (retired: a failed fork or a crashed child, or past its
        forks or its age, :attr:`ForkServer.usable`); None when the pool does not fork or no
        server can start under these settings. A retired server is closed once its last
        child has ended (its children die with it)."""
        for old in [s for s in self._retired if s.idle()]:
            self._retired.remove(old)
            old.close()
        if not options.fork_server or self._server_failed:
            return None
        if self._server is not None and self._server.usable:
            return self._server
        if self._server is not None:
            if self._server.alive:
                self._retired.append(self._server)
            else:
                log.warning("policy pool: the fork server died; starting another")
                self._server.close()
            self._server = None
        try:
            self._server = start_fork_server(options)
        except PolicyFailed as err:
            log.warning("policy pool: %s; policy processes start on their own", err.reason)
            self._server_failed = True
        return self._server

    def release(self, proc: PolicyProcess, *, healthy: bool = True) -> None:
        """Take ``proc`` back after its evaluation: kept idle when ``healthy`` (the
        evaluation ended without an error of any kind) and within every bound, else closed."""
        why = self._unfit(proc, healthy)
        if why:
            self._recycle(proc, why)
            return
        self._idle.append((pool_key(proc.policy, proc.options), proc))
        self._trim()

    def _unfit(self, proc: PolicyProcess, healthy: bool) -> str:
        """Why ``proc`` must not be kept ("" when it may)."""
        if not healthy:
            return "its evaluation ended with an error"
        if not proc.alive:
            return "it is not running"
        if self.max_processes == 0:
            return "the pool keeps no processes"
        if proc.lifetime_actions >= self.max_actions:
            return f"it answered {proc.lifetime_actions} actions"
        if proc.usage()[2] > ADDRESS_SPACE_SHARE * proc.options.memory_bytes:
            return "its address space is past half its limit"
        return ""

    def _trim(self) -> None:
        """Close the least recently used idle processes until both bounds hold."""
        while len(self._idle) > self.max_processes:
            self._recycle(self._idle.pop(0)[1], "the pool is full")
        rss = [proc.usage()[1] for _, proc in self._idle]
        while self._idle and sum(rss) > self.max_rss_bytes:
            rss.pop(0)
            self._recycle(self._idle.pop(0)[1], "the pool's memory bound is reached")

    def _recycle(self, proc: PolicyProcess, why: str) -> None:
        log.debug("policy pool: closing the process of %s: %s", proc.policy.sha256[:12], why)
        self.recycled += 1
        proc.close()

    def close(self) -> None:
        """Close every idle process and the fork server (the pool may be used again)."""
        idle, self._idle = self._idle, []
        for _, proc in idle:
            proc.close()
        servers = self._retired + ([self._server] if self._server is not None else [])
        self._server, self._retired = None, []
        for server in servers:
            server.close()

    def __enter__(self) -> PolicyPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
