"""Corpus encoding speed: the harness's encoder vs ``SentenceTransformer.encode`` (issue #6, item 2).

Both encode the Cranfield corpus (``../shared/data/cranfield/corpus.jsonl`` from the repo root)
with the same packaged all-MiniLM-L6-v2, max length 128 and batch size, on the CPU, in the same
process; the repetitions alternate between the two. Prints passages/s for each (median of the
repetitions, after one warm-up each) and the ratio harness / sentence-transformers (goal ≥ 1).

    python benchmarks/bench_encode.py            # full: 1,400 passages, 3 repetitions
    python benchmarks/bench_encode.py --smoke    # 50 passages, 1 repetition

``--precision bf16`` (issue #19; on a device with native bf16, refused elsewhere) compares at equal
precision: the harness under bf16 autocast (``precision: bf16``) against sentence-transformers in
bf16 the way its documentation tells users to run it (``model_kwargs={"torch_dtype": "bfloat16"}``,
weights and activations in bf16), and, in the same alternating repetitions, the harness in fp32:
ratios harness / sentence-transformers at bf16 and harness bf16 / harness fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from machine import cpu_model, seconds  # noqa: E402
from harness.data.format import read_corpus  # noqa: E402
from harness.models.registry import load_model, packaged_minilm_path  # noqa: E402
from harness.precision import device_has_bf16  # noqa: E402
from harness.retrieval import passage_text  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "cranfield" / "corpus.jsonl"




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="50 passages, one repetition")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per encoder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: harness bf16 vs sentence-transformers bf16, and harness fp32 beside them")
    args = parser.parse_args()
    if not CORPUS.exists():
        sys.exit(f"bench_encode: the Cranfield corpus is not at {CORPUS.relative_to(ROOT.parent)} "
                 "(../shared/data relative to the repo root); nothing to measure.")
    reps = 1 if args.smoke else args.reps
    texts = [passage_text(doc) for doc in read_corpus(CORPUS).values()]
    texts = texts[:50] if args.smoke else texts

    from sentence_transformers import SentenceTransformer

    bf16 = args.precision == "bf16"
    if bf16 and not device_has_bf16(torch.device("cpu")):
        sys.exit("bench_encode: --precision bf16 needs a CPU with native bf16 (AVX-512 BF16, AMX or Arm bf16); "
                 "this one has none")
    harness = load_model("minilm", {"max_passage_length": args.max_length})
    reference = SentenceTransformer(str(packaged_minilm_path()), device="cpu",
                                    model_kwargs={"torch_dtype": "bfloat16"} if bf16 else None)
    reference.max_seq_length = args.max_length

    def run_harness(precision: str = args.precision) -> np.ndarray:
        return harness.encode(texts, "passage", batch_size=args.batch_size, precision=precision)

    def run_reference() -> np.ndarray:
        return reference.encode(texts, batch_size=args.batch_size, convert_to_numpy=True,
                                show_progress_bar=False).astype(np.float32)

    runs = {"harness": run_harness, "sentence-transformers": run_reference}
    if bf16:
        runs["harness fp32"] = lambda: run_harness("fp32")
    mine, theirs = run_harness(), run_reference()  # warm-up, and a check that both agree
    max_diff = float(np.abs(mine - theirs).max())
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(reps):
        for name in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):  # alternate the order
            times[name].append(seconds(runs[name]))
    rate = {name: len(texts) / statistics.median(t) for name, t in times.items()}

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch threads {torch.get_num_threads()}, no GPU used")
    print(f"model: all-MiniLM-L6-v2 (packaged), {args.precision}, max length {args.max_length}, batch {args.batch_size}, "
          f"{len(texts)} Cranfield passages, median of {reps} after a warm-up")
    print(f"max |harness - sentence-transformers| over embeddings: {max_diff:.2e}")
    for name, value in rate.items():
        print(f"{name:>22}: {value:8.1f} passages/s  (runs: {', '.join(f'{t:.2f}s' for t in times[name])})")
    print(f"ratio harness / sentence-transformers: {rate['harness'] / rate['sentence-transformers']:.2f}")
    if bf16:
        print(f"ratio harness bf16 / harness fp32: {rate['harness'] / rate['harness fp32']:.2f}")


if __name__ == "__main__":
    main()
