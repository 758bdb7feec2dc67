"""Answer matching for top-k retrieval accuracy, as DPR and Pyserini compute it.

DPR (Karpukhin et al. 2020, arXiv 2004.04906) counts a retrieved passage as a hit when it
contains one of the question's answers:

- **string answers**: text and answer are put in Unicode NFD, split into tokens that are either
  a run of letters, digits and combining marks (``[\\p{L}\\p{N}\\p{M}]+``) or any other single
  character that is neither a separator nor a control character (``[^\\p{Z}\\p{C}]``), and
  lowercased; the passage matches if the answer's token sequence occurs contiguously in the
  passage's. Punctuation stays, as tokens of its own, and articles are not dropped: ``"U.S."``
  matches ``"the u.s. army"`` but not ``"US"``, ``"The Beatles"`` does not match ``"Beatles"``.
- **regex answers** (CuratedTREC): the NFD pattern is searched in the NFD passage, ignoring case.

An answer with no token is skipped (DPR would let it match every passage).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

import numpy as np
import regex as uregex

from harness.errors import DataError

_TOKEN = uregex.compile(r"[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]")


def normalize(text: str) -> str:
    """DPR's token sequence of ``text`` (NFD, letter/digit/mark runs or single symbols, lowercased), space-joined."""
    return " ".join(token.lower() for token in _TOKEN.findall(unicodedata.normalize("NFD", text)))


@functools.lru_cache(maxsize=65536)
def _pattern(answer: str) -> re.Pattern:
    try:
        return re.compile(unicodedata.normalize("NFD", answer), flags=re.IGNORECASE | re.UNICODE | re.MULTILINE)
    except re.error as exc:
        raise DataError(f"regex answer {answer!r} is not a valid regular expression: {exc}", field="answers") from None


def _prepare(text: str, regex: bool) -> str:
    """The form a passage is searched in: NFD text for regex answers, else its padded token sequence."""
    return unicodedata.normalize("NFD", text) if regex else f" {normalize(text)} "


def _matcher(answers: list[str], regex: bool) -> Callable[[str], bool]:
    """A test of a prepared passage against ``answers``.

    A string answer becomes its token sequence padded with spaces, so that substring search in the
    padded passage is token-sequence search.
    """
    if regex:
        patterns = [_pattern(a) for a in answers]
        return lambda text: any(p.search(text) for p in patterns)
    needles = [f" {n} " for n in map(normalize, answers) if n]
    return lambda text: any(n in text for n in needles)


def has_answer(text: str, answers: list[str], regex: bool = False) -> bool:
    """Whether ``text`` contains one of ``answers`` (token sequences, or regular expressions if ``regex``)."""
    return _matcher(answers, regex)(_prepare(text, regex))


def answer_hits(indices: np.ndarray, text_of: Callable[[int], str], answers: list[list[str]],
                regex: bool = False) -> np.ndarray:
    """bool [Q, k]: whether the passage ``text_of(indices[q, i])`` contains an answer of query ``q``.

    ``indices`` are corpus rows (-1: no result, never a hit). ``text_of`` is called once per
    distinct retrieved row, so a caller with a 21M-passage corpus builds only the texts retrieved.
    """
    indices = np.asarray(indices)
    if len(indices) != len(answers):
        raise DataError(f"{len(indices)} result rows but {len(answers)} answer lists", field="answers")
    texts = {r: _prepare(text_of(r), regex) for r in np.unique(indices[indices >= 0]).tolist()}
    hits = np.zeros(indices.shape, dtype=bool)
    for q, (result, query_answers) in enumerate(zip(indices.tolist(), answers)):
        matches = _matcher(query_answers, regex)
        hits[q] = [r >= 0 and matches(texts[r]) for r in result]
    return hits
