"""Friedman + Nemenyi against scikit-posthocs' documented example and Demšar's table; cliques; letters."""

from __future__ import annotations

import numpy as np
import pytest
import scikit_posthocs as sp
from scipy import stats

from harness.compare import RowInput, holm, randomization_test
from harness.separability import cliques, friedman_nemenyi, letters

# scikit_posthocs.posthoc_nemenyi_friedman's docstring example: 6 blocks (rows) x 3 groups (columns)
DOC_EXAMPLE = np.array([[31, 27, 24], [31, 28, 31], [45, 29, 46], [21, 18, 48], [42, 36, 46], [32, 17, 40]])


def test_friedman_nemenyi_on_the_documented_example() -> None:
    values = {g: {f"block{b}": float(DOC_EXAMPLE[b, i]) for b in range(6)} for i, g in enumerate("xyz")}
    out = friedman_nemenyi(values, alpha=0.05)
    chi2, p = stats.friedmanchisquare(*DOC_EXAMPLE.T)
    assert (out["statistic"], out["p_value"]) == pytest.approx((chi2, p))
    assert out["statistic"] == pytest.approx(6.869565217391299)  # the value scipy and R's friedman.test give
    expected = sp.posthoc_nemenyi_friedman(DOC_EXAMPLE).to_numpy()
    for i, a in enumerate("xyz"):
        for j, b in enumerate("xyz"):
            assert out["p_values"][a][b] == pytest.approx(expected[i, j])
    # mean ranks by hand (1 = best, ties share the mean rank): block 2 ties x and z at 31
    ranks = np.array([[1, 2, 3], [1.5, 3, 1.5], [2, 3, 1], [2, 3, 1], [2, 3, 1], [2, 3, 1]]).mean(axis=0)
    assert [out["mean_ranks"][g] for g in "xyz"] == pytest.approx(ranks)
    assert out["rows"] == ["z", "x", "y"]
    # Demšar (2006), Table 5(a): q_0.05 = 2.343 for k = 3; CD = q sqrt(k (k + 1) / (6 N))
    assert out["cd"] == pytest.approx(2.343 * np.sqrt(3 * 4 / (6 * 6)), abs=1e-3)
    assert out["cliques"] == [["z", "x"], ["x", "y"]]  # only z and y are separated (p = 0.038)


def test_too_few_eval_sets_or_rows_draw_no_diagram() -> None:
    two = friedman_nemenyi({r: {"e1": v, "e2": v + 1} for r, v in zip("abcd", range(4))}, 0.05)
    assert two["diagram"] is None and "2 eval set(s)" in two["reason"]
    rows = friedman_nemenyi({"a": {"e1": 1, "e2": 2, "e3": 3}, "b": {"e1": 2, "e2": 1, "e3": 3},
                             "c": {"e1": 1, "e2": 2}}, 0.05)
    assert rows["diagram"] is None and rows["left_out"] == ["c"] and "2 row(s)" in rows["reason"]


def test_cliques_are_maximal_runs() -> None:
    same = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=bool)
    assert cliques(same) == [(0, 1), (1, 2), (2, 3)]
    assert cliques(np.ones((3, 3), dtype=bool)) == [(0, 2)]
    assert cliques(np.eye(3, dtype=bool)) == []


def test_letters_share_a_letter_exactly_when_holm_keeps_the_pair() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.6, 12)
    values = {"a": base, "b": base + rng.normal(0, 0.01, 12), "c": base + 0.3 + rng.normal(0, 0.02, 12),
              "d": base + 0.31 + rng.normal(0, 0.02, 12)}
    ids = [f"q{i}" for i in range(12)]
    rows = [RowInput(k, "loss", k, {}, [1], [k], ids, {"ndcg@10": v[None]}, {"ndcg@10": [v.mean()]})
            for k, v in values.items()]
    out = letters(rows, "ndcg@10", test="randomization", permutations=2000, alpha=0.05, seed=0)
    labels = list(values)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    p = [randomization_test(values[a], values[b], 2000, np.random.default_rng(0)) for a, b in pairs]
    corrected, reject = holm(p, 0.05)
    code = out["letters"]
    assert out["pairs"] == 6
    for (a, b), rejected in zip(pairs, reject):
        assert bool(set(code[a]) & set(code[b])) == (not rejected), (a, b, code)
    assert set(code["a"]) & set(code["b"]) and not set(code["a"]) & set(code["c"])
