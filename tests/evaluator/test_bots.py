"""The shipped demo bots (files, metadata, skill order) and the trainer that makes them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from evaluator import _sim, car
from evaluator.metadata import METADATA_KEY, ModelMetadata, parse_metadata
from evaluator.observation import OBS_DIM
from evaluator.track_library import library_names, load_track
from evaluator.version import OBSERVATION_VERSION
from evaluator.world import World

ROOT = Path(__file__).resolve().parents[2]
BOTS_DIR = ROOT / "evaluator" / "bots"
TRAINER = ROOT / "tools" / "train_bots.py"
SKILL_ORDER = ("rookie", "amateur", "pro", "ace")  # weakest first
MAX_BOT_BYTES = 16 * 1024  # a demo bot is a few KB
SKILL_RACE_S = 60.0  # simulated seconds every bot drives in the skill test
SKILL_MARGIN = 1.05  # each bot covers at least this many times the distance of the one below
ACE_MAX_OFF_TRACKS = 1  # per skill race
SYMMETRY_TOL = 1e-5  # float32 slack when comparing an output with its mirror image


@pytest.fixture(scope="module")
def trainer() -> ModuleType:
    """``tools/train_bots.py`` imported as a module."""
    spec = importlib.util.spec_from_file_location("train_bots", TRAINER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_bots"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    """The shipped ``catalog.json``."""
    data: dict[str, Any] = json.loads((BOTS_DIR / "catalog.json").read_text("utf-8"))
    return data


def session(path: Path) -> ort.InferenceSession:
    """A single-threaded onnxruntime session of a bot file."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def embedded_metadata(sess: ort.InferenceSession) -> ModelMetadata:
    """The metadata a bot file carries under ``metadata_props["paddock"]``."""
    return parse_metadata(sess.get_modelmeta().custom_metadata_map[METADATA_KEY])


def drive(track_name: str, seconds: float) -> list[tuple[float, int]]:
    """Every shipped bot alone on the track under race rules: (metres covered, off-tracks)."""
    bots = [session(BOTS_DIR / f"{name}.onnx") for name in SKILL_ORDER]
    specs = [embedded_metadata(s).action_spec for s in bots]
    world = World(load_track(track_name), len(bots), race=True, interact=False)
    world.start_grid([0] * len(bots))
    acts = np.zeros((len(bots), 2))
    offs = np.zeros(len(bots), dtype=np.int64)
    for _ in range(int(round(seconds * car.CONTROL_HZ))):
        for i, (sess, spec) in enumerate(zip(bots, specs, strict=True)):
            out = sess.run(None, {sess.get_inputs()[0].name: world.obs[i:i + 1]
                                  .astype(np.float32)})[0]
            acts[i] = spec.map_unit(float(out[0, 0]), float(out[0, 1]))
        offs += world.step(acts)[:, _sim.E_OFFTRACK].astype(np.int64)
    return [(world.race_distance(i), int(offs[i])) for i in range(len(bots))]


# ------------------------------------------------------------------------- shipped files
def test_catalog_lists_every_shipped_bot(catalog: dict[str, Any]) -> None:
    assert [b["name"] for b in catalog["bots"]] == list(SKILL_ORDER)
    assert sorted(p.stem for p in BOTS_DIR.glob("*.onnx")) == sorted(SKILL_ORDER)
    for entry in catalog["bots"]:
        path = BOTS_DIR / entry["file"]
        assert path.name == f"{entry['name']}.onnx"
        assert 0 < path.stat().st_size <= MAX_BOT_BYTES
        assert entry["description"]
        assert entry["training"]["generations"] > 0
        assert set(entry["measured"]) == set(catalog["measurement"]["tracks"])


@pytest.mark.parametrize("name", SKILL_ORDER)
def test_bot_loads_with_shapes_and_metadata(name: str, catalog: dict[str, Any]) -> None:
    path = BOTS_DIR / f"{name}.onnx"
    onnx.checker.check_model(onnx.load(str(path)))
    sess = session(path)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.type == "tensor(float)" and inp.shape[1:] == [OBS_DIM]
    assert out.type == "tensor(float)" and out.shape[1:] == [2]
    obs = np.random.default_rng(0).uniform(-1.0, 1.0, (7, OBS_DIM)).astype(np.float32)
    action = sess.run(None, {inp.name: obs})[0]
    assert action.shape == (7, 2) and np.all(np.abs(action) <= 1.0)
    meta = embedded_metadata(sess)
    assert meta.name == name
    assert meta.observation == OBSERVATION_VERSION
    assert meta.action_spec.kind == "continuous"
    entry = next(b for b in catalog["bots"] if b["name"] == name)
    assert meta.action_spec.to_metadata() == entry["model_metadata"]


def test_top_speeds_rise_with_skill() -> None:
    tops = [embedded_metadata(session(BOTS_DIR / f"{n}.onnx")).action_spec.speed_range[1]
            for n in SKILL_ORDER]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert tops[-1] == car.MAX_SPEED_MPS


@pytest.mark.parametrize("name", SKILL_ORDER)
def test_bot_steers_mirror_images_the_other_way(name: str, trainer: ModuleType) -> None:
    sess = session(BOTS_DIR / f"{name}.onnx")
    obs = np.random.default_rng(1).uniform(-1.0, 1.0, (16, OBS_DIM)).astype(np.float32)
    mirrored = (obs[:, trainer.MIRROR_INDEX] * trainer.MIRROR_SIGN).astype(np.float32)
    a = sess.run(None, {"obs": obs})[0]
    b = sess.run(None, {"obs": mirrored})[0]
    np.testing.assert_allclose(b[:, 0], -a[:, 0], atol=SYMMETRY_TOL)
    np.testing.assert_allclose(b[:, 1], a[:, 1], atol=SYMMETRY_TOL)


# ------------------------------------------------------------------------- skill
@pytest.mark.parametrize("track_name", library_names())
def test_skill_order_holds_on_every_library_track(track_name: str) -> None:
    figures = drive(track_name, SKILL_RACE_S)
    distances = [d for d, _ in figures]
    for weaker, stronger in zip(distances, distances[1:], strict=False):
        assert stronger > SKILL_MARGIN * weaker, (track_name, figures)
    assert figures[-1][1] <= ACE_MAX_OFF_TRACKS, (track_name, figures)


def test_catalog_figures_are_measured_from_the_files(trainer: ModuleType,
                                                     catalog: dict[str, Any]) -> None:
    m = catalog["measurement"]
    track_name = m["tracks"][0]
    paths = [BOTS_DIR / f"{n}.onnx" for n in SKILL_ORDER]
    fresh = trainer.race(paths, load_track(track_name), laps=m["laps"],
                         time_cap_s=m["time_cap_s"], seed=m["start_seed"])
    for entry, figures in zip(catalog["bots"], fresh, strict=True):
        shipped = entry["measured"][track_name]
        assert figures["laps"] == shipped["laps"]
        assert figures["off_tracks"] == shipped["off_tracks"]
        assert figures["best_lap_s"] == pytest.approx(shipped["best_lap_s"], rel=0.01)


def test_catalog_ranks_the_bots_by_lap_time(catalog: dict[str, Any]) -> None:
    for track_name in catalog["measurement"]["tracks"]:
        figures = [b["measured"][track_name] for b in catalog["bots"]]
        ace = figures[-1]
        assert ace["laps"] == catalog["measurement"]["laps"] and ace["race_time_s"] is not None
        assert ace["off_tracks"] <= ACE_MAX_OFF_TRACKS
        # fewer laps, or the same laps in more time, is a weaker result
        keys = [(f["laps"], -(f["mean_lap_s"] or np.inf)) for f in figures]
        assert keys == sorted(keys) and len(set(keys)) == len(keys), (track_name, keys)


# ------------------------------------------------------------------------- the trainer
def test_quick_training_is_deterministic(trainer: ModuleType, tmp_path: Path) -> None:
    assert trainer.main(["--quick", "--quiet", "--out", str(tmp_path / "a")]) == 0
    assert trainer.main(["--quick", "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert trainer.main(["--quick", "--quiet", "--seed", "7", "--out", str(tmp_path / "c")]) == 0
    for name in SKILL_ORDER:
        a, b, c = ((tmp_path / d / f"{name}.onnx").read_bytes() for d in "abc")
        assert a == b
        assert a != c
        meta = embedded_metadata(session(tmp_path / "a" / f"{name}.onnx"))
        assert meta.name == name
    cat_a = json.loads((tmp_path / "a" / "catalog.json").read_text("utf-8"))
    cat_b = json.loads((tmp_path / "b" / "catalog.json").read_text("utf-8"))
    assert cat_a == cat_b
    assert [e["name"] for e in cat_a["bots"]] == list(SKILL_ORDER)
    assert all(e["measured"] for e in cat_a["bots"])


def test_quick_run_refuses_to_replace_the_shipped_bots(trainer: ModuleType) -> None:
    with pytest.raises(SystemExit):
        trainer.main(["--quick"])
