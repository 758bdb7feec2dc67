"""The evaluate stage: (model, dataset folder, split) -> run.trec, per_query.jsonl, metrics.json.

Works on any folder in the on-disk format, a prepared one or a raw BEIR folder. The corpus is
encoded here unless precomputed shards are given (``embeddings``), which is how the workflow
encodes a corpus once per checkpoint and searches it for every eval set that shares it.
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
from harness.data.format import passage_text, read_corpus, read_qrels, read_queries, split_query_ids
from harness.errors import DataError
from harness.io import read_json, write_json, write_jsonl
from harness.metrics import evaluate as compute_metrics
from harness.metrics import calibration_pool, ignores_identical_ids, metrics_for, positive_level
from harness.models.registry import load_model
from harness.retrieval import (DTYPE, FlatIPSearcher, drop_identical_ids, encode_passages, load_corpus_embeddings,
                               pair_scores, write_trec_run)
from harness.stages import set_threads
from harness.train import SUMMARY_FIELDS

log = logging.getLogger("harness")

TOP_K = 1000
CALIBRATION_SPLIT = "dev"  # the split a run's score cut-off and calibration map are fitted on, when the dataset has it


def evaluate(model: str, dataset: Path, split: str, out: Path, *, family: str = "generic", corpus_dir: Path | None = None,
             extra_metrics: list[str] | None = None, settings: dict[str, Any] | None = None,
             embeddings: Path | None = None, batch_size: int = 128, dtype: str = DTYPE, index: str = "Flat",
             run_info: dict[str, Any] | None = None, tag: str = "lossboard", precision: str = "fp32",
             ignore_identical_ids: bool | None = None) -> dict[str, Any]:
    """Encode, search, score and write the three result files; returns the metrics record.

    ``precision`` (fp32 or bf16, :mod:`harness.precision`) encodes as the stored corpus shards were;
    without ``embeddings`` the corpus is encoded here exactly as a shard job would (``batch_size``,
    ``dtype``: :func:`harness.retrieval.encode_passages`).
    ``ignore_identical_ids`` (default: the family's, see :func:`~harness.metrics.ignores_identical_ids`)
    drops a retrieved passage whose id is the query's own before anything is scored.
    """
    start = time.perf_counter()
    dataset, out = Path(dataset), Path(out)
    metric_names = metrics_for(family, extra_metrics)
    corpus_file = Path(corpus_dir or dataset) / "corpus.jsonl"
    if embeddings is not None:  # the passages' ids are the shards'; their texts are read only if needed
        doc_ids, doc_emb = load_corpus_embeddings(Path(embeddings))
        corpus = None
    else:
        corpus = read_corpus(corpus_file)
        doc_ids = list(corpus)
    queries = read_queries(dataset / "queries.jsonl")
    qrels_path = dataset / "qrels" / f"{split}.tsv"
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    qrels = read_qrels(qrels_path, queries, doc_row).qrels
    query_ids = split_query_ids(dataset, split, queries, qrels)
    if not query_ids:
        raise DataError(f"split {split!r} has no judged queries and is not an answer-match split", qrels_path)

    encoder = load_model(model, settings)
    if corpus is not None:
        doc_emb = encode_passages(encoder, corpus, batch_size, dtype, precision=precision)
    query_emb = encoder.encode([queries[q]["text"] for q in query_ids], "query", batch_size, progress=True, precision=precision)
    # float16 memory-mapped shards stay on disk: the index and the positives' scores convert what they read
    searcher = FlatIPSearcher(doc_emb, index)
    scores, indices = searcher.search(query_emb, min(TOP_K, len(doc_ids)))
    if ignore_identical_ids is None:
        ignore_identical_ids = ignores_identical_ids(family)
    if ignore_identical_ids:
        indices, scores = drop_identical_ids(query_ids, doc_row, indices, scores)

    level = positive_level(family)
    pos_rows = [np.array([doc_row[d] for d, g in qrels.get(q, {}).items() if g >= level and d in doc_row],
                         dtype=np.int64) for q in query_ids]
    pair_q = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(pos_rows)])
    flat = pair_scores(query_emb, doc_emb, pair_q, np.concatenate(pos_rows))
    positive_scores = np.split(flat, np.cumsum([len(r) for r in pos_rows])[:-1])

    hits = None
    if any(m.startswith("hits@") for m in metric_names):
        retrieved = corpus
        if retrieved is None:
            rows = set(indices[indices >= 0].tolist())
            retrieved = read_corpus(corpus_file, rows)
            if set(retrieved) != {doc_ids[r] for r in rows}:
                raise DataError("the corpus is not the one the embeddings were encoded from", corpus_file)
        hits = answer_hits(indices, lambda row: passage_text(retrieved[doc_ids[row]]),
                           [queries[q].get("answers", []) for q in query_ids])
    fit = None
    dev_path = dataset / "qrels" / f"{CALIBRATION_SPLIT}.tsv"
    if split != CALIBRATION_SPLIT and dev_path.is_file() and not metric_names[0].startswith("hits@"):
        dev_qrels = read_qrels(dev_path, queries, doc_row).qrels
        dev_ids = split_query_ids(dataset, CALIBRATION_SPLIT, queries, dev_qrels)
        dev_emb = encoder.encode([queries[q]["text"] for q in dev_ids], "query", batch_size, precision=precision)
        dev_scores, dev_indices = searcher.search(dev_emb, min(TOP_K, len(doc_ids)))
        if ignore_identical_ids:
            dev_indices, dev_scores = drop_identical_ids(dev_ids, doc_row, dev_indices, dev_scores)
        fit = calibration_pool(dev_ids, doc_ids, dev_indices, dev_scores, dev_qrels, level)
    result = compute_metrics(query_ids, doc_ids, indices, scores, qrels, metric_names,
                             answer_hits=hits, positive_scores=positive_scores, calibration_fit=fit)

    write_trec_run(out / "run.trec", query_ids, doc_ids, indices, scores, tag)
    write_jsonl(out / "per_query.jsonl", (
        {"query_id": q, **{m: float(v[i]) for m, v in result.per_query.items()}}
        for i, q in enumerate(result.query_ids)))
    info = run_info or {}
    summary_file = Path(model) / "train_summary.json"
    summary = read_json(summary_file) if summary_file.exists() else None
    record = {
        "schema": 1,
        "run": info.get("run", {"model": model, "eval": dataset.name, "split": split}),
        "loss": summary["loss"] if summary else None,
        "family": family,
        "main_metric": metric_names[0],
        "metrics": {m: float(v) for m, v in result.aggregate.items()},
        "n_queries": len(result.query_ids),
        "protocol": {"encoder": encoder.settings.to_dict(), "ignore_identical_ids": ignore_identical_ids,
                     "top_k": TOP_K},
        "histogram": result.histogram,
        "calibration": result.calibration,
        "checkpoint": info.get("checkpoint"),
        "train": {k: summary.get(k) for k in SUMMARY_FIELDS} if summary else None,
        "provenance": provenance.record(time.perf_counter() - start, precision=precision, config=info.get("config", {}),
                                        train_command=summary["command"] if summary else None,
                                        train_argv=summary.get("argv") if summary else None,
                                        train_data=summary.get("data") if summary else None),
    }
    write_json(out / "metrics.json", record)
    return record


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    record = evaluate(a.model, Path(a.dataset), a.split, Path(a.out), family=a.family, extra_metrics=a.metrics,
                      corpus_dir=Path(a.corpus) if a.corpus else None,
                      settings=a.settings, embeddings=Path(a.embeddings) if a.embeddings else None,
                      batch_size=a.batch_size, dtype=a.dtype or DTYPE, index=a.index, run_info=a.run_info, precision=a.precision,
                      ignore_identical_ids=a.ignore_identical_ids)
    log.info("%s", json.dumps(record["metrics"], sort_keys=True))
