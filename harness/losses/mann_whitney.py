"""The Mann-Whitney (MW) loss: a logistic loss on every positive-negative score difference of the
batch, across queries, which optimises the global AUC."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from harness.losses.base import Loss, Param

CPU_CHUNK_ELEMENTS = 1 << 17
"""Most pair differences held at once on the CPU: tiles that stay in cache (measured 1.4-2x faster
than whole rows of pairs)."""
CHUNK_ELEMENTS = 1 << 24
"""Most pair differences held at once elsewhere: 64 MiB per float32 buffer, few kernel launches."""


class _PairSoftplusSum(torch.autograd.Function):
    """Σ_p Σ_n softplus(v_n − u_p) over every pair of ``u`` [P] and ``v`` [N], computed a tile of
    at most ``chunk_elements`` pairs at a time so that no [P, N] tensor exists. The gradients are
    accumulated in the same pass (d softplus(x)/dx = σ(x)), so backward only scales them: memory
    O(P + N + chunk_elements)."""

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, v: Tensor, chunk_elements: int, need_grad: bool) -> Tensor:
        cols = max(1, min(v.numel(), chunk_elements))
        rows = max(1, chunk_elements // cols)
        total = torch.zeros((), dtype=torch.float64, device=u.device)
        grad_u = torch.zeros_like(u)  # [P]
        grad_v = torch.zeros_like(v)  # [N]
        for i in range(0, u.numel(), rows):
            for j in range(0, v.numel(), cols):
                x = v[None, j:j + cols] - u[i:i + rows, None]  # [rows, cols] the tile's pair differences
                total += F.softplus(x).sum(dtype=torch.float64)
                if need_grad:
                    slope = x.sigmoid_()  # [rows, cols] σ(v_n − u_p), in place of x
                    grad_u[i:i + rows] -= slope.sum(dim=1)
                    grad_v[j:j + cols] += slope.sum(dim=0)
        ctx.save_for_backward(grad_u, grad_v)
        return total.to(u.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        grad_u, grad_v = ctx.saved_tensors
        return grad * grad_u, grad * grad_v, None, None


def pair_softplus_sum(u: Tensor, v: Tensor, chunk_elements: int) -> Tensor:
    """Σ_p Σ_n softplus(v_n − u_p) = −Σ_p Σ_n log σ(u_p − v_n) for ``u`` [P] and ``v`` [N], in
    O(P + N + chunk_elements) memory; differentiable once."""
    need_grad = torch.is_grad_enabled() and (u.requires_grad or v.requires_grad)
    return _PairSoftplusSum.apply(u, v, chunk_elements, need_grad)


def _own_row_pair_sum(logits: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """Σ_i Σ_{p ∈ P_i} Σ_{n ∈ N_i} softplus(x_in − x_ip), the k-th positive of every row at a time."""
    slot = positives.cumsum(dim=1) - 1  # [Q, D] rank of each positive within its row
    most = int(positives.sum(dim=1).max()) if positives.numel() else 0
    total = logits.sum() * 0
    for k in range(most):
        kth = positives & (slot == k)  # [Q, D] at most one True per row
        kth_logit = logits.gather(1, kth.int().argmax(dim=1, keepdim=True))  # [Q, 1]
        pairs = negatives & kth.any(dim=1, keepdim=True)  # [Q, D]
        total = total + torch.where(pairs, F.softplus(logits - kth_logit), 0).sum()
    return total


class MannWhitney(Loss):
    """Mann-Whitney loss (Eq. 3 of the paper): every positive of the batch must outscore every
    negative of the batch, whichever query either belongs to, so that scores become comparable
    across queries (the loss bounds 1 − global AUC):

        L = −(1/Q) Σ_i Σ_{p ∈ P_i} Σ_{n ∈ S⁻} log σ((s_p − s_n) / τ),

    where P_i are row i's entries with label > 0, S⁻ is every entry with label 0 in every row, and
    Q the number of queries (rows) in the batch, as in the paper (not the number of pairs). The
    paper has one positive per query; summing over several is the harness's extension. The exact
    sum has P·|S⁻| terms (8.6·10⁹ at Q = 1024, D = 8192); it is computed in tiles of at most
    ``CHUNK_ELEMENTS`` pairs (``CPU_CHUNK_ELEMENTS`` on the CPU) with the gradient accumulated in
    the same pass, so memory stays O(Q·D). Only first derivatives are supported.

    Args:
        temperature: τ, which divides the score differences (default 0.01, the paper's §5.1).
        pairs: restrict S⁻ to the row's own negatives N_i (default False). Not in the paper: an
            ablation that removes the cross-query comparisons, i.e. a per-query AUC loss.

    References:
        Sheikholeslami et al., Optimizing What Matters: AUC-Driven Learning for Robust Neural
        Retrieval, https://arxiv.org/abs/2510.00137 (no public code).

    Inputs:
        scores [Q, D] float; labels [Q, D] (> 0 positive, 0 negative, < 0 ignored); teacher unused.

    Relations:
        Unlike ``infonce``, changed by adding a constant to one row's scores: that row's positives
        and negatives move against every other row's.

    Example:
        >>> import torch
        >>> from harness.losses import get_loss
        >>> loss = get_loss("mw", temperature=0.1)
        >>> scores = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3]], requires_grad=True)
        >>> labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
        >>> value = loss(scores, labels)
        >>> value.backward()
        >>> round(value.item(), 4)
        0.0147
    """

    name = "mw"
    paper = "https://arxiv.org/abs/2510.00137"
    citation = """@article{sheikholeslami2025auc,
  title={Optimizing What Matters: AUC-Driven Learning for Robust Neural Retrieval},
  author={Sheikholeslami, Nima and Hosseini, Erfan and Bechard, Patrice and Daruru, Srivatsava and Rajeswar, Sai},
  journal={arXiv preprint arXiv:2510.00137},
  year={2025}
}"""
    params = {
        "temperature": Param(0.01, "τ, which divides the score differences", "positive"),
        "pairs": Param(False, "compare each positive only with its own row's negatives (ablation)"),
    }
    temperature: float
    pairs: bool

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        logits = scores / self.temperature  # [Q, D]
        positives, negatives = labels > 0, labels == 0  # [Q, D]
        if self.pairs:
            total = _own_row_pair_sum(logits, positives, negatives)
        else:
            chunk = CPU_CHUNK_ELEMENTS if scores.device.type == "cpu" else CHUNK_ELEMENTS
            total = pair_softplus_sum(logits[positives], logits[negatives], chunk)  # u [P], v [|S⁻|]
        return total / max(scores.shape[0], 1)
