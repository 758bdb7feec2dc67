"""The overview tables: one board per (model, train set), one view per metric.

A board has a row per loss label (the zero-shot model first, then the baseline, then the others
in the order the comparison files list them) and a column per evaluation dataset. A *view*
fills the columns with one metric; the ``main`` view uses each dataset's own main metric. A cell
is the mean ± std over seeds; it is marked ▲/▼ when the loss differs from the baseline with a
Holm-corrected p below alpha (ranx Report convention: the best value per column is bold). The
average column is the plain mean of the row's column means, shown only when every column has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from statistics import fmean
from typing import Any

from harness.leaderboard.collect import CompareFile, Comparison, Results, Row, Stat

MAIN = "main"
MARKS = {"better": "▲", "worse": "▼"}
KIND_ORDER = {"zero-shot": 0, "baseline": 1}


@dataclass(frozen=True)
class Cell:
    """One (row, dataset, metric) value with its best flag and its test against the baseline."""

    compare: CompareFile
    metric: str
    stat: Stat
    best: bool
    comparison: Comparison | None

    @property
    def mark(self) -> str:
        """▲ or ▼ when significant after correction, else ''."""
        c = self.comparison
        return MARKS.get(c.direction, "") if c is not None and c.significant else ""


@dataclass(frozen=True)
class BoardRow:
    """A row of one view: its label, its cells (None where the dataset lacks the metric), the average."""

    label: str
    kind: str
    loss_name: str | None
    cells: list[Cell | None]
    average: float | None
    average_best: bool
    teacher: dict[str, Any] | None


@dataclass(frozen=True)
class View:
    """One table of a board; ``metrics`` are the switch values it answers to."""

    metrics: list[str]
    columns: list[tuple[CompareFile, str]]
    rows: list[BoardRow]


@dataclass(frozen=True)
class Board:
    """All views of one (model, train set)."""

    model: str
    train: str
    compares: list[CompareFile]
    views: list[View]

    @property
    def baseline(self) -> str:
        """The baseline loss label (the first comparison file's)."""
        return self.compares[0].baseline


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def best_labels(cf: CompareFile, metric: str) -> set[str]:
    """The labels whose mean of ``metric`` is the largest in ``cf`` (all metrics: higher is better)."""
    means = {row.label: row.metrics[metric].mean for row in cf.rows if metric in row.metrics}
    top = max(means.values(), default=None)
    return {label for label, mean in means.items() if mean == top}


def row_labels(compares: list[CompareFile]) -> list[Row]:
    """One representative row per label across datasets: zero-shot, baseline, then first-seen order."""
    rows: dict[str, Row] = {}
    for cf in compares:
        for row in cf.rows:
            rows.setdefault(row.label, row)
    order = list(rows)
    return sorted(rows.values(), key=lambda r: (KIND_ORDER.get(r.kind, 2), order.index(r.label)))


def _view(switch: list[str], columns: list[tuple[CompareFile, str]], results: Results) -> View:
    labels = row_labels([cf for cf, _ in columns])
    best = [best_labels(cf, metric) for cf, metric in columns]
    rows = []
    for rep in labels:
        cells: list[Cell | None] = []
        for (cf, metric), top in zip(columns, best):
            row = next((r for r in cf.rows if r.label == rep.label), None)
            stat = row.metrics.get(metric) if row is not None else None
            cells.append(None if stat is None else Cell(
                compare=cf, metric=metric, stat=stat, best=rep.label in top,
                comparison=cf.comparisons.get(metric, {}).get(rep.label)))
        average = fmean(c.stat.mean for c in cells) if all(cells) else None
        teacher = next((results.runs[r].teacher for r in rep.runs if results.runs[r].teacher), None)
        rows.append(BoardRow(rep.label, rep.kind, rep.loss_name, cells, average, False, teacher))
    top_avg = max((r.average for r in rows if r.average is not None), default=None)
    rows = [replace(r, average_best=r.average is not None and r.average == top_avg) for r in rows]
    return View(metrics=switch, columns=columns, rows=rows)


def metric_names(compares: Iterable[CompareFile]) -> list[str]:
    """Every metric in the comparison files, in first-seen order."""
    return _unique(m for cf in compares for m in cf.all_metrics)


def boards(results: Results) -> list[Board]:
    """Group comparison files by (model, train set) and build the main view and one view per metric.

    A metric view whose columns equal the main view's is merged into it rather than repeated.
    """
    groups: dict[tuple[str, str], list[CompareFile]] = {}
    for cf in results.compares:
        groups.setdefault((cf.model, cf.train), []).append(cf)
    out = []
    for (model, train), compares in groups.items():
        main_columns = [(cf, cf.main_metric) for cf in compares]
        switch = [MAIN]
        others = []
        for metric in metric_names(compares):
            if all(cf.main_metric == metric for cf in compares):
                switch.append(metric)
            else:
                others.append(metric)
        views = [_view(switch, main_columns, results)]
        views += [_view([m], [(cf, m) for cf in compares], results) for m in others]
        out.append(Board(model=model, train=train, compares=compares, views=views))
    return out


def _stat_dict(stat: Stat) -> dict[str, Any]:
    return {"mean": stat.mean, "std": stat.std, "per_seed": stat.per_seed,
            "ci_low": stat.ci_low, "ci_high": stat.ci_high}


def _comparison_dict(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"mean_diff": c.mean_diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
            "p_corrected": c.p_corrected, "significant": c.significant, "direction": c.direction}


def leaderboard_dict(results: Results, all_boards: list[Board], title: str) -> dict[str, Any]:
    """Every number on the site as JSON: boards (with averages), comparisons and full run records."""
    out_boards = []
    for board in all_boards:
        datasets = []
        for cf in board.compares:
            rows = []
            for row in cf.rows:
                metrics = {}
                for metric, stat in row.metrics.items():
                    metrics[metric] = _stat_dict(stat) | {
                        "best": row.label in best_labels(cf, metric),
                        "comparison": _comparison_dict(cf.comparisons.get(metric, {}).get(row.label))}
                rows.append({"loss": row.label, "kind": row.kind, "loss_name": row.loss_name,
                             "params": row.params, "seeds": row.seeds, "runs": row.runs, "metrics": metrics})
            datasets.append({"eval": cf.eval, "split": cf.split, "main_metric": cf.main_metric,
                             "compare": cf.path, "baseline": cf.baseline, "test": cf.test,
                             "bootstrap": cf.bootstrap, "correction": cf.correction, "rows": rows})
        averages = {m: {r.label: r.average for r in view.rows} for view in board.views for m in view.metrics}
        out_boards.append({"model": board.model, "train": board.train, "datasets": datasets,
                           "average": averages})
    runs = [{"path": run.path, **run.record, "train_log": run.train_log} for run in results.runs.values()]
    return {"schema": 1, "title": title, "boards": out_boards, "runs": runs}


CSV_FIELDS = ["model", "train", "eval", "split", "loss", "kind", "metric", "n_seeds", "seeds", "per_seed",
              "mean", "std", "ci_low", "ci_high", "best", "baseline", "mean_diff", "diff_ci_low",
              "diff_ci_high", "p_value", "p_corrected", "significant", "direction"]


def csv_rows(all_boards: list[Board]) -> Iterator[dict[str, Any]]:
    """One CSV row per (board, dataset, loss, metric); then one per (board, loss, view) for the average,
    with ``eval`` = ``(average)``."""
    for board in all_boards:
        for cf in board.compares:
            for row in cf.rows:
                for metric, stat in row.metrics.items():
                    c = cf.comparisons.get(metric, {}).get(row.label)
                    yield {
                        "model": cf.model, "train": cf.train, "eval": cf.eval, "split": cf.split,
                        "loss": row.label, "kind": row.kind, "metric": metric, "n_seeds": len(row.seeds),
                        "seeds": ";".join(map(str, row.seeds)), "per_seed": ";".join(map(repr, stat.per_seed)),
                        "mean": stat.mean, "std": stat.std, "ci_low": stat.ci_low, "ci_high": stat.ci_high,
                        "best": row.label in best_labels(cf, metric), "baseline": cf.baseline,
                        **({} if c is None else {
                            "mean_diff": c.mean_diff, "diff_ci_low": c.ci_low, "diff_ci_high": c.ci_high,
                            "p_value": c.p_value, "p_corrected": c.p_corrected,
                            "significant": c.significant, "direction": c.direction}),
                    }
        for view in board.views:
            for r in view.rows:
                if r.average is not None:
                    yield {"model": board.model, "train": board.train, "eval": "(average)", "loss": r.label,
                           "kind": r.kind, "metric": view.metrics[-1],
                           "mean": r.average, "best": r.average_best, "baseline": board.baseline}
