"""LTRGR's rank loss against a float64 plain loop of its formula (../shared/PAPERS.md)."""

import math

import numpy as np
import torch

from harness.losses.ltrgr import ltrgr_rank_loss


def reference(p1, n1, p2, n2, m=300.0, offset=100.0) -> float:
    top = [max(0.0, n - p + m) for p, n in zip(p1, n1)]
    drawn = [max(0.0, n - p + m + offset) for p, n in zip(p2, n2)]
    return 0.5 * sum(top) / len(top) + 0.5 * sum(drawn) / len(drawn)


def test_matches_plain_loop_and_gradients():
    rng = np.random.default_rng(3)
    scores = [rng.normal(300, 250, 7) for _ in range(4)]
    tensors = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in scores]
    value = ltrgr_rank_loss(*tensors)
    assert math.isclose(value.item(), reference(*scores), rel_tol=1e-12)
    value.backward()
    for i in range(7):  # d/ds_p1 = -0.5/Q where the top hinge is active, else 0
        active = scores[1][i] - scores[0][i] + 300 > 0
        assert tensors[0].grad[i].item() == (-0.5 / 7 if active else 0.0)


def test_ranked_right_by_the_margin_costs_nothing():
    p = torch.tensor([1000.0, 900.0])
    n = torch.tensor([650.0, 550.0])
    assert ltrgr_rank_loss(p, n, p, n - 100).item() == 0.0
    assert ltrgr_rank_loss(p, n, p, n).item() > 0.0  # the random pair's margin is 100 wider
