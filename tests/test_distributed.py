"""Data-parallel training on the CPU (gloo): 2 ranks × 4 queries give the loss and gradient of
1 process × 8 for every loss, with and without GradCache; a SIGTERM to one rank checkpoints and
the rerun resumes; the 2-rank run ends with the weights of a 1-process run; bad requests fail
before training; the workflow launches torchrun with the job's resources.

Each 2-rank job is two processes of tests/ddp_worker.py with torchrun's environment. Spawning costs
a torch import per rank, so there are two jobs: (1) every loss's gradient in one loop, then
training until a SIGTERM; (2) the resumed run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from harness import distributed
from harness.errors import ConfigError
from harness.grid import check
from harness.launch import torchrun_prefix, train_resources
from harness.models import registry
from harness.train import TrainArgs, Trainer, train

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).parent / "ddp_worker.py"
SETTINGS = {"max_query_length": 16, "max_passage_length": 24}
TOLERANCE = {"float64": 1e-8, "float32": 1e-5}
STEPS = 5
OPTIONS = {"batch_size": 8, "hard_negatives": 1, "max_positives": 2, "max_steps": STEPS, "learning_rate": 1e-3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(spec: dict[str, Any], folder: Path, name: str) -> list[tuple[int, str]]:
    """Run the worker as ranks 0 and 1 of one job; (exit status, output) of each."""
    spec_file = folder / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = [subprocess.Popen([sys.executable, "-W", "ignore", str(WORKER), str(spec_file)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    return [(p.returncode, out) for p in procs for out in [p.communicate(timeout=900)[0]]]


def _train_argv(dataset: Path, out: Path, resume: Path, **options: Any) -> list[str]:
    return ["train", "--model", "tiny", "--settings", json.dumps(SETTINGS), "--dataset", str(dataset),
            "--loss", "mw", "--seed", "3", "--options", json.dumps({**OPTIONS, **options}),
            "--resume-dir", str(resume), "--out", str(out)]


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def _assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=2e-5, rtol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def one_process(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1-process run of :data:`STEPS` steps (dropout-free tiny model) the 2-rank runs must match."""
    out = tmp_path_factory.mktemp("single") / "ckpt"
    saved, threads = registry.TINY_CONFIG, torch.get_num_threads()
    registry.TINY_CONFIG = {**saved, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    torch.set_num_threads(1)
    try:
        train(TrainArgs(model="tiny", dataset=tiny_dataset, loss="mw", out=out, model_settings=SETTINGS, seed=3,
                        **OPTIONS))
    finally:
        registry.TINY_CONFIG = saved
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def two_ranks(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two 2-rank jobs. The first checks every loss's gradient against 1 process, then trains with
    a checkpoint after every step until rank 1 signals itself (after step 1); the second resumes and
    finishes the :data:`STEPS` steps."""
    folder = tmp_path_factory.mktemp("two_ranks")
    argv = _train_argv(tiny_dataset, folder / "ckpt", folder / "resume", devices=2, backend="gloo",
                       checkpoint_every=1)
    stopped = _two_ranks({"dropout": False, "grads": {"dataset": str(tiny_dataset), "out": str(folder)},
                          "sigterm_rank": 1, "train": argv}, folder, "stopped")
    state = torch.load(folder / "resume" / "resume.pt", weights_only=False) if (folder / "resume").exists() else None
    finished_early = (folder / "ckpt").exists()
    resumed = _two_ranks({"dropout": False, "train": argv}, folder, "resumed")
    return {"folder": folder, "stopped": stopped, "state": state, "finished_early": finished_early,
            "resumed": resumed}


@pytest.mark.slow
def test_every_loss_gives_the_full_batch_loss_and_gradient_on_two_ranks(two_ranks: dict[str, Any]) -> None:
    from ddp_worker import cases

    folder = two_ranks["folder"]
    results = {k: v for r in range(2) for k, v in json.loads((folder / f"rank{r}.json").read_text()).items()}
    assert sorted(results) == sorted("|".join(map(str, c)) for c in cases())  # 9 losses × 2 dtypes × GradCache off/on
    for case, r in results.items():
        tol = TOLERANCE[case.split("|")[1]]
        assert r["same_parameters"], case
        assert abs(r["loss"] - r["reference_loss"]) <= tol * max(1.0, abs(r["reference_loss"])), case
        # the largest |a - b| / (1 + |b|) over every gradient entry, relative to the gradient's scale
        assert r["grad_error"] <= tol * max(1.0, r["grad_scale"]), (case, r)


@pytest.mark.slow
def test_sigterm_to_one_rank_checkpoints_and_the_rerun_resumes(two_ranks: dict[str, Any]) -> None:
    for status, log in two_ranks["stopped"]:  # rank 1 was signalled after step 1; both ranks stop after step 2
        assert status == 2 and "stopped by SIGTERM at step 2" in log, log[-3000:]
    state = two_ranks["state"]
    assert state["step"] == 2 and len(state["rng"]) == 2  # every rank's RNG states
    assert not torch.equal(state["rng"][0]["cpu"], state["rng"][1]["cpu"])  # each rank has its own stream
    assert not two_ranks["finished_early"]
    for status, log in two_ranks["resumed"]:
        assert status == 0, log[-3000:]
    out = two_ranks["folder"] / "ckpt"
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [
        1, 2, 3, 4, 5]
    assert json.loads((out / "lossboard.json").read_text())["train_args"]["devices"] == 2
    assert not (two_ranks["folder"] / "resume").exists()


@pytest.mark.slow
def test_two_ranks_train_to_the_weights_of_one_process(two_ranks: dict[str, Any], one_process: Path) -> None:
    """The 2-rank run (stopped after step 2 and resumed) against an uninterrupted 1-process run."""
    out = two_ranks["folder"] / "ckpt"
    _assert_same_weights(_weights(out), _weights(one_process))
    logs = [[json.loads(line)["loss"] for line in (d / "train_log.jsonl").read_text().splitlines()]
            for d in (out, one_process)]
    np.testing.assert_allclose(logs[0], logs[1], rtol=1e-5)  # step t's batch is the same on 1 and 2 ranks


# -- bad requests: one clear error naming the key, before training -------------------------------------

def _torchrun_env(monkeypatch: pytest.MonkeyPatch, world: int, local: int) -> None:
    for key, value in {"WORLD_SIZE": world, "LOCAL_WORLD_SIZE": local, "RANK": 0, "LOCAL_RANK": 0}.items():
        monkeypatch.setenv(key, str(value))


def test_devices_without_torchrun_is_an_error_before_any_data_is_read(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    for key in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    args = TrainArgs(model="tiny", dataset=tmp_path / "missing", loss="infonce", out=tmp_path / "x", devices=2)
    with pytest.raises(ConfigError, match=r"key 'devices': devices: 2, but 1 process\(es\) per node were started; "
                                          r"run `torchrun --nproc-per-node 2"):
        Trainer(args)


def test_a_batch_the_world_does_not_divide_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _torchrun_env(monkeypatch, 4, 2)  # 2 nodes of 2
    with pytest.raises(ConfigError, match=r"key 'batch_size': batch_size 10 is not divisible by the 4 processes"):
        distributed.setup(2, "gloo", 10)


def test_an_unknown_or_unavailable_backend_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _torchrun_env(monkeypatch, 2, 2)
    with pytest.raises(ConfigError, match=r"key 'backend': unknown backend 'mpi'; valid: auto, nccl, gloo"):
        distributed.setup(2, "mpi", 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"key 'backend': backend 'nccl' is not available here \(torch.distributed "
                                          r"without CUDA\); use gloo or auto"):
        distributed.setup(2, "nccl", 8)


def test_more_devices_than_gpus_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _torchrun_env(monkeypatch, 8, 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"key 'devices': devices: 8, but this node has 2 GPU\(s\)"):
        distributed.setup(8, "auto", 64)


def test_the_shares_cover_the_batch_and_one_process_gathers_nothing() -> None:
    world = distributed.World(rank=1, size=3)
    assert distributed.shares(8, world) == [3, 3, 2]
    assert [distributed.local_slice(8, distributed.World(rank=r, size=3)) for r in range(3)] == [
        slice(0, 3), slice(3, 6), slice(6, 8)]
    x = torch.randn(4, 2, requires_grad=True)
    assert distributed.gather(x, distributed.World()) is x  # one process: nothing to gather


def _config(tmp_path: Path, devices: int, nodes: int, batch_size: int) -> dict[str, Any]:
    from snakemake.utils import validate

    config = {"results": str(tmp_path / "results"),
              "models": {"tiny": {"path": "tiny"}},
              "datasets": {"gen": {"source": "generated", "options": {"seed": 5, "docs": 120, "train_queries": 40,
                                                                      "dev_queries": 8, "test_queries": 16}}},
              "train_sets": {"gen": {"batch_size": batch_size, "max_steps": 2, "devices": devices}},
              "eval_sets": {"gen": {"split": "test"}}, "losses": {"infonce": {}},
              "teacher": {"kind": "bi-encoder", "model": "tiny"},
              "resources": {"train": {"gpu": 1, "threads": 2, "mem_mb": 3000, "nodes": nodes}}}
    validate(config, schema=str(REPO / "config" / "config.schema.yaml"), set_default=True)
    return config


def test_the_config_check_refuses_a_batch_the_jobs_processes_do_not_divide(tmp_path: Path) -> None:
    check(_config(tmp_path, devices=2, nodes=2, batch_size=8))
    with pytest.raises(ConfigError, match=r"key 'train_sets.gen.batch_size': batch_size 10 is not divisible by the "
                                          r"job's 4 processes \(devices 2 × resources.train.nodes 2\)"):
        check(_config(tmp_path, devices=2, nodes=2, batch_size=10))


def test_launch_commands_and_resources() -> None:
    per_process = {"gpu": 1, "mem_mb": 3000, "runtime": 60, "threads": 2}
    assert torchrun_prefix(1, 1) == ""
    assert torchrun_prefix(8, 1) == "torchrun --standalone --nproc-per-node=8 --no-python "
    assert train_resources(8, 1, per_process) == {"mem_mb": 24000, "runtime": 60, "cpus_per_task": 16, "gpu": 8,
                                                  "nodes": None, "tasks": None, "mpi": None, "slurm_extra": None}
    multi = torchrun_prefix(8, 2)
    assert multi.startswith("srun --nodes=2 --ntasks-per-node=1 torchrun --nnodes=2 --nproc-per-node=8 ")
    assert '--rdzv-endpoint="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)":29500' in multi
    assert train_resources(8, 2, per_process) == {"mem_mb": 24000, "runtime": 60, "cpus_per_task": 16, "gpu": None,
                                                  "nodes": 2, "tasks": 2, "mpi": "srun",
                                                  "slurm_extra": "--gpus-per-node=8"}


@pytest.mark.slow
def test_the_dry_run_shows_torchrun_and_the_resources(tmp_path: Path) -> None:
    config = _config(tmp_path, devices=2, nodes=1, batch_size=8)
    del config["results"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    dry = subprocess.run([sys.executable, "-m", "snakemake", "results/checkpoints/tiny/gen/infonce/seed1", "-n", "-p",
                          "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile", "config.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                         timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    text = dry.stdout + dry.stderr
    assert "torchrun --standalone --nproc-per-node=2 --no-python harness train --model tiny" in text
    assert "--threads 2 --out results/checkpoints/tiny/gen/infonce/seed1" in text  # threads per process
    resources = next(line for line in text.splitlines() if "resources:" in line and "gpu=2" in line)
    assert "cpus_per_task=4" in resources and "mem_mb=6000" in resources
