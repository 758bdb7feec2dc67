"""CADET's filter of synthetic queries (Tamber et al., arXiv 2505.19274): a generated query is kept
only when its source passage comes first after retrieval and reranking.

Each query is searched with a retriever (a bi-encoder; exact inner-product search over the corpus);
its top ``depth`` passages are scored by the teacher (the grid's cross-encoder, or a bi-encoder
standing in for one). The query is kept when the source passage is among them and the teacher
scores it strictly above every other (``kept``); otherwise it is dropped as ``not_retrieved`` or
``outranked``. A kept query's other candidates, by descending teacher score, are its hard negatives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.models.biencoder import BiEncoder
from harness.retrieval import FlatIPSearcher

PairScorer = Callable[[list[tuple[str, str]]], np.ndarray]


@dataclass
class Decision:
    """The filter's verdict on one query: ``reason`` None when kept, with its negatives."""

    reason: str | None
    negatives: list[str] = field(default_factory=list)


def cadet_filter(queries: Sequence[str], sources: Sequence[str], doc_ids: Sequence[str], doc_emb: np.ndarray,
                 texts: Callable[[set[str]], dict[str, str]], retriever: BiEncoder, teacher: PairScorer,
                 depth: int, batch_size: int = 128, precision: str = "fp32") -> list[Decision]:
    """Retrieve ``depth`` passages for each query (``doc_emb``: the retriever's corpus embeddings, rows
    as ``doc_ids``), rerank them with ``teacher`` (scores of (query, passage text) pairs; ``texts``
    reads the texts of a set of passage ids) and keep a query whose source passage the teacher puts first."""
    if not queries:
        return []
    q_emb = retriever.encode(list(queries), "query", batch_size, precision=precision)
    _, rows = FlatIPSearcher(np.asarray(doc_emb, dtype=np.float32)).search(q_emb, depth)
    candidates = [[doc_ids[i] for i in row if i >= 0] for row in rows]
    retrieved = [j for j, (cands, source) in enumerate(zip(candidates, sources)) if source in cands]
    text = texts({d for j in retrieved for d in candidates[j]})
    pairs = [(queries[j], text[d]) for j in retrieved for d in candidates[j]]
    scores = teacher(pairs) if pairs else np.zeros(0)
    decisions = [Decision("not_retrieved") for _ in queries]
    at = 0
    for j in retrieved:
        cands = candidates[j]
        s = np.asarray(scores[at:at + len(cands)], dtype=np.float64)
        at += len(cands)
        src = cands.index(sources[j])
        others = [i for i in range(len(cands)) if i != src]
        if others and not s[src] > s[others].max():
            decisions[j] = Decision("outranked")
            continue
        order = sorted(others, key=lambda i: (-s[i], i))
        decisions[j] = Decision(None, [cands[i] for i in order])
    return decisions
