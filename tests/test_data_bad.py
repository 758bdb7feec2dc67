"""Bad input to ``prepare``: one clear DataError naming file, line and field, and nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ir_datasets
import pytest

from harness.data import dpr
from harness.data.format import read_qrels, write_corpus
from harness.data.prepare import prepare
from harness.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def _raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "beir", raw)
    return raw


def _replace_line(path: Path, lineno: int, content: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[lineno - 1] = content + b"\n"
    path.write_bytes(b"".join(lines))


# (file, line to replace, new content, expected line, field, message fragment)
CASES = {
    "malformed JSONL": ("corpus.jsonl", 3, b'{"_id": "d3", "text": "unterminated', 3, None, "invalid JSON"),
    "not an object": ("queries.jsonl", 2, b'["q2", "who discovered penicillin"]', 2, None, "JSON object"),
    "duplicate doc id": ("corpus.jsonl", 4, b'{"_id": "d1", "text": "again"}', 4, "_id", "duplicate document id"),
    "duplicate query id": ("queries.jsonl", 3, b'{"_id": "q1", "text": "again"}', 3, "_id", "duplicate query id"),
    "empty query text": ("queries.jsonl", 2, b'{"_id": "q2", "text": "  "}', 2, "text", "empty text"),
    "missing query text": ("queries.jsonl", 2, b'{"_id": "q2"}', 2, "text", "missing field"),
    "non-UTF-8 byte": ("corpus.jsonl", 2, b'{"_id": "d2", "text": "caf\xe9"}', 2, None, "UTF-8"),
    "qrels missing column": ("qrels/test.tsv", 3, b"q1\td5", 3, "score", "3 tab-separated columns"),
    "qrels missing doc id": ("qrels/test.tsv", 3, b"q1\t\t1", 3, "corpus-id", "empty value"),
    "qrels bad score": ("qrels/test.tsv", 3, b"q1\td5\thigh", 3, "score", "not a number"),
    "qrels query without text": ("qrels/test.tsv", 3, b"q7\td5\t1", 3, "query-id", "no text"),
    "qrels non-UTF-8": ("qrels/test.tsv", 4, b"q2\td3\xff\t1", 4, None, "UTF-8"),
    "qrels infinite score": ("qrels/test.tsv", 4, b"q2\td3\tinf", 4, "score", "not a number"),
    "qrels fractional grade": ("qrels/test.tsv", 3, b"q1\td5\t0.9", 3, "score", "not an integer grade"),
    "qrels absurd grade": ("qrels/test.tsv", 3, b"q1\td5\t1e300", 3, "score", "outside the grades"),
    "qrels two grades for one pair": ("qrels/test.tsv", 4, b"q1\td1\t1", 4, "score", "judged 2 on line 2 and 1 here"),
    "qrels neither BEIR nor TREC": ("qrels/test.tsv", 1, b"q1 d1", 1, None, "neither BEIR qrels"),
    "doc id with whitespace": ("corpus.jsonl", 3, b'{"_id": "d 3", "text": "x"}', 3, "_id", "contains whitespace"),
    "query id with whitespace": ("queries.jsonl", 2, b'{"_id": "q\\t2", "text": "x"}', 2, "_id", "contains whitespace"),
    "lone surrogate": ("corpus.jsonl", 2, b'{"_id": "d2", "text": "half a pair \\ud83d"}', 2, "text", "lone surrogate"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_beir_folder_gives_one_clear_error(tmp_path: Path, case: str) -> None:
    name, lineno, content, line, field, fragment = CASES[case]
    raw = _raw(tmp_path)
    _replace_line(raw / name, lineno, content)
    with pytest.raises(DataError, match=fragment) as err:
        prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert (Path(err.value.path), err.value.line, err.value.field) == (raw / name, line, field)
    assert str(raw / name) in str(err.value) and f"line {line}" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_empty_corpus(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    (raw / "corpus.jsonl").write_text("\n")
    with pytest.raises(DataError, match="corpus is empty") as err:
        prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert Path(err.value.path) == raw / "corpus.jsonl"
    assert not (tmp_path / "out").exists()


def test_unknown_doc_in_qrels_is_a_counted_warning(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    with open(raw / "qrels" / "test.tsv", "a") as fh:
        fh.write("q2\tnowhere\t1\nq3\tnowhere\t1\n")
    meta = prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert meta["warnings"] == {"qrels/test: documents not in the corpus": 3}
    assert meta["counts"]["qrels/test"] == 7


@pytest.mark.parametrize("ending", [b"\r", b"\r\n"])
def test_every_line_ending_reads_the_same_qrels(tmp_path: Path, ending: bytes) -> None:
    raw = _raw(tmp_path)
    qrels = raw / "qrels" / "test.tsv"
    qrels.write_bytes(qrels.read_bytes().replace(b"\n", ending))
    assert read_qrels(qrels).qrels == read_qrels(FIXTURES / "beir" / "qrels" / "test.tsv").qrels
    assert prepare("beir-dir", tmp_path / "out", path=str(raw))["counts"]["qrels/test"] == 5


def test_trec_qrels_are_read_by_their_own_columns(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    beir = raw / "qrels" / "test.tsv"
    lines = beir.read_text().splitlines()[1:]
    beir.write_text("".join(f"{q}\t0\t{d}\t{g}\n" if i % 2 else f"{q} Q0 {d} {g}\n"
                            for i, (q, d, g) in enumerate(line.split("\t") for line in lines)))
    assert read_qrels(beir).qrels == {"q1": {"d1": 2, "d5": 1}, "q2": {"d3": 1}, "q3": {"d4": 1, "d99": 1}}


def test_a_repeated_judgement_is_kept_once_and_counted(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    with open(raw / "qrels" / "test.tsv", "a") as fh:
        fh.write("q1\td1\t2\n")
    meta = prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert meta["warnings"]["qrels/test: judgements repeated (kept once)"] == 1
    assert meta["counts"]["qrels/test"] == 5


DPR_CASES = {
    "passage with two columns": ("psgs_w100.tsv", 3, b"2\tBerlin is the capital of Germany.", 3, "title"),
    "passage duplicate id": ("psgs_w100.tsv", 4, b"1\tMadrid.\tMadrid", 4, "id"),
    "passage non-UTF-8": ("psgs_w100.tsv", 5, b"4\tLyon \xc3(\tLyon", 5, None),
    "qa answers not a list": ("test.qa.csv", 2, b"capital of italy\tRome", 2, "answers"),
    "qa answers not strings": ("test.qa.csv", 1, b"capital of spain\t[1, 2]", 1, "answers"),
    "qa answers are code": ("test.qa.csv", 1, b"capital of spain\t__import__('os').getcwd()", 1, "answers"),
    "qa empty question": ("test.qa.csv", 1, b" \t['Madrid']", 1, "question"),
}


@pytest.mark.parametrize("case", list(DPR_CASES))
def test_bad_dpr_files_give_one_clear_error(tmp_path: Path, case: str) -> None:
    name, lineno, content, line, field = DPR_CASES[case]
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "dpr", raw)
    _replace_line(raw / name, lineno, content)
    with pytest.raises(DataError) as err:
        prepare("dpr-qa", tmp_path / "out", corpus=str(raw / "psgs_w100.tsv"),
                qa_splits={"test": str(raw / "test.qa.csv")})
    assert (Path(err.value.path), err.value.line, err.value.field) == (raw / name, line, field)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


@pytest.mark.parametrize(("text", "field"), [
    ('[{"answers": ["Paris"], "positive_ctxs": []}]', "[0].question"),
    ('[{"question": "q", "positive_ctxs": [{"title": "Paris"}]}]', "[0].positive_ctxs[0]"),
    ('[{"question": "q", "answers": "Paris"}]', "[0].answers"),
    ('[{"question": "q"}, 3]', "[1]"),
])
def test_bad_dpr_json_names_the_record_and_field(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "train.json").write_text(text)
    with pytest.raises(DataError) as err:
        dpr.read_biencoder(tmp_path / "train.json")
    assert err.value.field == field


LYON = "Lyon is a city in France known for its cuisine."
# (records added to train.json, dev.json (read first: splits go in name order), file, field, message)
CONTEXT_CONFLICTS = {
    "text in one file": ([{"question": "q", "positive_ctxs": [{"passage_id": "4", "title": "Lyon", "text": "Lyon."}]}],
                         None, "train", "[3].positive_ctxs[0].text", "passage '4' has another text"),
    "title in one file": ([{"question": "q", "negative_ctxs": [{"passage_id": 4, "title": "Lyons", "text": LYON}]}],
                          None, "train", "[3].negative_ctxs[0].title", "passage '4' has another title"),
    "text across files": ([], [{"question": "q", "negative_ctxs": [{"psg_id": 2, "title": "Berlin", "text": "B"}]}],
                          "train", "[1].positive_ctxs[0].text", "passage '2' has another text"),
}


@pytest.mark.parametrize("case", list(CONTEXT_CONFLICTS))
def test_dpr_contexts_corpus_rejects_two_versions_of_a_passage(tmp_path: Path, case: str) -> None:
    added, dev, name, field, fragment = CONTEXT_CONFLICTS[case]
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "dpr", raw)
    splits = {"train": json.loads((raw / "biencoder-train.json").read_text()) + added, "dev": dev}
    for split, records in splits.items():
        if records is not None:
            (raw / f"{split}.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=fragment) as err:
        prepare("dpr-qa", tmp_path / "out", corpus="contexts",
                json_splits={split: str(raw / f"{split}.json") for split, records in splits.items() if records})
    assert (Path(err.value.path), err.value.line, err.value.field) == (raw / f"{name}.json", None, field)
    assert str(raw / f"{name}.json") in str(err.value) and field in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_a_written_id_with_whitespace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"corpus\.jsonl, line 2, field '_id': id 'd 2' contains whitespace"):
        write_corpus(tmp_path / "corpus.jsonl", [("d1", "", "one"), ("d 2", "", "two")])
    assert list(tmp_path.iterdir()) == []


def test_irds_empty_query_text(tmp_path: Path) -> None:
    (tmp_path / "queries.tsv").write_text("t1\tlongest river\nt2\t \n")
    name = "lossboard-fixture/empty-query"
    if name not in ir_datasets.registry:
        ir_datasets.registry.register(name, ir_datasets.create_dataset(
            docs_tsv=str(FIXTURES / "irds" / "docs.tsv"), queries_tsv=str(tmp_path / "queries.tsv")))
    with pytest.raises(DataError) as err:
        prepare("irds", tmp_path / "out", id=name, splits={"test": name})
    assert (err.value.path, err.value.line, err.value.field) == (f"ir_datasets:{name}", 2, "text")


def test_deeply_nested_json_line(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    _replace_line(raw / "queries.jsonl", 2, b"[" * 100_000)
    with pytest.raises(DataError) as err:
        prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert (err.value.line, err.value.field) == (2, None)


def test_ready_train_groups_must_name_known_queries_and_documents(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    (raw / "train.jsonl").write_text('{"query_id": "q4", "positives": ["6"], "negatives": ["d2"]}\n')
    meta = prepare("beir-dir", tmp_path / "ok", path=str(raw))
    assert meta["counts"]["train_groups"] == 1
    (raw / "train.jsonl").write_text('{"query_id": "q4", "positives": ["6"], "negatives": ["gone"]}\n')
    with pytest.raises(DataError, match="'gone' is not in the corpus") as err:
        prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert (Path(err.value.path), err.value.field) == (raw / "train.jsonl", "negatives")
    (raw / "train.jsonl").write_text('{"query_id": "q9", "positives": ["6"], "negatives": []}\n')
    with pytest.raises(DataError, match="no text") as err:
        prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert err.value.field == "query_id"


def test_real_qrels_read_the_same_in_trec_format_with_old_mac_endings(tmp_path: Path) -> None:
    beir = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cranfield" / "qrels" / "test.tsv"
    if not beir.exists():
        pytest.skip("Cranfield is not in ../shared/data")
    rows = [line.split("\t") for line in beir.read_text().splitlines()[1:]]
    trec = tmp_path / "test.qrels"
    trec.write_bytes("".join(f"{q} 0 {d} {g}\r" for q, d, g in rows).encode())
    expected: dict[str, dict[str, int]] = {}
    for q, d, g in rows:
        expected.setdefault(q, {})[d] = int(g)
    assert read_qrels(trec).qrels == read_qrels(beir).qrels == expected
    assert sum(map(len, expected.values())) == len(rows) > 1000
