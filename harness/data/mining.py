"""Hard-negative mining, excluding judged positives: BM25 (``bm25s``) or a dense retriever.

This module reads a dataset's mining input, ranks with BM25 and samples the negatives; the
``mine`` stage (:mod:`harness.stages.mine`) writes the groups and ranks with a dense retriever,
so that ``harness.data`` knows no model.

As in DPR (Karpukhin et al., EMNLP 2020), the hard negatives of a training query are highly
ranked passages that are not judged relevant to it. Two rankers:

- **BM25** (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009)
  scores a document d for a query q as
  ``Σ_{t∈q} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))`` with k1 = 1.5,
  b = 0.75 (bm25s' Lucene variant); passages with score 0 share no term and are never taken.
- **dense**: the inner product of a bi-encoder's query and passage embeddings, searched exactly
  (faiss flat), as ANCE (Xiong et al., ICLR 2021) and RocketQA (Qu et al., NAACL 2021) mine
  negatives from a dense retriever's top results.

Either way the miner takes the top ``3 × negatives`` non-positive passages and draws
``negatives`` of them with a seeded generator (RocketQA-style sampling), kept in rank order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
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


@dataclass
class MiningInput:
    """What a miner ranks: the corpus, the training groups with their query texts, and for each
    query every document it must never get as a negative (judged > 0 in any split, or a positive)."""

    corpus: dict[str, dict[str, str]]
    groups: list[TrainGroup]
    query_texts: list[str]
    judged: dict[str, set[str]]

    def depth(self, negatives: int) -> int:
        """How deep to rank so that ``3 × negatives`` unjudged passages survive for every query."""
        return min(len(self.corpus), POOL_FACTOR * negatives + max(len(self.judged[g.query_id]) for g in self.groups))


def load_mining_input(dataset: Path) -> MiningInput:
    """Read ``dataset``'s corpus, queries, judgements and training groups (``train.jsonl``, or
    else the ``train`` qrels); raises :class:`DataError` when there is nothing to mine for."""
    dataset = Path(dataset)
    corpus = read_corpus(dataset / "corpus.jsonl")
    queries = read_queries(dataset / "queries.jsonl")
    if (dataset / "train.jsonl").exists():
        groups = read_train_groups(dataset / "train.jsonl")
    elif "train" in splits(dataset):
        groups = train_groups(read_qrels(dataset / "qrels" / "train.tsv", queries).qrels)
    else:
        raise DataError("no train.jsonl and no qrels/train.tsv to mine negatives for", dataset)
    if not groups:
        raise DataError("no training groups to mine negatives for", dataset / "train.jsonl")
    judged: dict[str, set[str]] = {}
    for split in splits(dataset):
        for qid, docs in read_qrels(dataset / "qrels" / f"{split}.tsv").qrels.items():
            judged.setdefault(qid, set()).update(d for d, grade in docs.items() if grade > 0)
    for group in groups:
        if group.query_id not in queries:
            raise DataError(f"training query {group.query_id!r} has no text in queries.jsonl",
                            dataset / "train.jsonl", field="query_id")
        judged.setdefault(group.query_id, set()).update(group.positives)
    return MiningInput(corpus, groups, [queries[g.query_id]["text"] for g in groups], judged)


def sample_negatives(data: MiningInput, ranked: list[list[str]], negatives: int, seed: int) -> list[TrainGroup]:
    """Give each group ``negatives`` passages drawn (seeded) from its top ``3 × negatives``
    unjudged ones in ``ranked`` (best first), kept in rank order; existing negatives are replaced."""
    rng = random.Random(seed)
    for group, docs in zip(data.groups, ranked):
        pool = [d for d in docs if d not in data.judged[group.query_id]][: POOL_FACTOR * negatives]
        keep = sorted(rng.sample(range(len(pool)), min(negatives, len(pool))))
        group.negatives = [pool[i] for i in keep]
    return data.groups


def bm25_ranking(data: MiningInput, depth: int, threads: int = 1) -> list[list[str]]:
    """Each training query's top ``depth`` passages by BM25 (score > 0), best first, retrieved with
    ``threads`` threads (the result does not depend on them)."""
    doc_ids = list(data.corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([passage_text(d) for d in data.corpus.values()], show_progress=False),
                    show_progress=False)
    tokens = bm25s.tokenize(data.query_texts, return_ids=False, show_progress=False)
    rows, scores = retriever.retrieve(tokens, k=depth, show_progress=False, n_threads=threads)
    return [[doc_ids[i] for i, score in zip(row, row_scores) if score > 0] for row, row_scores in zip(rows, scores)]
