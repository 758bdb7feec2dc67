"""Run every benchmark (issues #5 and #6) and write their figures and the machine to ``benchmarks/RESULTS.md``.

Each benchmark script runs in its own process (``python benchmarks/bench_*.py [--smoke]``), with its
stdout and stderr captured; its printed table goes into RESULTS.md verbatim, in its own section.
The quickstart grid (item 5) is measured as the wall time and peak resident memory of
``snakemake --cores 2`` on the repository's Snakefile and ``config/config.yaml``, run from a clean
temporary working directory (so nothing in ``results/`` is reused or touched). Peak memory is the
``ru_maxrss`` that ``wait4`` reports for snakemake: the peak resident set of the largest single
process among snakemake and its jobs (with two jobs at once the machine holds up to about twice that).

A benchmark that fails is reported as failed, with the last lines of its stderr; the rest are still
run and written, and the script then exits with status 1.

    python benchmarks/run_all.py                          # everything; writes benchmarks/RESULTS.md
    python benchmarks/run_all.py --smoke --out /tmp/r.md  # every script's --smoke, no grid
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.io import atomic_write  # noqa: E402

STDERR_TAIL = 20


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    script: str
    cpu_args: tuple[str, ...] = ()  # extra arguments of the full run on a machine without a GPU
    smoke: bool = True  # False: left out of --smoke runs (CI), e.g. a script that starts process groups


BENCHMARKS = [
    Benchmark("train", "1. Training throughput (examples/s)", "bench_train.py"),
    Benchmark("encode", "2. Corpus encoding (passages/s)", "bench_encode.py"),
    Benchmark("metrics", "3. Evaluation", "bench_metrics.py"),
    Benchmark("search", "4. Search", "bench_search.py"),
    Benchmark("losses", "6. Losses", "bench_losses.py", cpu_args=("--queries", "16")),
    # Issue #5: rates on this device (writes benchmarks/rates-<device>.json), then the papers' grid priced with them.
    Benchmark("rates", "7. Rates of the papers' grid on this device", "bench_rates.py"),
    Benchmark("hours", "8. Hours of the papers' grid per rule", "grid_hours.py"),
    # Issue #21: one training job on 1 and 2 processes (torchrun jobs: not in the CI smoke run).
    Benchmark("ddp", "9. Data-parallel training (examples/s)", "bench_ddp.py", smoke=False),
    # Issue #19: bf16's effect on the numbers, and every rate against the machine's matmul limit.
    Benchmark("precision", "10. bf16 vs fp32: embeddings and zero-shot nDCG@10", "bench_precision.py",
              cpu_args=("--emulate",)),
    Benchmark("limit", "11. Rates against the machine's limit", "bench_limit.py"),
]
GRID_TITLE = "5. The quickstart grid"


@dataclass
class Outcome:
    """What one measurement produced: its markdown body and whether it failed."""

    title: str
    command: str
    body: str
    failed: bool = False
    seconds: float | None = None


def child_env() -> dict[str, str]:
    """The environment of every child: offline model loading, this interpreter's bin on PATH."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def machine() -> str:
    """CPU model, cores, memory, GPU, versions, commit and load, as a markdown list."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    import torch

    gpu = (", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
           if torch.cuda.is_available() else "none (torch.cuda.is_available() is False)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return "\n".join([
        f"- CPU: {cpu}",
        f"- cores: {os.cpu_count()}",
        f"- memory: {kib / 2**20:.1f} GiB",
        f"- GPU: {gpu}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, commit {commit}",
        f"- load average at start (1/5/15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())}",
    ])


def fenced(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```"


def tail(text: str, lines: int = STDERR_TAIL) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_benchmark(bench: Benchmark, smoke: bool, gpu: bool) -> Outcome:
    """Run one script; its stdout is kept verbatim (fenced when it holds no markdown table)."""
    args = ["--smoke"] if smoke else list(bench.cpu_args if not gpu else ())
    command = " ".join(["python", f"benchmarks/{bench.script}", *args])
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / bench.script), *args], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(f"run_all: {command}: exit {done.returncode} after {seconds:.0f} s", file=sys.stderr)
    if done.returncode != 0:
        body = f"**failed** (exit {done.returncode}); last lines of stderr:\n\n{fenced(tail(done.stderr))}"
        if done.stdout.strip():
            body += f"\n\nstdout:\n\n{fenced(done.stdout)}"
        return Outcome(bench.title, command, body, failed=True, seconds=seconds)
    out = done.stdout.strip()
    is_markdown = any(line.startswith("|") for line in out.splitlines())
    return Outcome(bench.title, command, out if is_markdown else fenced(out), seconds=seconds)


def run_grid(cores: int) -> Outcome:
    """Wall time and peak RSS of the default grid from a clean temporary working directory."""
    command = (f"snakemake --cores {cores} --snakefile Snakefile --configfile config/config.yaml "
               "--directory <empty temporary folder>")
    with tempfile.TemporaryDirectory(prefix="lossboard-grid.") as tmp:
        log_path = Path(tmp) / "snakemake.log"
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        argv = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--snakefile", str(ROOT / "Snakefile"),
                "--configfile", str(ROOT / "config" / "config.yaml"), "--directory", str(workdir)]
        start = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)  # the rusage of snakemake and the jobs it waited for
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
    print(f"run_all: {command}: exit {proc.returncode} after {seconds:.0f} s", file=sys.stderr)
    if proc.returncode != 0:
        body = f"**failed** (exit {proc.returncode}); last lines of the snakemake log:\n\n{fenced(tail(log_text))}"
        return Outcome(GRID_TITLE, command, body, failed=True, seconds=seconds)
    steps = re.findall(r"^(\d+) of (\d+) steps \(100%\) done", log_text, flags=re.MULTILINE)
    jobs = steps[-1][1] if steps else "?"
    body = "\n".join([
        "| cores | jobs | wall time | peak RSS (largest process) |",
        "|---:|---:|---:|---:|",
        f"| {cores} | {jobs} | {seconds / 60:.1f} min ({seconds:.0f} s) | {usage.ru_maxrss / 2**20:.2f} GiB |",
    ])
    return Outcome(GRID_TITLE, command, body, seconds=seconds)


def skipped(title: str, command: str, why: str) -> Outcome:
    return Outcome(title, command, f"skipped ({why})")


def render(outcomes: list[Outcome], smoke: bool, started: str, machine_text: str) -> str:
    lines = ["# Benchmark results", "",
             f"Written by `python benchmarks/run_all.py{' --smoke' if smoke else ''}` on {started}. "
             "Each ratio is measured side by side in one run on this machine; see benchmarks/README.md.",
             "", "## Machine", "", machine_text]
    for outcome in sorted(outcomes, key=lambda o: o.title):  # titles carry the item numbers
        took = f" ({outcome.seconds:.0f} s)" if outcome.seconds is not None else ""
        lines += ["", f"## {outcome.title}", "", f"`{outcome.command}`{took}", "", outcome.body]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="each script's --smoke; the grid is skipped")
    parser.add_argument("--out", type=Path, help="where to write the results (default: benchmarks/RESULTS.md; "
                                                 "with --smoke, print them instead)")
    parser.add_argument("--skip", action="append", default=[], choices=[b.name for b in BENCHMARKS],
                        help="leave out a benchmark script (repeatable)")
    parser.add_argument("--skip-grid", action="store_true", help="leave out the quickstart grid")
    parser.add_argument("--grid-cores", type=int, default=2)
    args = parser.parse_args(argv)

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine_text, gpu = machine(), has_gpu()
    outcomes = []
    for bench in BENCHMARKS:
        command = f"python benchmarks/{bench.script}"
        if bench.name in args.skip or (args.smoke and not bench.smoke):
            outcomes.append(skipped(bench.title, command, "--skip" if bench.name in args.skip else "not in --smoke"))
        else:
            outcomes.append(run_benchmark(bench, args.smoke, gpu))
    if args.smoke or args.skip_grid:
        outcomes.append(skipped(GRID_TITLE, f"snakemake --cores {args.grid_cores}",
                                "--smoke" if args.smoke else "--skip-grid"))
    else:
        outcomes.append(run_grid(args.grid_cores))

    text = render(outcomes, args.smoke, started, machine_text)
    out = args.out or (None if args.smoke else ROOT / "benchmarks" / "RESULTS.md")
    if out is None:
        print(text)
    else:
        atomic_write(out, text)
        print(f"run_all: wrote {out}", file=sys.stderr)
    failed = [o.title for o in outcomes if o.failed]
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
