"""The loss registry: every training objective of the leaderboard behind one contract.

``get_loss(name, **params)`` returns a :class:`Loss`, called as ``loss(scores, labels, teacher=None)``
on a batch's [Q, D] score matrix (see :mod:`harness.losses.base`). One module per family:

| name | module | paper |
|---|---|---|
| ``infonce`` | contrastive | arXiv 1807.03748 (with in-batch negatives, 2004.04906) |
| ``mw`` | mann_whitney | arXiv 2510.00137 |
| ``jointlh``, ``summarglh``, ``lsepair``, ``rand1lh`` | multi_positive | arXiv 2602.12727 |
| ``listwise_kd`` | distillation | arXiv 2505.19274 |
| ``ltr_margin`` | margin | arXiv 2306.15222 |
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from harness.losses.base import Loss, Param, SeededLoss
from harness.losses.contrastive import InfoNCE
from harness.losses.distillation import ListwiseKD
from harness.losses.mann_whitney import MannWhitney
from harness.losses.margin import LTRMargin
from harness.losses.multi_positive import JointLH, LSEPair, Rand1LH, SumMargLH

__all__ = ["REGISTRY", "get_loss", "Loss", "Param", "SeededLoss", "InfoNCE", "MannWhitney", "JointLH",
           "SumMargLH", "LSEPair", "Rand1LH", "ListwiseKD", "LTRMargin"]

REGISTRY: dict[str, type[Loss]] = {
    cls.name: cls for cls in (InfoNCE, MannWhitney, JointLH, SumMargLH, LSEPair, Rand1LH, ListwiseKD, LTRMargin)
}


def get_loss(name: str, **params: Any) -> Loss:
    """The loss registered as ``name`` with ``params`` overriding its defaults.

    Raises :class:`ConfigError` for an unknown name or parameter, or a parameter of the wrong type
    or out of range; the message lists the valid names."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown loss {name!r}; valid losses: {', '.join(REGISTRY)}", key=f"losses.{name}")
    return REGISTRY[name](**params)
