"""The papers' grid (config/paper.yaml): the DAG has the jobs the grid implies, and SLURM gets the
resources the config asks for. Dry runs only: nothing is downloaded."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"


def dry_run(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--configfile", str(PAPER), *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_paper_dag_has_one_job_per_grid_entry(tmp_path: Path) -> None:
    cfg = yaml.safe_load(PAPER.read_text())
    out = dry_run("--quiet", "rules", cwd=tmp_path)
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    dense = [m for m, spec in cfg["models"].items() if spec.get("kind", "bi-encoder") == "bi-encoder"]
    generative = {m: spec for m, spec in cfg["models"].items() if m not in dense}
    seeds, trains, evals = len(cfg["seeds"]), len(cfg["train_sets"]), len(cfg["eval_sets"])
    # a train set trains its own models and losses when it names them (CADET's synthetic sets), else all
    trained = {t: (len([m for m in spec.get("models", dense) if m in dense]), len(spec.get("losses", cfg["losses"])))
               for t, spec in cfg["train_sets"].items()}
    checkpoints = sum(m * k * seeds for m, k in trained.values())
    encoded = checkpoints + len(dense)  # every checkpoint and every zero-shot model
    searched = Counter(spec.get("corpus") or spec.get("dataset", name) for name, spec in cfg["eval_sets"].items())
    shards = {c: cfg["datasets"][c].get("shards", cfg["encode"]["shards"]) for c in searched}
    # a corpus gets encode jobs when sharded or searched by several eval sets; else its evaluation encodes it
    miners = {t.get("miner", "given") for t in cfg["train_sets"].values()} - {"given", "bm25"}
    assert not miners  # (a dense miner's zero-shot encoding would add its own encode jobs)
    # a synthetic train set's filter searches its retriever's zero-shot encoding of the corpus: encoded apart
    filtered = {t["corpus"] for t in cfg["train_sets"].values() if "filter" in t}
    apart_shards = {c: n for c, n in shards.items() if n > 1 or searched[c] > 1}
    reused = sum(cfg["datasets"][c].get("shards", cfg["encode"]["shards"]) for c in filtered - set(apart_shards))
    assert counts["train"] == checkpoints
    assert counts["evaluate"] == encoded * evals
    assert counts["encode"] == encoded * sum(apart_shards.values()) + reused  # each such corpus once per model, however many eval sets share it
    assert counts["prepare"] == len(cfg["datasets"])
    assert counts["teacher"] == trains  # one teacher scoring per train set, shared by every job
    assert counts["mine"] == sum(t.get("miner", "given") != "given" for t in cfg["train_sets"].values())
    # a generative model: its train sets x seeds of each phase, rows zero-shot + gen + ltrgr on its eval sets
    gen_trained = sum(len(spec["train_sets"]) * seeds for spec in generative.values())
    assert counts["gen_train"] == counts["gen_train_ltrgr"] == counts["gen_ranking"] == gen_trained
    assert counts["gen_rank"] == sum((1 + 2 * len(spec["train_sets"]) * seeds) * len(spec["eval_sets"])
                                     for spec in generative.values())
    assert counts["compare"] == sum(m for m, _ in trained.values()) * evals + sum(
        len(spec["train_sets"]) * len(spec["eval_sets"]) for spec in generative.values())
    assert counts["synthesize"] == sum(t.get("source") == "synthetic-queries" for t in cfg["train_sets"].values()) == 3
    assert counts["site"] == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
def test_slurm_profile_requests_the_configured_resources(tmp_path: Path) -> None:
    cfg = yaml.safe_load(PAPER.read_text())
    target = "results/checkpoints/minilm/nq/mw/seed1"
    out = dry_run("--profile", str(REPO / "profiles" / "slurm"), target, cwd=tmp_path)
    train = out[out.index("rule train:"):]
    resources = dict(re.findall(r"(\w+)=([^,\s]+)", train[train.index("resources:"):].splitlines()[0]))
    wanted = cfg["resources"]["train"]
    assert int(resources["mem_mb"]) == wanted["mem_mb"]
    assert int(resources["runtime"]) == wanted["runtime"]
    assert int(resources["gpu"]) == wanted["gpu"]
    assert resources["slurm_partition"] == "gpu"
    assert int(resources["cpus_per_task"]) == wanted["threads"]
