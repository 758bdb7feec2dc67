"""Threshold transfer against a brute-force loop over every cut-off; isotonic ECE by hand; the metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from harness.calibration import (Pool, apply_cutoff, best_cutoff, calibrate, half_split, isotonic_ece, reliability,
                                 subset, top_k_pool)
from harness.metrics import calibration_pool, evaluate


def random_pool(rng: np.random.Generator, n_queries: int, depth: int = 10) -> Pool:
    scores = np.sort(rng.normal(size=(n_queries, depth)).round(1), axis=1)[:, ::-1]  # rounded: ties
    relevant = rng.random((n_queries, depth)) < 1 / (1 + np.exp(-3 * scores))
    valid = rng.random((n_queries, depth)) > 0.1
    return top_k_pool(scores, valid, relevant)


def brute_force(pool: Pool, cutoff: float) -> dict[str, float]:
    """Precision, recall, F1 and the empty share of ``score >= cutoff``, one query and one passage at a time."""
    tp = fp = fn = 0
    empty = 0
    for q in range(pool.n_queries):
        mine = [(s, y) for qq, s, y in zip(pool.query, pool.score, pool.label) if qq == q]
        kept = [y for s, y in mine if s >= cutoff]
        tp += sum(kept)
        fp += len(kept) - sum(kept)
        fn += sum(y for s, y in mine if s < cutoff)
        empty += not kept
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold_precision": precision, "threshold_recall": recall, "threshold_f1": f1,
            "threshold_empty": empty / pool.n_queries}


def test_threshold_transfer_against_every_cutoff() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        fit, measured = random_pool(rng, 15), random_pool(rng, 12)
        every = {t: brute_force(fit, t)["threshold_f1"] for t in sorted(set(fit.score.tolist()))}
        best = max(every.values())
        chosen = best_cutoff(fit.score, fit.label)
        assert every[chosen] == pytest.approx(best)
        assert chosen == max(t for t, f in every.items() if f == pytest.approx(best))  # the highest among ties
        assert apply_cutoff(measured, chosen) == pytest.approx(brute_force(measured, chosen))


def test_isotonic_ece_by_hand() -> None:
    rng = np.random.default_rng(1)
    fit, measured = random_pool(rng, 30), random_pool(rng, 30)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(fit.score, fit.label)
    p = iso.predict(measured.score)
    ece = 0.0
    for b in range(10):
        inside = [i for i in range(len(p)) if min(int(p[i] * 10), 9) == b]
        if inside:
            ece += len(inside) / len(p) * abs(np.mean(measured.label[inside]) - np.mean(p[inside]))
    assert isotonic_ece(fit, measured) == pytest.approx(ece)


def test_reliability_bins_and_half_split() -> None:
    pool = Pool(np.array([0, 0, 1, 1]), np.array([0.0, 0.5, 1.0, 1.0]), np.array([False, True, True, False]), 2)
    diagram = reliability(pool, bins=2)
    assert diagram["counts"] == [1, 3] and diagram["relevant"] == [0.0, pytest.approx(2 / 3)]
    fit_rows, measured_rows = half_split(11)
    assert len(fit_rows) == 5 and sorted([*fit_rows, *measured_rows]) == list(range(11))
    assert (half_split(11)[0] == fit_rows).all()  # seeded
    assert subset(pool, np.array([1])).n_queries == 1 and subset(pool, np.array([1])).score.tolist() == [1.0, 1.0]


def test_metrics_without_a_dev_split_fit_on_a_seeded_half() -> None:
    rng = np.random.default_rng(2)
    n, depth, docs = 20, 12, 40
    doc_ids = [f"d{i}" for i in range(docs)]
    query_ids = [f"q{i}" for i in range(n)]
    indices = np.stack([rng.permutation(docs)[:depth] for _ in range(n)])
    scores = np.sort(rng.random((n, depth)), axis=1)[:, ::-1]
    qrels = {q: {doc_ids[indices[i, r]]: 1 for r in range(depth) if rng.random() < 0.4 - 0.02 * r} | {"d0": 0}
             for i, q in enumerate(query_ids)}
    names = ["ndcg@10", "threshold_f1", "threshold_precision", "threshold_recall", "threshold_empty", "ece_isotonic"]
    result = evaluate(query_ids, doc_ids, indices, scores, qrels, names)
    pool = calibration_pool(query_ids, doc_ids, indices, scores, qrels, 1)
    fit_rows, measured_rows = half_split(n)
    fit, measured = subset(pool, fit_rows), subset(pool, measured_rows)
    expected = brute_force(measured, best_cutoff(fit.score, fit.label))
    assert {k: result.aggregate[k] for k in expected} == pytest.approx(expected)
    assert result.aggregate["ece_isotonic"] == pytest.approx(isotonic_ece(fit, measured))
    assert "seeded half" in result.calibration["fit_on"] and result.calibration["measured_queries"] == 10
    with_dev = evaluate(query_ids, doc_ids, indices, scores, qrels, names, calibration_fit=pool)
    assert with_dev.calibration["fit_on"] == "the dev split" and with_dev.calibration["measured_queries"] == n
    assert with_dev.aggregate["threshold_f1"] == pytest.approx(brute_force(pool, best_cutoff(pool.score, pool.label))[
        "threshold_f1"])
    assert calibrate(pool, None)[0] == pytest.approx({k: result.aggregate[k] for k in names[1:]})


@pytest.mark.slow
def test_evaluate_stage_fits_on_the_dev_split(tiny_dataset, tmp_path) -> None:
    import shutil

    from harness.stages.evaluate import evaluate as evaluate_stage

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_dataset, folder)
    shutil.copy(folder / "qrels" / "train.tsv", folder / "qrels" / "dev.tsv")  # 32 judged queries as a dev split
    record = evaluate_stage("tiny", folder, "test", tmp_path / "dev")
    assert record["calibration"]["fit_on"] == "the dev split"
    assert (record["calibration"]["fit_queries"], record["calibration"]["measured_queries"]) == (32, 16)
    reliability = record["calibration"]["reliability"]
    assert sum(reliability["counts"]) == 16 * 10  # every test query's top 10 (48 passages), binned
    assert 0 <= record["metrics"]["threshold_f1"] <= 1 and 0 <= record["metrics"]["ece_isotonic"] <= 1


def test_a_dev_split_without_relevant_passages_falls_back_to_the_half_split_and_says_so() -> None:
    rng = np.random.default_rng(4)
    measured = random_pool(rng, 10)
    empty = Pool(measured.query, measured.score, np.zeros_like(measured.label), measured.n_queries)
    values, record = calibrate(measured, empty)
    assert values == calibrate(measured, None)[0]
    assert "dev split has no relevant passage" in record["fit_on"] and record["measured_queries"] == 5
