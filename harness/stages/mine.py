"""The mine stage: a dataset's training groups -> the same groups with mined hard negatives.

BM25 (:func:`harness.data.mining.bm25_ranking`) or a dense retriever's exact top results, then
:func:`harness.data.mining.sample_negatives`; see :mod:`harness.data.mining` for the method.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from harness.data.format import passage_text, write_train_groups
from harness.data.mining import bm25_ranking, load_mining_input, sample_negatives
from harness.errors import DataError
from harness.models.biencoder import BiEncoder
from harness.models.registry import load_model
from harness.retrieval import FlatIPSearcher, load_corpus_embeddings
from harness.stages import set_threads

log = logging.getLogger("harness")


def mine_bm25(dataset: Path, out_train: Path, negatives: int, seed: int, threads: int = 1) -> None:
    """Write ``out_train``: the training groups of ``dataset`` with ``negatives`` BM25 hard negatives
    each, retrieved with ``threads`` threads (the result does not depend on them)."""
    data = load_mining_input(dataset)
    ranked = bm25_ranking(data, data.depth(negatives), threads)
    write_train_groups(out_train, sample_negatives(data, ranked, negatives, seed))


def mine_dense(dataset: Path, out_train: Path, negatives: int, seed: int, encoder: BiEncoder,
               embeddings: Path | None = None, batch_size: int = 128, precision: str = "fp32") -> None:
    """Write ``out_train``: the training groups of ``dataset`` with ``negatives`` hard negatives
    each from ``encoder``'s exact top results.

    ``embeddings`` is a folder of the corpus's embedding shards by the same encoder (the workflow
    reuses its zero-shot encoding); without it the corpus is encoded here, in ``precision`` (fp32 or
    bf16, :mod:`harness.precision`).
    """
    data = load_mining_input(dataset)
    if embeddings is not None:
        doc_ids, doc_emb = load_corpus_embeddings(Path(embeddings))
        if set(doc_ids) != set(data.corpus):
            raise DataError("the embeddings do not cover exactly this dataset's corpus", embeddings)
    else:
        doc_ids = list(data.corpus)
        doc_emb = encoder.encode([passage_text(data.corpus[d]) for d in doc_ids], "passage", batch_size, precision=precision)
    query_emb = encoder.encode(data.query_texts, "query", batch_size, precision=precision)
    _, rows = FlatIPSearcher(np.asarray(doc_emb, dtype=np.float32)).search(query_emb, data.depth(negatives))
    ranked = [[doc_ids[i] for i in row if i >= 0] for row in rows]
    write_train_groups(out_train, sample_negatives(data, ranked, negatives, seed))


def run(a: argparse.Namespace) -> None:
    if a.model is None:
        mine_bm25(Path(a.dataset), Path(a.out), a.negatives, a.seed, a.threads or 1)
    else:
        set_threads(a.threads)
        mine_dense(Path(a.dataset), Path(a.out), a.negatives, a.seed, load_model(a.model, a.settings),
                   Path(a.embeddings) if a.embeddings else None, a.batch_size, a.precision)
    log.info("%s negatives%s -> %s", a.model or "bm25", f" over {a.embeddings}" if a.embeddings else "", a.out)
