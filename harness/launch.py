"""How the workflow starts one training job on several devices: the launcher in front of
``harness train`` and the job's scheduler resources (torch-free: the Snakefile imports it).

- ``devices: 1`` on one node: plain ``harness train``.
- ``devices: N`` on one node: ``torchrun --standalone --nproc-per-node=N --no-python harness train``
  (a free local rendezvous, so two jobs on one machine do not collide).
- ``nodes: M`` > 1 (SLURM): ``srun`` starts one torchrun per node, whose c10d rendezvous is the
  job's first node (from ``SLURM_JOB_NODELIST``) and whose id is ``SLURM_JOB_ID``; the job asks
  for M nodes, one task per node and N GPUs per node (``--gpus-per-node``), and is marked as an
  ``mpi`` job so the SLURM executor leaves the ``srun`` to this command.

Only integers from the validated config enter these strings.
"""

from __future__ import annotations

from typing import Any

RENDEZVOUS_PORT = 29500


def torchrun_prefix(devices: int, nodes: int) -> str:
    """The shell words in front of ``harness train``, each followed by a space (empty for one process,
    so that the command is ``harness train ...`` itself)."""
    devices, nodes = int(devices), int(nodes)
    if nodes > 1:
        head = '"$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'
        return (f"srun --nodes={nodes} --ntasks-per-node=1 torchrun --nnodes={nodes} --nproc-per-node={devices}"
                f" --rdzv-backend=c10d --rdzv-endpoint={head}:{RENDEZVOUS_PORT} --rdzv-id=\"$SLURM_JOB_ID\""
                " --no-python ")
    if devices > 1:
        return f"torchrun --standalone --nproc-per-node={devices} --no-python "
    return ""


def train_resources(devices: int, nodes: int, per_process: dict[str, int]) -> dict[str, Any]:
    """A training job's resources from the per-process ones (``gpu``, ``mem_mb``, ``threads``,
    ``runtime``): each node runs ``devices`` processes, so it needs ``devices`` times the GPUs,
    memory and CPUs of one. ``None`` leaves a resource unset (Snakemake's convention)."""
    devices, nodes = int(devices), int(nodes)
    gpus = per_process["gpu"] * devices
    resources: dict[str, Any] = {"mem_mb": per_process["mem_mb"] * devices, "runtime": per_process["runtime"],
                                 "cpus_per_task": per_process["threads"] * devices,
                                 "gpu": gpus, "nodes": None, "tasks": None, "mpi": None, "slurm_extra": None}
    if nodes > 1:
        resources.update({"gpu": None, "nodes": nodes, "tasks": nodes, "mpi": "srun",
                          "slurm_extra": f"--gpus-per-node={gpus}" if gpus else None})
    return resources
