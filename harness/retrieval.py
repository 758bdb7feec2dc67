"""Dense retrieval in three file-separated steps: encode → search → TREC run (after Tevatron).

1. :func:`encode_corpus_shard` encodes one contiguous shard of the corpus (in its file order)
   and writes ``shard-SSS-of-NNN.npy`` (float32 by default) and ``shard-SSS-of-NNN.ids.json``,
   so shards run as parallel jobs; :func:`load_corpus_embeddings` gathers them (memory-mapped).
2. :class:`FlatIPSearcher` finds the top k passages per query by inner product,
   s(q, d) = ⟨e(q), e(d)⟩ (the cosine when the encoder normalises), exactly with faiss'
   ``IndexFlatIP`` by default, in float32, on the GPU when faiss sees one.
3. :func:`write_trec_run` writes ``qid Q0 docid rank score tag`` lines.

Reproducibility:

- A passage's embedding depends on the passages that share its batch (the batch pads to its
  longest member, and the float sums in attention and matrix products are blocked by shape). So
  the corpus is cut into fixed blocks of ``block`` passages in file order; each block is encoded
  on its own (length-bucketed inside the block), and shards are whole blocks. A sharded encode
  and an unsharded one therefore run the very same batches and give bit-identical embeddings,
  as long as ``block`` and ``batch_size`` are the same.
- Ties: among equal scores faiss keeps the lowest corpus indices at the k-th place but lists them
  in descending index order; every result row is re-sorted stably by (−score, corpus index), so
  tied passages appear in corpus file order. (trec_eval itself ignores the rank column and
  orders ties by descending docid.)
- Exact (``Flat``) search is deterministic with any number of threads. faiss does not promise a
  bit-identical HNSW graph when it is built with several threads.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from harness.data.format import count_passages, passage_text, read_corpus
from harness.errors import ConfigError, DataError
from harness.grid import PATHS
from harness.io import atomic_path, iter_lines, read_json, write_json

ENCODE_BLOCK = 4096  # passages per encoding block; shard boundaries fall on block boundaries
DTYPES = {"float16": np.float16, "float32": np.float32}
DTYPE = "float32"  # the default storage type of corpus embeddings (the config schema's encode.dtype)
# Passages per BLAS block in faiss' exhaustive search. faiss' default (1024) made 1,000 queries
# over 100k × 384 vectors about 3× slower on 2 cores than 16384 (benchmarks/bench_search.py);
# the block costs 4096 queries × 16384 × 4 bytes = 256 MiB of scratch memory.
BLAS_DATABASE_BLOCK = 16384
_SHARD_NAME = re.compile(r"shard-(\d{3,})-of-(\d{3,})\.npy")


def shard_bounds(n_docs: int, shard: int, num_shards: int, block: int = ENCODE_BLOCK) -> tuple[int, int]:
    """The ``[start, end)`` range of passages that shard ``shard`` of ``num_shards`` encodes.

    The ⌈n_docs / block⌉ blocks are split contiguously, shard s taking blocks
    [⌊s·B/N⌋, ⌊(s+1)·B/N⌋); a shard is empty when there are fewer blocks than shards.
    """
    if num_shards < 1:
        raise ConfigError(f"the number of shards must be at least 1, got {num_shards}", key="num_shards")
    if not 0 <= shard < num_shards:
        raise ConfigError(f"shard must be in [0, {num_shards}), got {shard}", key="shard")
    if block < 1:
        raise ConfigError(f"the encoding block must be at least 1, got {block}", key="block")
    n_blocks = math.ceil(n_docs / block)
    first, last = shard * n_blocks // num_shards, (shard + 1) * n_blocks // num_shards
    return min(n_docs, first * block), min(n_docs, last * block)


def shard_path(out_dir: Path, shard: int, num_shards: int) -> Path:
    """``out_dir/shard-SSS-of-NNN.npy``; its ids are in the same name with ``.ids.json``."""
    return Path(out_dir) / PATHS["shard"].format(shard=shard, shards=num_shards)


def _ids_path(npy: Path) -> Path:
    return npy.with_suffix(".ids.json")


def encode_passages(model: Any, passages: dict[str, dict[str, str]], batch_size: int = 64, dtype: str = DTYPE, *,
                    progress: bool = True, block: int = ENCODE_BLOCK, precision: str = "fp32",
                    desc: str = "encode") -> np.ndarray:
    """Embeddings ``[n, H]`` in ``dtype`` of ``passages`` (dict order), encoded block by block with
    ``model.encode``: the one encoding of a corpus, whether a shard job stores it or an evaluation
    that encodes its corpus itself keeps it in memory (so both give the same bits)."""
    if dtype not in DTYPES:
        raise ConfigError(f"embedding dtype must be one of {sorted(DTYPES)}, got {dtype!r}", key="dtype")
    ids = list(passages)
    emb = np.empty((len(ids), model.dim), dtype=DTYPES[dtype])  # [n, H]
    with tqdm(total=len(ids), desc=desc, unit="passage", disable=not progress) as bar:
        for lo in range(0, len(ids), block):
            hi = min(lo + block, len(ids))
            texts = [passage_text(passages[i]) for i in ids[lo:hi]]
            emb[lo:hi] = model.encode(texts, "passage", batch_size=batch_size, precision=precision)
            bar.update(hi - lo)
    return emb


def encode_corpus_shard(model: Any, corpus: dict[str, dict[str, str]] | Path, out_dir: Path, shard: int = 0,
                        num_shards: int = 1, batch_size: int = 64, dtype: str = DTYPE,
                        progress: bool = True, block: int = ENCODE_BLOCK, precision: str = "fp32") -> None:
    """Encode shard ``shard`` of ``corpus`` (dict order = file order) with ``model.encode``.

    ``corpus`` may be a ``corpus.jsonl`` path, of which only the shard's lines are parsed.

    Writes the embeddings ``[n, H]`` as ``.npy`` in ``dtype`` and, beside them, the passage ids
    with the shard's place in the corpus and the block and batch size (so gathering can check
    that all shards belong together). The ids file is written first and the ``.npy`` last, each
    atomically. ``precision``: fp32 or bf16 (see :meth:`BiEncoder.encode`).
    """
    if isinstance(corpus, Path):
        n_docs = count_passages(corpus)
        start, end = shard_bounds(n_docs, shard, num_shards, block)
        passages = read_corpus(corpus, range(start, end))
    else:
        n_docs = len(corpus)
        start, end = shard_bounds(n_docs, shard, num_shards, block)
        passages = {d: corpus[d] for d in itertools.islice(corpus, start, end)}
    ids = list(passages)
    emb = encode_passages(model, passages, batch_size, dtype, progress=progress, block=block, precision=precision,
                          desc=f"encode shard {shard}/{num_shards}")
    npy = shard_path(out_dir, shard, num_shards)
    write_json(_ids_path(npy), {"ids": ids, "start": start, "n_docs": n_docs,
                                "block": block, "batch_size": batch_size})
    with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
        np.save(fh, emb)


def load_corpus_embeddings(out_dir: Path) -> tuple[list[str], np.ndarray]:
    """Gather every shard in ``out_dir`` in order: (passage ids, embeddings ``[N, H]``).

    Shards are memory-mapped; a single shard is returned as its memory map. Raises
    :class:`DataError` for a missing shard, shards from different runs, or ids and rows that
    do not match.
    """
    out_dir = Path(out_dir)
    found = sorted(p for p in out_dir.glob("shard-*-of-*.npy") if _SHARD_NAME.fullmatch(p.name))
    if not found:
        raise DataError("no embedding shards (shard-SSS-of-NNN.npy)", out_dir)
    counts = {int(_SHARD_NAME.fullmatch(p.name).group(2)) for p in found}
    if len(counts) > 1:
        raise DataError(f"shards of different splits ({sorted(counts)} shards) in one folder", out_dir)
    num_shards = counts.pop()
    ids: list[str] = []
    arrays: list[np.ndarray] = []
    first_meta: dict[str, Any] = {}
    for shard in range(num_shards):
        npy = shard_path(out_dir, shard, num_shards)
        if not npy.exists():
            raise DataError(f"missing embedding shard {shard} of {num_shards}", npy)
        meta = read_json(_ids_path(npy))
        emb = np.load(npy, mmap_mode="r")
        first_meta = first_meta or meta
        for key in ("n_docs", "block", "batch_size"):
            if meta.get(key) != first_meta.get(key):
                raise DataError(f"{key} is {meta.get(key)} here but {first_meta.get(key)} in shard 0",
                                _ids_path(npy), field=key)
        if meta.get("start") != len(ids):
            raise DataError(f"shard starts at passage {meta.get('start')}, expected {len(ids)}",
                            _ids_path(npy), field="start")
        if emb.ndim != 2 or emb.shape[0] != len(meta["ids"]):
            raise DataError(f"{emb.shape} embeddings for {len(meta['ids'])} ids", npy)
        if arrays and emb.shape[1] != arrays[0].shape[1]:
            raise DataError(f"dimension {emb.shape[1]}, shard 0 has {arrays[0].shape[1]}", npy)
        ids.extend(meta["ids"])
        arrays.append(emb)
    if len(ids) != first_meta["n_docs"]:
        raise DataError(f"the shards hold {len(ids)} passages, the corpus has {first_meta['n_docs']}", out_dir)
    return ids, arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


@contextlib.contextmanager
def _blas_database_block(rows: int) -> Iterator[None]:
    """Set faiss' global BLAS database block size for the duration of a search."""
    previous = faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_database_bs = rows
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_database_bs = previous


class FlatIPSearcher:
    """Top-k search by inner product over passage embeddings with a faiss index.

    ``index`` is a faiss ``index_factory`` string built with ``METRIC_INNER_PRODUCT``: ``"Flat"``
    (exact, the default), ``"SQfp16"`` (exact for float16 embeddings at half Flat's memory: the
    values are stored as they are on disk and scored in float32), or an approximate one to save
    memory or time, e.g. ``"HNSW32"`` or ``"IVF4096,Flat"`` (trained on the passages themselves).
    ``params`` sets search-time parameters through ``faiss.ParameterSpace``, e.g.
    ``"efSearch=128"`` or ``"nprobe=64"``. Vectors are added in float32 chunks whatever their
    stored dtype, so a memory-mapped shard is never copied whole. When faiss sees GPUs, Flat and
    IVF indexes are moved there (float32, sharded across GPUs); others stay on the CPU.
    """

    ADD_CHUNK = 65536  # rows converted to float32 at a time while adding

    def __init__(self, doc_emb: np.ndarray, index: str = "Flat", params: str = "") -> None:
        n, dim = doc_emb.shape
        try:
            self.index = faiss.index_factory(dim, index, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"faiss cannot build index {index!r}: {exc}", key="index") from None
        if not self.index.is_trained:
            step = max(1, n // 1_000_000)  # at most ~1M evenly spaced training vectors
            try:
                self.index.train(np.ascontiguousarray(doc_emb[::step], dtype=np.float32))
            except RuntimeError as exc:
                raise ConfigError(f"cannot train index {index!r} on {n} passages: {exc}", key="index") from None
        for lo in range(0, n, self.ADD_CHUNK):
            self.index.add(np.ascontiguousarray(doc_emb[lo:lo + self.ADD_CHUNK], dtype=np.float32))
        on_gpu = faiss.get_num_gpus() > 0 and (index == "Flat" or index.startswith("IVF"))
        if on_gpu:
            options = faiss.GpuMultipleClonerOptions()
            options.useFloat16 = False
            options.shard = True
            self.index = faiss.index_cpu_to_all_gpus(self.index, options)
        if params:
            space = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
            try:
                space.set_index_parameters(self.index, params)
            except RuntimeError as exc:
                raise ConfigError(f"bad search parameters {params!r} for {index!r}: {exc}", key="params") from None

    def search(self, query_emb: np.ndarray, k: int, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[Q, k]`` (float32, descending) and corpus indices ``[Q, k]`` (int64).

        Rows are ordered by (−score, index). Where fewer than k passages exist (or an approximate
        index finds fewer), the tail holds index −1 and score −inf.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}", key="k")
        n_q = query_emb.shape[0]
        scores = np.empty((n_q, k), dtype=np.float32)
        indices = np.empty((n_q, k), dtype=np.int64)
        for lo in range(0, n_q, batch_size):
            q = np.ascontiguousarray(query_emb[lo:lo + batch_size], dtype=np.float32)  # [b, H]
            with _blas_database_block(BLAS_DATABASE_BLOCK):
                s, i = self.index.search(q, k)  # [b, k], [b, k]
            s[i < 0] = -np.inf
            order = np.lexsort((i, -s), axis=-1)  # stable: by −score, then index
            scores[lo:lo + len(q)] = np.take_along_axis(s, order, axis=-1)
            indices[lo:lo + len(q)] = np.take_along_axis(i, order, axis=-1)
        return scores, indices


def pair_scores(query_emb: np.ndarray, doc_emb: np.ndarray, pairs_q: np.ndarray, pairs_d: np.ndarray,
                chunk: int = 65536) -> np.ndarray:
    """s(q_j, d_j) = ⟨query_emb[pairs_q[j]], doc_emb[pairs_d[j]]⟩ in float32, for every pair j."""
    if len(pairs_q) != len(pairs_d):
        raise ValueError(f"{len(pairs_q)} query indices but {len(pairs_d)} passage indices")
    out = np.empty(len(pairs_q), dtype=np.float32)
    for lo in range(0, len(pairs_q), chunk):
        q = np.asarray(query_emb[pairs_q[lo:lo + chunk]], dtype=np.float32)  # [c, H]
        d = np.asarray(doc_emb[pairs_d[lo:lo + chunk]], dtype=np.float32)  # [c, H]
        out[lo:lo + chunk] = np.einsum("ij,ij->i", q, d)
    return out


_TOKEN = re.compile(r"\S+")


def _check_ids(ids: Iterable[str], what: str) -> None:
    for name in ids:
        if not _TOKEN.fullmatch(name):
            raise DataError(f"{what} id {name!r} is empty or contains whitespace; a TREC run cannot hold it")


def drop_identical_ids(query_ids: Sequence[str], doc_row: dict[str, int], indices: np.ndarray,
                       scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove from each query's ranking the passage whose id is the query's own, as BEIR's and
    MTEB's evaluators do with ``ignore_identical_ids`` (ArguAna's and Quora's queries are also
    passages of the corpus): the results below it move up one rank and the freed last slot is -1.
    """
    own = np.array([doc_row.get(q, -2) for q in query_ids], dtype=np.int64)  # [Q]; -2 matches nothing
    keep = indices != own[:, None]  # [Q, k]
    order = np.argsort(~keep, axis=1, kind="stable")  # kept entries first, in rank order
    indices = np.take_along_axis(np.where(keep, indices, -1), order, axis=1)
    scores = np.take_along_axis(np.where(keep, scores, -np.inf).astype(scores.dtype), order, axis=1)
    return indices, scores


def write_trec_run(path: str | Path, query_ids: Sequence[str], doc_ids: Sequence[str], indices: np.ndarray,
                   scores: np.ndarray, tag: str) -> None:
    """Write ``qid Q0 docid rank score tag`` lines, atomically; entries with index −1 are skipped.

    Ranks count from 1 in row order; scores are float32's shortest round-tripping decimal.
    """
    if len(query_ids) != len(indices) or indices.shape != scores.shape:
        raise ValueError(f"{len(query_ids)} queries, indices {indices.shape}, scores {scores.shape}")
    _check_ids([tag], "run tag")
    _check_ids(query_ids, "query")
    _check_ids((doc_ids[d] for d in np.unique(indices[indices >= 0])), "document")
    score_text = np.asarray(scores, dtype=np.float32).astype(str)  # [Q, k]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for qid, row, text in zip(query_ids, indices, score_text):
            keep = row >= 0
            fh.writelines(f"{qid} Q0 {doc_ids[d]} {rank} {s} {tag}\n"
                          for rank, (d, s) in enumerate(zip(row[keep], text[keep]), start=1))


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run into ``{qid: {docid: score}}``.

    Raises :class:`DataError` naming the file, line and field for a line without six columns,
    a non-integer rank, a non-finite or non-numeric score, or a repeated (qid, docid).
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    for lineno, line in iter_lines(path):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 6:
            raise DataError(f"expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}", path, lineno)
        qid, _, docid, rank, score, _ = cols
        try:
            int(rank)
        except ValueError:
            raise DataError(f"rank {rank!r} is not an integer", path, lineno, "rank") from None
        try:
            value = float(score)
        except ValueError:
            raise DataError(f"score {score!r} is not a number", path, lineno, "score") from None
        if not math.isfinite(value):
            raise DataError(f"score {score!r} is not finite", path, lineno, "score")
        if docid in run.setdefault(qid, {}):
            raise DataError(f"document {docid!r} appears twice for query {qid!r}", path, lineno, "docid")
        run[qid][docid] = value
    return run
