"""The training loop: one place for batching, the loss call, GradCache, AMP, seeds and checkpoints.

A step takes ``batch_size`` query groups. Each query brings up to ``max_positives`` positives and
``hard_negatives`` sampled hard negatives; the documents of all queries form one shared pool
(duplicates merged), so every query also sees every other query's documents as in-batch negatives.
The loss sees the full score matrix ``scores[i, j] = s(q_i, d_j)`` [Q, D] with labels
(the grade where d_j is a known positive of q_i, 0 otherwise) and, for distillation, the teacher's
scores of q_i's own list (NaN elsewhere) — the contract of :mod:`harness.losses`. With a teacher
the one positive of q_i is the teacher's top-1 of its list, as in CADET (Tamber et al., 2025),
which is not always the judged positive.

Execution options wrap the *same* loss call:

- ``grad_cache_chunk``: GradCache (Gao et al., 2021, arXiv 2101.06983). (1) embed every chunk
  without a graph; (2) compute the loss on the full embedding matrices and back-propagate to the
  embeddings only; (3) re-embed chunk by chunk with a graph, replaying the chunk's RNG state, and
  back-propagate the cached embedding gradients. The gradient equals the full-batch one while
  activation memory is that of one chunk.
- ``precision``: ``fp32``, or ``bf16`` autocast where the device has it natively (:mod:`harness.precision`).
- ``devices``: data-parallel over that many processes per node (:mod:`harness.distributed`): each
  rank encodes its share of the step's queries and documents, every rank computes the loss on the
  gathered global [Q, D] matrix, and the gradient equals the single-process full-batch gradient,
  with or without GradCache. Only rank 0 writes outputs.
- Checkpoints every ``checkpoint_every`` steps and on SIGTERM into ``resume_dir``; a rerun resumes
  from the last one. Everything random is derived from ``seed`` and the step, so a resumed run
  gives the same model as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from harness import distributed, provenance
from harness.data.format import TrainGroup, passage_text, read_corpus, read_queries, read_train_groups
from harness.data.leakage import guard
from harness.distributed import World
from harness.errors import ConfigError, DataError, TrainingError
from harness.grid import total_steps
from harness.io import atomic_dir, atomic_path, iter_jsonl, read_json, write_json, write_jsonl
from harness.losses import get_loss, loss_source, resolve_loss
from harness.models import BiEncoder, load_model
from harness.precision import autocast as precision_autocast

RESUME_FILE = "resume.pt"
# the fields of a training summary (train_summary.json) that a run's metrics.json repeats under "train"
SUMMARY_FIELDS = ("steps", "examples_per_s", "wall_time_s", "peak_memory_mb", "final_loss", "precision")
LOSS_CHECK_FILE = "loss_check.json"


@dataclass
class TrainArgs:
    """Everything a training run depends on; saved with the checkpoint."""

    model: str
    dataset: Path
    loss: str
    out: Path
    loss_params: dict[str, Any] = field(default_factory=dict)
    model_settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 1
    batch_size: int = 32
    hard_negatives: int = 1
    max_positives: int = 1
    epochs: int = 1
    max_steps: int = 0
    learning_rate: float = 2e-5
    warmup_steps: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    grad_cache_chunk: int = 0
    precision: str = "fp32"  # the model's (config key precision / models.<name>.precision)
    teacher: Path | None = None
    groups: Path | None = None
    leakage_eval: list[Path] = field(default_factory=list)
    allow_leakage: bool = False
    checkpoint_every: int = 0
    devices: int = 1  # processes (GPUs) per node; the job runs under torchrun when > 1
    backend: str = "auto"  # torch.distributed backend: nccl on CUDA, gloo on the CPU, when auto
    resume_dir: Path | None = None
    loss_check: Path | None = None  # the loss's contract report (harness check-loss), kept with the checkpoint

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


# The fields that name the run (set by the grid); the others are the hyper-parameters a config's
# train set gives (``harness train --options``).
RUN_FIELDS = ("model", "dataset", "loss", "out", "loss_params", "model_settings", "seed", "teacher", "groups",
              "leakage_eval", "resume_dir", "loss_check", "precision")
OPTIONS = tuple(f.name for f in fields(TrainArgs) if f.name not in RUN_FIELDS)


@dataclass
class Batch:
    queries: list[str]
    docs: list[str]
    labels: torch.Tensor  # [Q, D]
    teacher: torch.Tensor | None  # [Q, D], NaN outside each query's list


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_teacher(path: Path) -> dict[str, dict[str, float]]:
    """Teacher scores ``{query_id: {doc_id: score}}`` from the teacher stage's JSON Lines."""
    scores: dict[str, dict[str, float]] = {}
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj.get("query_id"), str) or not isinstance(obj.get("scores"), dict):
            raise DataError("expected 'query_id' (string) and 'scores' (object)", path, lineno, "scores")
        values = obj["scores"].values()
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise DataError("teacher scores must be finite numbers", path, lineno, "scores")
        scores[obj["query_id"]] = {str(d): float(s) for d, s in obj["scores"].items()}
    return scores


class BatchBuilder:
    """Turns query groups into deterministic batches: epoch order and negatives come from ``seed``."""

    def __init__(self, groups: list[TrainGroup], args: TrainArgs,
                 teacher: dict[str, dict[str, float]] | None) -> None:
        self.groups, self.args, self.teacher = groups, args, teacher
        self.steps_per_epoch = len(groups) // args.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{len(groups)} training groups cannot fill one batch of {args.batch_size}",
                              key="train.batch_size")

    def batch(self, step: int) -> list[TrainGroup]:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.args.seed, epoch]).permutation(len(self.groups))
        picked = order[index * self.args.batch_size:(index + 1) * self.args.batch_size]
        return [self.groups[i] for i in picked]

    def build(self, step: int, queries: dict[str, dict[str, Any]], corpus: dict[str, dict[str, str]]) -> Batch:
        rng = np.random.default_rng([self.args.seed, step, 1])
        groups = self.batch(step)
        docs: dict[str, int] = {}
        for g in groups:
            positives = g.positives[:self.args.max_positives]
            negatives = list(g.negatives)
            if len(negatives) > self.args.hard_negatives:
                negatives = [negatives[i] for i in sorted(rng.choice(len(negatives), self.args.hard_negatives,
                                                                     replace=False))]
            for doc_id in [*positives, *negatives]:
                docs.setdefault(doc_id, len(docs))
        doc_ids = list(docs)
        labels = torch.zeros(len(groups), len(doc_ids))
        teacher = torch.full((len(groups), len(doc_ids)), math.nan) if self.teacher is not None else None
        for i, g in enumerate(groups):
            for doc_id in g.positives:
                if doc_id in docs:
                    labels[i, docs[doc_id]] = float(g.grade(doc_id))
            if teacher is not None:
                own = self.teacher.get(g.query_id, {})
                listed = [d for d in [*g.positives[:self.args.max_positives], *g.negatives] if d in docs and d in own]
                for doc_id in listed:
                    teacher[i, docs[doc_id]] = own[doc_id]
                if listed:  # CADET: the positive is the teacher's top-1 of the query's list
                    labels[i] = 0
                    labels[i, docs[max(listed, key=own.__getitem__)]] = 1
        return Batch([queries[g.query_id]["text"] for g in groups],
                     [passage_text(corpus[d]) for d in doc_ids], labels, teacher)



class RandomState:
    """The CPU and CUDA RNG states at one point, to replay a forward pass identically (GradCache)."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def scores_of(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The score matrix [Q, D]: inner products of (normalised, when cosine) embeddings."""
    return q.float() @ d.float().T


def loss_step(model: BiEncoder, loss_fn: torch.nn.Module, batch: Batch, chunk: int = 0,
              autocast: contextlib.AbstractContextManager | None = None, world: World = World(),
              encoder: torch.nn.Module | None = None) -> torch.Tensor:
    """Forward and backward for one batch; returns the loss (detached). ``chunk`` > 0: GradCache.

    With several ranks (``world``; ``encoder`` is :func:`harness.distributed.wrap` of ``model``) this
    rank encodes its share of the batch, the loss is computed on the gathered global matrix and the
    parameter gradient, once DDP has averaged it, is the full-batch one."""
    autocast = autocast or contextlib.nullcontext()
    encoder = encoder or distributed.Towers(model)
    q_rows = distributed.local_slice(len(batch.queries), world)
    d_rows = distributed.local_slice(len(batch.docs), world)
    q_features = model.tokenize(batch.queries[q_rows], "query")
    d_features = model.tokenize(batch.docs[d_rows], "passage") if d_rows.stop > d_rows.start else None
    labels = batch.labels.to(model.device)
    teacher = batch.teacher.to(model.device) if batch.teacher is not None else None
    scale = distributed.backward_scale(world)
    if chunk <= 0:
        with autocast:
            reps = encoder(q_features, *([d_features] if d_features is not None else []))
            q_local = reps[0]
            d_local = reps[1] if d_features is not None else q_local.new_zeros((0, q_local.shape[1]))
            scores = scores_of(distributed.gather(q_local, world), distributed.gather(d_local, world))  # [Q, D]
            loss = loss_fn(scores, labels, teacher)
        (loss * scale).backward()
        return loss.detach()

    q_chunks = _split(q_features, chunk)
    d_chunks = _split(d_features, chunk) if d_features is not None else []
    # Step (1): embed every chunk of this rank's share without a graph, remembering each chunk's RNG state.
    states, reps = [], []
    with torch.no_grad(), autocast:
        for features in [*q_chunks, *d_chunks]:
            states.append(RandomState())
            reps.append(model(features))
    q_local = torch.cat(reps[:len(q_chunks)]).float()
    d_local = torch.cat(reps[len(q_chunks):]).float() if d_chunks else q_local.new_zeros((0, q_local.shape[1]))
    q_reps = distributed.gather(q_local, world).requires_grad_()  # [Q, H]
    d_reps = distributed.gather(d_local, world).requires_grad_()  # [D, H]
    # Step (2): the loss on the full batch, back-propagated to the embeddings only.
    with autocast:
        loss = loss_fn(scores_of(q_reps, d_reps), labels, teacher)
    (loss * scale).backward()
    grads = [*_split_tensor(q_reps.grad[q_rows], chunk), *_split_tensor(d_reps.grad[d_rows], chunk)]
    # Step (3): re-embed each chunk with a graph (same dropout) and push its cached gradient through;
    # the ranks' gradients are averaged on the last chunk's backward.
    chunks = list(zip([*q_chunks, *d_chunks], states, grads))
    for i, (features, state, grad) in enumerate(chunks):
        with distributed.sync(encoder, last=i == len(chunks) - 1):
            with state.replay(), autocast:
                (rep,) = encoder(features)
            rep.float().backward(grad)
    return loss.detach()


def _split(features: dict[str, torch.Tensor], chunk: int) -> list[dict[str, torch.Tensor]]:
    n = next(iter(features.values())).shape[0]
    return [{k: v[i:i + chunk] for k, v in features.items()} for i in range(0, n, chunk)]


def _split_tensor(t: torch.Tensor, chunk: int) -> list[torch.Tensor]:
    return list(t.split(chunk))


def seeded(loss: str) -> bool:
    """Whether a loss takes a ``seed`` (it draws at random)."""
    return "seed" in resolve_loss(loss).params


class SigtermStop:
    """While entered, a SIGTERM sets ``requested`` instead of ending the process, so that a training
    loop finishes its step, writes its resume state and stops; the rerun resumes from that state."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> SigtermStop:
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.requested = True


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    """Write a resume state (its step, model, optimizer, scheduler, RNG states and ``args``) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_resume_state(path: Path, args: dict[str, Any], device: Any = "cpu") -> dict[str, Any] | None:
    """The resume state at ``path``, if any; one written by a run with other ``args`` is refused."""
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state["args"] != args:
        raise ConfigError(f"{path} was written by a run with other arguments; delete it to start over",
                          key="resume_dir")
    return state


class Trainer:
    """Runs :class:`TrainArgs` to a checkpoint folder, resuming where a stopped run left off."""

    def __init__(self, args: TrainArgs) -> None:
        self.args = args
        seed_everything(args.seed)
        self.world = distributed.setup(args.devices, args.backend, args.batch_size)
        distributed.seed_rank(args.seed, self.world)
        root = Path(args.dataset)
        self.corpus = read_corpus(root / "corpus.jsonl")
        self.queries = read_queries(root / "queries.jsonl")
        groups_file = Path(args.groups) if args.groups else root / "train.jsonl"
        groups = read_train_groups(groups_file)
        self.loss_fn = get_loss(args.loss, **self._loss_params())
        self.loss_source = loss_source(type(self.loss_fn))  # the code this run trains with
        teacher = None
        if getattr(self.loss_fn, "needs_teacher", False):
            if args.teacher is None:
                raise ConfigError(f"loss {args.loss!r} needs teacher scores (--teacher)", key="teacher")
            teacher = load_teacher(Path(args.teacher))
            groups = [g for g in groups if g.query_id in teacher]
        groups = self._checked(groups, groups_file)
        groups, self.leakage = guard(groups, self.queries, [Path(d) for d in args.leakage_eval], args.allow_leakage,
                                     groups_file)
        short = [len(g.negatives) for g in groups if len(g.negatives) < args.hard_negatives]
        if short:
            raise ConfigError(f"{args.hard_negatives} hard negatives per query asked, but {len(short)} of {len(groups)} "
                              f"training groups have fewer (as few as {min(short)}); lower hard_negatives or mine "
                              "more (miner: bm25, mined_negatives)", key="hard_negatives", path=groups_file)
        self.batches = BatchBuilder(groups, args, teacher)
        self.model = load_model(args.model, args.model_settings)
        self.device = self.world.device
        self.model.to(self.device)
        self.model.train()
        self.encoder = distributed.wrap(self.model, self.world)
        self.total_steps = total_steps(len(groups), args.batch_size, args.epochs, args.max_steps)
        decay = [p for n, p in self.model.named_parameters() if not any(s in n for s in ("bias", "LayerNorm"))]
        no_decay = [p for n, p in self.model.named_parameters() if any(s in n for s in ("bias", "LayerNorm"))]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate, fused=True)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, args.warmup_steps, self.total_steps)
        self.step = 0
        self.log: list[dict[str, Any]] = []
        self.sigterm = SigtermStop()

    @property
    def stop_requested(self) -> bool:
        return self.sigterm.requested

    def _loss_params(self) -> dict[str, Any]:
        """The configured loss parameters; a loss that draws at random is seeded with the run's seed."""
        params = dict(self.args.loss_params)
        if seeded(self.args.loss) and "seed" not in params:
            params["seed"] = self.args.seed
        return params

    def _checked(self, groups: list[TrainGroup], path: Path) -> list[TrainGroup]:
        for lineno, g in enumerate(groups, start=1):
            if g.query_id not in self.queries:
                raise DataError(f"query id {g.query_id!r} has no text in queries.jsonl", path, lineno, "query_id")
            for name, ids in (("positives", g.positives), ("negatives", g.negatives)):
                missing = next((d for d in ids if d not in self.corpus), None)
                if missing is not None:
                    raise DataError(f"document id {missing!r} is not in corpus.jsonl", path, lineno, name)
        return groups

    # -- checkpoints ----------------------------------------------------------------------------
    def _resume_file(self) -> Path | None:
        return Path(self.args.resume_dir) / RESUME_FILE if self.args.resume_dir else None

    def save_resume(self) -> None:
        """Rank 0 writes the step, model, optimizer, scheduler and every rank's RNG states (all ranks call it)."""
        path = self._resume_file()
        if path is None:
            return
        rng = distributed.all_rng_states(self.world)
        if not self.world.main:
            return
        state = {"step": self.step, "model": self.model.state_dict(), "loss": self.loss_fn.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng": rng, "log": self.log,
                 "args": self.args.to_dict()}
        save_resume_state(path, state)

    def try_resume(self) -> None:
        path = self._resume_file()
        state = load_resume_state(path, self.args.to_dict(), self.device) if path is not None else None
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if len(state["rng"]) != self.world.size:
            raise ConfigError(f"{path} was written by {len(state['rng'])} process(es), this run has "
                              f"{self.world.size}; resume with as many, or delete it to start over", key="devices")
        distributed.set_rng_state(state["rng"][self.world.rank])
        self.step, self.log = state["step"], state["log"]

    # -- the loop -------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        args = self.args
        self.try_resume()
        autocast = precision_autocast(args.precision, self.device)
        start, examples = time.perf_counter(), 0
        with self.sigterm:
            while self.step < self.total_steps:
                batch = self.batches.build(self.step, self.queries, self.corpus)
                t0 = time.perf_counter()
                try:
                    loss = loss_step(self.model, self.loss_fn, batch, args.grad_cache_chunk, autocast, self.world,
                                     self.encoder)
                except torch.OutOfMemoryError as exc:
                    raise TrainingError(
                        f"out of memory at step {self.step + 1} with batch_size={args.batch_size}, "
                        f"hard_negatives={args.hard_negatives}, max lengths {self.model.settings.max_query_length}/"
                        f"{self.model.settings.max_passage_length}: lower batch_size or a max length, or set "
                        f"grad_cache_chunk (now {args.grad_cache_chunk}) to a small chunk") from exc
                value = float(loss)
                if not math.isfinite(value):
                    raise TrainingError(f"loss {args.loss!r} is {value} at step {self.step + 1}; "
                                        f"lower the learning rate ({args.learning_rate}) or check the loss parameters")
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                examples += len(batch.queries)
                self.log.append({"step": self.step, "epoch": (self.step - 1) // self.batches.steps_per_epoch,
                                 "loss": round(value, 6), "lr": self.scheduler.get_last_lr()[0],
                                 "examples_per_s": round(len(batch.queries) / (time.perf_counter() - t0), 3)})
                if distributed.any_rank(self.stop_requested, self.world):  # a SIGTERM may reach one rank only
                    self.save_resume()
                    raise TrainingError(f"stopped by SIGTERM at step {self.step}; the rerun resumes from "
                                        f"{self._resume_file()}")
                if args.checkpoint_every and self.step % args.checkpoint_every == 0:
                    self.save_resume()
        wall = time.perf_counter() - start
        return {"steps": self.step, "examples": examples, "wall_time_s": round(wall, 3), "leakage": self.leakage,
                "examples_per_s": round(examples / wall, 3) if wall > 0 else None,
                "final_loss": self.log[-1]["loss"] if self.log else None, "precision": args.precision}

    def save(self, summary: dict[str, Any]) -> None:
        """Write the checkpoint folder with :func:`harness.io.atomic_dir`; its ``lossboard.json``
        describes the loss as the code of this run had it (:meth:`~harness.losses.base.Loss.card`) and
        names its source (module:Class, file, sha256), beside the loss's contract report if it has one."""
        loss_config = {"name": self.args.loss, "params": self.loss_fn.get_config_dict(),
                       "source": self.loss_source}
        with atomic_dir(self.args.out) as tmp:
            self.model.save(tmp, extra={"loss": {**loss_config, **self.loss_fn.card()}, "train_args": self.args.to_dict()})
            if self.args.loss_check is not None:
                shutil.copyfile(self.args.loss_check, tmp / LOSS_CHECK_FILE)
            write_jsonl(tmp / "train_log.jsonl", self.log)
            write_json(tmp / "train_summary.json", {
                **summary, "loss": loss_config, "seed": self.args.seed, "data": _source_of(Path(self.args.dataset)),
                **provenance.record(summary["wall_time_s"]),
            })
        if self._resume_file() is not None:
            shutil.rmtree(self.args.resume_dir, ignore_errors=True)


def _source_of(dataset: Path) -> dict[str, Any] | None:
    """The ``source`` record of a prepared dataset's ``meta.json`` (a synthetic train set's names its
    generator, the prompts' sha256, the sampling settings and the filter), None without one."""
    meta = dataset / "meta.json"
    return read_json(meta).get("source") if meta.is_file() else None


def train(args: TrainArgs) -> Path:
    """Train and save (rank 0 only, when there are several); returns the checkpoint folder."""
    trainer = Trainer(args)
    summary = trainer.train()
    if trainer.world.main:
        trainer.save(summary)
    distributed.close(trainer.world)
    return Path(args.out)
