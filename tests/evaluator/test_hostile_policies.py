"""The hostile-policy corpus: every attack is refused on its bytes or contained when it runs.

The models come from ``hostile.py`` and are built during the test run. A case that breaks a
static rule must be refused by ``validate_policy`` with that rule and a one-line message that
says what is wrong. A case that is valid by design (it only misbehaves when run) must end as a
``policy_error`` with a reason, within its time budget, with its processes gone, and the parent
must race a good policy afterwards. The last part checks the sandbox itself: the layers it
reports, strict mode, the real lockdown probed from inside, a child killed from outside, and
children that lie to the parent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from signal import SIGKILL
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

import evaluator.race as race_module
import evaluator.sandbox as sandbox
from evaluator.errors import PolicyFailed, PolicyRejected, SandboxUnavailable
from evaluator.metadata import MAX_METADATA_BYTES
from evaluator.observation import OBS_DIM
from evaluator.race import RaceResult, run_race
from evaluator.race_settings import RaceConfig
from evaluator.results import DNF, FINISHED, POLICY_ERROR
from evaluator.sandbox import LAYERS, STRICT_ENV, PolicyProcess, SandboxOptions
from evaluator.validate import (
    MAX_INITIALIZER_ELEMENTS,
    MAX_MODEL_BYTES,
    ValidatedPolicy,
    load_policy_file,
    validate_policy,
)
from tests.support.fake_children import FRAMING, write_child


def _load_hostile() -> ModuleType:
    """``hostile.py`` beside this file (tests/evaluator is not a package)."""
    path = Path(__file__).with_name("hostile.py")
    spec = importlib.util.spec_from_file_location("hostile_policies", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


H = _load_hostile()

QUICK = RaceConfig(track="oval", laps=1, trials=1, time_cap=5.0)  # 75 steps at most
RUN_BUDGET_S = 5.0  # wall-clock bound on one contained hostile run, start-up included
STATIC_BUDGET_S = 3.0  # wall-clock bound on one static refusal (200k nodes included)


# ============================================================================ helpers
def refused(data: bytes, metadata: Any = None) -> PolicyRejected:
    """Validate ``data``, expect a refusal, and check the refusal's form."""
    t0 = time.monotonic()
    with pytest.raises(PolicyRejected) as info:
        validate_policy(data, metadata)
    assert time.monotonic() - t0 < STATIC_BUDGET_S
    err = info.value
    message = str(err)
    assert message == f"{err.rule}: {err.detail}"
    assert err.detail.strip() and len(message.splitlines()) == 1, repr(message)
    assert message.isprintable(), repr(message)
    return err


def good() -> ValidatedPolicy:
    return validate_policy(H.good_policy())


def assert_parent_still_races() -> None:
    """After a hostile run, a good policy starts, races and is scored as usual.

    Its per-action deadline is a generous second: the parent's state is tested here, and on
    a loaded machine (two test workers, each with its policy processes, on two cores) one
    answer of a good policy can wait past the default 50 ms.
    """
    result = run_race(QUICK, [good()], options=SandboxOptions(action_timeout_s=1.0))
    assert result.status in (FINISHED, DNF), result.cars[0].error
    assert all(t.status != POLICY_ERROR for t in result.cars[0].trials)
    assert result.sandbox["actions"][0] > 0


def timed_race(config: RaceConfig, policies: list[ValidatedPolicy],
               options: SandboxOptions | None = None,
               progress: Callable[[int, int], None] | None = None) -> RaceResult:
    t0 = time.monotonic()
    result = run_race(config, policies, options=options, progress=progress, record=False)
    assert time.monotonic() - t0 < RUN_BUDGET_S
    return result


def _processes_with_home(home: str) -> list[int]:
    """Live processes whose environment holds ``HOME=home`` (a policy child and its bwrap)."""
    needle = b"\0HOME=" + home.encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = b"\0" + Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if needle in env:
            found.append(int(entry.name))
    return found


def assert_gone(spawned: list[tuple[int, str]]) -> None:
    """Every recorded policy process (outer pid, throwaway home) has ended."""
    assert spawned
    deadline = time.monotonic() + 3.0
    for _, home in spawned:
        while _processes_with_home(home) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _processes_with_home(home), f"a policy process of {home} survived"
        assert not os.path.exists(home)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(pid, home) of every policy process ``run_race`` starts during the test."""
    record: list[tuple[int, str]] = []

    class Recording(PolicyProcess):
        def _spawn(self) -> None:
            super()._spawn()
            assert self._proc is not None
            record.append((self._proc.pid, self._home))

    monkeypatch.setattr(race_module, "PolicyProcess", Recording)
    return record


# ============================================================================ static refusals
E = pytest.param  # (builder, accepted rules, words the message must contain), id

STATIC_CASES = [
    # external data: the validator reads bytes only; every spelling is refused
    E(lambda: H.external_data("../x"), {"external_data"}, "external data", id="ext-parent-dir"),
    E(lambda: H.external_data("/etc/passwd"), {"external_data"}, "external data",
      id="ext-etc-passwd"),
    E(lambda: H.external_data("x", in_constant=True), {"external_data"}, "constant",
      id="ext-in-constant-node"),
    E(lambda: H.external_data("x", flag=False), {"external_data"}, "external data",
      id="ext-entries-without-location-flag"),
    E(lambda: H.external_data("x", entries=False), {"external_data"}, "external data",
      id="ext-flag-without-entries"),
    # foreign operator domains
    E(H.custom_domain, {"domain"}, "'custom.domain'", id="opset-custom.domain"),
    E(lambda: H.custom_domain(declared=False), {"domain"}, "'custom.domain'",
      id="node-custom.domain"),
    E(H.microsoft_op, {"domain"}, "'com.microsoft'", id="opset-com.microsoft-FusedMatMul"),
    E(lambda: H.microsoft_op(declared=False), {"domain"}, "'com.microsoft'",
      id="node-com.microsoft-FusedMatMul"),
    E(H.ml_domain, {"domain"}, "'ai.onnx.ml'", id="opset-ai.onnx.ml"),
    # model-local functions shadowing standard operators
    E(H.shadowing_function, {"functions"}, "'Relu'", id="function-named-Relu"),
    E(lambda: H.shadowing_function("Gemm"), {"functions"}, "'Gemm'", id="function-named-Gemm"),
    # control flow
    E(H.loop, {"subgraph", "operator"}, "Loop", id="loop-2**62-trips"),
    E(lambda: H.loop(with_body=False), {"operator"}, "'Loop'", id="loop-without-body"),
    E(H.if_branches, {"subgraph", "operator"}, "If", id="if"),
    E(H.scan, {"subgraph", "operator"}, "Scan", id="scan"),
    # allocation bombs
    E(H.constant_of_shape, {"operator"}, "'ConstantOfShape'", id="bomb-ConstantOfShape"),
    E(H.expand, {"operator"}, "'Expand'", id="bomb-Expand"),
    E(H.tile, {"operator"}, "'Tile'", id="bomb-Tile"),
    E(H.range_op, {"operator"}, "'Range'", id="bomb-Range"),
    E(H.nonzero, {"operator"}, "'NonZero'", id="bomb-NonZero"),
    E(H.broadcast_bomb, {"tensor_size"}, "16,000,000 elements", id="bomb-broadcast-Add"),
    E(H.runtime_shaped_reshape, {"shape_inference"}, "non-static", id="reshape-at-run-time"),
    # graph size
    E(H.many_nodes, {"nodes", "size"}, "200,001 nodes", id="200k-nodes"),
    # initializers
    E(H.huge_initializer, {"initializer"}, f"{MAX_INITIALIZER_ELEMENTS:,}",
      id="init-over-cap-stored"),
    E(H.many_initializers, {"initializer"}, f"{MAX_INITIALIZER_ELEMENTS:,}",
      id="init-over-cap-in-parts"),
    E(H.declared_only, {"initializer"}, f"{MAX_INITIALIZER_ELEMENTS:,}",
      id="init-over-cap-declared-only"),
    E(lambda: H.declared_only((H.HUGE, H.HUGE)), {"initializer"},
      f"{MAX_INITIALIZER_ELEMENTS:,}", id="init-dims-overflow-int64"),
    E(lambda: H.lying_raw(1_000_000, 8), {"initializer"},
      "declares 1,000,000 elements but stores 8 bytes", id="init-lies-big"),
    E(lambda: H.lying_raw(2, 1 << 20), {"initializer"},
      "declares 2 elements but stores 1,048,576 bytes", id="init-lies-small"),
    E(H.lying_typed, {"initializer"}, "declares 1,000,000 elements but stores 3",
      id="init-lies-float_data"),
    E(H.negative_dims, {"initializer"}, "negative dimension", id="init-negative-dim"),
    E(H.string_initializer, {"initializer"}, "strings", id="init-strings"),
    E(H.sparse_initializer, {"initializer"}, "sparse", id="sparse-initializer"),
    E(H.sparse_constant, {"initializer"}, "sparse", id="sparse-constant"),
    # not a model at all
    E(H.truncated, {"parse"}, "not an ONNX model", id="truncated"),
    E(H.garbage, {"parse"}, "not an ONNX model", id="garbage"),
    E(H.empty, {"parse"}, "empty", id="empty"),
    E(H.oversized, {"size"}, f"{MAX_MODEL_BYTES:,}", id="over-16-MiB"),
    E(H.not_a_model, {"parse"}, "not an ONNX model", id="a-tensor-not-a-model"),
    E(H.deep_nesting, {"parse", "subgraph"}, "", id="protobuf-nested-500-deep"),
    # signature
    E(H.two_inputs, {"signature"}, "exactly one input, this one has 2", id="two-inputs"),
    E(H.no_input, {"signature"}, "exactly one input, this one has 0", id="no-input"),
    E(H.two_outputs, {"signature"}, "exactly one output, this one has 2", id="two-outputs"),
    E(lambda: H.input_shape([1, 29]), {"signature"}, "[1, 29]", id="input-1x29"),
    E(lambda: H.input_shape([1, 30, 1]), {"signature"}, "[1, 30, 1]", id="input-1x30x1"),
    E(lambda: H.input_shape([8, 30]), {"signature"}, "[8, 30]", id="input-batch-8"),
    E(lambda: H.output_width(3), {"signature"}, "[batch, 3]", id="output-3-continuous"),
    E(lambda: H.output_width(2, H.DISCRETE_3), {"signature"}, "discrete action space (3",
      id="output-2-for-3-discrete"),
    E(lambda: H.input_dtype(TensorProto.DOUBLE), {"signature"}, "float32",
      id="input-float64"),
    E(lambda: H.input_dtype(TensorProto.INT64), {"signature"}, "float32", id="input-int64"),
    E(lambda: H.output_dtype(TensorProto.DOUBLE), {"signature"}, "float32",
      id="output-float64"),
    E(H.newline_in_dim, {"signature"}, "FAKE LOG LINE", id="line-break-in-dim-name"),
    # embedded metadata
    E(H.metadata_oversized, {"metadata"}, f"{MAX_METADATA_BYTES:,} bytes",
      id="meta-value-over-64KiB"),
    E(lambda: H.metadata_oversized("other"), {"metadata"}, "'other'",
      id="meta-other-key-over-64KiB"),
    E(H.metadata_many_entries, {"metadata"}, "33 metadata entries", id="meta-33-entries"),
    E(H.no_metadata, {"metadata"}, "no metadata", id="meta-missing"),
    E(lambda: H.metadata_json("{not json"), {"metadata"}, "not valid JSON",
      id="meta-invalid-json"),
    E(lambda: H.metadata_json('{"action_space_type": "jet"}'), {"metadata"}, "'jet'",
      id="meta-unknown-action-space-type"),
    E(lambda: H.metadata_json(H.continuous_doc(speed={"low": 0.5, "high": 40})),
      {"metadata"}, "speed 40.0", id="meta-speed-out-of-range"),
    E(lambda: H.metadata_json(H.continuous_doc(speed={"low": 0.5, "high": float("nan")})),
      {"metadata"}, "speed nan", id="meta-speed-NaN"),
    E(lambda: H.metadata_json("[" * 60_000), {"metadata"}, "not valid JSON",
      id="meta-nested-60k-deep"),
    E(lambda: H.metadata_json('{"speed": 1' + "0" * 5000 + "}"), {"metadata"},
      "not valid JSON", id="meta-5000-digit-number"),
    E(lambda: H.metadata_json(H.continuous_doc(speed={"low": 0.5, "high": 10**400})),
      {"metadata"}, "too large", id="meta-400-digit-speed"),
    E(lambda: H.metadata_json([1, 2]), {"metadata"}, "JSON object", id="meta-not-an-object"),
    # subgraphs smuggled onto an allowed operator
    E(H.smuggled_graph, {"subgraph"}, "'Relu'", id="graph-attr-on-Relu"),
    E(lambda: H.smuggled_graph("graphs"), {"subgraph"}, "'Relu'", id="graphs-attr-on-Relu"),
    E(lambda: H.smuggled_graph("mistyped"), {"subgraph"}, "'Relu'",
      id="float-attr-carrying-graph"),
]


@pytest.mark.parametrize(("build", "rules", "says"), STATIC_CASES)
def test_refused_statically(build: Callable[[], bytes], rules: set[str], says: str) -> None:
    err = refused(build())
    assert err.rule in rules, str(err)
    assert says in err.detail, str(err)


@pytest.mark.parametrize("build", [
    H.loop, H.if_branches, H.scan, H.constant_of_shape, H.expand, H.tile, H.range_op,
    H.nonzero, H.shadowing_function, H.microsoft_op, H.custom_domain, H.broadcast_bomb,
    H.sparse_initializer, H.huge_initializer, H.divide_by_zero, H.too_slow,
], ids=lambda f: f.__name__)
def test_hostile_models_are_well_formed_onnx(build: Callable[[], bytes]) -> None:
    """These are refused by a Paddock rule, not because onnx itself finds them broken."""
    onnx.checker.check_model(onnx.load_from_string(build()))


def test_non_bytes_are_refused() -> None:
    with pytest.raises(PolicyRejected) as info:
        validate_policy("/etc/passwd")  # type: ignore[arg-type]
    assert info.value.rule == "parse"


# ---------------------------------------------------------------------------- sidecar metadata
SIDECARS = [
    E(b'{"name": "' + b"x" * MAX_METADATA_BYTES + b'"}', "bytes", id="over-64KiB"),
    E(b"\xff\xfe\x00garbage", "not valid JSON", id="not-utf8"),
    E(b"[" * 60_000, "not valid JSON", id="nested-60k-deep"),
    E(b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON", id="5000-digit-number"),
    E(b'"continuous"', "JSON object", id="a-string"),
    E(json.dumps(H.continuous_doc() | {"observation": "v0"}).encode(), "'v0'",
      id="unknown-observation-version"),
    E(json.dumps(H.continuous_doc(steering_angle={"low": -90, "high": 90})).encode(),
      "steering_angle -90", id="steering-out-of-range"),
]


@pytest.mark.parametrize(("sidecar", "says"), SIDECARS)
def test_hostile_sidecar_metadata_is_refused(sidecar: bytes, says: str) -> None:
    err = refused(H.good_policy(), sidecar)
    assert err.rule == "metadata"
    assert says in err.detail, str(err)


# ---------------------------------------------------------------------------- files on disk
_OPENED: list[str] | None = None  # paths opened by Python while a check is being watched


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], str | bytes):
        _OPENED.append(os.fsdecode(args[0]))


Watch = Callable[[Callable[[], Any]], tuple[list[str], PolicyRejected]]


@pytest.fixture(scope="module")
def watch_opens() -> Watch:
    """Run a check that must refuse; return every path Python opened meanwhile (through an
    audit hook) and the refusal."""
    sys.addaudithook(_audit)  # cannot be removed; idle while _OPENED is None

    def watch(check: Callable[[], Any]) -> tuple[list[str], PolicyRejected]:
        global _OPENED
        _OPENED = []
        try:
            with pytest.raises(PolicyRejected) as info:
                check()
        finally:
            opened, _OPENED = _OPENED, None
        return opened, info.value

    return watch


@pytest.fixture
def scratch_dir() -> Iterator[str]:
    """A world-writable directory in /tmp: only the lockdown may stop a write there."""
    path = tempfile.mkdtemp(prefix="paddock-probe-", dir="/tmp")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


SECRET = b"PADDOCK-SECRET-" + b"0123456789abcdef" * 16


@pytest.mark.parametrize("kind", ["parent-dir", "absolute", "symlink", "hardlink",
                                  "etc-passwd"])
def test_external_data_targets_are_never_read(kind: str, tmp_path: Path,
                                              watch_opens: Watch) -> None:
    secret = tmp_path / "x"
    secret.write_bytes(SECRET)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "link").symlink_to(secret)
    os.link(secret, model_dir / "hard")
    location = {"parent-dir": "../x", "absolute": str(secret), "symlink": "link",
                "hardlink": "hard", "etc-passwd": "/etc/passwd"}[kind]
    data = H.external_data(location)
    path = model_dir / "policy.onnx"
    path.write_bytes(data)
    targets = {str(secret), str(model_dir / "link"), str(model_dir / "hard"), "/etc/passwd"}

    errors = []
    for check in (lambda: validate_policy(data), lambda: load_policy_file(path)):
        opened, err = watch_opens(check)
        assert not targets & ({os.path.realpath(p) for p in opened} | set(opened)), opened
        errors.append(err)
    passwd = Path("/etc/passwd").read_text(errors="replace").splitlines()[:1]
    for err in errors:
        assert err.rule == "external_data"
        assert len(str(err).splitlines()) == 1
        assert "PADDOCK-SECRET" not in str(err)
        assert not any(line and line in str(err) for line in passwd)
    assert secret.read_bytes() == SECRET


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path,
                                                    watch_opens: Watch) -> None:
    path = tmp_path / "huge.onnx"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # a sparse 1 GiB file: nothing is written, nothing may be read
    opened, err = watch_opens(lambda: load_policy_file(path))
    assert err.rule == "size" and f"{1 << 30:,} bytes" in err.detail
    assert str(path) not in opened


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_external_data_is_contained_even_past_validation(
        use_bwrap: bool, scratch_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a model with external data ever get past validation, the child cannot read it.

    Run in this process, onnxruntime follows a relative location and the "weights" it reads
    come straight out as actions. In the sandbox the same bytes fail to load.
    """
    secret_values = np.arange(1000.0, 1000.0 + 2 * OBS_DIM, dtype=np.float32)
    secret = Path(scratch_dir, "secret.bin")  # world-readable: only the sandbox is in the way
    secret.write_bytes(secret_values.tobytes())
    os.chmod(secret, 0o644)
    location = os.path.relpath(secret, "/")
    data = H.external_data(location)
    probe = np.zeros((1, OBS_DIM), dtype=np.float32)
    probe[0, 1] = 1.0

    with monkeypatch.context() as m:  # control: without a sandbox the secret leaks
        m.chdir("/")
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        leaked = session.run(None, {"obs": probe})[0]
    np.testing.assert_array_equal(leaked, secret_values.reshape(2, OBS_DIM)[:, 1][None])

    smuggled = dataclasses.replace(good(), data=data, sha256=hashlib.sha256(data).hexdigest())
    t0 = time.monotonic()
    with pytest.raises(PolicyFailed) as info:
        PolicyProcess(smuggled, SandboxOptions(use_bwrap=use_bwrap))
    assert time.monotonic() - t0 < RUN_BUDGET_S
    reason = info.value.reason
    assert reason.startswith("the model failed to load"), reason
    assert len(reason.splitlines()) == 1
    assert "1000" not in reason and "1001" not in reason
    assert_parent_still_races()


# ============================================================================ contained at run time
def _policy_error(result: RaceResult, car: int, says: str) -> None:
    c = result.cars[car]
    assert c.status == POLICY_ERROR
    assert says in c.error, c.error
    assert len(c.error.splitlines()) == 1, repr(c.error)
    for t in c.trials:
        assert t.status == POLICY_ERROR
        assert says in t.reason, t.reason


@pytest.mark.parametrize("build", [H.divide_by_zero, H.log_of_negative],
                         ids=["div-by-zero", "log-of-negative"])
def test_non_finite_output_time_trial(build: Callable[[], bytes],
                                      spawned: list[tuple[int, str]]) -> None:
    policy = validate_policy(build())  # valid by design: the problem only shows at run time
    result = timed_race(QUICK.with_(trials=2), [policy])
    _policy_error(result, 0, "non-finite")
    assert result.to_dict()["status"] == POLICY_ERROR
    assert result.to_dict()["error"] == result.cars[0].error
    assert_gone(spawned)
    assert_parent_still_races()


@pytest.mark.parametrize("bad", [0, 1], ids=["bad-on-pole", "bad-second"])
def test_non_finite_output_head_to_head(bad: int, spawned: list[tuple[int, str]]) -> None:
    policies = [good(), good()]
    policies[bad] = validate_policy(H.log_of_negative())
    result = timed_race(QUICK.with_(format="head-to-head"), policies)
    _policy_error(result, bad, "non-finite")
    other = result.cars[1 - bad]
    assert other.status in (FINISHED, DNF)
    assert len(other.trials) == 2  # both seat-swapped heats were raced
    for t in other.trials:
        assert t.status in (FINISHED, DNF)
        assert t.elapsed_s > 0 and t.completion_pct > 0
    assert result.positions[-1] == bad
    assert_gone(spawned)
    assert_parent_still_races()


def test_too_slow_model_times_out(spawned: list[tuple[int, str]]) -> None:
    policy = validate_policy(H.too_slow())  # within every static cap, ~10 GFLOP an action
    options = SandboxOptions(action_timeout_s=0.05)
    result = timed_race(QUICK, [policy], options)
    _policy_error(result, 0, "timed out")
    assert "50 ms" in result.cars[0].error
    assert result.sandbox["actions"] == [0]
    assert_gone(spawned)
    assert_parent_still_races()


def test_inference_error_is_a_one_line_reason(spawned: list[tuple[int, str]]) -> None:
    """An out-of-range Gather fails inside onnxruntime, whose message quotes the node name
    (chosen by the racer, here with a line break in it)."""
    policy = validate_policy(H.gather_out_of_range())
    result = timed_race(QUICK, [policy])
    _policy_error(result, 0, "inference failed")
    assert "FAKE LOG LINE" in result.cars[0].error  # quoted, but on the same line
    assert_gone(spawned)
    assert_parent_still_races()


# ============================================================================ the sandbox itself
def test_layers_are_reported_and_strict_mode_runs_here() -> None:
    with PolicyProcess(good()) as relaxed:
        missing = relaxed.missing_layers()
    if missing == ["namespaces"] and not sandbox.bwrap_works():
        pytest.skip("bubblewrap is not usable here; the other layers are tested below")
    assert missing == []
    with PolicyProcess(good(), SandboxOptions(strict=True)) as proc:
        assert set(proc.layers) >= set(LAYERS)
        assert proc.missing_layers() == []
        assert proc.layers["user"] in ("nobody", "unprivileged")
        assert proc.layers["landlock"] >= 1  # the Landlock ABI version
        out = proc.act(np.zeros((3, OBS_DIM), dtype=np.float32))
        assert out.shape == (3, 2) and np.isfinite(out).all()
    result = run_race(QUICK, [good()], options=SandboxOptions(strict=True), record=False)
    assert result.sandbox["missing"] == []


def test_strict_mode_needs_landlock_or_namespaces(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  spawned: list[tuple[int, str]]) -> None:
    """Without bubblewrap, Landlock alone keeps the child contained; without both, a strict
    sandbox refuses and says what to install."""
    no_ns = SandboxOptions(use_bwrap=False)
    with PolicyProcess(good(), no_ns) as proc:
        assert proc.layers["namespaces"] is False
        assert "namespaces" in proc.missing_layers()
        landlock = bool(proc.layers["landlock"])
        assert np.isfinite(proc.act(np.zeros((1, OBS_DIM), dtype=np.float32))).all()
    strict = dataclasses.replace(no_ns, strict=True)
    if landlock:
        with PolicyProcess(good(), strict) as proc:  # Landlock is enough
            assert sandbox.missing_required(proc.layers) == []
        src = sandbox.CHILD_SCRIPT.read_text()
        marker = '\nif __name__ == "__main__":'
        stubbed = src.replace(marker, "\n\ndef _landlock(libc):\n    return False\n\n" + marker)
        monkeypatch.setattr(sandbox, "CHILD_SCRIPT",
                            write_child(tmp_path, "child.py", stubbed))
    with pytest.raises(SandboxUnavailable) as info:
        PolicyProcess(good(), strict)
    assert "landlock or namespaces" in str(info.value) and STRICT_ENV in str(info.value)
    assert "apt-get install bubblewrap" in str(info.value)
    with pytest.raises(SandboxUnavailable):  # a race does not quietly run without it either
        run_race(QUICK, [good()], options=strict)
    assert_gone(spawned)


def test_strict_mode_refuses_a_missing_seccomp_layer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real child, with its seccomp step stubbed out as if libseccomp were absent; what
    else this machine lacks (bubblewrap's namespaces, say) is missing in both runs."""
    before = run_race(QUICK, [good()], record=False).sandbox["missing"]
    assert "seccomp" not in before
    src = sandbox.CHILD_SCRIPT.read_text()
    marker = '\nif __name__ == "__main__":'
    assert src.count(marker) == 1
    stubbed = src.replace(marker, "\n\ndef _seccomp(lib):\n    return False\n\n" + marker)
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", write_child(tmp_path, "child.py", stubbed))
    with pytest.raises(SandboxUnavailable) as info:
        PolicyProcess(good(), SandboxOptions(strict=True))
    assert "seccomp" in str(info.value)
    result = run_race(QUICK, [good()], record=False)  # not strict: runs, and says what lacks
    assert result.sandbox["missing"] == [n for n in sandbox.LAYERS if n in {*before, "seccomp"}]
    assert result.sandbox["layers"]["seccomp"] is False
    assert result.status in (FINISHED, DNF)


def _bare(layers: dict[str, Any]) -> PolicyProcess:
    proc = PolicyProcess.__new__(PolicyProcess)
    proc.layers = layers
    return proc


def test_missing_layers_logic() -> None:
    full = {"clean_env": True, "namespaces": True, "rlimits": True, "user": "nobody",
            "no_new_privs": True, "landlock": 4, "seccomp": True}
    assert _bare(full).missing_layers() == []
    assert _bare(full | {"user": "unprivileged"}).missing_layers() == []
    assert _bare(full | {"landlock": False, "namespaces": False}).missing_layers() == [
        "namespaces", "landlock"]  # in the documented order
    assert _bare({}).missing_layers() == list(LAYERS)
    partial = {k: v for k, v in full.items() if k != "seccomp"}
    assert _bare(partial).missing_layers() == ["seccomp"]
    env = {"PADDOCK_SANDBOX_STRICT": "1", "PADDOCK_SANDBOX_BWRAP": "0"}
    opts = SandboxOptions.from_env(env, action_timeout_s=0.2)
    assert (opts.strict, opts.use_bwrap, opts.action_timeout_s) == (True, False, 0.2)
    assert SandboxOptions.from_env({}) == SandboxOptions()


# ---------------------------------------------------------------------------- the lockdown
PROBE = r'''
import json, os, socket, subprocess, sys

evaluator_dir, cfg_json, mode, port, scratch = sys.argv[1:6]
sys.path.insert(0, evaluator_dir)
import numpy as np
import _policy_child

layers = _policy_child._lock_down(json.loads(cfg_json)) if mode == "locked" else {}


def attempt(action):
    try:
        action()
    except BaseException as err:
        return "refused: %s: %s" % (type(err).__name__, err)
    return "allowed"


def read_passwd():
    with open("/etc/passwd", "rb") as f:
        f.read(1)


def write_tmp():
    with open(os.path.join(scratch, "written.txt"), "w") as f:
        f.write("x")


def connect():
    socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()


def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


probes = {
    "open /etc/passwd": read_passwd,
    "list /": lambda: os.listdir("/"),
    "write a file in /tmp": write_tmp,
    "create a socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(),
    "connect to 127.0.0.1": connect,
    "fork": fork,
    "run a subprocess": lambda: subprocess.run(["/bin/true"], check=True),
    "signal the parent": lambda: os.kill(os.getppid(), 0),
}
if mode == "locked":
    probes["allocate 2 GiB"] = lambda: np.ones(2 << 30, dtype=np.uint8)
results = {name: attempt(fn) for name, fn in probes.items()}
print(json.dumps({"layers": layers, "results": results}), flush=True)
try:
    os.execv("/bin/echo", ["echo", "exec allowed"])
except BaseException as err:
    print("exec refused: %s" % err, flush=True)
'''


@pytest.fixture(scope="module")
def child_config() -> dict[str, Any]:
    """The configuration a real parent sends its child (captured off the pipe)."""
    sent: list[bytes] = []
    original = PolicyProcess._send

    def spy(self: PolicyProcess, data: bytes, *args: Any) -> None:
        sent.append(bytes(data))
        original(self, data, *args)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(PolicyProcess, "_send", spy)
        with PolicyProcess(good()):
            pass
    (n,) = struct.unpack("<I", sent[0][:4])
    cfg: dict[str, Any] = json.loads(sent[0][4:4 + n])
    assert {"memory_bytes", "cpu_seconds", "open_files"} <= set(cfg)
    return cfg


def _run_probe(tmp_path: Path, cfg: dict[str, Any], mode: str, scratch: str
               ) -> tuple[dict[str, Any], str]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-I", "-B", str(script), str(sandbox.CHILD_SCRIPT.parent),
             json.dumps(cfg), mode, str(port), scratch],
            capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, _, rest = proc.stdout.partition("\n")
    report: dict[str, Any] = json.loads(first)
    return report, rest.strip()


def test_lockdown_refuses_everything(child_config: dict[str, Any], tmp_path: Path,
                                     scratch_dir: str) -> None:
    # Control: the very same probes succeed in a process that is not locked down.
    control, control_exec = _run_probe(tmp_path, child_config, "open", scratch_dir)
    assert all(v == "allowed" for v in control["results"].values()), control
    assert control_exec == "exec allowed"
    os.unlink(os.path.join(scratch_dir, "written.txt"))

    report, exec_line = _run_probe(tmp_path, child_config, "locked", scratch_dir)
    layers = report["layers"]
    assert layers["rlimits"] and layers["no_new_privs"] and layers["landlock"]
    assert layers["seccomp"] and layers["user"] in ("nobody", "unprivileged")
    results = report["results"]
    assert set(results) == set(control["results"]) | {"allocate 2 GiB"}
    not_refused = {k: v for k, v in results.items() if not v.startswith("refused")}
    assert not not_refused, not_refused
    assert "MemoryError" in results["allocate 2 GiB"]
    assert exec_line.startswith("exec refused"), exec_line
    assert os.listdir(scratch_dir) == []


# ---------------------------------------------------------------------------- killed from outside
@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_policy_killed_from_outside(use_bwrap: bool, spawned: list[tuple[int, str]]) -> None:
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == 10 and not killed:
            pid, home = spawned[0]
            assert _processes_with_home(home)  # the scan does see a live policy process
            os.killpg(pid, SIGKILL)
            killed.append(pid)
            # Under bubblewrap the policy runs in its own session inside a PID namespace and
            # follows its killed bwrap a moment later: let it, before the race goes on.
            deadline = time.monotonic() + 2.0
            while _processes_with_home(home) and time.monotonic() < deadline:
                time.sleep(0.005)

    options = SandboxOptions(use_bwrap=use_bwrap, action_timeout_s=1.0)  # the kill ends it
    result = timed_race(QUICK.with_(trials=2), [good()], options, progress)
    assert killed
    _policy_error(result, 0, "died")
    assert "SIGKILL" in result.cars[0].error
    assert all(t.elapsed_s > 0 for t in result.cars[0].trials)  # it was racing when it died
    assert_gone(spawned)
    assert_parent_still_races()


# ---------------------------------------------------------------------------- lying children
FAKE_CHILD = FRAMING + r'''
import signal

MODE = __MODE__

read(struct.unpack("<I", read(4))[0])  # the configuration
report = b'{"layers": 5}' if MODE == "report-layers-not-an-object" else b'{"layers": {}}'
os.write(1, struct.pack("<I", len(report)) + report)
read(struct.unpack("<I", read(4))[0])  # the model
greeting = {
    "greeting-not-an-object": b"[]",
    "greeting-nested-deep": b"[" * 60000,
    "greeting-layers-not-an-object": b'{"layers": 5}',
}.get(MODE, b'{}')
os.write(1, struct.pack("<I", len(greeting)) + greeting)
read(4)
if MODE == "dies-of-a-real-time-signal":
    signal.raise_signal(signal.SIGRTMIN + 6)
read(4)
'''


@pytest.mark.parametrize(("mode", "says"), [
    ("greeting-not-an-object", "malformed greeting"),
    ("greeting-nested-deep", "failed to start"),
    ("greeting-layers-not-an-object", "malformed greeting"),
    ("report-layers-not-an-object", "malformed greeting"),
    ("dies-of-a-real-time-signal", "died while choosing an action (signal"),
])
def test_a_lying_child_is_a_policy_error(mode: str, says: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         spawned: list[tuple[int, str]]) -> None:
    """A child that was taken over by its model is as untrusted as the model itself."""
    fake = write_child(tmp_path, "fake_child.py", FAKE_CHILD.replace("__MODE__", repr(mode)))
    with monkeypatch.context() as m:
        m.setattr(sandbox, "CHILD_SCRIPT", fake)
        result = timed_race(QUICK, [good()], SandboxOptions(use_bwrap=False))
    _policy_error(result, 0, says)
    assert_gone(spawned)
    assert_parent_still_races()
