"""Which rows really differ: Friedman + Nemenyi across eval sets, a compact letter display within one.

**Across eval sets** (Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7,
2006): the rows' main-metric means form a blocks x treatments table (eval sets x rows). Friedman's test
(``scipy.stats.friedmanchisquare``) asks whether the rows' ranks within the eval sets differ at all;
Nemenyi's post-hoc test (``scikit_posthocs.posthoc_nemenyi_friedman``) gives the p-value of every pair.
Rows are ranked 1 (best) to k within each eval set, ties sharing their mean rank; two rows differ
significantly when their mean ranks differ by more than the critical difference

    CD = q_alpha sqrt(k (k + 1) / (6 N)),   q_alpha = studentized range quantile(1 - alpha; k, inf) / sqrt(2)

for k rows and N eval sets. The critical-difference diagram draws the mean ranks on an axis and joins
every maximal run of rows (in rank order) no pair of which Nemenyi separates. It needs N >= 3 eval
sets and k >= 3 rows (Friedman's chi-square); a row without a value on every eval set is left out.

**Within one eval set**: every pair of rows is compared with the paired test of :mod:`harness.compare`
on the seed-averaged per-query values, Holm's correction runs over all k (k - 1) / 2 pairs, and
``scikit_posthocs.compact_letter_display`` (Piepho 2004) gives each row letters: two rows that share a
letter are not significantly different.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scikit_posthocs as sp
from scipy import stats

from harness.compare import RowInput, holm, paired_t_test, randomization_test, seed_mean

MIN_EVAL_SETS = 3
MIN_ROWS = 3


def friedman_nemenyi(values: dict[str, dict[str, float]], alpha: float) -> dict[str, Any]:
    """Friedman's test and Nemenyi's post-hoc over ``values[row][eval set]`` (higher is better).

    Returns the record the overview's critical-difference diagram is drawn from: ``rows`` in order
    of mean rank, ``mean_ranks``, ``p_values`` (Nemenyi, row x row), ``cd``, ``cliques`` (lists of rows
    joined by a bar), Friedman's ``statistic`` and ``p_value``; or ``diagram: None`` and a ``reason``.
    """
    eval_sets = sorted({e for per_eval in values.values() for e in per_eval})
    complete = {r: v for r, v in values.items() if all(e in v for e in eval_sets)}
    left_out = sorted(set(values) - set(complete))
    base = {"eval_sets": eval_sets, "left_out": left_out, "alpha": alpha}
    if len(eval_sets) < MIN_EVAL_SETS:
        return base | {"diagram": None, "reason": f"{len(eval_sets)} eval set(s): Friedman's test and the "
                       f"critical-difference diagram need at least {MIN_EVAL_SETS} (Demšar 2006)"}
    if len(complete) < MIN_ROWS:
        return base | {"diagram": None, "reason": f"{len(complete)} row(s) with a value on every eval set: "
                       f"Friedman's test needs at least {MIN_ROWS}"}
    rows = list(complete)
    table = np.array([[complete[r][e] for r in rows] for e in eval_sets], dtype=np.float64)  # N x k
    statistic, p_value = stats.friedmanchisquare(*table.T)
    ranks = stats.rankdata(-table, axis=1).mean(axis=0)
    nemenyi = sp.posthoc_nemenyi_friedman(table).to_numpy()
    k, n = len(rows), len(eval_sets)
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    order = np.argsort(ranks, kind="stable")
    ordered = [rows[i] for i in order]
    same = nemenyi[np.ix_(order, order)] >= alpha
    return base | {
        "diagram": "cd", "rows": ordered, "mean_ranks": {rows[i]: float(ranks[i]) for i in order},
        "statistic": float(statistic), "p_value": float(p_value), "n_eval_sets": n,
        "cd": float(q * np.sqrt(k * (k + 1) / (6 * n))),
        "p_values": {rows[i]: {rows[j]: float(nemenyi[i, j]) for j in order} for i in order},
        "cliques": [[ordered[i] for i in range(lo, hi + 1)] for lo, hi in cliques(same)],
        "test": "Friedman (scipy.stats.friedmanchisquare) + Nemenyi (scikit_posthocs.posthoc_nemenyi_friedman)"}


def cliques(same: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [lo, hi] (hi > lo) of consecutive items whose every pair is marked ``same``."""
    k = len(same)
    runs = []
    for lo in range(k):
        hi = lo
        while hi + 1 < k and all(same[i, hi + 1] for i in range(lo, hi + 1)):
            hi += 1
        if hi > lo and not any(a <= lo and hi <= b for a, b in runs):
            runs.append((lo, hi))
    return runs


def letters(rows: list[RowInput], metric: str, *, test: str, permutations: int, alpha: float,
            seed: int) -> dict[str, Any]:
    """The compact letter display of ``rows`` on ``metric``: all pairs, paired test, Holm."""
    order = rows[0].query_ids
    means = {r.label: seed_mean(r, metric, order) for r in rows}
    labels = list(means)
    pairs, p_values = [], []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if test == "randomization":
                p = randomization_test(means[a], means[b], permutations, np.random.default_rng(seed))
            else:
                p = paired_t_test(means[a], means[b])
            pairs.append((a, b))
            p_values.append(p)
    corrected, _ = holm(p_values, alpha)
    matrix = np.ones((len(labels), len(labels)))
    index = {label: i for i, label in enumerate(labels)}
    for (a, b), p in zip(pairs, corrected):
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = p
    display = sp.compact_letter_display(matrix, alpha=alpha, names=labels) if len(labels) > 1 else {labels[0]: "a"}
    return {"metric": metric, "alpha": alpha, "pairs": len(pairs), "correction": "holm over all pairs",
            "letters": {label: str(display[label]).replace(" ", "") for label in labels}}
