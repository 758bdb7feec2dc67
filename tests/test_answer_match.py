"""harness.answer_match against a plain re-implementation of DPR's has_answer written here."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest

from harness.answer_match import answer_hits, has_answer, normalize
from harness.errors import DataError


def plain_tokens(text: str) -> list[str]:
    """DPR's tokens, character by character: runs of letters/digits/marks, else one non-space symbol."""
    tokens, word = [], ""
    for ch in unicodedata.normalize("NFD", text):
        kind = unicodedata.category(ch)[0]
        if kind in "LNM":
            word += ch
            continue
        if word:
            tokens.append(word)
            word = ""
        if kind not in "ZC":
            tokens.append(ch)
    if word:
        tokens.append(word)
    return [t.lower() for t in tokens]


def plain_has_answer(text: str, answers: list[str], regex: bool) -> bool:
    if regex:
        nfd = unicodedata.normalize("NFD", text)
        return any(re.search(unicodedata.normalize("NFD", a), nfd, re.IGNORECASE | re.MULTILINE) for a in answers)
    words = plain_tokens(text)
    for answer in answers:
        needle = plain_tokens(answer)
        if needle and any(words[i:i + len(needle)] == needle for i in range(len(words) - len(needle) + 1)):
            return True
    return False


CORPUS = [
    "The U.S. Army was founded in 1775, in Philadelphia.",
    "Rock-and-roll emerged in the 1950s; Elvis Presley was its king!",
    "Beatles (the band) recorded at Abbey Road Studios",
    "Le Café de Flore est à Paris.",  # NFC accents
    "Le Cafe\u0301 de Flore, Parisian institution",  # NFD accent
    "Ｆｕｌｌｗｉｄｔｈ letters and a tab\tseparated\u00a0word",
    "Marie Skłodowska-Curie won the Nobel Prize twice",
    "Numbers: 3.14159 and 2,000,000 people",
    "",
]

CASES = [  # (answers, regex, expected hit per CORPUS passage)
    (["U.S."], False, [1, 0, 0, 0, 0, 0, 0, 0, 0]),
    (["US"], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),  # punctuation is kept as tokens
    (["u.s. army"], False, [1, 0, 0, 0, 0, 0, 0, 0, 0]),
    (["1775"], False, [1, 0, 0, 0, 0, 0, 0, 0, 0]),
    (["rock and roll"], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    (["rock-and-roll", "KING"], False, [0, 1, 0, 0, 0, 0, 0, 0, 0]),
    (["The Beatles"], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),  # articles are not dropped
    (["beatles"], False, [0, 0, 1, 0, 0, 0, 0, 0, 0]),
    (["café"], False, [0, 0, 0, 1, 1, 0, 0, 0, 0]),  # NFC and NFD spellings meet
    (["cafe"], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),  # the accent is part of the token
    (["Paris"], False, [0, 0, 0, 1, 0, 0, 0, 0, 0]),  # not inside "Parisian"
    (["Fullwidth"], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),  # NFD does not fold width
    (["tab separated word"], False, [0, 0, 0, 0, 0, 1, 0, 0, 0]),
    (["Skłodowska Curie"], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    (["skłodowska-curie"], False, [0, 0, 0, 0, 0, 0, 1, 0, 0]),
    (["3.14159"], False, [0, 0, 0, 0, 0, 0, 0, 1, 0]),
    (["", "  ", "..."], False, [0, 0, 0, 0, 0, 0, 0, 0, 0]),  # an answer without tokens never matches
    ([r"\b17\d\d\b"], True, [1, 0, 0, 0, 0, 0, 0, 0, 0]),
    ([r"abbey\s+road|elvis"], True, [0, 1, 1, 0, 0, 0, 0, 0, 0]),
    ([r"caf[eé]"], True, [0, 0, 0, 1, 1, 0, 0, 0, 0]),
    ([r"^numbers"], True, [0, 0, 0, 0, 0, 0, 0, 1, 0]),
]


@pytest.mark.parametrize("answers, regex, expected", CASES)
def test_has_answer_matches_plain_implementation(answers, regex, expected):
    got = [has_answer(text, answers, regex=regex) for text in CORPUS]
    assert got == [plain_has_answer(text, answers, regex) for text in CORPUS]
    assert got == [bool(e) for e in expected]


def test_normalize():
    assert normalize("The U.S.  Army!") == "the u . s . army !"
    assert normalize("Café") == normalize("Cafe\u0301") == "cafe\u0301"
    assert normalize(" \t\n") == ""
    for text in CORPUS:
        assert normalize(text).split() == plain_tokens(text)


def test_answer_hits_matrix():
    rng = np.random.default_rng(0)
    indices = rng.integers(-1, len(CORPUS), size=(len(CASES), 6))
    answers = [case[0] for case in CASES]
    for regex in (False, True):
        hits = answer_hits(indices, CORPUS.__getitem__, answers, regex=regex)
        expected = [[r >= 0 and plain_has_answer(CORPUS[r], a, regex) for r in row]
                    for row, a in zip(indices.tolist(), answers)]
        np.testing.assert_array_equal(hits, expected)
        assert not hits[indices < 0].any()


def test_answer_hits_builds_each_retrieved_text_once():
    indices = np.array([[0, 7, -1], [7, 0, 7]])
    asked: list[int] = []

    def text_of(row: int) -> str:
        asked.append(row)
        return CORPUS[row]

    hits = answer_hits(indices, text_of, [["1775"], ["3.14159", "army"]])
    np.testing.assert_array_equal(hits, [[True, False, False], [True, True, True]])
    assert sorted(asked) == [0, 7]


def test_bad_regex_names_the_answer():
    with pytest.raises(DataError, match=r"'\(unclosed'"):
        has_answer("text", ["(unclosed"], regex=True)
