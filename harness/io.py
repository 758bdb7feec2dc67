"""Atomic file and folder output and strict JSON Lines input.

Every file the harness writes goes through :func:`atomic_write` (or :func:`atomic_path`): the
content is written to a temporary name in the same folder and renamed into place, so a job
killed at any point leaves either the complete file or none. Every folder a stage writes goes
through :func:`atomic_dir`, which never removes the old folder before the new one is in place.
Temporary names start with ``.`` and end in ``.tmp`` (files, new folders) or ``.old`` (a replaced
folder awaiting deletion). What a killed job leaves behind is put back or removed by the next run
(:func:`remove_stale_temps`, under :func:`claim_workdir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from harness.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


TEMP_NAME = re.compile(r"\..+\.(tmp|old)")


def remove_stale_temps(target: str | Path) -> list[Path]:
    """Remove what killed jobs left of ``target``'s temporary copies: entries named ``.<name>.tmp``,
    ``.<name>.<random>.tmp`` or ``.<name>.<random>.old`` beside ``target`` and, for a folder, anywhere
    inside it; the folder an ``.old`` copy saved is first put back if its place is empty (an
    :func:`atomic_dir` killed between its renames). Call it only while no job can be writing (see
    :func:`claim_workdir`); returns what went."""
    target = Path(target)
    found = [p for p in target.parent.glob(f".{glob.escape(target.name)}.*") if TEMP_NAME.fullmatch(p.name)]
    if target.is_dir():
        found += [Path(root) / name for root, dirs, files in os.walk(target) for name in [*dirs, *files]
                  if TEMP_NAME.fullmatch(name)]
    for path in found:
        if path.is_dir():
            if path.name.endswith(".old"):  # an atomic_dir killed between its renames: put the old copy back
                _restore(path)
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def claim_workdir(workdir: str | Path = ".") -> IO[str] | None:
    """Take ``.snakemake/lossboard.lock`` for the life of this process, or return None when another
    live process holds it. The kernel drops the lock when its holder dies, even by SIGKILL, so while
    this process holds it any lock Snakemake left in ``.snakemake/locks`` is a dead run's: it is
    removed, as ``snakemake --unlock`` would. Keep the returned file open for as long as the run lasts.
    """
    folder = Path(workdir) / ".snakemake"
    folder.mkdir(exist_ok=True)
    fh = open(folder / "lossboard.lock", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    for lock in (folder / "locks").glob("*.lock"):
        lock.unlink(missing_ok=True)
    return fh


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a new empty folder next to ``target``; when the block succeeds it replaces ``target``.

    The steps: the old ``target`` (if any) is renamed to ``.<name>.<random>.old``, the new folder
    is renamed to ``target``, then the old one is deleted. Killed between the two renames, the old
    copy survives under its ``.old`` name; the next call puts it back if ``target`` is missing and
    deletes any leftover ``.old`` and ``.tmp`` folders of ``target``. A failed block leaves
    ``target`` untouched. The new folder gets mode 0o755.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    new = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield new
        os.chmod(new, 0o755)  # mkdtemp's 0o700 would hide a published folder (the site) from others
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(new, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(new, ignore_errors=True)


def _restore(old: Path) -> None:
    """Put the folder saved in an :func:`atomic_dir` ``.old`` folder back where it was, if that place is empty."""
    for saved in old.iterdir():
        if not (old.parent / saved.name).exists():
            os.replace(saved, old.parent / saved.name)


def _recover(target: Path) -> None:
    """Undo what an :func:`atomic_dir` killed between its renames left: restore the old copy of a
    missing ``target``, then delete the leftover temporary folders."""
    olds = sorted(target.parent.glob(f".{glob.escape(target.name)}.*.old"))
    for old in olds:
        _restore(old)
    for leftover in [*olds, *target.parent.glob(f".{glob.escape(target.name)}.*.tmp")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None, so it is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON (NaN -> null), atomically."""
    atomic_write(path, json.dumps(finite(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write one strict JSON object (NaN -> null) per line, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(finite(row), ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a syntax or encoding error names the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path) from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 text file, line endings stripped.

    ``\\n``, ``\\r\\n`` and a lone ``\\r`` (old Mac files) each end a line, as in Python's universal
    newlines. Raises :class:`DataError` naming the file (and line) when it is missing or not valid UTF-8.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    lineno = 0
    with fh:
        for chunk in fh:
            chunk = chunk.removesuffix(b"\n")
            for raw in chunk.removesuffix(b"\r").split(b"\r"):
                lineno += 1
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path, lineno) from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON Lines file.

    Raises :class:`DataError` naming the file and line for bad UTF-8, bad JSON, or a line
    that is not a JSON object.
    """
    for lineno, line in iter_lines(path):
        if line.strip():
            yield lineno, parse_json_object(line, path, lineno)


def parse_json_object(line: str, path: str | Path, lineno: int) -> dict[str, Any]:
    """One JSON Lines record; :class:`DataError` naming the file and line if it is not a JSON object."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, lineno) from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path, lineno) from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, lineno)
    return obj
