"""Convert a dataset source into the on-disk format of :mod:`harness.data.format` (what the
``prepare`` stage, :mod:`harness.stages.prepare`, runs).

Each source is a function ``source(out, **options) -> (source record, warnings)`` that writes the
dataset files into ``out``; :func:`prepare` checks the options against the function's signature,
builds the folder with :func:`harness.io.atomic_dir` and writes ``meta.json`` into it, so an
interrupted run leaves either the complete folder or the previous one.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.data import beir_dir, dpr, generated, irds
from harness.data.format import write_meta
from harness.errors import ConfigError
from harness.io import atomic_dir

Source = Callable[..., tuple[dict[str, Any], dict[str, int]]]


SOURCES: dict[str, Source] = {
    "generated": generated.generate,
    "beir-dir": beir_dir.convert,
    "beir": beir_dir.download,
    "irds": irds.convert,
    "dpr-qa": dpr.convert,
}


def check_options(name: str, options: dict[str, Any]) -> None:
    """Check a source's options against its function's signature; :class:`ConfigError` names the option."""
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset source {name!r}; known: {', '.join(SOURCES)}", "source")
    source = SOURCES[name]
    params = dict(inspect.signature(source).parameters)
    params.pop("out")
    for key in options:
        if key not in params:
            raise ConfigError(f"unknown option for source {name!r}; known: {', '.join(params)}", key)
    for key, param in params.items():
        if param.default is inspect.Parameter.empty and key not in options:
            raise ConfigError(f"source {name!r} needs this option", key)
    hints = typing.get_type_hints(source)
    for key, value in options.items():
        if not _matches(value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise ConfigError(f"expected {expected}, got {type(value).__name__} {value!r}", key)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the type hint ``hint`` (outer types only; a bool is not an int)."""
    if hint is Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    cls = typing.get_origin(hint) or hint
    if cls is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, cls)


def known_splits(source: str, options: dict[str, Any]) -> list[str] | None:
    """The qrels splits ``source`` writes, where they are known before it runs (else ``None``)."""
    if source == "generated":
        return list(generated.SPLITS)
    if source == "beir-dir":
        qrels = Path(options["path"]) / "qrels"
        return sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else None
    return None


def prepare(source: str, out: str | Path, **options: Any) -> dict[str, Any]:
    """Convert ``source`` (a key of :data:`SOURCES`) into ``out``; return the ``meta.json`` record."""
    check_options(source, options)
    function = SOURCES[source]
    with atomic_dir(out) as tmp:
        record, warnings = function(tmp, **options)
        return write_meta(tmp, record, warnings)
