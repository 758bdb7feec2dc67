"""A model is encoded as its authors configured it, so zero-shot rows equal the published ones.

all-MiniLM-L6-v2's ``sentence_bert_config.json`` says ``max_seq_length: 256`` for queries and
passages alike; sentence-transformers and MTEB use it, and so must the harness unless the config
says otherwise. Settings files that disagree with each other are refused, never half-applied.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from transformers import AutoTokenizer, BertConfig, BertModel

from harness.data.format import passage_text, read_corpus, read_qrels, read_queries
from harness.errors import ConfigError
from harness.stages.evaluate import evaluate
from harness.models.biencoder import EncoderSettings, settings_from_folder
from harness.models.registry import TINY_CONFIG, build_tiny, load_model, packaged_minilm_path


def test_the_packaged_minilm_folder_gives_its_authors_settings() -> None:
    found = settings_from_folder(packaged_minilm_path())
    assert found == {"pooling": "mean", "normalize": True, "similarity": "cosine", "do_lower_case": False,
                     "max_query_length": 256, "max_passage_length": 256}
    model = load_model("minilm")
    assert (model.settings.max_query_length, model.settings.max_passage_length) == (256, 256)


def test_the_config_still_sets_either_length() -> None:
    settings = load_model("minilm", {"max_query_length": 32}).settings
    assert (settings.max_query_length, settings.max_passage_length) == (32, 256)


def test_a_bare_transformers_folder_takes_the_tokenizers_length_capped_at_512(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **{**TINY_CONFIG, "max_position_embeddings": 1024}),
              add_pooling_layer=False).save_pretrained(tmp_path / "bare")
    tokenizer.save_pretrained(tmp_path / "bare")
    assert settings_from_folder(tmp_path / "bare") == {}
    assert load_model(str(tmp_path / "bare")).settings.max_passage_length == 512  # model_max_length
    config = json.loads((tmp_path / "bare" / "tokenizer_config.json").read_text())
    config["model_max_length"] = int(1e30)  # "no limit", as many tokenizers say
    (tmp_path / "bare" / "tokenizer_config.json").write_text(json.dumps(config))
    settings = load_model(str(tmp_path / "bare")).settings
    assert (settings.max_query_length, settings.max_passage_length) == (512, 512)


def test_do_lower_case_lowercases_before_tokenising(tmp_path: Path) -> None:
    model = build_tiny(EncoderSettings())
    model.tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path(), do_lower_case=False)  # a cased tokenizer
    model.save(tmp_path / "cased")
    st_config = tmp_path / "cased" / "sentence_bert_config.json"
    texts = ["Glacier REPAIR notes", "glacier repair notes"]
    cased = load_model(str(tmp_path / "cased")).encode(texts, "passage")
    assert not np.allclose(cased[0], cased[1])
    (tmp_path / "cased" / "lossboard.json").unlink()  # a plain sentence-transformers folder now
    st_config.write_text(json.dumps({"max_seq_length": 64, "do_lower_case": True}))
    lowered = load_model(str(tmp_path / "cased"))
    assert lowered.settings.do_lower_case and lowered.settings.max_passage_length == 64
    emb = lowered.encode(texts, "passage")
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6)


def test_a_checkpoint_reads_back_its_own_query_length(tmp_path: Path) -> None:
    build_tiny(EncoderSettings(max_query_length=24, max_passage_length=48)).save(tmp_path / "ckpt")
    assert settings_from_folder(tmp_path / "ckpt")["max_query_length"] == 24
    assert json.loads((tmp_path / "ckpt" / "sentence_bert_config.json").read_text())["max_seq_length"] == 48


def _st_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "st"
    shutil.copytree(packaged_minilm_path(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return folder


def _edit(path: Path, **values: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


@pytest.mark.parametrize("fault, message", [
    ("no pooling config", "lists a Pooling module but"),
    ("two pooling modes", "exactly one of"),
    ("max pooling", "exactly one of"),
    ("a dense module", "not supported"),
    ("wrong dimension", "word_embedding_dimension 768"),
    ("checkpoint disagrees", "pooling is 'cls' in lossboard.json but 'mean'"),
])
def test_settings_files_that_disagree_are_refused(tmp_path: Path, fault: str, message: str) -> None:
    folder = _st_copy(tmp_path)
    pooling = folder / "1_Pooling" / "config.json"
    if fault == "no pooling config":
        pooling.unlink()
    elif fault == "two pooling modes":
        _edit(pooling, pooling_mode_cls_token=True)
    elif fault == "max pooling":
        _edit(pooling, pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    elif fault == "a dense module":
        modules = json.loads((folder / "modules.json").read_text())
        modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
        (folder / "modules.json").write_text(json.dumps(modules))
    elif fault == "wrong dimension":
        _edit(pooling, word_embedding_dimension=768)
    else:
        (folder / "lossboard.json").write_text(json.dumps({"settings": {**EncoderSettings().to_dict(),
                                                                        "pooling": "cls"}}))
    with pytest.raises(ConfigError, match=message):
        settings_from_folder(folder)


@pytest.mark.slow
def test_zero_shot_minilm_on_cranfield_equals_sentence_transformers(shared_data: Path, tmp_path: Path) -> None:
    """The harness's default zero-shot row = SentenceTransformer.encode + exact search + trec_eval."""
    from sentence_transformers import SentenceTransformer

    folder = shared_data / "cranfield"
    ours = evaluate("minilm", folder, "test", tmp_path / "run")

    corpus, queries = read_corpus(folder / "corpus.jsonl"), read_queries(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv", queries).qrels
    doc_ids, query_ids = list(corpus), sorted(qrels)
    model = SentenceTransformer(str(packaged_minilm_path()))  # as its users run it: its own settings
    docs = model.encode([passage_text(corpus[d]) for d in doc_ids], batch_size=64)
    query_emb = model.encode([queries[q]["text"] for q in query_ids], batch_size=64)
    scores = query_emb @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(query_ids)}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    theirs = float(np.mean([per_query[q]["ndcg_cut_10"] for q in query_ids]))

    assert ours["protocol"]["encoder"]["max_passage_length"] == 256
    assert ours["metrics"]["ndcg@10"] == pytest.approx(theirs, abs=1e-4)
