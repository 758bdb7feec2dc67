"""The ``dpr-qa`` source: DPR's retriever files (Karpukhin et al., "Dense Passage Retrieval for
Open-Domain Question Answering", EMNLP 2020), from local paths or DPR's published URLs.

Three file kinds, each read strictly (a :class:`~harness.errors.DataError` names the file, line
or record, and field):

- the passages, ``psgs_w100.tsv``: ``id<TAB>text<TAB>title`` with a header line (csv quoting);
- the retriever training/dev JSON, ``biencoder-*.json``: a list of ``{question, answers,
  positive_ctxs, negative_ctxs, hard_negative_ctxs}``, each context ``{passage_id (or psg_id),
  title, text}``;
- the question/answers files, ``*.qa.csv``: ``question<TAB>answers`` where ``answers`` is a list
  literal (``["a", "b"]`` or ``['a', 'b']``), read with :func:`ast.literal_eval` (never executed).

Conversion: every question becomes a query ``<split>-<n>`` (``n``: its 0-based position in the
file) with its ``answers``. A JSON split's qrels are its ``positive_ctxs`` (grade 1); a
question/answers split has no passage judgements, so its qrels file is empty and it is evaluated
by answer match (``meta.json`` lists it under ``answer_match_splits``). The ``train`` split's
groups take the positives from ``positive_ctxs`` and the hard negatives from
``hard_negative_ctxs`` then ``negative_ctxs`` (DPR's order), capped at ``negatives``; as in DPR,
a question without a positive passage is not trained on (counted as a warning).

The corpus is either DPR's passages TSV (``corpus: psgs_w100``, a URL or a path) or, with
``corpus: contexts``, the passages the JSON splits themselves carry: every positive, hard negative
and negative context, once per id, with the JSON's title and text, in the order first seen (splits
in name order; per question positives, hard negatives, then negatives). The second keeps a
training set small when its evaluation searches another dataset's copy of the 21M passages
(TriviaQA's test set searches NQ's corpus in ``config/paper.yaml``); a miner run on such a folder
draws its negatives only from those passages. An id given with two different titles or texts is
an error.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import urllib.request
import zlib
from collections import Counter
from collections.abc import Container, Iterator
from pathlib import Path
from typing import IO, Any

from harness.data.format import (
    Qrels,
    TrainGroup,
    check_unicode,
    write_corpus,
    write_qrels,
    write_queries,
    write_train_groups,
)
from harness.errors import ConfigError, DataError
from harness.io import atomic_path

DPR_BASE = "https://dl.fbaipublicfiles.com/dpr/"
DPR_FILES = {
    "psgs_w100": "wikipedia_split/psgs_w100.tsv.gz",
    "nq-train": "data/retriever/biencoder-nq-train.json.gz",
    "nq-dev": "data/retriever/biencoder-nq-dev.json.gz",
    "nq-adv-hn-train": "data/retriever/biencoder-nq-adv-hn-train.json.gz",
    "trivia-train": "data/retriever/biencoder-trivia-train.json.gz",
    "trivia-dev": "data/retriever/biencoder-trivia-dev.json.gz",
    "nq-dev-qa": "data/retriever/nq-dev.qa.csv",
    "nq-test-qa": "data/retriever/nq-test.qa.csv",
    "trivia-dev-qa": "data/retriever/trivia-dev.qa.csv.gz",
    "trivia-test-qa": "data/retriever/trivia-test.qa.csv.gz",
}
"""DPR's published files by the resource names of its ``dpr/data/download_data.py``."""

CONTEXTS = "contexts"
"""The ``corpus`` value that takes the corpus from the JSON splits' contexts."""

_BAD_GZIP = (gzip.BadGzipFile, EOFError, zlib.error)


def resolve(source: str, cache: str | Path | None) -> Path:
    """A local path for ``source``: a name of :data:`DPR_FILES`, an http(s) URL, or a local path.

    Names and URLs are downloaded once into ``cache`` (atomically).
    """
    url = DPR_BASE + DPR_FILES[source] if source in DPR_FILES else source
    if not url.startswith(("http://", "https://")):
        return Path(url)
    if cache is None:
        raise ConfigError(f"downloading {url} needs a cache folder", "cache")
    target = Path(cache) / url.rsplit("/", 1)[-1]
    if not target.exists():
        with atomic_path(target) as tmp:
            urllib.request.urlretrieve(url, tmp)
    return target


def _open(path: Path, mode: str = "rb") -> IO[Any]:
    try:
        return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)
    except FileNotFoundError:
        raise DataError("file not found", path) from None


def _lines(path: Path) -> Iterator[str]:
    """The decoded lines of a (possibly gzipped) text file; bad UTF-8 or gzip data names the line."""
    lineno = 0
    with _open(path) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path, lineno) from None
        except _BAD_GZIP as exc:
            raise DataError(f"bad gzip data: {exc}", path, lineno + 1) from None


def _tsv(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, cells)`` of a tab-separated file read with csv quoting, as DPR reads it."""
    reader = csv.reader(_lines(path), delimiter="\t")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"bad TSV: {exc}", path, reader.line_num) from None


def read_passages(path: str | Path, seen: set[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """Yield ``(id, title, text)`` from DPR's passages TSV (``id  text  title``, header first).

    A duplicate id is an error; the ids read are added to ``seen``.
    """
    path = Path(path)
    seen = set() if seen is None else seen
    for lineno, row in _tsv(path):
        if lineno == 1 and row[:1] == ["id"]:
            continue
        if not row:
            continue
        if len(row) != 3:
            raise DataError(f"expected 3 tab-separated columns (id, text, title), found {len(row)}", path, lineno,
                            ("id", "text", "title")[min(len(row), 2)])
        doc_id, text, title = row
        doc_id = doc_id.strip()
        if not doc_id:
            raise DataError("empty passage id", path, lineno, "id")
        if doc_id in seen:
            raise DataError(f"duplicate passage id {doc_id!r}", path, lineno, "id")
        seen.add(doc_id)
        yield doc_id, title, text


def read_qa(path: str | Path) -> list[tuple[str, list[str]]]:
    """Read a DPR question/answers file into ``[(question, answers)]``."""
    path = Path(path)
    pairs = []
    for lineno, row in _tsv(path):
        if not row:
            continue
        if len(row) != 2:
            raise DataError(f"expected 2 tab-separated columns (question, answers), found {len(row)}", path, lineno,
                            "answers" if len(row) < 2 else None)
        question, answers_cell = row
        if not question.strip():
            raise DataError("empty question", path, lineno, "question")
        try:
            answers = ast.literal_eval(answers_cell)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise DataError("answers are not a list literal", path, lineno, "answers") from None
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DataError("expected a list of strings", path, lineno, "answers")
        pairs.append((question, answers))
    if not pairs:
        raise DataError("no questions", path)
    return pairs


def read_biencoder(path: str | Path, contexts: dict[str, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Read DPR's retriever JSON into records ``{question, answers, positives, negatives}``.

    ``positives`` and ``negatives`` are passage ids; ``negatives`` lists the hard negatives first.
    Given ``contexts``, each context's ``(title, text)`` is added to it by id, and an id already
    there with another title or text is an error.
    """
    path = Path(path)
    try:
        with _open(path) as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None
    except (RecursionError, *_BAD_GZIP) as exc:
        raise DataError(f"unreadable JSON: {type(exc).__name__}", path) from None
    if not isinstance(data, list):
        raise DataError("expected a JSON list of questions", path)
    records = []
    for index, item in enumerate(data):
        where = f"[{index}]"
        if not isinstance(item, dict):
            raise DataError("expected an object", path, field=where)
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError("expected a non-empty question", path, field=f"{where}.question")
        answers = item.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DataError("expected a list of strings", path, field=f"{where}.answers")
        for name, text in [("question", question), *(("answers", a) for a in answers)]:
            check_unicode(text, path, None, f"{where}.{name}")
        lists = {name: _ctx_ids(item.get(name, []), path, f"{where}.{name}", contexts)
                 for name in ("positive_ctxs", "hard_negative_ctxs", "negative_ctxs")}
        records.append({"question": question, "answers": answers, "positives": lists["positive_ctxs"],
                        "negatives": lists["hard_negative_ctxs"] + lists["negative_ctxs"]})
    if not records:
        raise DataError("no questions", path)
    return records


def _ctx_ids(ctxs: Any, path: Path, where: str, contexts: dict[str, tuple[str, str]] | None) -> list[str]:
    """The passage ids of a context list; with ``contexts``, also record each ``(title, text)``."""
    if not isinstance(ctxs, list):
        raise DataError("expected a list of contexts", path, field=where)
    ids = []
    for index, ctx in enumerate(ctxs):
        value = ctx.get("passage_id", ctx.get("psg_id")) if isinstance(ctx, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise DataError("expected a context with a passage_id", path, field=f"{where}[{index}]")
        check_unicode(value, path, None, f"{where}[{index}]")
        doc_id = value.strip()
        ids.append(doc_id)
        if contexts is not None:
            _add_context(contexts, doc_id, ctx, path, f"{where}[{index}]")
    return ids


def _add_context(contexts: dict[str, tuple[str, str]], doc_id: str, ctx: dict[str, Any], path: Path,
                 where: str) -> None:
    """Record ``ctx``'s ``(title, text)`` under ``doc_id``, or check it against the one recorded."""
    for name in ("title", "text"):
        if not isinstance(ctx.get(name), str):
            raise DataError(f"expected a string, got {type(ctx.get(name)).__name__}", path, field=f"{where}.{name}")
        check_unicode(ctx[name], path, None, f"{where}.{name}")
    passage = (ctx["title"], ctx["text"])
    known = contexts.setdefault(doc_id, passage)
    for name, old, new in zip(("title", "text"), known, passage):
        if old != new:
            raise DataError(f"passage {doc_id!r} has another {name} than an earlier context with this id",
                            path, field=f"{where}.{name}")


def convert(out: Path, corpus: str, json_splits: dict[str, str] | None = None, qa_splits: dict[str, str] | None = None,
            negatives: int = 7, cache: str | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """Convert DPR's passages ``corpus`` (or, for :data:`CONTEXTS`, the JSON splits' contexts) with
    the retriever JSON files ``json_splits`` and the question/answers files ``qa_splits`` (each
    ``{split: name, URL or path}``) into ``out``."""
    json_splits, qa_splits = json_splits or {}, qa_splits or {}
    for key, value in (("json_splits", json_splits), ("qa_splits", qa_splits)):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError("expected a mapping of split name to a file name, URL or path", key)
    if not json_splits and not qa_splits:
        raise ConfigError("give at least one split in json_splits or qa_splits", "json_splits")
    twice = sorted(set(json_splits) & set(qa_splits))
    if twice:
        raise ConfigError(f"split {twice[0]!r} is given twice", f"qa_splits.{twice[0]}")

    contexts: dict[str, tuple[str, str]] | None = None
    doc_ids: Container[str]
    if corpus == CONTEXTS:
        if not json_splits:
            raise ConfigError(f"corpus {CONTEXTS!r} needs json_splits to take the passages from", "corpus")
        doc_ids = contexts = {}
    else:
        doc_ids = set()
        write_corpus(out / "corpus.jsonl", read_passages(resolve(corpus, cache), doc_ids))
        if not doc_ids:
            raise DataError("the corpus is empty", corpus)

    queries: list[tuple[str, str, list[str]]] = []
    qrels: dict[str, Qrels] = {}
    groups: list[TrainGroup] = []
    warnings: Counter[str] = Counter()
    for split, source in sorted(json_splits.items()):
        qrels[split] = {}
        for n, record in enumerate(read_biencoder(resolve(source, cache), contexts)):
            qid = f"{split}-{n}"
            queries.append((qid, record["question"], record["answers"]))
            known = [d for d in record["positives"] if d in doc_ids]
            warnings[f"{split}: contexts not in the corpus"] += (
                len(record["positives"]) - len(known) + sum(d not in doc_ids for d in record["negatives"]))
            if known:
                qrels[split][qid] = dict.fromkeys(known, 1)
            if split != "train":
                continue
            if not known:
                warnings["train: questions without a positive passage"] += 1
                continue
            hard = [d for d in dict.fromkeys(record["negatives"]) if d in doc_ids and d not in qrels[split][qid]]
            groups.append(TrainGroup(qid, list(qrels[split][qid]), hard[:negatives]))
    if contexts is not None:
        if not contexts:
            raise DataError("no contexts to take the corpus from", ", ".join(json_splits.values()))
        write_corpus(out / "corpus.jsonl", ((d, title, text) for d, (title, text) in contexts.items()))
    for split, source in sorted(qa_splits.items()):
        qrels[split] = {}
        queries += [(f"{split}-{n}", q, a) for n, (q, a) in enumerate(read_qa(resolve(source, cache)))]

    write_queries(out / "queries.jsonl", queries)
    for split, split_qrels in qrels.items():
        write_qrels(out / "qrels" / f"{split}.tsv", split_qrels)
    if groups:
        write_train_groups(out / "train.jsonl", groups)
    record = {"name": "dpr-qa", "corpus": corpus, "json_splits": json_splits, "qa_splits": qa_splits,
              "negatives": negatives, "answer_match_splits": sorted(qa_splits)}
    return record, {key: count for key, count in sorted(warnings.items()) if count}
