"""The teacher stage: score every training group's candidates once, rescaled as CADET does
(:mod:`harness.models.teacher`), into a JSON Lines file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from harness.io import write_jsonl
from harness.models.teacher import rescale, score_groups
from harness.stages import set_threads

log = logging.getLogger("harness")


def run_teacher(kind: str, model: str, dataset: Path, out: Path, groups_file: Path | None = None,
                settings: dict[str, Any] | None = None, batch_size: int = 64) -> int:
    """Score, rescale and write ``{"query_id", "scores"}`` lines; returns the number of queries kept."""
    kept = rescale(score_groups(kind, model, dataset, groups_file, settings, batch_size))
    write_jsonl(out, ({"query_id": q, "scores": {d: round(s, 6) for d, s in scores.items()}}
                      for q, scores in kept.items()))
    return len(kept)


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    kept = run_teacher(a.kind, a.model, Path(a.dataset), Path(a.out), Path(a.groups) if a.groups else None,
                       a.settings, a.batch_size)
    log.info("teacher scores for %d queries -> %s", kept, a.out)
