"""Two runs of one grid side by side (fp32 vs bf16, issue #19 item 5): each row's main metric and verdict.

Reads every ``compare/<model>/<train>/<eval>.json`` of results folder A and the same file of B
and prints, per row, the main metric's mean (nDCG@10 on the quickstart) in both, the difference,
and the ▲/▼ verdict against the baseline in both (▲/▼: significant after Holm, better/worse; blank:
not significant). The last line says whether every row stays within ``--tolerance`` and keeps
its verdict, the condition for bf16 to become the quickstart's default; the exit status is 0 when
it does, 1 when it does not.

    python benchmarks/compare_grids.py results results-bf16
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def verdict(record: dict[str, Any], loss: str) -> str:
    for entry in record["comparisons"].get(record["main_metric"], []):
        if entry["loss"] == loss and entry["significant"]:
            return "▲" if entry["direction"] == "better" else "▼"
    return ""


def rows(record: dict[str, Any]) -> dict[str, float]:
    return {row["loss"]: row["metrics"][record["main_metric"]]["mean"] for row in record["rows"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="results folder of the reference run (fp32)")
    parser.add_argument("b", type=Path, help="results folder of the other run (bf16)")
    parser.add_argument("--tolerance", type=float, default=0.005)
    args = parser.parse_args()
    files = sorted((args.a / "compare").rglob("*.json"))
    if not files:
        sys.exit(f"compare_grids: no compare/*.json under {args.a}")
    same = True
    print("| comparison | row | A | B | B − A | verdict A | verdict B |")
    print("|---|---|---:|---:|---:|:-:|:-:|")
    for file in files:
        other = args.b / file.relative_to(args.a)
        if not other.exists():
            sys.exit(f"compare_grids: {other} is missing")
        a, b = json.loads(file.read_text()), json.loads(other.read_text())
        name = str(file.relative_to(args.a / "compare").with_suffix(""))
        values_b = rows(b)
        for loss, value in rows(a).items():
            diff = values_b[loss] - value
            va, vb = verdict(a, loss), verdict(b, loss)
            same = same and abs(diff) <= args.tolerance and va == vb
            print(f"| {name} | {loss} | {value:.4f} | {values_b[loss]:.4f} | {diff:+.4f} | {va} | {vb} |")
    print()
    print(f"every row within {args.tolerance} of its main metric and every verdict unchanged: {'yes' if same else 'no'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
