"""The prepare stage: a dataset source -> one folder in the on-disk format (:mod:`harness.data.prepare`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from harness.data.prepare import prepare

log = logging.getLogger("harness")


def run(a: argparse.Namespace) -> None:
    options = dict(a.options)
    if a.path is not None:
        options["path"] = a.path
    meta = prepare(a.source, Path(a.out), **options)
    log.info("prepared %s: %s", a.out, meta.get("counts"))
