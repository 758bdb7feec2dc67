"""Data-parallel training (``torch.distributed``): the process group, each rank's share of a batch,
the gather with gradient, and the per-rank state a resume checkpoint keeps.

``harness train`` runs as ``W`` processes (ranks) under ``torchrun``, which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous (``MASTER_ADDR``/``PORT``).
Every rank builds the same global batch of step t (:class:`harness.train.BatchBuilder` depends on
the seed and t only, never on ``W``) and embeds its contiguous share of the queries and documents.
The embeddings are all-gathered: rank r's rows keep their graph, the other ranks' are constants
(the gather with gradient of DPR's and Tevatron's multi-GPU in-batch negatives, Karpukhin et al.,
2020, arXiv 2004.04906). Every rank then computes the same loss ``L`` on the global score matrix
[Q, D], so every loss of the registry, custom ones included, sees all of the batch's negatives.

The gradient. Rank r back-propagates into its own rows only, so its parameter gradient is
``g_r = (dL/dE_r)(dE_r/dθ)`` with ``E_r`` its embeddings, and the full-batch gradient is
``Σ_r g_r``. DDP all-reduces the *mean* ``(1/W) Σ_r``, so each rank back-propagates ``W · L``
(:func:`backward_scale`) and the averaged gradient is exactly the single-process full-batch one.
With GradCache (Gao et al., 2021, arXiv 2101.06983) the gathered embeddings are leaves, rank r
takes the gradient of its own rows and re-encodes only its own chunks, syncing on the last.

Without a GPU, ``devices: N`` runs N CPU processes over gloo (how the tests prove the gradient);
with CUDA each rank takes GPU ``LOCAL_RANK`` and asking for more devices than the node has is an error.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from harness.errors import ConfigError

BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one training job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: a single process, no process group

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0, the one rank that writes outputs."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def setup(devices: int, backend: str, batch_size: int) -> World:
    """Join the process group torchrun started, after checking the request against this machine.

    Raises :class:`ConfigError` naming ``devices``, ``backend`` or ``batch_size`` before any
    training: processes per node other than ``devices``, more devices than GPUs, an unknown or
    unavailable backend, a batch the world size does not divide."""
    cuda = torch.cuda.is_available()
    size, local_size = _env_int("WORLD_SIZE", 1), _env_int("LOCAL_WORLD_SIZE", _env_int("WORLD_SIZE", 1))
    if devices < 1:
        raise ConfigError(f"must be >= 1, got {devices}", key="devices")
    if local_size != devices:
        raise ConfigError(f"devices: {devices}, but {local_size} process(es) per node were started; run "
                          f"`torchrun --nproc-per-node {devices} --no-python harness train ...` (the workflow's "
                          "train rule does)", key="devices")
    if cuda and devices > torch.cuda.device_count():
        raise ConfigError(f"devices: {devices}, but this node has {torch.cuda.device_count()} GPU(s)", key="devices")
    if batch_size % size:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {size} processes of this job "
                          f"(devices × nodes); every rank encodes batch_size / {size} queries", key="batch_size")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}", key="backend")
    local_rank = _env_int("LOCAL_RANK", 0)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if size == 1:
        return World(device=torch.device("cuda") if cuda else device)
    name = ("nccl" if cuda else "gloo") if backend == "auto" else backend
    available = dist.is_available() and (dist.is_nccl_available() and cuda if name == "nccl"
                                         else dist.is_gloo_available())
    if not available:
        raise ConfigError(f"backend {name!r} is not available here (torch.distributed "
                          f"{'without CUDA' if name == 'nccl' and not cuda else 'lacks it'}); use "
                          f"{'gloo' if name == 'nccl' else 'nccl'} or auto", key="backend")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(name, device_id=device if cuda else None)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, device=device,
                 backend=name)


def close(world: World) -> None:
    """Leave the process group (after every rank has reached this point)."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def seed_rank(seed: int, world: World) -> None:
    """Give each rank its own torch stream (dropout masks) derived from ``seed`` and the rank; a
    single process keeps ``torch.manual_seed(seed)``."""
    if world.distributed:
        torch.manual_seed(int(np.random.SeedSequence([seed, world.rank]).generate_state(1)[0]))


def shares(n: int, world: World) -> list[int]:
    """How many of ``n`` rows each rank takes: contiguous, sizes differing by at most one."""
    return [n // world.size + (r < n % world.size) for r in range(world.size)]


def local_slice(n: int, world: World) -> slice:
    """The rows of ``n`` this rank takes (see :func:`shares`)."""
    sizes = shares(n, world)
    start = sum(sizes[:world.rank])
    return slice(start, start + sizes[world.rank])


def gather(x: Tensor, world: World) -> Tensor:
    """Every rank's rows of ``x`` [n_r, H], stacked in rank order [Σ n_r, H]; this rank's rows are
    ``x`` itself (they keep their graph), the others' are constants. Ranks may hold different numbers
    of rows (documents): each pads to the largest share, and the padding is cut off."""
    if not world.distributed:
        return x
    sizes = torch.tensor([x.shape[0]], device=x.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(world.size)]
    dist.all_gather(all_sizes, sizes)
    counts = [int(s) for s in all_sizes]
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[:x.shape[0]] = x.detach()
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    parts = [p[:n] for p, n in zip(parts, counts)]
    parts[world.rank] = x
    return torch.cat(parts)


def backward_scale(world: World) -> int:
    """The factor on the loss before ``backward``: DDP averages the ranks' gradients, and the
    full-batch gradient is their sum (see the module docstring)."""
    return world.size


class Towers(torch.nn.Module):
    """The bi-encoder applied to several tokenised inputs in one call, so that DDP sees exactly one
    forward (queries and documents together) per synchronised backward."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *features: dict[str, Tensor]) -> tuple[Tensor, ...]:
        return tuple(self.model(f) for f in features)


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """:class:`Towers` of ``model``, inside DDP when there are several ranks. Parameters a model
    never uses (a transformers pooler under mean pooling) are allowed and keep no gradient."""
    towers = Towers(model)
    if not world.distributed:
        return towers
    return DistributedDataParallel(towers, device_ids=[world.device] if world.device.type == "cuda" else None,
                                   find_unused_parameters=True)


def sync(encoder: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """Accumulate this backward's gradient locally unless it is the step's ``last`` (DDP's ``no_sync``)."""
    if isinstance(encoder, DistributedDataParallel) and not last:
        return encoder.no_sync()
    return contextlib.nullcontext()


def any_rank(flag: bool, world: World) -> bool:
    """Whether ``flag`` holds on any rank (a SIGTERM may reach one rank only)."""
    if not world.distributed:
        return flag
    t = torch.tensor([int(flag)], device=world.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def rng_state() -> dict[str, Any]:
    """Every random state of this process: Python's, NumPy's global, torch's CPU and CUDA streams."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def all_rng_states(world: World) -> list[dict[str, Any]]:
    """:func:`rng_state` of every rank, in rank order (a collective: every rank calls it)."""
    if not world.distributed:
        return [rng_state()]
    states: list[Any] = [None] * world.size
    dist.all_gather_object(states, rng_state())
    return states
