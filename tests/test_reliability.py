"""A harness that never lies or loses work: determinism, atomic outputs under SIGKILL, clear faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.errors import TrainingError
from harness.io import atomic_dir
from harness.train import TrainArgs, Trainer

HARNESS = [sys.executable, "-m", "harness.cli"]
SETTINGS = json.dumps({"max_query_length": 16, "max_passage_length": 24})
OUTPUTS = ("metrics.json", "per_query.jsonl", "run.trec")


def _evaluate(dataset: Path, out: Path) -> list[str]:
    return [*HARNESS, "evaluate", "--model", "tiny", "--settings", SETTINGS, "--dataset", str(dataset),
            "--split", "test", "--out", str(out)]


def _metric_values(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())["metrics"]


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


@pytest.fixture(scope="module")
def reference(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(_evaluate(tiny_dataset, out), check=True, capture_output=True)
    return out


@pytest.mark.slow
def test_evaluate_twice_gives_identical_numbers_and_run_files(tiny_dataset: Path, reference: Path,
                                                              tmp_path: Path) -> None:
    subprocess.run(_evaluate(tiny_dataset, tmp_path), check=True, capture_output=True)
    assert (tmp_path / "run.trec").read_bytes() == (reference / "run.trec").read_bytes()
    assert (tmp_path / "per_query.jsonl").read_bytes() == (reference / "per_query.jsonl").read_bytes()
    assert _metric_values(tmp_path) == _metric_values(reference)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.5, 3.0, 4.5])
def test_sigkill_leaves_complete_outputs_or_none(tiny_dataset: Path, reference: Path, tmp_path: Path,
                                                 delay: float) -> None:
    proc = subprocess.Popen(_evaluate(tiny_dataset, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = {name for name in _files(tmp_path) if not name.startswith(".")}
    assert visible <= set(OUTPUTS)  # temporaries are hidden names, renamed into place when complete
    for name in visible:  # whatever is there under its final name is complete
        if name == "metrics.json":
            assert _metric_values(tmp_path) == _metric_values(reference)
        else:
            assert (tmp_path / name).read_bytes() == (reference / name).read_bytes()
    subprocess.run(_evaluate(tiny_dataset, tmp_path), check=True, capture_output=True)
    for name in ("run.trec", "per_query.jsonl"):
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes()
    assert _metric_values(tmp_path) == _metric_values(reference)


@pytest.mark.slow
def test_sigkilled_training_reruns_to_the_uninterrupted_model(tiny_dataset: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    options = json.dumps({"batch_size": 4, "max_positives": 2, "epochs": 5, "max_steps": 40, "learning_rate": 1e-3,
                          "checkpoint_every": 2})

    def cmd(out: Path, resume: Path) -> list[str]:
        return [*HARNESS, "train", "--model", "tiny", "--settings", SETTINGS, "--dataset", str(tiny_dataset),
                "--loss", "mw", "--seed", "2", "--options", options, "--resume-dir", str(resume), "--out", str(out)]

    subprocess.run(cmd(tmp_path / "ref", tmp_path / "ref-resume"), check=True, capture_output=True)
    out, resume = tmp_path / "ckpt", tmp_path / "resume"
    proc = subprocess.Popen(cmd(out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (resume / "resume.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # no half checkpoint under the final name
    subprocess.run(cmd(out, resume), check=True, capture_output=True)
    ref, got = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name in ref:
        assert (ref[name] == got[name]).all(), name
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41))


def test_out_of_memory_names_the_knobs(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.train as train_module

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train_module, "loss_step", oom)
    trainer = Trainer(TrainArgs(model="tiny", dataset=tiny_dataset, loss="infonce", out=tmp_path / "x",
                                batch_size=8, max_steps=2))
    with pytest.raises(TrainingError, match=r"out of memory at step 1.*batch_size=8.*grad_cache_chunk"):
        trainer.train()


class Killed(BaseException):
    """The job dies here (as SIGKILL would, no ``except Exception`` catches it)."""


def _swap_killed_between_renames(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``target`` holds weights "old"; a second :func:`atomic_dir` dies after moving it aside, before
    the new folder arrives."""
    with atomic_dir(target) as new:
        (new / "weights").write_text("old", encoding="utf-8")
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the old folder is moved aside; the new one never arrives
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(Killed), atomic_dir(target) as new:
        (new / "weights").write_text("new", encoding="utf-8")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not target.exists()


def test_atomic_dir_killed_between_its_renames_keeps_the_old_copy_and_recovers(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint"
    _swap_killed_between_renames(target, monkeypatch)
    olds = list(tmp_path.glob(".checkpoint.*.old"))
    assert [(old / "checkpoint" / "weights").read_text(encoding="utf-8") for old in olds] == ["old"]

    with pytest.raises(RuntimeError), atomic_dir(target):  # the next call recovers, even one that fails
        raise RuntimeError("failed build")
    assert (target / "weights").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    with atomic_dir(target) as new:
        (new / "weights").write_text("new", encoding="utf-8")
    assert (target / "weights").read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_the_next_runs_cleanup_puts_back_a_folder_a_killed_swap_left_aside(tmp_path, monkeypatch):
    """Snakemake's start-up cleanup (:func:`remove_stale_temps`) must not delete the only copy of a
    checkpoint that an :func:`atomic_dir` killed between its renames left in its ``.old`` folder."""
    from harness.io import remove_stale_temps

    results = tmp_path / "results"
    target = results / "checkpoints" / "seed1"
    _swap_killed_between_renames(target, monkeypatch)
    remove_stale_temps(results)
    assert (target / "weights").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["seed1"]
