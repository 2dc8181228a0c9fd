"""Policy processes forked from a fork server are what freshly started ones are: the same
layers seen from outside, the same results byte for byte, only their own descriptors, the
same deaths and reasons; a dead server is replaced and a server that cannot start leaves
processes starting the ordinary way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import evaluator.sandbox as sandbox
from evaluator import channel, policy_pool, replay
from evaluator.errors import PolicyFailed
from evaluator.forkserver import ForkedChild, ForkServer
from evaluator.observation import OBS_DIM
from evaluator.policy_pool import PolicyPool
from evaluator.race import RaceResult, run_race
from evaluator.race_settings import RaceConfig
from evaluator.sandbox import PolicyProcess, SandboxOptions, start_fork_server
from evaluator.validate import ValidatedPolicy, validate_policy
from tests.evaluator.test_sandbox_hardening import real_child_with
from tests.support.dbfixtures import policy_bytes

TRIAL = RaceConfig(track="oval", laps=1, trials=2, time_cap=60.0)
HEAT = RaceConfig(track="oval", format="head-to-head", laps=1, trials=1, time_cap=60.0)
TIMING = ("load_time_s", "inference_s", "warm")
BWRAP = [True, False]
IDS = ["bwrap", "no-bwrap"]


def follower(speed: float = 2.0, name: str = "follower") -> ValidatedPolicy:
    return validate_policy(policy_bytes(speed, name=name))


def everything(result: RaceResult) -> dict[str, Any]:
    """The whole outcome of a race but its wall-clock figures."""
    return {"result": result.to_dict(),
            "sandbox": {k: v for k, v in result.sandbox.items() if k not in TIMING},
            "replays": [replay.encode(replay.from_telemetry(tel, {"trial": i}))
                        for i, tel in enumerate(result.telemetry, start=1)]}


def options(use_bwrap: bool) -> SandboxOptions:
    if use_bwrap and not sandbox.bwrap_works():
        pytest.skip("bubblewrap is not installed or does not work here")
    return SandboxOptions(use_bwrap=use_bwrap)


def unprobed_server(opts: SandboxOptions) -> ForkServer:
    """A fork server of the child script as it is now, without the probe
    :func:`start_fork_server` makes (so a test's broken script gets a server)."""
    home = tempfile.mkdtemp(prefix="paddock-test-forks-")
    cmd, namespaces = sandbox._command(opts, home)
    return ForkServer(cmd, sandbox._clean_env(home), namespaces=namespaces, home=home)


def gone(pid: int, within_s: float = 3.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=IDS)
def test_a_forked_child_is_seen_locked_down_as_a_started_one(use_bwrap: bool) -> None:
    opts = options(use_bwrap)
    with PolicyProcess(follower(), opts) as started:
        expected = started.layers
    with start_fork_server(opts) as server, \
            PolicyProcess(follower(), opts, fork_server=server) as forked:
        assert isinstance(forked._proc, ForkedChild)
        assert forked.layers == expected
        assert forked.layers["seccomp"] is True and forked.layers["rlimits"] is True
        assert forked.layers["namespaces"] is use_bwrap


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=IDS)
def test_a_forked_child_holds_only_its_pipes_and_the_buffer(use_bwrap: bool) -> None:
    if not channel.supported():
        pytest.skip("no shared buffer on this machine")
    opts = options(use_bwrap)
    with start_fork_server(opts) as server, \
            PolicyProcess(follower(), opts, fork_server=server) as first, \
            PolicyProcess(follower(1.5, "other"), opts, fork_server=server) as second:
        for proc in (first, second):
            assert proc.channel == "shared"
            pid = proc._child_pid
            fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
            targets = [os.readlink(f"/proc/{pid}/fd/{n}") for n in fds]
            assert fds[:3] == [0, 1, 2] and len(fds) == 4, targets
            assert all(t.startswith("pipe:") for t in targets[:3]), targets
            assert "pipe:" not in targets[3] and "socket:" not in targets[3], targets
        # the two children's pipes are their own
        assert os.readlink(f"/proc/{first._child_pid}/fd/0") != \
            os.readlink(f"/proc/{second._child_pid}/fd/0")


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=IDS)
def test_races_from_a_forking_pool_are_byte_identical_to_fresh_ones(use_bwrap: bool) -> None:
    opts = options(use_bwrap)
    cars = [follower(2.0, "a"), follower(1.8, "b"), follower(1.6, "c")]
    fresh_trials = [run_race(TRIAL, [car], options=opts) for car in cars]
    fresh_heat = run_race(HEAT, cars[:2], options=opts)
    with PolicyPool(max_processes=0) as pool:  # keeps nothing: every process is forked
        trials = [run_race(TRIAL, [car], options=opts, pool=pool) for car in cars]
        heat = run_race(HEAT, cars[:2], options=opts, pool=pool)
        assert pool.started == 5 and pool.reused == 0
        assert pool._server is not None and pool._server.alive
        assert pool._server.forks == 1 + 5  # its probe, then every process: none started
    assert [everything(r) for r in trials] == [everything(r) for r in fresh_trials]
    assert everything(heat) == everything(fresh_heat)


def test_a_child_killed_from_outside_is_a_clear_policy_error() -> None:
    with start_fork_server(SandboxOptions()) as server:
        proc = PolicyProcess(follower(), SandboxOptions(action_timeout_s=1.0),
                             fork_server=server)
        with proc:
            os.kill(proc._child_pid, signal.SIGKILL)
            with pytest.raises(PolicyFailed) as info:
                for _ in range(100):
                    proc.act(np.zeros((1, OBS_DIM), dtype=np.float32))
        assert "SIGKILL" in info.value.reason, info.value.reason


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=IDS)
def test_a_call_outside_the_allow_list_kills_a_forked_child_with_the_same_reason(
        use_bwrap: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = options(use_bwrap)
    extra = ("_plain_session = _session\n\n\ndef _session(model):\n"
             "    os.getpriority(os.PRIO_PROCESS, 0)\n    return _plain_session(model)\n")
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", real_child_with(tmp_path, extra))
    reasons = []
    with unprobed_server(opts) as server:
        for server_or_none in (None, server):
            with pytest.raises(PolicyFailed) as info:
                PolicyProcess(follower(), opts, fork_server=server_or_none)
            reasons.append(info.value.reason)
    assert reasons[0] == reasons[1], reasons
    assert "SIGSYS" in reasons[1] and "allow-list" in reasons[1], reasons


def test_a_crash_before_the_lockdown_reports_the_last_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = ("def _lock_down(cfg):\n    raise RuntimeError('no lockdown here')\n")
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", real_child_with(tmp_path, extra))
    with unprobed_server(SandboxOptions()) as server:
        with pytest.raises(PolicyFailed) as info:
            PolicyProcess(follower(), SandboxOptions(), fork_server=server)
    reason = info.value.reason
    assert "exit status 1" in reason and "no lockdown here" in reason, reason


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=IDS)
def test_children_die_with_their_server_and_the_pool_starts_another(use_bwrap: bool) -> None:
    opts = options(use_bwrap)
    with PolicyPool() as pool:
        first = run_race(TRIAL, [follower()], options=opts, pool=pool)
        server = pool._server
        assert server is not None and server.alive
        (_, idle), = pool._idle
        child = idle._child_pid
        server.close()
        assert gone(child)
        again = run_race(TRIAL, [follower()], options=opts, pool=pool)  # a new process
        assert pool._server is not None and pool._server is not server
        assert pool._server.alive
    assert everything(again) == everything(first)


def test_a_server_that_cannot_start_leaves_processes_starting_on_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    os.chmod(tmp_path, 0o755)
    with monkeypatch.context() as patch:
        patch.setattr(sandbox, "CHILD_SCRIPT", broken)
        with pytest.raises(PolicyFailed, match="fork server"):
            start_fork_server(SandboxOptions())
    tries = []

    def cannot(opts: SandboxOptions) -> Any:
        tries.append(opts)
        raise PolicyFailed("the fork server could not start: refused here")

    monkeypatch.setattr(policy_pool, "start_fork_server", cannot)
    fresh = run_race(TRIAL, [follower()])
    with PolicyPool(max_processes=0) as pool:
        results = [run_race(TRIAL, [follower()], pool=pool) for _ in range(2)]
        assert pool._server is None and pool.started == 2
    assert len(tries) == 1  # tried once under these settings, not on every process
    assert all(everything(r) == everything(fresh) for r in results)


KILLED_WORKER = """
import json, sys, time
from evaluator.policy_pool import PolicyPool
from evaluator.race import run_race
from evaluator.race_settings import RaceConfig
from evaluator.sandbox import SandboxOptions, _innermost
from evaluator.validate import validate_policy
from tests.support.dbfixtures import policy_bytes

pool = PolicyPool()
run_race(RaceConfig(track="oval", laps=1, trials=1), [validate_policy(policy_bytes(2.0))],
         options=SandboxOptions(use_bwrap=sys.argv[1] == "1"), pool=pool)
(_, idle), = pool._idle
print(json.dumps([_innermost(pool._server._proc.pid), idle._child_pid, pool._server.home]),
      flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=IDS)
def test_a_killed_worker_takes_its_server_and_children_with_it(use_bwrap: bool) -> None:
    options(use_bwrap)
    root = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, "1" if use_bwrap else "0"],
                              cwd=root, stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    home = ""
    try:
        server, child, home = json.loads(worker.stdout.readline())
        assert not gone(server, 0.2) and not gone(child, 0.2)
        worker.kill()
        worker.wait()
        assert gone(server) and gone(child)
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
        if home:
            shutil.rmtree(home, ignore_errors=True)  # a killed worker cannot remove it


def test_a_server_whose_children_would_lack_seccomp_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = "def _seccomp(lib):\n    return False\n"
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", real_child_with(tmp_path, extra))
    with pytest.raises(PolicyFailed, match="without seccomp"):
        start_fork_server(SandboxOptions())


def test_a_crashed_child_retires_its_server_and_its_siblings_race_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every child is a copy of its server (stack canary, address layout): after a crash,
    which may have been a probe of that layout, the server forks no more. Its other children
    go on, and it is closed once they have ended."""
    extra = ("_plain_session = _session\n\n\ndef _session(model):\n"
             "    if b'crash' in model:\n        ctypes.string_at(0)\n"
             "    return _plain_session(model)\n")
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", real_child_with(tmp_path, extra))
    opts = SandboxOptions()
    crasher = validate_policy(policy_bytes(2.0, name="crash"))
    with PolicyPool(max_processes=0) as pool:
        sibling = pool.acquire(follower(), opts)
        server = pool._server
        assert server is not None and server.usable and isinstance(sibling._proc, ForkedChild)
        with pytest.raises(PolicyFailed, match="SIGSEGV"):
            pool.acquire(crasher, opts)
        assert not server.usable and "SIGSEGV" in server.retired
        assert server.alive and not server.idle()  # the sibling still runs
        fresh = pool.acquire(follower(1.5, "next"), opts)  # forked by another server
        assert pool._server is not None and pool._server is not server
        assert isinstance(fresh._proc, ForkedChild)
        assert sibling.act(np.zeros((1, OBS_DIM), dtype=np.float32)).shape == (1, 2)
        pool.release(sibling)  # closed: the pool keeps none
        pool.release(fresh)
        pool._fork_server(opts)
        assert not server.alive and pool._retired == []  # closed once its last child ended


def test_a_failed_fork_retires_the_server_without_harming_its_children() -> None:
    opts = SandboxOptions(action_timeout_s=1.0)
    with start_fork_server(opts) as server:
        with PolicyProcess(follower(), opts, fork_server=server) as sibling:
            r, w = os.pipe()
            os.close(r)
            os.close(w)  # a closed descriptor: the fork request cannot be sent
            with pytest.raises(PolicyFailed, match="fork server failed"):
                server.fork(r, w, w, None)
            assert server.retired and not server.usable and server.alive
            assert sibling.act(np.zeros((1, OBS_DIM), dtype=np.float32)).shape == (1, 2)
            # a process asked of a retired server starts on its own
            with PolicyProcess(follower(1.5, "b"), opts, fork_server=server) as other:
                assert not isinstance(other._proc, ForkedChild)
