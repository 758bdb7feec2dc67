"""harness.metrics against pytrec_eval (trec_eval), ranx, sklearn and formulas written out here."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from sklearn.metrics import roc_auc_score

from harness.data.format import read_qrels
from harness.errors import ConfigError, DataError
from harness.metrics import FAMILIES, evaluate, metrics_for, parse_metric

TREC_DL_QRELS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "trec-dl-2019-passage" / "qrels" / "test.tsv"


def random_run(seed: int, n_queries: int = 60, n_docs: int = 400, k: int = 120, judged: int = 15):
    """A random run with distinct scores, graded qrels (some unknown docs), padded rows and odd queries."""
    rng = np.random.default_rng(seed)
    query_ids = [f"q{i}" for i in range(n_queries)]
    doc_ids = [f"d{i}" for i in range(n_docs)]
    indices = np.stack([rng.permutation(n_docs)[:k] for _ in range(n_queries)])
    scores = -np.sort(rng.permutation(n_queries * k).reshape(n_queries, k) / 7.0, axis=1)
    indices[3, 50:] = -1  # a short result list
    indices[4, :] = -1  # no result at all
    qrels: dict[str, dict[str, int]] = {}
    for qi, qid in enumerate(query_ids[:-3]):  # the last three queries have no qrels entry
        in_run = rng.choice(indices[qi][indices[qi] >= 0], size=min(judged, int((indices[qi] >= 0).sum())), replace=False) \
            if (indices[qi] >= 0).any() else []
        docs = [doc_ids[r] for r in in_run] + [doc_ids[r] for r in rng.integers(0, n_docs, 5)] + [f"unknown{qi}"]
        qrels[qid] = {d: int(rng.integers(0, 4)) for d in docs}
    qrels["q5"] = {doc_ids[indices[5, 0]]: 0, "unknown-x": 0}  # judged, nothing relevant
    qrels["q6"] = {d: min(g, 1) for d, g in qrels["q6"].items()}  # nothing relevant at level 2
    return query_ids, doc_ids, indices, scores.astype(np.float32), qrels


def trec_run(query_ids, doc_ids, indices, scores, depth=None):
    run = {}
    for qid, rows, vals in zip(query_ids, indices, scores):
        pairs = [(doc_ids[r], float(s)) for r, s in zip(rows, vals) if r >= 0]
        run[qid] = dict(pairs[:depth])
    return run


def pytrec_values(qrels, run, measure, key, level=1):
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {measure}, relevance_level=level)
    return {q: v[key] for q, v in evaluator.evaluate(run).items()}


CASES = [  # (harness name, pytrec_eval measure, result key, relevance level, run depth)
    ("ndcg@10", "ndcg_cut.10", "ndcg_cut_10", 1, None),
    ("ndcg@100", "ndcg_cut.100", "ndcg_cut_100", 1, None),
    ("recall@100", "recall.100", "recall_100", 1, None),
    ("recall@1000", "recall.1000", "recall_1000", 1, None),
    ("mrr@10", "recip_rank", "recip_rank", 1, 10),
    ("map", "map", "map", 1, None),
    ("map@50", "map_cut.50", "map_cut_50", 1, None),
    ("precision@10", "P.10", "P_10", 1, None),
    ("recall@1000-l2", "recall.1000", "recall_1000", 2, None),
    ("map-l2", "map", "map", 2, None),
    ("mrr@10-l2", "recip_rank", "recip_rank", 2, 10),
]


@pytest.mark.parametrize("seed", [0, 1])
def test_every_metric_matches_pytrec_eval(seed):
    query_ids, doc_ids, indices, scores, qrels = random_run(seed)
    names = [case[0] for case in CASES]
    result = evaluate(query_ids, doc_ids, indices, scores, qrels, names)
    assert result.query_ids == query_ids[:-3]  # queries without qrels are left out, as pytrec_eval does
    for name, measure, key, level, depth in CASES:
        expected = pytrec_values(qrels, trec_run(query_ids, doc_ids, indices, scores, depth), measure, key, level)
        assert set(expected) == set(result.query_ids)
        got = dict(zip(result.query_ids, result.per_query[name]))
        for qid in result.query_ids:
            assert got[qid] == pytest.approx(expected[qid], abs=1e-6), (name, qid)
        assert result.aggregate[name] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)


@pytest.mark.slow
def test_metrics_match_ranx():
    ranx = pytest.importorskip("ranx")
    query_ids, doc_ids, indices, scores, qrels = random_run(2)
    # ranx needs a non-empty run and a relevant document at every level tested.
    usable = sorted(q for i, q in enumerate(query_ids)
              if q in qrels and (indices[i] >= 0).any() and max(qrels[q].values()) >= 2)
    rows = [query_ids.index(q) for q in usable]
    names = ["ndcg@10", "ndcg@10-l2", "recall@100", "mrr@10", "map", "map-l2", "recall@1000-l2", "mrr@10-l2"]
    result = evaluate(usable, doc_ids, indices[rows], scores[rows], qrels, names)
    run = ranx.Run(trec_run(usable, doc_ids, indices[rows], scores[rows]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ranx.evaluate(ranx.Qrels({q: qrels[q] for q in usable}), run, names,
                                 return_mean=False, save_results_in_run=False)
    for name in names:
        np.testing.assert_allclose(result.per_query[name], expected[name], atol=1e-6, err_msg=name)


def test_formulas_by_hand():
    doc_ids = ["a", "b", "c", "d", "e"]
    indices = np.array([[0, 1, 2, 3], [4, 3, -1, -1]])
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [2.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    qrels = {"q1": {"b": 2, "d": 1, "z": 3}, "q2": {"a": 1}}
    result = evaluate(["q1", "q2"], doc_ids, indices, scores, qrels,
                      ["ndcg@3", "recall@2", "mrr@10", "map", "precision@2", "mrr@10-l2"])
    dcg = 2 / np.log2(3)
    idcg = 3 + 2 / np.log2(3) + 1 / 2
    np.testing.assert_allclose(result.per_query["ndcg@3"], [dcg / idcg, 0.0])
    np.testing.assert_allclose(result.per_query["recall@2"], [1 / 3, 0.0])
    np.testing.assert_allclose(result.per_query["mrr@10"], [0.5, 0.0])
    np.testing.assert_allclose(result.per_query["map"], [(1 / 2 + 2 / 4) / 3, 0.0])
    np.testing.assert_allclose(result.per_query["precision@2"], [0.5, 0.0])
    np.testing.assert_allclose(result.per_query["mrr@10-l2"], [0.5, 0.0])
    assert result.aggregate["map"] == pytest.approx((1 / 2 + 2 / 4) / 6)


@pytest.mark.skipif(not TREC_DL_QRELS.exists(), reason="../shared/data is absent")
def test_trec_dl_2019_qrels_with_a_synthetic_run():
    qrels = read_qrels(TREC_DL_QRELS).qrels
    rng = np.random.default_rng(7)
    query_ids = sorted(qrels)
    judged = sorted({d for docs in qrels.values() for d in docs})
    doc_ids = judged + [f"x{i}" for i in range(2000)]
    k = 1000
    indices = np.stack([rng.permutation(len(doc_ids))[:k] for _ in query_ids])
    scores = np.sort(rng.random((len(query_ids), k)), axis=1)[:, ::-1].copy()
    names = FAMILIES["trec-dl"]
    result = evaluate(query_ids, doc_ids, indices, scores, qrels, names)
    for name, measure, key, level, depth in CASES:
        if name not in names:
            continue
        expected = pytrec_values(qrels, trec_run(query_ids, doc_ids, indices, scores, depth), measure, key, level)
        np.testing.assert_allclose(result.per_query[name], [expected[q] for q in query_ids], atol=1e-6, err_msg=name)


def test_hits_at_k_is_top_k_accuracy():
    answer_hits = np.array([[False, False, True], [False, False, False], [True, False, False]])
    indices = np.zeros((3, 3), dtype=np.int64)
    result = evaluate(["a", "b", "c"], ["d"], indices, np.zeros((3, 3)), {}, ["hits@2", "hits@3"],
                      answer_hits=answer_hits)
    assert result.query_ids == ["a", "b", "c"]  # answer metrics need no qrels
    np.testing.assert_array_equal(result.per_query["hits@2"], [0, 0, 1])
    np.testing.assert_array_equal(result.per_query["hits@3"], [1, 0, 1])
    with pytest.raises(ConfigError, match="answer_hits"):
        evaluate(["a"], ["d"], indices[:1], np.zeros((1, 3)), {}, ["hits@2"])


def auc_inputs(seed: int):
    """A random run and, per query, positive scores drawn near its own retrieved scores (integers: many ties)."""
    query_ids, doc_ids, indices, scores, qrels = random_run(seed, n_queries=30, n_docs=1000, k=700)
    rng = np.random.default_rng(seed)
    scores = np.round(scores)
    positives = []
    for qi, qid in enumerate(query_ids):
        n = sum(g >= 1 for g in qrels.get(qid, {}).values())
        positives.append(np.round(rng.choice(scores[qi, :300], size=n) + rng.normal(30.0, 20.0, size=n)).astype(np.float32))
    return query_ids, doc_ids, indices, scores, qrels, positives


def pooled_by_hand(query_ids, doc_ids, indices, scores, qrels, positives):
    """Each query's positives and its first 500 retrieved docs that are not relevant, written as loops."""
    out = []
    for qi, qid in enumerate(query_ids):
        if qid not in qrels:
            continue
        negatives = [float(s) for r, s in zip(indices[qi], scores[qi])
                     if r >= 0 and qrels[qid].get(doc_ids[r], 0) < 1][:500]
        out.append((list(map(float, positives[qi])), negatives))
    return out


def test_auc_matches_sklearn():
    query_ids, doc_ids, indices, scores, qrels, positives = auc_inputs(3)
    result = evaluate(query_ids, doc_ids, indices, scores, qrels, ["ndcg@10", "auc_global", "auc_query"],
                      positive_scores=positives)
    pools = pooled_by_hand(query_ids, doc_ids, indices, scores, qrels, positives)
    y = np.concatenate([[1] * len(p) + [0] * len(n) for p, n in pools])
    s = np.concatenate([p + n for p, n in pools])
    assert len(np.intersect1d(s[y == 1], s[y == 0])) > 10  # ties across the classes
    assert 0.55 < roc_auc_score(y, s) < 0.95
    assert result.aggregate["auc_global"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    per_query = [roc_auc_score([1] * len(p) + [0] * len(n), p + n) for p, n in pools if p and n]
    assert result.aggregate["auc_query"] == pytest.approx(np.mean(per_query), abs=1e-12)
    assert "auc_global" not in result.per_query
    hist = result.histogram
    assert len(hist["edges"]) == 21 and hist["edges"][0] == s.min() and hist["edges"][-1] == pytest.approx(s.max())
    assert sum(hist["positives"]) == y.sum() and sum(hist["negatives"]) == len(y) - y.sum()
    np.testing.assert_array_equal(hist["positives"], np.histogram(s[y == 1], bins=np.linspace(s.min(), s.max(), 21))[0])


def test_shifting_one_query_changes_global_auc_not_ndcg():
    query_ids, doc_ids, indices, scores, qrels, positives = auc_inputs(4)
    names = ["ndcg@10", "auc_global", "auc_query"]
    before = evaluate(query_ids, doc_ids, indices, scores, qrels, names, positive_scores=positives)
    shifted_scores, shifted_positives = scores.copy(), list(positives)
    shifted_scores[0] += 1000.0
    shifted_positives[0] = positives[0] + 1000.0
    after = evaluate(query_ids, doc_ids, indices, shifted_scores, qrels, names, positive_scores=shifted_positives)
    np.testing.assert_array_equal(before.per_query["ndcg@10"], after.per_query["ndcg@10"])
    assert after.aggregate["auc_query"] == pytest.approx(before.aggregate["auc_query"])
    assert after.aggregate["auc_global"] != pytest.approx(before.aggregate["auc_global"], abs=1e-3)


def test_auc_needs_positive_scores():
    query_ids, doc_ids, indices, scores, qrels = random_run(0)
    with pytest.raises(ConfigError, match="positives"):
        evaluate(query_ids, doc_ids, indices, scores, qrels, ["ndcg@10", "auc_global"])


@pytest.mark.parametrize("name, measure, k, level", [
    ("ndcg@10", "ndcg", 10, 1), ("map", "map", None, 1), ("recall@100-l2", "recall", 100, 2),
    ("hits@20", "hits", 20, 1), ("auc_global", "auc_global", None, 1), ("mrr@10-l2", "mrr", 10, 2)])
def test_parse_metric(name, measure, k, level):
    spec = parse_metric(name)
    assert (spec.name, spec.measure, spec.k, spec.level) == (name, measure, k, level)
    assert spec.per_query == (not name.startswith("auc"))


@pytest.mark.parametrize("name", ["ndcg@0", "NDCG@10", "bpref", "hits@5-l2", "map@", "recall@10-l0", "auc"])
def test_unknown_metric_is_a_config_error(name):
    with pytest.raises(ConfigError, match="valid metrics are") as info:
        parse_metric(name)
    assert repr(name) in str(info.value)


def test_metrics_for_families():
    assert metrics_for("generic") == ["ndcg@10", "recall@100", "recall@1000", "mrr@10", "map", "auc_global", "auc_query",
                                      "threshold_f1", "threshold_precision", "threshold_recall", "threshold_empty",
                                      "ece_isotonic"]
    assert metrics_for("trec-dl")[:4] == ["ndcg@10", "recall@1000-l2", "map-l2", "mrr@10-l2"]
    assert metrics_for("msmarco")[0] == "mrr@10" and metrics_for("qa")[0] == "hits@20"
    assert metrics_for("beir", ["precision@10", "map"])[-1] == "precision@10"
    for family in FAMILIES:
        for name in metrics_for(family):
            parse_metric(name)
    with pytest.raises(ConfigError, match="family"):
        metrics_for("nope")
    with pytest.raises(ConfigError, match="valid metrics"):
        metrics_for("beir", ["ndcg@ten"])


def test_inconsistent_arrays_are_data_errors():
    query_ids, doc_ids, indices, scores, qrels = random_run(0, n_queries=10, n_docs=50, k=10)
    with pytest.raises(DataError, match="must both be"):
        evaluate(query_ids, doc_ids, indices[:, :5], scores, qrels, ["map"])
    indices[0, 0] = len(doc_ids)
    with pytest.raises(DataError, match="rows of the 50 doc_ids"):
        evaluate(query_ids, doc_ids, indices, scores, qrels, ["map"])
