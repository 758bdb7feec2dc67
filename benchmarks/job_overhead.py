"""The quickstart grid's fixed cost per job against its compute (issue #19, item 5).

Every Snakemake job is a fresh ``harness <stage>`` process: it pays the interpreter's start, its
stage's imports (torch, transformers, ...) and, for the stages that encode or train, loading the
model, before any of its own work. Measured here, each in a fresh process, as CPU seconds (user +
system, which a busy machine disturbs less than wall time) and wall seconds, median of ``--reps``:

- ``python -c pass``;
- ``import harness.stages.<stage>`` for the grid's stages;
- the same import plus ``load_model("minilm")`` for the stages that load it (train, encode,
  evaluate, and the bi-encoder teacher).

With ``--from-benchmarks RESULTS`` the fixed costs are set against a finished run's own Snakemake
benchmark files (``RESULTS/benchmarks/<rule>/...tsv``, column ``cpu_time``): per rule, the jobs, their
CPU seconds and the share that is fixed cost.

    python benchmarks/job_overhead.py                              # fixed costs only
    python benchmarks/job_overhead.py --from-benchmarks results    # against a finished grid run
    python benchmarks/job_overhead.py --smoke                      # one repetition, no model load
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAGES = ("prepare", "teacher", "train", "encode", "evaluate", "compare", "site")
LOADS_MODEL = ("teacher", "train", "encode", "evaluate")
LOADED = "import harness.stages.train + load_model('minilm')"


def cost(code: str, reps: int) -> tuple[float, float]:
    """Median CPU and wall seconds of ``python -c code`` in a fresh process."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    cpu, wall = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, capture_output=True)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpu), statistics.median(wall)


def grid_cpu(results: Path) -> dict[str, tuple[int, float]]:
    """Per rule: the number of benchmark files under ``results/benchmarks/<rule>`` and their CPU seconds."""
    found: dict[str, tuple[int, float]] = {}
    for rule_dir in sorted(p for p in (results / "benchmarks").iterdir() if p.is_dir()):
        jobs, seconds = 0, 0.0
        for tsv in rule_dir.rglob("*.tsv"):
            with open(tsv, encoding="utf-8") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    jobs, seconds = jobs + 1, seconds + float(row["cpu_time"])
        found[rule_dir.name] = (jobs, seconds)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one repetition, imports only")
    parser.add_argument("--from-benchmarks", type=Path, help="a finished run's results folder")
    args = parser.parse_args()
    reps = 1 if args.smoke else args.reps
    codes = {"python -c pass": "pass", **{f"import harness.stages.{s}": f"import harness.stages.{s}" for s in STAGES}}
    if not args.smoke:
        codes[LOADED] = "import harness.stages.train\nfrom harness.models.registry import load_model\nload_model('minilm')"
    fixed: dict[str, tuple[float, float]] = {}
    for name, code in codes.items():
        fixed[name] = cost(code, reps)
        print(f"job_overhead: {name}: {fixed[name][0]:.2f} CPU s", file=sys.stderr, flush=True)
    print(f"- load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores; median of {reps} fresh processes")
    print()
    print("| fixed cost of a job | CPU s | wall s |")
    print("|---|---:|---:|")
    for name, (cpu, wall) in fixed.items():
        print(f"| {name} | {cpu:.2f} | {wall:.2f} |")
    if args.from_benchmarks is None or args.smoke:
        return 0
    loaded = fixed[LOADED][0]
    print()
    print("| rule | jobs | CPU s (benchmark files) | fixed CPU s (jobs × fixed cost) | fixed share |")
    print("|---|---:|---:|---:|---:|")
    total = total_fixed = 0.0
    for rule, (jobs, seconds) in grid_cpu(args.from_benchmarks).items():
        per_job = loaded if rule in LOADS_MODEL else fixed.get(f"import harness.stages.{rule}", fixed["python -c pass"])[0]
        total, total_fixed = total + seconds, total_fixed + jobs * per_job
        print(f"| {rule} | {jobs} | {seconds:.0f} | {jobs * per_job:.0f} | {jobs * per_job / max(seconds, 1e-9):.0%} |")
    print(f"| **all** | | {total:.0f} | {total_fixed:.0f} | **{total_fixed / max(total, 1e-9):.0%}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
