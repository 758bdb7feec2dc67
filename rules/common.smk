"""Config validation, the grid, wildcard constraints and small helpers shared by the rules."""

import json
import os
import re
import shlex

from snakemake.utils import validate

from harness.grid import ZERO_SHOT, Grid, check, check_size
from harness.io import claim_workdir, remove_stale_temps
from harness.launch import torchrun_prefix, train_resources


check_size(config)
validate(config, schema="../config/config.schema.yaml", set_default=True)
if config.get("references"):  # a file of the workflow, like the schema: relative to the Snakefile's folder
    config["references"] = os.path.join(workflow.basedir, config["references"])
check(config)
GRID = Grid(config)
R = GRID.results
DATA = GRID.pattern("data")
SITE = config["site"]

# A run that finds no other live run (a killed one leaves Snakemake's locks and its jobs' temp
# files) removes both, so the plain `snakemake` resumes; profiles/default reruns incomplete jobs.
if workflow.is_main_process:
    WORKDIR_LOCK = claim_workdir()
    if WORKDIR_LOCK is not None:
        for folder in (R, SITE):
            remove_stale_temps(folder)

RESOURCE_DEFAULTS = {
    "train": {"gpu": 0, "mem_mb": 6000, "runtime": 120, "threads": 1, "nodes": 1},
    "encode": {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
    "evaluate": {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
    "teacher": {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
    "mine": {"gpu": 0, "mem_mb": 8000, "runtime": 120, "threads": 1},
    "synthesize": {"gpu": 0, "mem_mb": 8000, "runtime": 120, "threads": 1},
    "gen_index": {"gpu": 0, "mem_mb": 8000, "runtime": 120, "threads": 1},
    "gen_train": {"gpu": 0, "mem_mb": 6000, "runtime": 120, "threads": 1},
    "gen_rank": {"gpu": 0, "mem_mb": 6000, "runtime": 120, "threads": 1},
}
DENSE = "|".join(re.escape(m) for m in GRID.dense_models()) or "^$"  # the model wildcard of the dense rules


wildcard_constraints:
    **GRID.wildcard_constraints(),


def res(stage, key):
    """A resource of a stage: the config's `resources.<stage>.<key>`, else the default."""
    return config["resources"].get(stage, {}).get(key, RESOURCE_DEFAULTS[stage][key])


def arg(obj):
    """A JSON value as one shell-quoted argument."""
    return shlex.quote(json.dumps(obj))


def flag(name, files):
    """``name`` followed by its shell-quoted files, or nothing when there are none."""
    return shlex.join([name, *files]) if files else ""


def base_model(model):
    return config["models"][model]["path"]


def model_settings(model):
    return config["models"][model].get("settings", {})


def teacher_scores(w):
    if not GRID.needs_teacher(w.loss):
        return []
    return [GRID.teacher(w.train)]


def model_of(w):
    """The model a run encodes with: the base model for zero-shot, else the trained checkpoint."""
    if w.train == ZERO_SHOT:
        return base_model(w.model)
    return GRID.checkpoint(w.model, w.train, w.loss, w.seed)


def model_input(w):
    return [] if w.train == ZERO_SHOT else [model_of(w)]


def settings_of(w):
    """Encoder settings come from the config for a base model; a checkpoint carries its own."""
    return arg(model_settings(w.model)) if w.train == ZERO_SHOT else arg({})


def run_info(w):
    train_cfg = None if w.train == ZERO_SHOT else dict(GRID.train_sets[w.train])
    if train_cfg is not None and GRID.needs_teacher(w.loss):
        train_cfg["teacher"] = config["teacher"]
    loss = GRID.losses.get(w.loss)
    return arg(
        {
            "run": {
                "model": w.model,
                "train": w.train,
                "loss": w.loss,
                "seed": int(w.seed),
                "eval": w.eval,
                "split": GRID.eval_sets[w.eval]["split"],
            },
            "checkpoint": None if w.train == ZERO_SHOT else model_of(w).removeprefix(f"{R}/"),
            "config": {
                "model": config["models"][w.model],
                "dataset": GRID.datasets[GRID.dataset_of(w.eval)],
                "eval_set": GRID.eval_sets[w.eval],
                "train": train_cfg,
                "loss": None if loss is None else {"name": loss.name, "params": loss.params},
            },
        }
    )


def compare_rows(w):
    return GRID.rows(w.model, w.train, w.eval)


# training jobs on several processes (rules/train.smk; harness/launch.py)
def train_devices(w):
    return GRID.train_sets[w.train].get("devices", 1)


def train_res(w, key):
    """One resource of a train job: the per-process `resources.train` times the job's processes per node."""
    per_process = {k: res("train", k) for k in ("gpu", "mem_mb", "runtime", "threads")}
    return train_resources(train_devices(w), res("train", "nodes"), per_process)[key]


# generative models (rules/generative.smk)
def gen_settings(model):
    from harness.generative.config import settings

    return arg(settings(config["models"][model]))


def gen_options(model, train):
    """A generative model's training options: its train set's, overridden by the model's own `train:`."""
    return arg({**GRID.train_options(train), **config["models"][model].get("train", {})})


def gen_views(model):
    return config["models"][model]["identifiers"]


def gen_model_of(w):
    """The model a generative run ranks with: the base model for zero-shot, else its checkpoint."""
    return base_model(w.model) if w.train == ZERO_SHOT else GRID.checkpoint(w.model, w.train, w.loss, w.seed)


def gen_run_info(w):
    """The grid key and config a generative run records in its metrics.json (as run_info for dense runs)."""
    trained = w.train != ZERO_SHOT
    return arg(
        {
            "run": {"model": w.model, "train": w.train, "loss": w.loss, "seed": int(w.seed), "eval": w.eval,
                    "split": GRID.eval_sets[w.eval]["split"]},
            "checkpoint": gen_model_of(w).removeprefix(f"{R}/") if trained else None,
            "config": {
                "model": config["models"][w.model],
                "dataset": GRID.datasets[GRID.dataset_of(w.eval)],
                "eval_set": GRID.eval_sets[w.eval],
                "train": dict(GRID.train_sets[w.train]) if trained else None,
                "loss": {"name": w.loss, "params": {}} if trained else None,
            },
        }
    )
