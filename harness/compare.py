"""Paired significance of every loss against the baseline, with Holm's correction and bootstrap CIs.

For one (model, train set, eval set), each row (the zero-shot model, the baseline loss, every other
loss and, on a bi-encoder's table, the ``gen`` and ``ltrgr`` rows of each generative model evaluated on
the same queries) has per-query values for each seed. Per-query values are averaged over seeds, then
each row is compared with the baseline on the queries they share (the query sets must be equal):

- **test**: Fisher's paired randomisation test (Smucker, Allan & Carterette 2007): under H0 the
  sign of each query's difference d_q = a_q - b_q is exchangeable, so the two-sided p-value is the
  share of random sign flips whose |mean(d)| reaches the observed one
  (``scipy.stats.permutation_test(permutation_type="samples")``, a seeded Generator). ranx's
  ``fisher_randomization_test`` is not used: it seeds numpy inside a parallel numba function and
  gives different p-values for the same seed. The paired t-test (``scipy.stats.ttest_rel``) is
  the option.
- **correction**: Holm (1979) step-down over the rows compared with the baseline, per metric
  (``statsmodels multipletests(method="holm")``); significant = corrected p < alpha. The family is
  every row of the table but the zero-shot one and the baseline, so it grows with the generative rows
  a bi-encoder's table holds: each row's corrected p is that of the table it is shown in.
- **effect**: mean(d) with a paired bootstrap confidence interval (``scipy.stats.bootstrap``,
  BCa, paired=True, seeded).

Every test and interval starts from a fresh ``numpy.random.default_rng(seed)``, so a result does not
depend on how many rows or metrics came before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from harness.errors import ConfigError, DataError

BATCH = 1000  # resamples evaluated at once: bounds memory at BATCH x n_queries values
TESTS = {
    "randomization": {"name": "paired randomization (Fisher)", "implementation": "scipy.stats.permutation_test"},
    "t-test": {"name": "paired t-test", "implementation": "scipy.stats.ttest_rel"},
}


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _abs_mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.abs(np.mean(x - y, axis=axis))


def randomization_test(a: np.ndarray, b: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of Fisher's paired randomisation test of mean(a - b) = 0.

    p = (1 + #{flips with |mean| >= observed |mean|}) / (1 + permutations); with
    ``2**n <= permutations`` scipy enumerates every sign assignment instead (an exact test).
    Identical inputs give p = 1.
    """
    data = (np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    result = stats.permutation_test(data, _abs_mean_difference, permutation_type="samples", vectorized=True,
                                    n_resamples=permutations, batch=BATCH, alternative="greater", rng=rng)
    return float(result.pvalue)


def paired_t_test(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the paired t-test; 1 when every difference is 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not np.any(a != b):
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def holm(p_values: list[float], alpha: float) -> tuple[list[float], list[bool]]:
    """Holm's step-down correction: p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j)); reject where < alpha."""
    if not len(p_values):
        return [], []
    reject, corrected, _, _ = multipletests(p_values, alpha=alpha, method="holm")
    return corrected.tolist(), reject.tolist()


def bootstrap_ci(a: np.ndarray, b: np.ndarray | None, resamples: int, confidence: float,
                 rng: np.random.Generator) -> tuple[float, float]:
    """BCa bootstrap interval of mean(a - b) over paired resamples of the queries (of mean(a) if b is None)."""
    data = tuple(np.asarray(x, dtype=np.float64) for x in (a, b) if x is not None)
    diff = data[0] if b is None else data[0] - data[1]
    if np.all(diff == diff[0]):  # every resample has the same mean (and BCa is undefined)
        return float(diff[0]), float(diff[0])
    result = stats.bootstrap(data, _mean if b is None else _mean_difference, paired=b is not None,
                             n_resamples=resamples, batch=BATCH, vectorized=True, confidence_level=confidence,
                             rng=rng)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass
class RowInput:
    """One leaderboard row: a loss (or the zero-shot model) over its seeds.

    ``per_query[metric]`` is [n_seeds, n_queries], columns aligned with ``query_ids``;
    ``aggregate[metric]`` the value each run reported, in the order of ``seeds``.
    """

    label: str
    kind: str  # "zero-shot", "baseline" or "loss"
    loss_name: str | None
    params: dict[str, Any]
    seeds: list[int]
    runs: list[str]
    query_ids: list[str]
    per_query: dict[str, np.ndarray]
    aggregate: dict[str, list[float]]
    header: dict[str, Any] = field(default_factory=dict)


def seed_mean(row: RowInput, metric: str, order: list[str]) -> np.ndarray:
    """The row's per-query values of ``metric`` averaged over seeds, in the query order ``order``."""
    if set(row.query_ids) != set(order):
        missing, extra = sorted(set(order) - set(row.query_ids)), sorted(set(row.query_ids) - set(order))
        raise DataError(f"row {row.label!r} was evaluated on other queries than the baseline "
                        f"(missing {missing[:5]}, extra {extra[:5]})", row.runs[0])
    if metric not in row.per_query:
        raise DataError(f"row {row.label!r} has no per-query values of {metric!r}", row.runs[0])
    position = {q: i for i, q in enumerate(row.query_ids)}
    return row.per_query[metric].mean(axis=0)[[position[q] for q in order]]


def _summary(row: RowInput, metric: str) -> dict[str, Any]:
    if metric not in row.aggregate:
        raise DataError(f"row {row.label!r} has no value of {metric!r}", row.runs[0])
    per_seed = [float(v) for v in row.aggregate[metric]]
    std = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
    return {"mean": float(np.mean(per_seed)), "std": std, "per_seed": per_seed, "ci_low": None, "ci_high": None}


def compare(rows: list[RowInput], baseline: str, metrics: list[str], aggregate_only: list[str], *,
            test: str = "randomization", permutations: int = 10000, resamples: int = 10000,
            alpha: float = 0.05, seed: int = 0, header: dict[str, Any]) -> dict[str, Any]:
    """Build the compare record (results contract ``compare/<model>/<train>/<eval>.json``).

    ``header`` supplies model, train, eval, split, family and main_metric. Rows come out as the
    zero-shot row(s), the baseline, then the others in the given order, each with the model whose runs
    it holds (its ``header["model"]``, else the table's).
    """
    if test not in TESTS:
        raise ConfigError(f"unknown test {test!r}; valid tests are {', '.join(TESTS)}", key="compare.test")
    base = [r for r in rows if r.label == baseline]
    if not base:
        raise ConfigError(f"baseline {baseline!r} is not among the rows ({', '.join(r.label for r in rows)})",
                          key="compare.baseline")
    base_row = base[0]
    ordered = ([r for r in rows if r.kind == "zero-shot"] + [base_row]
               + [r for r in rows if r.kind != "zero-shot" and r is not base_row])
    losses = [r for r in ordered if r.kind != "zero-shot" and r is not base_row]
    order = base_row.query_ids

    out_rows = []
    for row in ordered:
        summaries = {m: _summary(row, m) for m in [*metrics, *aggregate_only]}
        for m in metrics:
            low, high = bootstrap_ci(seed_mean(row, m, order), None, resamples, 0.95, np.random.default_rng(seed))
            summaries[m].update(ci_low=low, ci_high=high)
        kind = "baseline" if row is base_row else "zero-shot" if row.kind == "zero-shot" else "loss"
        out_rows.append({"loss": row.label, "kind": kind, "model": row.header.get("model", header.get("model")),
                         "loss_name": row.loss_name, "params": row.params, "seeds": row.seeds,
                         "runs": row.runs, "metrics": summaries})

    comparisons = {}
    for m in metrics:
        b = seed_mean(base_row, m, order)
        entries, p_values = [], []
        for row in losses:
            a = seed_mean(row, m, order)
            if test == "randomization":
                p = randomization_test(a, b, permutations, np.random.default_rng(seed))
            else:
                p = paired_t_test(a, b)
            low, high = bootstrap_ci(a, b, resamples, 0.95, np.random.default_rng(seed))
            diff = float(np.mean(a - b))
            direction = "better" if diff > 0 else "worse" if diff < 0 else "same"
            entries.append({"loss": row.label, "mean_diff": diff, "ci_low": low, "ci_high": high,
                            "p_value": p, "direction": direction})
            p_values.append(p)
        corrected, _ = holm(p_values, alpha)
        for entry, p_corr in zip(entries, corrected):
            entry.update(p_corrected=p_corr, significant=bool(p_corr < alpha))
        comparisons[m] = entries

    randomized = test == "randomization"
    return {
        "schema": 1,
        **{key: header.get(key) for key in ("model", "train", "eval", "split", "family", "main_metric")},
        "metrics": list(metrics),
        "aggregate_only": list(aggregate_only),
        "baseline": baseline,
        "test": {**TESTS[test], "permutations": permutations if randomized else None,
                 "seed": seed if randomized else None, "alternative": "two-sided"},
        "bootstrap": {"resamples": resamples, "confidence": 0.95, "seed": seed, "method": "BCa",
                      "implementation": "scipy.stats.bootstrap(paired=True)"},
        "correction": {"method": "holm", "alpha": alpha,
                       "family": "every row compared with the baseline (the losses and any other model's "
                                 "rows on the same queries), per metric",
                       "implementation": "statsmodels multipletests(method='holm')"},
        "rows": out_rows,
        "comparisons": comparisons,
    }
