"""What calibrated scores buy: a reliability diagram, ECE after isotonic regression, threshold transfer.

Everything is measured on the **top-k retrieved** passages of each query (k = :data:`TOP_K`, what a
RAG pipeline reads), pooled over queries: a retrieved passage is a positive when it is judged relevant
(the main metric's relevance: grade >= its level, or an answer hit for ``hits@k``).

- **Reliability diagram**: the pooled scores in :data:`BINS` equal-width bins over their range; per
  bin, the share of positives among the retrieved passages (and their count).
- **ECE after isotonic regression**: a monotone map score -> P(relevant) is fitted on the fit split
  (``sklearn.isotonic.IsotonicRegression``, clipped outside its range); on the measured split,
  ECE = sum_b (n_b / n) |mean(label)_b - mean(p)_b| over :data:`BINS` equal-width bins of p in [0, 1]
  (Naeini et al. 2015; Guo et al. 2017).
- **Threshold transfer** (the Mann-Whitney paper's argument, arXiv 2510.00137: scores comparable
  across queries): one global cut-off t is chosen on the fit split to maximise F1 of "score >= t"
  against the positives among the top-k; applied unchanged to the measured split it gives
  ``threshold_precision`` = TP / (TP + FP), ``threshold_recall`` = TP / (positives among the top-k),
  ``threshold_f1`` and ``threshold_empty`` = the share of queries with no passage at or above t.

The fit split is the dataset's dev split when it has one; else a seeded half of the evaluated queries
(the other half is measured), and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

TOP_K = 10
BINS = 10
HALF_SEED = 0
METRICS = ("threshold_f1", "threshold_precision", "threshold_recall", "threshold_empty", "ece_isotonic")


@dataclass
class Pool:
    """The top-k retrieved passages of some queries: query row, score and label (relevant or not)."""

    query: np.ndarray
    score: np.ndarray
    label: np.ndarray
    n_queries: int


def top_k_pool(scores: np.ndarray, valid: np.ndarray, relevant: np.ndarray, k: int = TOP_K) -> Pool:
    """Pool the first ``k`` columns of [Q, depth] ``scores`` where ``valid`` (a retrieved passage)."""
    keep = np.asarray(valid, dtype=bool)[:, :k]
    query, rank = np.nonzero(keep)
    return Pool(query, np.asarray(scores, dtype=np.float64)[:, :k][query, rank],
                np.asarray(relevant, dtype=bool)[:, :k][query, rank], len(keep))


def subset(pool: Pool, queries: np.ndarray) -> Pool:
    """The part of ``pool`` of the query rows ``queries`` (renumbered 0..len - 1)."""
    new = np.full(pool.n_queries, -1)
    new[queries] = np.arange(len(queries))
    keep = new[pool.query] >= 0
    return Pool(new[pool.query[keep]], pool.score[keep], pool.label[keep], len(queries))


def half_split(n_queries: int, seed: int = HALF_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of the query rows into a fit half and a measured half (``numpy`` permutation)."""
    order = np.random.default_rng(seed).permutation(n_queries)
    half = n_queries // 2
    return np.sort(order[:half]), np.sort(order[half:])


def best_cutoff(score: np.ndarray, label: np.ndarray) -> float:
    """The cut-off t (one of the scores) maximising F1 of ``score >= t``; the highest t among ties.

    Sorting the scores in decreasing order, predicting the first i as positive gives TP_i = cumsum of
    the labels, F1_i = 2 TP_i / (i + P); only the last of a run of tied scores is a valid i.
    """
    if not len(score) or not label.any():
        return float("inf")
    order = np.argsort(-score, kind="stable")
    s, y = score[order], label[order].astype(np.float64)
    tp = np.cumsum(y)
    n = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (n + y.sum())
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    f1 = np.where(last_of_tie, f1, -1.0)
    return float(s[int(np.argmax(f1))])


def apply_cutoff(pool: Pool, cutoff: float) -> dict[str, float]:
    """Precision, recall, F1 of ``score >= cutoff`` on ``pool`` and the share of queries left empty."""
    predicted = pool.score >= cutoff
    tp = float(np.sum(predicted & pool.label))
    n_pred, n_pos = float(predicted.sum()), float(pool.label.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    answered = np.zeros(pool.n_queries, dtype=bool)
    answered[pool.query[predicted]] = True
    empty = 1.0 - answered.mean() if pool.n_queries else 0.0
    return {"threshold_precision": precision, "threshold_recall": recall, "threshold_f1": f1,
            "threshold_empty": float(empty)}


def isotonic_ece(fit: Pool, measured: Pool, bins: int = BINS) -> float:
    """ECE on ``measured`` of the isotonic map score -> P(relevant) fitted on ``fit``."""
    if not len(fit.score) or not len(measured.score):
        return float("nan")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(fit.score, fit.label.astype(float))
    p = iso.predict(measured.score)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=measured.label.astype(float), minlength=bins)
                 - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / n.sum())


def reliability(pool: Pool, bins: int = BINS) -> dict[str, Any]:
    """Equal-width score bins over the pooled scores: edges, counts and the share of positives per bin."""
    if not len(pool.score):
        return {"edges": [], "counts": [], "relevant": []}
    edges = np.histogram_bin_edges(pool.score, bins=bins)
    counts = np.histogram(pool.score, bins=edges)[0]
    positives = np.histogram(pool.score[pool.label], bins=edges)[0]
    share = [float(p / c) if c else None for p, c in zip(positives, counts)]
    return {"edges": edges.tolist(), "counts": counts.tolist(), "relevant": share}


def calibrate(measured: Pool, fit: Pool | None, why: str = "no dev split") -> tuple[dict[str, float], dict[str, Any]]:
    """The calibration metrics of a run and its record (reliability diagram, cut-off, fit split).

    Without ``fit``, a seeded half of ``measured``'s queries fits and the other half is measured;
    ``why`` says why in the record. A ``fit`` pool without any relevant passage cannot place a cut-off:
    the half split is used and the record says so.
    """
    if fit is not None and not fit.label.any():
        fit, why = None, "the dev split has no relevant passage in its top results at this eval set's relevance level"
    if fit is None:
        fit_rows, measured_rows = half_split(measured.n_queries)
        fit, measured = subset(measured, fit_rows), subset(measured, measured_rows)
        fit_on = f"a seeded half of the evaluated queries (seed {HALF_SEED}; {why}); the other half is measured"
    else:
        fit_on = "the dev split"
    cutoff = best_cutoff(fit.score, fit.label)
    metrics = {**apply_cutoff(measured, cutoff), "ece_isotonic": isotonic_ece(fit, measured)}
    record = {"top_k": TOP_K, "cutoff": cutoff if np.isfinite(cutoff) else None, "fit_on": fit_on,
              "fit_queries": fit.n_queries, "measured_queries": measured.n_queries,
              "reliability": reliability(measured)}
    return metrics, record
