"""The compare stage: a comparison's run folders -> one compare JSON (seeds aggregated, tests).

Reads each run's ``metrics.json`` and ``per_query.jsonl``, hands the rows to
:func:`harness.compare.compare` (the statistics) and writes the record atomically, with each claim's
paired comparisons in this table (:func:`harness.claims.table_claims`) and the rows' compact letter
display (:func:`harness.separability.letters`). With ``--summary`` it reads every table's record
instead and writes ``claims.json`` (Holm over all claims x eval sets, verdicts) and ``ranks.json``
(Friedman + Nemenyi per model and train set, for the critical-difference diagram).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from harness.claims import NOT_MEASURED, applies, claim_from_record, summarise, table_claims
from harness.compare import RowInput, compare
from harness.errors import ConfigError, DataError
from harness.io import iter_jsonl, read_json, write_json
from harness.metrics import metrics_for, parse_metric
from harness.separability import friedman_nemenyi, letters


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


def _check_guest(row: RowInput, base: RowInput, results_root: Path) -> None:
    """A row of another model (a generative model's row on a bi-encoder's table) is tested against the
    baseline only on the same queries: the same train set, eval set, split and family, and the same query ids."""
    model = row.header["model"]
    for key in ("train", "eval", "split", "family"):
        if row.header[key] != base.header[key]:
            raise DataError(f"row {row.label!r} of model {model!r} has {key} {row.header[key]!r}, the baseline "
                            f"{base.header[key]!r}: another model's row joins a table only on the same train set, "
                            "eval set, split and queries", results_root / row.runs[0] / "metrics.json",
                            field=f"run.{key}")
    if set(row.query_ids) != set(base.query_ids):
        missing = sorted(set(base.query_ids) - set(row.query_ids))
        extra = sorted(set(row.query_ids) - set(base.query_ids))
        raise DataError(f"row {row.label!r} of model {model!r} was evaluated on other queries than the baseline "
                        f"(missing {missing[:5]}, extra {extra[:5]}): another model's row joins a table only on the "
                        "same queries", results_root / row.runs[0] / "per_query.jsonl", field="query_id")


def main_compare(run_dirs_by_label: dict[str, list[Path]], baseline: str, out: Path, results_root: Path, *,
                 metrics: list[str] | None = None, test: str = "randomization", permutations: int = 10000,
                 resamples: int = 10000, alpha: float = 0.05, seed: int = 0,
                 claims: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Load every row, compare it with ``baseline`` and write the compare JSON to ``out`` atomically.

    A row whose runs have ``"loss": null`` is the zero-shot row. A row of another model than the
    baseline's (a generative model's ``gen`` or ``ltrgr`` on a bi-encoder's table) is tested like the
    table's losses when its runs answered the same queries, else refused (:func:`_check_guest`); it widens
    the Holm family. Without ``metrics``, every per-query metric of the baseline's family is tested (main
    metric first) and the AUC metrics are reported as aggregate-only.
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
        if row.header["model"] != header["model"]:
            _check_guest(row, base_row, Path(results_root))
            continue
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
    main = header["main_metric"]
    record["letters"] = letters(rows, main, test=test, permutations=permutations, alpha=alpha, seed=seed)
    here = [c for c in map(claim_from_record, claims or []) if applies(c, header["model"], header["eval"])]
    measured = set(base_row.aggregate)
    record["claims"] = table_claims([c for c in here if (main if c.metric == "main" else c.metric) in measured],
                                    rows, main, test=test, permutations=permutations, resamples=resamples, seed=seed)
    record["claims"].update({c.key: {"status": NOT_MEASURED, "metric": c.metric} for c in here
                             if (main if c.metric == "main" else c.metric) not in measured})
    write_json(out, record)
    return record


def main_summary(compares: list[Path], claims_out: Path, ranks_out: Path, *,
                 claims: list[dict[str, Any]] | None = None, alpha: float = 0.05, **_: Any) -> None:
    """Every table's compare record -> ``claims.json`` (verdicts) and ``ranks.json`` (Friedman, Nemenyi).

    The rank tests use each row's mean of its eval set's main metric, per (model, train set).
    """
    tables = [read_json(path) for path in compares]
    for table, path in zip(tables, compares):
        missing = [k for k in ("model", "train", "eval", "rows", "main_metric") if k not in table]
        if missing:
            raise DataError(f"not a compare record (no {', '.join(missing)})", path)
    parsed = [claim_from_record(c) for c in claims or []]
    write_json(claims_out, summarise(parsed, tables, alpha))
    boards: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for table in tables:
        values = boards.setdefault((table["model"], table["train"]), {})
        for row in table["rows"]:
            stat = row["metrics"].get(table["main_metric"])
            if stat is not None:
                values.setdefault(row["loss"], {})[table["eval"]] = stat["mean"]
    write_json(ranks_out, {"schema": 1, "metric": "each eval set's main metric (row means over seeds)",
                           "boards": [{"model": m, "train": t, **friedman_nemenyi(v, alpha)}
                                      for (m, t), v in boards.items()]})


def run(a: argparse.Namespace) -> None:
    if a.summary:
        if not a.claims_out or not a.ranks_out:
            raise ConfigError("--summary needs --claims-out and --ranks-out", key="--summary")
        main_summary([Path(p) for p in a.summary], Path(a.claims_out), Path(a.ranks_out), **a.options)
        return
    if a.rows is None or a.out is None or a.baseline is None:
        raise ConfigError("a table needs --rows, --baseline and --out", key="--rows")
    if not isinstance(a.rows, dict) or not all(isinstance(v, list) for v in a.rows.values()):
        raise ConfigError("expected a JSON object of row label -> list of run folders", key="--rows")
    rows = {label: [Path(d) for d in dirs] for label, dirs in a.rows.items()}
    main_compare(rows, a.baseline, Path(a.out), Path(a.results), **a.options)
