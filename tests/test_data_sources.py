"""The prepare sources on tiny fixtures in each source's native format, and on the shared real sets."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ir_datasets
import pytest
from ir_datasets.datasets.base import Dataset
from ir_datasets.formats import TrecQrels, TsvDocPairs, TsvDocs, TsvQueries
from ir_datasets.util import LocalDownload

from harness.data import beir_dir, dpr
from harness.data.format import read_corpus, read_qrels, read_queries, read_train_groups, sha256
from harness.data.prepare import prepare
from harness.errors import ConfigError, DataError
from harness.io import iter_jsonl, read_json
from harness.stages.evaluate import evaluate
from harness.stages.mine import mine_bm25

FIXTURES = Path(__file__).parent / "fixtures" / "data"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def test_beir_dir_normalises_and_counts_unknown_docs(tmp_path: Path) -> None:
    meta = prepare("beir-dir", tmp_path / "out", path=str(FIXTURES / "beir"))
    out = tmp_path / "out"
    corpus = read_corpus(out / "corpus.jsonl")
    queries = read_queries(out / "queries.jsonl")
    assert list(corpus) == ["d1", "d2", "d3", "d4", "d5", "6"]
    assert corpus["d5"]["title"] == "" and corpus["6"]["text"].startswith("Vaccines")
    assert queries["q1"] == {"text": "what drug lowers a fever?"}
    test = read_qrels(out / "qrels" / "test.tsv").qrels
    assert test == {"q1": {"d1": 2, "d5": 1}, "q2": {"d3": 1}, "q3": {"d4": 1, "d99": 1}}
    assert meta["warnings"] == {"qrels/test: documents not in the corpus": 1}
    assert meta["counts"] == {"docs": 6, "queries": 4, "train_groups": 1, "qrels/test": 5, "qrels/train": 2}
    groups = read_train_groups(out / "train.jsonl")
    assert [(g.query_id, g.positives, g.negatives) for g in groups] == [("q4", ["6"], [])]
    assert meta["sha256"] == {name: sha256(out / name) for name in
                              ("corpus.jsonl", "qrels/test.tsv", "qrels/train.tsv", "queries.jsonl", "train.jsonl")}
    assert read_json(out / "meta.json") == meta


def test_beir_dir_train_split_gets_bm25_negatives_from_the_mine_stage(tmp_path: Path) -> None:
    prepare("beir-dir", tmp_path / "out", path=str(FIXTURES / "beir"))
    assert [g.negatives for g in read_train_groups(tmp_path / "out" / "train.jsonl")] == [[]]
    mine_bm25(tmp_path / "out", tmp_path / "mined.jsonl", 2, 13)
    (group,) = read_train_groups(tmp_path / "mined.jsonl")
    assert len(group.negatives) == 2 and set(group.negatives) <= {"d1", "d2", "d5"}  # share "fever"/"pain"


def test_prepare_replaces_an_old_folder_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    prepare("beir-dir", tmp_path / "out", path=str(FIXTURES / "beir"))
    assert not (tmp_path / "out" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_prepare_leaves_nothing(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / "beir", raw)
    with open(raw / "qrels" / "test.tsv", "a") as fh:
        fh.write("q1\td2\n")
    with pytest.raises(DataError) as err:
        prepare("beir-dir", tmp_path / "out", path=str(raw))
    assert (err.value.line, err.value.field) == (7, "score")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_missing_required_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        prepare("beir-dir", tmp_path / "out")
    assert err.value.key == "path"


def test_beir_download_url_is_the_documented_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    documented = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip"
    assert beir_dir.beir_url("scifact") == documented
    calls = []

    def fake_download(url: str, out_dir: str) -> str:
        calls.append((url, out_dir))
        return str(FIXTURES / "beir")

    monkeypatch.setattr("beir.util.download_and_unzip", fake_download)
    meta = prepare("beir", tmp_path / "out", name="scifact", cache=str(tmp_path / "cache"))
    assert calls == [(beir_dir.beir_url("scifact"), str(tmp_path / "cache"))]
    assert meta["source"]["dataset"] == "scifact" and meta["counts"]["docs"] == 6


class _CountingHandler(SimpleHTTPRequestHandler):
    """Serves a folder, records each requested path, and sends a body in two halves ``delay`` s apart
    (a slow download, so concurrent jobs overlap)."""

    requests: list[str]
    delay: float = 0.0

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def copyfile(self, source, outputfile) -> None:
        data = source.read()
        outputfile.write(data[:len(data) // 2])
        outputfile.flush()
        time.sleep(self.delay)
        outputfile.write(data[len(data) // 2:])

    def log_message(self, format: str, *args: Any) -> None:
        pass


FORUMS = ("gis", "tex")


def _forum_folder(root: Path, forum: str) -> Path:
    """A tiny BEIR folder per forum: the BEIR fixture; ``tex`` without its train split and document d5."""
    folder = root / forum
    shutil.copytree(FIXTURES / "beir", folder)
    if forum == "tex":
        (folder / "qrels" / "train.tsv").unlink()
        lines = (folder / "corpus.jsonl").read_text().splitlines(keepends=True)
        (folder / "corpus.jsonl").write_text("".join(line for line in lines if '"d5"' not in line))
    return folder


@pytest.fixture
def cqadupstack_mirror(tmp_path: Path) -> Iterator[tuple[str, list[str], Path]]:
    """``cqadupstack.zip`` in BEIR's layout (``cqadupstack/<forum>/``, two forums) served over HTTP on
    127.0.0.1: (the zip's URL, the paths requested so far, the unzipped forum folders)."""
    raw = tmp_path / "raw" / "cqadupstack"
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "cqadupstack.zip", "w") as zf:
        for forum in FORUMS:
            folder = _forum_folder(raw, forum)
            for path in sorted(folder.rglob("*")):
                zf.write(path, path.relative_to(raw.parent).as_posix())
    handler = type("Handler", (_CountingHandler,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cqadupstack.zip", handler.requests, raw
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _same_prepared(a: Path, b: Path) -> None:
    """Both prepared folders hold the same files, byte for byte, and the same counts and warnings."""
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file() and p.name != "meta.json")
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file() and p.name != "meta.json")
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    meta_a, meta_b = read_json(a / "meta.json"), read_json(b / "meta.json")
    assert {k: v for k, v in meta_a.items() if k != "source"} == {k: v for k, v in meta_b.items() if k != "source"}


def test_beir_subset_prepares_one_forum_of_a_downloaded_zip(
        tmp_path: Path, cqadupstack_mirror: tuple[str, list[str], Path]) -> None:
    url, requests, raw = cqadupstack_mirror
    cache = tmp_path / "cache"
    meta = prepare("beir", tmp_path / "gis", name="cqadupstack", subset="gis", cache=str(cache), url=url)
    prepare("beir-dir", tmp_path / "gis-dir", path=str(raw / "gis"))
    _same_prepared(tmp_path / "gis", tmp_path / "gis-dir")
    assert meta["source"] == {"name": "beir", "dataset": "cqadupstack", "subset": "gis", "url": url,
                              "path": "gis"}
    assert meta["counts"]["train_groups"] == 1 and requests == ["/cqadupstack.zip"]

    meta = prepare("beir", tmp_path / "tex", name="cqadupstack", subset="tex", cache=str(cache), url=url)
    prepare("beir-dir", tmp_path / "tex-dir", path=str(raw / "tex"))
    _same_prepared(tmp_path / "tex", tmp_path / "tex-dir")
    assert meta["counts"] == {"docs": 5, "queries": 4, "train_groups": 0, "qrels/test": 5}
    assert requests == ["/cqadupstack.zip"]  # the second forum reuses the cached zip

    with pytest.raises(ConfigError, match="no subset 'physics'; available: gis, tex") as err:
        prepare("beir", tmp_path / "physics", name="cqadupstack", subset="physics", cache=str(cache), url=url)
    assert err.value.key == "subset"
    with pytest.raises(ConfigError, match="choose one of: gis, tex") as err:
        prepare("beir", tmp_path / "all", name="cqadupstack", cache=str(cache), url=url)
    assert err.value.key == "subset"
    assert not (tmp_path / "physics").exists() and not (tmp_path / "all").exists()
    assert requests == ["/cqadupstack.zip"]


def test_a_half_unzipped_folder_is_unzipped_again(
        tmp_path: Path, cqadupstack_mirror: tuple[str, list[str], Path]) -> None:
    url, requests, raw = cqadupstack_mirror
    cache = tmp_path / "cache"
    prepare("beir", tmp_path / "first", name="cqadupstack", subset="gis", cache=str(cache), url=url)
    (cache / "cqadupstack.unzipped").unlink()  # as if the job had been killed while unzipping
    (cache / "cqadupstack" / "gis" / "corpus.jsonl").write_text('{"_id": "d1", "text": "cut sh')
    prepare("beir", tmp_path / "again", name="cqadupstack", subset="gis", cache=str(cache), url=url)
    prepare("beir-dir", tmp_path / "dir", path=str(raw / "gis"))
    _same_prepared(tmp_path / "again", tmp_path / "dir")
    assert requests == ["/cqadupstack.zip"]  # unzipped again from the cached zip, not downloaded


def test_beir_download_that_is_not_a_zip_is_removed(
        tmp_path: Path, cqadupstack_mirror: tuple[str, list[str], Path]) -> None:
    url, requests, _ = cqadupstack_mirror
    missing = url.replace("cqadupstack.zip", "nosuch/cqadupstack.zip")  # the server answers 404 with an HTML page
    with pytest.raises(DataError, match="not a zip file") as err:
        prepare("beir", tmp_path / "gis", name="cqadupstack", subset="gis", cache=str(tmp_path / "cache"), url=missing)
    assert err.value.path == tmp_path / "cache" / "cqadupstack.zip"
    assert not err.value.path.exists()
    prepare("beir", tmp_path / "gis", name="cqadupstack", subset="gis", cache=str(tmp_path / "cache"), url=url)
    assert requests == ["/nosuch/cqadupstack.zip", "/cqadupstack.zip"]


def _prepare_forum(barrier: Any, forum: str, out: Path, cache: Path, url: str) -> None:
    barrier.wait()
    prepare("beir", out, name="cqadupstack", subset=forum, cache=str(cache), url=url)


def test_concurrent_prepares_of_one_zip_download_it_once(
        tmp_path: Path, cqadupstack_mirror: tuple[str, list[str], Path]) -> None:
    url, requests, raw = cqadupstack_mirror
    _CountingHandler.delay = 0.5  # both jobs ask for the zip while the first download is under way
    try:
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(len(FORUMS))
        jobs = [ctx.Process(target=_prepare_forum, args=(barrier, forum, tmp_path / forum, tmp_path / "cache", url))
                for forum in FORUMS]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(timeout=60)
    finally:
        _CountingHandler.delay = 0.0
    assert [job.exitcode for job in jobs] == [0, 0]
    assert requests == ["/cqadupstack.zip"]
    for forum in FORUMS:
        prepare("beir-dir", tmp_path / f"{forum}-dir", path=str(raw / forum))
        _same_prepared(tmp_path / forum, tmp_path / f"{forum}-dir")


@pytest.mark.parametrize("name", ["cranfield", "cisi"])
def test_beir_dir_on_the_shared_collections(tmp_path: Path, name: str) -> None:
    raw = SHARED / name
    if not raw.is_dir():
        pytest.skip("../shared/data is absent")
    meta = prepare("beir-dir", tmp_path / name, path=str(raw))
    expected = read_qrels(raw / "qrels" / "test.tsv").qrels
    assert read_qrels(tmp_path / name / "qrels" / "test.tsv").qrels == expected
    assert meta["counts"]["docs"] == sum(1 for line in open(raw / "corpus.jsonl") if line.strip())
    assert meta["counts"]["qrels/test"] == sum(len(d) for d in expected.values())


@pytest.fixture
def irds_ids() -> tuple[str, str]:
    """Register a docs+train dataset and a test dataset over the native-format fixture files."""
    f = FIXTURES / "irds"
    train = Dataset(TsvDocs(LocalDownload(f / "docs.tsv")), TsvQueries(LocalDownload(f / "train-queries.tsv")),
                    TrecQrels(LocalDownload(f / "train-qrels.trec"), {0: "not", 1: "yes", 2: "best"}),
                    TsvDocPairs(LocalDownload(f / "train-docpairs.tsv")))
    test = ir_datasets.create_dataset(queries_tsv=str(f / "test-queries.tsv"), qrels_trec=str(f / "test-qrels.trec"))
    ids = ("lossboard-fixture/train", "lossboard-fixture/test")
    for name, dataset in zip(ids, (train, test)):
        if name not in ir_datasets.registry:
            ir_datasets.registry.register(name, dataset)
    return ids


def test_irds_converts_docs_queries_qrels_and_docpairs(tmp_path: Path, irds_ids: tuple[str, str]) -> None:
    train_id, test_id = irds_ids
    meta = prepare("irds", tmp_path / "out", id=train_id, splits={"train": train_id, "test": test_id}, negatives=5)
    out = tmp_path / "out"
    assert list(read_corpus(out / "corpus.jsonl")) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert read_queries(out / "queries.jsonl")["e2"] == {"text": "biggest ocean"}
    assert read_qrels(out / "qrels" / "train.tsv").qrels == {"t1": {"p1": 1}, "t2": {"p3": 2, "p4": 0}, "t3": {"p5": 1}}
    assert meta["warnings"] == {"qrels/test: documents not in the corpus": 1}
    groups = {g.query_id: g for g in read_train_groups(out / "train.jsonl")}
    assert groups["t1"].negatives == ["p2", "p6"]  # the docpairs' second documents
    assert groups["t2"].negatives == ["p4"] and groups["t2"].grade("p3") == 2  # no docpairs: its qrels judged 0
    assert groups["t3"].negatives == ["p2"]


def test_irds_uses_qrels_judged_zero_without_docpairs(tmp_path: Path) -> None:
    f = FIXTURES / "irds"
    name = "lossboard-fixture/nopairs"
    if name not in ir_datasets.registry:
        ir_datasets.registry.register(name, ir_datasets.create_dataset(
            docs_tsv=str(f / "docs.tsv"), queries_tsv=str(f / "train-queries.tsv"),
            qrels_trec=str(f / "train-qrels.trec")))
    prepare("irds", tmp_path / "out", id=name, splits={"train": name})
    groups = {g.query_id: g for g in read_train_groups(tmp_path / "out" / "train.jsonl")}
    assert groups["t2"].negatives == ["p4"] and groups["t1"].negatives == []


def test_irds_bm25_mined_by_the_mine_stage_and_bad_ids(tmp_path: Path, irds_ids: tuple[str, str]) -> None:
    train_id, _ = irds_ids
    prepare("irds", tmp_path / "out", id=train_id, splits={"train": train_id}, negatives=2)
    mine_bm25(tmp_path / "out", tmp_path / "mined.jsonl", 2, 13)
    mined = {g.query_id: g.negatives for g in read_train_groups(tmp_path / "mined.jsonl")}
    assert mined == {"t1": ["p2"], "t2": [], "t3": []}  # only p2 shares a word ("river") with a query
    with pytest.raises(ConfigError) as err:
        prepare("irds", tmp_path / "bad", id="no-such/dataset")
    assert err.value.key == "id"
    with pytest.raises(ConfigError) as err:
        prepare("irds", tmp_path / "bad", id=train_id, miner="bm25")  # mining is the mine stage's
    assert err.value.key == "miner"
    with pytest.raises(ConfigError, match="dict") as err:
        prepare("irds", tmp_path / "bad", id=train_id, splits=[train_id])
    assert err.value.key == "splits"


def test_dpr_qa_converts_train_json_and_qa_file(tmp_path: Path) -> None:
    f = FIXTURES / "dpr"
    meta = prepare("dpr-qa", tmp_path / "out", corpus=str(f / "psgs_w100.tsv"),
                   json_splits={"train": str(f / "biencoder-train.json")}, qa_splits={"test": str(f / "test.qa.csv")},
                   negatives=3)
    out = tmp_path / "out"
    corpus = read_corpus(out / "corpus.jsonl")
    berlin = 'Berlin is the capital of Germany; its "Museum Island" is famous.'
    assert corpus["2"] == {"title": "Berlin", "text": berlin}
    queries = read_queries(out / "queries.jsonl")
    assert queries["test-1"] == {"text": "which city is the capital of italy", "answers": ["Rome", "Roma"]}
    assert queries["test-0"]["answers"] == ["Madrid"] and queries["train-2"]["answers"] == ["Michelangelo"]
    assert read_qrels(out / "qrels" / "train.tsv").qrels == {"train-0": {"1": 1}, "train-1": {"2": 1}}
    assert read_qrels(out / "qrels" / "test.tsv").qrels == {}
    groups = read_train_groups(out / "train.jsonl")
    assert [(g.query_id, g.positives, g.negatives) for g in groups] == [("train-0", ["1"], ["4", "6"]),
                                                                       ("train-1", ["2"], ["5"])]
    assert meta["warnings"] == {"train: contexts not in the corpus": 1,
                                "train: questions without a positive passage": 1}
    assert meta["source"]["answer_match_splits"] == ["test"]


def _prepare_dpr(out: Path, corpus: str) -> dict[str, Any]:
    f = FIXTURES / "dpr"
    return prepare("dpr-qa", out, corpus=corpus, json_splits={"train": str(f / "biencoder-train.json")},
                   qa_splits={"test": str(f / "test.qa.csv")}, negatives=3)


def test_dpr_qa_contexts_corpus_holds_exactly_the_referenced_passages(tmp_path: Path) -> None:
    full, out = tmp_path / "full", tmp_path / "out"
    _prepare_dpr(full, str(FIXTURES / "dpr" / "psgs_w100.tsv"))
    meta = _prepare_dpr(out, "contexts")
    corpus = read_corpus(out / "corpus.jsonl")
    # first seen, per question: positives, hard negatives, negatives; "77" is not in psgs_w100.tsv
    assert list(corpus) == ["1", "4", "77", "6", "2", "5"]
    assert corpus["2"] == {"title": "Berlin", "text": "Berlin is the capital of Germany."}  # the JSON's, not the TSV's
    assert corpus["77"] == {"title": "Missing", "text": "not in the corpus"}
    assert meta["counts"]["docs"] == 6 and meta["source"]["corpus"] == "contexts"
    for name in ("queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"):
        assert (out / name).read_bytes() == (full / name).read_bytes(), name
    groups = read_train_groups(out / "train.jsonl")
    assert [(g.query_id, g.positives, g.negatives) for g in groups] == [("train-0", ["1"], ["4", "77", "6"]),
                                                                       ("train-1", ["2"], ["5"])]
    assert meta["warnings"] == {"train: questions without a positive passage": 1}
    assert meta["source"]["answer_match_splits"] == ["test"]


def test_dpr_qa_contexts_corpus_needs_contexts(tmp_path: Path) -> None:
    f = FIXTURES / "dpr"
    with pytest.raises(ConfigError) as err:
        prepare("dpr-qa", tmp_path / "out", corpus="contexts", qa_splits={"test": str(f / "test.qa.csv")})
    assert err.value.key == "corpus"
    (tmp_path / "empty.json").write_text('[{"question": "q", "positive_ctxs": []}]')
    with pytest.raises(DataError, match="no contexts") as data_err:
        prepare("dpr-qa", tmp_path / "out", corpus="contexts", json_splits={"train": str(tmp_path / "empty.json")})
    assert data_err.value.path == str(tmp_path / "empty.json")
    assert not (tmp_path / "out").exists()


def test_dpr_qa_contexts_folder_is_evaluated_on_another_corpus(tmp_path: Path) -> None:
    _prepare_dpr(tmp_path / "nq", str(FIXTURES / "dpr" / "psgs_w100.tsv"))
    _prepare_dpr(tmp_path / "trivia", "contexts")
    hits = {}
    for corpus_dir in (None, tmp_path / "nq"):
        out = tmp_path / f"run-{corpus_dir.name if corpus_dir else 'own'}"
        record = evaluate("tiny", tmp_path / "trivia", "test", out, family="qa", corpus_dir=corpus_dir)
        assert record["n_queries"] == 2
        hits[out.name] = [row["hits@20"] for _, row in iter_jsonl(out / "per_query.jsonl")]
    # test-0 asks for Madrid (passage 3, only in the full corpus), test-1 for Rome (passage 6, in both)
    assert hits == {"run-own": [0.0, 1.0], "run-nq": [1.0, 1.0]}
    retrieved = {line.split()[2] for line in (tmp_path / "run-nq" / "run.trec").read_text().splitlines()}
    assert retrieved == set("123456")


def test_dpr_reads_gzipped_files_and_names_published_urls(tmp_path: Path) -> None:
    f = FIXTURES / "dpr"
    for name in ("psgs_w100.tsv", "test.qa.csv"):
        with gzip.open(tmp_path / f"{name}.gz", "wb") as fh:
            fh.write((f / name).read_bytes())
    assert len(list(dpr.read_passages(tmp_path / "psgs_w100.tsv.gz"))) == 6
    assert dpr.read_qa(tmp_path / "test.qa.csv.gz") == dpr.read_qa(f / "test.qa.csv")
    documented = "https://dl.fbaipublicfiles.com/dpr/data/retriever/nq-test.qa.csv"
    assert dpr.DPR_BASE + dpr.DPR_FILES["nq-test-qa"] == documented
    assert dpr.resolve(str(f / "test.qa.csv"), None) == f / "test.qa.csv"
    with pytest.raises(ConfigError) as err:
        dpr.resolve("nq-train", None)
    assert err.value.key == "cache"


def test_dpr_eval_on_stored_shards_reads_only_retrieved_passages_and_agrees(tmp_path: Path) -> None:
    from harness.models.registry import load_model
    from harness.retrieval import encode_corpus_shard

    _prepare_dpr(tmp_path / "nq", str(FIXTURES / "dpr" / "psgs_w100.tsv"))
    _prepare_dpr(tmp_path / "trivia", "contexts")
    corpus_file = tmp_path / "nq" / "corpus.jsonl"
    for shard in range(2):
        encode_corpus_shard(load_model("tiny"), corpus_file, tmp_path / "emb", shard, 2, 4, "float32", block=4)
    direct = evaluate("tiny", tmp_path / "trivia", "test", tmp_path / "direct", family="qa", corpus_dir=tmp_path / "nq")
    stored = evaluate("tiny", tmp_path / "trivia", "test", tmp_path / "stored", family="qa", corpus_dir=tmp_path / "nq",
                      embeddings=tmp_path / "emb")
    assert stored["metrics"]["hits@20"] == direct["metrics"]["hits@20"] == 1.0
    assert [row for _, row in iter_jsonl(tmp_path / "stored" / "per_query.jsonl")] == [
        row for _, row in iter_jsonl(tmp_path / "direct" / "per_query.jsonl")]
    assert (tmp_path / "stored" / "run.trec").read_bytes() == (tmp_path / "direct" / "run.trec").read_bytes()
    lines = corpus_file.read_text().splitlines()
    first = json.loads(lines[0])
    corpus_file.write_text("\n".join([json.dumps({**first, "_id": "999"}), *lines[1:]]) + "\n")
    with pytest.raises(DataError, match="not the one the embeddings were encoded from"):
        evaluate("tiny", tmp_path / "trivia", "test", tmp_path / "stale", family="qa", corpus_dir=tmp_path / "nq",
                 embeddings=tmp_path / "emb")
