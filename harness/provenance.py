"""Where a result came from: git commit, library versions, machine, wall time and peak memory, and
the commands that made it.

Every ``harness`` command with an ``--out`` leaves ``<out>.step.json`` beside its output
(:func:`step_file`): the commands of its inputs' step files, then its own, each as ``argv`` and
``command`` (``shlex.split(command) == argv``). An evaluation folder's step file therefore holds
every command its row needs, in an order that runs (prepare, mine, teacher, train, encode, evaluate).
"""

from __future__ import annotations

import platform
import resource
import shlex
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.io import read_json

LIBRARIES = ("torch", "transformers", "sentence-transformers", "ranx", "faiss-cpu", "faiss-gpu", "numpy",
             "scipy", "snakemake", "lossboard")


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the working tree (suffixed ``-dirty`` when it has changes), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def versions() -> dict[str, str]:
    """Python and the installed versions of the libraries that shape the numbers."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def device_name() -> str:
    import torch  # here, not at the top: the site reads git_commit without torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and GPU memory when a GPU was used), in MiB."""
    import torch

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = rss_kb / 1024
    if torch.cuda.is_available():
        peak = max(peak, torch.cuda.max_memory_allocated() / 2**20)
    return round(peak, 1)


def record(wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """The provenance block of a results record: ``argv`` as run and ``command``, the same shell-quoted
    (``shlex.split(command) == argv``)."""
    argv = ["harness", *sys.argv[1:]]
    return {
        "argv": argv,
        "command": shlex.join(argv),
        "git_commit": git_commit(),
        "versions": versions(),
        "device": device_name(),
        "host": platform.node(),
        "wall_time_s": round(wall_time_s, 3),
        "peak_memory_mb": peak_memory_mb(),
        **extra,
    }


STEP_SUFFIX = ".step.json"


def step_file(output: str | Path) -> Path:
    """Where the commands that made ``output`` (a file or a folder) are recorded: ``<output>.step.json``."""
    output = Path(output)
    return output.with_name(output.name + STEP_SUFFIX)


def _recorded_inputs(value: str) -> list[Path]:
    """The step files behind one argument: the input's own, or for a folder without one, its entries'
    (an embeddings folder is made shard by shard)."""
    path = Path(value)
    if step_file(path).is_file():
        return [step_file(path)]
    if path.is_dir():
        return sorted(path.glob(f"*{STEP_SUFFIX}"))
    return []


def steps(command: str, argv: list[str], arguments: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """The step record of one command: the recorded steps of every path among ``arguments`` (upstream
    first, each once), then ``command`` itself as ``argv`` (``["harness", command, ...]``)."""
    found: dict[str, dict[str, Any]] = {}
    for value in arguments:
        if not isinstance(value, str) or not value:
            continue
        for path in _recorded_inputs(value):
            for step in read_json(path)["steps"]:
                found.setdefault(step["command"], step)
    own = {"step": command, "argv": argv, "command": shlex.join(argv)}
    found.setdefault(own["command"], own)
    return {"steps": list(found.values())}
