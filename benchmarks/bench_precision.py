"""What bf16 does to the numbers: embedding cosine to fp32 and zero-shot nDCG@10, fp32 vs bf16 (issue #19, item 2).

The packaged all-MiniLM-L6-v2 with its own settings (mean pooling, normalised, 256 tokens) encodes
the Cranfield and CISI corpora and queries (``../shared/data``, read in place) twice, in fp32 and
under bf16 autocast, through the harness's own path: ``encode_corpus_shard`` for the corpus and
``harness.stages.evaluate.evaluate`` for the queries, search and metrics (family ``beir``).
Prints per collection the cosine of each passage's bf16 embedding to its fp32 one (min, 1st
percentile, mean), the share of queries whose top 10 changes, and nDCG@10 in both precisions.

bf16 needs a device that has it natively (:mod:`harness.precision`); on a CPU without it,
``--emulate`` lets PyTorch emulate it (same rounding, several times slower) for this measurement
only, and the output says so.

    python benchmarks/bench_precision.py              # both collections, full corpora
    python benchmarks/bench_precision.py --emulate    # on a CPU without bf16 (slow)
    python benchmarks/bench_precision.py --emulate --passages 300   # the first 300 passages of each
    python benchmarks/bench_precision.py --smoke      # 200 Cranfield passages, a 2-layer random BERT at 32 tokens
"""

from __future__ import annotations

import argparse
import os
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

from machine import device_name  # noqa: E402
from harness import precision  # noqa: E402
from harness.data.format import read_corpus  # noqa: E402
from harness.models.registry import load_model  # noqa: E402
from harness.retrieval import encode_corpus_shard, load_corpus_embeddings  # noqa: E402
from harness.stages.evaluate import evaluate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
COLLECTIONS = ("cranfield", "cisi")
SMOKE = {"max_query_length": 16, "max_passage_length": 32}


def top10(run: Path) -> dict[str, list[str]]:
    ranked: dict[str, list[str]] = {}
    for line in run.read_text().splitlines():
        q, _, d, rank, *_ = line.split()
        if int(rank) <= 10:
            ranked.setdefault(q, []).append(d)
    return ranked


def subset(folder: Path, passages: int, out: Path) -> Path:
    """A copy of ``folder`` with its first ``passages`` passages, its queries, and the judgements of those
    passages only (a query left with none is not evaluated)."""
    out.mkdir(parents=True)
    lines = (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:passages]
    (out / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (out / "queries.jsonl").write_text((folder / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    kept = set(read_corpus(out / "corpus.jsonl"))
    header, *judged = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "qrels").mkdir()
    (out / "qrels" / "test.tsv").write_text(header + "".join(l for l in judged if l.split("\t")[1] in kept),
                                            encoding="utf-8")
    return out


def measure(name: str, model_name: str, tmp: Path, settings: dict[str, int], passages: int | None) -> dict[str, float]:
    folder = DATA / name if passages is None else subset(DATA / name, passages, tmp / f"{name}-first-{passages}")
    model = load_model(model_name, settings)
    emb, metrics, seconds = {}, {}, {}
    for p in ("fp32", "bf16"):
        start = time.perf_counter()
        encode_corpus_shard(model, folder / "corpus.jsonl", tmp / name / p / "emb", batch_size=64, dtype="float32",
                            progress=False, precision=p)
        seconds[p] = time.perf_counter() - start
        emb[p] = np.asarray(load_corpus_embeddings(tmp / name / p / "emb")[1], dtype=np.float64)
        metrics[p] = evaluate(model_name, folder, "test", tmp / name / p / "run", family="beir", settings=settings,
                              embeddings=tmp / name / p / "emb", precision=p)
    a, b = emb["fp32"], emb["bf16"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    runs = {p: top10(tmp / name / p / "run" / "run.trec") for p in emb}
    changed = np.mean([runs["fp32"][q] != runs["bf16"].get(q) for q in runs["fp32"]])
    return dict(passages=len(a), queries=metrics["fp32"]["n_queries"], cos_min=float(cosine.min()),
               cos_p1=float(np.percentile(cosine, 1)), cos_mean=float(cosine.mean()), top10_changed=float(changed),
               ndcg_fp32=metrics["fp32"]["metrics"]["ndcg@10"], ndcg_bf16=metrics["bf16"]["metrics"]["ndcg@10"],
               corpus_s_fp32=seconds["fp32"], corpus_s_bf16=seconds["bf16"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulate", action="store_true",
                        help="on a CPU without native bf16, let PyTorch emulate it (this measurement only)")
    parser.add_argument("--smoke", action="store_true", help="200 Cranfield passages, a 2-layer random BERT")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--passages", type=int, help="only the first N passages of each corpus (and their judgements)")
    args = parser.parse_args()
    if not (DATA / "cranfield").exists():
        print(f"bench_precision: {DATA.relative_to(ROOT.parent)} is absent (../shared/data); nothing to measure.")
        return 0
    torch.set_num_threads(args.threads)
    native = precision.device_has_bf16(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if not native:
        if not (args.emulate or args.smoke):
            print("bench_precision: this device has no native bf16; rerun with --emulate to measure bf16's "
                  "numbers in emulation (slow)")
            return 1
        precision.cpu_has_bf16 = lambda: True  # this script only: PyTorch emulates bf16
    names = ("cranfield",) if args.smoke else COLLECTIONS
    with tempfile.TemporaryDirectory(prefix="bench_precision.") as tmp:
        results = {n: measure(n, "tiny" if args.smoke else "minilm", Path(tmp), SMOKE if args.smoke else {},
                              200 if args.smoke else args.passages) for n in names}
    print(f"- device: {device_name()}, torch threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.1f}; bf16 {'native' if native else 'EMULATED by PyTorch (no native bf16 here)'}")
    if args.passages or args.smoke:
        print(f"- corpora cut to their first {200 if args.smoke else args.passages} passages, qrels to those passages' judgements")
    print(f"- model: {'2-layer random BERT (smoke)' if args.smoke else 'all-MiniLM-L6-v2 (packaged), its own settings'};"
          " corpus batch 64, queries batch 128; bf16 = torch.autocast(bfloat16) over the transformer")
    print()
    print("| collection | passages | queries | cosine bf16·fp32 min / 1st pct / mean | queries whose top 10 changes "
          "| nDCG@10 fp32 | nDCG@10 bf16 | Δ | corpus encoding s fp32 / bf16 |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for n, r in results.items():
        print(f"| {n} | {r['passages']} | {r['queries']} | {r['cos_min']:.6f} / {r['cos_p1']:.6f} / {r['cos_mean']:.6f} "
              f"| {100 * r['top10_changed']:.0f} % | {r['ndcg_fp32']:.4f} | {r['ndcg_bf16']:.4f} "
              f"| {r['ndcg_bf16'] - r['ndcg_fp32']:+.4f} | {r['corpus_s_fp32']:.1f} / {r['corpus_s_bf16']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
