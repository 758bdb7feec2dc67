"""The loss contract as a suite of checks that every loss must pass, built-in or a researcher's own.

:func:`check_loss` runs each check on fresh instances of one loss class with one set of
parameters (a seeded loss gets the same seed every time) and returns a :class:`ContractReport`:
one :class:`Check` per property, with the number it measured. On float64 batches of the contract's
inputs (see :mod:`harness.losses.base`):

1. ``finite``: the loss is a finite scalar, with a finite gradient, on one query; on rows with
   several positives; on rows whose entries are all ignored (label −1) — with teacher scores
   (NaN outside each row's list) for a loss that needs them. Measured: max |L|.
2. ``gradcheck``: :func:`torch.autograd.gradcheck` of L with respect to the scores. Measured: max
   |∂L/∂s − central difference|.
3. ``permutation``: L(S P, Y P, T P) = L(S, Y, T) for a permutation P of the document columns, on
   rows whose positives have distinct grades (so the target is unique). Measured: |ΔL| / max(1, |L|).
   A seeded loss may draw other columns after the permutation, so for it the means over
   ``SEEDED_DRAWS`` calls are compared instead; measured: the z-score of their difference.
4. ``ignored_zero_grad``: ∂L/∂s_ij = 0 exactly where label_ij < 0. Measured: max |∂L/∂s_ij| there.
5. ``grad_cache``: one training step's parameter gradients on the tiny model (float64, no dropout)
   with GradCache (:func:`harness.train.loss_step`, chunks of ``GRAD_CACHE_CHUNK``) equal the
   full-batch ones. Measured: max |Δg| / max |g|.
6. ``seeded`` (a loss with a ``seed`` parameter): two instances with one seed give the same values
   call after call, and one resumed from the other's ``state_dict`` gives what the other goes on to
   give. Measured: max |ΔL|.
7. ``cost`` (reported, not judged): time (fastest of 3) and peak extra memory
   (:class:`LiveTensorBytes`) of forward + backward at Q = ``COST_QUERIES`` (D = 2Q: one positive
   and one hard negative per query), beside ``infonce``'s.
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from harness.losses import InfoNCE, Loss

Batch = tuple[Tensor, Tensor, Tensor | None]  # scores, labels, teacher

GRADCHECK_TOLERANCE = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}
PERMUTATION_TOLERANCE = 1e-10
SEEDED_DRAWS = 400
SEEDED_MAX_Z = 5.0
GRAD_CACHE_CHUNK = 2
GRAD_CACHE_TOLERANCE = {"atol": 1e-8, "rtol": 1e-6}
COST_QUERIES = 256


@dataclass
class Check:
    """One property of the contract: passed (None when not judged or not applicable), the number
    measured, what was done, and any further numbers (the cost's)."""

    name: str
    passed: bool | None
    value: float | None
    detail: str
    measured: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "----"}[self.passed]
        value = "" if self.value is None else f"{self.value:.3g}"
        return f"{verdict}  {self.name:<18} {value:>10}  {self.detail}"


@dataclass
class ContractReport:
    """The checks of one loss with one set of parameters."""

    loss: str
    params: dict[str, Any]
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed is not False for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.passed is False]

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "params": self.params, "passed": self.passed,
                "checks": [asdict(check) for check in self.checks]}

    def lines(self) -> list[str]:
        return [check.line() for check in self.checks]


# --- batches -----------------------------------------------------------------------------------------

def contract_batch(q: int, d: int, seed: int, positives: int = 1, ignored_rows: tuple[int, ...] = (),
                   ignored_share: float = 0.0) -> Batch:
    """Float64 scores ~ N(0, 1) [Q, D] (requiring grad); labels: row i's positives at ``positives``
    random columns with distinct grades 1, 2, …, the rest negatives (0), a share of them ignored
    (−1), and every entry of ``ignored_rows`` ignored; teacher scores ~ U(0, 1), NaN on ignored
    entries (an ignored document is not in the row's list)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(q, d, generator=gen, dtype=torch.float64)  # [Q, D]
    labels = torch.zeros(q, d, dtype=torch.float64)  # [Q, D]
    for i in range(q):
        columns = torch.randperm(d, generator=gen)
        labels[i, columns[:positives]] = torch.arange(1, positives + 1, dtype=torch.float64)
        ignored = columns[positives:][torch.rand(d - positives, generator=gen) < ignored_share]
        labels[i, ignored] = -1.0
    labels[list(ignored_rows)] = -1.0
    teacher = torch.rand(q, d, generator=gen, dtype=torch.float64).masked_fill(labels < 0, math.nan)  # [Q, D]
    return scores.requires_grad_(), labels, teacher


def _inputs(cls: type[Loss], batch: Batch) -> Batch:
    """The batch as the loss is called with it: teacher scores only for a loss that needs them."""
    scores, labels, teacher = batch
    return scores, labels, teacher if cls.needs_teacher else None


# --- the checks --------------------------------------------------------------------------------------

def check_finite(cls: type[Loss], make: Callable[[], Loss]) -> Check:
    batches = {"one query": contract_batch(1, 5, seed=1),
               "several positives": contract_batch(4, 12, seed=2, positives=3),
               "all-ignored rows": contract_batch(4, 12, seed=3, positives=2, ignored_rows=(1, 3), ignored_share=0.3)}
    largest = 0.0
    for what, batch in batches.items():
        scores, labels, teacher = _inputs(cls, batch)
        value = make()(scores, labels, teacher)
        if not isinstance(value, Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            return Check("finite", False, None, f"{what}: not a scalar tensor ({shape})")
        if not math.isfinite(value.item()):
            return Check("finite", False, value.item(), f"{what}: the loss is {value.item()}")
        if not value.requires_grad:
            return Check("finite", False, value.item(), f"{what}: the loss has no gradient w.r.t. the scores")
        (grad,) = torch.autograd.grad(value, scores)
        if not bool(grad.isfinite().all()):
            return Check("finite", False, value.item(), f"{what}: the gradient has NaN or inf entries")
        largest = max(largest, abs(value.item()))
    return Check("finite", True, largest, "max |L| on: " + ", ".join(batches)
                 + (", with teacher scores" if cls.needs_teacher else ""))


def check_gradcheck(cls: type[Loss], make: Callable[[], Loss]) -> Check:
    scores, labels, teacher = _inputs(cls, contract_batch(3, 6, seed=4, positives=2, ignored_share=0.2))
    scores = scores.detach().requires_grad_()

    def loss(s: Tensor) -> Tensor:
        return make()(s, labels, teacher)

    (analytic,) = torch.autograd.grad(loss(scores), scores)
    eps = GRADCHECK_TOLERANCE["eps"]
    numeric = torch.zeros_like(scores)
    with torch.no_grad():
        for index in range(scores.numel()):
            step = torch.zeros_like(scores).view(-1)
            step[index] = eps
            step = step.view_as(scores)
            numeric.view(-1)[index] = (loss(scores + step) - loss(scores - step)) / (2 * eps)
    error = (analytic - numeric).abs().max().item()
    passed = torch.autograd.gradcheck(loss, (scores,), raise_exception=False, **GRADCHECK_TOLERANCE)
    return Check("gradcheck", bool(passed), error,
                 f"float64 Q=3, D=6, eps={eps}, atol={GRADCHECK_TOLERANCE['atol']}, rtol={GRADCHECK_TOLERANCE['rtol']}")


def check_permutation(cls: type[Loss], make: Callable[[], Loss]) -> Check:
    scores, labels, teacher = _inputs(cls, contract_batch(4, 12, seed=5, positives=3, ignored_share=0.2))
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(6))
    permuted = (scores[:, perm], labels[:, perm], None if teacher is None else teacher[:, perm])
    with torch.no_grad():
        if "seed" not in cls.params:
            value, other = make()(scores, labels, teacher).item(), make()(*permuted).item()
            change = abs(value - other) / max(1.0, abs(value))
            return Check("permutation", change <= PERMUTATION_TOLERANCE, change,
                         f"|ΔL| / max(1, |L|) after permuting 12 columns; L = {value:.6g}")
        before, after = make(), make()
        draws = ([before(scores, labels, teacher).item() for _ in range(SEEDED_DRAWS)],
                 [after(*permuted).item() for _ in range(SEEDED_DRAWS)])
    means = [statistics.fmean(d) for d in draws]
    spread = math.sqrt(sum(statistics.variance(d) / SEEDED_DRAWS for d in draws))
    z = abs(means[0] - means[1]) / spread if spread > 0 else (0.0 if means[0] == means[1] else math.inf)
    return Check("permutation", z <= SEEDED_MAX_Z, z,
                 f"seeded: z of the mean over {SEEDED_DRAWS} calls before vs after permuting (pass <= {SEEDED_MAX_Z})")


def check_ignored_zero_grad(cls: type[Loss], make: Callable[[], Loss]) -> Check:
    scores, labels, teacher = _inputs(cls, contract_batch(5, 10, seed=7, positives=2, ignored_rows=(2,),
                                                          ignored_share=0.4))
    (grad,) = torch.autograd.grad(make()(scores, labels, teacher), scores)
    ignored = labels < 0
    largest = grad[ignored].abs().max().item()
    return Check("ignored_zero_grad", largest == 0.0, largest,
                 f"max |∂L/∂s| over the {int(ignored.sum())} ignored entries (label −1)")


def grad_cache_batch(cls: type[Loss]) -> Any:
    """A text batch of 6 queries over 8 documents for the tiny model: query i's positive is
    document i (grade 2), document i + 2 is also a positive of the even queries (grade 1),
    document i + 1 is its hard negative; teacher scores on each query's own three documents."""
    from harness.train import Batch as TextBatch

    topics = ["river", "castle", "engine", "violin", "glacier", "orchard", "comet", "harbor"]
    queries = [f"what about the {t} history" for t in topics[:6]]
    docs = [f"notes on the history of the {t}, item {i}" for i, t in enumerate(topics)]
    labels = torch.zeros(6, 8)
    teacher = torch.full((6, 8), math.nan) if cls.needs_teacher else None
    for i in range(6):
        labels[i, i] = 2.0
        if i % 2 == 0:
            labels[i, i + 2] = 1.0
        if teacher is not None:
            teacher[i, [i, i + 1, i + 2]] = torch.tensor([0.9, 0.2, 0.6])
    return TextBatch(queries, docs, labels, teacher)


def check_grad_cache(cls: type[Loss], make: Callable[[], Loss], model: torch.nn.Module | None = None) -> Check:
    from harness.models.biencoder import EncoderSettings
    from harness.models.registry import build_tiny
    from harness.train import loss_step

    model = model or build_tiny(EncoderSettings.from_dict({"max_query_length": 16, "max_passage_length": 24}))
    model = model.double().eval()  # no dropout: full-batch and chunked forwards see the same network
    batch = grad_cache_batch(cls)
    grads = []
    for chunk in (0, GRAD_CACHE_CHUNK):
        model.zero_grad(set_to_none=True)
        loss_step(model, make(), batch, chunk)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad(set_to_none=True)
    full, chunked = grads
    if full.keys() != chunked.keys() or not full:
        return Check("grad_cache", False, None, "GradCache reached other parameters than the full batch")
    scale = max(g.abs().max().item() for g in full.values())
    error = max((full[n] - chunked[n]).abs().max().item() for n in full)
    passed = all(torch.allclose(chunked[n], full[n], **GRAD_CACHE_TOLERANCE) for n in full)
    return Check("grad_cache", passed, error / scale if scale > 0 else error,
                 f"tiny model, 6 queries x 8 documents, chunks of {GRAD_CACHE_CHUNK}: max |Δg| / max |g|")


def check_seeded(cls: type[Loss], make: Callable[[], Loss]) -> Check:
    if "seed" not in cls.params:
        return Check("seeded", None, None, "not applicable: the loss takes no seed")
    scores, labels, teacher = _inputs(cls, contract_batch(6, 16, seed=8, positives=3))
    with torch.no_grad():
        first, second = make(), make()
        a = [first(scores, labels, teacher).item() for _ in range(5)]
        b = [second(scores, labels, teacher).item() for _ in range(5)]
        resumed = make()
        resumed.load_state_dict(first.state_dict())
        c = [first(scores, labels, teacher).item() for _ in range(3)]
        d = [resumed(scores, labels, teacher).item() for _ in range(3)]
    difference = max(abs(x - y) for x, y in zip(a + c, b + d))
    return Check("seeded", difference == 0.0, difference,
                 "5 calls of two instances with one seed, then 3 calls after resuming from a state_dict")


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of the storages that operations create while the mode is on, from creation
    until freed, and keeps their peak: the memory a loss's forward + backward adds, the same on
    every device and independent of the allocator's caching."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)  # the storage's Python object lives as long as it
        return out


def _cost(loss: Loss, q: int, device: torch.device) -> tuple[float, int]:
    """Seconds of forward + backward (the fastest of 3 runs after the first: the least disturbed by
    other load) and the first run's peak extra bytes."""
    scores, labels, teacher = contract_batch(q, 2 * q, seed=9)
    scores = scores.detach().float().to(device)
    labels = labels.float().to(device)
    teacher = teacher.float().to(device) if loss.needs_teacher else None

    def step(leaf: Tensor) -> None:
        loss(leaf, labels, teacher).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    leaf = scores.clone().requires_grad_()
    with LiveTensorBytes() as memory:
        step(leaf)
    times = []
    for _ in range(3):
        leaf = scores.clone().requires_grad_()
        start = time.perf_counter()
        step(leaf)
        times.append(time.perf_counter() - start)
    return min(times), memory.peak


def check_cost(make: Callable[[], Loss], q: int = COST_QUERIES) -> Check:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seconds, peak = _cost(make(), q, device)
    base_seconds, base_peak = _cost(InfoNCE(), q, device)
    measured = {"ms": seconds * 1e3, "infonce_ms": base_seconds * 1e3, "time_ratio": seconds / base_seconds,
                "peak_mib": peak / 2**20, "infonce_peak_mib": base_peak / 2**20, "memory_ratio": peak / base_peak}
    return Check("cost", None, measured["time_ratio"],
                 f"time x{measured['time_ratio']:.2f} of infonce ({measured['ms']:.1f} vs {measured['infonce_ms']:.1f} "
                 f"ms), peak extra memory x{measured['memory_ratio']:.2f} ({measured['peak_mib']:.2f} vs "
                 f"{measured['infonce_peak_mib']:.2f} MiB); Q={q}, D={2 * q}, {device.type}", measured)


# --- the suite ---------------------------------------------------------------------------------------

def check_loss(cls: type[Loss], params: dict[str, Any], label: str | None = None,
               model: torch.nn.Module | None = None, cost_queries: int = COST_QUERIES) -> ContractReport:
    """Run every check on ``cls(**params)`` (fresh instances throughout); a check that raises fails
    with the exception's message. ``model``: the tiny bi-encoder for the GradCache check (built
    when not given; turned to float64 in place); ``cost_queries`` = 0 skips the cost measurement."""
    def make() -> Loss:
        return cls(**params)

    checks: list[tuple[str, Callable[[], Check]]] = [
        ("finite", lambda: check_finite(cls, make)),
        ("gradcheck", lambda: check_gradcheck(cls, make)),
        ("permutation", lambda: check_permutation(cls, make)),
        ("ignored_zero_grad", lambda: check_ignored_zero_grad(cls, make)),
        ("grad_cache", lambda: check_grad_cache(cls, make, model)),
        ("seeded", lambda: check_seeded(cls, make)),
    ]
    if cost_queries:
        checks.append(("cost", lambda: check_cost(make, cost_queries)))
    report = ContractReport(label or cls.name, make().get_config_dict())
    for name, run in checks:
        try:
            report.checks.append(run())
        except Exception as exc:  # the loss under test raised: the check fails, naming the error
            report.checks.append(Check(name, False, None, f"raised {type(exc).__name__}: {exc}"))
    return report
