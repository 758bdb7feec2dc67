"""The synthesize stage: a corpus -> a prepared dataset of CADET's synthetic training queries
(Tamber et al., arXiv 2505.19274; :mod:`harness.synthesis`).

Samples ``passages`` passages (seeded), prompts the generator once per query type per passage for
``per_type`` completions (chunked into ``--work``, so a killed job resumes), checks each completion,
filters the queries with CADET's filter (the ``--retriever``'s top ``depth``, reranked by the
teacher) and writes an ordinary prepared dataset: the corpus, the kept queries, ``qrels/train.tsv``
(each query -> its source passage), ``train.jsonl`` (the filter's other candidates as hard
negatives), ``synthesis.jsonl`` (every completion and why it was dropped) and ``meta.json``, whose
``source`` records the generator, the prompts' sha256, the sampling settings and the filter, and whose
``synthesis`` holds the counts per query type (generated, kept, dropped by reason).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from harness.data.format import (TrainGroup, count_passages, passage_text, read_corpus, read_queries,
                                 read_train_groups, write_meta, write_qrels, write_queries, write_train_groups)
from harness.errors import ConfigError, DataError
from harness.io import atomic_dir, read_json, write_json, write_jsonl
from harness.models.registry import load_model
from harness.models.teacher import score_pairs
from harness.retrieval import load_corpus_embeddings
from harness.stages import set_threads
from harness.synthesis.filter import cadet_filter
from harness.synthesis.generate import (DROP_REASONS, Completion, Request, Sampling, check_query, few_shot_examples,
                                        generate_chunks, load_backend, passage_seed, sample_rows)
from harness.synthesis.prompts import FEW_SHOT, load_templates

log = logging.getLogger("harness")

GENERATOR_DEFAULTS = {"backend": "transformers", "types": ["question", "claim", "title", "keywords", "user_zero_shot",
                                                         "user_few_shot"],
                      "passages": 1000, "per_type": 1, "seed": 0, "few_shot": 3, "chunk": 64, "prompts": {},
                      "sampling": {}}


def few_shot_pool(folder: Path) -> list[str]:
    """The training queries of a prepared dataset (those of its ``train.jsonl``), in file order."""
    if not (folder / "train.jsonl").exists():
        raise DataError("has no training queries (train.jsonl) for the few-shot examples; "
                        "name a dataset that has some with generator.few_shot_from", folder)
    queries = read_queries(folder / "queries.jsonl")
    return list(dict.fromkeys(queries[g.query_id]["text"] for g in read_train_groups(folder / "train.jsonl")))


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link to ``src`` where the file system allows it (the corpus is not copied), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def synthesize(corpus_dir: Path, out: Path, work: Path, generator: dict[str, Any], *, key: str = "generator",
               few_shot_dir: Path | None = None, retriever: str, retriever_settings: dict[str, Any] | None = None,
               embeddings: Path | None = None, depth: int = 20, teacher_kind: str = "bi-encoder",
               teacher_model: str, teacher_settings: dict[str, Any] | None = None, batch_size: int = 64,
               record: dict[str, Any] | None = None, progress: bool = True,
               retriever_precision: str = "fp32") -> dict[str, Any]:
    """Generate, check, filter and write the dataset ``out``; returns its ``meta.json`` record.
    The retriever encodes at ``retriever_precision``, as its corpus shards were.

    ``record`` (the config's names of the corpus, retriever and teacher) is stored in ``meta.json``'s
    ``source`` beside what this function knows."""
    spec = {**GENERATOR_DEFAULTS, **generator}
    if "model" not in spec:
        raise ConfigError("the generator needs a model (a causal LM folder or Hugging Face id)", key=f"{key}.model")
    sampling = Sampling(**spec["sampling"])
    templates = load_templates(list(spec["types"]), spec["prompts"], key)
    corpus_path = corpus_dir / "corpus.jsonl"
    rows = sample_rows(count_passages(corpus_path), int(spec["passages"]), int(spec["seed"]))
    sampled = read_corpus(corpus_path, rows=set(rows))
    in_file_order = list(sampled)  # read_corpus keeps file order; the sample's order is that of ``rows``
    position = {r: i for i, r in enumerate(sorted(rows))}
    passage_ids = [in_file_order[position[r]] for r in rows]
    pool = few_shot_pool(few_shot_dir or corpus_dir) if FEW_SHOT in templates else []

    requests = []
    for pid in passage_ids:
        seed = passage_seed(int(spec["seed"]), pid)
        text = passage_text(sampled[pid])
        examples = few_shot_examples(pool, int(spec["few_shot"]), seed)
        requests.append(Request(pid, seed, {t: tpl.render(text, examples) for t, tpl in templates.items()}))
    n = int(spec["per_type"])
    fingerprint = {"model": spec["model"], "backend": spec["backend"], "sampling": sampling.__dict__, "per_type": n,
                   "requests_sha256": hashlib.sha256(json.dumps([r.__dict__ for r in requests], sort_keys=True)
                                                     .encode()).hexdigest()}
    completions = generate_chunks(requests, n, lambda: load_backend(spec["backend"], spec["model"], sampling, key),
                                  work, int(spec["chunk"]), fingerprint, progress)

    rows_out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for c in completions:
        query, reason = check_query(Completion(c["text"], c["finished"]))
        if reason is None and (c["passage_id"], query) in seen:
            reason = "duplicate"
        seen.add((c["passage_id"], query))
        rows_out.append({"query_id": f"{c['type']}-{c['passage_id']}-{c['k']}", "type": c["type"],
                         "passage_id": c["passage_id"], "query": query, "reason": reason})

    candidates = [r for r in rows_out if r["reason"] is None]
    encoder = load_model(retriever, retriever_settings)
    if embeddings is not None:
        doc_ids, doc_emb = load_corpus_embeddings(embeddings)
    else:
        corpus = read_corpus(corpus_path)
        doc_ids = list(corpus)
        doc_emb = encoder.encode([passage_text(corpus[d]) for d in doc_ids], "passage", batch_size, progress=progress,
                                 precision=retriever_precision)
    doc_row = {d: i for i, d in enumerate(doc_ids)}

    def texts(ids: set[str]) -> dict[str, str]:
        docs = read_corpus(corpus_path, rows={doc_row[d] for d in ids})
        return {d: passage_text(doc) for d, doc in docs.items()}

    decisions = cadet_filter([r["query"] for r in candidates], [r["passage_id"] for r in candidates], doc_ids,
                             doc_emb, texts, encoder,
                             lambda pairs: score_pairs(teacher_kind, teacher_model, pairs, teacher_settings, batch_size),
                             depth, batch_size, retriever_precision)
    negatives: dict[str, list[str]] = {}
    for r, decision in zip(candidates, decisions):
        r["reason"] = decision.reason
        if decision.reason is None:
            negatives[r["query_id"]] = decision.negatives

    counts = type_counts(rows_out, list(templates))
    kept = [r for r in rows_out if r["reason"] is None]
    if not kept:
        raise DataError(f"no synthetic query was kept (per type: {json.dumps(counts['types'])})", corpus_dir)
    source = {
        "name": "synthetic-queries", **(record or {}),
        "corpus_sha256": read_json(corpus_dir / "meta.json").get("sha256", {}).get("corpus.jsonl")
        if (corpus_dir / "meta.json").exists() else None,
        "generator": {k: spec[k] for k in ("model", "backend", "types", "passages", "per_type", "seed", "few_shot")},
        "sampling": sampling.__dict__,
        "prompts": {t: {"file": tpl.path.name, "sha256": tpl.sha256} for t, tpl in templates.items()},
        "filter": {"retriever": retriever, "depth": depth, "teacher": {"kind": teacher_kind, "model": teacher_model}},
    }
    with atomic_dir(out) as tmp:
        link_or_copy(corpus_path, tmp / "corpus.jsonl")
        write_queries(tmp / "queries.jsonl", ((r["query_id"], r["query"], None) for r in kept))
        write_qrels(tmp / "qrels" / "train.tsv", {r["query_id"]: {r["passage_id"]: 1} for r in kept})
        write_train_groups(tmp / "train.jsonl", (TrainGroup(r["query_id"], [r["passage_id"]], negatives[r["query_id"]])
                                                 for r in kept))
        write_jsonl(tmp / "synthesis.jsonl", rows_out)
        meta = write_meta(tmp, source)
        meta["synthesis"] = counts
        write_json(tmp / "meta.json", meta)
    return meta


def type_counts(rows: list[dict[str, Any]], types: list[str]) -> dict[str, Any]:
    """Per query type: completions generated, queries kept, and those dropped by reason."""
    out: dict[str, Any] = {"types": {}, "reasons": list(DROP_REASONS)}
    for qtype in types:
        of_type = [r for r in rows if r["type"] == qtype]
        dropped = Counter(r["reason"] for r in of_type if r["reason"] is not None)
        out["types"][qtype] = {"generated": len(of_type), "kept": len(of_type) - sum(dropped.values()),
                               "dropped": {reason: dropped.get(reason, 0) for reason in DROP_REASONS}}
    return out


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    meta = synthesize(Path(a.corpus), Path(a.out), Path(a.work), a.generator, key=a.key,
                      few_shot_dir=Path(a.few_shot) if a.few_shot else None, retriever=a.retriever,
                      retriever_settings=a.retriever_settings, embeddings=Path(a.embeddings) if a.embeddings else None,
                      depth=a.depth, teacher_kind=a.teacher_kind, teacher_model=a.teacher_model,
                      teacher_settings=a.teacher_settings, batch_size=a.batch_size, record=a.record,
                      retriever_precision=a.retriever_precision)
    log.info("synthetic queries -> %s: %s", a.out, json.dumps(
        {t: {k: v for k, v in c.items() if k != "dropped"} for t, c in meta["synthesis"]["types"].items()}))
