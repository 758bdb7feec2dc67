"""The check-loss stage: a loss (registered name or ``module:Class``) -> the contract suite's
pass/fail lines on stdout and its JSON report (:mod:`harness.losses.contract`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError
from harness.io import write_json
from harness.losses import loss_source, resolve_loss
from harness.losses.contract import check_loss


def run(a: argparse.Namespace) -> None:
    key = f"losses.{a.label}" if a.label else None
    if not isinstance(a.params, dict):
        raise ConfigError("expected a JSON object of parameter -> value", key="--params")
    cls = resolve_loss(a.loss, key=key)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    report = check_loss(cls, a.params, label=a.label or a.loss, cost_queries=a.cost_queries)
    print(f"loss contract of {a.loss} {report.params}:")
    print("\n".join(report.lines()))
    if a.out:
        write_json(Path(a.out), {**report.to_dict(), "source": loss_source(cls)})
    if not report.passed:
        failed = "; ".join(f"{c.name}: {c.detail}" + ("" if c.value is None else f" = {c.value:.3g}")
                           for c in report.failed())
        raise ConfigError(f"{a.loss} fails the loss contract ({failed})", key=key or "LOSS")
    print(f"{a.loss}: every check passed")
