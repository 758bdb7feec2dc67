"""The gen-index stage: (corpus folder, tokenizer, views) -> the identifier index of the corpus."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from harness.data.format import read_corpus, read_queries, read_train_groups
from harness.errors import DataError
from harness.generative.index import IdentifierIndex
from harness.generative.model import load_tokenizer, tokens
from harness.generative.train import pseudo_queries
from harness.io import atomic_dir, write_json

log = logging.getLogger("harness")
MAX_TOKENS = {"title": 64, "body": 512, "pseudo_query": 64}


def build_index(dataset: Path, model: str, views: list[str], out: Path) -> dict[str, float]:
    """Tokenise every passage's views with ``model``'s tokenizer, index them, write ``out`` atomically."""
    start = time.perf_counter()
    corpus = read_corpus(dataset / "corpus.jsonl")
    tokenizer = load_tokenizer(model)
    ids = list(corpus)
    titles = tokens(tokenizer, [corpus[d].get("title") or "" for d in ids], MAX_TOKENS["title"]) \
        if "title" in views else [[] for _ in ids]
    if "title" in views and not any(titles):
        raise DataError("the corpus has no titles, so the identifier view 'title' is empty; leave it out of the "
                        "model's identifiers", dataset / "corpus.jsonl", field="title")
    bodies = tokens(tokenizer, [corpus[d]["text"] for d in ids], MAX_TOKENS["body"])
    pseudo: list[list[list[int]]] = [[] for _ in ids]
    if "pseudo_query" in views:
        train = dataset / "train.jsonl"
        groups = read_train_groups(train) if train.is_file() else []
        texts = pseudo_queries(groups, read_queries(dataset / "queries.jsonl")) if groups else {}
        if not texts:
            raise DataError("no pseudo-queries: the view 'pseudo_query' takes the training queries of each "
                            "passage, and this dataset has none; leave it out of the model's identifiers", train)
        pseudo = [tokens(tokenizer, texts.get(d, []), MAX_TOKENS["pseudo_query"]) for d in ids]
    tokenized = time.perf_counter()
    index = IdentifierIndex.build(ids, titles, bodies, pseudo, len(tokenizer))
    built = time.perf_counter()
    stats = {"passages": len(ids), "tokens": index.n_tokens, "tokenize_s": tokenized - start,
             "build_s": built - tokenized, "tokens_per_s": index.n_tokens / max(built - tokenized, 1e-9)}
    with atomic_dir(out) as tmp:
        index.save(tmp)
        stats["bytes_per_token"] = (tmp / "index.npz").stat().st_size / max(index.n_tokens, 1)
        write_json(tmp / "meta.json", {"model": model, "views": views, **stats})
    return stats


def run(a: argparse.Namespace) -> None:
    stats = build_index(Path(a.dataset), a.model, a.views, Path(a.out))
    log.info("%s", json.dumps(stats, sort_keys=True))
