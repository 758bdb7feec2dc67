"""The leakage guard: training queries that appear in an evaluation set (same id or same text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.format import (
    TrainGroup,
    read_queries,
    read_train_groups,
    write_corpus,
    write_meta,
    write_qrels,
    write_queries,
    write_train_groups,
)
from harness.data.leakage import guard, normalise
from harness.errors import DataError


def _dataset(root: Path, queries: dict[str, str], train: list[str]) -> Path:
    write_corpus(root / "corpus.jsonl", [("d1", "", "some text"), ("d2", "", "more text")])
    write_queries(root / "queries.jsonl", ((q, text, None) for q, text in queries.items()))
    write_qrels(root / "qrels" / "test.tsv", {q: {"d1": 1} for q in queries if q not in train})
    if train:
        write_train_groups(root / "train.jsonl", [TrainGroup(q, ["d1"], ["d2"]) for q in train])
    write_meta(root, {"name": "fixture"})
    return root


def test_normalise_ignores_case_punctuation_spacing_and_width() -> None:
    assert normalise("  What IS   the capital-of France?? ") == "what is the capital of france"
    assert normalise("ｃａｆé_au lait") == normalise("CAFÉ au-lait")
    assert normalise("capital of france") != normalise("capital of spain")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    train = _dataset(tmp_path / "train", {"t1": "What is the capital of France?", "t2": "boiling point of water",
                                          "t3": "who wrote hamlet", "t4": "speed of light", "x9": "held out"},
                     ["t1", "t2", "t3", "t4"])
    eval_a = _dataset(tmp_path / "eval_a", {"a1": "what is the CAPITAL of france", "t3": "something else"}, [])
    eval_b = _dataset(tmp_path / "eval_b", {"b1": "Boiling point of water!", "b2": "speed of light",
                                            "x9": "unrelated"}, ["b2"])
    return train, eval_a, eval_b


def _guard(train: Path, eval_dirs: list[Path], allow: bool):
    return guard(read_train_groups(train / "train.jsonl"), read_queries(train / "queries.jsonl"), eval_dirs, allow)


def test_leaked_queries_are_counted_and_dropped(dirs: tuple[Path, Path, Path]) -> None:
    train, eval_a, eval_b = dirs
    kept, counts = _guard(train, [eval_a, eval_b], allow=False)
    # t1: same text as a1; t3: same id as an eval query; t2: same text as b1; t4 matches b2, which
    # is a training query of eval_b, not an evaluation query
    assert counts == {"train_queries": 4, "leaked": 3, "by_id": 1, "by_text": 2, "dropped": 3,
                      "per_eval": {"eval_a": 2, "eval_b": 1}}
    assert [g.query_id for g in kept] == ["t4"]


def test_allowed_leakage_is_reported_and_kept(dirs: tuple[Path, Path, Path]) -> None:
    train, eval_a, eval_b = dirs
    kept, counts = _guard(train, [eval_a, eval_b], allow=True)
    assert counts["leaked"] == 3 and counts["dropped"] == 0
    assert [g.query_id for g in kept] == ["t1", "t2", "t3", "t4"]


def test_a_dataset_evaluated_on_its_own_test_split_does_not_leak(dirs: tuple[Path, Path, Path]) -> None:
    train, _, _ = dirs
    assert _guard(train, [train], allow=False)[1]["leaked"] == 0


def test_dropping_every_training_query_is_an_error(tmp_path: Path) -> None:
    train = _dataset(tmp_path / "train", {"t1": "same question"}, ["t1"])
    other = _dataset(tmp_path / "other", {"o1": "Same question."}, [])
    with pytest.raises(DataError, match="every training query"):
        _guard(train, [other], allow=False)
