"""The ``harness`` command's contract: raw BEIR folders, clear errors, exit status 2 without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = [sys.executable, "-m", "harness.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_evaluate_a_raw_beir_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("corpus.jsonl", "queries.jsonl"):
        (raw / name).write_bytes((tiny_dataset / name).read_bytes())
    (raw / "qrels").mkdir()
    (raw / "qrels" / "test.tsv").write_bytes((tiny_dataset / "qrels" / "test.tsv").read_bytes())
    proc = run("evaluate", "--model", "tiny", "--dataset", str(raw), "--split", "test", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert {"ndcg@10", "mrr@10", "recall@100"} <= set(metrics)
    lines = (tmp_path / "out" / "run.trec").read_text().splitlines()
    assert len(lines) == 16 * 48  # every test query (8 topics x 2 facets), every document (k = min(1000, corpus))
    assert all(len(line.split()) == 6 for line in lines)


def test_prepare_converts_a_raw_beir_folder(tiny_dataset: Path, tmp_path: Path) -> None:
    proc = run("prepare", "--source", "beir-dir", "--path", str(tiny_dataset), "--out", str(tmp_path / "prepared"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "prepared" / "meta.json").read_text())
    assert meta["counts"]["docs"] == 48 and "corpus.jsonl" in meta["sha256"]


@pytest.mark.slow
def test_bad_qrels_line_names_file_line_and_field(tiny_dataset: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (raw / name).write_bytes((tiny_dataset / name).read_bytes())
    (raw / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0-4\td0-4\t2\nq0-5\td0-5\n")
    proc = run("evaluate", "--model", "tiny", "--dataset", str(raw), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "test.tsv, line 3, field 'score'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_unknown_loss_is_a_config_error(tiny_dataset: Path, tmp_path: Path) -> None:
    proc = run("train", "--model", "tiny", "--dataset", str(tiny_dataset), "--loss", "softmax_v2",
               "--out", str(tmp_path / "ckpt"))
    assert proc.returncode == 2
    assert "unknown loss 'softmax_v2'" in proc.stderr and "infonce" in proc.stderr


@pytest.mark.parametrize("tasks, message", [(["NoSuchTask"], "unknown MTEB task"),
                                             (["Banking77Classification"], "not retrieval tasks")])
def test_mteb_task_names_are_checked_before_any_download(tmp_path: Path, tasks: list[str], message: str) -> None:
    from harness.errors import ConfigError
    from harness.stages.mteb import hub_tasks

    with pytest.raises(ConfigError, match=message):
        hub_tasks(tasks)
