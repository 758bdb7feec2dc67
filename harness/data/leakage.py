"""Leakage guard: a training query that also appears in an evaluation set is dropped from training
(the training stage applies it and reports the counts in ``train_summary.json``).

A training query *leaks* into an evaluation folder when that folder has an evaluation query (one
of its queries that is not one of its own training queries) with the same id or the same
normalised text: NFKC, case-folded, every run of non-alphanumeric characters replaced by one space.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

from harness.data.format import TrainGroup, read_queries, read_train_groups
from harness.errors import DataError

_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """The form in which two query texts are compared."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _eval_queries(root: Path) -> dict[str, str]:
    """``{query id: normalised text}`` of the queries of ``root`` that it does not train on."""
    queries = read_queries(root / "queries.jsonl")
    train = {g.query_id for g in read_train_groups(root / "train.jsonl")} if (root / "train.jsonl").exists() else set()
    return {qid: normalise(q["text"]) for qid, q in queries.items() if qid not in train}


def guard(groups: list[TrainGroup], queries: dict[str, dict[str, Any]], eval_dirs: list[Path],
          allow: bool, where: str | Path = "train.jsonl") -> tuple[list[TrainGroup], dict[str, Any]]:
    """Find the training ``groups`` whose query appears in any of ``eval_dirs``; unless ``allow``,
    drop them. ``queries`` holds the training queries' texts. Returns the kept groups and
    ``{"train_queries", "leaked", "by_id", "by_text", "dropped", "per_eval": {dir name: n}}``
    (a query matching by both id and text counts in ``by_id``).
    """
    texts = {qid: normalise(q["text"]) for qid, q in queries.items()}
    leaked: dict[str, str] = {}
    per_eval: dict[str, int] = {}
    for eval_dir in eval_dirs:
        evaluation = _eval_queries(Path(eval_dir))
        eval_texts = set(evaluation.values())
        hits = 0
        for group in groups:
            qid = group.query_id
            if qid not in texts:
                raise DataError(f"training query {qid!r} has no text in queries.jsonl", where, field="query_id")
            how = "id" if qid in evaluation else "text" if texts[qid] in eval_texts else None
            if how:
                hits += 1
                leaked.setdefault(qid, how)
        per_eval[Path(eval_dir).name] = hits
    by_id = sum(how == "id" for how in leaked.values())
    counts = {"train_queries": len(groups), "leaked": len(leaked), "by_id": by_id, "by_text": len(leaked) - by_id,
              "dropped": 0 if allow else len(leaked), "per_eval": per_eval}
    if allow:
        return groups, counts
    kept = [g for g in groups if g.query_id not in leaked]
    if not kept:
        raise DataError("every training query appears in an evaluation set", where)
    return kept, counts
