"""The sandbox against a child that is already compromised, and the limits around it.

A child that stops reading is timed out on the parent's writes; layers a child claims are
checked against what the parent sees in ``/proc``; signals and process handles aimed at a
neighbouring process are refused by seccomp alone (Landlock's signal scope is left out, so the
test tells the two apart); a system call outside the allow-list kills the child with a reason
that says so; and an evaluation stops at its wall-clock limit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import evaluator.sandbox as sandbox
from evaluator import cli, cli_policy
from evaluator.actions import ActionSpec
from evaluator.errors import PolicyFailed, SandboxUnavailable
from evaluator.metadata import ModelMetadata
from evaluator.observation import OBS_DIM
from evaluator.onnx_io import mlp_policy
from evaluator.race_settings import RaceConfig
from evaluator.sandbox import PolicyProcess, SandboxOptions
from evaluator.validate import ValidatedPolicy, validate_policy
from tests.support.fake_children import FRAMING, write_child

NO_BWRAP = SandboxOptions(use_bwrap=False)
HANG_S = 15.0  # how long a test waits before calling the parent blocked (not a speed check)
MARKER = '\nif __name__ == "__main__":'


def policy(width: int = 16) -> ValidatedPolicy:
    """A small valid policy; ``width`` hidden units make its bytes as large as needed."""
    rng = np.random.default_rng(0)
    meta = ModelMetadata(ActionSpec.continuous(), name="plain")
    layers = [(rng.normal(0.0, 0.1, (width, OBS_DIM)), np.zeros(width)),
              (rng.normal(0.0, 0.1, (2, width)), np.zeros(2))]
    return validate_policy(mlp_policy(layers, meta).SerializeToString())


def real_child_with(tmp_path: Path, extra: str) -> Path:
    """The real child script with ``extra`` defined just before it runs."""
    src = sandbox.CHILD_SCRIPT.read_text()
    assert src.count(MARKER) == 1
    return write_child(tmp_path, "child.py", src.replace(MARKER, "\n\n" + extra + MARKER))


def pids_of(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


# ---------------------------------------------------------------------------- a child that stops
STALLING_CHILD = FRAMING + r'''
import time

STALL = __STALL__
open(__PIDFILE__, "w").write(str(os.getpid()))


read(struct.unpack("<I", read(4))[0])  # the configuration
send({"layers": {}})
if STALL == "load":
    time.sleep(600)  # never reads the model
read(struct.unpack("<I", read(4))[0])
send({})
time.sleep(600)  # never reads an observation
'''


@pytest.mark.parametrize("stall", ["load", "act"])
def test_a_child_that_stops_reading_is_timed_out(stall: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's writes share the read deadlines: a pipe the child no longer empties
    (a model, or a batch of observations, larger than the pipe holds) ends in a timeout."""
    pidfile = tmp_path / "pid"
    fake = write_child(tmp_path, "stalling.py", STALLING_CHILD.replace(
        "__STALL__", repr(stall)).replace("__PIDFILE__", repr(str(pidfile))))
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", fake)
    big = policy(width=2048) if stall == "load" else policy()
    if stall == "load":
        assert len(big.data) > 1 << 17  # well past what a pipe buffers
    options = dataclasses.replace(NO_BWRAP, load_timeout_s=2.0, action_timeout_s=0.001)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with PolicyProcess(big, options) as proc:
                proc.act(np.zeros((4000, OBS_DIM), dtype=np.float32))  # 480 kB, 4 s budget
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome.append(err)

    t0 = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    if thread.is_alive():  # blocked in a write: free it before failing
        os.kill(pids_of(pidfile), signal.SIGKILL)
        thread.join(HANG_S)
        pytest.fail("the parent blocked writing to a child that stopped reading")
    (err,) = outcome
    assert isinstance(err, PolicyFailed), err
    assert "stopped reading" in err.reason, err.reason
    doing = "loading the model" if stall == "load" else "sending observations"
    assert err.reason.startswith(f"timed out {doing}"), err.reason
    assert time.monotonic() - t0 < 10.0


# ---------------------------------------------------------------------------- a child that lies
LYING_CHILD = FRAMING + r'''
CLAIM = {"rlimits": True, "user": "nobody", "no_new_privs": True, "landlock": 6,
         "seccomp": True}


read(struct.unpack("<I", read(4))[0])  # the configuration
send({"layers": CLAIM})  # without having locked anything down
read(struct.unpack("<I", read(4))[0])  # the model
send({"layers": CLAIM, "onnxruntime": "1.0"})
while True:
    (k,) = struct.unpack("<I", read(4))
    read(4 * 30 * k)
    os.write(1, struct.pack("<I", k) + b"\0" * (8 * k))
'''


def test_a_child_claiming_layers_it_lacks_is_not_believed(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", write_child(tmp_path, "liar.py", LYING_CHILD))
    with PolicyProcess(policy(), NO_BWRAP) as proc:
        seen = proc.layers
        assert proc.act(np.zeros((1, OBS_DIM), dtype=np.float32)).shape == (1, 2)
    assert seen["seccomp"] is False and seen["no_new_privs"] is False
    assert seen["rlimits"] is False
    assert seen["landlock"] is False  # Landlock needs no_new_privs, which is not there
    if os.geteuid() == 0:
        assert seen["user"] is False  # still root
    with pytest.raises(SandboxUnavailable) as info:
        PolicyProcess(policy(), dataclasses.replace(NO_BWRAP, strict=True))
    assert "seccomp" in str(info.value) and "no_new_privs" in str(info.value)


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_the_real_child_is_seen_locked_down(use_bwrap: bool) -> None:
    """The control: the real child's layers, seen from outside, are all there (bubblewrap's
    namespaces too, where it works)."""
    if use_bwrap and not sandbox.bwrap_works():
        pytest.skip("bubblewrap is not installed or does not work here")
    with PolicyProcess(policy(), SandboxOptions(use_bwrap=use_bwrap)) as proc:
        seen = proc.layers
    assert seen["seccomp"] is True and seen["no_new_privs"] is True
    assert seen["rlimits"] is True
    assert seen["user"] in ("nobody", "unprivileged")
    assert seen["namespaces"] is use_bwrap
    assert sandbox.missing_required(seen) == [] or not (use_bwrap or seen["landlock"])


# ---------------------------------------------------------------------------- signals
SIGNAL_PROBE = r'''
import ctypes, json, os, sys

evaluator_dir, mode, neighbour, cfg_json = sys.argv[1:5]
sys.path.insert(0, evaluator_dir)
import _policy_child as child

nb = int(neighbour)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
lib = child._load_seccomp()
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]


def nr(name):
    return lib.seccomp_syscall_resolve_name(name.encode())


pidfd = libc.syscall(nr("pidfd_open"), nb, 0)  # a handle held from before the lockdown
layers = {}
if mode == "seccomp":  # seccomp alone: Landlock (6.12+) would scope signals by itself
    layers = {"no_new_privs": child._no_new_privs(libc), "seccomp": child._seccomp(lib)}
elif mode == "locked":
    layers = child._lock_down(json.loads(cfg_json))
info = ctypes.create_string_buffer(128)
ctypes.memmove(ctypes.addressof(info) + 8, ctypes.byref(ctypes.c_int(-1)), 4)  # SI_QUEUE


def call(name, *args):
    n = nr(name)
    if n < 0:
        return "absent"
    ctypes.set_errno(0)
    if libc.syscall(n, *args) >= 0:
        return "allowed"
    return "refused: " + os.strerror(ctypes.get_errno())


results = {
    "tgkill": call("tgkill", nb, nb, 0),
    "tkill": call("tkill", nb, 0),
    "rt_sigqueueinfo": call("rt_sigqueueinfo", nb, 0, info),
    "rt_tgsigqueueinfo": call("rt_tgsigqueueinfo", nb, nb, 0, info),
    "pidfd_open": call("pidfd_open", nb, 0),
    "pidfd_send_signal": call("pidfd_send_signal", pidfd, 0, None, 0),
    "pidfd_getfd": call("pidfd_getfd", pidfd, 0, 0),
    "kill": call("kill", nb, 0),
    "tgkill itself": call("tgkill", os.getpid(), os.getpid(), 0),
}
print(json.dumps({"layers": layers, "results": results}), flush=True)
'''


def _signal_probe(tmp_path: Path, mode: str, neighbour: int) -> dict[str, Any]:
    script = write_child(tmp_path, "signal_probe.py", SIGNAL_PROBE)
    cfg = {"memory_bytes": 1 << 30, "cpu_seconds": 60, "open_files": 32}
    proc = subprocess.run([sys.executable, "-I", "-B", str(script),
                           str(sandbox.CHILD_SCRIPT.parent), mode, str(neighbour),
                           json.dumps(cfg)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def test_signals_and_handles_to_a_neighbour_are_refused(tmp_path: Path) -> None:
    """A neighbour of the same user (here a ``sleep``) cannot be signalled or grabbed by any
    of the calls, with seccomp alone; the child may still signal itself (abort, raise)."""
    neighbour = subprocess.Popen(["sleep", "60"])
    try:
        control = _signal_probe(tmp_path, "open", neighbour.pid)["results"]
        tellable = [name for name, said in control.items() if said == "allowed"]
        if "tgkill" not in tellable:
            pytest.skip(f"this kernel refuses tgkill to a neighbour anyway: {control}")
        for mode in ("seccomp", "locked"):
            report = _signal_probe(tmp_path, mode, neighbour.pid)
            assert report["layers"]["seccomp"] is True
            results = report["results"]
            leaks = {n: results[n] for n in tellable
                     if n != "tgkill itself" and not results[n].startswith("refused")}
            assert not leaks, (mode, leaks)
            assert results["tgkill itself"] == "allowed"
        assert neighbour.poll() is None
    finally:
        neighbour.kill()
        neighbour.wait()


# ---------------------------------------------------------------------------- the allow-list
@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_a_call_outside_the_allow_list_is_a_clear_policy_error(
        use_bwrap: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that, once locked down, makes a call neither allowed nor refused by name
    (``getpriority``) is killed, and the reason says why."""
    if use_bwrap and not sandbox.bwrap_works():
        pytest.skip("bubblewrap is not installed or does not work here")
    extra = ("_plain_session = _session\n\n\ndef _session(model):\n"
             "    os.getpriority(os.PRIO_PROCESS, 0)\n    return _plain_session(model)\n")
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", real_child_with(tmp_path, extra))
    with pytest.raises(PolicyFailed) as info:
        PolicyProcess(policy(), SandboxOptions(use_bwrap=use_bwrap))
    reason = info.value.reason
    assert "SIGSYS" in reason and "allow-list" in reason, reason
    assert reason.startswith("the policy process died while loading the model"), reason


# ---------------------------------------------------------------------------- wall clock
def test_the_default_wall_clock_limit_covers_every_budget() -> None:
    """Never less than every load at its full budget and every policy's whole inference
    budget, growing with the race; an operator's limit replaces it."""
    evaluation_limit_s = sandbox.evaluation_limit_s
    opts = SandboxOptions()
    base = RaceConfig(trials=3, time_cap=180.0)
    limit = evaluation_limit_s(base, 1, opts)
    assert limit >= opts.load_timeout_s + sandbox.inference_budget_s(base, 1, opts)
    assert evaluation_limit_s(base.with_(trials=6), 1, opts) > limit
    assert evaluation_limit_s(base.with_(time_cap=360.0), 1, opts) > limit
    h2h = base.with_(format="head-to-head")
    assert (evaluation_limit_s(h2h, 4, opts)
            >= 4 * (opts.load_timeout_s + sandbox.inference_budget_s(h2h, 4, opts)))
    slower = dataclasses.replace(opts, action_timeout_s=0.2)
    assert evaluation_limit_s(base, 1, slower) > limit
    assert evaluation_limit_s(base, 1, dataclasses.replace(opts, evaluation_timeout_s=9)) == 9


def test_a_wall_clock_check_raises_once_past() -> None:
    clock = sandbox.WallClock(0.05)
    clock.check()
    time.sleep(0.06)
    with pytest.raises(sandbox.EvaluationTimedOut) as info:
        clock.check()
    assert str(info.value) == "the evaluation ran past its wall-clock limit of 0.05 s"


def test_paddock_evaluate_stops_at_its_wall_clock_limit(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    model = tmp_path / "policy.onnx"
    model.write_bytes(policy().data)
    t0 = time.monotonic()
    status = cli.main(["evaluate", str(model), "--laps", "50", "--time-cap", "3600",
                       "--wall-clock-limit", "0.5", "--quiet", "--json"])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert status == 3, err
    assert "the evaluation ran past its wall-clock limit of 0.5 s" in err, err
    assert took < 20.0


def test_paddock_evaluate_at_home_is_lenient_but_says_a_worker_would_refuse(
        capsys: pytest.CaptureFixture[str]) -> None:
    bare = {"clean_env": True, "namespaces": False, "rlimits": True, "user": "nobody",
            "no_new_privs": True, "landlock": False, "seccomp": False}
    cli_policy._warn_layers(bare, ["namespaces", "landlock", "seccomp"])
    err = capsys.readouterr().err
    assert "not active here: namespaces, landlock, seccomp" in err
    assert "a league worker would refuse to run without seccomp" in err
    assert "apt-get install bubblewrap" in err
    cli_policy._warn_layers(bare | {"landlock": 6, "seccomp": True}, ["namespaces"])
    err = capsys.readouterr().err
    assert "not active here: namespaces" in err and "would refuse" not in err
