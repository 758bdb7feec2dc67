"""Paired significance of every loss against the baseline, with Holm's correction and bootstrap CIs.

For one (model, train set, eval set), each row (the zero-shot model, the baseline loss, every other
loss) has per-query values for each seed. Per-query values are averaged over seeds, then each loss
is compared with the baseline on the queries they share (the query sets must be equal):

- **test**: Fisher's paired randomisation test (Smucker, Allan & Carterette 2007): under H0 the
  sign of each query's difference d_q = a_q - b_q is exchangeable, so the two-sided p-value is the
  share of random sign flips whose |mean(d)| reaches the observed one
  (``scipy.stats.permutation_test(permutation_type="samples")``, a seeded Generator). ranx's
  ``fisher_randomization_test`` is not used: it seeds numpy inside a parallel numba function and
  gives different p-values for the same seed. The paired t-test (``scipy.stats.ttest_rel``) is
  the option.
- **correction**: Holm (1979) step-down over the losses compared with the baseline, per metric
  (``statsmodels multipletests(method="holm")``); significant = corrected p < alpha.
- **effect**: mean(d) with a paired bootstrap confidence interval (``scipy.stats.bootstrap``,
  BCa, paired=True, seeded).

Every test and interval starts from a fresh ``numpy.random.default_rng(seed)``, so a result does not
depend on how many rows or metrics came before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from harness.errors import ConfigError, DataError
from harness.io import iter_jsonl, read_json, write_json
from harness.metrics import metrics_for, parse_metric

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


def _seed_mean(row: RowInput, metric: str, order: list[str]) -> np.ndarray:
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
    zero-shot row(s), the baseline, then the losses in the given order.
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
            low, high = bootstrap_ci(_seed_mean(row, m, order), None, resamples, 0.95, np.random.default_rng(seed))
            summaries[m].update(ci_low=low, ci_high=high)
        kind = "baseline" if row is base_row else "zero-shot" if row.kind == "zero-shot" else "loss"
        out_rows.append({"loss": row.label, "kind": kind,
                         "loss_name": row.loss_name, "params": row.params, "seeds": row.seeds,
                         "runs": row.runs, "metrics": summaries})

    comparisons = {}
    for m in metrics:
        b = _seed_mean(base_row, m, order)
        entries, p_values = [], []
        for row in losses:
            a = _seed_mean(row, m, order)
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
                       "family": "every loss compared with the baseline, per metric",
                       "implementation": "statsmodels multipletests(method='holm')"},
        "rows": out_rows,
        "comparisons": comparisons,
    }


def _read_per_query(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    query_ids: list[str] = []
    values: dict[str, list[float]] = {}
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        qid = obj.get("query_id")
        if not isinstance(qid, str) or not qid:
            raise DataError("missing or empty query id", path, lineno, "query_id")
        if qid in seen:
            raise DataError(f"duplicate query id {qid!r}", path, lineno, "query_id")
        seen.add(qid)
        query_ids.append(qid)
        for name, value in obj.items():
            if name == "query_id":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise DataError(f"value {value!r} is not a number", path, lineno, name)
            values.setdefault(name, []).append(float(value))
    for name, column in values.items():
        if len(column) != len(query_ids):
            raise DataError(f"metric {name!r} is missing on some lines", path, None, name)
    return query_ids, values


def load_row(label: str, kind: str, run_dirs: list[Path], results_root: Path) -> RowInput:
    """Read the seeds of one row: each run's ``metrics.json`` and ``per_query.jsonl``, ordered by seed."""
    if not run_dirs:
        raise DataError(f"row {label!r} has no runs")
    runs = []
    for run_dir in map(Path, run_dirs):
        record = read_json(run_dir / "metrics.json")
        try:
            seed, _ = int(record["run"]["seed"]), record["metrics"]  # both must be there
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"missing or bad run.seed or metrics ({exc})", run_dir / "metrics.json") from None
        runs.append((seed, run_dir, record, *_read_per_query(run_dir / "per_query.jsonl")))
    runs.sort(key=lambda run: run[0])

    query_ids = runs[0][3]
    per_query: dict[str, list[np.ndarray]] = {}
    for seed, run_dir, _, ids, values in runs:
        if set(ids) != set(query_ids):
            raise DataError(f"evaluated on other queries than seed {runs[0][0]}", run_dir / "per_query.jsonl")
        position = {q: i for i, q in enumerate(ids)}
        for name, column in values.items():
            per_query.setdefault(name, [])
            per_query[name].append(np.asarray(column)[[position[q] for q in query_ids]])
    first = runs[0][2]
    loss = first.get("loss") or {}
    return RowInput(
        label=label, kind=kind, loss_name=loss.get("name"), params=loss.get("params") or {},
        seeds=[run[0] for run in runs],
        runs=[_relative(run[1], results_root) for run in runs],
        query_ids=query_ids,
        per_query={name: np.stack(columns) for name, columns in per_query.items() if len(columns) == len(runs)},
        aggregate={name: [run[2]["metrics"][name] for run in runs]
                   for name in first["metrics"] if all(name in run[2]["metrics"] for run in runs)},
        header={"model": first["run"].get("model"), "train": first["run"].get("train"),
                "eval": first["run"].get("eval"), "split": first["run"].get("split"),
                "family": first.get("family"), "main_metric": first.get("main_metric")},
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def main_compare(run_dirs_by_label: dict[str, list[Path]], baseline: str, out: Path, results_root: Path, *,
                 metrics: list[str] | None = None, test: str = "randomization", permutations: int = 10000,
                 resamples: int = 10000, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Load every row, compare it with ``baseline`` and write the compare JSON to ``out`` atomically.

    A row whose runs have ``"loss": null`` is the zero-shot row. Without ``metrics``, every
    per-query metric of the baseline's family is tested (main metric first) and the AUC metrics
    are reported as aggregate-only.
    """
    if baseline not in run_dirs_by_label:
        raise ConfigError(f"baseline {baseline!r} has no runs; rows are {', '.join(run_dirs_by_label)}",
                          key="compare.baseline")
    rows = []
    for label, run_dirs in run_dirs_by_label.items():
        row = load_row(label, "loss", run_dirs, results_root)
        row.kind = "zero-shot" if row.loss_name is None else "baseline" if label == baseline else "loss"
        rows.append(row)
    base_row = next(r for r in rows if r.label == baseline)
    header = base_row.header
    for row in rows:
        for key in ("model", "eval", "split", "family"):
            if row.header[key] != header[key]:
                raise DataError(f"row {row.label!r} has {key} {row.header[key]!r}, the baseline {header[key]!r}",
                                Path(results_root) / row.runs[0] / "metrics.json", field=f"run.{key}")
    reported = list(base_row.aggregate)
    if metrics is None:
        names = [n for n in metrics_for(header["family"], reported) if n in base_row.aggregate]
    else:
        names = [*metrics, *(n for n in reported if not parse_metric(n).per_query and n not in metrics)]
    tested = [n for n in names if parse_metric(n).per_query]
    aggregate_only = [n for n in names if not parse_metric(n).per_query]
    record = compare(rows, baseline, tested, aggregate_only, test=test, permutations=permutations,
                     resamples=resamples, alpha=alpha, seed=seed, header=header)
    write_json(out, record)
    return record
