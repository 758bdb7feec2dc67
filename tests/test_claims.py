"""Claims: parsing and its errors, per-table tests and verdicts against scipy and hand-worked cases,
Holm over all claims x eval sets, and the Claims page built from the compare stage's files."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_site_fixture
from scipy import stats
from snakemake.utils import validate

from harness.claims import (CONFIRMED, INCONCLUSIVE, NOT_RUN, REFUTED, Claim, claim_p, overall_verdict, summarise,
                            table_claims)
from harness.compare import RowInput
from harness.errors import ConfigError
from harness.grid import check, claims, load_yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "config" / "config.schema.yaml")


def test_quickstart_claims_parse_with_row_keys(config: dict) -> None:
    parsed = {c.key: c for c in claims(config)}
    assert set(parsed) == {"mw-auc", "mw-noninferior", "cadet-infonce", "cadet-kd", "multipos-lsepair", "ltrgr-gen"}
    assert (parsed["mw-noninferior"].a, parsed["mw-noninferior"].others) == ("mw", ("infonce",))
    assert parsed["mw-noninferior"].boundary == -0.005
    assert (parsed["cadet-infonce"].a, parsed["cadet-infonce"].others) == ("zero-shot", ("infonce",))  # less swaps
    best = parsed["multipos-lsepair"]  # labels with parameters become their row keys
    assert best.a == "lsepair.temperature=0.05"
    assert set(best.others) == {f"{n}.temperature=0.05" for n in ("jointlh", "summarglh", "rand1lh")}


def test_paper_claims_keep_a_row_the_grid_does_not_run() -> None:
    cfg = load_yaml(REPO / "config" / "paper.yaml")
    validate(cfg, SCHEMA, set_default=True)
    parsed = {c.key: c for c in claims(cfg)}
    assert (parsed["ltrgr-hits5"].a, parsed["ltrgr-hits5"].others, parsed["ltrgr-hits5"].metric) == (
        "ltrgr", ("gen",), "hits@5")
    assert parsed["cadet-kd"].models == ("e5-base",)


@pytest.mark.parametrize("test, key", [
    ({"greater": ["mw", "softmax_v2"], "metric": "ndcg@10"}, "claims.c.test"),  # unknown row
    ({"greater": ["mw", "infonce"], "metric": "ndcg@11"}, "claims.c.test.metric"),  # no eval set measures it
    ({"greater": ["mw", "infonce"], "metric": "hits@5"}, "claims.c.test.metric"),  # valid name, not measured here
    ({"better": ["mw", "infonce"]}, "claims.c.test"),  # unknown test form
    ({"greater": ["mw", "infonce"], "less": ["mw", "infonce"]}, "claims.c.test"),  # two forms
    ({"best": "mw", "among": ["infonce", "mw"], "margin": 0.01}, "claims.c.test.margin"),  # margin, no direction
    ({"noninferior": ["mw", "infonce"]}, "claims.c.test.margin"),  # non-inferiority needs its margin
    ({"greater": ["mw", "infonce"], "margin": -1}, "claims.c.test.margin"),
    ({"greater": ["mw", "mw"]}, "claims.c.test.greater"),
])
def test_bad_claims_name_the_claim(config: dict, test: dict, key: str) -> None:
    bad = copy.deepcopy(config)
    bad["claims"] = {"c": {"paper": "1", "sentence": "s", "test": test}}
    with pytest.raises(ConfigError) as info:
        check(bad)
    assert info.value.key == key


@pytest.mark.parametrize("field, value", [("eval_sets", ["nosuch"]), ("models", ["bert"]), ("verdict", "x")])
def test_unknown_eval_set_model_or_field_is_refused(config: dict, field: str, value) -> None:
    bad = copy.deepcopy(config)
    bad["claims"] = {"c": {"test": {"greater": ["mw", "infonce"]}, field: value}}
    with pytest.raises(ConfigError, match="claims.c"):
        check(bad)


def test_the_quickstart_tests_ltrgrs_claim_on_its_generative_model(config: dict) -> None:
    parsed = {c.key: c for c in claims(config)}
    assert {"mw-auc", "multipos-lsepair"} < set(parsed)  # the grid's own claims stay
    ltrgr = parsed["ltrgr-gen"]
    assert (ltrgr.paper, ltrgr.form, ltrgr.a, ltrgr.others, ltrgr.metric) == ("2306.15222", "greater", "ltrgr",
                                                                              ("gen",), "main")
    assert ltrgr.models == ("minilm-gen",) and ltrgr.text() == "ltrgr > gen on the main metric"


def test_a_known_row_outside_the_grid_is_accepted(config: dict) -> None:
    ok = copy.deepcopy(config)
    ok["claims"] = {"lt": {"test": {"greater": ["ltrgr", "gen"], "metric": "main"}},
                    "pairs": {"test": {"greater": ["ltr_margin", "zero-shot"]}}}
    check(ok)


def row(label: str, values: np.ndarray, seeds=(1,)) -> RowInput:
    values = np.atleast_2d(values)
    ids = [f"q{i}" for i in range(values.shape[1])]
    return RowInput(label, "loss", label, {}, list(seeds), [f"runs/{label}"], ids, {"ndcg@10": values},
                    {"ndcg@10": values.mean(axis=1).tolist(), "auc_global": [0.8] * len(seeds)})


def claim(form: str, a: str, others: tuple[str, ...], margin: float = 0.0, metric: str = "ndcg@10") -> Claim:
    return Claim(f"{form}-{a}", "2510.00137", "s", form, a, others, metric, margin)


def exact_randomization(d: np.ndarray) -> float:
    """Two-sided p of the sign-flip test of mean(d) = 0, over every one of the 2^n sign assignments."""
    flips = [abs(np.mean(np.array(s) * d)) for s in itertools.product([1, -1], repeat=len(d))]
    return float(np.mean([f >= abs(d.mean()) - 1e-12 for f in flips]))


RNG = np.random.default_rng(7)
BASE = RNG.uniform(0.3, 0.6, 10)
STRONG = BASE + 0.2 + RNG.normal(0, 0.02, 10)
NEAR = BASE - 0.002 + RNG.normal(0, 0.001, 10)


def test_table_tests_match_scipy_and_exact_randomization() -> None:
    rows = [row("a", np.stack([STRONG, STRONG + 0.01]), seeds=(1, 2)), row("b", BASE), row("c", NEAR)]
    claims_ = [claim("greater", "a", ("b",)), claim("noninferior", "c", ("b",), margin=0.005)]
    out = table_claims(claims_, rows, "ndcg@10", test="randomization", permutations=5000, resamples=2000, seed=0)
    a = (STRONG + STRONG + 0.01) / 2  # seeds averaged per query
    pair = out["greater-a"]["pairs"][0]
    assert pair["mean_diff"] == pytest.approx(np.mean(a - BASE))
    assert pair["p_value"] == pytest.approx(exact_randomization(a - BASE))  # 2^10 < permutations: exact
    assert pair["seeds"] == {"a": [1, 2], "b": [1]}
    ci = stats.bootstrap((a, BASE), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True, n_resamples=2000,
                         method="BCa", rng=np.random.default_rng(0), vectorized=True).confidence_interval
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx((ci.low, ci.high))
    non = out["noninferior-c"]["pairs"][0]  # H0: mean(c - b) = -margin, tested on the shifted differences
    assert non["boundary"] == -0.005
    assert non["p_value"] == pytest.approx(exact_randomization(NEAR - BASE + 0.005))
    t = table_claims(claims_, rows, "ndcg@10", test="t-test", permutations=100, resamples=200, seed=0)
    assert t["noninferior-c"]["pairs"][0]["p_value"] == pytest.approx(stats.ttest_rel(NEAR + 0.005, BASE).pvalue)


def test_missing_rows_are_not_run_and_aggregate_metrics_have_no_paired_test() -> None:
    rows = [row("a", STRONG), row("b", BASE)]
    out = table_claims([claim("greater", "ltrgr", ("gen",)), claim("greater", "a", ("b",), metric="auc_global")],
                       rows, "ndcg@10", test="t-test", permutations=100, resamples=100, seed=0)
    assert out["greater-ltrgr"] == {"status": NOT_RUN, "metric": "ndcg@10", "missing": ["ltrgr", "gen"]}
    assert out["greater-a"]["status"] == "no paired test" and out["greater-a"]["means"] == {"a": 0.8, "b": 0.8}


def pair(mean_diff: float, low: float, high: float, p: float, boundary: float = 0.0) -> dict:
    return {"a": "a", "b": "b", "boundary": boundary, "mean_diff": mean_diff, "ci_low": low, "ci_high": high,
            "p_value": p, "seeds": {}}


def test_claim_p_and_intersection_union() -> None:
    assert claim_p([pair(0.1, 0.05, 0.15, 0.01)]) == (0.01, 1)
    assert claim_p([pair(-0.1, -0.15, -0.05, 0.02)]) == (0.02, -1)
    assert claim_p([pair(0.004, 0.001, 0.007, 0.03, boundary=0.005)]) == (0.03, -1)  # under a superiority margin
    assert claim_p([pair(0.1, 0.0, 0.2, 0.01), pair(0.05, 0.0, 0.1, 0.04)]) == (0.04, 1)  # best: the largest p
    assert claim_p([pair(0.1, 0.0, 0.2, 0.01), pair(-0.05, -0.1, 0.0, 0.3), pair(-0.2, -0.3, -0.1, 0.002)]) == (
        0.002, -1)  # best, losing to some row: the smallest p of those


def tables(*entries) -> list[dict]:
    return [{"model": "m", "train": "t", "eval": e, "claims": {"k": {"status": "run", "metric": "ndcg@10",
                                                                       "pairs": pairs}}} for e, pairs in entries]


def test_holm_over_all_tests_and_verdicts_by_hand() -> None:
    c = claim("noninferior", "a", ("b",), margin=0.01)
    c = Claim("k", c.paper, c.sentence, c.form, c.a, c.others, c.metric, c.margin)
    b = -0.01
    record = summarise([c], tables(
        ("e1", [pair(0.002, -0.004, 0.008, 0.001, b)]),  # lower bound above -margin: non-inferior
        ("e2", [pair(-0.02, -0.03, -0.015, 0.004, b)]),  # wholly below -margin: inferior
        ("e3", [pair(0.0, -0.02, 0.02, 0.03, b)]),  # Holm: 3 * ... no longer significant
    ), alpha=0.05)
    entries = {e["eval"]: e for e in record["claims"][0]["entries"]}
    # Holm by hand: sorted 0.001, 0.004, 0.03 -> 3 * 0.001, max(0.003, 2 * 0.004), max(0.008, 1 * 0.03)
    assert [entries[e]["p_corrected"] for e in ("e1", "e2", "e3")] == pytest.approx([0.003, 0.008, 0.03])
    assert [entries[e]["verdict"] for e in ("e1", "e2", "e3")] == [CONFIRMED, REFUTED, INCONCLUSIVE]
    assert record["claims"][0]["verdict"] == INCONCLUSIVE  # eval sets disagree
    assert record["correction"]["tests"] == 3
    record = summarise([c], tables(("e1", [pair(0.002, -0.004, 0.008, 0.001, b)]),
                                   ("e2", [pair(0.0, -0.02, 0.02, 0.03, b)])), alpha=0.05)
    assert record["claims"][0]["verdict"] == CONFIRMED
    # significant, but the interval crosses the boundary: not confirmed
    record = summarise([c], tables(("e1", [pair(0.002, -0.012, 0.008, 0.001, b)])), alpha=0.05)
    assert record["claims"][0]["entries"][0]["verdict"] == INCONCLUSIVE


def test_a_table_holding_none_of_a_claims_rows_is_left_out_unless_no_table_holds_them() -> None:
    c = claim("less", "infonce", ("zero-shot",))  # CADET's: zero-shot is in every table, infonce only in dense ones
    c = Claim("k", c.paper, c.sentence, c.form, c.a, c.others, c.metric, c.margin)
    dense = tables(("e1", [pair(0.05, 0.02, 0.08, 0.001)]))[0]
    generative = {"model": "gen-model", "train": "t", "eval": "e1",
                  "claims": {"k": {"status": NOT_RUN, "metric": "ndcg@10", "missing": ["infonce"]}}}
    record = summarise([c], [dense, generative], alpha=0.05)
    assert [e["model"] for e in record["claims"][0]["entries"]] == ["m"]
    assert record["correction"]["tests"] == 1
    record = summarise([c], [generative], alpha=0.05)  # the grid runs no infonce at all: "not run", said once
    assert [(e["model"], e["verdict"]) for e in record["claims"][0]["entries"]] == [("gen-model", NOT_RUN)]
    assert record["claims"][0]["verdict"] == NOT_RUN
    partial = dict(generative, claims={"k": {"status": NOT_RUN, "metric": "ndcg@10", "missing": ["zero-shot"]}})
    record = summarise([c], [dense, partial], alpha=0.05)  # a table lacking some of them still says so
    assert [e["model"] for e in record["claims"][0]["entries"]] == ["m", "gen-model"]


@pytest.mark.slow
def test_compare_stage_writes_claims_letters_and_the_summary(tmp_path: Path) -> None:
    from dataclasses import asdict

    from harness.stages.compare import main_compare, main_summary

    fixture = load_site_fixture()
    results = fixture.write_results(tmp_path / "results", [fixture.RANKS_BOARD])
    specs = [asdict(c) for c in (claim("greater", "mw", ("infonce",)), claim("greater", "ltrgr", ("gen",)),
                                 claim("greater", "mw", ("infonce",), metric="hits@5"))]
    specs[2]["key"] = "hits"
    outs = []
    for eval_set in fixture.RANKS_BOARD["evals"]:
        rows = {label: [results / "runs/tart" / ("zero-shot" if kind == "zero-shot" else "marco") / folder / f"seed{s}"
                        / eval_set for s in ([0] if kind == "zero-shot" else fixture.SEEDS)]
                for label, folder, _, kind, _, _ in fixture.TART_LOSSES}
        out = tmp_path / "compare" / f"{eval_set}.json"
        record = main_compare(rows, "infonce", out, results, permutations=200, resamples=200, claims=specs)
        assert record["claims"]["greater-mw"]["status"] == "run"
        assert record["claims"]["greater-ltrgr"]["missing"] == ["ltrgr", "gen"]
        assert record["claims"]["hits"] == {"status": "not measured", "metric": "hits@5"}
        assert set(record["letters"]["letters"]) == {"zero-shot", "infonce", "mw", "lsepair"}
        assert record["letters"]["pairs"] == 6
        outs.append(out)
    main_summary(outs, tmp_path / "claims.json", tmp_path / "ranks.json", claims=specs, alpha=0.05)
    summary = {c["key"]: c for c in json.loads((tmp_path / "claims.json").read_text())["claims"]}
    assert summary["hits"]["entries"] == [] and summary["hits"]["verdict"] == NOT_RUN
    assert len(summary["greater-mw"]["entries"]) == 3
    assert json.loads((tmp_path / "ranks.json").read_text())["boards"][0]["diagram"] == "cd"


def test_overall_verdict_rules() -> None:
    assert overall_verdict([CONFIRMED, INCONCLUSIVE, NOT_RUN]) == CONFIRMED
    assert overall_verdict([REFUTED, INCONCLUSIVE]) == REFUTED
    assert overall_verdict([CONFIRMED, REFUTED]) == INCONCLUSIVE
    assert overall_verdict([NOT_RUN, NOT_RUN]) == overall_verdict([]) == NOT_RUN


@pytest.mark.slow
def test_claims_page_verdicts_and_latex(tmp_path: Path) -> None:
    from harness.leaderboard.build import build_site

    fixture = load_site_fixture()
    results = fixture.write_results(tmp_path / "results", fixture.BOARDS + [fixture.RANKS_BOARD])
    fixture.write_summaries(results)
    site = tmp_path / "site"
    build_site(results, site)
    record = json.loads((results / "compare" / "claims.json").read_text())
    page = (site / "claims.html").read_text(encoding="utf-8")
    for c in record["claims"]:
        assert f'data-claim="{c["key"]}" data-verdict="{c["verdict"]}"' in page
    lt = next(c for c in record["claims"] if c["key"] == "ltrgr-hits5")
    assert lt["verdict"] == NOT_RUN and lt["counts"][NOT_RUN] == len(lt["entries"]) > 0
    assert json.loads((site / "claims.json").read_text()) == record
    tex = (site / "leaderboard.tex").read_text(encoding="utf-8")
    assert r"ltrgr-hits5 (arXiv 2306.15222) & ltrgr \textgreater{} gen on the main metric & not run" in tex
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.count('class="plot cd-diagram"') == 1  # tart: 3 eval sets x 4 rows
    assert "No critical-difference diagram: 2 eval set(s)" in index  # minilm
    assert index.index('href="claims.html"') < index.index('href="runs.html"')
    compare = json.loads((results / "compare/tart/marco/dl19.json").read_text())
    dataset = next((site / "datasets").glob("tart-marco-dl19-*.html")).read_text(encoding="utf-8")
    for label, code in compare["letters"]["letters"].items():
        assert f'<tr data-label="{label}"><th scope="row">' in dataset and f"<code>{code}</code>" in dataset
    assert 'id="letters"' not in next((site / "datasets").glob("e5-nq-nq-*.html")).read_text(encoding="utf-8")
    run = next((site / "runs").glob("tart-marco-mw-seed1-dl19-*.html")).read_text(encoding="utf-8")
    assert 'id="calibration"' in run and "reliability diagram" in run and "cut-off (0.4213)" in run
    assert "fitted on the dev split (40 queries)" in run and "F1 0.610" in run
    assert 'id="calibration"' not in next((site / "runs").glob("tart-marco-mw-seed2-dl19-*.html")).read_text()
