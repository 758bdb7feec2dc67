"""InfoNCE: softmax cross-entropy of each query's target positive against its negatives."""

from __future__ import annotations

from torch import Tensor

from harness.losses.base import Loss, Param, masked_logsumexp, row_mean, target_index


def infonce_rows(scores: Tensor, negatives: Tensor, target: Tensor, temperature: float) -> Tensor:
    """[Q] −log softmax of column ``target[i]`` over that column plus the row's ``negatives``."""
    logits = scores / temperature  # [Q, D]
    candidates = negatives.scatter(1, target[:, None], True)  # [Q, D] the target joins the denominator
    target_logit = logits.gather(1, target[:, None]).squeeze(1)  # [Q]
    return masked_logsumexp(logits, candidates) - target_logit  # [Q]


class InfoNCE(Loss):
    """InfoNCE with in-batch and hard negatives: each query's target positive t (its largest label)
    must win a softmax against every negative in the batch,

        L = mean_i [ log Σ_{j ∈ N_i ∪ {t_i}} exp(s_ij / τ) − s_it / τ ],

    where N_i are the row's entries with label 0. The row's other positives are left out of the
    denominator (they are neither target nor negative); rows without a positive are skipped.

    Args:
        temperature: τ, which divides the scores (default 0.05, i.e. a scale of 20).

    References:
        van den Oord et al., Representation Learning with Contrastive Predictive Coding,
        https://arxiv.org/abs/1807.03748; in-batch negatives for retrieval: Karpukhin et al.,
        Dense Passage Retrieval, https://arxiv.org/abs/2004.04906.

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Relations:
        Invariant to adding a constant to one row's scores (only differences within a row count),
        hence oblivious to calibration across queries; compare ``mw``. Equal to ``rand1lh`` on rows
        with one positive.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("infonce", temperature=0.1)
        >>> scores = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.0043
    """

    name = "infonce"
    paper = "https://arxiv.org/abs/1807.03748"
    citation = """@article{oord2018cpc,
  title={Representation Learning with Contrastive Predictive Coding},
  author={van den Oord, Aaron and Li, Yazhe and Vinyals, Oriol},
  journal={arXiv preprint arXiv:1807.03748},
  year={2018}
}
@inproceedings{karpukhin2020dpr,
  title={Dense Passage Retrieval for Open-Domain Question Answering},
  author={Karpukhin, Vladimir and O{\\u{g}}uz, Barlas and Min, Sewon and Lewis, Patrick and Wu, Ledell and Edunov, Sergey and Chen, Danqi and Yih, Wen-tau},
  booktitle={Proceedings of EMNLP},
  pages={6769--6781},
  year={2020}
}"""
    params = {"temperature": Param(0.05, "τ, which divides the scores", "positive")}
    temperature: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        per_row = infonce_rows(scores, labels == 0, target_index(labels), self.temperature)  # [Q]
        return row_mean(per_row, (labels > 0).any(dim=1))
