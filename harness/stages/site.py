"""The site stage: a results tree -> the static leaderboard (:func:`harness.leaderboard.build.build_site`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.leaderboard.build import build_site


def run(a: argparse.Namespace) -> None:
    index = build_site(Path(a.results), Path(a.out), references=Path(a.references) if a.references else None,
                       show_host=a.show_host)
    print(f"leaderboard: {index.resolve()}", file=sys.stderr)
