"""Training a generative retriever: phase 1 (generation) and phase 2 (LTRGR).

Phase 1 (MINDER): the generation loss on (query -> an identifier of a positive passage) pairs, one
per view, plus (passage -> its identifiers) indexing pairs for the same passages. Phase 2
(LTRGR): from the phase-1 checkpoint, on a fixed ranking of the training queries by the phase-1
model, ``L_rank + λ · L_gen`` (:func:`harness.losses.ltrgr.ltrgr_rank_loss`) where each passage
score is recomputed by the current model from the identifiers that ranking matched in it.

In phase 1 the weights a warm start adds (``minilm``'s cross-attention and LM-head transform) train
at ``new_weights_learning_rate``, the pretrained ones at ``learning_rate``.

Every draw comes from ``numpy.random.default_rng([seed, step, ...])``, so a run is deterministic
for its seed; the checkpoint folder is written atomically. With ``resume_dir``, a SIGTERM (and every
``checkpoint_every`` steps) writes a resume state the rerun continues from, as the dense trainer does
(:class:`harness.train.SigtermStop`, :func:`harness.train.save_resume_state`): the resumed run saves
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import distributed
from harness.data.format import TrainGroup, read_corpus, read_queries, read_train_groups
from harness.errors import DataError, TrainingError
from harness.generative.decode import coverage_weights, identifier_scores
from harness.generative.index import IdentifierIndex
from harness.generative.model import (encode_inputs, generation_loss, key_logprobs, load_seq2seq, tokens,
                                      view_input)
from harness.io import atomic_dir, iter_jsonl, write_json
from harness.losses.ltrgr import CITATION, ltrgr_rank_loss
from harness.train import RESUME_FILE, SigtermStop, load_resume_state, save_resume_state

log = logging.getLogger("harness")
SETTINGS_FILE = "lossboard_generative.json"
# An indexing pair's input: the passage's first tokens (then its view marker). Its identifiers are drawn
# from its start, and the passages are the longest inputs of a step: on the quickstart, cutting them at
# 24 tokens made phase 1 26% cheaper (134 vs 182 CPU s) for nDCG@10 0.476 instead of 0.513
# (benchmarks/RESULTS.md, section 14).
INDEXING_INPUT_TOKENS = 24


@dataclass
class GenTrainArgs:
    model: str
    dataset: Path
    index: Path
    out: Path
    views: list[str]
    settings: dict[str, Any]
    phase: str = "gen"  # gen | ltrgr
    ranking: Path | None = None  # phase 2: the phase-1 model's ranking of the training queries
    seed: int = 1
    batch_size: int = 8
    max_steps: int = 20
    learning_rate: float = 5e-5
    warmup_steps: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    margin: float = 300.0
    random_offset: float = 100.0
    generation_weight: float = 1000.0
    new_weights_learning_rate: float | None = None  # the warm start's new weights (None: learning_rate)
    checkpoint_every: int = 0
    resume_dir: Path | None = None  # resume state: every checkpoint_every steps and on SIGTERM
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def best_window(query: list[int], body: list[int], length: int) -> list[int]:
    """The ``length``-token window of the body sharing most tokens with the query (first on ties):
    MINDER's body-substring target, with token overlap standing in for its fuzzy match."""
    if len(body) <= length:
        return body
    qset = set(query)
    hits = np.array([t in qset for t in body], dtype=np.int64)
    sums = np.convolve(hits, np.ones(length, dtype=np.int64), "valid")
    start = int(np.argmax(sums))
    return body[start:start + length]


class Identifiers:
    """The identifiers of each passage, per view, as model tokens (what phase 1 teaches)."""

    def __init__(self, tokenizer: Any, corpus: dict[str, dict[str, str]], pseudo: dict[str, list[str]],
                 settings: dict[str, Any]) -> None:
        self.tokenizer, self.corpus, self.pseudo, self.settings = tokenizer, corpus, pseudo, settings

    def target(self, view: str, doc_id: str, query: list[int], rng: np.random.Generator) -> list[int] | None:
        doc = self.corpus[doc_id]
        if view == "title":
            t = tokens(self.tokenizer, [doc.get("title") or ""], int(self.settings["title_tokens"]))[0]
            return t or None
        if view == "substring":
            body = tokens(self.tokenizer, [doc["text"]], 512)[0]
            return best_window(query, body, int(self.settings["substring_tokens"])) or None
        options = self.pseudo.get(doc_id) or []
        if not options:
            return None
        text = options[int(rng.integers(len(options)))]
        return tokens(self.tokenizer, [text], int(self.settings["query_tokens"]))[0] or None


def pseudo_queries(groups: list[TrainGroup], queries: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Each passage's pseudo-queries: the training queries that judge it positive (MINDER generates
    them with doc2query; offline, the training queries stand in)."""
    out: dict[str, list[str]] = {}
    for g in groups:
        for d in g.positives:
            out.setdefault(d, []).append(queries[g.query_id]["text"])
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _generation_pairs(args: GenTrainArgs, groups: list[TrainGroup], queries: dict[str, dict[str, Any]],
                      ids: Identifiers, tokenizer: Any, rng: np.random.Generator) -> tuple[list[str], list[list[int]]]:
    """Query -> identifier pairs of a positive, and passage -> identifier indexing pairs, every view."""
    inputs, targets = [], []
    for g in groups:
        text = queries[g.query_id]["text"]
        doc_id = g.positives[int(rng.integers(len(g.positives)))]
        qtok = tokens(tokenizer, [text], 64)[0]
        body = ids.corpus[doc_id]["text"]
        for view in args.views:
            target = ids.target(view, doc_id, qtok, rng)
            if target is None:
                continue
            inputs.append(view_input(text, view))
            targets.append(target)
            passage_target = ids.target(view, doc_id, tokens(tokenizer, [body], 64)[0][:8], rng)
            if passage_target is not None:
                start = tokenizer.decode(tokens(tokenizer, [body], INDEXING_INPUT_TOKENS)[0])
                inputs.append(view_input(start, view))
                targets.append(passage_target)
    return inputs, targets


def read_ranking(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def ltrgr_examples(ranking: list[dict[str, Any]], positives: dict[str, set[str]], margin: float
                   ) -> list[dict[str, Any]]:
    """The queries phase 2 trains on: those with a positive and a negative in their fixed ranking and
    not already ranked right by the margin (top positive's score ≥ top negative's + m is dropped)."""
    kept = []
    for entry in ranking:
        pos = [p for p in entry["passages"] if p["id"] in positives.get(entry["query_id"], set())]
        neg = [p for p in entry["passages"] if p["id"] not in positives.get(entry["query_id"], set())]
        if pos and neg and pos[0]["score"] < neg[0]["score"] + margin:
            kept.append({"query_id": entry["query_id"], "positives": pos, "negatives": neg})
    return kept


def passage_scores(model: Any, tokenizer: Any, queries: list[str], passages: list[list[list[Any]]], n_tokens: int,
                   settings: dict[str, Any], eos: int) -> torch.Tensor:
    """[P] each passage's score from its matched keys ([view, tokens, count], best first) for its query,
    recomputed by the current model with gradients: Σ_k c_k · w(n_k, q) (see
    :func:`harness.generative.decode.rank`). One forward pass for the whole batch: every distinct
    (query, view, key) is scored once (:func:`harness.generative.model.key_logprobs`)."""
    rows: dict[tuple[str, str, tuple[int, ...]], int] = {}
    for query, keys in zip(queries, passages, strict=True):
        for view, toks, _ in keys:
            rows.setdefault((query, view, tuple(toks)), len(rows))
    requests = [(view_input(q, view), [*toks, *(() if view == "substring" else (eos,))]) for q, view, toks in rows]
    logprobs = key_logprobs(model, tokenizer, requests)
    scores = []
    for query, keys in zip(queries, passages):
        if not keys:
            scores.append(torch.zeros((), dtype=torch.float64))
            continue
        lp = logprobs[[rows[(query, k[0], tuple(k[1]))] for k in keys]]
        w = identifier_scores(lp, torch.tensor([k[2] for k in keys]), n_tokens, settings["smoothing"],
                              settings["score_exponent"])
        coeff = torch.tensor(coverage_weights([tuple(k[1]) for k in keys], settings["coverage"]), dtype=torch.float64)
        scores.append((w * coeff).sum())
    return torch.stack(scores)


NEW_WEIGHTS = ("crossattention.", "cls.predictions.")  # what a warm-started encoder-decoder adds to its BERTs


def parameter_groups(model: torch.nn.Module, lr: float, new_lr: float | None) -> list[dict[str, Any]]:
    """AdamW groups: the weights a warm start creates (cross-attention, LM-head transform) at ``new_lr``,
    every other weight at ``lr``."""
    new = [p for n, p in model.named_parameters() if any(k in n for k in NEW_WEIGHTS)]
    ids = {id(p) for p in new}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest, "lr": lr}, {"params": new, "lr": new_lr or lr}]


def train(args: GenTrainArgs) -> Path:
    """Train one phase and write the checkpoint folder (model, tokenizer, settings, summary) atomically."""
    seed_everything(args.seed)
    start = time.perf_counter()
    torch.use_deterministic_algorithms(True, warn_only=True)
    model, tokenizer = load_seq2seq(args.model, seed=args.seed)
    groups = [g for g in read_train_groups(Path(args.dataset) / "train.jsonl") if g.positives]
    if not groups:
        raise DataError("no training query has a positive", Path(args.dataset) / "train.jsonl")
    queries = read_queries(Path(args.dataset) / "queries.jsonl")
    corpus = read_corpus(Path(args.dataset) / "corpus.jsonl")
    ids = Identifiers(tokenizer, corpus, pseudo_queries(groups, queries), args.settings)
    examples: list[dict[str, Any]] = []
    n_tokens = 0
    if args.phase == "ltrgr":
        if args.ranking is None:
            raise DataError("phase 2 (ltrgr) needs the phase-1 ranking of the training queries (--ranking)")
        positives = {g.query_id: set(g.positives) for g in groups}
        examples = ltrgr_examples(read_ranking(Path(args.ranking)), positives, args.margin)
        n_tokens = IdentifierIndex.load(Path(args.index)).n_tokens
        log.info("ltrgr: %d training queries not yet ranked right by the margin", len(examples))
    # the warm start's new weights get their own learning rate in phase 1 only: in phase 2 they are trained
    optimizer = torch.optim.AdamW(parameter_groups(model, args.learning_rate,
                                                   args.new_weights_learning_rate if args.phase == "gen" else None),
                                  weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (args.warmup_steps + 1)))
    eos = model.generation_config.eos_token_id
    by_id = {g.query_id: g for g in groups}
    model.train()
    losses: list[float] = []
    first = 0
    resume_file = Path(args.resume_dir) / RESUME_FILE if args.resume_dir else None
    state = load_resume_state(resume_file, args.to_dict()) if resume_file else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        distributed.set_rng_state(state["rng"])
        first, losses = state["step"], state["log"]

    def save_resume(step: int) -> None:
        if resume_file is not None:
            save_resume_state(resume_file, {
                "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": distributed.rng_state(), "log": losses,
                "args": args.to_dict()})

    with SigtermStop() as sigterm:
        for step in range(first, args.max_steps):
            rng = np.random.default_rng([args.seed, step])
            if args.phase == "ltrgr" and examples:
                batch = [examples[i] for i in rng.choice(len(examples), min(args.batch_size, len(examples)), replace=False)]
                batch_groups = [by_id[e["query_id"]] for e in batch]
            else:
                batch = []
                batch_groups = [groups[i] for i in rng.choice(len(groups), min(args.batch_size, len(groups)), replace=False)]
            texts, targets = _generation_pairs(args, batch_groups, queries, ids, tokenizer, rng)
            loss = generation_loss(model, encode_inputs(tokenizer, texts, model.device), targets)
            rank_value = 0.0
            if batch:
                chosen = []
                for e in batch:
                    chosen += [e["positives"][0], e["negatives"][0],
                               e["positives"][int(rng.integers(len(e["positives"])))],
                               e["negatives"][int(rng.integers(len(e["negatives"])))]]
                texts_q = [queries[e["query_id"]]["text"] for e in batch for _ in range(4)]
                scores = passage_scores(model, tokenizer, texts_q, [p["keys"] for p in chosen], n_tokens, args.settings,
                                        eos).view(len(batch), 4)
                rank = ltrgr_rank_loss(*scores.unbind(-1), margin=args.margin, offset=args.random_offset)
                rank_value = rank.item()
                loss = rank + args.generation_weight * loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            log.info("step %d/%d loss %.4f rank %.4f", step + 1, args.max_steps, losses[-1], rank_value)
            if sigterm.requested:
                save_resume(step + 1)
                raise TrainingError(f"stopped by SIGTERM at step {step + 1}; the rerun resumes from {resume_file}")
            if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0:
                save_resume(step + 1)
    wall = time.perf_counter() - start
    summary = {
        "steps": args.max_steps, "final_loss": losses[-1] if losses else None, "wall_time_s": wall,
        "examples_per_s": args.max_steps * args.batch_size / wall if wall else None, "peak_memory_mb": None,
        "loss": {"name": args.phase, "params": {"margin": args.margin, "random_offset": args.random_offset,
                                                  "generation_weight": args.generation_weight}
                 if args.phase == "ltrgr" else {}, "citation": CITATION},
        "phase2_queries": len(examples) if args.phase == "ltrgr" else None,
        "seed": args.seed, "command": " ".join(sys.argv), "argv": sys.argv,
    }
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SETTINGS_FILE).write_text(json.dumps({"views": args.views, "settings": args.settings}, indent=2))
        write_json(tmp / "train_summary.json", summary)
    if args.resume_dir:
        shutil.rmtree(args.resume_dir, ignore_errors=True)
    return Path(args.out)
