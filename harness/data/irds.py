"""The ``irds`` source: any ir_datasets id (MacAvaney et al., "Simplified Data Wrangling with
ir_datasets", SIGIR 2021) converted into the on-disk format.

``id`` names the dataset that supplies the documents; ``splits`` maps each split name to the
ir_datasets id that supplies its queries and qrels (by default ``{"test": id}``), e.g.
``{"train": "msmarco-passage/train", "dev": "msmarco-passage/dev/small"}``. Queries keep their
``answers`` where the dataset has them (DPR's ``dpr-w100/*``). The ``train`` split becomes training
groups: positives are its qrels with grade > 0; hard negatives are the dataset's own (the second
documents of the query's docpairs, or else the documents its qrels judge 0, which for
``dpr-w100`` are DPR's hard negatives); mined ones come from the ``mine`` stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.data.format import Qrels, write_corpus, write_qrels, write_queries, write_train_groups
from harness.data.mining import train_groups
from harness.errors import ConfigError, DataError


def _load(dataset_id: str, key: str) -> Any:
    import ir_datasets

    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise ConfigError(f"unknown ir_datasets id {dataset_id!r}", key) from None


def _docs(dataset: Any, where: str, seen: set[str]) -> Iterator[tuple[str, str, str]]:
    for index, doc in enumerate(dataset.docs_iter(), start=1):
        if doc.doc_id in seen:
            raise DataError(f"duplicate document id {doc.doc_id!r}", where, index, "doc_id")
        seen.add(doc.doc_id)
        title = getattr(doc, "title", "") or ""
        text = doc.text if hasattr(doc, "text") and title else doc.default_text()
        yield doc.doc_id, title, text


def convert(out: Path, id: str, splits: dict[str, str] | None = None,
            negatives: int = 7) -> tuple[dict[str, Any], dict[str, int]]:
    """Convert the ir_datasets ``id`` (documents) and ``splits`` (queries and qrels) into ``out``,
    keeping up to ``negatives`` given hard negatives per training query."""
    splits = splits or {"test": id}
    if not isinstance(splits, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in splits.items()):
        raise ConfigError("expected a mapping of split name to ir_datasets id", "splits")
    docs_source = _load(id, "id")
    if not docs_source.has_docs():
        raise ConfigError(f"ir_datasets id {id!r} has no documents", "id")
    doc_ids: set[str] = set()
    write_corpus(out / "corpus.jsonl", _docs(docs_source, f"ir_datasets:{id}", doc_ids))
    if not doc_ids:
        raise DataError("the corpus is empty", f"ir_datasets:{id}")

    queries: dict[str, tuple[str, list[str] | None]] = {}
    qrels: dict[str, Qrels] = {}
    pairs: dict[str, list[str]] = {}
    warnings: dict[str, int] = {}
    for split, split_id in splits.items():
        dataset = _load(split_id, f"splits.{split}")
        where = f"ir_datasets:{split_id}"
        if not dataset.has_queries():
            raise ConfigError(f"ir_datasets id {split_id!r} has no queries", f"splits.{split}")
        for index, query in enumerate(dataset.queries_iter(), start=1):
            text = query.default_text()
            if not text.strip():
                raise DataError(f"query {query.query_id!r} has empty text", where, index, "text")
            answers = getattr(query, "answers", None)
            known = queries.setdefault(query.query_id, (text, list(answers) if answers is not None else None))
            if known[0] != text:
                raise DataError(f"query id {query.query_id!r} has two different texts", where, index, "query_id")
        qrels[split] = {}
        unknown = 0
        for index, qrel in enumerate(dataset.qrels_iter() if dataset.has_qrels() else [], start=1):
            if qrel.query_id not in queries:
                raise DataError(f"query id {qrel.query_id!r} has no text", where, index, "query_id")
            unknown += qrel.doc_id not in doc_ids
            qrels[split].setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
        if unknown:
            warnings[f"qrels/{split}: documents not in the corpus"] = unknown
        if split == "train" and dataset.has_docpairs():
            for pair in dataset.docpairs_iter():
                pairs.setdefault(pair.query_id, []).append(pair.doc_id_b)

    write_queries(out / "queries.jsonl", ((q, text, answers) for q, (text, answers) in queries.items()))
    for split, split_qrels in qrels.items():
        write_qrels(out / "qrels" / f"{split}.tsv", split_qrels)
    if "train" in qrels:
        groups = train_groups(qrels["train"])
        for group in groups:
            judged = qrels["train"][group.query_id]
            given = pairs.get(group.query_id) or [d for d, grade in judged.items() if grade == 0]
            usable = (d for d in given if d in doc_ids and judged.get(d, 0) <= 0)
            group.negatives = list(dict.fromkeys(usable))[:negatives]
        write_train_groups(out / "train.jsonl", groups)
    return {"name": "irds", "id": id, "splits": splits, "negatives": negatives}, warnings
