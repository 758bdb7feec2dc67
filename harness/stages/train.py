"""The train stage: (base model, dataset, loss, seed, options) -> a checkpoint (:func:`harness.train.train`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from harness.errors import ConfigError
from harness.stages import set_threads
from harness.train import OPTIONS, TrainArgs, train

log = logging.getLogger("harness")


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    options = dict(a.options)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(OPTIONS)}", key="--options")
    args = TrainArgs(model=a.model, dataset=Path(a.dataset), loss=a.loss, out=Path(a.out),
                     loss_params=a.loss_params, model_settings=a.settings, seed=a.seed,
                     teacher=Path(a.teacher) if a.teacher else None, groups=Path(a.groups) if a.groups else None,
                     leakage_eval=[Path(d) for d in a.leakage_eval],
                     resume_dir=Path(a.resume_dir) if a.resume_dir else None,
                     loss_check=Path(a.loss_check) if a.loss_check else None, precision=a.precision, **options)
    out = train(args)
    log.info("checkpoint -> %s", out)
