"""Data-parallel training throughput: examples/s of one ``harness train`` job on 1, 2, ... processes
(issue #21), as the workflow launches it (``torchrun --standalone --nproc-per-node W``).

Every run trains the same model on the generated quickstart collection with the same global batch
(``--batch`` queries, one positive and one hard negative each, infonce, fp32, queries cut at 32 tokens
and passages at 128) for ``--steps`` steps; each rank encodes batch / W queries and its share of the
documents, and the embeddings are all-gathered. Timed: each step's forward, gather, loss, backward,
gradient all-reduce and optimizer step, as ``harness train`` logs it (``train_log.jsonl``:
examples_per_s = global batch / step seconds, on rank 0); the figure is the median over the steps
after ``--warmup`` of ``--reps`` jobs per size, run in ABBA order (1, 2, 2, 1, ...) so that a change
of load hits both sizes. Process start, data and model loading are not timed.

- On a CPU (gloo) the ranks share the machine's cores: each of W processes gets
  ``--threads`` / W threads, so the ratio examples/s(W) / examples/s(1) is the cost of the gather
  and the all-reduce at equal compute, not a speed-up.
- On GPUs (nccl, one GPU per rank) the scaling efficiency is e(W) = examples/s(W) / (W × examples/s(1));
  ``--out`` writes it as JSON for ``grid_hours.py --scaling``.

    python benchmarks/bench_ddp.py                         # MiniLM; CPU: 1 and 2 processes, GPUs: 1, 2, 4, 8 of them
    python benchmarks/bench_ddp.py --model bert-base-uncased --batch 256 --out benchmarks/scaling-<gpu>.json
    python benchmarks/bench_ddp.py --smoke                 # the 2-layer random BERT, batch 8, 4 steps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from machine import cpu_model, device_name  # noqa: E402
from harness.data.prepare import prepare  # noqa: E402

SETTINGS = {"max_query_length": 32, "max_passage_length": 128}


def run(world: int, model: str, dataset: Path, folder: Path, batch: int, steps: int, threads: int) -> list[float]:
    """One ``harness train`` job on ``world`` processes under torchrun; each step's examples/s (rank 0's log)."""
    out = folder / f"ckpt-{world}"
    options = {"batch_size": batch, "hard_negatives": 1, "max_positives": 1, "max_steps": steps,
               "learning_rate": 2e-5, "devices": world}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}",
           "-m", "harness.cli", "train", "--model", model, "--settings", json.dumps(SETTINGS),
           "--dataset", str(dataset), "--loss", "infonce", "--seed", "1", "--options", json.dumps(options),
           "--threads", str(max(1, threads // world)), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(max(1, threads // world)),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{world} process(es) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r["examples_per_s"] for r in log]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+",
                        help="processes per job to compare (default: 1 and 2 on a CPU; 1, 2, 4, 8 up to the GPUs there are)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch", type=int, default=32, help="global batch (queries per step)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the median")
    parser.add_argument("--reps", type=int, default=2, help="jobs per size, in ABBA order")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads shared by a job's processes (CPU only)")
    parser.add_argument("--out", type=Path, help="write examples/s and the scaling efficiency as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny model, batch 8, 4 steps, 1 warm-up")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.batch, args.steps, args.warmup, args.reps = "tiny", 8, 4, 1, 1
    cuda = torch.cuda.is_available()
    if args.devices is None:
        args.devices = [w for w in (1, 2, 4, 8) if w <= torch.cuda.device_count()] if cuda else [1, 2]
    if cuda and max(args.devices) > torch.cuda.device_count():
        raise SystemExit(f"--devices {max(args.devices)} but this machine has {torch.cuda.device_count()} GPU(s)")
    steps: dict[int, list[float]] = {w: [] for w in args.devices}
    order = [w for r in range(args.reps) for w in (args.devices if r % 2 == 0 else args.devices[::-1])]
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "generated"
        prepare("generated", dataset)
        for world in order:
            t0 = time.perf_counter()
            per_step = run(world, args.model, dataset, Path(tmp), args.batch, args.steps, args.threads)[args.warmup:]
            steps[world] += per_step
            print(f"{world} process(es): {statistics.median(per_step):.2f} examples/s (median of steps "
                  f"{args.warmup + 1}-{args.steps}; job {time.perf_counter() - t0:.0f} s with start-up)", file=sys.stderr)
    rates = {w: statistics.median(v) for w, v in steps.items()}
    base = rates[min(rates)]
    print(f"- device: {device_name() if cuda else cpu_model() + f', {args.threads} threads shared by the processes'}")
    print(f"- model: {args.model}; global batch {args.batch}, infonce, {args.steps} steps, median after {args.warmup}, "
          f"{args.reps} job(s) per size in ABBA order")
    print()
    print("| processes | examples/s | vs 1 process | " + ("scaling efficiency |" if cuda else "") )
    print("|---:|---:|---:|" + ("---:|" if cuda else ""))
    for world, rate in rates.items():
        eff = f" {rate / (world * base):.2f} |" if cuda else ""
        print(f"| {world} | {rate:.2f} | {rate / base:.2f} |{eff}")
    print()
    print(f"ratio {max(rates)} / {min(rates)} processes (examples/s): {rates[max(rates)] / base:.3f}")
    if args.out is not None:
        result: dict[str, Any] = {"device": device_name() if cuda else cpu_model(), "model": args.model,
                                  "batch": args.batch, "examples_per_s": {str(w): r for w, r in rates.items()}}
        if cuda:
            result["efficiency"] = {str(w): r / (w * base) for w, r in rates.items()}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
