"""The gen-train stage: a generative retriever trained by phase 1 (``gen``) or phase 2 (``ltrgr``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError
from harness.generative.train import GenTrainArgs, train
from harness.stages import set_threads

OPTIONS = ("batch_size", "max_steps", "learning_rate", "warmup_steps", "weight_decay", "max_grad_norm",
           "new_weights_learning_rate", "checkpoint_every")
PHASE2_OPTIONS = ("max_steps", "learning_rate")


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    options = {k: v for k, v in a.options.items() if k in OPTIONS}
    generative = dict(a.generative)
    ltrgr = {k: generative[k] for k in ("margin", "random_offset", "generation_weight") if k in generative}
    if a.phase == "ltrgr":  # phase 2's own steps and learning rate, where the model's `ltrgr:` sets them
        options.update({k: generative[k] for k in PHASE2_OPTIONS if k in generative})
    if a.phase == "ltrgr" and not a.ranking:
        raise ConfigError("phase 2 needs --ranking", key="--ranking")
    train(GenTrainArgs(model=a.model, dataset=Path(a.dataset), index=Path(a.index), out=Path(a.out),
                       views=list(a.views), settings=generative["decode"], phase=a.phase,
                       ranking=Path(a.ranking) if a.ranking else None, seed=a.seed,
                       resume_dir=Path(a.resume_dir) if a.resume_dir else None, **options, **ltrgr))
