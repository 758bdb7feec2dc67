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

A config may also name a researcher's own loss as ``module:Class`` (``mypkg.losses:FocalInfoNCE``):
:func:`resolve_loss` imports that module — which runs its code, like any Python import — and checks
that the class is a :class:`Loss` with the contract's call signature. Every name goes through
:func:`resolve_loss`. :mod:`harness.losses.contract` is the suite of checks every loss must pass.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.losses.base import Loss, Param, SeededLoss
from harness.losses.contrastive import InfoNCE
from harness.losses.distillation import ListwiseKD
from harness.losses.mann_whitney import MannWhitney
from harness.losses.margin import LTRMargin
from harness.losses.multi_positive import JointLH, LSEPair, Rand1LH, SumMargLH

__all__ = ["REGISTRY", "get_loss", "resolve_loss", "loss_source", "Loss", "Param", "SeededLoss", "InfoNCE",
           "MannWhitney", "JointLH", "SumMargLH", "LSEPair", "Rand1LH", "ListwiseKD", "LTRMargin"]

REGISTRY: dict[str, type[Loss]] = {
    cls.name: cls for cls in (InfoNCE, MannWhitney, JointLH, SumMargLH, LSEPair, Rand1LH, ListwiseKD, LTRMargin)
}


def resolve_loss(name: str, key: str | None = None) -> type[Loss]:
    """The loss class ``name`` names: a registered name, or ``module:Class`` (imported here).

    Raises :class:`ConfigError` naming ``key`` (default ``losses.<name>``) when the module or the
    class is not found, the class is not a :class:`Loss`, lacks ``name``/``paper``/``citation``,
    or its ``compute``/``forward`` does not take ``(scores, labels, teacher)``."""
    key = key or f"losses.{name}"
    if name in REGISTRY:
        return REGISTRY[name]
    module_name, colon, class_name = name.partition(":")
    if not colon or not module_name or not class_name:
        raise ConfigError(f"unknown loss {name!r}; valid losses: {', '.join(REGISTRY)}, or a class of your "
                          "own as 'module:Class'", key=key)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ConfigError(f"module {module_name!r} not found: install it or put its folder on PYTHONPATH",
                              key=key) from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}", key=key) from None
    except Exception as exc:  # the user's module raised while being imported
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", key=key) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module {module_name!r} has no class {class_name!r}", key=key)
    if not (inspect.isclass(cls) and issubclass(cls, Loss)):
        raise ConfigError(f"{name} is not a subclass of harness.losses.Loss", key=key)
    missing = [attr for attr in ("name", "paper", "citation") if not isinstance(getattr(cls, attr, None), str)]
    if missing:
        raise ConfigError(f"{name} must set the class attribute(s) {missing} (strings), as the built-in "
                          "losses do", key=key)
    if cls.compute is Loss.compute:
        raise ConfigError(f"{name} does not implement compute(self, scores, labels, teacher)", key=key)
    for method in ("compute", "forward"):  # both are called as method(scores, labels, teacher)
        try:
            inspect.signature(getattr(cls, method)).bind(None, None, None, None)
        except TypeError:
            raise ConfigError(f"{name}.{method} must accept (scores, labels, teacher); it is "
                              f"{method}{inspect.signature(getattr(cls, method))}", key=key) from None
    return cls


def loss_source(cls: type[Loss]) -> dict[str, str]:
    """Where a loss class's code is: ``module:Class``, its source file and the file's sha256."""
    path = Path(inspect.getfile(cls)).resolve()
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "file": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def get_loss(name: str, **params: Any) -> Loss:
    """The loss ``name`` names (see :func:`resolve_loss`) with ``params`` overriding its defaults.

    Raises :class:`ConfigError` for an unknown name or parameter, or a parameter of the wrong type
    or out of range; the message lists the valid names."""
    return resolve_loss(name)(**params)
