"""The identifier index of a corpus: which tokens may follow a prefix, and which passages hold an n-gram.

SEAL and MINDER keep every passage's identifiers (title, body, pseudo-queries) as one token
sequence in an FM-index. This index is the same text in a suffix array built by
``pydivsufsort`` (libdivsufsort, a maintained suffix-array library; no FM-index package is
maintained on PyPI): every question SEAL asks its FM-index is a range of the suffix array.

The text, over token ids, with markers above the vocabulary (``V`` = vocabulary size)::

    [TITLE] title tokens [TITLE_END] body tokens [DOC_END] ([QUERY] pseudo-query [QUERY_END])* ...

so a title (or a pseudo-query) identifier is a substring that starts at its marker, and a body
identifier is any substring. Suffixes with the prefix P are one contiguous range [lo, hi) of the
suffix array; the count of P is hi - lo, the tokens that may follow P are the distinct
``text[sa[lo:hi] + |P|]``, and the passages that contain P are where the suffixes start.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.errors import DataError

VIEWS = ("title", "substring", "pseudo_query")
# Markers, as offsets above the vocabulary size.
TITLE, TITLE_END, DOC_END, QUERY, QUERY_END = range(5)
BYTES_PER_TOKEN = 12  # the text (int32) and the suffix array (int64): what a job holds in memory


@dataclass
class IdentifierIndex:
    """A suffix array over the identifier text of a corpus (see the module docstring).

    ``text`` [N] int32 token ids and markers; ``sa`` [N] the suffix array; ``starts`` [P] the
    offset where each passage's identifiers begin; ``doc_ids`` [P]; ``vocab_size`` V.
    """

    text: np.ndarray
    sa: np.ndarray
    starts: np.ndarray
    doc_ids: list[str]
    vocab_size: int

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, doc_ids: list[str], titles: list[list[int]], bodies: list[list[int]],
              pseudo_queries: list[list[list[int]]], vocab_size: int) -> IdentifierIndex:
        """Index each passage's views (token ids; an empty title or no pseudo-query leaves that view out)."""
        import pydivsufsort

        v = vocab_size
        pieces: list[list[int]] = []
        starts = np.zeros(len(doc_ids), dtype=np.int64)
        offset = 0
        for i, (title, body, queries) in enumerate(zip(titles, bodies, pseudo_queries, strict=True)):
            seq = [v + TITLE, *title, v + TITLE_END] if title else []
            seq += [*body, v + DOC_END]
            for q in queries:
                seq += [v + QUERY, *q, v + QUERY_END]
            starts[i] = offset
            offset += len(seq)
            pieces.append(seq)
        text = np.fromiter((t for seq in pieces for t in seq), dtype=np.int32, count=offset)
        sa = pydivsufsort.divsufsort(text).astype(np.int64)
        return cls(text, sa, starts, list(doc_ids), vocab_size)

    def save(self, folder: Path) -> None:
        np.savez(folder / "index.npz", text=self.text, sa=self.sa, starts=self.starts,
                 vocab_size=np.int64(self.vocab_size), doc_ids=np.array(self.doc_ids, dtype=object))

    @classmethod
    def load(cls, folder: Path) -> IdentifierIndex:
        path = Path(folder) / "index.npz"
        if not path.is_file():
            raise DataError("no identifier index here (harness gen-index writes it)", path)
        z = np.load(path, allow_pickle=True)
        return cls(z["text"], z["sa"], z["starts"], [str(d) for d in z["doc_ids"]], int(z["vocab_size"]))

    # -- queries ----------------------------------------------------------------------------------
    @cached_property
    def first_tokens(self) -> np.ndarray:
        """[N] the first token of each suffix in suffix-array order (sorted)."""
        return self.text[self.sa]

    @cached_property
    def root_tokens(self) -> np.ndarray:
        """Every distinct token of the text, sorted (what may start a substring)."""
        return np.unique(self.text)

    @property
    def n_tokens(self) -> int:
        return len(self.text)

    def marker(self, which: int) -> int:
        return self.vocab_size + which

    def range(self, prefix: list[int]) -> tuple[int, int]:
        """[lo, hi): the suffixes that start with ``prefix`` (binary search, one token at a time)."""
        if not prefix:
            return 0, len(self.sa)
        first = self.first_tokens
        lo, hi = int(np.searchsorted(first, prefix[0], "left")), int(np.searchsorted(first, prefix[0], "right"))
        for depth, token in enumerate(prefix[1:], start=1):
            if lo >= hi:
                return lo, lo
            column = self.text[np.minimum(self.sa[lo:hi] + depth, len(self.text) - 1)]
            # a suffix shorter than depth + 1 sorts first: it reads as -1
            column = np.where(self.sa[lo:hi] + depth < len(self.text), column, -1)
            lo, hi = lo + int(np.searchsorted(column, token, "left")), lo + int(np.searchsorted(column, token, "right"))
            if lo >= hi:
                return lo, lo
        return lo, hi

    def count(self, ngram: list[int]) -> int:
        """How often ``ngram`` occurs in the identifier text."""
        lo, hi = self.range(ngram)
        return hi - lo

    def next_tokens(self, prefix: list[int]) -> np.ndarray:
        """The distinct tokens (and markers) that follow ``prefix`` somewhere in the text, sorted."""
        if not prefix:
            return self.root_tokens
        lo, hi = self.range(prefix)
        positions = self.sa[lo:hi] + len(prefix)
        return np.unique(self.text[positions[positions < len(self.text)]])

    def passages(self, ngram: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(passage rows, occurrences in each) of the passages whose identifiers contain ``ngram``."""
        lo, hi = self.range(ngram)
        rows = np.searchsorted(self.starts, self.sa[lo:hi], "right") - 1
        return np.unique(rows, return_counts=True)
