"""Config validation, the grid, wildcard constraints and small helpers shared by the rules."""

import json
import os
import re
import shlex

from snakemake.utils import validate

from harness.grid import ZERO_SHOT, Grid, check


validate(config, schema="../config/config.schema.yaml", set_default=True)
check(config)
GRID = Grid(config)
R = GRID.results
SITE = config["site"]

RESOURCE_DEFAULTS = {
    "train": {"gpu": 0, "mem_mb": 6000, "runtime": 120, "threads": 1},
    "encode": {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
    "evaluate": {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
    "teacher": {"gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
}


wildcard_constraints:
    **GRID.wildcard_constraints(),


def res(stage, key):
    """A resource of a stage: the config's `resources.<stage>.<key>`, else the default."""
    return config["resources"].get(stage, {}).get(key, RESOURCE_DEFAULTS[stage][key])


def arg(obj):
    """A JSON value as one shell-quoted argument."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def base_model(model):
    return config["models"][model]["path"]


def model_settings(model):
    return config["models"][model].get("settings", {})
