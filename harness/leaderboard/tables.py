"""The overview tables: one board per (model, train set), one view per metric.

A board has a row per loss label (the zero-shot model first, then the baseline, then the others
in the order the comparison files list them) and a column per evaluation dataset. A *view*
fills the columns with one metric; the ``main`` view uses each dataset's own main metric. A cell
is the mean ± std over seeds; it is marked ▲/▼ when the loss differs from the baseline with a
Holm-corrected p below alpha (ranx Report convention: the best value per column is bold). The
average column is the mean of the row's column means, each column counting once and a subgroup
(below) once as a whole, shown only when every column has one.

Eval sets of one group (``eval_sets.<name>.group`` in the config, e.g. the BEIR sets) are placed
side by side, followed by the group's average: the mean of the row's column means over the group's
eval sets (e.g. the average nDCG@10 over the BEIR sets), shown only when the row has every eval set
of the group on the board. The eval sets of one subgroup (``eval_sets.<name>.subgroup``) count as
one in it, their mean: BEIR (Thakur et al., NeurIPS 2021) and MTEB score CQADupStack as the mean
of its 12 forums, each searched in its own corpus, and count it once in the BEIR average. A
subgroup's columns stay visible, side by side within the group, followed by the subgroup's
average column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from harness.leaderboard.collect import CompareFile, Comparison, Results, Row, Stat
from harness.references import ZERO_SHOT, Check, References

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
    reference: Check | None = None

    @property
    def mark(self) -> str:
        """▲ or ▼ when significant after correction, else ''."""
        c = self.comparison
        return MARKS.get(c.direction, "") if c is not None and c.significant else ""


@dataclass(frozen=True)
class Average:
    """A row's mean over some columns (None unless the row has them all); ``best``: largest in its column."""

    value: float | None
    best: bool


@dataclass(frozen=True)
class BoardRow:
    """A row of one view: its label, its cells (None where the dataset lacks the metric), its averages
    (overall, per group, per (group, subgroup))."""

    label: str
    kind: str
    loss_name: str | None
    cells: list[Cell | None]
    average: Average
    group_averages: dict[str, Average]
    subgroup_averages: dict[tuple[str, str], Average]
    teacher: dict[str, Any] | None
    encoder: dict[str, Any] | None = None
    seeds: list[int] = field(default_factory=list)  # the numbers of seeds of its cells (one unless they differ)
    one_seed: bool = False


@dataclass(frozen=True)
class View:
    """One table of a board; ``metrics`` are the switch values it answers to.

    ``group_after`` maps the index of a group's last column to the group, whose average column
    follows it; ``subgroup_after`` does so for (group, subgroup), whose average column comes first.
    """

    metrics: list[str]
    columns: list[tuple[CompareFile, str]]
    rows: list[BoardRow]
    group_after: dict[int, str]
    subgroup_after: dict[int, tuple[str, str]]

    @property
    def tested(self) -> bool:
        """Whether some column's metric is tested against the baseline (not aggregate-only)."""
        return any(metric in cf.metrics for cf, metric in self.columns)

    def members(self, group: str) -> list[str]:
        """The eval sets of ``group``, in column order."""
        return [cf.eval for cf, _ in self.columns if cf.group == group]

    def subgroup_members(self, key: tuple[str, str]) -> list[str]:
        """The eval sets of the subgroup ``key`` = (group, subgroup), in column order."""
        return [cf.eval for cf, _ in self.columns if subgroup_key(cf) == key]

    def parts(self, group: str) -> list[str]:
        """What the average of ``group`` is the mean of: its eval sets, each subgroup once (by name)."""
        return _unique(cf.subgroup if subgroup_key(cf) else cf.eval for cf, _ in self.columns if cf.group == group)


@dataclass(frozen=True)
class Board:
    """All views of one (model, train set)."""

    model: str
    train: str
    compares: list[CompareFile]
    views: list[View]
    checks: list[Check]

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


def subgroup_key(cf: CompareFile) -> tuple[str, str] | None:
    """(group, subgroup) of an eval set in a subgroup of a group; None otherwise (a subgroup needs a group)."""
    return (cf.group, cf.subgroup) if cf.group is not None and cf.subgroup is not None else None


def group_columns(compares: list[CompareFile]) -> list[CompareFile]:
    """``compares`` with each group's eval sets moved next to the group's first one, and within it each
    subgroup's next to the subgroup's first one (order kept otherwise)."""
    def key(cf: CompareFile) -> tuple[tuple[str, str], tuple[str, ...]]:
        outer = ("group", cf.group) if cf.group is not None else ("eval", cf.eval)
        sub = subgroup_key(cf)
        return outer, ("subgroup", *sub) if sub is not None else ("eval", cf.eval)

    first: dict[Any, int] = {}
    for i, cf in enumerate(compares):
        outer, inner = key(cf)
        first.setdefault(outer, i)
        first.setdefault(inner, i)
    return sorted(compares, key=lambda cf: tuple(first[k] for k in key(cf)))


def _mean_of(cells: list[Cell | None]) -> float | None:
    return fmean(c.stat.mean for c in cells) if cells and all(cells) else None


def _mean_of_parts(cells: list[Cell | None], parts: list[list[int]]) -> float | None:
    """The mean over ``parts`` (lists of column indices) of each part's mean; None unless every column has a cell."""
    chosen = [cells[i] for part in parts for i in part]
    return fmean(fmean(cells[i].stat.mean for i in part) for part in parts) if chosen and all(chosen) else None


def _with_best(values: list[float | None]) -> list[Average]:
    top = max((v for v in values if v is not None), default=None)
    return [Average(v, v is not None and v == top) for v in values]


CheckKey = tuple[str, str, str, str, str]


def cell_key(cf: CompareFile, row: Row, metric: str) -> CheckKey:
    """(model, train, loss, eval set, metric) of a cell, as a reference names it (the zero-shot row is
    the same run on every board of a model)."""
    if row.kind == ZERO_SHOT:
        return cf.model, ZERO_SHOT, ZERO_SHOT, cf.eval, metric
    return cf.model, cf.train, row.label, cf.eval, metric


def reference_checks(results: Results, refs: References | None) -> list[Check]:
    """Every published reference held against the leaderboard's value of its cell (None: not run)."""
    if refs is None:
        return []
    values = {cell_key(cf, row, m): stat.mean for cf in results.compares for row in cf.rows
              for m, stat in row.metrics.items()}
    firsts = {ref.key: i for i, ref in reversed(list(enumerate(refs.entries)))}
    return [Check(ref, values.get(ref.key), refs.tolerance, primary=firsts[ref.key] == i)
            for i, ref in enumerate(refs.entries)]


def _view(switch: list[str], columns: list[tuple[CompareFile, str]], results: Results,
          checks: dict[CheckKey, Check]) -> View:
    labels = row_labels([cf for cf, _ in columns])
    best = [best_labels(cf, metric) for cf, metric in columns]
    groups = _unique(cf.group for cf, _ in columns if cf.group is not None)
    members = {g: [i for i, (cf, _) in enumerate(columns) if cf.group == g] for g in groups}
    subgroups = _unique(k for cf, _ in columns if (k := subgroup_key(cf)) is not None)
    sub_members = {k: [i for i, (cf, _) in enumerate(columns) if subgroup_key(cf) == k] for k in subgroups}
    averaged: dict[str, dict[Any, list[int]]] = {g: {} for g in groups}  # a part per eval set, one per subgroup
    for g in groups:
        for i in members[g]:
            averaged[g].setdefault(subgroup_key(columns[i][0]) or i, []).append(i)
    overall: dict[Any, list[int]] = {}
    for i, (cf, _) in enumerate(columns):
        overall.setdefault(subgroup_key(cf) or i, []).append(i)
    same = {rep.label: [r for cf, _ in columns for r in cf.rows if r.label == rep.label] for rep in labels}
    all_cells = []
    for rep in labels:
        cells: list[Cell | None] = []
        for (cf, metric), top in zip(columns, best):
            row = next((r for r in cf.rows if r.label == rep.label), None)
            stat = row.metrics.get(metric) if row is not None else None
            cells.append(None if stat is None else Cell(
                compare=cf, metric=metric, stat=stat, best=rep.label in top,
                comparison=cf.comparisons.get(metric, {}).get(rep.label),
                reference=checks.get(cell_key(cf, row, metric))))
        all_cells.append(cells)
    averages = _with_best([_mean_of_parts(cells, list(overall.values())) for cells in all_cells])
    by_group = {g: _with_best([_mean_of_parts(cells, list(averaged[g].values())) for cells in all_cells])
                for g in groups}
    by_subgroup = {k: _with_best([_mean_of([cells[i] for i in sub_members[k]]) for cells in all_cells])
                   for k in subgroups}
    rows = [BoardRow(rep.label, rep.kind, rep.loss_name, cells, averages[n], {g: by_group[g][n] for g in groups},
                     {k: by_subgroup[k][n] for k in subgroups},
                     next((results.runs[r].teacher for r in rep.runs if results.runs[r].teacher), None),
                     next((e for r in rep.runs if (e := (results.runs[r].record.get("protocol") or {}).get("encoder"))),
                          None),
                     sorted({len(r.seeds) for r in same[rep.label]}), any(r.one_seed for r in same[rep.label]))
            for n, (rep, cells) in enumerate(zip(labels, all_cells))]
    return View(metrics=switch, columns=columns, rows=rows, group_after={members[g][-1]: g for g in groups},
                subgroup_after={sub_members[k][-1]: k for k in subgroups})


@dataclass(frozen=True)
class WinTieLoss:
    """Queries on which a row's per-query value (mean over its seeds) is above, equal to or below the baseline's."""

    win: int
    tie: int
    loss: int


def win_tie_loss(cf: CompareFile, per_query: Callable[[str], dict[str, float] | None]) -> dict[str, WinTieLoss]:
    """Label → its :class:`WinTieLoss` against the baseline on ``cf``'s main metric, over the queries every
    run of both rows scored; ``per_query`` gives a run's values (None: the run has none; the row is left out)."""
    def means(row: Row) -> dict[str, float] | None:
        values = [per_query(r) for r in row.runs]
        if not values or any(v is None for v in values):
            return None
        shared = set.intersection(*(set(v) for v in values))
        return {q: fmean(v[q] for v in values) for q in shared}

    base_row = next((r for r in cf.rows if r.label == cf.baseline), None)
    base = means(base_row) if base_row is not None else None
    out = {}
    for row in cf.rows:
        mine = means(row) if base is not None and row.label != cf.baseline else None
        if mine is not None:
            shared = mine.keys() & base.keys()
            out[row.label] = WinTieLoss(sum(mine[q] > base[q] for q in shared), sum(mine[q] == base[q] for q in shared),
                                        sum(mine[q] < base[q] for q in shared))
    return out


def metric_names(compares: Iterable[CompareFile]) -> list[str]:
    """Every metric in the comparison files, in first-seen order."""
    return _unique(m for cf in compares for m in cf.all_metrics)


def boards(results: Results, checks: list[Check] | None = None) -> list[Board]:
    """Group comparison files by (model, train set) and build the main view and one view per metric.

    Columns follow the comparison files' order, each group's eval sets together (:func:`group_columns`).
    A metric view whose columns equal the main view's is merged into it rather than repeated. A cell
    with published references carries the first one's check (:func:`reference_checks`); a board
    lists every check of its cells.
    """
    first = {c.reference.key: c for c in checks or [] if c.primary}
    groups: dict[tuple[str, str], list[CompareFile]] = {}
    for cf in results.compares:
        groups.setdefault((cf.model, cf.train), []).append(cf)
    out = []
    for (model, train), compares in groups.items():
        compares = group_columns(compares)
        main_columns = [(cf, cf.main_metric) for cf in compares]
        switch = [MAIN]
        others = []
        for metric in metric_names(compares):
            if all(cf.main_metric == metric for cf in compares):
                switch.append(metric)
            else:
                others.append(metric)
        views = [_view(switch, main_columns, results, first)]
        views += [_view([m], [(cf, m) for cf in compares], results, first) for m in others]
        keys = {cell_key(cf, row, m) for cf in compares for row in cf.rows for m in row.metrics}
        out.append(Board(model=model, train=train, compares=compares, views=views,
                         checks=[c for c in checks or [] if c.reference.key in keys]))
    return out


def _stat_dict(stat: Stat) -> dict[str, Any]:
    return {"mean": stat.mean, "std": stat.std, "per_seed": stat.per_seed,
            "ci_low": stat.ci_low, "ci_high": stat.ci_high}


def _comparison_dict(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"mean_diff": c.mean_diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
            "p_corrected": c.p_corrected, "significant": c.significant, "direction": c.direction}


def leaderboard_dict(results: Results, all_boards: list[Board], title: str, checks: list[Check],
                     extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every number on the site as JSON: boards (with averages), comparisons, full run records and
    every published reference with its verdict; ``extra`` maps a comparison file's path to more keys of
    its dataset entry."""
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
            datasets.append({"eval": cf.eval, "split": cf.split, "group": cf.group, "subgroup": cf.subgroup,
                             "main_metric": cf.main_metric,
                             "compare": cf.path, "baseline": cf.baseline, "test": cf.test,
                             "bootstrap": cf.bootstrap, "correction": cf.correction, "rows": rows,
                             "dataset": cf.dataset, "meta": cf.meta, **(extra or {}).get(cf.path, {})})
        averages = {m: {r.label: r.average.value for r in view.rows} for view in board.views for m in view.metrics}
        groups = _unique(cf.group for cf in board.compares if cf.group is not None)
        subgroups = {g: _unique(cf.subgroup for cf in board.compares if cf.group == g and cf.subgroup is not None)
                     for g in groups}
        out_boards.append({
            "model": board.model, "train": board.train, "datasets": datasets, "average": averages,
            "groups": {g: [cf.eval for cf in board.compares if cf.group == g] for g in groups},
            "group_average": {g: {m: {r.label: r.group_averages[g].value for r in view.rows}
                                  for view in board.views for m in view.metrics} for g in groups},
            "subgroups": {g: {s: [cf.eval for cf in board.compares if subgroup_key(cf) == (g, s)] for s in subs}
                          for g, subs in subgroups.items()},
            "subgroup_average": {g: {s: {m: {r.label: r.subgroup_averages[(g, s)].value for r in view.rows}
                                         for view in board.views for m in view.metrics} for s in subs}
                                 for g, subs in subgroups.items()}})
    runs = [{"path": run.path, **run.record, "train_log": run.train_log} for run in results.runs.values()]
    return {"schema": 1, "title": title, "boards": out_boards, "runs": runs,
            "references": [c.to_dict() for c in checks]}


CSV_FIELDS = ["model", "train", "eval", "split", "loss", "kind", "metric", "n_seeds", "seeds", "per_seed",
              "mean", "std", "ci_low", "ci_high", "best", "baseline", "mean_diff", "diff_ci_low",
              "diff_ci_high", "p_value", "p_corrected", "significant", "direction"]


def csv_rows(all_boards: list[Board]) -> Iterator[dict[str, Any]]:
    """One CSV row per (board, dataset, loss, metric); then one per (board, loss, view) for the average,
    with ``eval`` = ``(average)``, for each group's average, with ``eval`` = ``(average: <group>)``, and
    for each subgroup's, with ``eval`` = ``(average: <group>/<subgroup>)``."""
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
                named = [("(average)", r.average)] + [(f"(average: {g})", a) for g, a in r.group_averages.items()]
                named += [(f"(average: {g}/{s})", a) for (g, s), a in r.subgroup_averages.items()]
                for name, average in named:
                    if average.value is not None:
                        yield {"model": board.model, "train": board.train, "eval": name, "loss": r.label,
                               "kind": r.kind, "metric": view.metrics[-1], "mean": average.value,
                               "best": average.best, "baseline": board.baseline}
