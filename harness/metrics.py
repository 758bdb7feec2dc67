"""Retrieval metrics from a search's top-k arrays, global AUC and the score histogram.

The search already holds each query's top-k as rows into the corpus, so every cutoff metric is
computed at once, in numpy, from one *gains matrix* ``G[q, i]`` = the qrels grade of the document
at rank ``i + 1`` for query ``q`` (0 when unjudged or absent). G is mostly zeros, so it is kept as
its non-zero entries (query, rank, grade) in row-major order, and each metric below is a weighted
``bincount`` over the entries with grade >= level and rank < k. With ``rel = G >= level``,
``R_q`` = the number of the query's judged documents with grade >= level (retrieved or not) and
the discount ``D_i = 1 / log2(i + 2)``:

- ``ndcg@k``      = sum_{i<k} g_i D_i / IDCG@k, with trec_eval's linear gain ``g_i = G[q, i]``
  and IDCG from all of the query's judged grades sorted in decreasing order (Järvelin &
  Kekäläinen 2002). With ``-lN``, grades below N count as 0, as ranx does (trec_eval's
  ``ndcg_cut`` ignores its relevance level).
- ``recall@k``    = sum_{i<k} rel_i / R_q.
- ``precision@k`` = sum_{i<k} rel_i / k.
- ``mrr@k``       = 1 / (first i < k with rel_i) + 1, else 0 (trec_eval's ``recip_rank`` on the
  run cut at k).
- ``map[@k]``     = (1 / R_q) sum_{i<k} rel_i * (sum_{j<=i} rel_j) / (i + 1) (trec_eval ``map``,
  ``map_cut``).
- ``hits@k``      = 1 if a passage among the top k contains an answer (DPR's top-k retrieval
  accuracy, ranx's ``hit_rate@k``; ranx's own ``hits@k`` counts relevant documents instead). The
  answer match is :mod:`harness.answer_match`.
- ``auc_global``  = one ROC AUC over the pooled scores of every query's judged positives against
  its top-500 retrieved non-positives (Mann-Whitney loss paper, arXiv 2510.00137);
  ``auc_query`` = the mean per-query AUC over the queries that have both classes. Both are
  aggregate-only, and NaN when no query has both classes.
- ``threshold_f1``, ``threshold_precision``, ``threshold_recall``, ``threshold_empty``, ``ece_isotonic``:
  one global score cut-off and an isotonic calibration map fitted on a dev split, measured on the
  top-10 retrieved passages (:mod:`harness.calibration`); aggregate-only.

Queries are evaluated as ``pytrec_eval`` does: a query with no qrels entry is left out (see
:attr:`Evaluation.query_ids`); a query with qrels but no relevant document, or with no result,
scores 0. Unlike trec_eval, which re-sorts tied scores by document id, the given rank order is
kept. Metric names are ranx's compact strings (``"ndcg@10"``, ``"map-l2"``), read by
:func:`parse_metric`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from harness import calibration
from harness.errors import ConfigError, DataError

RANKED = ("ndcg", "recall", "precision", "mrr", "map")
AGGREGATE_ONLY = ("auc_global", "auc_query", *calibration.METRICS)
AUC_NEGATIVES = 500
HISTOGRAM_BINS = 20

FAMILIES: dict[str, list[str]] = {
    "generic": ["ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"],
    "beir": ["ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"],
    "trec-dl": ["ndcg@10", "recall@1000-l2", "map-l2", "mrr@10-l2"],
    "msmarco": ["mrr@10", "recall@1000"],
    "qa": ["hits@20", "hits@5", "hits@100"],
}

_PATTERN = re.compile(r"(?P<measure>[a-z]+)(?:@(?P<k>[1-9][0-9]*))?(?:-l(?P<level>[1-9][0-9]*))?")
_VALID = ("ndcg@K, recall@K, precision@K, mrr@K, map, map@K (each with an optional relevance level "
          "suffix -lN, e.g. recall@1000-l2), hits@K, auc_global, auc_query, "
          f"{', '.join(calibration.METRICS)}; without @K the whole "
          "retrieved list counts")


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: ``measure`` cut at ``k`` (None: whole list), relevant if grade >= ``level``."""

    name: str
    measure: str
    k: int | None = None
    level: int = 1

    @property
    def per_query(self) -> bool:
        """Whether the metric has a value per query (AUC metrics are aggregate-only)."""
        return self.measure not in AGGREGATE_ONLY


def parse_metric(name: str) -> MetricSpec:
    """Parse a canonical metric name such as ``"ndcg@10"``, ``"map-l2"`` or ``"auc_global"``.

    Raises :class:`ConfigError` naming the metric and listing the valid forms.
    """
    if name in AGGREGATE_ONLY:
        return MetricSpec(name, name)
    match = _PATTERN.fullmatch(name)
    if match is None or match["measure"] not in (*RANKED, "hits") or (
            match["measure"] == "hits" and match["level"] is not None):
        raise ConfigError(f"unknown metric {name!r}; valid metrics are {_VALID}", key="metrics")
    k = int(match["k"]) if match["k"] else None
    level = int(match["level"]) if match["level"] else 1
    return MetricSpec(name, match["measure"], k, level)


def positive_level(family: str) -> int:
    """The grade from which a judged document counts as positive (TREC DL: 2, as its binary measures)."""
    return 2 if family == "trec-dl" else 1


def ignores_identical_ids(family: str) -> bool:
    """Whether an eval set of ``family`` drops a retrieved passage whose id is the query's own by
    default: BEIR's evaluator does (``ignore_identical_ids=True``), so the ``beir`` family does."""
    return family == "beir"


def metrics_for(family: str, extra: list[str] | None = None) -> list[str]:
    """The metrics of a dataset family (main metric first), then the aggregate-only ones (``auc_global``,
    ``auc_query``, the calibration metrics), then ``extra``."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown dataset family {family!r}; valid families are {', '.join(FAMILIES)}",
                          key="family")
    names = [*FAMILIES[family], *AGGREGATE_ONLY]
    for name in extra or []:
        parse_metric(name)
        if name not in names:
            names.append(name)
    return names


@dataclass
class Evaluation:
    """Per-query values (aligned with ``query_ids``, the evaluated queries), means and the score histogram."""

    per_query: dict[str, np.ndarray]
    aggregate: dict[str, float]
    histogram: dict
    query_ids: list[str]
    calibration: dict | None = None


def evaluate(query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray,
             qrels: dict[str, dict[str, int]], metrics: list[str], *,
             answer_hits: np.ndarray | None = None,
             positive_scores: list[np.ndarray] | None = None,
             calibration_fit: calibration.Pool | None = None) -> Evaluation:
    """Evaluate a search result.

    ``indices`` [Q, k] are rows into ``doc_ids`` (-1: no result) and ``scores`` [Q, k] their
    scores, each row in rank order. ``answer_hits`` (bool [Q, k]) is needed for ``hits@k``;
    ``positive_scores`` (per query, the scores of its judged positives) for the AUC metrics and
    the histogram. Positives and negatives for the AUC and the calibration metrics follow the first
    metric (the main one): answer hits for ``hits@k``, else grade >= its level. ``calibration_fit``
    (the top-k pool of the dev split, :func:`calibration_pool`) fits the calibration metrics; without
    it a seeded half of the queries does (:func:`harness.calibration.calibrate`).

    Only queries with a qrels entry are evaluated when a qrels metric is asked for, every query
    otherwise; ``Evaluation.query_ids`` lists them in input order.
    """
    specs = [parse_metric(name) for name in metrics]
    if not specs:
        raise ConfigError("no metrics to compute", key="metrics")
    indices = np.asarray(indices, dtype=np.int64)
    scores = np.asarray(scores)
    if indices.shape != scores.shape or indices.ndim != 2 or len(indices) != len(query_ids):
        raise DataError(f"indices {indices.shape} and scores {scores.shape} must both be "
                        f"[{len(query_ids)} queries, k]")
    if indices.size and (indices.min() < -1 or indices.max() >= len(doc_ids)):
        raise DataError(f"indices must be rows of the {len(doc_ids)} doc_ids, or -1")
    if any(s.measure == "hits" for s in specs) and answer_hits is None:
        raise ConfigError("hits@k needs answer_hits (the queries' answers)", key="metrics")
    if any(s.measure in ("auc_global", "auc_query") for s in specs) and positive_scores is None:
        raise ConfigError("auc_global and auc_query need the scores of the judged positives", key="metrics")

    needs_qrels = any(s.measure in RANKED for s in specs)
    keep = np.array([not needs_qrels or q in qrels for q in query_ids], dtype=bool)
    kept_ids = [q for q, k in zip(query_ids, keep) if k]
    if not keep.all():
        indices, scores = indices[keep], scores[keep]
    judged = _judged(kept_ids, qrels)
    gains = _gains(kept_ids, doc_ids, indices, qrels, judged)
    hits = None if answer_hits is None else np.asarray(answer_hits, dtype=bool)[keep]

    per_query = {s.name: _per_query(s, gains, judged, hits) for s in specs if s.per_query}
    aggregate = {name: float(values.mean()) if len(values) else 0.0 for name, values in per_query.items()}
    histogram = {"edges": [], "positives": [], "negatives": []}
    if positive_scores is not None:
        main = specs[0]
        in_run_positive = hits if main.measure == "hits" else gains.relevant(main.level)
        kept_positives = [np.asarray(p, dtype=np.float64) for p, k in zip(positive_scores, keep) if k]
        group, pooled, is_pos = _auc_pool(kept_positives, indices, scores, in_run_positive)
        auc_query = _grouped_auc(group, pooled, is_pos, len(kept_ids))
        auc_query = auc_query[~np.isnan(auc_query)]
        aggregate["auc_global"] = float(_grouped_auc(np.zeros_like(group), pooled, is_pos, 1)[0])
        aggregate["auc_query"] = float(auc_query.mean()) if len(auc_query) else float("nan")
        histogram = _histogram(pooled, is_pos)
    record = None
    if any(name in calibration.METRICS for name in metrics):
        main = specs[0]
        relevant = hits if main.measure == "hits" else gains.relevant(main.level)
        measured = calibration.top_k_pool(scores, indices >= 0, relevant)
        values, record = calibration.calibrate(measured, calibration_fit)
        aggregate.update(values)
    return Evaluation(per_query, {name: aggregate[name] for name in metrics}, histogram, kept_ids, record)


def calibration_pool(query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray,
                     qrels: dict[str, dict[str, int]], level: int) -> calibration.Pool:
    """The top-k pool (score, judged grade >= ``level``) of a search of the queries with qrels (a dev split)."""
    keep = np.array([q in qrels for q in query_ids], dtype=bool)
    kept = [q for q, k in zip(query_ids, keep) if k]
    indices, scores = np.asarray(indices)[keep], np.asarray(scores)[keep]
    gains = _gains(kept, doc_ids, indices, qrels, _judged(kept, qrels))
    return calibration.top_k_pool(scores, indices >= 0, gains.relevant(level))


@dataclass
class _Judged:
    """Every judged (query, grade) pair of the evaluated queries, retrieved or not."""

    query: np.ndarray  # (J,) row of the query
    grade: np.ndarray  # (J,)
    n_queries: int

    def count(self, level: int) -> np.ndarray:
        """R_q: the number of judged documents with grade >= level, per query."""
        return np.bincount(self.query, weights=self.grade >= level, minlength=self.n_queries)

    def ideal_dcg(self, k: int | None, level: int) -> np.ndarray:
        """IDCG@k per query: the query's grades (>= level) sorted decreasingly, discounted by log2(rank + 1)."""
        grade = np.where(self.grade >= level, self.grade, 0.0)
        order = np.lexsort((-grade, self.query))
        query, grade = self.query[order], grade[order]
        starts = np.searchsorted(query, query, side="left")
        rank = np.arange(len(query)) - starts  # 0-based rank within the query
        weight = grade / np.log2(rank + 2.0)
        if k is not None:
            weight = np.where(rank < k, weight, 0.0)
        return np.bincount(query, weights=weight, minlength=self.n_queries)


def _judged(query_ids: list[str], qrels: dict[str, dict[str, int]]) -> _Judged:
    sizes = [len(qrels.get(q, {})) for q in query_ids]
    query = np.repeat(np.arange(len(query_ids)), sizes)
    grade = np.fromiter((g for q in query_ids for g in qrels.get(q, {}).values()), dtype=np.float64,
                        count=sum(sizes))
    return _Judged(query, grade, len(query_ids))


@dataclass
class _Gains:
    """The non-zero entries of the gains matrix G [Q, k], sorted by query, then rank."""

    query: np.ndarray  # (H,)
    rank: np.ndarray  # (H,) 0-based
    grade: np.ndarray  # (H,)
    shape: tuple[int, int]

    def relevant(self, level: int) -> np.ndarray:
        """bool [Q, k]: G >= level."""
        mask = np.zeros(self.shape, dtype=bool)
        keep = self.grade >= level
        mask[self.query[keep], self.rank[keep]] = True
        return mask


def _gains(query_ids: list[str], doc_ids: list[str], indices: np.ndarray,
           qrels: dict[str, dict[str, int]], judged: _Judged) -> _Gains:
    """The gains matrix: ``G[q, i]`` = positive qrels grade of the document at ``indices[q, i]``, else 0."""
    n_docs, depth = len(doc_ids), indices.shape[1]
    retrieved = np.zeros(n_docs + 1, dtype=bool)  # the extra last slot absorbs index -1
    retrieved[indices] = True
    row_of = {doc_ids[r]: r for r in np.flatnonzero(retrieved[:n_docs]).tolist()}
    judged_row = np.fromiter((row_of.get(d, -1) for q in query_ids for d in qrels.get(q, {})),
                             dtype=np.int64, count=len(judged.query))
    useful = (judged_row >= 0) & (judged.grade > 0)
    judged_query, judged_row, judged_grade = judged.query[useful], judged_row[useful], judged.grade[useful]
    # Judged documents get compact ids, so that a (query, document) key stays small; -1 for the rest.
    judged_docs = np.unique(judged_row)
    compact = np.full(n_docs + 1, -1, dtype=np.int64)
    compact[judged_docs] = np.arange(len(judged_docs))
    keys = judged_query * len(judged_docs) + compact[judged_row]
    order = np.argsort(keys)
    keys, judged_grade = np.append(keys[order], -1), np.append(judged_grade[order], 0.0)  # -1: matches nothing
    run_compact = compact[indices].ravel()  # (Q * k,); index -1 reads the last slot, -1
    candidates = np.flatnonzero(run_compact >= 0)  # row-major, so the result stays sorted
    run_keys = candidates // depth * len(judged_docs) + run_compact[candidates]
    found = np.searchsorted(keys[:-1], run_keys)  # len(keys) - 1 when past the end: the sentinel
    match = keys[found] == run_keys
    flat = candidates[match]
    return _Gains(flat // depth, flat % depth, judged_grade[found[match]], indices.shape)


def _per_query(spec: MetricSpec, gains: _Gains, judged: _Judged, hits: np.ndarray | None) -> np.ndarray:
    """One metric's value per query, from the gains matrix (or the answer hits)."""
    k = gains.shape[1] if spec.k is None else spec.k
    if spec.measure == "hits":
        return hits[:, :k].any(axis=1).astype(np.float64)
    keep = (gains.grade >= spec.level) & (gains.rank < k)
    query, rank, grade = gains.query[keep], gains.rank[keep], gains.grade[keep]  # the relevant retrieved

    def per_query_sum(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(query, weights=weights, minlength=gains.shape[0]).astype(np.float64)

    if spec.measure == "ndcg":
        return _ratio(per_query_sum(grade / np.log2(rank + 2.0)), judged.ideal_dcg(spec.k, spec.level))
    if spec.measure == "precision":
        return per_query_sum() / k
    if spec.measure == "mrr":
        first = np.unique(query, return_index=True)[1]  # each query's first relevant entry
        rr = np.zeros(gains.shape[0])
        rr[query[first]] = 1.0 / (rank[first] + 1.0)
        return rr
    if spec.measure == "recall":
        return _ratio(per_query_sum(), judged.count(spec.level))
    nth_relevant = np.arange(1, len(query) + 1) - np.searchsorted(query, query)  # 1-based, within the query
    return _ratio(per_query_sum(nth_relevant / (rank + 1.0)), judged.count(spec.level))  # map


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (trec_eval's value for a query with nothing relevant)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def _auc_pool(positive_scores: list[np.ndarray], indices: np.ndarray, scores: np.ndarray,
              in_run_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool each query's positive scores and the scores of its top-500 retrieved non-positives.

    Returns ``(query row, score, is_positive)`` for every pooled score.
    """
    negative = (indices >= 0) & ~in_run_positive
    negative &= np.cumsum(negative, axis=1) <= AUC_NEGATIVES
    neg_query, neg_rank = np.nonzero(negative)
    pos_query = np.repeat(np.arange(len(positive_scores)), [len(p) for p in positive_scores])
    group = np.concatenate([pos_query, neg_query])
    pooled = np.concatenate([*positive_scores, scores[neg_query, neg_rank].astype(np.float64)])
    is_pos = np.concatenate([np.ones(len(pos_query), bool), np.zeros(len(neg_query), bool)])
    return group, pooled, is_pos


def _grouped_auc(group: np.ndarray, score: np.ndarray, is_pos: np.ndarray, n_groups: int) -> np.ndarray:
    """ROC AUC per group by the Mann-Whitney statistic (tied scores count 1/2); NaN without both classes.

    AUC = (sum of the positives' ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg), ranks within the
    group, ties given their average rank.
    """
    order = np.lexsort((score, group))
    g, s = group[order], score[order]
    starts_run = np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])]  # first of each run of ties
    run_first = np.flatnonzero(starts_run)
    run_last = np.r_[run_first[1:], len(g)] - 1
    run = np.cumsum(starts_run) - 1
    mean_position = (run_first + run_last)[run] / 2.0  # 0-based, averaged over the tie
    rank = np.empty(len(g))
    rank[order] = mean_position - np.searchsorted(g, g, side="left") + 1.0  # 1-based within the group
    counts = np.bincount(group, minlength=n_groups)
    n_pos = np.bincount(group, weights=is_pos, minlength=n_groups)
    n_neg = counts - n_pos
    rank_sum = np.bincount(group, weights=np.where(is_pos, rank, 0.0), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _histogram(pooled: np.ndarray, is_pos: np.ndarray) -> dict:
    """20 equal-width bins over [min, max] of the pooled scores; counts of positives and negatives."""
    edges = np.histogram_bin_edges(pooled, bins=HISTOGRAM_BINS)
    return {"edges": edges.tolist(),
            "positives": np.histogram(pooled[is_pos], bins=edges)[0].tolist(),
            "negatives": np.histogram(pooled[~is_pos], bins=edges)[0].tolist()}
