"""Read the results tree (``compare/`` and ``runs/``) into plain records for the site.

Only files that the prepare, evaluate and compare stages wrote are read:
``compare/<model>/<train>/<eval>.json``, ``runs/**/metrics.json`` (with ``run.trec`` and
``per_query.jsonl`` beside it), ``data/<dataset>/meta.json``
and, for a trained run, ``<checkpoint>/train_log.jsonl`` and the loss's description in
``<checkpoint>/lossboard.json`` (as training wrote it), and a run's step file (the commands of every
step it needs, :func:`harness.provenance.step_file`). A missing or malformed field raises
:class:`~harness.errors.DataError` naming the file and the field.

Strings that embed the absolute path of the folder holding ``results/`` (commands, config paths)
are rewritten relative to that folder, as the workflow runs them from there, so the site never
shows a path of the machine that built it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from harness.errors import DataError
from harness.grid import PATHS, ZERO_SHOT
from harness.io import iter_jsonl, read_json
from harness.provenance import step_file

LOSS_CARD_FILE = "lossboard.json"  # a checkpoint's metadata (harness.models.biencoder.SETTINGS_FILE)
LOSS_CARD_FIELDS = ("name", "params", "doc", "paper", "citation", "needs_teacher", "defaults")
LOSS_CHECK_FILE = "loss_check.json"  # a custom loss's contract report in its checkpoint (harness.train.LOSS_CHECK_FILE)
# the steps a run's provenance records: (step, its argv field, its command field for records without argv)
COMMANDS = (("train", "train_argv", "train_command"), ("evaluate", "argv", "command"))


@dataclass(frozen=True)
class Stat:
    """A row's aggregate of one metric over seeds (``std`` has ddof=1; CI: 95 % bootstrap)."""

    mean: float
    std: float
    per_seed: list[float]
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    """One loss against the baseline on one metric: paired test, Holm-corrected p, CI of the difference."""

    loss: str
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float
    p_corrected: float
    significant: bool
    direction: str


@dataclass(frozen=True)
class Row:
    """A leaderboard row: one loss label (or the zero-shot model) aggregated over its seeds."""

    label: str
    kind: str
    loss_name: str | None
    params: dict[str, Any]
    seeds: list[int]
    runs: list[str]
    metrics: dict[str, Stat]

    @property
    def one_seed(self) -> bool:
        """A trained row of one seed: its paired tests cover query variance only, not training-seed variance."""
        return self.kind != ZERO_SHOT and len(self.seeds) == 1


@dataclass(frozen=True)
class CompareFile:
    """The content of one ``compare/<model>/<train>/<eval>.json``."""

    path: str
    model: str
    train: str
    eval: str
    split: str
    main_metric: str
    metrics: list[str]
    aggregate_only: list[str]
    baseline: str
    test: dict[str, Any]
    bootstrap: dict[str, Any]
    correction: dict[str, Any]
    rows: list[Row]
    comparisons: dict[str, dict[str, Comparison]]
    group: str | None = None
    subgroup: str | None = None
    dataset: str | None = None
    meta: dict[str, Any] | None = None

    @property
    def all_metrics(self) -> list[str]:
        """Tested metrics, then the aggregate-only ones."""
        return self.metrics + [m for m in self.aggregate_only if m not in self.metrics]


@dataclass(frozen=True)
class Run:
    """One evaluation folder: its ``metrics.json`` (paths made relative) and its training log."""

    path: str
    record: dict[str, Any]
    train_log: list[dict[str, Any]] = field(default_factory=list)
    mteb: dict[str, Any] | None = None
    loss_card: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> dict[str, Any]:
        """The grid key: model, train, loss, seed, eval, split."""
        return self.record["run"]

    @property
    def commands(self) -> list[tuple[str, str]]:
        """(step, shell command) of every step the run needs, from its step file (prepare ... evaluate);
        for a run without one, the train and evaluate steps its record holds: ``shlex.join`` of the
        argv, or the command as an older record wrote it."""
        if self.steps:
            return [(step["step"], shlex.join(step["argv"])) for step in self.steps]
        prov = self.record.get("provenance") or {}
        out = []
        for step, argv_key, command_key in COMMANDS:
            argv = prov.get(argv_key)
            command = shlex.join(argv) if argv else prov.get(command_key)
            if command:
                out.append((step, str(command)))
        return out

    @property
    def teacher(self) -> dict[str, Any] | None:
        """The teacher named in the training config, if the loss used one."""
        train = ((self.record.get("provenance") or {}).get("config") or {}).get("train") or {}
        teacher = train.get("teacher")
        return teacher if isinstance(teacher, dict) else None

    def _eval_set(self, key: str) -> str | None:
        eval_set = ((self.record.get("provenance") or {}).get("config") or {}).get("eval_set") or {}
        value = eval_set.get(key) if isinstance(eval_set, dict) else None
        return None if value is None else str(value)

    @property
    def dataset(self) -> str:
        """The prepared dataset it searched: ``provenance.config.eval_set.dataset``, else the eval set's own
        name (the grid's rule, :meth:`harness.grid.Grid.dataset_of`)."""
        return self._eval_set("dataset") or str(self.key["eval"])

    @property
    def group(self) -> str | None:
        """The eval set's group (``provenance.config.eval_set.group``); None when absent."""
        return self._eval_set("group")

    @property
    def subgroup(self) -> str | None:
        """The eval set's subgroup within its group (``provenance.config.eval_set.subgroup``); None when absent."""
        return self._eval_set("subgroup")


@dataclass(frozen=True)
class Results:
    """Everything the site shows: comparison files in a stable order, every run by path and every
    loss the runs were trained with by name (its card from a checkpoint's ``lossboard.json``)."""

    compares: list[CompareFile]
    runs: dict[str, Run]
    losses: dict[str, dict[str, Any]] = field(default_factory=dict)


def _field(obj: dict[str, Any], key: str, path: Path, where: str = "") -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError("missing field", path, field=f"{where}{key}")
    return obj[key]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _relative(value: Any, root: str) -> Any:
    """Rewrite ``<root>/x`` to ``x`` in every string of a JSON value (recursively)."""
    if isinstance(value, str):
        return value.replace(root + "/", "") if root else value
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    return value


def _read_row(obj: dict[str, Any], path: Path, where: str) -> Row:
    metrics = {}
    for name, stat in _field(obj, "metrics", path, where).items():
        at = f"{where}metrics.{name}."
        metrics[name] = Stat(
            mean=float(_field(stat, "mean", path, at)),
            std=float(stat.get("std", 0.0)),
            per_seed=[float(v) for v in stat.get("per_seed", [])],
            ci_low=_optional_float(stat.get("ci_low")),
            ci_high=_optional_float(stat.get("ci_high")),
        )
    return Row(
        label=str(_field(obj, "loss", path, where)),
        kind=str(_field(obj, "kind", path, where)),
        loss_name=obj.get("loss_name"),
        params=dict(obj.get("params") or {}),
        seeds=[int(s) for s in obj.get("seeds", [])],
        runs=[str(r).rstrip("/") for r in _field(obj, "runs", path, where)],
        metrics=metrics,
    )


def _read_comparison(obj: dict[str, Any], path: Path, where: str) -> Comparison:
    return Comparison(
        loss=str(_field(obj, "loss", path, where)),
        mean_diff=float(_field(obj, "mean_diff", path, where)),
        ci_low=_optional_float(obj.get("ci_low")),
        ci_high=_optional_float(obj.get("ci_high")),
        p_value=float(_field(obj, "p_value", path, where)),
        p_corrected=float(_field(obj, "p_corrected", path, where)),
        significant=bool(_field(obj, "significant", path, where)),
        direction=str(obj.get("direction", "same")),
    )


def read_compare(path: Path, results: Path) -> CompareFile:
    """Parse one comparison file; ``results`` is the root its run paths are relative to."""
    obj = read_json(path)
    rows = [_read_row(r, path, f"rows[{i}].") for i, r in enumerate(_field(obj, "rows", path))]
    comparisons = {
        metric: {c.loss: c for c in (_read_comparison(x, path, f"comparisons.{metric}[{i}].")
                                     for i, x in enumerate(items))}
        for metric, items in (obj.get("comparisons") or {}).items()
    }
    return CompareFile(
        path=path.relative_to(results).as_posix(),
        model=str(_field(obj, "model", path)),
        train=str(_field(obj, "train", path)),
        eval=str(_field(obj, "eval", path)),
        split=str(obj.get("split", "")),
        main_metric=str(_field(obj, "main_metric", path)),
        metrics=[str(m) for m in _field(obj, "metrics", path)],
        aggregate_only=[str(m) for m in obj.get("aggregate_only", [])],
        baseline=str(_field(obj, "baseline", path)),
        test=dict(obj.get("test") or {}),
        bootstrap=dict(obj.get("bootstrap") or {}),
        correction=dict(obj.get("correction") or {}),
        rows=rows,
        comparisons=comparisons,
    )


def _inside(results: Path, relative: str, source: Path, name: str) -> Path:
    """Resolve a results-relative path from a file, refusing one that leaves the results folder."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(f"path must be relative to the results folder: {relative!r}", source, field=name)
    return results.joinpath(*rel.parts)


def read_run(folder: Path, results: Path) -> Run:
    """Parse ``metrics.json`` of one evaluation folder, its checkpoint's ``train_log.jsonl`` and,
    when MTEB evaluated the model, ``mteb/<model>/<train>/<loss>/seed<s>.json``."""
    path = folder / "metrics.json"
    record = _relative(read_json(path), str(results.resolve().parent).rstrip("/"))
    for key in ("model", "train", "loss", "seed", "eval"):
        _field(_field(record, "run", path), key, path, "run.")
    _field(record, "metrics", path)
    for _, argv_key, _ in COMMANDS:
        argv = (record.get("provenance") or {}).get(argv_key)
        if argv is not None and not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise DataError("must be a list of strings", path, field=f"provenance.{argv_key}")
    log: list[dict[str, Any]] = []
    card = None
    checkpoint = record.get("checkpoint")
    if checkpoint:
        checkpoint_dir = _inside(results, checkpoint, path, "checkpoint")
        log_path = checkpoint_dir / "train_log.jsonl"
        if log_path.is_file():
            log = [obj for _, obj in iter_jsonl(log_path)]
        card_path = checkpoint_dir / LOSS_CARD_FILE
        if card_path.is_file():
            card = _loss_card(read_json(card_path), card_path)
        check_path = checkpoint_dir / LOSS_CHECK_FILE
        if card is not None and check_path.is_file():
            card = {**card, "check": _field(read_json(check_path), "checks", check_path)}
    key = record["run"]
    mteb_path = _inside(results, PATHS["mteb"].format(results=".", model=key["model"], train=key["train"],
                                                      loss=key["loss"], seed=key["seed"]), path, "run")
    mteb = read_json(mteb_path) if mteb_path.is_file() else None
    if mteb is not None:
        _field(mteb, "scores", mteb_path)
    return Run(path=folder.relative_to(results).as_posix(), record=record, train_log=log, mteb=mteb, loss_card=card,
               steps=_read_steps(step_file(folder), results))


def _read_steps(path: Path, results: Path) -> list[dict[str, Any]]:
    """The steps of a run's step file (:func:`harness.provenance.steps`), paths made relative; none
    when the run has no step file."""
    if not path.is_file():
        return []
    steps = _field(_relative(read_json(path), str(results.resolve().parent).rstrip("/")), "steps", path)
    for i, step in enumerate(steps if isinstance(steps, list) else [None]):
        argv = _field(step, "argv", path, f"steps[{i}].")
        if not isinstance(_field(step, "step", path, f"steps[{i}]."), str) or not (
                isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise DataError("must be a step name and a list of strings", path, field=f"steps[{i}]")
    return steps


def _loss_card(metadata: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The loss's description in a checkpoint's metadata; None for a checkpoint written before
    training recorded one."""
    loss = metadata.get("loss") if isinstance(metadata, dict) else None
    if not isinstance(loss, dict) or "doc" not in loss:
        return None
    for key in LOSS_CARD_FIELDS:
        _field(loss, key, path, "loss.")
    return loss


def _group_of(cf: CompareFile, runs: dict[str, Run], results: Path,
              key: Literal["group", "subgroup"] = "group") -> str | None:
    """The one group (or, with ``key="subgroup"``, subgroup) the runs of ``cf`` name; runs naming
    none are older records and ignored."""
    groups = {g for row in cf.rows for r in row.runs if (g := getattr(runs[r], key)) is not None}
    if len(groups) > 1:
        raise DataError(f"the runs of one eval set name different {key}s: {sorted(groups)}",
                        results / cf.path, field=f"rows[].runs: provenance.config.eval_set.{key}")
    return next(iter(groups), None)


def read_per_query(results: Path, run_path: str, metric: str) -> dict[str, float] | None:
    """Query id → ``metric`` from a run's ``per_query.jsonl``; None when the run has no such file."""
    path = results / run_path / "per_query.jsonl"
    if not path.is_file():
        return None
    out = {}
    for lineno, obj in iter_jsonl(path):
        value = obj.get(metric)
        if "query_id" not in obj or not isinstance(value, (int, float)):
            raise DataError(f"needs query_id and a number for {metric}", path, lineno)
        out[str(obj["query_id"])] = float(value)
    return out


def _dataset_of(cf: CompareFile, runs: dict[str, Run], results: Path) -> tuple[str | None, dict[str, Any] | None]:
    """The prepared dataset the runs of ``cf`` searched and its ``meta.json`` (None when it is not in
    ``results``: it may have been prepared elsewhere)."""
    names = {runs[r].dataset for row in cf.rows for r in row.runs}
    if len(names) > 1:
        raise DataError(f"the runs of one eval set name different datasets: {sorted(names)}",
                        results / cf.path, field="rows[].runs: provenance.config.eval_set.dataset")
    if not names:
        return None, None
    name = names.pop()
    path = _inside(results, PATHS["data"].format(results=".", dataset=name), results / cf.path,
                   "rows[].runs: provenance.config.eval_set.dataset") / "meta.json"
    if not path.is_file():
        return name, None
    meta = read_json(path)
    for key in ("source", "counts"):
        _field(meta, key, path)
    return name, meta


def read_results(results: Path) -> Results:
    """Read every comparison and run under ``results``; a run a comparison names must exist.

    A comparison's ``group`` and ``subgroup`` are the ones its runs' records name (see :func:`_group_of`),
    its ``dataset`` and ``meta`` those of the prepared dataset they searched (see :func:`_dataset_of`).
    """
    results = Path(results)
    if not results.is_dir():
        raise DataError("results folder not found", results)
    compares = sorted(
        (read_compare(p, results) for p in (results / "compare").glob("*/*/*.json")),
        key=lambda c: (c.model, c.train, c.eval),
    )
    runs = {}
    for metrics in sorted((results / "runs").glob("**/metrics.json")):
        run = read_run(metrics.parent, results)
        runs[run.path] = run
    for cf in compares:
        for i, row in enumerate(cf.rows):
            for run_path in row.runs:
                if run_path not in runs:
                    raise DataError(f"run folder {run_path!r} has no metrics.json",
                                    results / cf.path, field=f"rows[{i}].runs")
    losses = {run.loss_card["name"]: run.loss_card for run in runs.values() if run.loss_card is not None}
    placed = []
    for cf in compares:
        dataset, meta = _dataset_of(cf, runs, results)
        placed.append(replace(cf, group=_group_of(cf, runs, results), subgroup=_group_of(cf, runs, results, "subgroup"),
                              dataset=dataset, meta=meta))
    return Results(compares=placed, runs=runs,
                   losses=dict(sorted(losses.items())))
