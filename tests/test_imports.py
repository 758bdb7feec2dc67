"""The import layers of ``pyproject.toml`` (import-linter): kept by the code, broken by an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [str(Path(sys.executable).with_name("lint-imports"))]


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
                          capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_a_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    mining = tmp_path / "harness" / "data" / "mining.py"
    mining.write_text(mining.read_text(encoding="utf-8") + "\nfrom harness.stages.mine import mine_dense\n",
                      encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "libraries never import a stage or the CLI BROKEN" in result.stdout
    assert "data knows no model, retrieval, loss or training BROKEN" in result.stdout  # through the stage
    assert "harness.data.mining -> harness.stages.mine" in result.stdout
