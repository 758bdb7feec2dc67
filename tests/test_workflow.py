"""The whole workflow, end to end, on the tiny grid of ``.test/config.yaml`` in a temporary folder:
Snakemake as users run it."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.data.format import read_train_groups
from harness.leaderboard.build import slug

pytestmark = pytest.mark.slow  # Snakemake runs the grid: minutes

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY_GRID = yaml.safe_load((REPO / ".test" / "config.yaml").read_text(encoding="utf-8"))  # the catalog's .test/


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("grid")
    shutil.copy(REPO / ".test" / "config.yaml", workdir / "config.yaml")
    return workdir


def test_dry_run_lists_the_whole_dag(grid_dir: Path) -> None:
    proc = snakemake(grid_dir, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 3 losses x 1 seed trained; evaluations: those + zero-shot; 2 shards per evaluated model;
    # the dense miner searches the zero-shot shards, so mining adds no encoding; MTEB's second
    # opinion once per evaluated model.
    assert counts == {"all": 1, "prepare": 1, "mine": 1, "teacher": 1, "train": 3, "encode": 8, "evaluate": 4,
                      "mteb": 4, "compare": 1, "site": 1, "total": 25}


def test_the_site_shows_host_names_only_when_the_config_asks(grid_dir: Path, tmp_path: Path) -> None:
    for asked in (False, True):
        (tmp_path / "host.yaml").write_text(f"show_host: {str(asked).lower()}\n")
        proc = snakemake(grid_dir, "-n", "-p", "--forcerun", "site",
                         "--configfile", str(grid_dir / "config.yaml"), str(tmp_path / "host.yaml"))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        site = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Shell command: harness site ")]
        assert len(site) == 1 and ("--show-host" in site[0]) == asked, site


def test_grid_runs_to_a_site_and_a_rerun_does_nothing(grid_dir: Path) -> None:
    proc = snakemake(grid_dir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "leaderboard is at site/index.html" in proc.stdout + proc.stderr
    results = grid_dir / "results"
    metrics = json.loads((results / "runs/tiny/gen/mw/seed1/gen/metrics.json").read_text())
    assert metrics["run"] == {"model": "tiny", "train": "gen", "loss": "mw", "seed": 1, "eval": "gen",
                              "split": "test"}
    assert metrics["loss"]["name"] == "mw" and metrics["train"]["steps"] == 2
    assert {"ndcg@10", "mrr@10", "recall@100", "recall@1000", "map", "auc_global"} <= set(metrics["metrics"])
    assert metrics["provenance"]["versions"]["torch"]
    kd = json.loads((results / "runs/tiny/gen/listwise_kd/seed1/gen/metrics.json").read_text())
    assert kd["provenance"]["config"]["train"]["teacher"] == {"kind": "bi-encoder", "model": "tiny"}
    mined = read_train_groups(results / "mined/gen/tiny.jsonl")
    assert mined and all(len(g.negatives) == 3 and not set(g.negatives) & set(g.positives) for g in mined)
    assert "over results/embeddings/tiny/zero-shot/zero-shot/seed0/gen ->" in (results / "logs/mine/gen/tiny.log").read_text()
    compare = json.loads((results / "compare/tiny/gen/gen.json").read_text())
    assert [r["loss"] for r in compare["rows"]] == ["zero-shot", "infonce", "mw", "listwise_kd"]
    mteb = json.loads((results / "mteb/tiny/gen/mw/seed1.json").read_text())
    assert 0 <= mteb["scores"]["gen"]["ndcg@10"] <= 1
    run_pages = [p.read_text() for p in (grid_dir / "site").glob("**/*.html") if "Second opinion: MTEB" in p.read_text()]
    assert len(run_pages) == 4  # one run page per evaluated model
    index = (grid_dir / "site/index.html").read_text()
    assert "listwise_kd" in index and "zero-shot" in index

    again = snakemake(grid_dir, "-n", "--quiet")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_run_page_prints_every_step_of_its_row_and_the_commands_run_when_pasted(grid_dir: Path,
                                                                                  tmp_path: Path) -> None:
    """The mw row's page prints prepare, the zero-shot encoding the dense miner searched, mine, train,
    both encode shards and evaluate, each splitting back into the argv its step file recorded; pasted
    into a shell in a copy of the folder, the commands after train rebuild the same run file."""
    results = grid_dir / "results"
    run = "runs/tiny/gen/mw/seed1/gen"
    steps = json.loads((results / f"{run}.step.json").read_text())["steps"]
    page = (grid_dir / "site/runs" / f"{slug(run.removeprefix('runs/'))}.html").read_text(encoding="utf-8")
    shown = [(step, html.unescape(code)) for step, code in
             re.findall(r'<pre class="cmd" data-step="([^"]+)"><code>(.*?)</code></pre>', page, re.S)
             if step != "snakemake"]
    assert [step for step, _ in shown] == ["prepare", "encode", "encode", "mine", "train", "encode", "encode",
                                           "evaluate"]
    assert [shlex.split(command) for _, command in shown] == [step["argv"] for step in steps]
    assert all(not a.startswith("/") for _, command in shown for a in shlex.split(command))

    copy = tmp_path / "copy"
    shutil.copytree(results, copy / "results", ignore=shutil.ignore_patterns("runs", "embeddings"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for step, command in shown[5:]:
        proc = subprocess.run(["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (step, proc.stderr[-3000:])
    assert (copy / "results" / run / "run.trec").read_bytes() == (results / run / "run.trec").read_bytes()


def test_sharded_and_unsharded_runs_agree(grid_dir: Path) -> None:
    """The workflow's 2-shard encode + gather gives the run file of a 1-shard encode."""
    results = grid_dir / "results"
    model, data = str(results / "checkpoints/tiny/gen/mw/seed1"), str(results / "data/gen")
    harness = [sys.executable, "-m", "harness.cli"]
    for cmd in (["encode", "--model", model, "--dataset", data, "--out", str(grid_dir / "one-shard")],
                ["evaluate", "--model", model, "--dataset", data, "--embeddings", str(grid_dir / "one-shard"),
                 "--out", str(grid_dir / "direct")]):
        proc = subprocess.run([*harness, *cmd], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    direct = (grid_dir / "direct/run.trec").read_bytes()
    assert direct == (results / "runs/tiny/gen/mw/seed1/gen/run.trec").read_bytes()


def test_lint_is_clean(grid_dir: Path) -> None:
    proc = snakemake(grid_dir, "--lint")
    remarks = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip().startswith("*")
               and "conda" not in line.lower() and "container" not in line.lower()]
    assert remarks == []


ALIAS_BOMB = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else 'x'] * 9)}]\n" for i in range(9))


@pytest.mark.parametrize("text, message", [
    (yaml.safe_dump(dict(TINY_GRID, losses={"infonce": {}, "softmax_v2": {}})), "losses.softmax_v2"),
    (yaml.safe_dump(dict(TINY_GRID, datasets={"gen": {"source": "generated", "options": {"sed": 5}}})),
     "key 'datasets.gen.options.sed': unknown option for source 'generated'"),
    (ALIAS_BOMB + yaml.safe_dump(TINY_GRID), "more than 100,000 values"),
], ids=["unknown loss", "source option typo", "alias bomb"])
def test_bad_config_stops_before_any_job(grid_dir: Path, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    proc = snakemake(tmp_path, "--cores", "1")
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
