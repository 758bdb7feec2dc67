"""Every rate against the machine's own limit: dense matmul throughput at MiniLM's shapes (issue #19, item 4).

1. **The limit.** ``torch.nn.functional.linear`` at the shapes of one MiniLM layer (hidden H = 384,
   FFN I = 1536: Q, K, V and the output projection [T, H] x [H, H], then [T, H] x [H, I] and
   [T, I] x [I, H]) for T = one encoding batch of tokens, in fp32 and, where the device has it
   natively, bf16: FLOP/s = 2·T·(4H² + 2HI) / median time. This is what the same kernels do with
   nothing around them; it is the ceiling of any encoder built from them.
2. **FLOPs.** Per token and layer a BERT encoder multiplies 2·(4H² + 2HI) in its dense layers and
   4·L·H in attention (Q·Kᵀ and the weighted sum of V over a sequence of L tokens); counted with
   ``torch.utils.flop_counter.FlopCounterMode`` on a real batch and checked against that formula.
   Useful FLOPs count each passage's own tokens; executed FLOPs count the padded batch.
   A training example (one query, its positive and hard negative, as ``bench_train.py``) costs
   forward + backward of its texts: counted the same way over one ``loss_step``.
3. **Rates as a fraction of the limit.** Encoding: ``BiEncoder.encode`` of the Cranfield corpus
   (``../shared/data``), passages/s × useful FLOPs per passage / limit. Training: ``Trainer.train()``
   with infonce on the generated collection (batch 32, one hard negative, max lengths 32/128),
   examples/s × FLOPs per example / limit.
4. **Where the rest of the encoding time goes**, measured: tokenisation (the tokenizer's calls,
   as ``encode`` makes them), the forward pass split by ``torch.profiler`` into dense matmuls
   (``aten::addmm``/``mm``/``linear``), attention (``scaled_dot_product_attention``, ``bmm``,
   softmax) and the rest (GELU, layer norm, adds, pooling), and Python/copying (encode's total minus
   the parts); plus the padding the length-sorted batches execute, against what input-order batches
   would pad.

    python benchmarks/bench_limit.py                    # fp32 (and bf16 where native), 1 thread
    python benchmarks/bench_limit.py --threads 2
    python benchmarks/bench_limit.py --smoke            # a 2-layer random BERT, 64 passages; seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from machine import device_name  # noqa: E402
from harness import precision as harness_precision  # noqa: E402
from harness.data.format import passage_text, read_corpus  # noqa: E402
from harness.data.prepare import prepare  # noqa: E402
from harness.models.biencoder import BiEncoder, EncoderSettings  # noqa: E402
from harness.models.registry import build_tiny, load_model  # noqa: E402
from harness.train import Trainer, TrainArgs, loss_step  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "cranfield" / "corpus.jsonl"
DENSE = ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul")
ATTENTION = ("attention", "aten::bmm", "aten::baddbmm", "softmax")


def shapes(model: BiEncoder) -> tuple[int, int, int]:
    cfg = model.transformer.config
    return cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers


def matmul_limit(h: int, i: int, tokens: int, dtype: torch.dtype, reps: int) -> float:
    """FLOP/s of one layer's dense products at T = ``tokens`` (median of ``reps``)."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(tokens, h, generator=gen).to(dtype), torch.randn(tokens, i, generator=gen).to(dtype)
    w_hh = [torch.randn(h, h, generator=gen).to(dtype) for _ in range(4)]
    w_ih, w_hi = torch.randn(i, h, generator=gen).to(dtype), torch.randn(h, i, generator=gen).to(dtype)
    bias_h, bias_i = torch.zeros(h, dtype=dtype), torch.zeros(i, dtype=dtype)

    def layer() -> None:
        for w in w_hh:
            torch.nn.functional.linear(x, w, bias_h)
        torch.nn.functional.linear(x, w_ih, bias_i)
        torch.nn.functional.linear(y, w_hi, bias_h)

    with torch.inference_mode():
        layer()
        runs = []
        for _ in range(reps):
            start = time.perf_counter()
            layer()
            runs.append(time.perf_counter() - start)
    return 2 * tokens * (4 * h * h + 2 * h * i) / statistics.median(runs)


def formula_flops(lengths: list[int], h: int, i: int, layers: int, attention: bool = True) -> float:
    """Forward FLOPs of sequences of the given lengths: dense 2(4H²+2HI) and (with ``attention``) 4LH per
    token and layer."""
    return float(sum(layers * n * (2 * (4 * h * h + 2 * h * i) + (4 * n * h if attention else 0)) for n in lengths))


def batches(model: BiEncoder, texts: list[str], batch: int, sort: bool) -> list[list[str]]:
    order = np.argsort(-np.array([len(t) for t in texts]), kind="stable") if sort else np.arange(len(texts))
    return [[texts[j] for j in order[k:k + batch]] for k in range(0, len(texts), batch)]


def encode_parts(model: BiEncoder, texts: list[str], batch: int, autocast) -> dict[str, float]:
    """Seconds of encode's parts over ``texts``: tokenising, and the forward split by the profiler."""
    parts = {"tokenise": 0.0, "forward": 0.0}
    ops = {"dense matmul": 0.0, "attention": 0.0, "other ops": 0.0}
    with torch.inference_mode():
        for chunk in batches(model, texts, batch, sort=True):
            start = time.perf_counter()
            features = model.tokenize(chunk, "passage")
            parts["tokenise"] += time.perf_counter() - start
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, autocast:
                model(features)
            for event in prof.key_averages():
                name = event.key
                group = ("dense matmul" if name in DENSE else
                         "attention" if any(a in name for a in ATTENTION) else "other ops")
                ops[group] += event.self_cpu_time_total / 1e6
    parts["forward"] = sum(ops.values())
    return {**parts, **ops}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a 2-layer random BERT, 64 passages, 2 training steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="passages per encoding batch")
    parser.add_argument("--max-length", type=int, default=256, help="passage max length (MiniLM's own: 256)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--passages", type=int, help="only the first N Cranfield passages")
    args = parser.parse_args()
    if not CORPUS.exists():
        print("bench_limit: ../shared/data/cranfield is absent; nothing to measure.")
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    native_bf16 = harness_precision.device_has_bf16(device)
    precisions = ["fp32", "bf16"] if native_bf16 else ["fp32"]
    settings = {"max_query_length": 32, "max_passage_length": args.max_length}
    model = build_tiny(EncoderSettings.from_dict(settings)) if args.smoke else load_model("minilm", settings)
    model.eval()
    h, i, layers = shapes(model)
    texts = [passage_text(d) for d in read_corpus(CORPUS).values()]
    texts = texts[:64] if args.smoke else texts[:args.passages]
    reps = 1 if args.smoke else args.reps

    # Tokens: each passage's own (useful) and what the batches execute (padded).
    lengths = [len(ids) for ids in model.tokenizer([model.settings.passage_prefix + t for t in texts], truncation=True,
                                                   max_length=args.max_length)["input_ids"]]
    by_text = dict(zip(texts, lengths))
    padded = {sort: sum(len(c) * max(by_text[t] for t in c) for c in batches(model, texts, args.batch, sort))
              for sort in (True, False)}
    useful = formula_flops(lengths, h, i, layers) / len(texts)
    first = batches(model, texts, args.batch, sort=True)[0]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(model.tokenize(first, "passage"))
    counted = counter.get_total_flops()
    longest = max(by_text[t] for t in first)
    expected = formula_flops([longest] * len(first), h, i, layers, attention=False)
    attention_share = 1 - formula_flops(lengths, h, i, layers, attention=False) / formula_flops(lengths, h, i, layers)
    tokens_per_batch = int(np.mean(lengths)) * args.batch

    lines = [f"- device: {device_name()}, torch threads {torch.get_num_threads()}, load average "
             f"{os.getloadavg()[0]:.1f}; bf16 {'native' if native_bf16 else 'not native here (refused by the harness; not measured)'}",
             f"- model: {'2-layer random BERT (smoke)' if args.smoke else 'all-MiniLM-L6-v2'} (H {h}, FFN {i}, {layers} layers); "
             f"Cranfield, {len(texts)} passages, max length {args.max_length}, batch {args.batch}, median of {reps}",
             f"- FLOPs per passage (forward): useful {useful / 1e9:.3f} GFLOP (mean {np.mean(lengths):.0f} tokens); "
             f"{attention_share:.0%} of it in attention; FlopCounterMode on the first batch {counted / 1e9:.2f} GFLOP, "
             f"the formula's dense part {expected / 1e9:.2f} GFLOP at its padded length {longest} (the counter "
             "does not count the CPU's fused attention kernel)",
             f"- padding: length-sorted batches execute {padded[True] / sum(lengths) - 1:.1%} more tokens than the "
             f"passages have; input-order batches would execute {padded[False] / sum(lengths) - 1:.1%} more", ""]
    rows = ["| precision | matmul limit GFLOP/s (T = "
            f"{tokens_per_batch}) | encode passages/s | useful GFLOP/s | fraction of limit | train examples/s | "
            "train GFLOP/s | fraction of limit |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    breakdown = ["| precision | encode total s | tokenise | dense matmul | attention | other ops | Python, copies |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="bench_limit.") as tmp_dir:
        tmp = Path(tmp_dir)
        dataset = tmp / "generated"
        prepare("generated", dataset)
        model_dir = tmp / "model"
        model.save(model_dir)
        for p in precisions:
            dtype = torch.bfloat16 if p == "bf16" else torch.float32
            autocast = harness_precision.autocast(p, device)
            model.encode(texts[:args.batch], "passage", args.batch, precision=p)  # warm-up
            runs, limits = [], []
            for _ in range(reps):  # the limit measured between the encodings, so both see the same load
                limits.append(matmul_limit(h, i, tokens_per_batch, dtype, 5))
                start = time.perf_counter()
                model.encode(texts, "passage", args.batch, precision=p)
                runs.append(time.perf_counter() - start)
            limits.append(matmul_limit(h, i, tokens_per_batch, dtype, 5))
            limit = statistics.median(limits)
            total = statistics.median(runs)
            rate = len(texts) / total
            parts = encode_parts(model, texts, args.batch, autocast)

            train_args = TrainArgs(model=str(model_dir), dataset=dataset, loss="infonce", out=tmp / "ckpt", seed=1,
                                   batch_size=8 if args.smoke else 32, hard_negatives=1, max_positives=1,
                                   max_steps=2 if args.smoke else args.train_steps, precision=p,
                                   model_settings={"max_query_length": 32, "max_passage_length": 128})
            trainer = Trainer(train_args)
            batch = trainer.batches.build(0, trainer.queries, trainer.corpus)
            with FlopCounterMode(display=False) as counter:
                loss_step(trainer.model, trainer.loss_fn, batch, 0, autocast)
            trainer.model.zero_grad(set_to_none=True)
            per_example = counter.get_total_flops() / len(batch.queries)
            summary = trainer.train()
            train_rate = summary["examples_per_s"]
            rows.append(f"| {p} | {limit / 1e9:.1f} | {rate:.1f} | {rate * useful / 1e9:.1f} | "
                        f"**{rate * useful / limit:.0%}** | {train_rate:.1f} | {train_rate * per_example / 1e9:.1f} | "
                        f"**{train_rate * per_example / limit:.0%}** |")
            python = total - parts["tokenise"] - parts["forward"]
            breakdown.append(f"| {p} | {total:.2f} | " + " | ".join(
                f"{parts[k]:.2f} ({parts[k] / total:.0%})" for k in ("tokenise", "dense matmul", "attention", "other ops"))
                + f" | {python:.2f} ({python / total:.0%}) |")
            lines.insert(3, f"- FLOPs per training example ({p}, forward + backward, one loss_step of "
                            f"{len(batch.queries)} queries and {len(batch.docs)} passages): {per_example / 1e9:.3f} GFLOP")
    print("\n".join(lines + rows + [""] + breakdown))
    print("\n(the breakdown's parts are timed in a second pass under the profiler, so they need not add up to the "
          "total exactly; 'Python, copies' is the total minus the parts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
