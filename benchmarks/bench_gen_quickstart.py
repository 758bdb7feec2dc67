"""The quickstart's generative rows as the grid runs them: metrics of each row and CPU seconds of each job.

Runs the generative part of the quickstart (``snakemake --cores 2``, model ``minilm-gen``)
(identifier index, phase 1, the phase-1 ranking of the training queries, phase 2, the three gen-rank
evaluations and the compare of ``ltrgr`` with ``gen``) into a results folder of its own, then prints a
Markdown table from the rules' benchmark files (``s``, ``cpu_time``) and the runs' ``metrics.json``:

    python benchmarks/bench_gen_quickstart.py                    # results in results/gen-bench/
    python benchmarks/bench_gen_quickstart.py --results DIR --report-only

Measure on a quiet machine (``uptime`` is printed before and after): CPU seconds grow under contention.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL, DATA = "minilm-gen", "synthetic"
ROWS = {"zero-shot": "zero-shot/zero-shot/seed0", "gen": f"{DATA}/gen/seed1", "ltrgr": f"{DATA}/ltrgr/seed1"}
JOBS = {
    "gen-index": f"gen-index/{DATA}/{MODEL}.tsv",
    "phase 1 (gen-train --phase gen)": f"train/{MODEL}/{DATA}/gen/seed1.tsv",
    "training ranking (gen-rank --keys-out)": f"gen-ranking/{MODEL}/{DATA}/seed1.tsv",
    "phase 2 (gen-train --phase ltrgr)": f"train/{MODEL}/{DATA}/ltrgr/seed1.tsv",
    **{f"gen-rank {row}": f"evaluate/{MODEL}/{path}/{DATA}.tsv" for row, path in ROWS.items()},
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(results: Path) -> None:
    target = f"{results}/compare/{MODEL}/{DATA}/{DATA}.json"
    bin_dir = str(Path(sys.executable).parent)  # where this environment's `harness` command is
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", target, "--configfile", "config/config.yaml",
                    "--config", f"results={results}"], cwd=ROOT, check=True,
                   env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})


def report(results: Path) -> str:
    lines = ["| row | nDCG@10 | MRR@10 | recall@100 | empty rankings |", "|---|---:|---:|---:|---:|"]
    for row, path in ROWS.items():
        record = json.loads((results / "runs" / MODEL / path / DATA / "metrics.json").read_text())
        m = record["metrics"]
        lines.append(f"| {row} | {m['ndcg@10']:.3f} | {m['mrr@10']:.3f} | {m['recall@100']:.3f} | "
                     f"{record['empty_rankings']} |")
    lines += ["", "| job | wall s | CPU s |", "|---|---:|---:|"]
    total = 0.0
    for job, tsv in JOBS.items():
        path = results / "benchmarks" / tsv
        if not path.is_file():
            lines.append(f"| {job} | — | — |")
            continue
        row = next(csv.DictReader(path.open(), delimiter="\t"))
        total += float(row["cpu_time"])
        lines.append(f"| {job} | {float(row['s']):.0f} | {float(row['cpu_time']):.0f} |")
    lines.append(f"| total | | {total:.0f} |")
    compare = results / "compare" / MODEL / DATA / f"{DATA}.json"
    if compare.is_file():
        lines += ["", "| ltrgr − gen (paired over queries) | mean difference | 95% CI | p (Holm) |", "|---|---:|---:|---:|"]
        comparisons = json.loads(compare.read_text())["comparisons"]
        for metric in ("ndcg@10", "mrr@10", "recall@100"):
            for e in comparisons.get(metric, []):
                if e["loss"] == "ltrgr":
                    lines.append(f"| {metric} | {e['mean_diff']:+.3f} | [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}] | "
                                 f"{e['p_corrected']:.3g} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/gen-bench", help="the grid's results folder for this run")
    parser.add_argument("--report-only", action="store_true", help="only print the table of an earlier run")
    a = parser.parse_args()
    results = Path(a.results)
    print("before:", uptime(), file=sys.stderr)
    if not a.report_only:
        run(results)
    print("after:", uptime(), file=sys.stderr)
    print(report(results if results.is_absolute() else ROOT / results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
