"""The shared-memory channel to a policy process (``evaluator.channel``): the same results as
the pipes, the same sandbox, and a clear policy error for a child that abuses the buffer."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator import channel, race, sandbox
from evaluator.errors import PolicyFailed
from evaluator.observation import OBS_DIM
from evaluator.race import RaceResult, run_race
from evaluator.race_settings import RaceConfig
from evaluator.sandbox import PolicyProcess, SandboxOptions
from evaluator.validate import ValidatedPolicy, load_policy_file
from tests.support.fake_children import CHILD_MAIN, write_child

pytestmark = pytest.mark.skipif(not channel.supported(),
                                reason="the shared channel runs on x86-64 Linux only")

BOTS = Path(sandbox.__file__).with_name("bots")
SHARED = SandboxOptions(use_bwrap=False, action_timeout_s=1.0, shared_memory=True)
PIPE = dataclasses.replace(SHARED, shared_memory=False)
BWRAP = [True, False]
BWRAP_IDS = ["bwrap", "no-bwrap"]
TIME_TRIAL = RaceConfig(track="royal-park", laps=1, trials=3)
HEAT = RaceConfig(track="royal-park", format="head-to-head", laps=1, trials=1)


def bot(name: str) -> ValidatedPolicy:
    return load_policy_file(BOTS / f"{name}.onnx")


def observations(k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (k, OBS_DIM)).astype(np.float32)


def result_json(result: RaceResult) -> str:
    return json.dumps(result.to_dict(), sort_keys=True)


def hostile_child(tmp_path: Path, mode: str) -> Path:
    """The real child, whose shared-buffer side misbehaves as ``mode`` says."""
    src = sandbox.CHILD_SCRIPT.read_text()
    assert src.count(CHILD_MAIN) == 1
    extra = HOSTILE.replace("__MODE__", repr(mode))
    return write_child(tmp_path, "child.py", src.replace(CHILD_MAIN, extra + CHILD_MAIN))


HOSTILE = r'''
MODE = __MODE__
_plain_answer, _plain_wait, _plain_run = _Shared.answer, _Shared.wait, _run


def _hostile_answer(self, seq, count):
    if MODE == "wrong-count":
        count += 1
    elif MODE == "huge-count":
        count = 0x7FFFFFFF
    elif MODE == "pipe-garbage":
        _write(struct.pack("<I", 12345))
        return
    elif MODE == "silent":
        return
    elif MODE == "token-flood":
        while True:
            _write(struct.pack("<I", WAKE_TOKEN) * 1024)
    _plain_answer(self, seq, count)


def _hostile_wait(self, last):
    if MODE == "writes-unasked" and last:
        time.sleep(0.05)  # the parent has taken the answer: scribble on the child's words
        self.ans_count.value = 7
    return _plain_wait(self, last)


def _hostile_run(infer, obs, out, k):
    ok = _plain_run(infer, obs, out, k)
    if MODE == "nan":
        out[:k] = float("nan")
    elif MODE == "inf":
        out[:k] = float("inf")
    elif MODE == "huge-values":
        out[:k] = 3e38
    elif MODE == "stall":
        time.sleep(30)
    return ok


_Shared.answer, _Shared.wait, _run = _hostile_answer, _hostile_wait, _hostile_run
'''


# ---------------------------------------------------------------------------- same results
def test_a_time_trial_is_byte_identical_over_both_channels() -> None:
    ace = bot("ace")
    shared = run_race(TIME_TRIAL, [ace], options=SHARED)
    piped = run_race(TIME_TRIAL, [ace], options=PIPE)
    assert shared.cars[0].status == "finished"
    assert result_json(shared) == result_json(piped)


def test_a_heat_is_byte_identical_over_both_channels() -> None:
    shared = run_race(HEAT, [bot("ace"), bot("pro")], options=SHARED)
    piped = run_race(HEAT, [bot("ace"), bot("pro")], options=PIPE)
    assert result_json(shared) == result_json(piped)


def test_the_channels_answer_alike_batch_by_batch() -> None:
    """Every batch size, up to past what the buffer holds (sent over the pipe instead)."""
    obs = observations(channel.ROWS + 6)
    with PolicyProcess(bot("pro"), SHARED) as shared, PolicyProcess(bot("pro"), PIPE) as piped:
        assert (shared.channel, piped.channel) == ("shared", "pipe")
        for k in (1, 3, channel.ROWS, channel.ROWS + 6):
            a, b = shared.act(obs[:k]), piped.act(obs[:k])
            assert a.dtype == np.float32 and a.shape == (k, 2)
            assert a.tobytes() == b.tobytes()
        assert shared.actions == piped.actions


def test_no_wake_up_is_lost_when_both_sides_sleep() -> None:
    """Without any busy wait every request and answer crosses by a wake token: a lost one
    would time out."""
    sleepy = dataclasses.replace(SHARED, spin_s=0.0, child_spin_s=0.0)
    obs = observations(1)
    with PolicyProcess(bot("ace"), sleepy) as proc:
        first = proc.act(obs)
        for _ in range(1500):
            assert proc.act(obs).tobytes() == first.tobytes()


def test_a_reset_starts_the_buffer_clean() -> None:
    ace = bot("ace")
    with PolicyProcess(ace, SHARED) as proc:
        before = proc.act(observations(3))
        proc.reset(ace, SHARED)
        assert proc.channel == "shared" and proc.actions == 0
        assert proc.act(observations(3)).tobytes() == before.tobytes()


def test_the_pipes_serve_where_the_channel_is_off_or_unsupported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with PolicyProcess(bot("ace"), PIPE) as proc:
        assert proc.channel == "pipe" and proc.act(observations(1)).shape == (1, 2)
    monkeypatch.setattr(channel, "supported", lambda: False)
    with PolicyProcess(bot("ace"), SHARED) as proc:
        assert proc.channel == "pipe" and proc.act(observations(1)).shape == (1, 2)


def test_the_parent_busy_waits_in_a_crowded_heat_only_over_the_buffer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2-car heat on 2 cores: the buffer's busy wait yields the core, so the parent keeps
    it; the pipes' does not, so there only the children spin. With a core to spare, both."""
    monkeypatch.setattr(race, "available_cores", lambda: 2)
    assert race._spin_policy(SHARED, 2).spin_s == SHARED.spin_s > 0
    assert race._spin_policy(PIPE, 2).spin_s == 0.0
    assert race._spin_policy(PIPE, 1).spin_s == PIPE.spin_s
    monkeypatch.setattr(channel, "supported", lambda: False)
    assert race._spin_policy(SHARED, 2).spin_s == 0.0


# ---------------------------------------------------------------------------- same sandbox
@pytest.mark.parametrize("use_bwrap", BWRAP, ids=BWRAP_IDS)
def test_the_child_is_locked_down_and_shares_only_the_buffer(use_bwrap: bool) -> None:
    options = dataclasses.replace(SHARED, use_bwrap=use_bwrap)
    with PolicyProcess(bot("ace"), options) as proc:
        proc.act(observations(2))
        assert proc.channel == "shared"
        assert not proc.missing_layers() or proc.missing_layers() == ["namespaces"]
        assert proc.layers["seccomp"] and proc.layers["landlock"] and proc.layers["rlimits"]
        assert proc.layers["namespaces"] == use_bwrap
        pid = proc._child_pid
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        memfds = [f for f in fds if f.startswith("/memfd:")]
        assert memfds == ["/memfd:paddock-policy (deleted)"]
        assert all(f.startswith("pipe:") for f in fds - set(memfds)), fds
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        writable_shared = [ln for ln in maps if ln.split()[1][1] == "w"
                           and ln.split()[1][3] == "s"]
        assert len(writable_shared) == 1 and "/memfd:paddock-policy" in writable_shared[0]


def test_the_buffer_cannot_be_resized() -> None:
    """A child cannot make the parent's mapping fault by shrinking the file behind it."""
    buf = channel.SharedBuffer(OBS_DIM, 2)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(buf.fd, 0)
    finally:
        buf.close()


@pytest.mark.parametrize(("mode", "says"), [
    ("wrong-count", "answered 2 actions for 1 observations"),
    ("huge-count", "answered 2147483647 actions for 1 observations"),
    ("nan", "non-finite value"),
    ("inf", "non-finite value"),
    ("pipe-garbage", "answered 12345 actions for 1 observations"),
    ("silent", "timed out choosing an action"),
    ("token-flood", "timed out choosing an action"),
])
def test_a_child_abusing_the_buffer_is_a_policy_error(mode: str, says: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", hostile_child(tmp_path, mode))
    options = dataclasses.replace(SHARED, action_timeout_s=0.2)
    with PolicyProcess(bot("ace"), options) as proc:
        assert proc.channel == "shared"
        t0 = time.monotonic()
        with pytest.raises(PolicyFailed) as err:
            proc.act(observations(1))
        assert says in err.value.reason
        assert time.monotonic() - t0 < 2.0
        assert not proc.alive


def test_a_child_writing_while_not_asked_is_a_policy_error(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", hostile_child(tmp_path, "writes-unasked"))
    with PolicyProcess(bot("ace"), SHARED) as proc:
        proc.act(observations(1))
        time.sleep(0.3)
        with pytest.raises(PolicyFailed) as err:
            proc.act(observations(1))
        assert "wrote to the shared buffer while not asked" in err.value.reason


def test_huge_outputs_are_treated_as_over_the_pipes(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Finite outputs, however large, are the race's to clip, whichever the channel."""
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", hostile_child(tmp_path, "huge-values"))
    config = dataclasses.replace(TIME_TRIAL, trials=1, time_cap=5.0)
    shared = run_race(config, [bot("ace")], options=SHARED)
    piped = run_race(config, [bot("ace")], options=PIPE)
    assert result_json(shared) == result_json(piped)


@pytest.mark.parametrize("use_bwrap", BWRAP, ids=BWRAP_IDS)
def test_a_child_killed_while_thinking_is_seen_dead_promptly(
        use_bwrap: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", hostile_child(tmp_path, "stall"))
    options = dataclasses.replace(SHARED, use_bwrap=use_bwrap, action_timeout_s=20.0)
    with PolicyProcess(bot("ace"), options) as proc:
        assert proc.channel == "shared"
        proc.send(observations(1))
        timer = threading.Timer(0.2, os.kill, (proc._child_pid, signal.SIGKILL))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(PolicyFailed) as err:
            proc.receive()
        timer.join()
        assert time.monotonic() - t0 < 2.0
        assert "died while choosing an action (SIGKILL" in err.value.reason


def test_a_slow_child_meets_its_deadline_over_the_buffer(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", hostile_child(tmp_path, "stall"))
    options: Any = dataclasses.replace(SHARED, action_timeout_s=0.1)
    with PolicyProcess(bot("ace"), options) as proc:
        t0 = time.monotonic()
        with pytest.raises(PolicyFailed) as err:
            proc.act(observations(1))
        assert err.value.reason.startswith("timed out choosing an action (budget 100 ms)")
        assert time.monotonic() - t0 < 1.0
