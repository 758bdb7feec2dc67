"""The example's own loss through a tiny grid to the site, as the README tells a researcher to run
it (its folder on PYTHONPATH, its config after the grid's); a loss failing a check stops the grid
before its training."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "custom_loss"

GRID = {
    "seeds": [1],
    "baseline": "infonce",
    "models": {"tiny": {"path": "tiny", "settings": {"max_query_length": 16, "max_passage_length": 32}}},
    "datasets": {"gen": {"source": "generated", "family": "generic",
                         "options": {"seed": 5, "docs": 120, "train_queries": 40, "dev_queries": 8,
                                     "test_queries": 16}}},
    "train_sets": {"gen": {"batch_size": 8, "hard_negatives": 1, "max_positives": 2, "max_steps": 2,
                           "learning_rate": 1e-3}},
    "eval_sets": {"gen": {"split": "test"}},
    "losses": {"infonce": {}},
    "compare": {"permutations": 200, "resamples": 200},
    "encode": {"shards": 1},
    "teacher": {"kind": "bi-encoder", "model": "tiny"},
}

BROKEN = '''
from harness.losses import Loss


class UsesIgnored(Loss):
    """Pushes up every score, ignored entries included."""
    name, paper, citation = "uses_ignored", "https://example.org", "@misc{x, title={X}, year={2024}}"

    def compute(self, scores, labels, teacher):
        return -scores.mean()
'''


def snakemake(workdir: Path, pythonpath: list[Path], *configfiles: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, [*pythonpath, REPO])))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_example_loss_runs_through_the_grid_to_the_site(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
    proc = snakemake(tmp_path, [EXAMPLE], tmp_path / "config.yaml", EXAMPLE / "config.yaml")
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = tmp_path / "results"
    key = "dcl.tau_plus=0.1"
    report = json.loads((results / "loss-checks" / f"{key}.json").read_text())
    assert report["passed"] and report["params"] == {"temperature": 0.05, "tau_plus": 0.1}
    assert {c["name"] for c in report["checks"] if c["passed"]} >= {"finite", "gradcheck", "permutation",
                                                                    "ignored_zero_grad", "grad_cache"}
    checkpoint = results / "checkpoints/tiny/gen" / key / "seed1"
    source = EXAMPLE / "debiased_contrastive.py"
    summary = json.loads((checkpoint / "train_summary.json").read_text())
    assert summary["loss"]["source"] == {"class": "debiased_contrastive:DebiasedContrastive",
                                         "file": str(source.resolve()),
                                         "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert json.loads((checkpoint / "loss_check.json").read_text()) == report
    compare = json.loads((results / "compare/tiny/gen/gen.json").read_text())
    assert [r["loss"] for r in compare["rows"]] == ["zero-shot", "infonce", key]
    assert key in (tmp_path / "site/index.html").read_text()
    losses = (tmp_path / "site/losses.html").read_text()  # like a built-in, from the results files
    assert 'id="loss-debiased_contrastive"' in losses or "debiased" in losses
    assert "<code>debiased_contrastive:DebiasedContrastive</code>" in losses
    assert hashlib.sha256(source.read_bytes()).hexdigest()[:16] in losses
    assert losses.count("<td>PASS</td>") >= 5 and "Chuang" in losses  # the check report and the citation


@pytest.mark.slow
def test_a_loss_failing_a_check_stops_the_grid_before_training(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "lossboard_e2e_broken.py").write_text(BROKEN)
    grid = dict(GRID, losses={"infonce": {}, "greedy": {"loss": "lossboard_e2e_broken:UsesIgnored"}})
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    proc = snakemake(work, [user], work / "config.yaml")
    assert proc.returncode != 0
    assert "key 'losses.greedy'" in proc.stderr and "ignored_zero_grad" in proc.stderr
    assert not (work / "results/loss-checks/greedy.json").exists()
    assert not (work / "results/checkpoints/tiny/gen/greedy").exists()
