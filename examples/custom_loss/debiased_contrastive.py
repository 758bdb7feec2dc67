"""An example of a researcher's own loss: the debiased contrastive loss of Chuang et al. (2020),
written from the paper's formula against lossboard's loss contract."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from harness.errors import ConfigError
from harness.losses import Loss, Param
from harness.losses.base import row_mean, target_index


class DebiasedContrastive(Loss):
    """Debiased contrastive loss: InfoNCE whose negatives are corrected for the chance τ⁺ that a
    sampled "negative" is in fact a positive, estimating the true negatives' mass from the
    sampled ones (Chuang et al., 2020, eq. 6 with M = 1 positive sample),

        g_i = max( (1 / (1 − τ⁺)) · ( (1/N_i) Σ_{j ∈ N_i} e^{s_ij/t} − τ⁺ · e^{s_ip/t} ),  e^{−1/t} ),
        L = mean_i [ −log( e^{s_ip/t} / (e^{s_ip/t} + N_i · g_i) ) ],

    where p is row i's target positive (its largest label), N_i its negatives (label 0) and
    N_i = |N_i|; e^{−1/t} is the smallest e^{s/t} of a cosine score, the floor the paper puts on
    the estimate. Computed in log space (every term shifted by the row's largest logit). τ⁺ = 0
    gives ``infonce``. Rows without a positive are skipped.

    Args:
        temperature: t, which divides the scores (default 0.05).
        tau_plus: τ⁺, the prior probability that a negative shares the query's class, in [0, 1)
            (default 0.1).

    References:
        Chuang, Robinson, Lin, Torralba, Jegelka, Debiased Contrastive Learning, NeurIPS 2020,
        https://arxiv.org/abs/2007.00224 (code: chingyaoc/DCL).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Example:
        >>> import torch
        >>> from debiased_contrastive import DebiasedContrastive
        >>> loss = DebiasedContrastive(temperature=0.1, tau_plus=0.1)
        >>> scores = torch.tensor([[0.5, 0.2, 0.4, 0.3], [0.1, 0.6, 0.5, 0.2]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)  # InfoNCE (τ⁺ = 0): 0.3792
        0.2125
    """

    name = "debiased_contrastive"
    paper = "https://arxiv.org/abs/2007.00224"
    citation = """@inproceedings{chuang2020debiased,
  title={Debiased Contrastive Learning},
  author={Chuang, Ching-Yao and Robinson, Joshua and Lin, Yen-Chen and Torralba, Antonio and Jegelka, Stefanie},
  booktitle={Advances in Neural Information Processing Systems},
  volume={33},
  pages={8765--8775},
  year={2020}
}"""
    params = {"temperature": Param(0.05, "t, which divides the scores", "positive"),
              "tau_plus": Param(0.1, "τ⁺, the prior that a negative is a positive, in [0, 1)", "nonnegative")}
    temperature: float
    tau_plus: float

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not self.tau_plus < 1:
            raise ConfigError(f"must be < 1, got {self.tau_plus!r}", key=f"losses.{self.name}.tau_plus")

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        logits = scores / self.temperature  # [Q, D]
        negatives = labels == 0  # [Q, D]
        count = negatives.sum(dim=1)  # [Q] N_i
        target = logits.gather(1, target_index(labels)[:, None]).squeeze(1)  # [Q] s_ip / t
        # The shift m_i cancels in L; held constant, it leaves the gradient exact.
        shift = torch.maximum(target, logits.masked_fill(~negatives, float("-inf")).amax(dim=1)).detach()  # [Q]
        positive = (target - shift).exp()  # [Q] e^{s_ip/t} e^{−m}
        negative = torch.where(negatives, logits - shift[:, None], float("-inf")).exp().sum(dim=1)  # [Q]
        floor = torch.exp(-1 / self.temperature - shift)  # [Q] e^{−1/t} e^{−m}
        g = ((negative / count.clamp(min=1) - self.tau_plus * positive) / (1 - self.tau_plus)).clamp(min=floor)  # [Q]
        per_row = torch.log(positive + count * g) + shift - target  # [Q]
        return row_mean(per_row, (labels > 0).any(dim=1))
