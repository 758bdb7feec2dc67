"""BM25 hard-negative mining, held to a BM25 computed in the test from the formula."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.data.format import (
    TrainGroup,
    read_train_groups,
    write_corpus,
    write_qrels,
    write_queries,
    write_train_groups,
)
from harness.stages.mine import mine_bm25, mine_dense
from harness.errors import DataError

DOCS = {
    "a": "solar panels generate electricity using sunlight",
    "b": "wind turbines generate electricity using wind power",
    "c": "solar heating warms water using sunlight",
    "d": "electricity prices rose sharply",
    "e": "expert panels reviewed solar subsidies",
    "f": "sunlight sunlight sunlight everywhere",
    "g": "bread recipes baking flour",
    "h": "solar solar panels panels electricity grid storage batteries",
}
QUERIES = {"q1": "solar panels electricity", "q2": "wind electricity", "q3": "baking bread"}


def bm25(query: str, doc: str, k1: float = 1.5, b: float = 0.75) -> float:
    """Lucene BM25: Σ idf(t)·tf·(k1+1)/(tf + k1·(1−b+b·|d|/avgdl)), idf = ln(1 + (N−df+0.5)/(df+0.5))."""
    docs = [d.split() for d in DOCS.values()]
    avgdl = sum(map(len, docs)) / len(docs)
    words = doc.split()
    score = 0.0
    for term in set(query.split()):
        df = sum(term in d for d in docs)
        tf = words.count(term)
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(words) / avgdl))
    return score


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "corpus.jsonl", ((d, "", text) for d, text in DOCS.items()))
    write_queries(tmp_path / "queries.jsonl", ((q, text, None) for q, text in QUERIES.items()))
    write_qrels(tmp_path / "qrels" / "train.tsv", {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"g": 1}})
    write_qrels(tmp_path / "qrels" / "test.tsv", {"q1": {"h": 2, "d": 0}})
    write_train_groups(tmp_path / "train.jsonl", [TrainGroup("q1", ["a"], ["g"]), TrainGroup("q2", ["b"], []),
                                                 TrainGroup("q3", ["g"], [])])
    return tmp_path


def test_all_negatives_are_the_scored_unjudged_docs_in_bm25_order(dataset: Path) -> None:
    mine_bm25(dataset, dataset / "mined.jsonl", negatives=10, seed=0)
    groups = {g.query_id: g for g in read_train_groups(dataset / "mined.jsonl")}
    judged = {"q1": {"a", "h"}, "q2": {"b"}, "q3": {"g"}}
    for qid, group in groups.items():
        scores = {d: bm25(QUERIES[qid], text) for d, text in DOCS.items() if d not in judged[qid]}
        expected = sorted((d for d, s in scores.items() if s > 0), key=lambda d: -scores[d])
        assert group.negatives == expected
    assert "d" in groups["q1"].negatives  # judged 0 is not a positive
    assert groups["q3"].negatives == []
    assert groups["q1"].positives == ["a"]


def test_sampled_negatives_come_from_the_top_of_the_ranking_and_follow_the_seed(dataset: Path) -> None:
    mine_bm25(dataset, dataset / "all.jsonl", negatives=10, seed=0)
    ranking = read_train_groups(dataset / "all.jsonl")[0].negatives
    draws = set()
    for seed in range(8):
        mine_bm25(dataset, dataset / "one.jsonl", negatives=1, seed=seed)
        (negative,) = read_train_groups(dataset / "one.jsonl")[0].negatives
        assert negative in ranking[:3]
        draws.add(negative)
    assert len(draws) > 1
    mine_bm25(dataset, dataset / "again.jsonl", negatives=1, seed=7)
    assert (dataset / "again.jsonl").read_bytes() == (dataset / "one.jsonl").read_bytes()
    mine_bm25(dataset, dataset / "two.jsonl", negatives=2, seed=3)
    two = read_train_groups(dataset / "two.jsonl")[0].negatives
    assert two == sorted(two, key=ranking.index)


def test_without_train_groups_mining_is_a_data_error(dataset: Path) -> None:
    (dataset / "train.jsonl").unlink()
    (dataset / "qrels" / "train.tsv").unlink()
    with pytest.raises(DataError, match="no train.jsonl"):
        mine_bm25(dataset, dataset / "mined.jsonl", negatives=2, seed=0)


@pytest.fixture(scope="module")
def encoder():
    from harness.models.registry import load_model

    return load_model("minilm")


def test_dense_negatives_are_the_unjudged_docs_in_the_encoders_order(dataset: Path, encoder) -> None:
    mine_dense(dataset, dataset / "dense.jsonl", negatives=10, seed=0, encoder=encoder)
    groups = {g.query_id: g for g in read_train_groups(dataset / "dense.jsonl")}
    doc_emb = encoder.encode(list(DOCS.values()), "passage")
    judged = {"q1": {"a", "h"}, "q2": {"b"}, "q3": {"g"}}
    for qid, group in groups.items():
        scores = doc_emb @ encoder.encode([QUERIES[qid]], "query")[0]
        ranking = [d for _, d in sorted(zip(-scores, DOCS)) if d not in judged[qid]]
        assert group.negatives == ranking
    assert groups["q3"].negatives  # unlike BM25, a dense ranker scores every passage


def test_dense_mining_from_stored_shards_equals_encoding_here(dataset: Path, encoder) -> None:
    from harness.data.format import read_corpus
    from harness.retrieval import encode_corpus_shard

    corpus = read_corpus(dataset / "corpus.jsonl")
    for shard in range(2):
        encode_corpus_shard(encoder, corpus, dataset / "emb", shard, 2, 4, "float32")
    mine_dense(dataset, dataset / "here.jsonl", negatives=2, seed=5, encoder=encoder)
    mine_dense(dataset, dataset / "stored.jsonl", negatives=2, seed=5, encoder=encoder, embeddings=dataset / "emb")
    assert (dataset / "stored.jsonl").read_bytes() == (dataset / "here.jsonl").read_bytes()
    write_corpus(dataset / "corpus.jsonl", ((d, "", text) for d, text in list(DOCS.items())[:-1]))
    with pytest.raises(DataError, match="do not cover"):
        mine_dense(dataset, dataset / "stale.jsonl", negatives=2, seed=5, encoder=encoder, embeddings=dataset / "emb")


def test_bm25_mining_does_not_depend_on_the_threads(dataset: Path) -> None:
    mine_bm25(dataset, dataset / "one.jsonl", negatives=2, seed=4, threads=1)
    mine_bm25(dataset, dataset / "two.jsonl", negatives=2, seed=4, threads=2)
    assert (dataset / "two.jsonl").read_bytes() == (dataset / "one.jsonl").read_bytes()
