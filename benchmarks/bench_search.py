"""Exact search speed: the harness's faiss flat inner-product searcher vs torch matmul + topk (issue #6, item 4).

Random unit vectors (seeded): 100,000 passages × 384 dimensions, 1,000 queries, k = 100, float32,
on the CPU with the same thread count for both. The harness side is ``FlatIPSearcher.search``
(faiss ``IndexFlatIP`` plus its stable re-sort of ties); the reference is
``torch.topk(Q @ Dᵀ, k)``. Prints the median search time of the repetitions after one warm-up
each, the index build time, the overlap of the two top-k lists, and the ratio torch / faiss
(above 1: faiss is faster).

    python benchmarks/bench_search.py            # full: 100k passages, 5 repetitions
    python benchmarks/bench_search.py --smoke    # 5k passages, 1 repetition
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from machine import cpu_model, seconds  # noqa: E402
from harness.retrieval import FlatIPSearcher  # noqa: E402




def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="5k passages, 100 queries, one repetition")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    n_docs, n_queries, reps = (5_000, 100, 1) if args.smoke else (args.docs, args.queries, args.reps)

    rng = np.random.default_rng(0)
    docs, queries = unit_vectors(rng, n_docs, args.dim), unit_vectors(rng, n_queries, args.dim)
    docs_t, queries_t = torch.from_numpy(docs), torch.from_numpy(queries)

    build = seconds(lambda: FlatIPSearcher(docs))
    searcher = FlatIPSearcher(docs)

    def run_faiss() -> tuple[np.ndarray, np.ndarray]:
        return searcher.search(queries, args.k)

    @torch.inference_mode()
    def run_torch() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.topk(queries_t @ docs_t.T, args.k, dim=1)  # [Q, N] -> [Q, k]

    _, mine = run_faiss()  # warm-up, and a check that both find the same passages
    _, theirs = run_torch()
    overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(mine, theirs.numpy())])
    times: dict[str, list[float]] = {"faiss flat IP": [], "torch matmul+topk": []}
    for _ in range(reps):
        times["faiss flat IP"].append(seconds(run_faiss))
        times["torch matmul+topk"].append(seconds(run_torch))
    median = {name: statistics.median(t) for name, t in times.items()}

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"faiss threads {faiss.omp_get_max_threads()}, "
          f"torch threads {torch.get_num_threads()}, faiss GPUs {faiss.get_num_gpus()}")
    print(f"{n_docs} passages x {args.dim} dims, {n_queries} queries, k={args.k}, float32, "
          f"median of {reps} after a warm-up; faiss index build {build:.3f}s (not timed below)")
    print(f"top-{args.k} overlap faiss vs torch: {overlap:.4f}")
    for name, value in median.items():
        print(f"{name:>18}: {value:7.3f} s  {n_queries / value:9.1f} queries/s  "
              f"(runs: {', '.join(f'{t:.3f}s' for t in times[name])})")
    print(f"ratio torch / faiss (time): {median['torch matmul+topk'] / median['faiss flat IP']:.2f}")


if __name__ == "__main__":
    main()
