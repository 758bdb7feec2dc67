"""A loss failing a check stops the grid before its training. (The example's own loss through the tiny
grid to the site is tests/test_workflow.py's, which runs that grid.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
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
