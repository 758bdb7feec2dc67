"""Benchmark: harness.metrics.evaluate vs pytrec_eval (and ranx, for information) on one synthetic run.

Five measures (ndcg@10, recall@100, recall@1000, mrr@10, map) for 5,000 queries x 1,000 retrieved
documents, each query with 20 graded judgements (half of them retrieved). Every tool gets its
inputs ready-made and untimed: the harness its top-k arrays, pytrec_eval and ranx their dicts
(mrr@10 through trec_eval's recip_rank on the run cut at 10). Timings are medians over
``--reps`` repetitions after one warm-up; the ratio is pytrec_eval's time over the harness's.

    python benchmarks/bench_metrics.py            # full size
    python benchmarks/bench_metrics.py --smoke    # 200 queries x 100 documents, a few seconds
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import pytrec_eval

from harness.metrics import evaluate

METRICS = ["ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"]
TREC_MEASURES = {"ndcg_cut.10", "recall.100", "recall.1000", "map"}


def synthetic(n_queries: int, depth: int, n_docs: int, judged: int, seed: int = 0):
    """Top-``depth`` arrays with distinct descending scores, and graded qrels."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"d{i}" for i in range(n_docs)]
    query_ids = [f"q{i}" for i in range(n_queries)]
    indices = np.stack([rng.choice(n_docs, size=depth, replace=False) for _ in range(n_queries)])
    scores = np.sort(rng.random((n_queries, depth), dtype=np.float32), axis=1)[:, ::-1].copy()
    qrels = {}
    for qi, qid in enumerate(query_ids):
        docs = [doc_ids[r] for r in indices[qi, rng.choice(depth, judged // 2, replace=False)]]
        docs += [doc_ids[r] for r in rng.choice(n_docs, judged - judged // 2, replace=False)]
        qrels[qid] = {d: int(g) for d, g in zip(docs, rng.integers(0, 4, len(docs)))}
    return query_ids, doc_ids, indices, scores, qrels


def run_dict(query_ids, doc_ids, indices, scores, cut: int | None = None) -> dict[str, dict[str, float]]:
    cut = indices.shape[1] if cut is None else cut
    return {q: {doc_ids[r]: float(s) for r, s in zip(rows[:cut].tolist(), vals[:cut].tolist())}
            for q, rows, vals in zip(query_ids, indices, scores)}


def median_time(fn: Callable[[], object], reps: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="200 queries x 100 documents, 2 repetitions, no ranx (its JIT compile takes ~20 s)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-ranx", action="store_true", help="skip the ranx timing")
    args = parser.parse_args()
    n_queries, depth, n_docs, reps = (200, 100, 5_000, 2) if args.smoke else (5_000, 1_000, 200_000, args.reps)

    query_ids, doc_ids, indices, scores, qrels = synthetic(n_queries, depth, n_docs, judged=20)
    start = time.perf_counter()
    run, run10 = run_dict(query_ids, doc_ids, indices, scores), run_dict(query_ids, doc_ids, indices, scores, 10)
    dict_time = time.perf_counter() - start

    def harness():
        return evaluate(query_ids, doc_ids, indices, scores, qrels, METRICS).aggregate

    def trec():
        values = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run10)
        mean = lambda key, res: float(np.mean([v[key] for v in res.values()]))  # noqa: E731
        return {"ndcg@10": mean("ndcg_cut_10", values), "recall@100": mean("recall_100", values),
                "recall@1000": mean("recall_1000", values), "mrr@10": mean("recip_rank", rr),
                "map": mean("map", values)}

    t_harness, ours = median_time(harness, reps)
    t_trec, theirs = median_time(trec, reps)
    worst = max(abs(ours[m] - theirs[m]) for m in METRICS)
    print(f"queries={n_queries} depth={depth} corpus={n_docs} measures={','.join(METRICS)} reps={reps}")
    print(f"harness.metrics.evaluate  {t_harness:8.3f} s")
    print(f"pytrec_eval               {t_trec:8.3f} s   (+{dict_time:.2f} s to build its run dicts, untimed)")
    if not (args.no_ranx or args.smoke):
        import ranx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_build, (ranx_qrels, ranx_run) = median_time(lambda: (ranx.Qrels(qrels), ranx.Run(run)), reps)
            t_ranx, _ = median_time(lambda: ranx.evaluate(ranx_qrels, ranx_run, METRICS, save_results_in_run=False), reps)
        print(f"ranx (information)        {t_ranx:8.3f} s to evaluate + {t_build:.3f} s to build Qrels and Run")
    print(f"largest difference of a mean vs pytrec_eval: {worst:.2e}")
    print(f"speed-up vs pytrec_eval: {t_trec / t_harness:.1f}x (goal >= 5x)")
    if worst > 1e-6:
        raise SystemExit("harness and pytrec_eval disagree")


if __name__ == "__main__":
    main()
