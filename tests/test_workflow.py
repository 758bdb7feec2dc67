"""The whole workflow, end to end, on the tiny grid of ``.test/config.yaml`` (with the custom-loss
example, ``conftest.tiny_grid``) in a temporary folder: Snakemake as users run it."""

from __future__ import annotations

import hashlib
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

from conftest import CUSTOM_LOSS as EXAMPLE
from conftest import TINY_GRID as CONFIG
from conftest import Workflow

from harness.data.format import read_train_groups
from harness.leaderboard.build import slug

pytestmark = pytest.mark.slow  # Snakemake runs the grid: minutes

REPO = Path(__file__).resolve().parents[1]
TINY_GRID = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def grid_dir(tiny_grid: tuple[Workflow, subprocess.CompletedProcess]) -> Path:
    return tiny_grid[0].workdir


def test_dry_run_lists_the_whole_dag(tmp_path: Path) -> None:
    shutil.copy(CONFIG, tmp_path / "config.yaml")
    proc = Workflow(tmp_path, (tmp_path / "config.yaml",)).snakemake("-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 3 losses x 1 seed trained; evaluations: those + zero-shot; 2 shards per evaluated model;
    # the dense miner searches the zero-shot shards, so mining adds no encoding; MTEB's second
    # opinion once per evaluated model; the compare summary (claims, rank tests) once.
    assert counts == {"all": 1, "prepare": 1, "mine": 1, "teacher": 1, "train": 3, "encode": 8, "evaluate": 4,
                      "mteb": 4, "compare": 1, "compare_summary": 1, "site": 1, "total": 26}


def test_the_site_shows_host_names_only_when_the_config_asks(tiny_grid, tmp_path: Path) -> None:
    flow = tiny_grid[0]
    for asked in (False, True):
        (tmp_path / "host.yaml").write_text(f"show_host: {str(asked).lower()}\n")
        proc = flow.snakemake("-n", "-p", "--forcerun", "site", configfiles=(*flow.configfiles, tmp_path / "host.yaml"))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        site = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Shell command: harness site ")]
        assert len(site) == 1 and ("--show-host" in site[0]) == asked, site


def test_grid_runs_to_a_site_and_a_rerun_does_nothing(tiny_grid) -> None:
    flow, proc = tiny_grid
    grid_dir = flow.workdir
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
    assert [r["loss"] for r in compare["rows"]] == ["zero-shot", "infonce", "mw", "listwise_kd", "dcl.tau_plus=0.1"]
    mteb = json.loads((results / "mteb/tiny/gen/mw/seed1.json").read_text())
    assert 0 <= mteb["scores"]["gen"]["ndcg@10"] <= 1
    run_pages = [p.read_text() for p in (grid_dir / "site").glob("**/*.html") if "Second opinion: MTEB" in p.read_text()]
    assert len(run_pages) == 5  # one run page per evaluated model
    index = (grid_dir / "site/index.html").read_text()
    assert "listwise_kd" in index and "zero-shot" in index

    again = flow.snakemake("-n", "--quiet")
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


def test_lint_is_clean(tiny_grid) -> None:
    proc = tiny_grid[0].snakemake("--lint")
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
def test_bad_config_stops_before_any_job(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    proc = Workflow(tmp_path, (tmp_path / "config.yaml",)).snakemake("--cores", "1")
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.slow
def test_example_loss_runs_through_the_grid_to_the_site(tiny_grid) -> None:
    flow, proc = tiny_grid
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = flow.workdir / "results"
    key = "dcl.tau_plus=0.1"
    report = json.loads((results / "loss-checks" / f"{key}.json").read_text())
    assert report["passed"] and report["params"] == {"temperature": 0.05, "tau_plus": 0.1}
    assert {c["name"] for c in report["checks"] if c["passed"]} >= {"finite", "gradcheck", "permutation",
                                                                    "ignored_zero_grad", "grad_cache"}
    checkpoint = results / "checkpoints/tiny/gen" / key / "seed1"
    source = EXAMPLE / "debiased_contrastive.py"
    summary = json.loads((checkpoint / "train_summary.json").read_text())
    assert summary["loss"]["source"] == {"class": "debiased_contrastive:DebiasedContrastive",
                                         "file": str(source.resolve()),
                                         "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert json.loads((checkpoint / "loss_check.json").read_text()) == report
    compare = json.loads((results / "compare/tiny/gen/gen.json").read_text())
    assert [r["loss"] for r in compare["rows"]][-1] == key
    assert key in (flow.workdir / "site/index.html").read_text()
    losses = (flow.workdir / "site/losses.html").read_text()  # like a built-in, from the results files
    assert 'id="loss-debiased_contrastive"' in losses or "debiased" in losses
    assert "<code>debiased_contrastive:DebiasedContrastive</code>" in losses
    assert hashlib.sha256(source.read_bytes()).hexdigest()[:16] in losses
    assert losses.count("<td>PASS</td>") >= 5 and "Chuang" in losses  # the check report and the citation
