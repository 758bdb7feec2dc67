"""The synthesize stage (CADET's synthetic queries, arXiv 2505.19274): templates, the checks on each
completion, the filter with the packaged MiniLM, and the stage's determinism, resume and counts on a
tiny random causal LM."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_causal_lm
from harness.data.format import (TrainGroup, read_qrels, read_queries, read_train_groups, write_corpus, write_meta,
                                 write_qrels, write_queries, write_train_groups)
from harness.errors import ConfigError
from harness.models.registry import load_model
from harness.models.teacher import score_pairs
from harness.stages import synthesize as stage
from harness.synthesis.filter import cadet_filter
from harness.synthesis.generate import Completion, check_query, passage_seed
from harness.synthesis.prompts import QUERY_TYPES, load_template, load_templates


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine make generate 15x slower
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "gpt2", eos_bias=2.5, newline_bias=2.5, ascii_bias=1.5)


@pytest.mark.parametrize("text, finished, query, reason", [
    ("What is a glacier?", True, "What is a glacier?", None),
    ("  what is a glacier\nand more text that was cut", False, "what is a glacier", None),
    ("", True, "", "empty"),
    ("   \n  what", True, "what", None),
    ("\n\n", True, "", "empty"),
    ("a query that never ends", False, "a query that never ends", "too_long"),
    ("caf\ufffd au lait", True, "caf\ufffd au lait", "not_utf8"),
    ("lone \udc80 surrogate", True, "lone \udc80 surrogate", "not_utf8"),
])
def test_check_query(text: str, finished: bool, query: str, reason: str | None) -> None:
    assert check_query(Completion(text, finished)) == (query, reason)


def test_every_template_renders_its_placeholders() -> None:
    templates = load_templates(list(QUERY_TYPES))
    assert set(templates) == set(QUERY_TYPES)
    for qtype, tpl in templates.items():
        text = tpl.render("PASSAGE {x}", ["ex one", "ex two"])
        assert "PASSAGE {x}" in text and not text.startswith("#") and "arXiv" not in text
        assert ("- ex one\n- ex two" in text) == (qtype == "user_few_shot")
        assert len(tpl.sha256) == 64


@pytest.mark.parametrize("body, qtype, message", [
    ("Write a query.\n", "question", "has no placeholder {passage}"),
    ("Passage: {passage}\n", "user_few_shot", "has no placeholder {examples}"),
    ("{passage} {topic}\n", "claim", "unknown placeholder(s) {topic}"),
    ("{passage} {\n", "title", "not valid format text"),
])
def test_bad_template_names_the_config_key(tmp_path: Path, body: str, qtype: str, message: str) -> None:
    (tmp_path / "t.txt").write_text("# a comment\n" + body)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_template(qtype, str(tmp_path / "t.txt"), key="train_sets.syn.generator")
    assert err.value.key == f"train_sets.syn.generator.prompts.{qtype}"


def test_unknown_query_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match="unknown query type 'summary'") as err:
        load_templates(["question", "summary"], key="train_sets.syn.generator")
    assert err.value.key == "train_sets.syn.generator.types"


@pytest.mark.slow
def test_filter_keeps_a_query_only_when_its_source_comes_first() -> None:
    """MiniLM retrieves and (as a bi-encoder teacher) reranks; hand-written queries whose source
    passage does, or does not, come first."""
    corpus = {
        "water": "Water boils at 100 degrees Celsius at sea level; at altitude the boiling point is lower.",
        "violin": "The violin is a string instrument played with a bow; Stradivari built famous violins.",
        "glacier": "A glacier is a persistent body of dense ice that moves under its own weight.",
        "harbor": "A harbor is a sheltered body of water where ships can dock and unload cargo.",
        "comet": "A comet is an icy body that releases gas when it passes close to the Sun, forming a tail.",
        "castle": "A castle is a fortified residence built in the Middle Ages by nobles.",
        "engine": "A steam engine turns the heat of burning coal into mechanical work.",
        "orchard": "An orchard is a plantation of fruit trees such as apples and pears.",
    }
    queries = ["at what temperature does water boil", "who made famous violins",
               "icy body with a tail near the sun", "where do ships unload cargo"]
    sources = ["water", "violin", "glacier", "violin"]  # the last two name another passage than the one they ask for
    minilm = load_model("minilm")
    doc_ids = list(corpus)
    doc_emb = minilm.encode([corpus[d] for d in doc_ids], "passage")
    scorer = lambda pairs: score_pairs("bi-encoder", "minilm", pairs)  # noqa: E731
    decisions = cadet_filter(queries, sources, doc_ids, doc_emb, lambda ids: {d: corpus[d] for d in ids},
                             minilm, scorer, depth=3)
    assert [d.reason for d in decisions] == [None, None, "outranked", "not_retrieved"]
    # a kept query's negatives: its other two candidates, by descending teacher score (here: cosine)
    q = minilm.encode([queries[0]], "query")[0]
    cosine = {d: float(doc_emb[doc_ids.index(d)] @ q) for d in doc_ids}
    top3 = sorted(doc_ids, key=lambda d: -cosine[d])[:3]
    assert top3[0] == "water" and decisions[0].negatives == top3[1:]


def corpus_dir(root: Path) -> Path:
    """Four passages with two training queries (the few-shot pool): small enough that a random
    generator's queries sometimes find their passage first."""
    root.mkdir(parents=True)
    write_corpus(root / "corpus.jsonl", [(f"d{i}", topic.title(), f"notes on the {topic}") for i, topic in
                                         enumerate(["river", "castle", "engine", "violin"])])
    write_queries(root / "queries.jsonl", [("q0", "river notes", None), ("q1", "castle notes", None)])
    write_qrels(root / "qrels" / "train.tsv", {"q0": {"d0": 1}, "q1": {"d1": 1}})
    write_train_groups(root / "train.jsonl", [TrainGroup("q0", ["d0"], ["d1"]), TrainGroup("q1", ["d1"], ["d2"])])
    write_meta(root, {"name": "four passages"})
    return root


GENERATOR = {"backend": "transformers", "types": ["question", "keywords", "user_few_shot"], "passages": 4,
             "per_type": 4, "seed": 7, "few_shot": 2, "sampling": {"max_new_tokens": 10}}


def run_stage(data: Path, out: Path, work: Path, model: Path, **generator) -> dict:
    return stage.synthesize(data, out, work, {**GENERATOR, "model": str(model), **generator},
                            key="train_sets.syn.generator", retriever="tiny", depth=3,
                            teacher_kind="bi-encoder", teacher_model="tiny", record={"corpus": "tiny"},
                            progress=False)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_stage_is_deterministic_resumes_and_counts(tmp_path: Path, tiny_lm: Path, one_thread,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = corpus_dir(tmp_path / "tiny")
    meta = run_stage(data, tmp_path / "a", tmp_path / "work-a", tiny_lm, chunk=1)

    # per passage seeds: another chunk size, the same bytes
    run_stage(data, tmp_path / "b", tmp_path / "work-b", tiny_lm, chunk=3)
    assert files(tmp_path / "a") == files(tmp_path / "b")

    # killed after its first chunk: the rerun generates only the three chunks left, and the same bytes
    calls = []
    real = stage.load_backend

    def dies_after_one_chunk(*args, **kwargs):
        backend = real(*args, **kwargs)
        generate = backend.generate

        def once(requests, n):
            if calls:
                raise KeyboardInterrupt
            calls.append(len(requests))
            return generate(requests, n)
        backend.generate = once
        return backend
    monkeypatch.setattr(stage, "load_backend", dies_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_stage(data, tmp_path / "c", tmp_path / "work-c", tiny_lm, chunk=1)
    assert sorted(p.name for p in (tmp_path / "work-c").glob("chunk-*")) == ["chunk-000000.jsonl"]
    assert not (tmp_path / "c").exists()
    calls.clear()
    monkeypatch.setattr(stage, "load_backend", lambda *a, **k: counting(real(*a, **k), calls))
    run_stage(data, tmp_path / "c", tmp_path / "work-c", tiny_lm, chunk=1)
    assert calls == [1, 1, 1]
    assert files(tmp_path / "a") == files(tmp_path / "c")

    # counts: per type, generated = passages x per_type = kept + dropped, as synthesis.jsonl says
    out = tmp_path / "a"
    rows = [json.loads(line) for line in (out / "synthesis.jsonl").read_text().splitlines()]
    types = meta["synthesis"]["types"]
    assert list(types) == GENERATOR["types"]
    for qtype, c in types.items():
        of_type = [r for r in rows if r["type"] == qtype]
        assert c["generated"] == len(of_type) == 4 * 4
        assert c["kept"] == sum(r["reason"] is None for r in of_type)
        assert c["dropped"] == {k: v for k, v in c["dropped"].items()} and c["kept"] + sum(c["dropped"].values()) == 16
        assert {k: v for k, v in c["dropped"].items() if v} == dict(Counter(r["reason"] for r in of_type if r["reason"]))
    assert json.loads((out / "meta.json").read_text())["synthesis"] == meta["synthesis"]
    dropped = Counter(r["reason"] for r in rows if r["reason"])
    assert dropped["not_utf8"] and dropped["too_long"] and sum(c["kept"] for c in types.values()) > 0

    # an ordinary prepared dataset: kept queries, qrels to the source passage, groups with negatives
    queries = read_queries(out / "queries.jsonl")
    kept = {r["query_id"]: r for r in rows if r["reason"] is None}
    assert {q: v["text"] for q, v in queries.items()} == {q: r["query"] for q, r in kept.items()}
    assert read_qrels(out / "qrels" / "train.tsv").qrels == {q: {r["passage_id"]: 1} for q, r in kept.items()}
    groups = read_train_groups(out / "train.jsonl")
    assert [g.query_id for g in groups] == list(kept)
    assert all(g.positives == [kept[g.query_id]["passage_id"]] and len(g.negatives) == 2 for g in groups)
    assert (out / "corpus.jsonl").read_bytes() == (data / "corpus.jsonl").read_bytes()
    source = meta["source"]
    assert source["sampling"] == {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 10}
    assert set(source["prompts"]) == set(GENERATOR["types"]) and source["filter"]["depth"] == 3
    assert source["corpus_sha256"] == json.loads((data / "meta.json").read_text())["sha256"]["corpus.jsonl"]


def counting(backend, calls: list[int]):
    generate = backend.generate

    def counted(requests, n):
        calls.append(len(requests))
        return generate(requests, n)
    backend.generate = counted
    return backend


def test_few_shot_examples_come_from_the_training_queries(tmp_path: Path) -> None:
    data = corpus_dir(tmp_path / "tiny")
    pool = stage.few_shot_pool(data)
    train_ids = [g.query_id for g in read_train_groups(data / "train.jsonl")]
    assert pool == [read_queries(data / "queries.jsonl")[q]["text"] for q in train_ids]
    bare = tmp_path / "bare"
    bare.mkdir()
    write_corpus(bare / "corpus.jsonl", [("d1", "", "text")])
    with pytest.raises(Exception, match="few_shot_from"):
        stage.few_shot_pool(bare)
    assert passage_seed(7, "d1") == passage_seed(7, "d1") != passage_seed(8, "d1")


def test_a_generator_that_cannot_load_names_the_key(tmp_path: Path) -> None:
    data = corpus_dir(tmp_path / "tiny")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load the generator") as err:
        run_stage(data, tmp_path / "out", tmp_path / "work", tmp_path / "empty", passages=1, types=["title"])
    assert err.value.key == "train_sets.syn.generator.model"


def test_the_schema_defaults_are_the_stage_defaults() -> None:
    """`harness synthesize` run by hand decodes as the grid does: the schema's defaults of a generator are
    the stage's (GENERATOR_DEFAULTS, Sampling)."""
    import dataclasses

    import yaml

    from harness.synthesis.generate import Sampling

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml").read_text())
    generator = schema["properties"]["train_sets"]["additionalProperties"]["properties"]["generator"]["properties"]
    defaults = {k: v["default"] for k, v in generator.items() if "default" in v and k != "sampling"}
    assert defaults == {k: v for k, v in stage.GENERATOR_DEFAULTS.items() if k != "sampling"}
    assert {k: v["default"] for k, v in generator["sampling"]["properties"].items()} == dataclasses.asdict(Sampling())
    assert generator["types"]["default"] == list(QUERY_TYPES)


def test_vllm_is_imported_only_when_asked_for() -> None:
    """The vLLM backend imports vllm lazily; without it installed, the error names the backend key."""
    import importlib.util
    import sys

    from harness.synthesis.generate import Sampling, load_backend

    assert "vllm" not in sys.modules
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(ConfigError, match=r"lossboard\[gpu\]") as err:
        load_backend("vllm", "some/model", Sampling(), key="train_sets.syn.generator")
    assert err.value.key == "train_sets.syn.generator.backend"
