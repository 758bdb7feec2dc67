"""The generated quickstart collection: deterministic, well-formed, with graded multi-positive qrels."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.format import read_corpus, read_qrels, read_queries, read_train_groups, splits
from harness.data.prepare import prepare
from harness.errors import ConfigError

SMALL = {"docs": 600, "train_queries": 60, "dev_queries": 10, "test_queries": 20}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    prepare("generated", tmp_path / "a", seed=5, **SMALL)
    prepare("generated", tmp_path / "b", seed=5, **SMALL)
    prepare("generated", tmp_path / "c", seed=6, **SMALL)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a["corpus.jsonl"] != c["corpus.jsonl"]


def test_default_collection_has_the_promised_shape(tmp_path: Path) -> None:
    meta = prepare("generated", tmp_path / "gen")
    root = tmp_path / "gen"
    corpus = read_corpus(root / "corpus.jsonl")
    queries = read_queries(root / "queries.jsonl")
    assert splits(root) == ["dev", "test", "train"]
    assert meta["counts"]["docs"] == len(corpus) == 3000
    assert max(len(d["text"].split()) for d in corpus.values()) <= 50
    sizes = {}
    for split in ("train", "dev", "test"):
        qrels = read_qrels(root / "qrels" / f"{split}.tsv", queries, corpus)
        assert qrels.unknown_docs == 0
        sizes[split] = len(qrels.qrels)
        grades = {g for docs in qrels.qrels.values() for g in docs.values()}
        assert grades == {1, 2, 3}
        assert any(sum(g >= 2 for g in docs.values()) >= 2 for docs in qrels.qrels.values())
    assert sizes == {"train": 600, "dev": 100, "test": 200}
    assert len(queries) == 900
    train = read_qrels(root / "qrels" / "train.tsv").qrels
    groups = read_train_groups(root / "train.jsonl")
    assert [g.query_id for g in groups] == list(train)
    for group in groups:
        judged = train[group.query_id]
        assert len(group.negatives) == 7 and len(set(group.negatives)) == 7
        assert not set(group.negatives) & set(judged)
        assert group.positives == [d for d, g in judged.items() if g >= 2]
        assert all(group.grade(d) == judged[d] for d in group.positives)
        positive_words = {w for d in group.positives for w in corpus[d]["text"].lower().split()}
        assert sum(bool(positive_words & set(corpus[d]["text"].lower().split()))
                   for d in group.negatives) == len(group.negatives)


def test_eval_queries_ask_about_entities_unseen_in_training(tmp_path: Path) -> None:
    prepare("generated", tmp_path / "gen", **SMALL)
    corpus = read_corpus(tmp_path / "gen" / "corpus.jsonl")

    def titles(split: str) -> set[str]:
        qrels = read_qrels(tmp_path / "gen" / "qrels" / f"{split}.tsv").qrels
        return {corpus[d]["title"] for docs in qrels.values() for d, g in docs.items() if g == 3}

    assert not titles("train") & titles("test")
    assert not titles("train") & titles("dev")


@pytest.mark.parametrize("docs", [30, 47])
def test_tiny_collections_still_have_every_split(tmp_path: Path, docs: int) -> None:
    meta = prepare("generated", tmp_path / "gen", docs=docs, train_queries=20, dev_queries=5, test_queries=5)
    assert all(meta["counts"][f"qrels/{split}"] > 0 for split in ("train", "dev", "test"))
    assert meta["counts"]["docs"] == docs


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="documents"):
        prepare("generated", tmp_path / "gen", documents=10)
    assert not (tmp_path / "gen").exists()
    with pytest.raises(ConfigError, match="source"):
        prepare("nope", tmp_path / "gen")
    with pytest.raises(ConfigError) as err:
        prepare("generated", tmp_path / "gen", docs=20)
    assert err.value.key == "docs"
    with pytest.raises(ConfigError, match="expected int, got str") as err:
        prepare("generated", tmp_path / "gen", seed="13")
    assert err.value.key == "seed"
    with pytest.raises(ConfigError, match="expected int, got bool"):
        prepare("generated", tmp_path / "gen", hard_negatives=True)
    assert not (tmp_path / "gen").exists()
