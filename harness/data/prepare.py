"""The ``prepare`` stage: convert a dataset source into the on-disk format of :mod:`harness.data.format`.

Each source is a function ``source(out, **options) -> (source record, warnings)`` that writes the
dataset files into ``out``; :func:`prepare` checks the options against the function's signature,
builds the folder in a temporary directory beside ``out``, writes ``meta.json`` and renames the
folder into place, so an interrupted run leaves either the complete folder or none.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.data import beir_dir, dpr, generated, irds
from harness.data.format import write_meta
from harness.errors import ConfigError

Source = Callable[..., tuple[dict[str, Any], dict[str, int]]]


def _generated(out: Path, **options: Any) -> tuple[dict[str, Any], dict[str, int]]:
    return generated.generate(out, **options), {}


_generated.__signature__ = inspect.signature(generated.generate)  # type: ignore[attr-defined]

SOURCES: dict[str, Source] = {
    "generated": _generated,
    "beir-dir": beir_dir.convert,
    "beir": beir_dir.download,
    "irds": irds.convert,
    "dpr-qa": dpr.convert,
}


def _check_options(name: str, source: Source, options: dict[str, Any]) -> None:
    params = dict(inspect.signature(source).parameters)
    params.pop("out")
    for key in options:
        if key not in params:
            raise ConfigError(f"unknown option for source {name!r}; known: {', '.join(params)}", key)
    for key, param in params.items():
        if param.default is inspect.Parameter.empty and key not in options:
            raise ConfigError(f"source {name!r} needs this option", key)


def prepare(source: str, out: str | Path, **options: Any) -> dict[str, Any]:
    """Convert ``source`` (a key of :data:`SOURCES`) into ``out``; return the ``meta.json`` record."""
    if source not in SOURCES:
        raise ConfigError(f"unknown dataset source {source!r}; known: {', '.join(SOURCES)}", "source")
    function = SOURCES[source]
    _check_options(source, function, options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        record, warnings = function(tmp, **options)
        meta = write_meta(tmp, record, warnings)
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
