"""The generative retriever: the identifier index against brute force, constrained decoding on a real
corpus (Cranfield, read from ../shared/data), SEAL's score against its formula, config errors, and
the gen-index -> gen-train (both phases) -> gen-rank path end to end on the tiny dataset."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import pytest
import torch
from snakemake.utils import validate

from harness.cli import main
from harness.errors import ConfigError
from harness.generative import decode
from harness.generative.index import IdentifierIndex
from harness.generative.model import load_seq2seq, load_tokenizer, tokens
from harness.grid import Grid, check, load_yaml

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(decode.DEFAULTS, beam=3, title_tokens=8, substring_tokens=3, query_tokens=8)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine more threads make these small models ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def occurs(needle: list[int], haystack: list[int]) -> int:
    n = len(needle)
    return sum(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


@pytest.fixture(scope="module")
def cranfield(request: pytest.FixtureRequest) -> dict:
    shared = REPO.parent / "shared" / "data" / "cranfield"
    if not shared.is_dir():
        pytest.skip("../shared/data is not present (it is not part of a user's clone)")
    docs = [json.loads(line) for line in (shared / "corpus.jsonl").open(encoding="utf-8")][:120]
    queries = [json.loads(line)["text"] for line in (shared / "queries.jsonl").open(encoding="utf-8")][:4]
    tok = load_tokenizer("minilm")
    titles = tokens(tok, [d["title"] for d in docs], 64)
    bodies = tokens(tok, [d["text"] for d in docs], 512)
    index = IdentifierIndex.build([d["_id"] for d in docs], titles, bodies, [[] for _ in docs], len(tok))
    return {"docs": docs, "queries": queries, "titles": titles, "bodies": bodies, "index": index, "tok": tok}


def test_index_answers_as_brute_force(cranfield: dict) -> None:
    index, bodies, titles = cranfield["index"], cranfield["bodies"], cranfield["titles"]
    rng = random.Random(0)
    for _ in range(40):
        d = rng.randrange(len(bodies))
        start = rng.randrange(len(bodies[d]) - 3)
        ngram = bodies[d][start:start + rng.randint(1, 3)]
        per_passage = [occurs(ngram, t) + occurs(ngram, b) for t, b in zip(titles, bodies)]
        assert index.count(ngram) == sum(per_passage)
        rows, counts = index.passages(ngram)
        assert dict(zip(rows.tolist(), counts.tolist())) == {i: c for i, c in enumerate(per_passage) if c}
        following = {seq[i + len(ngram)] for seq in [*titles, *bodies] for i in range(len(seq) - len(ngram))
                     if seq[i:i + len(ngram)] == ngram}
        words = {t for t in index.next_tokens(ngram).tolist() if t < index.vocab_size}
        assert words == following
    assert index.count([999_999]) == 0 and index.next_tokens([999_999]).size == 0


def test_constrained_decoding_generates_only_corpus_identifiers(cranfield: dict) -> None:
    model, tok = load_seq2seq("tiny-seq2seq", seed=3)
    keys = decode.generate_keys(model, tok, cranfield["index"], cranfield["queries"], ["title", "substring"], SETTINGS)
    assert all(keys), "every query got identifiers"
    titles, bodies = cranfield["titles"], cranfield["bodies"]
    for query_keys in keys:
        for k in query_keys:
            if k.view == "title":  # a whole title
                assert list(k.tokens) in titles
            else:  # a substring of some passage (its title or body)
                assert any(occurs(list(k.tokens), seq) for seq in [*titles, *bodies]), tok.decode(list(k.tokens))
            assert k.logprob < 0


def test_identifier_score_is_seals_formula() -> None:
    logprob, count, n = [-2.0, -0.5, -12.0], [3, 40, 1], 10_000
    got = decode.identifier_scores(torch.tensor(logprob), torch.tensor(count), n, smoothing=5.0, exponent=2.0)
    for value, lp, c in zip(got.tolist(), logprob, count):
        p, prior = math.exp(lp), (c + 5.0) / (n + 5.0)
        expected = max(0.0, math.log(p * (1 - prior)) - math.log(prior * (1 - p))) ** 2
        assert value == pytest.approx(expected, rel=1e-9)
    assert got[2].item() == 0.0  # less likely than its corpus frequency: no evidence


def test_passage_score_sums_discounted_keys() -> None:
    # two passages: [5 6 7] and [5 6 8]; keys 5 6 (in both) and 6 7 (in the first)
    index = IdentifierIndex.build(["a", "b"], [[], []], [[5, 6, 7], [5, 6, 8]], [[], []], 10)
    keys = [decode.Key("substring", (5, 6), (5, 6), -0.3), decode.Key("substring", (6, 7), (6, 7), -0.2)]
    ranked = decode.rank(keys, index, dict(decode.DEFAULTS))
    w = {k.tokens: k.score for k in keys}
    best, second = sorted(w.values(), reverse=True)
    assert ranked.rows == [0, 1]
    # passage a: the best key in full, the other discounted by 1 - 0.8 + 0.8 * |{new tokens}| / 2
    first, other = ((6, 7), (5, 6)) if w[(6, 7)] >= w[(5, 6)] else ((5, 6), (6, 7))
    assert ranked.scores[0] == pytest.approx(w[first] + w[other] * (1 - 0.8 + 0.8 * 1 / 2))
    assert ranked.scores[1] == pytest.approx(w[(5, 6)])
    assert best >= second > 0


@pytest.fixture
def config() -> dict:
    cfg = load_yaml(REPO / "config" / "config.yaml")  # the quickstart, with its generative model
    validate(cfg, str(REPO / "config" / "config.schema.yaml"), set_default=True)
    return cfg


def test_generative_rows_and_baseline(config: dict) -> None:
    grid = Grid(config)
    [model] = grid.generative_models()
    assert grid.rows_of(model, "synthetic") == ["gen", "ltrgr"] and grid.baseline_of(model) == "gen"
    assert list(grid.rows(model, "synthetic", "synthetic")) == ["zero-shot", "gen", "ltrgr"]
    assert "minilm" in grid.dense_models() and grid.baseline_of("minilm") == "infonce"


@pytest.mark.parametrize("change, key", [
    (lambda m, c: m.pop("identifiers"), "models.minilm-gen.identifiers"),
    (lambda m, c: m.update(identifiers=[]), "models.minilm-gen.identifiers"),
    (lambda m, c: m.update(path="{tmp}"), "models.minilm-gen.path"),
    (lambda m, c: c.setdefault("resources", {}).update(gen_index={"mem_mb": 1}), "resources.gen_index.mem_mb"),
])
def test_bad_generative_config_names_its_key(config: dict, tmp_path: Path, change, key: str) -> None:
    cfg = copy.deepcopy(config)
    spec = cfg["models"]["minilm-gen"]
    change(spec, cfg)
    if spec.get("path") == "{tmp}":
        (tmp_path / "config.json").write_text("{}")
        spec["path"] = str(tmp_path)  # a model folder without a tokenizer
    with pytest.raises(ConfigError) as err:
        check(cfg)
    assert err.value.key == key


@pytest.mark.slow
def test_end_to_end_on_the_tiny_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    views = ["--views", "title", "substring"]
    gen = json.dumps({"decode": SETTINGS, "margin": 1.0, "random_offset": 0.5, "generation_weight": 1.0})
    common = [*views, "--dataset", str(tiny_dataset), "--threads", "1"]
    assert main(["gen-index", "--model", "tiny-seq2seq", *common, "--out", str(tmp_path / "index")]) == 0
    train = [*common, "--index", str(tmp_path / "index"), "--generative", gen,
             "--options", json.dumps({"batch_size": 4, "max_steps": 2})]
    assert main(["gen-train", "--model", "tiny-seq2seq", *train, "--out", str(tmp_path / "gen")]) == 0
    assert main(["gen-rank", "--model", str(tmp_path / "gen"), *common, "--index", str(tmp_path / "index"),
                 "--generative", gen, "--keys-out", str(tmp_path / "ranking.jsonl")]) == 0
    ranking = [json.loads(line) for line in (tmp_path / "ranking.jsonl").open()]
    assert len(ranking) == 32
    assert main(["gen-train", "--phase", "ltrgr", "--model", str(tmp_path / "gen"), *train,
                 "--ranking", str(tmp_path / "ranking.jsonl"), "--out", str(tmp_path / "ltrgr")]) == 0
    summary = json.loads((tmp_path / "ltrgr" / "train_summary.json").read_text())
    assert summary["loss"]["name"] == "ltrgr"
    out = tmp_path / "run"
    assert main(["gen-rank", "--model", str(tmp_path / "ltrgr"), *common, "--index", str(tmp_path / "index"),
                 "--generative", gen, "--split", "test", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["kind"] == "generative" and record["n_queries"] == 16
    assert 0 <= record["empty_rankings"] <= 16
    per_query = [json.loads(line) for line in (out / "per_query.jsonl").open()]
    assert len(per_query) == 16 and all("ndcg@10" in row for row in per_query)
    trec = (out / "run.trec").read_text().splitlines()
    assert all(len(line.split()) == 6 for line in trec)


def test_phase_one_is_deterministic_for_its_seed(tiny_dataset: Path, tmp_path: Path) -> None:
    common = ["--views", "title", "substring", "--dataset", str(tiny_dataset), "--threads", "1"]
    assert main(["gen-index", "--model", "tiny-seq2seq", *common, "--out", str(tmp_path / "index")]) == 0
    train = [*common, "--index", str(tmp_path / "index"), "--generative", json.dumps({"decode": SETTINGS}),
             "--options", json.dumps({"batch_size": 4, "max_steps": 2})]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["gen-train", "--model", "tiny-seq2seq", *train, "--seed", seed, "--out", str(tmp_path / name)]) == 0
    weights = {n: (tmp_path / n / "model.safetensors").read_bytes() for n in "abc"}
    assert weights["a"] == weights["b"] and weights["a"] != weights["c"]


def test_batched_passage_scores_match_one_key_at_a_time() -> None:
    """Phase 2's one-forward passage scores equal Σ_k c_k · w(n_k, q) from one teacher-forced pass per key."""
    from harness.generative.model import encode_inputs, view_input
    from harness.generative.train import passage_scores

    model, tok = load_seq2seq("tiny-seq2seq", seed=5)
    model.eval()
    eos = model.generation_config.eos_token_id
    queries = ["where is the old mill", "who built the bridge"]
    passages = [[["title", [1996, 2214], 3], ["substring", [2214, 4971, 2003], 7], ["substring", [2214], 40]],
                [["substring", [2214, 4971, 2003], 7]],
                [],
                [["title", [1996, 2958], 2]]]
    owners = [queries[0], queries[0], queries[1], queries[1]]
    n_tokens = 10**16  # a prior so small that a random model's keys all count as evidence
    got = passage_scores(model, tok, owners, passages, n_tokens, SETTINGS, eos)
    for score, query, keys in zip(got.tolist(), owners, passages):
        expected, covered = 0.0, set()
        for view, toks, count in keys:
            target = [*toks, *([] if view == "substring" else [eos])]
            with torch.no_grad():
                logits = model(**encode_inputs(tok, [view_input(query, view)]),
                               labels=torch.tensor([target])).logits[0].double()
            lp = sum(logits[t].log_softmax(-1)[y].item() for t, y in enumerate(target))
            prior = (count + 5.0) / (n_tokens + 5.0)
            w = max(0.0, math.log(math.exp(lp) * (1 - prior)) - math.log(prior * (1 - math.exp(lp)))) ** 2
            c = 1.0 if not covered else 1 - 0.8 + 0.8 * len(set(toks) - covered) / len(set(toks))
            covered |= set(toks)
            expected += c * w
        assert score == pytest.approx(expected, rel=1e-4, abs=1e-6)
        assert (expected > 0) == bool(keys)


def test_sigterm_then_rerun_resumes_to_the_uninterrupted_checkpoint(tiny_dataset: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase 1 stopped by SIGTERM (sent once its first resume state is written, as a scheduler would
    signal the job mid-run) writes its resume state and fails; the rerun resumes from it and saves the
    same weights as a run that was never stopped."""
    import os
    import signal

    from harness.errors import TrainingError
    from harness.generative import train as gen_train
    from harness.generative.train import GenTrainArgs

    common = ["--views", "title", "substring", "--dataset", str(tiny_dataset), "--threads", "1"]
    assert main(["gen-index", "--model", "tiny-seq2seq", *common, "--out", str(tmp_path / "index")]) == 0
    steps = 6

    def args(out: str, resume: Path | None) -> GenTrainArgs:
        return GenTrainArgs(model="tiny-seq2seq", dataset=tiny_dataset, index=tmp_path / "index", out=tmp_path / out,
                            views=["title", "substring"], settings=SETTINGS, batch_size=4, max_steps=steps,
                            checkpoint_every=2, resume_dir=resume)

    gen_train.train(args("ref", None))
    save, signalled = gen_train.save_resume_state, []

    def save_then_signal(path: Path, state: dict) -> None:
        save(path, state)
        if not signalled:
            signalled.append(state["step"])
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(gen_train, "save_resume_state", save_then_signal)
    resume = tmp_path / "resume"
    with pytest.raises(TrainingError, match="stopped by SIGTERM at step 3"):
        gen_train.train(args("ckpt", resume))
    assert signalled == [2] and not (tmp_path / "ckpt").exists()
    assert torch.load(resume / "resume.pt", weights_only=False)["step"] == 3
    gen_train.train(args("ckpt", resume))
    assert (tmp_path / "ckpt" / "model.safetensors").read_bytes() == (tmp_path / "ref" / "model.safetensors").read_bytes()
    assert not resume.exists()


def test_warm_start_copies_self_attention_and_groups_the_new_weights() -> None:
    from harness.generative.model import build_tiny, cross_attention_from_self
    from harness.generative.train import parameter_groups

    model, _ = build_tiny(seed=2)
    layers = model.decoder.bert.encoder.layer
    assert not torch.equal(layers[0].crossattention.self.query.weight, layers[0].attention.self.query.weight)
    cross_attention_from_self(model)
    for layer in layers:
        own, cross = layer.attention.state_dict(), layer.crossattention.state_dict()
        assert own.keys() == cross.keys() and all(torch.equal(own[k], cross[k]) for k in own)
    old, new = parameter_groups(model, 1e-4, 1e-3)
    names = {id(p): n for n, p in model.named_parameters()}
    assert (old["lr"], new["lr"]) == (1e-4, 1e-3)
    assert {names[id(p)] for p in new["params"]} == {n for n in names.values()
                                                     if "crossattention." in n or "cls.predictions." in n}
    assert len(old["params"]) + len(new["params"]) == len(list(model.parameters()))
    assert all("word_embeddings" not in names[id(p)] for p in new["params"])  # the tied output embedding
    assert parameter_groups(model, 1e-4, None)[1]["lr"] == 1e-4
