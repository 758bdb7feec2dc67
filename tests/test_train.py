"""The training loop on the tiny model: checkpoints, logs, GradCache, determinism, resume, faults."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, TrainingError
from harness.losses import REGISTRY, get_loss
from harness.models.registry import build_tiny, load_model
from harness.models.biencoder import EncoderSettings
from harness.train import BatchBuilder, TrainArgs, Trainer, loss_step, train
from harness.data.format import read_corpus, read_queries, read_train_groups

SETTINGS = {"max_query_length": 16, "max_passage_length": 24}


def _args(dataset: Path, out: Path, **kw) -> TrainArgs:
    base = dict(model="tiny", dataset=dataset, loss="infonce", out=out, model_settings=SETTINGS, seed=3,
                batch_size=8, hard_negatives=1, max_positives=2, max_steps=4, learning_rate=1e-3)
    base.update(kw)
    return TrainArgs(**base)


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def test_checkpoint_loads_in_sentence_transformers(tiny_dataset: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    out = train(_args(tiny_dataset, tmp_path / "ckpt"))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all({"step", "loss", "lr", "examples_per_s"} <= set(r) for r in log)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["loss"]["name"] == "infonce"
    assert summary["loss"]["params"]["temperature"] == 0.05
    card = json.loads((out / "lossboard.json").read_text())["loss"]  # what the site shows of the loss
    assert card == {**summary["loss"], **REGISTRY["infonce"].card()}
    assert card["doc"].startswith("InfoNCE with in-batch") and card["citation"].startswith("@")

    ours = load_model(str(out))
    assert ours.settings.max_passage_length == 24  # read back from lossboard.json, not passed again
    texts = ["notes on the repair of the castle", "what about comet maps"]
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(texts), ours.encode(texts, "passage"), atol=1e-5)


def test_training_changes_weights_and_is_deterministic(tiny_dataset: Path, tmp_path: Path) -> None:
    a = _weights(train(_args(tiny_dataset, tmp_path / "a")))
    b = _weights(train(_args(tiny_dataset, tmp_path / "b")))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    initial = build_tiny(EncoderSettings.from_dict(SETTINGS)).transformer.state_dict()
    moved = [n for n in a if n in initial and not np.allclose(a[n], initial[n].numpy())]
    assert moved, "training did not change any weight"


def test_batches_share_documents_and_label_every_known_positive(tiny_dataset: Path) -> None:
    groups = read_train_groups(tiny_dataset / "train.jsonl")
    args = _args(tiny_dataset, Path("unused"))
    builder = BatchBuilder(groups, args, None)
    batch = builder.build(0, read_queries(tiny_dataset / "queries.jsonl"), read_corpus(tiny_dataset / "corpus.jsonl"))
    assert batch.labels.shape == (8, len(batch.docs))
    assert len(set(batch.docs)) == len(batch.docs)  # a document shared by two queries is one column
    picked = builder.batch(0)
    corpus = read_corpus(tiny_dataset / "corpus.jsonl")
    text_to_id = {f"{d['title']} {d['text']}": i for i, d in corpus.items()}
    cols = [text_to_id[t] for t in batch.docs]
    for i, g in enumerate(picked):
        for j, doc_id in enumerate(cols):
            expected = g.grade(doc_id) if doc_id in g.positives else 0
            assert batch.labels[i, j] == expected


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss", ["infonce", "mw"])
def test_grad_cache_matches_full_batch_gradient(tiny_dataset: Path, loss: str) -> None:
    groups = read_train_groups(tiny_dataset / "train.jsonl")
    builder = BatchBuilder(groups, _args(tiny_dataset, Path("unused")), None)
    batch = builder.build(0, read_queries(tiny_dataset / "queries.jsonl"), read_corpus(tiny_dataset / "corpus.jsonl"))
    grads, losses = [], []
    for chunk in (0, 3):
        torch.manual_seed(0)
        model = build_tiny(EncoderSettings.from_dict(SETTINGS)).double()
        model.eval()  # no dropout: full-batch and chunked forwards then see the same network
        losses.append(loss_step(model, get_loss(loss), batch, chunk))
        grads.append(_grads(model))
    assert torch.allclose(losses[0], losses[1], atol=1e-10)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-8, rtol=1e-6)


def test_non_finite_loss_names_the_step(tiny_dataset: Path, tmp_path: Path) -> None:
    class Exploding(torch.nn.Module):
        needs_teacher = False

        def forward(self, scores, labels, teacher=None):
            return scores.sum() * math.inf

        def get_config_dict(self):
            return {}

    trainer = Trainer(_args(tiny_dataset, tmp_path / "x"))
    trainer.loss_fn = Exploding()
    with pytest.raises(TrainingError, match=r"loss 'infonce' is (inf|nan) at step 1"):
        trainer.train()


@pytest.mark.slow
def test_sigterm_then_rerun_resumes_and_matches_uninterrupted(tiny_dataset: Path, tmp_path: Path) -> None:
    steps = 40
    reference = _weights(train(_args(tiny_dataset, tmp_path / "ref", max_steps=steps, batch_size=4, epochs=5,
                                     checkpoint_every=2)))

    out, resume = tmp_path / "ckpt", tmp_path / "resume"
    cmd = [sys.executable, "-m", "harness.cli", "train", "--model", "tiny", "--settings", json.dumps(SETTINGS),
           "--dataset", str(tiny_dataset), "--loss", "infonce", "--seed", "3",
           "--options", json.dumps({"batch_size": 4, "hard_negatives": 1, "max_positives": 2, "epochs": 5,
                                    "max_steps": steps, "learning_rate": 1e-3, "checkpoint_every": 2}),
           "--resume-dir", str(resume), "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    state_file = resume / "resume.pt"
    deadline = time.time() + 120
    while not state_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "stopped by SIGTERM" in err
    assert not out.exists()
    state = torch.load(state_file, weights_only=False)
    assert 0 < state["step"] < steps

    subprocess.run(cmd, check=True, capture_output=True)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    resumed = _weights(out)
    for name in reference:
        np.testing.assert_array_equal(reference[name], resumed[name])
    assert not resume.exists()


def test_with_a_teacher_the_positive_is_its_top_1(tiny_dataset: Path) -> None:
    groups = read_train_groups(tiny_dataset / "train.jsonl")
    # the teacher prefers each query's first hard negative to its judged positives
    teacher = {g.query_id: {**{d: 0.5 for d in g.positives}, g.negatives[0]: 0.9, g.negatives[1]: 0.1}
               for g in groups}
    args = _args(tiny_dataset, Path("unused"))
    builder = BatchBuilder(groups, args, teacher)
    batch = builder.build(0, read_queries(tiny_dataset / "queries.jsonl"), read_corpus(tiny_dataset / "corpus.jsonl"))
    corpus = read_corpus(tiny_dataset / "corpus.jsonl")
    text_to_id = {f"{d['title']} {d['text']}": i for i, d in corpus.items()}
    cols = [text_to_id[t] for t in batch.docs]
    for i, g in enumerate(builder.batch(0)):
        listed = [cols[j] for j in range(len(cols)) if not math.isnan(batch.teacher[i, j])]
        expected = g.negatives[0] if g.negatives[0] in listed else max(listed, key=teacher[g.query_id].__getitem__)
        assert [cols[j] for j in range(len(cols)) if batch.labels[i, j] > 0] == [expected]


def test_max_steps_wins_over_epochs(tiny_dataset: Path, tmp_path: Path) -> None:
    groups = len(read_train_groups(tiny_dataset / "train.jsonl"))
    assert groups // 8 < 6  # one epoch of batches of 8 ends before step 6
    out = train(_args(tiny_dataset, tmp_path / "ckpt", max_steps=6, epochs=1))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6] and log[-1]["epoch"] == 5 // (groups // 8)


def test_fewer_hard_negatives_than_asked_is_an_error(tiny_dataset: Path, tmp_path: Path) -> None:
    fewest = min(len(g.negatives) for g in read_train_groups(tiny_dataset / "train.jsonl"))
    with pytest.raises(ConfigError, match=rf"train\.jsonl, key 'hard_negatives': {fewest + 1} hard negatives per "
                                          rf"query asked, but \d+ of \d+ training groups have fewer \(as few as {fewest}\)"):
        Trainer(_args(tiny_dataset, tmp_path / "ckpt", hard_negatives=fewest + 1))
