"""Encode → search → TREC run: exactness, sharding, ties, storage and the run format."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from harness.data.format import count_passages, passage_text, read_corpus  # noqa: E402
from harness.errors import ConfigError, DataError  # noqa: E402
from harness.models.registry import load_model  # noqa: E402
from harness.retrieval import (  # noqa: E402
    FlatIPSearcher,
    encode_corpus_shard,
    load_corpus_embeddings,
    pair_scores,
    read_trec_run,
    shard_bounds,
    shard_path,
    write_trec_run,
)

WORDS = "wing flow boundary layer shock heat transfer pressure supersonic plate cone drag lift".split()


def brute_force_top_k(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k per query by a plain loop: sort all docs by (−⟨q, d⟩, index) in float64."""
    out_i, out_s = [], []
    for q in queries.astype(np.float64):
        scores = [float(np.dot(q, d)) for d in docs.astype(np.float64)]
        ranked = sorted(range(len(docs)), key=lambda j: (-scores[j], j))[:k]
        out_i.append(ranked)
        out_s.append([scores[j] for j in ranked])
    return np.array(out_s), np.array(out_i)


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict[str, str]]:
    rng = np.random.default_rng(7)
    docs = {}
    for i in range(60):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 60))))
        docs[f"d{i}"] = {"title": "" if i % 4 == 0 else f"title {i}", "text": text}
    return docs


# --- search -----------------------------------------------------------------------------------

def test_flat_search_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    docs, queries = random_unit(rng, 400, 24), random_unit(rng, 25, 24)
    scores, indices = FlatIPSearcher(docs).search(queries, k=10, batch_size=7)
    ref_s, ref_i = brute_force_top_k(queries, docs, 10)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=0, atol=1e-5)


def test_search_is_the_same_for_any_query_batch_and_from_float16() -> None:
    rng = np.random.default_rng(1)
    docs, queries = random_unit(rng, 300, 16), random_unit(rng, 40, 16)
    s1, i1 = FlatIPSearcher(docs).search(queries, k=20, batch_size=4096)
    s2, i2 = FlatIPSearcher(docs.astype(np.float16)).search(queries, k=20, batch_size=3)
    ref_s, ref_i = brute_force_top_k(queries, docs.astype(np.float16).astype(np.float32), 20)
    np.testing.assert_array_equal(i2, ref_i)
    np.testing.assert_allclose(s2, ref_s, atol=1e-5)
    assert (i1 == i2).mean() > 0.9 and np.abs(s1 - s2).max() < 2e-3


def test_k_larger_than_corpus_pads_with_minus_one() -> None:
    rng = np.random.default_rng(2)
    docs, queries = random_unit(rng, 7, 8), random_unit(rng, 3, 8)
    scores, indices = FlatIPSearcher(docs).search(queries, k=10)
    ref_s, ref_i = brute_force_top_k(queries, docs, 7)
    np.testing.assert_array_equal(indices[:, :7], ref_i)
    np.testing.assert_allclose(scores[:, :7], ref_s, atol=1e-5)
    assert (indices[:, 7:] == -1).all() and np.isneginf(scores[:, 7:]).all()


@pytest.mark.parametrize("k", [5, 150])  # faiss selects with a heap below k=100, a reservoir above
def test_ties_keep_the_lowest_indices_in_corpus_order(k: int) -> None:
    rng = np.random.default_rng(3)
    base = random_unit(rng, 20, 8)
    docs = np.concatenate([base[1:], np.repeat(base[:1], 200, axis=0)])
    rng.shuffle(docs)
    copies = np.flatnonzero((docs == base[0]).all(axis=1))
    scores, indices = FlatIPSearcher(docs).search(base[:1], k=k)
    np.testing.assert_array_equal(indices[0], copies[:k])
    assert len(set(scores[0].tolist())) == 1


def test_hnsw_recall_against_exact() -> None:
    rng = np.random.default_rng(4)
    docs, queries = random_unit(rng, 3000, 16), random_unit(rng, 100, 16)
    _, exact = FlatIPSearcher(docs).search(queries, k=10)
    _, approx = FlatIPSearcher(docs, index="HNSW32", params="efSearch=64").search(queries, k=10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9


def test_ivf_probing_every_list_is_exact() -> None:
    rng = np.random.default_rng(5)
    docs, queries = random_unit(rng, 2000, 16), random_unit(rng, 30, 16)
    _, exact = FlatIPSearcher(docs).search(queries, k=10)
    _, ivf = FlatIPSearcher(docs, index="IVF16,Flat", params="nprobe=16").search(queries, k=10)
    np.testing.assert_array_equal(ivf, exact)


def test_sqfp16_is_exact_for_float16_embeddings(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    docs = random_unit(rng, 3000, 32).astype(np.float16)
    np.save(tmp_path / "docs.npy", docs)
    stored = np.load(tmp_path / "docs.npy", mmap_mode="r")  # as evaluate reads a shard
    queries = random_unit(rng, 50, 32)
    flat_scores, flat = FlatIPSearcher(docs.astype(np.float32)).search(queries, k=100)
    sq_scores, sq = FlatIPSearcher(stored, index="SQfp16").search(queries, k=100)
    np.testing.assert_array_equal(sq, flat)
    np.testing.assert_allclose(sq_scores, flat_scores, rtol=0, atol=1e-6)


def test_bad_index_or_parameters_name_the_key() -> None:
    docs = random_unit(np.random.default_rng(6), 50, 8)
    with pytest.raises(ConfigError, match="'index'"):
        FlatIPSearcher(docs, index="NoSuchIndex")
    with pytest.raises(ConfigError, match="'params'"):
        FlatIPSearcher(docs, index="HNSW32", params="nprobe=4")


def test_pair_scores_are_inner_products() -> None:
    rng = np.random.default_rng(8)
    queries, docs = rng.standard_normal((5, 6)), rng.standard_normal((9, 6)).astype(np.float16)
    pq, pd = np.array([0, 4, 4, 2]), np.array([8, 0, 3, 3])
    expected = [sum(float(queries[q, j]) * float(docs[d, j]) for j in range(6)) for q, d in zip(pq, pd)]
    got = pair_scores(queries, docs, pq, pd, chunk=3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- encoding and shards ----------------------------------------------------------------------

def test_passage_text_follows_beir() -> None:
    assert passage_text({"title": "Wings", "text": "lift and drag"}) == "Wings lift and drag"
    assert passage_text({"title": "", "text": " lift "}) == "lift"
    assert passage_text({"text": "lift"}) == "lift"
    assert passage_text({"title": " Wings ", "text": "lift "}) == "Wings  lift"


def test_shard_bounds_split_whole_blocks_contiguously() -> None:
    for n, shards, block in [(60, 3, 8), (1000, 7, 64), (5, 4, 4), (0, 2, 8)]:
        bounds = [shard_bounds(n, s, shards, block) for s in range(shards)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(lo % block == 0 and lo <= hi for lo, hi in bounds)
    assert [shard_bounds(60, s, 3, 8) for s in range(3)] == [(0, 16), (16, 40), (40, 60)]
    with pytest.raises(ConfigError, match="'shard'"):
        shard_bounds(10, 3, 3)


def _run_file(model, corpus, emb_dir: Path, run_path: Path, shards: int,
              dtype: str) -> tuple[list[str], np.ndarray]:
    """Encode in ``shards`` shards (blocks of 8, batches of 4), gather, search and write a run."""
    for s in range(shards):
        encode_corpus_shard(model, corpus, emb_dir, s, shards, batch_size=4, dtype=dtype, block=8,
                            progress=False)
    ids, emb = load_corpus_embeddings(emb_dir)
    queries = {"q1": "wing lift", "q2": "shock boundary layer heat", "q3": "drag"}
    q_emb = model.encode(list(queries.values()), "query")
    scores, indices = FlatIPSearcher(emb).search(q_emb, k=12)
    write_trec_run(run_path, list(queries), ids, indices, scores, tag="tiny")
    return ids, np.asarray(emb)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_sharded_encode_gives_the_same_embeddings_and_run(tiny, corpus, tmp_path: Path, dtype: str) -> None:
    ids1, emb1 = _run_file(tiny, corpus, tmp_path / "one", tmp_path / "one.run", 1, dtype)
    ids3, emb3 = _run_file(tiny, corpus, tmp_path / "three", tmp_path / "three.run", 3, dtype)
    assert sorted(p.name for p in (tmp_path / "three").iterdir()) == [
        f"shard-00{s}-of-003.{ext}" for s in range(3) for ext in ("ids.json", "npy")]
    assert ids1 == ids3 == list(corpus)
    assert emb1.dtype == emb3.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(emb1, emb3)  # bit-identical, float32 included
    assert (tmp_path / "one.run").read_bytes() == (tmp_path / "three.run").read_bytes()


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_an_evaluation_that_encodes_its_corpus_equals_encode_then_evaluate(tiny_dataset: Path, tmp_path: Path,
                                                                           dtype: str) -> None:
    """The grid lets one evaluate job encode a corpus that nothing else searches (Grid.search_shards): its
    run and per-query metrics must be the bytes the encode job + evaluate job pair writes."""
    from harness import cli

    common = ["--model", "tiny", "--dataset", str(tiny_dataset), "--split", "test", "--batch-size", "4"]
    assert cli.main(["encode", "--model", "tiny", "--dataset", str(tiny_dataset), "--batch-size", "4",
                     "--dtype", dtype, "--out", str(tmp_path / "emb")]) == 0
    assert cli.main(["evaluate", *common, "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "apart")]) == 0
    assert cli.main(["evaluate", *common, "--dtype", dtype, "--out", str(tmp_path / "inline")]) == 0
    for name in ("run.trec", "per_query.jsonl"):
        assert (tmp_path / "inline" / name).read_bytes() == (tmp_path / "apart" / name).read_bytes()
    if dtype == "float16":  # the stored type matters, so the evaluation is told it
        assert cli.main(["evaluate", *common, "--out", str(tmp_path / "f32")]) == 0
        assert (tmp_path / "f32" / "run.trec").read_bytes() != (tmp_path / "apart" / "run.trec").read_bytes()


def test_float16_storage_is_close_to_float32(tiny, corpus, tmp_path: Path) -> None:
    texts = [passage_text(d) for d in corpus.values()]
    direct = tiny.encode(texts, "passage", batch_size=4)
    encode_corpus_shard(tiny, corpus, tmp_path / "f32", batch_size=4, progress=False)
    encode_corpus_shard(tiny, corpus, tmp_path / "f16", batch_size=4, dtype="float16", progress=False)
    _, f32 = load_corpus_embeddings(tmp_path / "f32")
    _, f16 = load_corpus_embeddings(tmp_path / "f16")
    assert isinstance(f32, np.memmap) and f32.dtype == np.float32
    np.testing.assert_array_equal(f32, direct)  # one block: the same batches as a direct encode
    np.testing.assert_allclose(f16.astype(np.float32), direct, rtol=1e-3, atol=1e-4)
    assert not np.array_equal(f16.astype(np.float32), direct)


def test_missing_or_mismatched_shards_are_reported(tiny, corpus, tmp_path: Path) -> None:
    for s in (0, 2):
        encode_corpus_shard(tiny, corpus, tmp_path, s, 3, batch_size=4, block=8, progress=False)
    with pytest.raises(DataError, match="missing embedding shard 1 of 3") as err:
        load_corpus_embeddings(tmp_path)
    assert str(shard_path(tmp_path, 1, 3)) in str(err.value)
    encode_corpus_shard(tiny, corpus, tmp_path, 1, 3, batch_size=8, block=8, progress=False)
    with pytest.raises(DataError, match="batch_size"):
        load_corpus_embeddings(tmp_path)
    with pytest.raises(DataError, match="no embedding shards"):
        load_corpus_embeddings(tmp_path / "empty")


# --- TREC runs --------------------------------------------------------------------------------

def test_run_round_trip_columns_and_ranks(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    scores = rng.standard_normal((3, 5)).astype(np.float32) * np.float32(1e3)
    scores[1, 2] = np.float32(1 / 3)
    indices = np.argsort(-scores, axis=1)
    indices[2, 3:] = -1
    doc_ids, query_ids = [f"doc{i}" for i in range(5)], ["q0", "q1", "q2"]
    path = tmp_path / "run.trec"
    write_trec_run(path, query_ids, doc_ids, indices, scores, tag="dense")
    lines = [line.split(" ") for line in path.read_text().splitlines()]
    assert all(len(cols) == 6 and cols[1] == "Q0" and cols[5] == "dense" for cols in lines)
    ranks = {q: [int(c[3]) for c in lines if c[0] == q] for q in query_ids}
    assert ranks == {"q0": [1, 2, 3, 4, 5], "q1": [1, 2, 3, 4, 5], "q2": [1, 2, 3]}
    run = read_trec_run(path)
    for qi, q in enumerate(query_ids):
        expected = {doc_ids[d]: s for d, s in zip(indices[qi], scores[qi]) if d >= 0}
        assert {d: np.float32(s) for d, s in run[q].items()} == expected  # float32 survives the text


def test_run_rejects_ids_a_run_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'doc 1'"):
        write_trec_run(tmp_path / "r", ["q"], ["doc 1"], np.array([[0]]), np.array([[1.0]]), tag="t")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("line, field", [
    ("q1 Q0 d1 1 0.5", None),
    ("q1 Q0 d1 one 0.5 t", "rank"),
    ("q1 Q0 d1 1 high t", "score"),
    ("q1 Q0 d1 1 nan t", "score"),
    ("q1 Q0 d0 2 0.4 t", "docid"),
])
def test_bad_run_lines_name_file_line_and_field(tmp_path: Path, line: str, field: str | None) -> None:
    path = tmp_path / "bad.run"
    path.write_text(f"q1 Q0 d0 1 0.9 t\n\n{line}\n")
    with pytest.raises(DataError) as err:
        read_trec_run(path)
    assert err.value.line == 3 and err.value.field == field and str(path) in str(err.value)


def test_a_shard_encoded_from_the_file_equals_one_from_the_dict(tiny, corpus, tmp_path: Path) -> None:
    corpus_file = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"_id": d, **doc}) for d, doc in corpus.items()]
    corpus_file.write_text("\n\n".join(lines) + "\n")  # blank lines are not passages
    assert count_passages(corpus_file) == len(corpus)
    assert read_corpus(corpus_file, range(8, 16)) == {d: corpus[d] for d in list(corpus)[8:16]}
    for s in range(3):
        encode_corpus_shard(tiny, corpus, tmp_path / "dict", s, 3, batch_size=4, block=8, progress=False)
        encode_corpus_shard(tiny, corpus_file, tmp_path / "file", s, 3, batch_size=4, block=8, progress=False)
    for name in sorted(p.name for p in (tmp_path / "dict").iterdir()):
        assert (tmp_path / "file" / name).read_bytes() == (tmp_path / "dict" / name).read_bytes()
