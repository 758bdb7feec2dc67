"""Listwise distillation from a cross-encoder teacher, with InfoNCE and a false-negative filter (CADET)."""

from __future__ import annotations

import torch
from torch import Tensor

from harness.errors import TrainingError
from harness.losses.base import Loss, Param, masked_logsumexp, row_mean, target_index
from harness.losses.contrastive import infonce_rows


def _masked_log_softmax(x: Tensor, mask: Tensor) -> Tensor:
    """[Q, D] log-softmax of each row over its ``mask`` entries; 0 elsewhere (and on empty rows)."""
    return torch.where(mask, x - masked_logsumexp(x, mask)[:, None], 0)


class ListwiseKD(Loss):
    """CADET's objective: the student's softmax over each query's own candidate list is pulled to
    the teacher's, plus a small InfoNCE term whose denominator drops likely false negatives,

        L = w · mean_{i: P_i ≠ ∅} InfoNCE_i(τ_c) + mean_{i: T_i ≠ ∅} KL(softmax(t_i / τ_t) ‖ softmax(s_i / τ_s)),

    where T_i are row i's entries with a teacher score (not NaN) and both softmaxes run over T_i
    only (``batchmean`` over rows with a list). InfoNCE is ``infonce``'s (target: the largest label;
    denominator: the target and the row's negatives in the whole batch) except that a negative whose
    teacher score exceeds ``filter_ratio`` × the row's top teacher score is left out of it.

    Teacher scores must already be rescaled to [0, 1], as in the paper (min-max between the 1st and
    99th percentiles of all the teacher's training scores, clipped): the teacher stage does it, and
    τ_t and the filter act on that scale; other values raise :class:`TrainingError`. The teacher
    stage also marks the teacher's top-1 passage as the positive label, as the paper does. The
    filter acts per entry (i, j): a batch holds each document in one column.

    Args:
        student_temperature: τ_s, dividing the student's scores in the KL term (default 0.05).
        teacher_temperature: τ_t, dividing the rescaled teacher scores (default 0.3).
        contrastive_weight: w, the weight of the InfoNCE term (default 0.1).
        contrastive_temperature: τ_c, the temperature of the InfoNCE term (default 0.01).
        filter_ratio: a negative scoring above this fraction of the row's top teacher score is
            dropped from the InfoNCE denominator (default 0.6).

    References:
        Tamber et al., Conventional Contrastive Learning Often Falls Short: Improving Dense Retrieval
        with Cross-Encoder Listwise Distillation and Synthetic Data, https://arxiv.org/abs/2505.19274
        (code: cadet-dense-retrieval).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored);
        teacher [Q, D] float in [0, 1], NaN where the document is not in the query's list (required).

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("listwise_kd")
        >>> scores = torch.tensor([[0.9, 0.2, 0.8], [0.1, 0.8, 0.3]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> nan = float("nan")
        >>> teacher = torch.tensor([[1.0, 0.1, 0.7], [nan, 0.9, 0.2]])
        >>> value = loss(scores, labels, teacher)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.5045
    """

    name = "listwise_kd"
    paper = "https://arxiv.org/abs/2505.19274"
    citation = """@article{tamber2025conventional,
  title={Conventional Contrastive Learning Often Falls Short: Improving Dense Retrieval with Cross-Encoder Listwise Distillation and Synthetic Data},
  author={Tamber, Manveer Singh and Kazi, Suleman and Sourabh, Vivek and Lin, Jimmy},
  journal={arXiv preprint arXiv:2505.19274},
  year={2025}
}"""
    needs_teacher = True
    params = {
        "student_temperature": Param(0.05, "τ_s, dividing the student's scores in the KL term", "positive"),
        "teacher_temperature": Param(0.3, "τ_t, dividing the rescaled teacher scores", "positive"),
        "contrastive_weight": Param(0.1, "weight of the InfoNCE term", "nonnegative"),
        "contrastive_temperature": Param(0.01, "τ of the InfoNCE term", "positive"),
        "filter_ratio": Param(0.6, "negatives above this fraction of the top teacher score leave InfoNCE",
                              "nonnegative"),
    }
    student_temperature: float
    teacher_temperature: float
    contrastive_weight: float
    contrastive_temperature: float
    filter_ratio: float

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        assert teacher is not None  # checked by forward
        listed = ~teacher.isnan()  # [Q, D] the row's own candidate list
        known = teacher[listed]
        if known.numel() and not bool(((known >= 0) & (known <= 1)).all()):
            raise TrainingError(f"{self.name}: teacher scores must be rescaled to [0, 1] before the loss "
                                f"(got {known.min().item():.4g} to {known.max().item():.4g}); the teacher stage "
                                "rescales with the 1st and 99th percentiles of the teacher's training scores")
        teacher = teacher.to(scores.dtype)
        top = teacher.masked_fill(~listed, float("-inf")).amax(dim=1)  # [Q] the row's top teacher score
        false_negative = (labels == 0) & (teacher > self.filter_ratio * top[:, None])  # [Q, D] NaN → False
        contrastive = infonce_rows(scores, (labels == 0) & ~false_negative, target_index(labels),
                                   self.contrastive_temperature)  # [Q]
        log_student = _masked_log_softmax(scores / self.student_temperature, listed)  # [Q, D]
        log_teacher = _masked_log_softmax(teacher / self.teacher_temperature, listed)  # [Q, D]
        kl = (log_teacher.exp() * listed * (log_teacher - log_student)).sum(dim=1)  # [Q]
        return (self.contrastive_weight * row_mean(contrastive, (labels > 0).any(dim=1))
                + row_mean(kl, listed.any(dim=1)))
