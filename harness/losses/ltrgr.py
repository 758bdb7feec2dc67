"""LTRGR's rank loss on a generative retriever's passage scores (not a score-matrix loss of the registry)."""

from __future__ import annotations

import torch
from torch import Tensor

CITATION = """@inproceedings{li2024ltrgr,
  title={Learning to Rank in Generative Retrieval},
  author={Li, Yongqi and Yang, Nan and Wang, Liang and Wei, Furu and Li, Wenjie},
  booktitle={Proceedings of the AAAI Conference on Artificial Intelligence},
  year={2024}
}"""
MARGIN = 300.0  # m, on MINDER's scale (sums of up to 40 identifier scores)
RANDOM_OFFSET = 100.0  # added to the margin of the random pair
GENERATION_WEIGHT = 1000.0  # λ


def ltrgr_rank_loss(top_positive: Tensor, top_negative: Tensor, random_positive: Tensor, random_negative: Tensor,
                    margin: float = MARGIN, offset: float = RANDOM_OFFSET) -> Tensor:
    """LTRGR's margin rank loss (Li et al., AAAI 2024, arXiv 2306.15222, eqs. 6-8; the MINDER repository):

        L_rank = 0.5 · mean_q relu(s_n1 − s_p1 + m) + 0.5 · mean_q relu(s_n2 − s_p2 + m + 100),

    where (p1, n1) are the top positive and the top negative of the query's fixed, pre-computed
    ranking and (p2, n2) a random positive and a random negative of it; every s is the current
    model's passage score (a sum of identifier scores). The training total is
    L_rank + λ · L_gen with λ = 1000, m = 300. Queries already ranked right by the margin are
    dropped from the data beforehand, not here.

    Inputs: four [Q] tensors of passage scores. Returns a scalar.

    Example:
        >>> import torch
        >>> float(ltrgr_rank_loss(torch.tensor([500.0]), torch.tensor([400.0]), torch.tensor([300.0]),
        ...                       torch.tensor([0.0])))
        150.0
    """
    top = torch.relu(top_negative - top_positive + margin)
    drawn = torch.relu(random_negative - random_positive + margin + offset)
    return 0.5 * top.mean() + 0.5 * drawn.mean()
