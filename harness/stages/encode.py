"""The encode stage: one shard of a corpus -> its embeddings (:func:`harness.retrieval.encode_corpus_shard`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.models.registry import load_model
from harness.retrieval import DTYPE, encode_corpus_shard, shard_path
from harness.stages import set_threads


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
    model = load_model(a.model, a.settings)
    encode_corpus_shard(model, Path(a.dataset) / "corpus.jsonl", Path(a.out), a.shard,
                        a.num_shards, a.batch_size, a.dtype or DTYPE, precision=a.precision)


def output(a: argparse.Namespace) -> Path:
    """What this command makes: one shard file of the ``--out`` folder (its step file goes beside it)."""
    return shard_path(Path(a.out), a.shard, a.num_shards)
