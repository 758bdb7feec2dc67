"""The example's own loss through the tiny grid to the site, as the README tells a researcher to run
it (its folder on PYTHONPATH, its config after the grid's: ``conftest.tiny_grid``); a loss failing a
check stops the grid before its training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import CUSTOM_LOSS as EXAMPLE
from conftest import Workflow

GRID = {  # the smallest grid a loss check can stop: no miner, MTEB or second shard
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


@pytest.mark.slow
def test_example_loss_runs_through_the_grid_to_the_site(tiny_grid) -> None:
    flow, proc = tiny_grid
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = flow.workdir / "results"
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
    assert [r["loss"] for r in compare["rows"]][-1] == key
    assert key in (flow.workdir / "site/index.html").read_text()
    losses = (flow.workdir / "site/losses.html").read_text()  # like a built-in, from the results files
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
    proc = Workflow(work, (work / "config.yaml",), (user,)).snakemake("--cores", "2")
    assert proc.returncode != 0
    assert "key 'losses.greedy'" in proc.stderr and "ignored_zero_grad" in proc.stderr
    assert not (work / "results/loss-checks/greedy.json").exists()
    assert not (work / "results/checkpoints/tiny/gen/greedy").exists()
