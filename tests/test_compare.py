"""harness.compare: Holm on a textbook example, the paired tests against plain computations, compare()."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.compare import RowInput, bootstrap_ci, compare, holm, paired_t_test, randomization_test
from harness.errors import ConfigError, DataError
from harness.grid import GENERATIVE_ROWS, claims, guest_label
from harness.io import write_json, write_jsonl
from harness.stages.compare import load_row, main_compare, main_summary


REPO = Path(__file__).resolve().parents[1]


def plain_holm(p_values, alpha):
    """Holm (1979) step by step: sort, multiply by m - rank, keep the running maximum, stop at the first acceptance."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    corrected, reject = [0.0] * m, [False] * m
    running, still_rejecting = 0.0, True
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        corrected[i] = running
        still_rejecting = still_rejecting and p_values[i] < alpha / (m - rank)
        reject[i] = still_rejecting
    return corrected, reject


def test_holm_textbook_example():
    # Wikipedia, "Holm-Bonferroni method", worked example: four hypotheses at alpha = 0.05.
    corrected, reject = holm([0.01, 0.04, 0.03, 0.005], 0.05)
    assert reject == [True, False, False, True]
    np.testing.assert_allclose(corrected, [0.03, 0.06, 0.06, 0.02])


def test_holm_matches_plain_step_down():
    rng = np.random.default_rng(0)
    for _ in range(12):
        p = (rng.random(rng.integers(1, 9)) ** 3).tolist()
        corrected, reject = holm(p, 0.05)
        expected_corrected, expected_reject = plain_holm(p, 0.05)
        np.testing.assert_allclose(corrected, expected_corrected)
        assert reject == expected_reject
    assert holm([], 0.05) == ([], [])


def test_randomization_test_is_exact_for_few_queries():
    rng = np.random.default_rng(1)
    a, b = rng.random(10), rng.random(10)
    d = a - b
    observed = abs(d.mean())
    flips = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product([1, -1], repeat=len(d))]
    expected = np.mean([f >= observed - 1e-12 for f in flips])
    assert randomization_test(a, b, 10000, np.random.default_rng(0)) == pytest.approx(expected)


def test_randomization_test_is_deterministic_and_close_to_monte_carlo():
    rng = np.random.default_rng(2)
    b = rng.random(300)
    a = b + rng.normal(0.02, 0.2, 300)
    p1 = randomization_test(a, b, 5000, np.random.default_rng(42))
    p2 = randomization_test(a, b, 5000, np.random.default_rng(42))
    assert p1 == p2
    d = a - b
    signs = np.random.default_rng(7).choice([-1.0, 1.0], size=(20000, len(d)))
    monte_carlo = np.mean(np.abs((signs * d).mean(axis=1)) >= abs(d.mean()))
    assert p1 == pytest.approx(monte_carlo, abs=0.02)
    assert 0.01 < p1 < 0.99


def test_randomization_test_of_identical_runs_is_one():
    a = np.random.default_rng(3).random(50)
    assert randomization_test(a, a.copy(), 10000, np.random.default_rng(0)) == 1.0
    b = a.copy()
    b[7] += 0.5  # one differing query: every sign flip gives the same |mean|
    assert randomization_test(a, b, 10000, np.random.default_rng(0)) == 1.0


def test_paired_t_test_matches_formula():
    rng = np.random.default_rng(4)
    a, b = rng.random(40), rng.random(40)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert paired_t_test(a, b) == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
    assert paired_t_test(a, a) == 1.0


def test_bootstrap_ci_is_deterministic_and_near_a_plain_percentile_bootstrap():
    rng = np.random.default_rng(5)
    b = rng.random(300)
    a = b + rng.normal(0.05, 0.2, 300)
    ci = bootstrap_ci(a, b, 4000, 0.95, np.random.default_rng(0))
    assert ci == bootstrap_ci(a, b, 4000, 0.95, np.random.default_rng(0))
    d = a - b
    means = d[np.random.default_rng(9).integers(0, len(d), size=(4000, len(d)))].mean(axis=1)
    np.testing.assert_allclose(ci, np.quantile(means, [0.025, 0.975]), atol=0.006)
    assert ci[0] < d.mean() < ci[1]
    one_sample = bootstrap_ci(a, None, 4000, 0.95, np.random.default_rng(0))
    assert one_sample[0] < a.mean() < one_sample[1]
    assert bootstrap_ci(a, a, 4000, 0.95, np.random.default_rng(0)) == (0.0, 0.0)


def make_row(label, kind, seeds, values, query_ids, aggregate_extra=None):
    """A row whose per-query ndcg@10 for seed i is values[i] (aligned with query_ids)."""
    per_query = np.asarray(values, dtype=float)
    aggregate = {"ndcg@10": per_query.mean(axis=1).tolist(), "mrr@10": (per_query / 2).mean(axis=1).tolist(),
                 "auc_global": [0.7 + 0.01 * s for s in seeds]}
    return RowInput(label=label, kind=kind, loss_name=None if kind == "zero-shot" else label, params={},
                    seeds=list(seeds), runs=[f"runs/m/t/{label}/seed{s}/e" for s in seeds], query_ids=list(query_ids),
                    per_query={"ndcg@10": per_query, "mrr@10": per_query / 2}, aggregate=aggregate)


HEADER = {"model": "m", "train": "t", "eval": "e", "split": "test", "family": "generic", "main_metric": "ndcg@10"}


@pytest.fixture
def rows():
    rng = np.random.default_rng(6)
    queries = [f"q{i}" for i in range(60)]
    base = rng.random((2, 60))
    better = base + 0.2 + rng.normal(0.0, 0.1, base.shape)
    shuffled = list(reversed(queries))  # the same queries in another order
    return [
        make_row("mw", "loss", [1, 2], better, queries),
        make_row("infonce", "loss", [1, 2], base, queries),
        make_row("zero-shot", "zero-shot", [0], rng.random((1, 60)), queries),
        make_row("same", "loss", [1, 2], base[:, ::-1], shuffled),
    ]


def test_compare_structure_and_values(rows):
    result = compare(rows, "infonce", ["ndcg@10", "mrr@10"], ["auc_global"], permutations=2000,
                     resamples=2000, seed=3, header=HEADER)
    assert [r["loss"] for r in result["rows"]] == ["zero-shot", "infonce", "mw", "same"]
    assert [r["kind"] for r in result["rows"]] == ["zero-shot", "baseline", "loss", "loss"]
    assert result["metrics"] == ["ndcg@10", "mrr@10"] and result["aggregate_only"] == ["auc_global"]
    assert result["test"]["permutations"] == 2000 and result["test"]["seed"] == 3
    assert result["bootstrap"]["resamples"] == 2000 and result["correction"]["method"] == "holm"
    assert {k: result[k] for k in HEADER} == HEADER

    baseline = result["rows"][1]["metrics"]["ndcg@10"]
    per_seed = rows[1].per_query["ndcg@10"].mean(axis=1)
    assert baseline["per_seed"] == pytest.approx(per_seed.tolist())
    assert baseline["mean"] == pytest.approx(per_seed.mean())
    assert baseline["std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert baseline["ci_low"] < baseline["mean"] < baseline["ci_high"]
    zero_shot = result["rows"][0]["metrics"]
    assert zero_shot["ndcg@10"]["std"] == 0.0
    assert zero_shot["auc_global"]["ci_low"] is None and zero_shot["auc_global"]["mean"] == pytest.approx(0.7)

    by_loss = {c["loss"]: c for c in result["comparisons"]["ndcg@10"]}
    assert set(by_loss) == {"mw", "same"}
    mw = by_loss["mw"]
    expected_diff = (rows[0].per_query["ndcg@10"].mean(axis=0) - rows[1].per_query["ndcg@10"].mean(axis=0)).mean()
    assert mw["mean_diff"] == pytest.approx(expected_diff)
    assert mw["direction"] == "better" and mw["significant"] and mw["ci_low"] > 0
    same = by_loss["same"]  # queries aligned by id, not by position
    assert same["mean_diff"] == 0.0 and same["direction"] == "same" and same["p_value"] == 1.0
    assert not same["significant"] and (same["ci_low"], same["ci_high"]) == (0.0, 0.0)
    corrected, _ = holm([mw["p_value"], same["p_value"]], 0.05)
    assert [mw["p_corrected"], same["p_corrected"]] == pytest.approx(corrected)
    json.dumps(result, allow_nan=False)

    again = compare(rows, "infonce", ["ndcg@10", "mrr@10"], ["auc_global"], permutations=2000,
                    resamples=2000, seed=3, header=HEADER)
    assert again == result


def test_compare_t_test_option(rows):
    result = compare(rows, "infonce", ["ndcg@10"], [], test="t-test", resamples=500, header=HEADER)
    assert result["test"]["name"] == "paired t-test" and result["test"]["permutations"] is None
    mw = result["comparisons"]["ndcg@10"][0]
    a, b = (rows[i].per_query["ndcg@10"].mean(axis=0) for i in (0, 1))
    assert mw["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_compare_errors(rows):
    with pytest.raises(ConfigError, match="baseline 'bm25'"):
        compare(rows, "bm25", ["ndcg@10"], [], header=HEADER)
    with pytest.raises(ConfigError, match="unknown test"):
        compare(rows, "infonce", ["ndcg@10"], [], test="wilcoxon", header=HEADER)
    rows[0].query_ids[0] = "other"
    with pytest.raises(DataError, match="other queries"):
        compare(rows, "infonce", ["ndcg@10"], [], resamples=200, header=HEADER)


def write_run(root: Path, loss: str | None, seed: int, values: dict[str, list[float]], query_ids: list[str],
              model: str = "minilm", split: str = "test") -> Path:
    """A run folder as the evaluate (or, for a generative model, gen-rank) stage writes it."""
    label = loss or "zero-shot"
    train = "zero-shot" if loss is None else "synth"
    run_dir = root / "runs" / model / train / label / f"seed{seed}" / "synth"
    metrics = {name: float(np.mean(v)) for name, v in values.items()}
    metrics.update(auc_global=0.8, auc_query=0.9)
    write_json(run_dir / "metrics.json", {
        "schema": 1, "run": {"model": model, "train": train, "loss": label, "seed": seed, "eval": "synth",
                             "split": split},
        **({"kind": "generative"} if loss in GENERATIVE_ROWS else {}),
        "loss": None if loss is None else {"name": loss, "params": {"temperature": 0.05}},
        "family": "generic", "main_metric": "ndcg@10", "metrics": metrics, "n_queries": len(query_ids)})
    write_jsonl(run_dir / "per_query.jsonl",
                [{"query_id": q, **{name: v[i] for name, v in values.items()}} for i, q in enumerate(query_ids)])
    return run_dir


def test_main_compare_from_files(tmp_path):
    rng = np.random.default_rng(8)
    queries = [f"q{i}" for i in range(30)]
    names = ["ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"]

    def values(shift):
        return {n: np.clip(rng.random(30) + shift, 0, 1).tolist() for n in names}

    dirs = {
        "zero-shot": [write_run(tmp_path, None, 0, values(-0.2), queries)],
        "infonce": [write_run(tmp_path, "infonce", s, values(0.0), queries) for s in (2, 1)],
        "mw": [write_run(tmp_path, "mw", s, values(0.1), queries[::-1]) for s in (1, 2)],
    }
    out = tmp_path / "compare" / "minilm" / "synth" / "synth.json"
    record = main_compare(dirs, "infonce", out, tmp_path, permutations=500, resamples=500)
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    assert record["metrics"] == names and record["aggregate_only"] == ["auc_global", "auc_query"]
    assert record["model"] == "minilm" and record["train"] == "synth" and record["family"] == "generic"
    infonce = record["rows"][1]
    assert infonce["seeds"] == [1, 2] and infonce["kind"] == "baseline"
    assert infonce["runs"] == ["runs/minilm/synth/infonce/seed1/synth", "runs/minilm/synth/infonce/seed2/synth"]
    assert infonce["params"] == {"temperature": 0.05} and record["rows"][0]["loss_name"] is None
    assert [c["loss"] for c in record["comparisons"]["map"]] == ["mw"]

    row = load_row("mw", "loss", dirs["mw"], tmp_path)
    assert row.per_query["ndcg@10"].shape == (2, 30) and row.query_ids == queries[::-1]

    (dirs["mw"][0] / "per_query.jsonl").write_text('{"query_id": "q1", "ndcg@10": 0.5}\n{"query_id": "q1", "ndcg@10": 0.4}\n')
    with pytest.raises(DataError, match="line 2.*duplicate query id"):
        load_row("mw", "loss", dirs["mw"], tmp_path)


def exact_sign_flip_p(a: np.ndarray, b: np.ndarray) -> float:
    """Fisher's two-sided randomisation p by enumerating every sign assignment of the differences (a plain loop)."""
    d = a - b
    observed = abs(d.mean())
    flips = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product([1, -1], repeat=len(d))]
    return float(np.mean([f >= observed - 1e-12 for f in flips]))


def seed_means(dirs: list[Path], metric: str, order: list[str]) -> np.ndarray:
    """Per-query values of ``metric`` averaged over a row's runs, read back from their per_query.jsonl."""
    runs = [{obj["query_id"]: obj[metric] for obj in map(json.loads, (d / "per_query.jsonl").read_text().splitlines())}
            for d in dirs]
    return np.array([np.mean([run[q] for run in runs]) for q in order])


@pytest.fixture
def mixed_runs(tmp_path):
    """A bi-encoder's table (zero-shot, infonce, mw) and a generative model's gen and ltrgr on the same 10
    queries (in another order), two seeds each: 2**10 sign flips, so the test is exact at 2000 permutations."""
    rng = np.random.default_rng(11)
    queries = [f"q{i}" for i in range(10)]

    def values(shift):
        return {n: np.clip(rng.random(10) + shift, 0, 1).round(3).tolist() for n in ("ndcg@10", "mrr@10")}

    dense = {"zero-shot": [write_run(tmp_path, None, 0, values(-0.2), queries)],
             "infonce": [write_run(tmp_path, "infonce", s, values(0.0), queries) for s in (1, 2)],
             "mw": [write_run(tmp_path, "mw", s, values(0.1), queries) for s in (1, 2)]}
    generative = {row: [write_run(tmp_path, row, s, values(shift), queries[::-1], model="minilm-gen") for s in (1, 2)]
                  for row, shift in (("gen", -0.3), ("ltrgr", 0.3))}
    return tmp_path, queries, dense, generative


def test_generative_rows_join_the_dense_table_tested_against_its_baseline(mixed_runs):
    root, queries, dense, generative = mixed_runs
    guests = {guest_label("minilm-gen", row): dirs for row, dirs in generative.items()}
    record = main_compare(dense | guests, "infonce", root / "compare.json", root, permutations=2000, resamples=500)
    assert [(r["loss"], r["kind"], r["model"], r["loss_name"]) for r in record["rows"]] == [
        ("zero-shot", "zero-shot", "minilm", None), ("infonce", "baseline", "minilm", "infonce"),
        ("mw", "loss", "minilm", "mw"), ("minilm-gen · gen", "loss", "minilm-gen", "gen"),
        ("minilm-gen · ltrgr", "loss", "minilm-gen", "ltrgr")]
    assert record["rows"][3]["runs"] == [f"runs/minilm-gen/synth/gen/seed{s}/synth" for s in (1, 2)]
    for metric in ("ndcg@10", "mrr@10"):
        base = seed_means(dense["infonce"], metric, queries)
        tested = {"mw": dense["mw"], **guests}
        entries = {c["loss"]: c for c in record["comparisons"][metric]}
        assert list(entries) == list(tested)  # one Holm family: the losses and the generative rows
        expected = {label: exact_sign_flip_p(seed_means(dirs, metric, queries), base) for label, dirs in tested.items()}
        assert {k: c["p_value"] for k, c in entries.items()} == pytest.approx(expected)
        corrected, reject = plain_holm(list(expected.values()), 0.05)
        assert [c["p_corrected"] for c in entries.values()] == pytest.approx(corrected)
        assert [c["significant"] for c in entries.values()] == reject
        for label, dirs in tested.items():
            assert entries[label]["mean_diff"] == pytest.approx(np.mean(seed_means(dirs, metric, queries) - base))
    assert {c["loss"]: c["direction"] for c in record["comparisons"]["ndcg@10"]}["minilm-gen · ltrgr"] == "better"

    own = main_compare({"gen": generative["gen"], "ltrgr": generative["ltrgr"]}, "gen", root / "gen.json", root,
                       permutations=2000, resamples=500)  # the generative model's own table: ltrgr against gen
    [ltrgr] = own["comparisons"]["ndcg@10"]
    assert own["baseline"] == "gen" and ltrgr["loss"] == "ltrgr" and ltrgr["p_value"] == pytest.approx(
        exact_sign_flip_p(*(seed_means(generative[r], "ndcg@10", queries) for r in ("ltrgr", "gen"))))


@pytest.mark.parametrize("change, message", [
    ({"split": "dev"}, r"row 'minilm-gen · gen' of model 'minilm-gen' has split 'dev', the baseline 'test'"),
    ({"queries": 1}, r"row 'minilm-gen · gen' of model 'minilm-gen' was evaluated on other queries than the "
                     r"baseline \(missing \['q9'\], extra \['x9'\]\)"),
], ids=["other split", "other queries"])
def test_another_models_row_on_other_queries_is_refused(mixed_runs, change, message):
    root, queries, dense, _ = mixed_runs
    rng = np.random.default_rng(12)
    ids = queries[:-1] + ["x9"] if "queries" in change else queries
    gen = [write_run(root / "other", "gen", s, {"ndcg@10": rng.random(10).tolist(), "mrr@10": rng.random(10).tolist()},
                     ids, model="minilm-gen", split=change.get("split", "test")) for s in (1, 2)]
    with pytest.raises(DataError, match=message) as info:
        main_compare(dense | {"minilm-gen · gen": gen}, "infonce", root / "compare.json", root, permutations=200,
                     resamples=200)
    assert "minilm-gen/synth/gen/seed1" in str(info.value)
    assert not (root / "compare.json").exists()


def test_ltrgr_claim_of_the_quickstart_is_tested_on_the_generative_table(mixed_runs, config):
    root, queries, dense, generative = mixed_runs
    specs = [asdict(c) for c in claims(config)]
    assert "ltrgr-gen" in {c["key"] for c in specs} and "mw-noninferior" in {c["key"] for c in specs}
    tables = [root / "compare" / "minilm-gen.json", root / "compare" / "minilm.json"]
    own = main_compare(generative, "gen", tables[0], root, permutations=2000, resamples=500, claims=specs)
    main_compare(dense | {guest_label("minilm-gen", r): d for r, d in generative.items()}, "infonce", tables[1], root,
                 permutations=2000, resamples=500, claims=specs)
    [pair] = own["claims"]["ltrgr-gen"]["pairs"]
    ltrgr, gen = (seed_means(generative[r], "ndcg@10", queries) for r in ("ltrgr", "gen"))
    assert (pair["a"], pair["b"], pair["boundary"]) == ("ltrgr", "gen", 0.0)
    assert pair["p_value"] == pytest.approx(exact_sign_flip_p(ltrgr, gen))
    assert pair["mean_diff"] == pytest.approx(np.mean(ltrgr - gen)) and pair["ci_low"] > 0
    main_summary(tables, root / "claims.json", root / "ranks.json", claims=specs)
    verdict = next(c for c in json.loads((root / "claims.json").read_text())["claims"] if c["key"] == "ltrgr-gen")
    assert [(e["model"], e["verdict"]) for e in verdict["entries"]] == [("minilm-gen", "confirmed")]  # its models
    assert verdict["verdict"] == "confirmed"
