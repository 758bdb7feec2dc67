"""Constrained beam search over the identifier index, and SEAL/MINDER passage scores.

Decoding goes through transformers' ``generate`` with ``prefix_allowed_tokens_fn``: after a
decoded prefix only the tokens that continue it somewhere in the index are allowed, so every
generated identifier occurs in the corpus (SEAL's FM-index constrained decoding). A title or a
pseudo-query is decoded from its view's start marker and may end (eos) only where one ends; a
body substring may end anywhere, and every prefix of a decoded substring is an identifier too
(SEAL's ``keep_history``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from harness.generative import index as ix
from harness.generative.model import encode_inputs, view_input

# MINDER / SEAL defaults (seal/retrieval.py, seal/keys.py: aggregate_evidence)
DEFAULTS: dict[str, Any] = {
    "beam": 15,  # beams per view
    "title_tokens": 15,  # longest title identifier
    "substring_tokens": 10,  # body n-gram length
    "query_tokens": 30,  # longest pseudo-query identifier
    "score_exponent": 2.0,  # α
    "coverage": 0.8,  # β
    "smoothing": 5.0,
    "keys_per_passage": 40,  # MINDER's top_ngram: the identifiers of a passage kept for LTRGR
    "top_k": 100,  # passages ranked per query
}


@dataclass
class Key:
    """One identifier of a query: its view, its model tokens, its index n-gram and log P(key | query)."""

    view: str
    tokens: tuple[int, ...]
    ngram: tuple[int, ...]
    logprob: float
    count: int = 0
    score: float = 0.0


@dataclass
class Ranked:
    """A query's ranking: passage rows and scores, and each passage's matched keys (best first)."""

    rows: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    keys: list[list[Key]] = field(default_factory=list)


def index_ngram(view: str, tokens_: tuple[int, ...], complete: bool, vocab: int) -> tuple[int, ...]:
    """The n-gram of the index that a view's identifier stands for (its markers around it)."""
    if view == "title":
        return (vocab + ix.TITLE, *tokens_, *((vocab + ix.TITLE_END,) if complete else ()))
    if view == "pseudo_query":
        return (vocab + ix.QUERY, *tokens_, *((vocab + ix.QUERY_END,) if complete else ()))
    return tokens_


def allowed_tokens_fn(index: ix.IdentifierIndex, view: str, eos: int, pad: int
                      ) -> Callable[[int, torch.Tensor], list[int]]:
    """``prefix_allowed_tokens_fn`` for one view: the tokens that keep the identifier in the index."""
    vocab = index.vocab_size
    end = {"title": vocab + ix.TITLE_END, "pseudo_query": vocab + ix.QUERY_END}.get(view)
    cache: dict[tuple[int, ...], list[int]] = {}

    def allowed(batch_id: int, decoded: torch.Tensor) -> list[int]:
        generated = tuple(decoded[1:].tolist())
        if generated and generated[-1] in (eos, pad):
            return [pad]
        if generated not in cache:
            following = index.next_tokens(list(index_ngram(view, generated, False, vocab)))
            words = following[following < vocab].tolist()
            may_end = (end in following) if end is not None else bool(generated)
            cache[generated] = words + [eos] if may_end else words or [eos]
        return cache[generated]

    return allowed


@torch.no_grad()
def generate_keys(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, index: ix.IdentifierIndex,
                  queries: list[str], views: list[str], settings: dict[str, Any]) -> list[list[Key]]:
    """Each query's identifiers: constrained beam search per view; a key's log P(key | query) is the sum of
    its tokens' log-probabilities as beam search computed them (every prefix of a substring a key too)."""
    eos, pad = model.generation_config.eos_token_id, model.generation_config.pad_token_id
    keys: list[dict[tuple[int, ...], Key]] = [{} for _ in queries]
    for view in views:
        inputs = encode_inputs(tokenizer, [view_input(q, view) for q in queries], model.device)
        beam = int(settings["beam"])
        length = int(settings[{"title": "title_tokens", "substring": "substring_tokens",
                               "pseudo_query": "query_tokens"}[view]])
        out = model.generate(**inputs, num_beams=beam, num_return_sequences=beam, max_new_tokens=length + 1,
                             length_penalty=0.0, do_sample=False, early_stopping=True, forced_bos_token_id=None,
                             prefix_allowed_tokens_fn=allowed_tokens_fn(index, view, eos, pad),
                             output_scores=True, return_dict_in_generate=True)
        # log p(y_t | y_<t, x) of each chosen token, as beam search computed it (log-softmax before the
        # constraint's mask, so the same value a teacher-forced pass gives; 0 after a beam's end)
        steps = model.compute_transition_scores(out.sequences, out.scores, out.beam_indices).double()
        sequences = out.sequences[:, 1:].tolist()  # without the decoder start
        hyps = [_until_eos(s, eos, pad) for s in sequences]
        for i, q in enumerate(queries):
            own = [(h, steps[j]) for j, h in enumerate(hyps[i * beam:(i + 1) * beam], start=i * beam)
                   if h and h[0] != eos]
            for h, step_logprobs in own:
                row = step_logprobs[:len(h)].cumsum(-1).tolist()
                complete = h[-1] == eos
                body = tuple(h[:-1] if complete else h)
                if not body:
                    continue
                ends = range(1, len(body) + 1) if view == "substring" else [len(body)] if complete else []
                for n in ends:
                    ngram = index_ngram(view, body[:n], view != "substring", index.vocab_size)
                    lp = row[n] if (view != "substring" and complete) else row[n - 1]
                    if ngram not in keys[i] or keys[i][ngram].logprob < lp:
                        keys[i][ngram] = Key(view, body[:n], ngram, lp)
    return [list(k.values()) for k in keys]


def _until_eos(sequence: list[int], eos: int, pad: int) -> list[int]:
    """A decoded sequence up to and including its first eos (generate pads finished beams)."""
    out = []
    for t in sequence:
        if t == pad:
            break
        out.append(t)
        if t == eos:
            break
    return out


def identifier_scores(logprob: torch.Tensor, count: torch.Tensor, n_tokens: int, smoothing: float = 5.0,
                      exponent: float = 2.0) -> torch.Tensor:
    """SEAL's n-gram score (Bevilacqua et al., 2022, eq. 2; ``aggregate_evidence`` in seal/keys.py):

        w(n, q) = max(0, log[P(n|q) · (1 − P(n))] − log[P(n) · (1 − P(n|q))])^α,
        P(n) = (F(n) + s) / (N + s),

    with P(n|q) the model's probability of the identifier, F(n) its count in the index, N the
    index's tokens, s = 5 (smoothing), α = 2. Differentiable in ``logprob``; computed in float64.
    """
    lp = logprob.double().clamp(max=-1e-10)
    lq = torch.log((count.double() + smoothing) / (n_tokens + smoothing))
    w = (lp + torch.log(-torch.expm1(lq))) - (lq + torch.log(-torch.expm1(lp)))
    return w.clamp(min=0.0) ** exponent


def coverage_weights(key_tokens: list[tuple[int, ...]], beta: float = 0.8) -> list[float]:
    """SEAL's repetition discount of a passage's keys, taken best first:
    c_k = 1 − β + β · |set(n_k) \\ ∪_{j<k} set(n_j)| / |set(n_k)| (β = 0.8)."""
    covered: set[int] = set()
    weights = []
    for toks in key_tokens:
        tset = set(toks)
        weights.append(1.0 if not covered else 1.0 - beta + beta * len(tset - covered) / len(tset))
        covered |= tset
    return weights


def rank(keys: list[Key], index: ix.IdentifierIndex, settings: dict[str, Any]) -> Ranked:
    """A query's passages scored as MINDER scores them: the keys of every view pooled, each scored
    by :func:`identifier_scores`, and a passage's score the sum over the distinct keys it contains,
    best first, each times its :func:`coverage_weights` discount (MINDER, Li et al., 2023, §3.3:
    s(q, p) = Σ_{n ∈ I_p} w(n, q), summed over views; SEAL §3.3 for the discount)."""
    if not keys:
        return Ranked()
    for k in keys:
        k.count = index.count(list(k.ngram))
    w = identifier_scores(torch.tensor([k.logprob for k in keys]), torch.tensor([k.count for k in keys]),
                          index.n_tokens, settings["smoothing"], settings["score_exponent"])
    per_passage: dict[int, list[Key]] = {}
    for k, score in zip(keys, w.tolist()):
        k.score = score
        if score <= 0.0:
            continue
        rows, _ = index.passages(list(k.ngram))
        for r in rows.tolist():
            per_passage.setdefault(r, []).append(k)
    ranked = []
    for r, found in per_passage.items():
        found.sort(key=lambda k: -k.score)
        found = found[:int(settings["keys_per_passage"])]
        coeff = coverage_weights([k.tokens for k in found], settings["coverage"])
        ranked.append((sum(c * k.score for c, k in zip(coeff, found)), r, found))
    ranked.sort(key=lambda x: (-x[0], x[1]))
    ranked = ranked[:int(settings["top_k"])]
    return Ranked([r for _, r, _ in ranked], [s for s, _, _ in ranked], [f for _, _, f in ranked])


def search(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, index: ix.IdentifierIndex,
           queries: list[str], views: list[str], settings: dict[str, Any], batch_size: int = 16,
           progress: Callable[[int], None] | None = None) -> list[Ranked]:
    """Rank the corpus for every query (an empty :class:`Ranked` when decoding finds no identifier)."""
    model.eval()
    out: list[Ranked] = []
    for start in range(0, len(queries), batch_size):
        batch = queries[start:start + batch_size]
        for keys in generate_keys(model, tokenizer, index, batch, views, settings):
            out.append(rank(keys, index, settings))
        if progress:
            progress(len(out))
    return out


def identifier_texts(tokenizer: PreTrainedTokenizerBase, ranked: Ranked, n: int = 3) -> list[str]:
    """The best identifiers of a ranking's top passage, as text (for logs)."""
    return [tokenizer.decode(list(k.tokens)) for k in (ranked.keys[0][:n] if ranked.keys else [])]


def as_arrays(rankings: list[Ranked], top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """[Q, k] passage rows (-1 past a ranking's end) and scores (-inf there), as the dense search returns."""
    rows = np.full((len(rankings), top_k), -1, dtype=np.int64)
    scores = np.full((len(rankings), top_k), -np.inf, dtype=np.float32)
    for i, r in enumerate(rankings):
        rows[i, :len(r.rows)] = r.rows[:top_k]
        scores[i, :len(r.scores)] = r.scores[:top_k]
    return rows, scores
