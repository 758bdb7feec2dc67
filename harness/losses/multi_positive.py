"""Four ways to train on several positives per query (Wang et al., arXiv 2602.12727).

In all four, P_i are row i's entries with label > 0 (m_i of them), N_i its entries with label 0
(other queries' documents included), "valid" its entries with label >= 0, and LSE the log-sum-exp.
The paper uses τ = 1 (raw dot products); rows without a positive are dropped before the mean.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from harness.losses.base import Param, Loss, SeededLoss, masked_logsumexp, pick_uniform, row_mean
from harness.losses.contrastive import infonce_rows

PAPER = "https://arxiv.org/abs/2602.12727"
CITATION = """@article{wang2026multipositive,
  title={Training Dense Retrievers with Multiple Positive Passages},
  author={Wang, Benben and Tang, Minghao and Zhang, Hengran and Guo, Jiafeng and Bi, Keping},
  journal={arXiv preprint arXiv:2602.12727},
  year={2026}
}"""
TEMPERATURE = Param(1.0, "τ, which divides the scores (the paper: 1, no temperature)", "positive")


class JointLH(Loss):
    """Joint likelihood: every positive is a separate softmax target over the whole row,

        L_i = m_i · LSE_{j valid}(s_ij / τ) − Σ_{p ∈ P_i} s_ip / τ,

    i.e. Σ_p −log softmax_p. Not divided by m_i (the authors' default), so queries with more
    positives weigh more. Mean over rows with a positive.

    Args:
        temperature: τ, which divides the scores (default 1.0).

    References:
        Wang et al., Training Dense Retrievers with Multiple Positive Passages,
        https://arxiv.org/abs/2602.12727 (code: a Tevatron v1 fork, Multi-Positive-Passages).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Relations:
        The positives compete with each other in the denominator; ``summarglh`` and ``lsepair``
        do not make them.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("jointlh")
        >>> scores = torch.tensor([[3.0, 2.5, 0.5, 1.0]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        1.702
    """

    name = "jointlh"
    paper = PAPER
    citation = CITATION
    params = {"temperature": TEMPERATURE}
    temperature: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        logits = scores / self.temperature  # [Q, D]
        positives = labels > 0  # [Q, D]
        count = positives.sum(dim=1)  # [Q] m_i
        per_row = count * masked_logsumexp(logits, labels >= 0) - (logits * positives).sum(dim=1)  # [Q]
        return row_mean(per_row, count > 0)


class SumMargLH(Loss):
    """Summed marginal likelihood: the softmax mass on the positives, together, is maximised,

        L_i = LSE_{j valid}(s_ij / τ) − LSE_{p ∈ P_i}(s_ip / τ),

    i.e. −log Σ_p softmax_p; mean over rows with a positive.

    Args:
        temperature: τ, which divides the scores (default 1.0).

    References:
        Wang et al., Training Dense Retrievers with Multiple Positive Passages,
        https://arxiv.org/abs/2602.12727 (code: a Tevatron v1 fork, Multi-Positive-Passages).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Relations:
        Satisfied once any one positive dominates, so the other positives may be neglected.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("summarglh")
        >>> scores = torch.tensor([[3.0, 2.5, 0.5, 1.0]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.1269
    """

    name = "summarglh"
    paper = PAPER
    citation = CITATION
    params = {"temperature": TEMPERATURE}
    temperature: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        logits = scores / self.temperature  # [Q, D]
        positives = labels > 0  # [Q, D]
        per_row = masked_logsumexp(logits, labels >= 0) - masked_logsumexp(logits, positives)  # [Q]
        return row_mean(per_row, positives.any(dim=1))


class LSEPair(Loss):
    """Log-sum-exp pairwise loss: a smooth maximum over every (positive, negative) pair of the row,

        L_i = softplus(LSE_{n ∈ N_i}(s_in / τ) + LSE_{p ∈ P_i}(−s_ip / τ))
            = log(1 + Σ_{p ∈ P_i} Σ_{n ∈ N_i} exp((s_in − s_ip) / τ)),

    mean over rows with a positive (a row without negatives contributes 0).

    Args:
        temperature: τ, which divides the scores (default 1.0).

    References:
        Wang et al., Training Dense Retrievers with Multiple Positive Passages,
        https://arxiv.org/abs/2602.12727 (code: a Tevatron v1 fork, Multi-Positive-Passages).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Relations:
        The positives never compete with each other; the paper finds it the most robust of the four.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("lsepair")
        >>> scores = torch.tensor([[3.0, 2.5, 0.5, 1.0]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.4548
    """

    name = "lsepair"
    paper = PAPER
    citation = CITATION
    params = {"temperature": TEMPERATURE}
    temperature: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        logits = scores / self.temperature  # [Q, D]
        positives = labels > 0  # [Q, D]
        per_row = F.softplus(masked_logsumexp(logits, labels == 0) + masked_logsumexp(-logits, positives))  # [Q]
        return row_mean(per_row, positives.any(dim=1))


class Rand1LH(SeededLoss):
    """Random single positive: InfoNCE on one positive drawn uniformly per row and call, the row's
    other positives being masked out of its denominator (in the paper they never enter the batch),

        L_i = LSE_{j ∈ N_i ∪ {r_i}}(s_ij / τ) − s_ir / τ,   r_i ~ Uniform(P_i);

    mean over rows with a positive. The draws come from the loss's own generator, seeded once.

    Args:
        temperature: τ, which divides the scores (default 1.0).
        seed: seed of the generator that draws the positives (default 0).

    References:
        Wang et al., Training Dense Retrievers with Multiple Positive Passages,
        https://arxiv.org/abs/2602.12727 (code: a Tevatron v1 fork, Multi-Positive-Passages).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Relations:
        Equals ``infonce`` (at the same τ) on rows with one positive; the grades of the labels are
        not used.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("rand1lh", seed=1)
        >>> scores = torch.tensor([[3.0, 2.5, 0.5, 1.0]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.1967
    """

    name = "rand1lh"
    paper = PAPER
    citation = CITATION
    params = {"temperature": TEMPERATURE, "seed": Param(0, "seed of the positive draws", "nonnegative")}
    temperature: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        positives = labels > 0  # [Q, D]
        drawn = pick_uniform(positives, self.generator)  # [Q]
        per_row = infonce_rows(scores, labels == 0, drawn, self.temperature)  # [Q]
        return row_mean(per_row, positives.any(dim=1))
