"""After a kill: stale temp copies are removed, a dead run's locks are cleared, the plain command resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.io import TEMP_NAME, atomic_path, claim_workdir, remove_stale_temps

REPO = Path(__file__).resolve().parents[1]


def test_stale_temps_of_a_folder_go_and_nothing_else(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "data" / ".gen.k3j9x0qa.tmp").mkdir(parents=True)
    (results / "data" / ".gen.k3j9x0qa.tmp" / "corpus.jsonl").write_text("{partial")
    (results / "checkpoints" / "m" / ".seed1.tmp").mkdir(parents=True)
    (results / "runs" / "r").mkdir(parents=True)
    (results / "runs" / "r" / ".metrics.json.a1b2c3d4.tmp").write_text("{")
    (tmp_path / ".results.zz9y8x7w.old").mkdir()
    kept = [results / "runs" / "r" / "metrics.json", results / "runs" / "r" / ".hidden", tmp_path / ".other.tmp",
            results / "data" / "gen.tmp"]
    for path in kept:
        path.write_text("x")
    gone = remove_stale_temps(results)
    assert sorted(p.name for p in gone) == [".gen.k3j9x0qa.tmp", ".metrics.json.a1b2c3d4.tmp",
                                            ".results.zz9y8x7w.old", ".seed1.tmp"]
    assert all(not p.exists() for p in gone) and all(p.exists() for p in kept)


def test_the_atomic_writers_temp_names_are_the_ones_removed(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "out" / "metrics.json") as tmp:
        assert TEMP_NAME.fullmatch(tmp.name)


def test_gitignore_covers_temp_copies() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = [".site.k3j9x0qa.tmp", ".site.k3j9x0qa.old", "results/data/.gen.k3j9x0qa.tmp"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=REPO, capture_output=True, text=True)
    assert proc.stdout.split() == names


def test_a_dead_runs_locks_are_cleared_a_live_ones_kept(tmp_path: Path) -> None:
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/x\n")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from harness.io import claim_workdir; "
                               "lock = claim_workdir(sys.argv[1]); print(lock is not None, flush=True); time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "True"  # it cleared the locks a dead run left
        assert not (locks / "0.output.lock").exists()
        (locks / "1.output.lock").write_text("results/x\n")
        assert claim_workdir(tmp_path) is None  # a live run holds it: its locks stay
        assert (locks / "1.output.lock").exists()
    finally:
        holder.kill()
        holder.wait()
    lock = claim_workdir(tmp_path)  # SIGKILL released it
    assert lock is not None and not (locks / "1.output.lock").exists()
    lock.close()


TINY = {
    "models": {"tiny": {"path": "tiny"}},
    "datasets": {"gen": {"source": "generated", "options": {"seed": 5, "docs": 120, "train_queries": 40,
                                                            "dev_queries": 8, "test_queries": 16}}},
    "train_sets": {"gen": {"batch_size": 8, "max_steps": 2}},
    "eval_sets": {"gen": {"split": "test"}},
    "losses": {"infonce": {}},
    "teacher": {"kind": "bi-encoder", "model": "tiny"},
}
SLOW_HARNESS = """#!/bin/sh
mkdir -p results/data/.gen.k3j9x0qa.tmp && echo '{"_id": "partial' > results/data/.gen.k3j9x0qa.tmp/corpus.jsonl
mkdir -p .site.k3j9x0qa.tmp
exec sleep 60
"""


@pytest.mark.slow
def test_the_plain_command_resumes_after_snakemake_is_killed(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    stub = tmp_path / "stub" / "harness"
    stub.parent.mkdir()
    stub.write_text(SLOW_HARNESS)
    stub.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    target = "results/data/gen/meta.json"

    def snakemake(*args: str, path: str = os.environ["PATH"]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                                 "--configfile", "config.yaml", "--cores", "1", target, *args],
                                cwd=tmp_path, env={**env, "PATH": path}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    first = snakemake()
    assert first.wait(timeout=300) == 0, first.stdout.read()
    meta = (tmp_path / target).read_text()
    # rerun prepare with a harness that hangs after writing a partial temp folder, and SIGKILL Snakemake
    killed = snakemake("--forcerun", "prepare", path=f"{stub.parent}:{os.environ['PATH']}")
    deadline = time.monotonic() + 120
    while not (tmp_path / ".site.k3j9x0qa.tmp").exists():
        assert time.monotonic() < deadline and killed.poll() is None, killed.stdout.read()
        time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(killed.pid, signal.SIGKILL)  # the hung job Snakemake left behind
    assert list((tmp_path / ".snakemake" / "locks").glob("*.lock"))

    resumed = snakemake()
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert "LockException" not in out and "Incomplete" not in out
    assert (tmp_path / target).read_text() == meta
    assert not (tmp_path / "results" / "data" / ".gen.k3j9x0qa.tmp").exists()
    assert not (tmp_path / ".site.k3j9x0qa.tmp").exists()
