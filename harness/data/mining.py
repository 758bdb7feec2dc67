"""Hard-negative mining with BM25 (``bm25s``), excluding judged positives.

BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009)
scores a document d for a query q as
``Σ_{t∈q} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))`` with k1 = 1.5, b = 0.75
(bm25s' Lucene variant). As in DPR (Karpukhin et al., EMNLP 2020), the hard negatives of a training
query are highly ranked BM25 passages that are not judged relevant to it: the miner takes the
top ``3 × negatives`` non-positive passages with a positive score and draws ``negatives`` of them with a seeded
generator (RocketQA-style sampling, Qu et al., NAACL 2021), kept in BM25 rank order.
"""

from __future__ import annotations

import random
from pathlib import Path

import bm25s

from harness.data.format import (
    Qrels,
    TrainGroup,
    passage_text,
    read_corpus,
    read_qrels,
    read_queries,
    read_train_groups,
    splits,
    write_train_groups,
)
from harness.errors import DataError

POOL_FACTOR = 3


def train_groups(qrels: Qrels) -> list[TrainGroup]:
    """One group per query with a judged-relevant document (grade > 0), no negatives yet."""
    groups = []
    for qid, docs in qrels.items():
        positives = [d for d, grade in docs.items() if grade > 0]
        if positives:
            groups.append(TrainGroup(qid, positives, [], {d: docs[d] for d in positives if docs[d] != 1}))
    return groups


def mine_bm25(dataset: Path, out_train: Path, negatives: int, seed: int) -> None:
    """Write ``out_train``: the training groups of ``dataset`` with ``negatives`` BM25 hard negatives each.

    The groups come from ``dataset/train.jsonl`` (or, without one, from ``qrels/train.tsv``); a
    document judged relevant (grade > 0) to the query in any split, or listed as its positive,
    is never a negative. Existing negatives are replaced.
    """
    dataset = Path(dataset)
    corpus = read_corpus(dataset / "corpus.jsonl")
    queries = read_queries(dataset / "queries.jsonl")
    if (dataset / "train.jsonl").exists():
        groups = read_train_groups(dataset / "train.jsonl")
    elif "train" in splits(dataset):
        groups = train_groups(read_qrels(dataset / "qrels" / "train.tsv", queries).qrels)
    else:
        raise DataError("no train.jsonl and no qrels/train.tsv to mine negatives for", dataset)
    judged: dict[str, set[str]] = {}
    for split in splits(dataset):
        for qid, docs in read_qrels(dataset / "qrels" / f"{split}.tsv").qrels.items():
            judged.setdefault(qid, set()).update(d for d, grade in docs.items() if grade > 0)
    for group in groups:
        if group.query_id not in queries:
            raise DataError(f"training query {group.query_id!r} has no text in queries.jsonl",
                            dataset / "train.jsonl", field="query_id")
        judged.setdefault(group.query_id, set()).update(group.positives)

    doc_ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([passage_text(d) for d in corpus.values()], show_progress=False),
                    show_progress=False)
    depth = min(len(doc_ids), POOL_FACTOR * negatives + max(len(judged[g.query_id]) for g in groups))
    tokens = bm25s.tokenize([queries[g.query_id]["text"] for g in groups], return_ids=False, show_progress=False)
    ranked, scores = retriever.retrieve(tokens, k=depth, show_progress=False, n_threads=1)
    rng = random.Random(seed)
    for group, row, row_scores in zip(groups, ranked, scores):
        pool = [doc_ids[i] for i, score in zip(row, row_scores)
                if score > 0 and doc_ids[i] not in judged[group.query_id]][: POOL_FACTOR * negatives]
        keep = sorted(rng.sample(range(len(pool)), min(negatives, len(pool))))
        group.negatives = [pool[i] for i in keep]
    write_train_groups(out_train, groups)
