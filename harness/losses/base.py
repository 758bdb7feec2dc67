"""The loss contract, its parameter validation, and the masked tensor helpers the losses share.

Every loss is pure tensor math on one batch's score matrix (issue #7):

- ``scores`` [Q, D]: the model's similarity of query i and document j, before any temperature;
- ``labels`` [Q, D]: > 0 a positive (a larger value is more relevant), 0 a negative, < 0 ignored;
- ``teacher`` [Q, D] (optional): teacher scores, NaN where document j is not in query i's list.

A row with no positive contributes nothing; the *target* positive of a row is its largest label
(the lowest column on ties); every temperature divides the scores.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from harness.errors import ConfigError, TrainingError


@dataclass(frozen=True)
class Param:
    """One hyper-parameter of a loss: its default (whose type is the parameter's type), a short
    description, and an optional lower bound."""

    default: bool | int | float
    help: str
    bound: Literal["positive", "nonnegative"] | None = None

    def validate(self, loss: str, key: str, value: Any) -> bool | int | float:
        """Return ``value`` as this parameter's type, or raise :class:`ConfigError` naming the key."""
        config_key = f"losses.{loss}.{key}"
        kind = type(self.default)
        if kind is bool:
            valid = isinstance(value, bool)
        elif kind is int:
            valid = isinstance(value, int) and not isinstance(value, bool)
        else:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not valid:
            raise ConfigError(f"expected a finite {kind.__name__}, got {value!r}", key=config_key)
        value = kind(value)
        if self.bound == "positive" and not value > 0:
            raise ConfigError(f"must be > 0, got {value!r}", key=config_key)
        if self.bound == "nonnegative" and not value >= 0:
            raise ConfigError(f"must be >= 0, got {value!r}", key=config_key)
        return value


class Loss(torch.nn.Module):
    """Base class of every loss: validated hyper-parameters, self-description, input checks.

    A subclass sets the class attributes below and implements :meth:`compute`; :meth:`forward`
    checks the batch, casts half-precision scores to float32 and calls it.
    """

    name: ClassVar[str]
    citation: ClassVar[str]
    paper: ClassVar[str]
    needs_teacher: ClassVar[bool] = False
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **params: Any) -> None:
        super().__init__()
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(self.params) or "none"
            raise ConfigError(f"unknown parameter {unknown[0]!r} of loss {self.name!r}; valid parameters: {valid}",
                              key=f"losses.{self.name}.{unknown[0]}")
        for key, spec in self.params.items():
            setattr(self, key, spec.validate(self.name, key, params.get(key, spec.default)))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default value of every parameter."""
        return {key: spec.default for key, spec in cls.params.items()}

    @classmethod
    def card(cls) -> dict[str, Any]:
        """What the leaderboard shows of the loss (training writes it into the checkpoint's
        ``lossboard.json``): its docstring, paper, BibTeX, teacher need and defaults; JSON-able."""
        return {"doc": inspect.cleandoc(cls.__doc__ or ""), "paper": cls.paper, "citation": cls.citation,
                "needs_teacher": cls.needs_teacher, "defaults": cls.defaults()}

    def get_config_dict(self) -> dict[str, Any]:
        """Every parameter's value (defaults included); JSON-able."""
        return {key: getattr(self, key) for key in self.params}

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.get_config_dict().items())

    def forward(self, scores: Tensor, labels: Tensor, teacher: Tensor | None = None) -> Tensor:
        """The scalar loss of one batch (see the module docstring for the inputs)."""
        if scores.dim() != 2 or not scores.is_floating_point():
            raise TrainingError(f"{self.name}: scores must be a float [Q, D] tensor, got {scores.dtype} "
                                f"{tuple(scores.shape)}")
        if labels.shape != scores.shape:
            raise TrainingError(f"{self.name}: labels {tuple(labels.shape)} must have the shape of scores "
                                f"{tuple(scores.shape)}")
        if teacher is not None and teacher.shape != scores.shape:
            raise TrainingError(f"{self.name}: teacher {tuple(teacher.shape)} must have the shape of scores "
                                f"{tuple(scores.shape)}")
        if self.needs_teacher and teacher is None:
            raise TrainingError(f"{self.name} needs teacher scores; the training groups have none "
                                "(run the teacher stage for this dataset)")
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        return self.compute(scores, labels, teacher)

    def compute(self, scores: Tensor, labels: Tensor, teacher: Tensor | None) -> Tensor:
        """The loss on checked inputs; implemented by each loss."""
        raise NotImplementedError


class SeededLoss(Loss):
    """A loss that draws at random. Its ``torch.Generator`` is seeded once from the ``seed``
    parameter and advanced by every call, so a training run is reproducible; the generator's state
    is part of the module's ``state_dict``, so a resumed run draws what the uninterrupted run would."""

    seed: int

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.generator = torch.Generator().manual_seed(self.seed)

    def get_extra_state(self) -> Tensor:
        return self.generator.get_state()

    def set_extra_state(self, state: Tensor) -> None:
        self.generator.set_state(state)


def target_index(labels: Tensor) -> Tensor:
    """[Q] the column of each row's largest label, the lowest column on ties."""
    return labels.argmax(dim=1)  # torch.argmax returns the first maximal index


def masked_logsumexp(x: Tensor, mask: Tensor) -> Tensor:
    """[Q] log Σ_{j: mask[i, j]} exp(x[i, j]); −inf for a row whose mask is empty, with a zero
    (never NaN) gradient."""
    nonempty = mask.any(dim=1)  # [Q]
    x = x.masked_fill(~mask, float("-inf"))  # [Q, D]
    x = torch.where(nonempty[:, None], x, torch.zeros_like(x))  # [Q, D] an empty row gets a finite dummy
    return torch.logsumexp(x, dim=1).masked_fill(~nonempty, float("-inf"))  # [Q]


def row_mean(values: Tensor, rows: Tensor) -> Tensor:
    """Mean of ``values`` [Q] over the rows where ``rows`` [Q] is True; a zero that still has a
    gradient when no row is. Values of the other rows (possibly inf or NaN) are never used."""
    kept = torch.where(rows, values, torch.zeros_like(values))  # [Q]
    return kept.sum() / rows.sum().clamp(min=1)


def pick_uniform(mask: Tensor, generator: torch.Generator) -> Tensor:
    """[Q] a column drawn uniformly among each row's True entries (0 for an empty row).

    One uniform number per row comes from ``generator`` (on the CPU, so the draws do not depend on
    the device of ``mask``)."""
    counts = mask.sum(dim=1)  # [Q]
    draws = torch.rand(mask.shape[0], generator=generator, dtype=torch.float64).to(mask.device)  # [Q]
    rank = (draws * counts).long().clamp(max=counts - 1)  # [Q] which of the row's True entries
    chosen = mask & (mask.cumsum(dim=1) - 1 == rank[:, None])  # [Q, D] one True per non-empty row
    return chosen.int().argmax(dim=1)
