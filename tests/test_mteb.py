"""MTEB's own evaluator as a second opinion: on a prepared split it must agree with the harness.

Each tool runs the way its users run it: MTEB on ``SentenceTransformer(<the model's folder>)``
with the model's own settings, the harness with its defaults. Forcing both to one setting would
hide a harness that does not read the model's settings (it once cut passages at 128 tokens where
all-MiniLM-L6-v2 says 256).
"""

from __future__ import annotations

import json
from pathlib import Path

import mteb
import pytest
from sentence_transformers import SentenceTransformer

from harness.data.format import read_corpus, read_qrels, read_queries, write_corpus, write_qrels, write_queries
from harness.data.prepare import prepare
from harness.errors import DataError
from harness.models.registry import packaged_minilm_path
from harness.retrieval import read_trec_run
from harness.stages.evaluate import evaluate
from harness.stages.mteb import local_task, run_mteb

# MiniLM (a random model scores every passage alike, so float noise reorders it) with prefixes,
# [CLS] pooling and dot product: settings MTEB only reproduces if they travel with the model.
SETTINGS = {"pooling": "cls", "normalize": False, "similarity": "dot", "query_prefix": "query: ",
            "passage_prefix": "passage: "}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mteb") / "gen"
    prepare("generated", out, seed=3, docs=240, train_queries=10, dev_queries=6, test_queries=40)
    return out


def _derived(dataset: Path, out: Path, docs: list[tuple[str, str, str]],
             queries: list[tuple[str, str, None]] | None = None) -> Path:
    """A copy of ``dataset``'s test split with another corpus (and queries)."""
    original = read_queries(dataset / "queries.jsonl")
    write_corpus(out / "corpus.jsonl", docs)
    write_queries(out / "queries.jsonl", queries or [(q, v["text"], None) for q, v in original.items()])
    write_qrels(out / "qrels" / "test.tsv", read_qrels(dataset / "qrels" / "test.tsv", original).qrels)
    return out


@pytest.fixture(scope="module")
def long_dataset(dataset: Path) -> Path:
    """The collection with each passage's own words put after ~150 tokens of boilerplate (no title):
    cut at 128 tokens, every passage is the same boilerplate; at 256 it keeps what makes it relevant."""
    boilerplate = "This record was transcribed from the regional archive and is kept for reference. " * 9
    judged = {d for q in read_qrels(dataset / "qrels" / "test.tsv", read_queries(dataset / "queries.jsonl")).qrels.values()
              for d in q}
    corpus = read_corpus(dataset / "corpus.jsonl")
    kept = sorted(judged) + [d for d in corpus if d not in judged][:120 - len(judged)]  # 120 passages: fast
    docs = [(d, "", boilerplate + corpus[d]["text"]) for d in kept]
    return _derived(dataset, dataset.parent / "long", docs)


def _mteb_ndcg(task: object) -> float:
    """nDCG@10 of all-MiniLM-L6-v2 loaded as its users load it, through MTEB as its users run it."""
    result = mteb.evaluate(SentenceTransformer(str(packaged_minilm_path())), [task], cache=None,
                           show_progress_bar=False)
    return float(result.task_results[0].scores["test"][0]["ndcg_at_10"])


@pytest.mark.slow
def test_mteb_on_the_published_model_equals_the_harness_defaults(long_dataset: Path, tmp_path: Path) -> None:
    ours = evaluate("minilm", long_dataset, "test", tmp_path / "ours")
    theirs = _mteb_ndcg(local_task(long_dataset, "test", name="long"))
    assert ours["protocol"]["encoder"]["max_passage_length"] == 256  # read from sentence_bert_config.json
    assert 0.2 < ours["metrics"]["ndcg@10"] < 0.95  # neither trivial nor perfect
    assert theirs == pytest.approx(ours["metrics"]["ndcg@10"], abs=1e-5)  # MTEB rounds to 5 decimals
    cut = evaluate("minilm", long_dataset, "test", tmp_path / "cut", settings={"max_passage_length": 128})
    assert abs(cut["metrics"]["ndcg@10"] - theirs) > 0.01  # the old default would have been caught


@pytest.mark.slow
def test_identical_ids_are_dropped_as_beir_and_mteb_drop_them(dataset: Path, tmp_path: Path) -> None:
    """ArguAna's shape: each query is also a passage of the corpus, under the query's own id."""
    queries = read_queries(dataset / "queries.jsonl")
    qrels = read_qrels(dataset / "qrels" / "test.tsv", queries).qrels
    docs = [(d, p.get("title", ""), p["text"]) for d, p in read_corpus(dataset / "corpus.jsonl").items()]
    docs += [(q, "", queries[q]["text"]) for q in qrels]
    folder = _derived(dataset, tmp_path / "arguana-like", docs)
    dropped = evaluate("minilm", folder, "test", tmp_path / "beir", family="beir")
    kept = evaluate("minilm", folder, "test", tmp_path / "generic", family="generic")
    assert dropped["protocol"]["ignore_identical_ids"] and not kept["protocol"]["ignore_identical_ids"]
    run = read_trec_run(tmp_path / "beir" / "run.trec")
    assert not any(q in docs for q, docs in run.items())
    firsts = {q: max(d, key=d.get) for q, d in read_trec_run(tmp_path / "generic" / "run.trec").items()}
    assert sum(firsts[q] == q for q in qrels) > len(qrels) / 2  # the query's own text ranks first
    assert dropped["metrics"]["ndcg@10"] > kept["metrics"]["ndcg@10"] + 0.02
    task = local_task(folder, "test", name="arguana-like", ignore_identical_ids=True)
    assert _mteb_ndcg(task) == pytest.approx(dropped["metrics"]["ndcg@10"], abs=1e-5)


@pytest.mark.slow
def test_run_mteb_carries_the_harness_settings(dataset: Path, tmp_path: Path) -> None:
    """``harness mteb`` saves the model with its configured settings (prefixes, CLS, dot) for MTEB."""
    ours = evaluate("minilm", dataset, "test", tmp_path / "ours", settings=SETTINGS)["metrics"]["ndcg@10"]
    record = run_mteb("minilm", [local_task(dataset, "test", name="gen-test")], tmp_path / "mteb.json", SETTINGS)
    theirs = record["scores"]["gen-test"]
    assert theirs["metric"] == "ndcg_at_10"
    assert theirs["ndcg@10"] == pytest.approx(ours, abs=1e-5)
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
