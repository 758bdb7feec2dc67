"""The harness's own exception types.

Every error the harness raises on bad input is a :class:`HarnessError`, and its message names
where the problem is: the file, the line (1-based) and the field, or the config key's path.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


def _where(path: str | Path | None, line: int | None, field: str | None) -> str:
    parts = []
    if path is not None:
        parts.append(str(path))
    if line is not None:
        parts.append(f"line {line}")
    if field is not None:
        parts.append(f"field '{field}'")
    return ", ".join(parts)


class DataError(HarnessError):
    """Malformed or inconsistent dataset input (corpus, queries, qrels, training groups)."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.line, self.field = path, line, field
        where = _where(path, line, field)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(HarnessError):
    """An invalid configuration: unknown key, loss, model, dataset or metric, or a wrong type."""

    def __init__(self, message: str, key: str | None = None, path: str | Path | None = None) -> None:
        self.message, self.key, self.path = message, key, path
        where = ", ".join(p for p in (str(path) if path else None, f"key '{key}'" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class TrainingError(HarnessError):
    """A training fault: a non-finite loss, running out of memory, an unusable batch."""
