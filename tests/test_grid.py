"""Config validation (schema + semantic checks) and the grid's paths."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from harness.errors import ConfigError
from harness.grid import GENERATIVE_ROWS, Grid, check, guest_label, load_yaml, loss_key

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "config" / "config.schema.yaml")


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml"])
def test_shipped_configs_validate(path: str) -> None:
    if not (REPO / path).exists():
        pytest.skip(f"{path} not present")
    cfg = load_yaml(REPO / path)
    validate(cfg, SCHEMA, set_default=True)
    check(cfg)


def test_defaults_are_filled_in(config: dict) -> None:
    assert config["compare"] == {"test": "randomization", "permutations": 10000, "resamples": 10000,
                                 "alpha": 0.05, "seed": 0}
    assert config["train_sets"]["synthetic"]["epochs"] == 1


@pytest.mark.parametrize("mutate, fragment", [
    (lambda c: c.update(unknown_key=1), "unknown_key"),
    (lambda c: c["train_sets"]["synthetic"].update(batch_size="big"), "batch_size"),
    (lambda c: c["models"]["minilm"]["settings"].update(pooling="max"), "pooling"),
    (lambda c: c["eval_sets"].update({"../escape": {}}), "does not match"),
    (lambda c: c["eval_sets"].update({"two words": {}}), "does not match"),
    (lambda c: c.update(seeds=[1, 1]), "non-unique"),
])
def test_schema_names_the_offending_key(config: dict, mutate, fragment: str) -> None:
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(WorkflowError, match=fragment):
        validate(bad, SCHEMA, set_default=True)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["losses"].update(softmax_v2={}), "losses.softmax_v2"),
    (lambda c: c["losses"].update(mw={"temprature": 0.1}), "losses.mw"),
    (lambda c: c["eval_sets"].update(nosuch={"split": "test"}), "eval_sets.nosuch"),
    (lambda c: c.update(baseline="nosuch"), "baseline"),
    (lambda c: c["datasets"]["synthetic"].update(metrics=["ndcg@ten"]), "ndcg@ten"),
    (lambda c: c["train_sets"]["synthetic"].update(miner="minlm"), "train_sets.synthetic.miner"),
    (lambda c: c["models"].update(bm25={"path": "minilm"}), "models.bm25"),
    (lambda c: c["datasets"]["synthetic"].update(source="dpr-qa", options={"corpus": "contexts"}),
     "eval_sets.synthetic"),
    (lambda c: c["eval_sets"]["synthetic"].update(subgroup="cqadupstack"), "eval_sets.synthetic.subgroup"),
    (lambda c: c["datasets"]["synthetic"]["options"].update(pth="x"), "datasets.synthetic.options.pth"),
    (lambda c: c["datasets"]["synthetic"].update(source="beir-dir", options={}), "datasets.synthetic.options.path"),
    (lambda c: c["eval_sets"]["synthetic"].update(split="tset"), "eval_sets.synthetic.split"),
    (lambda c: c["losses"].update(mw={"temperature": 0.1, "loss": "mw", "x": "a/b"}), "losses.mw"),
])
def test_semantic_errors_name_the_key(config: dict, mutate, key: str) -> None:
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check(bad)


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("models: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_yaml(evil)
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml.*line"):
        load_yaml(broken)


def test_loss_keys_carry_their_parameters(config: dict) -> None:
    assert loss_key("mw", {}) == "mw"
    assert loss_key("mw", {"temperature": 0.05, "pairs": True}) == "mw.pairs=true,temperature=0.05"
    config["losses"]["mw-pairs"] = {"loss": "mw", "pairs": True}
    grid = Grid(config)
    assert grid.losses["mw-pairs.pairs=true"].name == "mw"
    assert grid.losses["mw-pairs.pairs=true"].params == {"pairs": True}


def test_grid_paths(config: dict) -> None:
    config["seeds"] = [1, 2]
    grid = Grid(config)
    runs = grid.all_runs()
    # per model, one train and one eval set: zero-shot + rows x seeds (the dense losses; gen, ltrgr)
    assert len(runs) == (1 + 8 * 2) + (1 + 2 * 2)
    assert "results/runs/minilm/zero-shot/zero-shot/seed0/synthetic" in runs
    rows = grid.rows("minilm", "synthetic", "synthetic")
    assert list(rows)[0] == "zero-shot" and rows["mw"] == ["results/runs/minilm/synthetic/mw/seed1/synthetic",
                                                          "results/runs/minilm/synthetic/mw/seed2/synthetic"]
    assert grid.all_compares() == ["results/compare/minilm/synthetic/synthetic.json",
                                   "results/compare/minilm-gen/synthetic/synthetic.json"]
    assert grid.needs_teacher("listwise_kd") and not grid.needs_teacher("infonce")
    # the dense table also holds the generative model's rows (its runs, not copies); its own table keeps gen vs ltrgr
    assert list(rows)[-2:] == ["minilm-gen · gen", "minilm-gen · ltrgr"]
    assert rows["minilm-gen · ltrgr"] == ["results/runs/minilm-gen/synthetic/ltrgr/seed1/synthetic",
                                          "results/runs/minilm-gen/synthetic/ltrgr/seed2/synthetic"]
    assert set(rows) - {"zero-shot", *grid.losses} == {guest_label("minilm-gen", r) for r in GENERATIVE_ROWS}
    assert {r for runs in rows.values() for r in runs} <= set(runs)
    assert list(grid.rows("minilm-gen", "synthetic", "synthetic")) == ["zero-shot", *GENERATIVE_ROWS]


def test_generative_rows_join_only_the_dense_tables_of_their_own_train_and_eval_sets(config: dict) -> None:
    config["eval_sets"]["held-out"] = {"dataset": "synthetic", "split": "test"}
    config["train_sets"]["other"] = dict(config["train_sets"]["synthetic"])
    config["models"]["minilm-gen"].update(eval_sets=["synthetic"], train_sets=["synthetic"])
    grid = Grid(config)
    guests = {(t, e): list(grid.guests("minilm", t, e)) for t in grid.train_sets for e in grid.eval_sets}
    assert guests == {("synthetic", "synthetic"): ["minilm-gen · gen", "minilm-gen · ltrgr"],
                      ("synthetic", "held-out"): [], ("other", "synthetic"): [], ("other", "held-out"): []}
    assert grid.guests("minilm-gen", "synthetic", "synthetic") == {}


@pytest.mark.slow  # Snakemake parses the workflow: ~15 s on 2 busy cores
def test_dry_run_wires_the_generative_runs_into_the_dense_compare_job(tmp_path: Path) -> None:
    target = "results/compare/minilm/synthetic/synthetic.json"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(REPO / "config" / "config.yaml"), "--", target],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    job = out[out.index("rule compare:"):]
    inputs = job[job.index("input:"):].splitlines()[0]
    gen_runs = [f"results/runs/minilm-gen/synthetic/{r}/seed1/synthetic" for r in GENERATIVE_ROWS]
    assert all(f"{run}/metrics.json" in inputs for run in gen_runs)
    command = next(line for line in out.splitlines() if line.startswith("Shell command: harness compare "))
    argv = shlex.split(command.removeprefix("Shell command: "))
    rows = json.loads(argv[argv.index("--rows") + 1])
    assert {label: rows[label] for label in list(rows)[-2:]} == {
        guest_label("minilm-gen", r): [run] for r, run in zip(GENERATIVE_ROWS, gen_runs)}
    assert argv[argv.index("--baseline") + 1] == "infonce"
    # those runs come from the generative rules: gen-rank of each phase's checkpoint
    ranked = [block.split("output: ", 1)[1].split(",", 1)[0] for block in out.split("rule gen_rank:")[1:]]
    assert sorted(ranked) == [f"{run}/metrics.json" for run in gen_runs]


def test_missing_split_of_a_local_beir_folder_is_refused(config: dict, tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n")
    config["datasets"]["synthetic"].update(source="beir-dir", options={"path": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"eval_sets\.synthetic\.split.*no split 'test'; it has: dev"):
        check(config)


def test_no_output_path_leaves_the_results_folder(config: dict) -> None:
    config["eval_sets"] = {"../" * 7 + "escape": {"dataset": "synthetic"}}
    with pytest.raises(ConfigError, match="leaves the results folder"):
        Grid(config).check_inside()


def alias_bomb(path: Path) -> Path:
    """Nine levels of nine aliases: 9**9 strings once expanded, a few hundred bytes as YAML."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path.write_text("\n".join(lines) + "\nmodels: {m: {path: *a8}}\n")
    return path


def test_yaml_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*more than 100,000 values"):
        load_yaml(alias_bomb(tmp_path / "bomb.yaml"))
    assert time.perf_counter() - start < 2
