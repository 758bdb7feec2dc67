"""The stages: one thin driver per ``harness <stage>`` subcommand.

Each module's ``run(args)`` reads its inputs from files, calls the libraries (``harness.data``,
``harness.models``, ``harness.losses``, ``harness.train``, ``harness.retrieval``,
``harness.metrics``, ``harness.compare``, ``harness.leaderboard``) and writes its outputs
atomically. Libraries never import a stage (an import-linter contract in ``pyproject.toml``).
"""

from __future__ import annotations


def set_threads(n: int | None) -> None:
    """Limit torch to ``n`` intra-op threads (0 or None: torch's default)."""
    if n:
        import torch

        torch.set_num_threads(n)
