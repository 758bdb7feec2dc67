"""Every loss against a plain-loop float64 implementation written here from the formulas of issue #7
(and ../shared/PAPERS.md): value and gradient, on batches with one and with several (graded)
positives, ignored entries, rows without a positive and rows without a negative."""

from __future__ import annotations

import math

import pytest
import torch

from harness.losses import get_loss

Batch = tuple[torch.Tensor, torch.Tensor]


def one_positive_batch() -> Batch:
    """Q=4, D=10: one positive per row, a few ignored entries, every other entry a negative."""
    gen = torch.Generator().manual_seed(1)
    scores = (torch.randn(4, 10, generator=gen, dtype=torch.float64) * 0.5).requires_grad_()
    labels = torch.zeros(4, 10, dtype=torch.float64)
    labels[[0, 1, 2, 3], [0, 3, 5, 9]] = 1.0
    labels[[0, 2, 3], [4, 1, 2]] = -1.0
    return scores, labels


def multi_positive_batch() -> Batch:
    """Q=6, D=12: graded positives (several per row), ties on the top grade, ignored entries, a row
    without a positive (row 1) and a row without a negative (row 3)."""
    gen = torch.Generator().manual_seed(2)
    scores = (torch.randn(6, 12, generator=gen, dtype=torch.float64) * 0.5).requires_grad_()
    labels = torch.tensor([
        [2, 0, 1, 0, -1, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, -1, 0, 0, 0, 0, 0, -1, 0, 0, 0],
        [0, 1, 0, 3, 0, 0, 2, 3, 0, -1, 0, 0],
        [-1, 1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
        [0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ], dtype=torch.float64)
    return scores, labels


BATCHES = {"one_positive": one_positive_batch, "multi_positive": multi_positive_batch}


def rows_with_positive(labels: torch.Tensor) -> list[int]:
    return [i for i in range(labels.shape[0]) if any(labels[i, j] > 0 for j in range(labels.shape[1]))]


def target(labels: torch.Tensor, i: int) -> int:
    """The lowest column holding the row's largest label."""
    best = max(labels[i, j].item() for j in range(labels.shape[1]))
    return min(j for j in range(labels.shape[1]) if labels[i, j].item() == best)


def columns(labels: torch.Tensor, i: int, test) -> list[int]:
    return [j for j in range(labels.shape[1]) if test(labels[i, j].item())]


def log_sum_exp(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.log(sum(torch.exp(v) for v in values))


def mean(values: list[torch.Tensor], scores: torch.Tensor) -> torch.Tensor:
    return sum(values) / len(values) if values else scores.sum() * 0


def ref_infonce(s, labels, temperature=0.05, negatives=None):
    """−log softmax of the target over the target plus the row's negatives, mean over rows."""
    per_row = []
    for i in rows_with_positive(labels):
        t = target(labels, i)
        denominator = (negatives(i) if negatives else columns(labels, i, lambda v: v == 0)) + [t]
        per_row.append(log_sum_exp([s[i, j] / temperature for j in denominator]) - s[i, t] / temperature)
    return mean(per_row, s)


def ref_mw(s, labels, temperature=0.01, pairs=False):
    """−(1/Q) Σ_i Σ_{p∈P_i} Σ_{n∈S⁻} log σ((s_p − s_n)/τ), S⁻ global or the row's own."""
    q, d = labels.shape
    everywhere = [(k, n) for k in range(q) for n in range(d) if labels[k, n] == 0]
    total = s.sum() * 0
    for i in range(q):
        negatives = [(i, n) for n in columns(labels, i, lambda v: v == 0)] if pairs else everywhere
        for p in columns(labels, i, lambda v: v > 0):
            for k, n in negatives:
                x = (s[i, p] - s[k, n]) / temperature
                total = total - torch.log(1 / (1 + torch.exp(-x)))
    return total / q


def ref_jointlh(s, labels, temperature=1.0):
    per_row = []
    for i in rows_with_positive(labels):
        positives = columns(labels, i, lambda v: v > 0)
        valid = columns(labels, i, lambda v: v >= 0)
        per_row.append(len(positives) * log_sum_exp([s[i, j] / temperature for j in valid])
                       - sum(s[i, p] / temperature for p in positives))
    return mean(per_row, s)


def ref_summarglh(s, labels, temperature=1.0):
    per_row = []
    for i in rows_with_positive(labels):
        positives = columns(labels, i, lambda v: v > 0)
        valid = columns(labels, i, lambda v: v >= 0)
        per_row.append(log_sum_exp([s[i, j] / temperature for j in valid])
                       - log_sum_exp([s[i, p] / temperature for p in positives]))
    return mean(per_row, s)


def ref_lsepair(s, labels, temperature=1.0):
    """log(1 + Σ_p Σ_n exp((s_n − s_p)/τ)) per row."""
    per_row = []
    for i in rows_with_positive(labels):
        terms = [torch.exp((s[i, n] - s[i, p]) / temperature)
                 for p in columns(labels, i, lambda v: v > 0) for n in columns(labels, i, lambda v: v == 0)]
        per_row.append(torch.log(1 + sum(terms, s.sum() * 0)))
    return mean(per_row, s)


def ref_rand1lh(s, labels, drawn: dict[int, int], temperature=1.0):
    """InfoNCE with the drawn positive as target; the other positives leave the denominator."""
    per_row = []
    for i in rows_with_positive(labels):
        denominator = columns(labels, i, lambda v: v == 0) + [drawn[i]]
        per_row.append(log_sum_exp([s[i, j] / temperature for j in denominator]) - s[i, drawn[i]] / temperature)
    return mean(per_row, s)


def ref_ltr_margin_top(s, labels, margin=0.1):
    per_row = []
    for i in range(labels.shape[0]):
        positives, negatives = columns(labels, i, lambda v: v > 0), columns(labels, i, lambda v: v == 0)
        if positives and negatives:
            best_negative = max((s[i, n] for n in negatives), key=lambda v: v.item())
            best_positive = max((s[i, p] for p in positives), key=lambda v: v.item())
            per_row.append(torch.relu(best_negative - best_positive + margin))
    return mean(per_row, s)


def ref_listwise_kd(s, labels, teacher, student_temperature=0.05, teacher_temperature=0.3,
                    contrastive_weight=0.1, contrastive_temperature=0.01, filter_ratio=0.6):
    q, d = labels.shape

    def kept_negatives(i):
        listed = [teacher[i, j].item() for j in range(d) if not math.isnan(teacher[i, j].item())]
        top = max(listed) if listed else -math.inf
        return [j for j in columns(labels, i, lambda v: v == 0)
                if math.isnan(teacher[i, j].item()) or not teacher[i, j].item() > filter_ratio * top]

    contrastive = ref_infonce(s, labels, contrastive_temperature, negatives=kept_negatives)
    kl = []
    for i in range(q):
        listed = [j for j in range(d) if not math.isnan(teacher[i, j].item())]
        if not listed:
            continue
        t_norm = sum(math.exp(teacher[i, j].item() / teacher_temperature) for j in listed)
        s_log_norm = log_sum_exp([s[i, j] / student_temperature for j in listed])
        row = s.sum() * 0
        for j in listed:
            p = math.exp(teacher[i, j].item() / teacher_temperature) / t_norm
            row = row + p * (math.log(p) - (s[i, j] / student_temperature - s_log_norm))
        kl.append(row)
    return contrastive_weight * contrastive + mean(kl, s)


def teacher_for(labels: torch.Tensor) -> torch.Tensor:
    """Rescaled teacher scores in [0, 1] on about half of each row (NaN elsewhere), the positives
    always listed, one row with no list at all, and negatives above 0.6 × the top (filtered)."""
    gen = torch.Generator().manual_seed(3)
    teacher = torch.rand(labels.shape, generator=gen, dtype=torch.float64)
    unlisted = (torch.rand(labels.shape, generator=gen) < 0.5) & (labels <= 0)
    teacher[unlisted] = float("nan")
    teacher[labels.shape[0] - 1] = float("nan")
    return teacher


CASES = {
    "infonce": [({}, ref_infonce), ({"temperature": 0.2}, lambda s, l: ref_infonce(s, l, 0.2))],
    "mw": [({}, ref_mw), ({"temperature": 0.1}, lambda s, l: ref_mw(s, l, 0.1)),
           ({"pairs": True}, lambda s, l: ref_mw(s, l, pairs=True)),
           ({"temperature": 0.1, "pairs": True}, lambda s, l: ref_mw(s, l, 0.1, pairs=True))],
    "jointlh": [({}, ref_jointlh), ({"temperature": 0.05}, lambda s, l: ref_jointlh(s, l, 0.05))],
    "summarglh": [({}, ref_summarglh), ({"temperature": 0.05}, lambda s, l: ref_summarglh(s, l, 0.05))],
    "lsepair": [({}, ref_lsepair), ({"temperature": 0.05}, lambda s, l: ref_lsepair(s, l, 0.05))],
    "ltr_margin": [({"random_weight": 0.0}, lambda s, l: 0.5 * ref_ltr_margin_top(s, l)),
                   ({"random_weight": 0.0, "top_weight": 2.0, "margin": 0.7},
                    lambda s, l: 2.0 * ref_ltr_margin_top(s, l, 0.7))],
}


def assert_matches(loss_value, reference, scores):
    (grad,) = torch.autograd.grad(loss_value, scores)
    (ref_grad,) = torch.autograd.grad(reference, scores)
    assert loss_value.dtype == torch.float64
    torch.testing.assert_close(loss_value, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name,params,reference",
                         [(name, params, ref) for name, cases in CASES.items() for params, ref in cases])
def test_loss_matches_plain_loop(name, params, reference, batch):
    scores, labels = BATCHES[batch]()
    assert_matches(get_loss(name, **params)(scores, labels), reference(scores, labels), scores)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("params", [{}, {"filter_ratio": 0.9, "contrastive_weight": 0.5,
                                         "teacher_temperature": 0.5, "student_temperature": 0.1,
                                         "contrastive_temperature": 0.05}])
def test_listwise_kd_matches_plain_loop(batch, params):
    scores, labels = BATCHES[batch]()
    teacher = teacher_for(labels)
    reference = ref_listwise_kd(scores, labels, teacher, **params)
    assert_matches(get_loss("listwise_kd", **params)(scores, labels, teacher), reference, scores)


def test_listwise_kd_filter_drops_negatives():
    """The batch really exercises the filter: with it off (ratio large) the value differs."""
    scores, labels = multi_positive_batch()
    teacher = teacher_for(labels)
    on = get_loss("listwise_kd")(scores, labels, teacher)
    off = get_loss("listwise_kd", filter_ratio=10.0)(scores, labels, teacher)
    assert not torch.isclose(on, off)
    torch.testing.assert_close(off, ref_listwise_kd(scores, labels, teacher, filter_ratio=10.0))


@pytest.mark.parametrize("batch", BATCHES)
def test_rand1lh_matches_plain_loop_for_its_draw(batch):
    """The drawn positive is the one positive of its row with a gradient (the others are masked
    out of the denominator); given those draws, value and gradient follow the formula."""
    scores, labels = BATCHES[batch]()
    loss = get_loss("rand1lh", temperature=0.3, seed=5)
    for _ in range(3):
        value = loss(scores, labels)
        (grad,) = torch.autograd.grad(value, scores, retain_graph=True)
        drawn = {}
        for i in rows_with_positive(labels):
            positives = columns(labels, i, lambda v: v > 0)
            moved = [p for p in positives if grad[i, p] != 0]
            if columns(labels, i, lambda v: v == 0):
                assert len(moved) == 1
                drawn[i] = moved[0]
            else:  # a row without negatives has loss 0 whichever positive is drawn
                assert moved == []
                drawn[i] = positives[0]
        assert_matches(value, ref_rand1lh(scores, labels, drawn, 0.3), scores)


def ltr_margin_forced_batch() -> Batch:
    """Every usable row has one positive and one negative, so the random pair is forced."""
    gen = torch.Generator().manual_seed(4)
    scores = (torch.randn(4, 6, generator=gen, dtype=torch.float64) * 0.2).requires_grad_()
    labels = torch.full((4, 6), -1.0, dtype=torch.float64)
    labels[[0, 1, 2, 3], [0, 2, 4, 5]] = 1.0
    labels[[0, 1, 2], [1, 3, 0]] = 0.0  # row 3 has no negative
    return scores, labels


def test_ltr_margin_random_pair_matches_plain_loop():
    scores, labels = ltr_margin_forced_batch()
    loss = get_loss("ltr_margin", margin=0.2, random_margin_offset=0.05, top_weight=0.3, random_weight=0.7)
    reference = 0.3 * ref_ltr_margin_top(scores, labels, 0.2) + 0.7 * ref_ltr_margin_top(scores, labels, 0.25)
    assert_matches(loss(scores, labels), reference, scores)


@pytest.mark.parametrize("name", ["infonce", "mw", "jointlh", "summarglh", "lsepair", "rand1lh", "ltr_margin",
                                  "listwise_kd"])
def test_no_positive_anywhere_gives_a_differentiable_zero(name):
    scores = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, 0, -1, 0, 0], [0, -1, -1, 0, 0], [-1, -1, -1, -1, -1]], dtype=torch.float64)
    teacher = torch.full((3, 5), float("nan"), dtype=torch.float64)
    value = get_loss(name)(scores, labels, teacher)
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(scores.grad, torch.zeros_like(scores))
