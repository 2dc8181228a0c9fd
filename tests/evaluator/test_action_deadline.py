"""An action's deadline is the policy's own time: a policy kept waiting for a core by a busy
machine is not late, up to ``STARVED_WAIT_FACTOR`` times its deadline; one that is silent for
that long still fails. The machine's business is played here by stopping the policy's process
(SIGSTOP) while a request waits for it: it then has no CPU time at all."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from evaluator import channel, sandbox
from evaluator.errors import PolicyFailed
from evaluator.observation import OBS_DIM
from evaluator.sandbox import PolicyProcess, SandboxOptions
from evaluator.validate import ValidatedPolicy, load_policy_file

pytestmark = pytest.mark.skipif(not Path("/proc/self/schedstat").exists(),
                                reason="no per-process CPU time in /proc here: deadlines are "
                                       "wall-clock time alone")
BOTS = Path(sandbox.__file__).with_name("bots")
DEADLINE_S = 0.05
BASE = SandboxOptions(use_bwrap=False, action_timeout_s=DEADLINE_S)
CHANNELS = [pytest.param(False, id="pipe"),
            pytest.param(True, id="shared", marks=pytest.mark.skipif(
                not channel.supported(), reason="no shared-memory channel on this machine"))]


def ace() -> ValidatedPolicy:
    return load_policy_file(BOTS / "ace.onnx")


def observation() -> np.ndarray:
    return np.random.default_rng(1).normal(0.0, 1.0, (1, OBS_DIM)).astype(np.float32)


def stopped_for(proc: PolicyProcess, seconds: float) -> threading.Thread:
    """Stop the policy's process now and let it go on after ``seconds`` (in a thread)."""
    pid = proc._child_pid
    assert pid, "the policy's own process was not observed"
    os.kill(pid, signal.SIGSTOP)

    def resume() -> None:
        time.sleep(seconds)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:  # killed for being late meanwhile
            pass

    thread = threading.Thread(target=resume, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("shared", CHANNELS)
def test_a_policy_kept_waiting_for_a_core_is_not_late(shared: bool) -> None:
    options = dataclasses.replace(BASE, shared_memory=shared)
    with PolicyProcess(ace(), options) as proc:
        expected = proc.act(observation())
        resumed = stopped_for(proc, 2.5 * DEADLINE_S)  # past the deadline, within the wait
        t0 = time.monotonic()
        answer = proc.act(observation())
        took = time.monotonic() - t0
        resumed.join()
        assert answer.tobytes() == expected.tobytes()
        assert took > 2.0 * DEADLINE_S  # it did wait past the wall-clock deadline
        assert proc.alive and proc.actions == 2


@pytest.mark.parametrize("shared", CHANNELS)
def test_a_policy_silent_past_the_longest_wait_fails(shared: bool) -> None:
    options = dataclasses.replace(BASE, shared_memory=shared)
    longest = DEADLINE_S * sandbox.STARVED_WAIT_FACTOR
    with PolicyProcess(ace(), options) as proc:
        proc.act(observation())
        resumed = stopped_for(proc, longest + 1.0)
        t0 = time.monotonic()
        with pytest.raises(PolicyFailed) as err:
            proc.act(observation())
        took = time.monotonic() - t0
        assert err.value.reason == "timed out choosing an action (budget 50 ms)"
        assert longest * 0.9 < took < longest + 0.5
        assert not proc.alive
        resumed.join()


def test_a_policy_that_uses_its_time_is_not_given_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU time the child had on the request is what is compared with the deadline."""
    with PolicyProcess(ace(), BASE) as proc:
        proc.act(observation())
        monkeypatch.setattr(proc, "_child_cpu", lambda: 100.0 + time.monotonic())
        resumed = stopped_for(proc, 1.0)  # silent; its CPU clock says it computed all along
        t0 = time.monotonic()
        with pytest.raises(PolicyFailed, match="timed out choosing an action"):
            proc.act(observation())
        assert time.monotonic() - t0 < DEADLINE_S * sandbox.STARVED_WAIT_FACTOR * 0.9
        resumed.join()
