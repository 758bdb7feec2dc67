"""The on-disk dataset format (BEIR's, extended), read strictly and written atomically.

A prepared dataset folder holds:

- ``corpus.jsonl``: ``{"_id", "title", "text"}`` per line;
- ``queries.jsonl``: ``{"_id", "text", "answers"?}`` per line (``answers``: a list of strings);
- ``qrels/<split>.tsv``: ``query-id<TAB>corpus-id<TAB>score`` with a header line;
- ``train.jsonl`` (training sets only): ``{"query_id", "positives": [ids], "negatives": [ids],
  "grades"?: {id: int}}`` per line; a positive's grade defaults to 1;
- ``meta.json``: source, counts, warnings and the sha256 of each file.

Readers raise :class:`~harness.errors.DataError` naming the file, line and field; ids may not hold
whitespace (a TREC file could not be split back into columns). Where trec_eval would carry on (a
qrels line naming a document that is not in the corpus, the same judgement repeated) the reader
counts a warning instead of failing; a (query, document) judged twice with two grades is an error.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.io import atomic_path, iter_jsonl, iter_lines, parse_json_object, read_json, write_json, write_jsonl

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]


@dataclass
class TrainGroup:
    """One training query with its positives (graded) and hard negatives."""

    query_id: str
    positives: list[str]
    negatives: list[str]
    grades: dict[str, int] = field(default_factory=dict)

    def grade(self, doc_id: str) -> int:
        return self.grades.get(doc_id, 1)


def check_unicode(value: str, path: Path, lineno: int | None, name: str) -> None:
    """Reject a string that cannot be written back as UTF-8 (a lone surrogate from a JSON escape)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError("not valid Unicode (a lone surrogate)", path, lineno, name) from None


def passage_text(doc: dict[str, str]) -> str:
    """The text a passage is encoded from: ``title + " " + text``, stripped (BEIR's convention).

    An empty or missing title leaves just the stripped text.
    """
    return (doc.get("title", "") + " " + doc["text"]).strip()


def _str_field(obj: dict[str, Any], name: str, path: Path, lineno: int, *, required: bool = True,
               allow_empty: bool = True) -> str:
    if name not in obj:
        if required:
            raise DataError("missing field", path, lineno, name)
        return ""
    value = obj[name]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name.endswith("id"):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", path, lineno, name)
    if not allow_empty and not value.strip():
        raise DataError("empty text", path, lineno, name)
    check_unicode(value, path, lineno, name)
    if name.endswith("id"):
        check_id(value, path, lineno, name)
    return value


def check_id(value: str, path: Path, lineno: int | None, name: str) -> None:
    """Reject an id holding whitespace: a TREC run or qrels line could not be split back into columns."""
    if any(ch.isspace() for ch in value):
        raise DataError(f"id {value!r} contains whitespace", path, lineno, name)


def read_corpus(path: str | Path, rows: Container[int] | None = None) -> dict[str, dict[str, str]]:
    """Read ``corpus.jsonl`` into ``{doc_id: {"title", "text"}}``; duplicate ids are an error.

    ``rows``: keep only the passages at these positions (0-based, file order, blank lines not
    counted), parsing no other line: how one embedding shard, or the passages a search
    retrieved, are read from a 21M-passage corpus without holding all of it.
    """
    path = Path(path)
    corpus: dict[str, dict[str, str]] = {}
    row = -1
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        row += 1
        if rows is not None and row not in rows:
            continue
        obj = parse_json_object(line, path, lineno)
        doc_id = _str_field(obj, "_id", path, lineno, allow_empty=False)
        if doc_id in corpus:
            raise DataError(f"duplicate document id {doc_id!r}", path, lineno, "_id")
        corpus[doc_id] = {
            "title": _str_field(obj, "title", path, lineno, required=False),
            "text": _str_field(obj, "text", path, lineno),
        }
    if row < 0:
        raise DataError("the corpus is empty", path)
    return corpus


def count_passages(path: str | Path) -> int:
    """The number of passages in ``corpus.jsonl`` (its non-blank lines), without parsing them."""
    return sum(1 for _, line in iter_lines(path) if line.strip())


def read_queries(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``queries.jsonl`` into ``{query_id: {"text", "answers"?}}``.

    A duplicate id or an empty query text is an error.
    """
    path = Path(path)
    queries: dict[str, dict[str, Any]] = {}
    for lineno, obj in iter_jsonl(path):
        qid = _str_field(obj, "_id", path, lineno, allow_empty=False)
        if qid in queries:
            raise DataError(f"duplicate query id {qid!r}", path, lineno, "_id")
        record: dict[str, Any] = {"text": _str_field(obj, "text", path, lineno, allow_empty=False)}
        if "answers" in obj:
            answers = obj["answers"]
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise DataError("expected a list of strings", path, lineno, "answers")
            for answer in answers:
                check_unicode(answer, path, lineno, "answers")
            record["answers"] = answers
        queries[qid] = record
    if not queries:
        raise DataError("no queries", path)
    return queries


@dataclass
class QrelsReport:
    """What :func:`read_qrels` read, and what it kept with a warning."""

    qrels: Qrels
    unknown_docs: int = 0
    repeated: int = 0


MAX_GRADE = 100
BEIR_COLUMNS = ("query-id", "corpus-id", "score")
TREC_COLUMNS = ("query-id", "iteration", "corpus-id", "score")
BEIR_HEADER = ("query-id", "query_id", "qid")


def _qrels_format(line: str) -> tuple[str, ...] | None:
    """The columns of a qrels file, told from its first line: BEIR's (a header or 3 tab-separated
    columns) or TREC's (``qid iter docid rel``, 4 whitespace-separated); ``None`` if neither."""
    tabs = line.split("\t")
    if len(tabs) == 3 or tabs[0].strip() in BEIR_HEADER:
        return BEIR_COLUMNS
    words = line.split()
    if len(words) == 4 and re.fullmatch(r"-?\d+", words[3]):
        return TREC_COLUMNS
    return None


def read_qrels(path: str | Path, queries: dict[str, Any] | None = None,
               corpus: Container[str] | None = None) -> QrelsReport:
    """Read qrels in BEIR's format (``query-id  corpus-id  score``, tab-separated, header line first)
    or TREC's (``qid iter docid rel``, whitespace-separated, no header), told apart by the first line.

    Errors name the file, line and column: a missing column, a grade that is not an integer from
    -MAX_GRADE to MAX_GRADE, a query id with no text in ``queries``, and one (query, document) judged
    twice with two grades (both lines named: which grade is right cannot be known). The same
    judgement repeated is kept once and counted in ``repeated``; a document id that is not in
    ``corpus`` is kept (trec_eval keeps it too) and counted in ``unknown_docs``.
    """
    path = Path(path)
    qrels: Qrels = {}
    report = QrelsReport(qrels)
    columns: tuple[str, ...] | None = None
    first_line: dict[tuple[str, str], int] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        if columns is None:
            columns = _qrels_format(line)
            if columns is None:
                raise DataError("neither BEIR qrels (3 tab-separated columns: query-id corpus-id score) nor "
                                "TREC qrels (4 columns: query-id iteration corpus-id relevance)", path, lineno)
            if line.split("\t")[0].strip() in BEIR_HEADER:
                continue
        parts = line.split("\t") if columns is BEIR_COLUMNS else line.split()
        if len(parts) < len(columns):
            kind = "3 tab-separated" if columns is BEIR_COLUMNS else "4 (TREC qrels)"
            raise DataError(f"expected {kind} columns, found {len(parts)}", path, lineno, columns[len(parts)])
        values = dict(zip(columns, (part.strip() for part in parts)))
        for name, value in values.items():
            if not value:
                raise DataError("empty value", path, lineno, name)
        qid, doc_id, score = values["query-id"], values["corpus-id"], values["score"]
        for name in ("query-id", "corpus-id"):
            check_id(values[name], path, lineno, name)
        grade = parse_grade(score, path, lineno)
        if queries is not None and qid not in queries:
            raise DataError(f"query id {qid!r} has no text in queries.jsonl", path, lineno, "query-id")
        if corpus is not None and doc_id not in corpus:
            report.unknown_docs += 1
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            if judged[doc_id] != grade:
                raise DataError(f"query {qid!r}, document {doc_id!r} judged {judged[doc_id]} on line "
                                f"{first_line[qid, doc_id]} and {grade} here", path, lineno, "score")
            report.repeated += 1
        first_line.setdefault((qid, doc_id), lineno)
        judged[doc_id] = grade
    if report.unknown_docs:
        log.warning("%s: %d qrels lines name documents that are not in the corpus (kept, as trec_eval does)",
                    path, report.unknown_docs)
    if report.repeated:
        log.warning("%s: %d qrels lines repeat an earlier judgement (kept once)", path, report.repeated)
    return report


def parse_grade(score: str, path: Path, lineno: int) -> int:
    """A relevance grade: an integer (``2`` or ``2.0``) from -MAX_GRADE to MAX_GRADE."""
    try:
        value = float(score)
    except ValueError:
        raise DataError(f"score {score!r} is not a number", path, lineno, "score") from None
    if not math.isfinite(value):
        raise DataError(f"score {score!r} is not a number", path, lineno, "score")
    if not value.is_integer():
        raise DataError(f"score {score!r} is not an integer grade", path, lineno, "score")
    if abs(value) > MAX_GRADE:
        raise DataError(f"score {score!r} is outside the grades -{MAX_GRADE}..{MAX_GRADE}", path, lineno, "score")
    return int(value)


def read_train_groups(path: str | Path) -> list[TrainGroup]:
    """Read ``train.jsonl``: one query group per line."""
    path = Path(path)
    groups = []
    for lineno, obj in iter_jsonl(path):
        qid = _str_field(obj, "query_id", path, lineno, allow_empty=False)
        lists = {}
        for name in ("positives", "negatives"):
            value = obj.get(name)
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise DataError("expected a list of document ids", path, lineno, name)
            for doc_id in value:
                check_unicode(doc_id, path, lineno, name)
            lists[name] = value
        if not lists["positives"]:
            raise DataError("a training group needs at least one positive", path, lineno, "positives")
        grades = obj.get("grades", {})
        if not isinstance(grades, dict) or not all(isinstance(g, int) and g > 0 for g in grades.values()):
            raise DataError("expected an object of positive integer grades", path, lineno, "grades")
        groups.append(TrainGroup(qid, lists["positives"], lists["negatives"], grades))
    if not groups:
        raise DataError("no training groups", path)
    return groups


def write_corpus(path: str | Path, docs: Iterable[tuple[str, str, str]]) -> None:
    """Write ``(doc_id, title, text)`` triples as ``corpus.jsonl``; an id with whitespace is an error."""
    write_jsonl(path, ({"_id": _checked_id(d, path, i), "title": t, "text": x} for i, (d, t, x) in enumerate(docs, 1)))


def write_queries(path: str | Path, queries: Iterable[tuple[str, str, list[str] | None]]) -> None:
    """Write ``(query_id, text, answers or None)`` as ``queries.jsonl``; an id with whitespace is an error."""
    write_jsonl(path, ({"_id": _checked_id(q, path, i), "text": t, **({"answers": a} if a is not None else {})}
                       for i, (q, t, a) in enumerate(queries, 1)))


def _checked_id(value: str, path: str | Path, lineno: int) -> str:
    check_id(value, Path(path), lineno, "_id")
    return value


def write_qrels(path: str | Path, qrels: Qrels) -> None:
    """Write qrels as a BEIR TSV with its header line."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for doc_id, grade in docs.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")


def write_train_groups(path: str | Path, groups: Iterable[TrainGroup]) -> None:
    """Write training groups as ``train.jsonl``."""
    write_jsonl(path, (
        {"query_id": g.query_id, "positives": g.positives, "negatives": g.negatives,
         **({"grades": g.grades} if g.grades else {})}
        for g in groups))


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_meta(root: str | Path, source: dict[str, Any], warnings: dict[str, int] | None = None) -> dict[str, Any]:
    """Write ``meta.json`` for a prepared folder: source, counts, warnings and file checksums."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "meta.json" and not p.name.startswith("."))
    counts = {
        "docs": _count_lines(root / "corpus.jsonl"),
        "queries": _count_lines(root / "queries.jsonl"),
        "train_groups": _count_lines(root / "train.jsonl") if (root / "train.jsonl").exists() else 0,
    }
    for qrels_file in sorted((root / "qrels").glob("*.tsv")):
        counts[f"qrels/{qrels_file.stem}"] = max(_count_lines(qrels_file) - 1, 0)
    meta = {
        "source": source,
        "counts": counts,
        "warnings": warnings or {},
        "sha256": {str(p.relative_to(root)): sha256(p) for p in files},
    }
    write_json(root / "meta.json", meta)
    return meta


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def splits(root: str | Path) -> list[str]:
    """The qrels splits a prepared folder has (``test``, ``dev``, ...)."""
    return sorted(p.stem for p in (Path(root) / "qrels").glob("*.tsv"))


def split_query_ids(root: str | Path, split: str, queries: dict[str, dict[str, Any]], qrels: Qrels) -> list[str]:
    """The queries of a split: those its qrels judge, or, for a split evaluated by answer match
    (listed under ``answer_match_splits`` in ``meta.json``, qrels empty), those whose id starts with
    ``<split>-`` and that have answers."""
    if qrels:
        return list(qrels)
    meta = Path(root) / "meta.json"
    source = read_json(meta).get("source", {}) if meta.exists() else {}
    if split not in source.get("answer_match_splits", []):
        return []
    return [q for q, record in queries.items() if q.startswith(f"{split}-") and record.get("answers")]
