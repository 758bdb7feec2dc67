"""Teacher scores of every training group's candidates, for listwise distillation.

The ``teacher`` stage (:mod:`harness.stages.teacher`) writes them once per dataset.

CADET (Tamber et al., arXiv 2505.19274) distils a cross-encoder's list distribution into the
bi-encoder. Before use, the teacher's scores are **rescaled** as the authors' code does:

    s' = clip((s - p1) / (p99 - p1), 0, 1)

with p1, p99 the 1st and 99th percentiles of all the teacher's scores in the training file, and a
query whose top rescaled score is below the 25th percentile of the queries' top scores is dropped.
The loss's temperature (0.3) and its 0.6 false-negative filter act on these [0, 1] scores, never on
raw cross-encoder logits (which can be negative).

Teachers: ``cross-encoder`` (any Hugging Face sequence-classification model, through
``sentence_transformers.CrossEncoder``) or ``bi-encoder`` (a harness model; on the offline default
the zero-shot MiniLM stands in for a cross-encoder, and the site says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.data.format import passage_text, read_corpus, read_queries, read_train_groups
from harness.models.registry import load_model


def rescale(per_query: dict[str, dict[str, float]], low_pct: float = 1.0, high_pct: float = 99.0,
            drop_below_pct: float = 25.0) -> dict[str, dict[str, float]]:
    """CADET's rescaling: percentile min-max to [0, 1], then drop queries with a weak top score."""
    every = np.array([s for scores in per_query.values() for s in scores.values()], dtype=np.float64)
    low, high = np.percentile(every, [low_pct, high_pct])
    span = high - low if high > low else 1.0
    scaled = {q: {d: float(np.clip((s - low) / span, 0.0, 1.0)) for d, s in scores.items()}
              for q, scores in per_query.items()}
    tops = np.array([max(scores.values()) for scores in scaled.values()])
    cut = np.percentile(tops, drop_below_pct)
    return {q: scores for q, scores in scaled.items() if max(scores.values()) >= cut}


def score_groups(kind: str, model: str, dataset: Path, groups_file: Path | None = None,
                 settings: dict[str, Any] | None = None, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Raw teacher scores ``{query_id: {doc_id: score}}`` of each group's positives and negatives."""
    corpus = read_corpus(dataset / "corpus.jsonl")
    queries = read_queries(dataset / "queries.jsonl")
    groups = read_train_groups(groups_file or dataset / "train.jsonl")
    pairs = [(g.query_id, d) for g in groups for d in dict.fromkeys([*g.positives, *g.negatives])]
    if kind == "cross-encoder":
        from sentence_transformers import CrossEncoder

        teacher = CrossEncoder(model)
        values = teacher.predict([(queries[q]["text"], passage_text(corpus[d])) for q, d in pairs],
                                 batch_size=batch_size, show_progress_bar=True)
    else:
        encoder = load_model(model, settings)
        doc_ids = list(dict.fromkeys(d for _, d in pairs))
        query_ids = [g.query_id for g in groups]
        doc_index = {d: i for i, d in enumerate(doc_ids)}
        query_index = {q: i for i, q in enumerate(query_ids)}
        d_emb = encoder.encode([passage_text(corpus[d]) for d in doc_ids], "passage", batch_size, progress=True)
        q_emb = encoder.encode([queries[q]["text"] for q in query_ids], "query", batch_size, progress=True)
        values = np.einsum("ij,ij->i", q_emb[[query_index[q] for q, _ in pairs]],
                           d_emb[[doc_index[d] for _, d in pairs]])
    scores: dict[str, dict[str, float]] = {}
    for (q, d), v in zip(pairs, np.asarray(values, dtype=np.float64)):
        scores.setdefault(q, {})[d] = float(v)
    return scores


def score_pairs(kind: str, model: str, pairs: list[tuple[str, str]], settings: dict[str, Any] | None = None,
                batch_size: int = 64) -> np.ndarray:
    """The teacher's raw score of each ``(query text, passage text)`` pair, as :func:`score_groups`
    scores them (a cross-encoder's logit, or a bi-encoder's similarity; each distinct text encoded once)."""
    if kind == "cross-encoder":
        from sentence_transformers import CrossEncoder

        values = CrossEncoder(model).predict(pairs, batch_size=batch_size, show_progress_bar=False)
        return np.asarray(values, dtype=np.float64).reshape(len(pairs))
    encoder = load_model(model, settings)
    queries = list(dict.fromkeys(q for q, _ in pairs))
    passages = list(dict.fromkeys(p for _, p in pairs))
    q_emb = encoder.encode(queries, "query", batch_size)
    p_emb = encoder.encode(passages, "passage", batch_size)
    q_row, p_row = {t: i for i, t in enumerate(queries)}, {t: i for i, t in enumerate(passages)}
    return np.einsum("ij,ij->i", q_emb[[q_row[q] for q, _ in pairs]],
                     p_emb[[p_row[p] for _, p in pairs]]).astype(np.float64)
