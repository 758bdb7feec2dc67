"""Published scores that the leaderboard's rows are checked against, as Pyserini's reproduction pages do.

A references file (``references:`` in the config) is YAML::

    tolerance: 0.01            # |lossboard - published| <= tolerance is OK, else FAIL
    references:
      - model: minilm          # a key of the config's `models`
        eval_set: beir-scifact # a key of its `eval_sets`
        metric: ndcg@10        # a metric that eval set reports
        value: 0.64508         # as published (a fraction, not a percentage)
        source: "embeddings-benchmark/results@<commit> results/<org>__<model>/<revision>/SciFact.json"
        protocol: "MTEB 1.12.75, dataset revision ..., max_seq_length 256"
        train: zero-shot       # optional: a train set key and a loss row key (default: the zero-shot row)
        loss: zero-shot
        note: "..."            # optional

Several entries may name the same (row, eval set, metric) when sources disagree: the first is the
one the row is judged by, the others are shown with their own verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.grid import ZERO_SHOT, load_yaml

DEFAULT_TOLERANCE = 0.01
REQUIRED = ("model", "eval_set", "metric", "value", "source", "protocol")
OPTIONAL = ("train", "loss", "note")


@dataclass(frozen=True)
class Reference:
    """One published score of one leaderboard row on one eval set."""

    model: str
    eval_set: str
    metric: str
    value: float
    source: str
    protocol: str
    train: str = ZERO_SHOT
    loss: str = ZERO_SHOT
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """(model, train, loss, eval set, metric): the leaderboard cell it is about."""
        return self.model, self.train, self.loss, self.eval_set, self.metric


@dataclass(frozen=True)
class References:
    """A references file: its tolerance and its entries, in file order."""

    path: str
    tolerance: float
    entries: list[Reference]


def _entry(raw: Any, i: int, path: Path) -> Reference:
    where = f"references[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError("an entry must be a mapping", key=where, path=path)
    missing = [k for k in REQUIRED if k not in raw]
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise ConfigError(f"missing {missing}, unknown {unknown}; fields: {list(REQUIRED)} + optional {list(OPTIONAL)}",
                          key=where, path=path)
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 or math.isnan(value):
        raise ConfigError(f"value must be a number in [0, 1] (a fraction, not a percentage), got {value!r}",
                          key=f"{where}.value", path=path)
    for name in (*REQUIRED, *OPTIONAL):
        if name != "value" and name in raw and not (isinstance(raw[name], str) and raw[name].strip()):
            raise ConfigError(f"must be a non-empty string, got {raw[name]!r}", key=f"{where}.{name}", path=path)
    return Reference(**{k: (float(v) if k == "value" else v) for k, v in raw.items()})


def read_references(path: str | Path) -> References:
    """Read and check the structure of a references file (the grid's keys are checked by
    :func:`check_references`)."""
    path = Path(path)
    data = load_yaml(path)
    unknown = sorted(set(data) - {"tolerance", "references"})
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; a references file has 'tolerance' and 'references'", path=path)
    tolerance = data.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ConfigError(f"tolerance must be a number in [0, 1), got {tolerance!r}", key="tolerance", path=path)
    entries = data.get("references")
    if not isinstance(entries, list):
        raise ConfigError("'references' must be a list of entries", key="references", path=path)
    return References(str(path), float(tolerance), [_entry(raw, i, path) for i, raw in enumerate(entries)])


def check_references(refs: References, models: list[str], train_sets: list[str], losses: list[str],
                     metrics: dict[str, list[str]]) -> None:
    """Every entry names a model, train set, loss row and eval set of the grid and a metric that eval
    set reports (``metrics``: eval set -> its metrics); raises :class:`ConfigError` naming the entry."""
    for i, ref in enumerate(refs.entries):
        where = f"references[{i}] ({ref.model}, {ref.eval_set}, {ref.metric})"
        for field, value, known in (("model", ref.model, models), ("eval_set", ref.eval_set, list(metrics)),
                                    ("train", ref.train, [ZERO_SHOT, *train_sets]),
                                    ("loss", ref.loss, [ZERO_SHOT, *losses])):
            if value not in known:
                raise ConfigError(f"unknown {field} {value!r}; known: {known}", key=where, path=refs.path)
        if (ref.train == ZERO_SHOT) != (ref.loss == ZERO_SHOT):
            raise ConfigError("the zero-shot row has train and loss both 'zero-shot'", key=where, path=refs.path)
        if ref.metric not in metrics[ref.eval_set]:
            raise ConfigError(f"eval set {ref.eval_set!r} does not report {ref.metric!r}; it reports "
                              f"{metrics[ref.eval_set]}", key=where, path=refs.path)


@dataclass(frozen=True)
class Check:
    """A reference held against the leaderboard's value: Δ = lossboard − published. ``primary``: the
    first reference of its cell, the one the cell shows (the others are sources that disagree)."""

    reference: Reference
    ours: float | None
    tolerance: float
    primary: bool = True

    @property
    def delta(self) -> float | None:
        return None if self.ours is None else self.ours - self.reference.value

    @property
    def verdict(self) -> str:
        """``OK`` (|Δ| ≤ tolerance), ``FAIL``, or ``not run`` when the row has no value."""
        if self.delta is None:
            return "not run"
        return "OK" if abs(self.delta) <= self.tolerance + 1e-12 else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        r = self.reference
        return {"model": r.model, "train": r.train, "loss": r.loss, "eval": r.eval_set, "metric": r.metric,
                "published": r.value, "lossboard": self.ours, "delta": self.delta, "tolerance": self.tolerance,
                "verdict": self.verdict, "primary": self.primary, "source": r.source, "protocol": r.protocol,
                "note": r.note}
