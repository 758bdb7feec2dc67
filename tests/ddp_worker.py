"""One rank of a data-parallel test job, started by tests/test_distributed.py with torchrun's
environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

``python tests/ddp_worker.py SPEC.json``; the spec's keys:

- ``dropout``: false builds the tiny model without dropout (masks are drawn per rank, so only a
  dropout-free network gives the same weights on 1 and 2 ranks);
- ``grads``: ``{"dataset", "out"}``: for every loss, dtype and GradCache setting of
  :func:`cases`, step 0's loss and parameter gradient on 2 ranks against 1 process; each rank
  writes its share of the comparison to ``out/rank<r>.json`` (:func:`differences`);
- ``sigterm_rank``: that rank signals itself after its first checkpoint (see
  :func:`sigterm_after_first_checkpoint`);
- ``train``: ``harness train`` arguments, run after the gradients (the exit status is the CLI's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CUSTOM_LOSS = "debiased_contrastive:DebiasedContrastive"  # examples/custom_loss, a researcher's own class
SETTINGS = {"max_query_length": 16, "max_passage_length": 24}


def no_dropout() -> None:
    from harness.models import registry

    registry.TINY_CONFIG = {**registry.TINY_CONFIG, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def cases() -> list[tuple[str, str, int]]:
    """(loss, dtype, GradCache chunk): every registered loss and a custom one, float64 and float32,
    without GradCache and with chunks of 3 (several chunks per rank)."""
    from harness.losses import REGISTRY

    return [(loss, dtype, chunk) for dtype in ("float64", "float32") for loss in [*REGISTRY, CUSTOM_LOSS]
            for chunk in (0, 3)]


def step_zero(dataset: Path, teacher: bool) -> Any:
    """Step 0's global batch of 8 queries (with teacher scores preferring each query's first hard negative)."""
    from harness.data.format import read_corpus, read_queries, read_train_groups
    from harness.train import BatchBuilder, TrainArgs

    groups = read_train_groups(dataset / "train.jsonl")
    scores = ({g.query_id: {**{d: 0.5 for d in g.positives}, g.negatives[0]: 0.9, g.negatives[1]: 0.1}
               for g in groups} if teacher else None)
    args = TrainArgs(model="tiny", dataset=dataset, loss="infonce", out=Path("unused"), seed=3, batch_size=8,
                     hard_negatives=1, max_positives=2)
    return BatchBuilder(groups, args, scores).build(0, read_queries(dataset / "queries.jsonl"),
                                                    read_corpus(dataset / "corpus.jsonl"))


def gradients(dataset: Path, world: Any, only: list[tuple[str, str, int]] | None = None
              ) -> dict[tuple[str, str, int], tuple[float, dict[str, Any]]]:
    """The loss value and parameter gradients of every case (or those in ``only``) on ``world``
    (a single process: ``World()``); one model per dtype, wrapped once, gradients cleared between cases."""
    import torch

    from harness import distributed
    from harness.losses import get_loss, resolve_loss
    from harness.models.biencoder import EncoderSettings
    from harness.models.registry import build_tiny
    from harness.train import loss_step

    if str(REPO / "examples" / "custom_loss") not in sys.path:
        sys.path.insert(0, str(REPO / "examples" / "custom_loss"))
    batches = {teacher: step_zero(dataset, teacher) for teacher in (False, True)}
    models = {dtype: build_tiny(EncoderSettings.from_dict(SETTINGS)).to(getattr(torch, dtype)).eval()
              for dtype in ("float64", "float32")}  # eval: no dropout, the chunked and full forwards see one network
    encoders = {dtype: distributed.wrap(model, world) for dtype, model in models.items()}
    results = {}
    for loss, dtype, chunk in cases():
        if only is not None and (loss, dtype, chunk) not in only:
            continue
        model = models[dtype]
        model.zero_grad(set_to_none=True)
        params = {"seed": 5} if "seed" in resolve_loss(loss).params else {}
        value = loss_step(model, get_loss(loss, **params), batches[resolve_loss(loss).needs_teacher], chunk,
                          world=world, encoder=encoders[dtype])
        results[(loss, dtype, chunk)] = (float(value), {n: p.grad.clone() for n, p in model.named_parameters()
                                                        if p.grad is not None})
    return results


def differences(dataset: Path, world: Any) -> dict[str, dict[str, Any]]:
    """Per case, this rank's share of the comparison of ``world``'s loss and gradient with a single
    process's: |loss difference|, the largest mixed error |a - b| / (1 + |b|) over all gradient
    entries, and whether both have gradients for the same parameters. The ranks split the cases."""
    from harness.distributed import World

    ours = gradients(dataset, world)
    mine = [c for i, c in enumerate(cases()) if i % world.size == world.rank]
    reference = gradients(dataset, World(), only=mine)
    out = {}
    for case in mine:
        (loss, grads), (ref_loss, ref_grads) = ours[case], reference[case]
        out["|".join(map(str, case))] = {
            "loss": loss, "reference_loss": ref_loss,
            "same_parameters": sorted(grads) == sorted(ref_grads),
            "grad_error": max(float(((grads[n] - g).abs() / (1 + g.abs())).max()) for n, g in ref_grads.items()),
            "grad_scale": max(float(g.abs().max()) for g in ref_grads.values()),
        }
    return out


def main(spec_file: str) -> int:
    import torch

    torch.set_num_threads(1)  # two ranks share the machine's cores
    spec = json.loads(Path(spec_file).read_text())
    if not spec.get("dropout", True):
        no_dropout()
    if spec.get("grads"):
        from harness import distributed

        world = distributed.setup(2, "gloo", 8)
        diffs = differences(Path(spec["grads"]["dataset"]), world)
        Path(spec["grads"]["out"]).joinpath(f"rank{world.rank}.json").write_text(json.dumps(diffs, indent=1))
    if spec.get("sigterm_rank") is not None:
        sigterm_after_first_checkpoint(int(spec["sigterm_rank"]))
    if spec.get("train"):
        from harness import cli

        return cli.main(spec["train"])
    return 0


def sigterm_after_first_checkpoint(rank: int) -> None:
    """Rank ``rank`` sends itself a SIGTERM once its first resume checkpoint call returns (as a
    scheduler would signal one process in the middle of training); the other ranks get none."""
    import os
    import signal

    from harness.train import Trainer

    if int(os.environ["RANK"]) != rank:
        return
    save = Trainer.save_resume

    def save_then_signal(self: Trainer) -> None:
        save(self)
        if not self.stop_requested:
            os.kill(os.getpid(), signal.SIGTERM)

    Trainer.save_resume = save_then_signal


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
