"""The architecture's import contracts (``[tool.importlinter]`` in pyproject.toml): packages
depend downward (web → league → evaluator), the league's subpackages too, the simulator knows
nothing of the database or the web, and no package holds an import circle."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("evaluator", "league", "web")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages under ``root``, with the project's contracts."""
    command = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(command), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                         cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=300)
    run.stdout = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout)  # its report, without colours
    return run


def test_the_code_keeps_every_contract() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "BROKEN" not in run.stdout


def _copy_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "*.csv",
                                                      "static", "templates"))
    return tmp_path


def test_an_import_back_up_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    with (tree / "league" / "rules" / "text.py").open("a") as f:
        f.write("\nfrom league.read import browse  # noqa: E402\n")
    run = _lint_imports(tree)
    assert run.returncode != 0
    assert "league.rules.text -> league.read.browse" in run.stdout


def test_an_import_circle_inside_a_package_breaks_a_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    with (tree / "evaluator" / "car.py").open("a") as f:
        f.write("\nimport evaluator.world  # noqa: E402\n")
    run = _lint_imports(tree)
    assert run.returncode != 0
    assert "No import circles inside a package BROKEN" in run.stdout
