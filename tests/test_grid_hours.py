"""benchmarks/grid_hours.py: job counts of the grid, hours = work / measured rate, and the sum of a
finished run's Snakemake benchmark files."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import grid_hours  # noqa: E402
from harness.errors import ConfigError, DataError  # noqa: E402

CONFIG = {
    "seeds": [1, 2],
    "models": {"small": {"path": "minilm"}, "base": {"path": "xlm-roberta-base"}},
    "datasets": {"train-data": {"source": "generated"}, "eval-data": {"source": "generated", "shards": 2}},
    "train_sets": {"train-data": {"batch_size": 4, "epochs": 2, "hard_negatives": 2, "miner": "bm25",
                                  "mined_negatives": 5}},
    "eval_sets": {"eval-data": {}, "eval-dev": {"dataset": "eval-data", "split": "dev", "family": "qa"}},
    "losses": {"infonce": {}, "listwise_kd": {}},
    "teacher": {"kind": "cross-encoder", "model": "some/reranker"},
    "resources": {"train": {"gpu": 1}, "encode": {"gpu": 1}, "evaluate": {"gpu": 1}, "teacher": {"gpu": 1}},
}
SHAPE = "hn2-pos1-gc0"  # the train set's hard_negatives, max_positives (default 1), grad_cache_chunk (default 0)
RATES = {
    "models": {
        "minilm": {"passage": {"per_s": 100.0}, "query": {"per_s": 1000.0}, "search": {"scores_per_s": 1e6},
                   "train": {SHAPE: {"examples_per_s": 8.0, "batch_size": 8}}},
        "bert-base": {"passage": {"per_s": 25.0}, "query": {"per_s": 250.0}, "search": {"scores_per_s": 5e5},
                      "train": {SHAPE: {"examples_per_s": 2.0, "batch_size": 8}}},
    },
    "teacher": {"pairs_per_s": 10.0},
    "bm25": {"index_passages_per_s": 1000.0, "query_passages_per_s": 1e5},
    "corpus_read": {"passages_per_s": 1e4},
    "corpus_scan": {"passages_per_s": 1e5},
}
SIZES = {
    "train-data": {"corpus": 1000, "train_queries": 10, "train_positives": 12},
    "eval-data": {"corpus": 5000, "queries": {"test": 30, "dev": 20}},
}


def write(tmp_path: Path, config: dict, rates: dict, sizes: dict) -> tuple[Path, Path, Path]:
    paths = tmp_path / "config.yaml", tmp_path / "rates.json", tmp_path / "sizes.yaml"
    paths[0].write_text(yaml.safe_dump(config))
    paths[1].write_text(json.dumps(rates))
    paths[2].write_text(yaml.safe_dump(sizes))
    return paths


def estimate(tmp_path: Path, config: dict = CONFIG, rates: dict = RATES, sizes: dict = SIZES) -> grid_hours.Estimate:
    config_path, rates_path, sizes_path = write(tmp_path, config, rates, sizes)
    return grid_hours.Estimate(grid_hours.load_config(config_path), grid_hours.load_rates(rates_path), rates_path,
                               grid_hours.load_yaml(sizes_path), sizes_path)


def test_hours_are_work_over_rates(tmp_path: Path) -> None:
    rows = {r.rule: r for r in estimate(tmp_path).rows()}
    parse = {"train-data": 1000 / 1e4, "eval-data": 5000 / 1e4}  # corpus passages / parsing rate
    scan = {"train-data": 1000 / 1e5, "eval-data": 5000 / 1e5}  # corpus passages / line-scanning rate
    models = {"small": RATES["models"]["minilm"], "base": RATES["models"]["bert-base"]}  # xlm-roberta-base: base size
    variants = 1 + 1 * 2 * 2  # zero-shot + train sets × losses × seeds
    examples = (10 // 4) * 2 * 4  # steps per epoch × epochs × batch_size
    expected = {  # rule: (jobs, compute seconds, corpus read seconds)
        "mine": (1, 1000 / 1000 + 10 * 1000 / 1e5, parse["train-data"]),  # BM25 index + retrieval
        "teacher": (1, (12 + 10 * 5) / 10, parse["train-data"]),  # (positives + queries × mined negatives) / pairs/s
        "train": (2 * 2 * 2, sum(2 * 2 * examples / m["train"][SHAPE]["examples_per_s"] for m in models.values()),
                  8 * parse["train-data"]),
        # each of the 2 shards of a corpus scans the file twice and parses its half
        "encode": (2 * variants * 2, sum(variants * 5000 / m["passage"]["per_s"] for m in models.values()),
                   2 * variants * 2 * (2 * scan["eval-data"] + parse["eval-data"] / 2)),
        # answer match (eval-dev, family qa) scans the file and parses the retrieved passages: 20 × 1000 > 5000
        "evaluate": (2 * variants * 2,
                     sum(variants * (q / m["query"]["per_s"] + q * 5000 / m["search"]["scores_per_s"])
                         for m in models.values() for q in (30, 20)),
                     2 * variants * (scan["eval-data"] + parse["eval-data"])),
    }
    for rule, (jobs, compute_s, read_s) in expected.items():
        assert (rows[rule].jobs, rows[rule].gpu) == (jobs, 0 if rule == "mine" else 1), rule
        assert rows[rule].compute_s == pytest.approx(compute_s), rule
        assert rows[rule].read_s == pytest.approx(read_s), rule
    assert {r: rows[r].jobs for r in ("prepare", "compare", "site", "all")} == {"prepare": 2, "compare": 4,
                                                                                "site": 1, "all": 1}
    assert rows["compare"].compute_s is None and rows["prepare"].compute_s is None
    # the numbers above, worked out: compute 1.1 s, 6.2 s, 40 s, 1250 s, 5 s; reads 0.1, 0.1, 0.8, 7, 5.5 s
    assert [round(expected[r][1], 6) for r in expected] == [1.1, 6.2, 40.0, 1250.0, 5.0]
    assert [round(expected[r][2], 6) for r in expected] == [0.1, 0.1, 0.8, 7.0, 5.5]


def test_max_steps_caps_training_and_given_negatives_come_from_the_source(tmp_path: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["train_sets"]["train-data"].update(max_steps=3, miner="given")
    config["datasets"]["train-data"]["options"] = {"hard_negatives": 3}
    rows = {r.rule: r for r in estimate(tmp_path, config).rows()}
    assert "mine" not in rows
    assert rows["teacher"].compute_s == pytest.approx((12 + 10 * 3) / 10)
    assert rows["train"].compute_s == pytest.approx(4 * 3 * 4 / 8.0 + 4 * 3 * 4 / 2.0)  # 3 steps × batch 4


def test_a_train_job_on_several_devices_is_priced_in_device_hours(tmp_path: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["train_sets"]["train-data"]["devices"] = 2
    single = {r.rule: r for r in estimate(tmp_path).rows()}["train"]
    ideal = estimate(tmp_path, config)
    rows = {r.rule: r for r in ideal.rows()}
    assert rows["train"].compute_s == pytest.approx(single.compute_s)  # e = 1: 2 devices for half the time
    assert rows["train"].read_s == pytest.approx(2 * single.read_s)  # each process parses the corpus
    assert rows["train"].gpu == 2 and any("ideal scaling" in n for n in ideal.notes)
    measured = estimate(tmp_path, config)
    measured.scaling = {"efficiency": {"2": 0.8}}
    assert {r.rule: r for r in measured.rows()}["train"].compute_s == pytest.approx(single.compute_s / 0.8)


def test_a_synthetic_train_set_prices_generation_the_filter_and_its_training(tmp_path: Path) -> None:
    """CADET's synthesize rule: completions × max_new_tokens / new tokens/s, plus the filter (the retriever's
    query encoding and exact search, depth teacher pairs per query); training and the teacher count every
    completion (upper bounds: the filter keeps fewer); only the small model and infonce train on it."""
    config = copy.deepcopy(CONFIG)
    config["train_sets"]["syn"] = {
        "source": "synthetic-queries", "corpus": "train-data", "batch_size": 4, "hard_negatives": 2,
        "models": ["small"], "losses": ["infonce"],
        "generator": {"model": "org/llm", "types": ["question", "title"], "passages": 50, "per_type": 3,
                      "sampling": {"max_new_tokens": 20}},
        "filter": {"retriever": "small", "depth": 5}}
    rates = dict(RATES, generate={"new_tokens_per_s": 100.0})
    rows = {r.rule: r for r in estimate(tmp_path, config, rates).rows()}
    completions = 50 * 2 * 3
    small = RATES["models"]["minilm"]
    assert rows["synthesize"].jobs == 1
    assert rows["synthesize"].compute_s == pytest.approx(
        completions * 20 / 100.0 + completions / small["query"]["per_s"]
        + completions * 1000 / small["search"]["scores_per_s"] + completions * 5 / RATES["teacher"]["pairs_per_s"])
    base = {r.rule: r for r in estimate(tmp_path, CONFIG).rows()}
    assert rows["train"].jobs == base["train"].jobs + 2  # 1 model × 1 loss × 2 seeds
    examples = completions // 4 * 4
    assert rows["train"].compute_s == pytest.approx(base["train"].compute_s + 2 * examples / 8.0)
    assert rows["teacher"].compute_s == pytest.approx(base["teacher"].compute_s)  # infonce needs no teacher
    assert rows["prepare"].jobs == base["prepare"].jobs  # the synthetic set is written, not prepared


def test_the_table_prices_each_rule_and_sums_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path, rates_path, sizes_path = write(tmp_path, CONFIG, RATES, SIZES)
    assert grid_hours.main(["--config", str(config_path), "--rates", str(rates_path), "--sizes", str(sizes_path)]) == 0
    out = capsys.readouterr().out
    compute_s, read_s = 1.1 + 6.2 + 40 + 1250 + 5, 0.1 + 0.1 + 0.8 + 7 + 5.5
    assert f"| **total** | 58 | | | {compute_s / 3600:.2f} | {read_s / 3600:.2f} " \
           f"| **{(compute_s + read_s) / 3600:.2f}** |" in out
    assert "| encode | 20 | 1 | 50,000 passages | 0.35 | 0.00 | 0.35 |" in out
    assert "base as bert-base" in out


def test_missing_rates_and_sizes_name_the_file_and_key(tmp_path: Path) -> None:
    rates = copy.deepcopy(RATES)
    del rates["models"]["bert-base"]
    with pytest.raises(ConfigError, match=r"rates\.json, key 'models\.bert-base'"):
        estimate(tmp_path, rates=rates).rows()
    rates = copy.deepcopy(RATES)
    del rates["models"]["minilm"]["train"][SHAPE]
    with pytest.raises(ConfigError, match=rf"rates\.json, key 'models\.minilm\.train\.{SHAPE}'"):
        estimate(tmp_path, rates=rates).rows()
    sizes = {k: v for k, v in SIZES.items() if k != "eval-data"}
    with pytest.raises(ConfigError, match=r"sizes\.yaml, key 'eval-data': unknown dataset"):
        estimate(tmp_path, sizes=sizes).rows()
    config = copy.deepcopy(CONFIG)
    config["models"]["big"] = {"path": "some/other-model"}
    with pytest.raises(ConfigError, match=r"key 'models\.big'.*--map big="):
        estimate(tmp_path, config=config).rows()


def test_map_prices_a_model_as_another(tmp_path: Path) -> None:
    config_path, rates_path, sizes_path = write(tmp_path, CONFIG, RATES, SIZES)
    est = grid_hours.Estimate(grid_hours.load_config(config_path), RATES, rates_path, SIZES, sizes_path,
                              grid_hours.parse_map(["base=minilm"]))
    rows = {r.rule: r for r in est.rows()}
    assert rows["encode"].compute_s == pytest.approx(2 * 5 * 5000 / 100.0)


def test_paper_grid_counts_the_jobs_snakemake_lists() -> None:
    rates = copy.deepcopy(RATES)
    for m in rates["models"].values():
        m["train"] = {"hn7-pos4-gc32": m["train"][SHAPE], "hn1-pos1-gc32": m["train"][SHAPE]}
    rates["generate"] = {"new_tokens_per_s": 1000.0}
    rates["generative"] = {"index_tokens_per_s": 1e6, "train_examples_per_s": 10.0, "ltrgr_examples_per_s": 2.0,
                           "queries_per_s": 5.0}
    est = grid_hours.Estimate(grid_hours.load_config(grid_hours.PAPER), rates, Path("rates.json"),
                              grid_hours.load_yaml(grid_hours.SIZES), grid_hours.SIZES)
    jobs = {r.rule: r.jobs for r in est.rows()}
    # README, "The papers' grid": `snakemake -n --configfile config/paper.yaml` lists 19,615 jobs (these and compare_summary)
    assert jobs == {"prepare": 28, "synthesize": 3, "mine": 1, "teacher": 6, "train": 342, "encode": 8306,
                    "evaluate": 10380, "gen_index": 3, "gen_train": 9, "gen_ranking": 9, "gen_train_ltrgr": 9,
                    "gen_rank": 57, "compare": 459, "site": 1, "all": 1}
    assert sum(jobs.values()) == 19614


def benchmark_file(path: Path, *seconds: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{s}\t0:00:01\t100.5\t200.1\t90.2\t95.3\t0.1\t0.2\t50.0\t1.0" for s in seconds]
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    + "\n".join(rows) + "\n")


def test_from_benchmarks_sums_each_rules_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "results" / "benchmarks"
    benchmark_file(bench / "train" / "m" / "t" / "infonce" / "seed1.tsv", "3600.5")
    benchmark_file(bench / "train" / "m" / "t" / "infonce" / "seed2.tsv", "1799.5")
    benchmark_file(bench / "encode" / "m" / "zero-shot" / "shard-000-of-001.tsv", "10.25", "19.75")  # 2 repeats
    (bench / "encode" / "notes.txt").write_text("not a benchmark file")
    rows = {r.rule: (r.jobs, r.compute_s) for r in grid_hours.benchmark_rows(tmp_path / "results")}
    assert rows == {"encode": (1, 30.0), "train": (2, 5400.0)}
    assert grid_hours.main(["--from-benchmarks", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "| train | 2 | 1.5 |" in out and "| encode | 1 | 0.01 |" in out and "| **total** | 3 | **1.5** |" in out


def test_from_benchmarks_names_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "benchmarks" / "evaluate" / "run.tsv"
    benchmark_file(bad, "12.0", "NA")
    with pytest.raises(DataError, match=r"run\.tsv, line 3, field 's'"):
        grid_hours.benchmark_rows(tmp_path)
    assert grid_hours.main(["--from-benchmarks", str(tmp_path / "nowhere")]) == 2
    assert "no Snakemake benchmark folder" in capsys.readouterr().err
