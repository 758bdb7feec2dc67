"""The gen-rank stage: a generative retriever ranks a split -> run.trec, per_query.jsonl, metrics.json.

The same three files as ``harness evaluate`` writes, so compare and the site read them unchanged;
``metrics.json`` also counts the queries for which constrained decoding found no identifier
(they get an empty ranking). With ``--keys-out`` it ranks the training queries instead and writes
each passage's matched identifiers, the fixed ranking LTRGR's phase 2 trains on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import provenance
from harness.answer_match import answer_hits
from harness.data.format import passage_text, read_corpus, read_qrels, read_queries, read_train_groups, split_query_ids
from harness.errors import DataError
from harness.generative.decode import as_arrays, search
from harness.generative.index import IdentifierIndex
from harness.generative.model import load_seq2seq
from harness.io import read_json, write_json, write_jsonl
from harness.metrics import evaluate as compute_metrics
from harness.metrics import metrics_for, positive_level
from harness.retrieval import write_trec_run
from harness.stages import set_threads
from harness.train import SUMMARY_FIELDS

log = logging.getLogger("harness")


def _ranked(a: argparse.Namespace, texts: list[str]) -> tuple[list[Any], IdentifierIndex]:
    index = IdentifierIndex.load(Path(a.index))
    model, tokenizer = load_seq2seq(a.model)
    settings = a.generative["decode"]
    rankings = search(model, tokenizer, index, texts, list(a.views), settings,
                      progress=lambda n: log.info("ranked %d/%d queries", n, len(texts)))
    return rankings, index


def training_ranking(a: argparse.Namespace) -> None:
    """Rank the training queries and write their passages with the identifiers matched in each."""
    dataset = Path(a.dataset)
    groups = [g for g in read_train_groups(dataset / "train.jsonl") if g.positives]
    groups = groups[:a.generative.get("ranking_queries") or len(groups)]
    queries = read_queries(dataset / "queries.jsonl")
    rankings, index = _ranked(a, [queries[g.query_id]["text"] for g in groups])
    write_jsonl(Path(a.keys_out), (
        {"query_id": g.query_id,
         "passages": [{"id": index.doc_ids[row], "score": score,
                       "keys": [[k.view, list(k.tokens), k.count] for k in keys]}
                      for row, score, keys in zip(r.rows, r.scores, r.keys)]}
        for g, r in zip(groups, rankings)))


def evaluate(a: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    dataset, out = Path(a.dataset), Path(a.out)
    metric_names = metrics_for(a.family, a.metrics)
    queries = read_queries(dataset / "queries.jsonl")
    index = IdentifierIndex.load(Path(a.index))
    doc_ids = index.doc_ids
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    qrels_path = dataset / "qrels" / f"{a.split}.tsv"
    qrels = read_qrels(qrels_path, queries, doc_row).qrels
    query_ids = split_query_ids(dataset, a.split, queries, qrels)
    if not query_ids:
        raise DataError(f"split {a.split!r} has no judged queries and is not an answer-match split", qrels_path)
    rankings, _ = _ranked(a, [queries[q]["text"] for q in query_ids])
    top_k = int(a.generative["decode"]["top_k"])
    indices, scores = as_arrays(rankings, top_k)
    empty = [q for q, r in zip(query_ids, rankings) if not r.rows]
    level = positive_level(a.family)
    # a judged positive the ranking did not reach scores 0 (no identifier of it was generated)
    positive_scores = []
    for q, r in zip(query_ids, rankings):
        found = dict(zip(r.rows, r.scores))
        positive_scores.append(np.array([found.get(doc_row[d], 0.0) for d, g in qrels.get(q, {}).items()
                                         if g >= level and d in doc_row]))
    hits = None
    if any(m.startswith("hits@") for m in metric_names):
        corpus = read_corpus(Path(a.corpus or dataset) / "corpus.jsonl")
        hits = answer_hits(indices, lambda row: passage_text(corpus[doc_ids[row]]),
                           [queries[q].get("answers", []) for q in query_ids])
    result = compute_metrics(query_ids, doc_ids, indices, scores, qrels, metric_names, answer_hits=hits,
                             positive_scores=positive_scores)
    write_trec_run(out / "run.trec", query_ids, doc_ids, indices, np.where(np.isfinite(scores), scores, 0.0),
                   "lossboard-generative")
    write_jsonl(out / "per_query.jsonl", (
        {"query_id": q, **{m: float(v[i]) for m, v in result.per_query.items()}}
        for i, q in enumerate(result.query_ids)))
    info = a.run_info or {}
    summary_file = Path(a.model) / "train_summary.json"
    summary = read_json(summary_file) if summary_file.exists() else None
    record = {
        "schema": 1,
        "run": info.get("run", {"model": a.model, "eval": dataset.name, "split": a.split}),
        "kind": "generative",
        "loss": {k: summary["loss"][k] for k in ("name", "params")} if summary else None,
        "family": a.family,
        "main_metric": metric_names[0],
        "metrics": {m: float(v) for m, v in result.aggregate.items()},
        "n_queries": len(result.query_ids),
        "empty_rankings": len(empty),
        "protocol": {"generative": {"views": list(a.views), **a.generative["decode"]}, "top_k": top_k},
        "histogram": result.histogram,
        "checkpoint": info.get("checkpoint"),
        "train": {k: summary.get(k) for k in SUMMARY_FIELDS} if summary else None,
        "provenance": provenance.record(time.perf_counter() - start, config=info.get("config", {}),
                                        train_command=summary["command"] if summary else None,
                                        train_argv=summary.get("argv") if summary else None),
    }
    write_json(out / "metrics.json", record)
    return record


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    if a.keys_out:
        training_ranking(a)
        return
    record = evaluate(a)
    log.info("%s (empty rankings: %d)", json.dumps(record["metrics"], sort_keys=True), record["empty_rankings"])
