"""MTEB's own evaluator as a second opinion: on a prepared split it must agree with the harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.prepare import prepare
from harness.errors import DataError
from harness.stages.evaluate import evaluate
from harness.stages.mteb import local_task, run_mteb

# MiniLM (a random model scores every passage alike, so float noise reorders it) with prefixes,
# [CLS] pooling and dot product: settings MTEB only reproduces if they travel with the model.
# One max length for both sides: sentence-transformers has a single max_seq_length (the passages').
SETTINGS = {"pooling": "cls", "normalize": False, "similarity": "dot", "query_prefix": "query: ",
            "passage_prefix": "passage: ", "max_query_length": 48, "max_passage_length": 48}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mteb") / "gen"
    prepare("generated", out, seed=3, docs=240, train_queries=10, dev_queries=6, test_queries=40)
    return out


@pytest.mark.slow
def test_mteb_ndcg_equals_the_harness_on_the_same_split(dataset: Path, tmp_path: Path) -> None:
    ours = evaluate("minilm", dataset, "test", tmp_path / "ours", settings=SETTINGS)["metrics"]["ndcg@10"]
    record = run_mteb("minilm", [local_task(dataset, "test", name="gen-test")], tmp_path / "mteb.json", SETTINGS)
    theirs = record["scores"]["gen-test"]
    assert theirs["metric"] == "ndcg_at_10"
    assert 0.2 < ours < 0.95  # neither trivial nor perfect
    assert theirs["ndcg@10"] == pytest.approx(ours, abs=1e-5)  # MTEB rounds to 5 decimals
    assert json.loads((tmp_path / "mteb.json").read_text())["scores"] == record["scores"]


@pytest.mark.slow
def test_mteb_prefixes_matter(dataset: Path, tmp_path: Path) -> None:
    plain = {**SETTINGS, "query_prefix": "", "passage_prefix": ""}
    with_prefix = run_mteb("minilm", [local_task(dataset, "test", name="a")], tmp_path / "a.json", SETTINGS)
    without = run_mteb("minilm", [local_task(dataset, "test", name="b")], tmp_path / "b.json", plain)
    assert with_prefix["scores"]["a"]["ndcg@10"] != without["scores"]["b"]["ndcg@10"]


def test_a_split_without_judgements_is_refused(dataset: Path) -> None:
    (dataset / "qrels" / "empty.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(DataError, match="no passage judgements"):
        local_task(dataset, "empty")
