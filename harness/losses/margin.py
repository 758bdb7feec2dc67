"""LTRGR's margin rank loss, adapted from a generative retriever's ranking to a dense batch."""

from __future__ import annotations

import torch
from torch import Tensor

from harness.losses.base import Param, SeededLoss, pick_uniform, row_mean
from harness.losses.ltrgr import CITATION as LTRGR_CITATION


def _at(scores: Tensor, columns: Tensor) -> Tensor:
    """[Q] the score of each row at its column."""
    return scores.gather(1, columns[:, None]).squeeze(1)


class LTRMargin(SeededLoss):
    """Margin rank loss of LTRGR: the row's best positive must beat its best negative by a margin,
    and so must a random positive-negative pair,

        L = w_top · mean_i relu(max_{n ∈ N_i} s_in − max_{p ∈ P_i} s_ip + m)
          + w_rand · mean_i relu(s_in' − s_ip' + m + δ),   p' ~ Uniform(P_i), n' ~ Uniform(N_i),

    over the rows with both a positive (label > 0) and a negative (label 0); a row already ranked
    right by the margin contributes 0. The random pair comes from the loss's own generator.

    Dense adaptation: in the paper (a generative retriever, MINDER) the pairs come from a fixed,
    pre-computed top-100/200 ranking of each training query, queries already ranked right are
    dropped from the data, the scores are sums of up to 40 identifier scores, and m = 300, δ = 100
    with a generation loss weighted by 1000 beside it. Here the pairs come from the batch's current
    scores, and the margins are on the scale of cosine or dot-product scores (m = 0.1, δ = 0).

    Args:
        margin: m, the margin of both terms (default 0.1; the paper: 300 on its own scale).
        random_margin_offset: δ, added to the margin of the random pair (default 0.0; the paper: 100).
        top_weight: w_top, the weight of the top-pair term (default 0.5).
        random_weight: w_rand, the weight of the random-pair term (default 0.5).
        seed: seed of the generator that draws the random pairs (default 0).

    References:
        Li et al., Learning to Rank in Generative Retrieval, AAAI 2024,
        https://arxiv.org/abs/2306.15222 (code: in the MINDER repository).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("ltr_margin", seed=1)
        >>> scores = torch.tensor([[0.9, 0.2, 0.85], [0.1, 0.8, 0.3]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.0125
    """

    name = "ltr_margin"
    paper = "https://arxiv.org/abs/2306.15222"
    citation = LTRGR_CITATION
    params = {
        "margin": Param(0.1, "m, the margin of both terms"),
        "random_margin_offset": Param(0.0, "δ, added to the margin of the random pair"),
        "top_weight": Param(0.5, "weight of the top-pair term", "nonnegative"),
        "random_weight": Param(0.5, "weight of the random-pair term", "nonnegative"),
        "seed": Param(0, "seed of the random-pair draws", "nonnegative"),
    }
    margin: float
    random_margin_offset: float
    top_weight: float
    random_weight: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        positives, negatives = labels > 0, labels == 0  # [Q, D]
        rows = positives.any(dim=1) & negatives.any(dim=1)  # [Q]
        best_positive = _at(scores, scores.masked_fill(~positives, float("-inf")).argmax(dim=1))  # [Q]
        best_negative = _at(scores, scores.masked_fill(~negatives, float("-inf")).argmax(dim=1))  # [Q]
        drawn_positive = _at(scores, pick_uniform(positives, self.generator))  # [Q]
        drawn_negative = _at(scores, pick_uniform(negatives, self.generator))  # [Q]
        top = torch.relu(best_negative - best_positive + self.margin)  # [Q]
        drawn = torch.relu(drawn_negative - drawn_positive + self.margin + self.random_margin_offset)  # [Q]
        return self.top_weight * row_mean(top, rows) + self.random_weight * row_mean(drawn, rows)
