"""Training throughput: ``harness train`` (infonce) vs sentence-transformers' trainer with MNRL (issue #6, item 1).

Both train the packaged all-MiniLM-L6-v2 on the generated quickstart collection, in the same
process, on the same device, for ``--steps`` steps of ``--batch`` queries with one positive and one
hard negative each (the positive is the group's first; the harness samples its hard negative per
step, sentence-transformers gets one seeded pick per group as the third column of its
(anchor, positive, negative) triples), queries cut at 32 tokens and passages at 128, AdamW at the
same learning rate, weight decay, clipping and (no) warm-up, fp32, no evaluation, no saving, no
logging backend.

Timed: the training loop only. Harness: ``Trainer.train()`` after ``Trainer(args)`` has loaded
the data and the model. sentence-transformers: from the trainer's ``on_train_begin`` (after model
load, trainer construction and dataloader set-up) to the end of the last optimizer step. Both
include batch assembly and tokenisation. One short warm-up run each, then ``--reps`` repetitions
that alternate between the two (ABBA order), each on a freshly loaded model; examples/s is the
median.

    python benchmarks/bench_train.py            # MiniLM, batch 32, 50 steps, 3 repetitions
    python benchmarks/bench_train.py --smoke    # a 2-layer random BERT, batch 8, 3 steps, 1 repetition, 1 thread

``--precision bf16`` (issue #19; on a device with native bf16, refused elsewhere): the harness with
``precision: bf16`` against the sentence-transformers trainer with its own ``bf16=True`` switch (Hugging
Face's Trainer: bf16 autocast), and the harness in fp32 in the same alternating repetitions: ratios
harness / sentence-transformers at bf16 and harness bf16 / harness fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from machine import cpu_model  # noqa: E402
from harness.data.format import read_corpus, read_queries, read_train_groups  # noqa: E402
from harness.data.prepare import prepare  # noqa: E402
from harness.models.biencoder import EncoderSettings  # noqa: E402
from harness.models.registry import build_tiny, packaged_minilm_path  # noqa: E402
from harness.retrieval import passage_text  # noqa: E402
from harness.precision import device_has_bf16  # noqa: E402
from harness.train import BatchBuilder, Trainer, TrainArgs  # noqa: E402

MAX_QUERY, MAX_PASSAGE = 32, 128
LEARNING_RATE, WEIGHT_DECAY, MAX_GRAD_NORM, SEED = 2e-5, 0.01, 1.0, 1
HARNESS, REFERENCE = "harness train (infonce)", "sentence-transformers (MNRL)"
HARNESS_FP32 = "harness train (infonce), fp32"



def triples(dataset: Path, seed: int = SEED) -> list[dict[str, str]]:
    """One (anchor, positive, negative) row per training group: the query, its first positive and
    one seeded pick among its hard negatives (groups without a negative are left out)."""
    corpus, queries = read_corpus(dataset / "corpus.jsonl"), read_queries(dataset / "queries.jsonl")
    rng = np.random.default_rng(seed)
    rows = []
    for group in read_train_groups(dataset / "train.jsonl"):
        if group.positives and group.negatives:
            negative = group.negatives[int(rng.integers(len(group.negatives)))]
            rows.append({"anchor": queries[group.query_id]["text"],
                         "positive": passage_text(corpus[group.positives[0]]),
                         "negative": passage_text(corpus[negative])})
    return rows


def run_harness(model: str, dataset: Path, steps: int, batch: int, out: Path, precision: str = "fp32") -> float:
    """Examples/s of ``Trainer.train()``; data and model loading are not timed."""
    args = TrainArgs(model=model, dataset=dataset, loss="infonce", out=out, seed=SEED, batch_size=batch,
                     precision=precision,
                     hard_negatives=1, max_positives=1, max_steps=steps, learning_rate=LEARNING_RATE,
                     warmup_steps=0, weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM,
                     model_settings={"max_query_length": MAX_QUERY, "max_passage_length": MAX_PASSAGE})
    trainer = Trainer(args)
    start = time.perf_counter()
    summary = trainer.train()
    return summary["examples"] / (time.perf_counter() - start)


class LoopTimer(transformers.TrainerCallback):
    """Wall time from ``on_train_begin`` to the end of the last optimizer step."""

    def __init__(self) -> None:
        self.start = self.end = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == state.max_steps:
            self.end = time.perf_counter()


def run_reference(model: str, rows: list[dict[str, str]], steps: int, batch: int, out: Path,
                  precision: str = "fp32") -> float:
    """Examples/s of ``SentenceTransformerTrainer.train()`` with MNRL, timed by :class:`LoopTimer`."""
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    st_model = SentenceTransformer(model, device="cuda" if torch.cuda.is_available() else "cpu")
    st_model.max_seq_length = MAX_PASSAGE
    # The collator cuts each column at its task's length: anchors are queries, the rest documents.
    routes = {"anchor": "query", "positive": "document", "negative": "document"}
    collator = SentenceTransformerDataCollator(preprocess_fn=st_model.preprocess, router_mapping=routes,
                                               max_length={"query": MAX_QUERY, "document": MAX_PASSAGE})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps, learning_rate=LEARNING_RATE,
        warmup_steps=0, weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM, seed=SEED,
        dataloader_drop_last=True, dataloader_pin_memory=torch.cuda.is_available(), report_to="none", save_strategy="no", eval_strategy="no",
        logging_strategy="no", disable_tqdm=True, fp16=False, bf16=precision == "bf16")
    trainer = SentenceTransformerTrainer(model=st_model, args=args, train_dataset=Dataset.from_list(rows),
                                         loss=MultipleNegativesRankingLoss(st_model), data_collator=collator)
    trainer.remove_callback(transformers.PrinterCallback)  # it prints the final metrics to stdout
    timer = LoopTimer()
    trainer.add_callback(timer)  # last in the list: its on_train_begin runs after every other callback's
    trainer.train()
    return steps * batch / (timer.end - timer.start)


def docs_per_step(dataset: Path, model: str, steps: int, batch: int, out: Path) -> float:
    """Mean number of distinct passages the harness encodes per step (duplicates are merged)."""
    args = TrainArgs(model=model, dataset=dataset, loss="infonce", out=out, seed=SEED, batch_size=batch,
                     hard_negatives=1, max_positives=1, max_steps=steps)
    corpus, queries = read_corpus(dataset / "corpus.jsonl"), read_queries(dataset / "queries.jsonl")
    builder = BatchBuilder(read_train_groups(dataset / "train.jsonl"), args, None)
    return float(np.mean([len(builder.build(step, queries, corpus).docs) for step in range(steps)]))


def table(rates: dict[str, list[float]]) -> str:
    lines = ["| trainer | examples/s (median) | runs (examples/s) |", "|---|---:|---|"]
    for name, values in rates.items():
        lines.append(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a 2-layer random BERT, batch 8, 3 steps, one repetition, no warm-up, 1 thread")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32, help="queries per step")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per trainer")
    parser.add_argument("--warmup-run-steps", type=int, default=5, help="steps of the untimed warm-up runs")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 avoids stalls on a loaded machine)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: harness bf16 vs sentence-transformers bf16, and harness fp32 beside them")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.batch, args.reps, args.warmup_run_steps, args.threads = 3, 8, 1, 0, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    bf16 = args.precision == "bf16"
    train_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if bf16 and not device_has_bf16(train_device):
        sys.exit(f"bench_train: --precision bf16 needs native bf16 on the {train_device.type} (a CPU: AVX-512 BF16, AMX or "
                 "Arm bf16); this one has none")

    with tempfile.TemporaryDirectory(prefix="bench_train.") as tmp_dir:
        tmp = Path(tmp_dir)
        dataset = tmp / "generated"
        prepare("generated", dataset)
        if args.smoke:
            model = str(tmp / "tiny")
            build_tiny(EncoderSettings(max_query_length=MAX_QUERY, max_passage_length=MAX_PASSAGE)).save(model)
        else:
            model = str(packaged_minilm_path())
        rows = triples(dataset)
        docs = docs_per_step(dataset, model, args.steps, args.batch, tmp / "unused")
        p = args.precision
        if args.warmup_run_steps:
            run_harness(model, dataset, args.warmup_run_steps, args.batch, tmp / "harness", p)
            run_reference(model, rows, args.warmup_run_steps, args.batch, tmp / "st", p)
        runs = {HARNESS: lambda: run_harness(model, dataset, args.steps, args.batch, tmp / "harness", p),
                REFERENCE: lambda: run_reference(model, rows, args.steps, args.batch, tmp / "st", p)}
        if bf16:
            runs[HARNESS_FP32] = lambda: run_harness(model, dataset, args.steps, args.batch, tmp / "harness32")
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for rep in range(args.reps):
            # Alternate the order (ABBA), so a drift in machine load favours none.
            for name in list(runs) if rep % 2 == 0 else list(runs)[::-1]:
                rates[name].append(runs[name]())
            print(f"  repetition {rep + 1}: " + ", ".join(f"{n} {r[-1]:.1f}" for n, r in rates.items())
                  + " examples/s", file=sys.stderr)

    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch threads {torch.get_num_threads()}, device {device}")
    print(f"- model: {'2-layer random BERT (smoke)' if args.smoke else 'all-MiniLM-L6-v2 (packaged)'}; "
          f"generated collection; batch {args.batch} queries + 1 positive + 1 hard negative each; "
          f"max lengths {MAX_QUERY}/{MAX_PASSAGE}; {args.steps} steps; {args.precision}; "
          f"median of {args.reps} alternating (ABBA) runs, "
          + (f"after a {args.warmup_run_steps}-step warm-up run each" if args.warmup_run_steps else "no warm-up"))
    print(f"- passages encoded per step: harness {docs:.1f} (duplicates merged), "
          f"sentence-transformers {2 * args.batch}")
    print()
    print(table(rates))
    print()
    ratio = statistics.median(rates[HARNESS]) / statistics.median(rates[REFERENCE])
    print(f"ratio harness / sentence-transformers (examples/s): {ratio:.2f} (goal >= 1.0)")
    if bf16:
        print(f"ratio harness bf16 / harness fp32 (examples/s): "
              f"{statistics.median(rates[HARNESS]) / statistics.median(rates[HARNESS_FP32]):.2f}")


if __name__ == "__main__":
    main()
