"""Fuzz every dataset reader: random bytes, random JSON structures and random TSV lines are either
read or rejected with a DataError, never any other exception."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.data import dpr
from harness.data.format import read_corpus, read_qrels, read_queries, read_train_groups
from harness.errors import DataError

READERS: dict[str, Callable[[Path], Any]] = {
    "corpus": read_corpus,
    "queries": read_queries,
    "qrels": lambda p: read_qrels(p, queries={"q": {}}, corpus={"d": {}}),
    "train": read_train_groups,
    "qa": dpr.read_qa,
    "passages": lambda p: list(dpr.read_passages(p)),
    "biencoder": dpr.read_biencoder,
}
FUZZ = settings(max_examples=60, deadline=None, database=None)

KEYS = st.sampled_from(["_id", "title", "text", "answers", "query_id", "positives", "negatives", "grades",
                        "question", "positive_ctxs", "negative_ctxs", "hard_negative_ctxs", "passage_id", "psg_id"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), inner,
                                                                     max_size=5)),
                    max_leaves=12)
CELLS = st.one_of(st.sampled_from(["q", "d", "query-id", "id", "1", "-2", "0.5", "inf", "nan", "1e999", "",
                                   " ", "['a']", '["a", 1]', "[", '"', "x\ry", "\x00", "é"]),
                  st.text(max_size=6))
TSV = st.lists(st.lists(CELLS, max_size=4).map("\t".join), max_size=6).map("\n".join)


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.txt"
        path.write_bytes(data)
        for name, reader in READERS.items():
            try:
                reader(path)
            except DataError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the test
                raise AssertionError(f"reader {name!r} raised {type(exc).__name__}: {exc}") from exc


@FUZZ
@given(st.binary(max_size=200))
@example(b'{"_id": "d\\ud800", "text": "t", "query_id": "q", "positives": ["\\udfff"], "negatives": []}')
@example(b'[{"question": "q\\ud800", "answers": []}]')
def test_random_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(st.lists(JSON, min_size=1, max_size=4))
def test_random_json_lines(values: list[Any]) -> None:
    _check("\n".join(json.dumps(v) for v in values).encode())


@FUZZ
@given(JSON)
def test_random_json_document(value: Any) -> None:
    _check(json.dumps(value, indent=1).encode())


@FUZZ
@given(TSV)
@example("q\td\tinf")
@example("q\td\t1e999")
def test_random_tsv(text: str) -> None:
    _check(text.encode("utf-8", "surrogatepass"))
