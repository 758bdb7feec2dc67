"""The bi-encoder: one transformer shared by queries and passages, pooled and optionally normalised.

Its settings (pooling, normalisation, similarity, prefixes, max lengths) travel with every
checkpoint in ``lossboard.json`` and are read back at encode time, so a model is never encoded
with settings other than the ones it was trained with. Checkpoints are also written in the
sentence-transformers layout (``modules.json``, ``1_Pooling/``, ``sentence_bert_config.json``,
prompts in ``config_sentence_transformers.json``), so ``SentenceTransformer(path)`` loads them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from harness.errors import ConfigError
from harness.io import write_json
from harness.precision import autocast as precision_autocast

Kind = Literal["query", "passage"]
SETTINGS_FILE = "lossboard.json"


@dataclass(frozen=True)
class EncoderSettings:
    """How text becomes a vector. Stored with every checkpoint.

    A max length left ``None`` is the model's own (:func:`model_max_length`), for queries and
    passages alike, as in sentence-transformers and MTEB; ``do_lower_case`` lowercases the text
    before tokenising (sentence-transformers' ``sentence_bert_config.json`` flag).
    """

    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = True
    similarity: Literal["cosine", "dot"] = "cosine"
    query_prefix: str = ""
    passage_prefix: str = ""
    max_query_length: int | None = None
    max_passage_length: int | None = None
    do_lower_case: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "model settings") -> EncoderSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown encoder setting(s) {unknown}; valid: {sorted(names)}", key=where)
        settings = cls(**values)
        if settings.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be 'mean' or 'cls', got {settings.pooling!r}", key=f"{where}.pooling")
        if settings.similarity not in ("cosine", "dot"):
            raise ConfigError(f"similarity must be 'cosine' or 'dot', got {settings.similarity!r}",
                              key=f"{where}.similarity")
        if settings.similarity == "cosine" and not settings.normalize:
            raise ConfigError("cosine similarity needs normalize: true", key=f"{where}.normalize")
        return settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_max_length(self, length: int) -> EncoderSettings:
        """These settings with every max length left unset given ``length``."""
        return dataclasses.replace(self, max_query_length=self.max_query_length or length,
                                   max_passage_length=self.max_passage_length or length)


def model_max_length(tokenizer: PreTrainedTokenizerBase, transformer: PreTrainedModel) -> int:
    """A bare transformers model's max length: the tokenizer's ``model_max_length``, capped by the
    position embeddings (sentence-transformers' rule) and at 512 (tokenizers without a limit
    report a huge sentinel)."""
    limits = [int(tokenizer.model_max_length), 512]
    positions = getattr(transformer.config, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    return min(limits)


class BiEncoder(torch.nn.Module):
    """A shared transformer encoder with pooling: e(x) = pool(T(x)), normalised when cosine."""

    def __init__(self, transformer: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 settings: EncoderSettings) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.settings = settings.with_max_length(model_max_length(tokenizer, transformer))

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    def tokenize(self, texts: Sequence[str], kind: Kind) -> dict[str, torch.Tensor]:
        """Prefix, truncate to the kind's max length and pad to the longest in the batch."""
        s = self.settings
        prefix = s.query_prefix if kind == "query" else s.passage_prefix
        max_length = s.max_query_length if kind == "query" else s.max_passage_length
        texts = [prefix + t for t in texts]
        if s.do_lower_case:
            texts = [t.lower() for t in texts]
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embed a tokenised batch: [B, L] ids -> [B, H] vectors."""
        hidden = self.transformer(**features).last_hidden_state  # [B, L, H]
        if self.settings.pooling == "cls":
            pooled = hidden[:, 0]  # [B, H]
        else:
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [B, H]
        if self.settings.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], kind: Kind, batch_size: int = 64,
               progress: bool = False, desc: str | None = None, precision: str = "fp32") -> np.ndarray:
        """Encode texts to a float32 [N, H] array, in input order.

        Texts are batched by length (longest first), so each batch pads to similar lengths and
        no compute is spent on padding; the result is put back in input order. ``precision``:
        ``fp32``, or ``bf16`` autocast where the device has it natively (:mod:`harness.precision`;
        refused elsewhere).
        """
        autocast = precision_autocast(precision, self.device)
        was_training = self.training
        self.eval()
        lengths = np.array([len(t) for t in texts])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        label = desc or ("encode queries" if kind == "query" else "encode passages")
        for start in tqdm(starts, desc=label, disable=not progress, unit="batch"):
            idx = order[start:start + batch_size]
            with autocast:
                emb = self(self.tokenize([texts[i] for i in idx], kind))
            out[idx] = emb.float().cpu().numpy()
        self.train(was_training)
        return out

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Save as a sentence-transformers folder plus ``lossboard.json`` (settings + ``extra``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.transformer.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        s = self.settings
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
        if s.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
            (path / "2_Normalize").mkdir(exist_ok=True)
        write_json(path / "modules.json", modules)
        write_json(path / "1_Pooling" / "config.json", {
            "word_embedding_dimension": self.dim,
            "pooling_mode_cls_token": s.pooling == "cls",
            "pooling_mode_mean_tokens": s.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        })
        write_json(path / "sentence_bert_config.json",
                   {"max_seq_length": s.max_passage_length, "do_lower_case": s.do_lower_case})
        write_json(path / "config_sentence_transformers.json", {
            "prompts": {"query": s.query_prefix, "document": s.passage_prefix},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine" if s.similarity == "cosine" else "dot",
        })
        write_json(path / SETTINGS_FILE, {"settings": s.to_dict(), **(extra or {})})


ST_MODULES = {"Transformer", "Pooling", "Normalize"}
POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path=path) from None


def _st_settings(path: Path) -> dict[str, Any]:
    """The encoder settings a sentence-transformers folder declares, its files checked against each other.

    ``modules.json`` must be Transformer -> Pooling (mean or CLS) [-> Normalize]: any other module
    (Dense, a max or last-token pooling) would be encoded differently from what its authors
    configured, so it is refused rather than silently dropped.
    """
    found: dict[str, Any] = {}
    modules_file = path / "modules.json"
    modules = _read(modules_file) if modules_file.exists() else []
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
    unsupported = sorted(set(kinds) - ST_MODULES)
    if unsupported:
        raise ConfigError(f"sentence-transformers module(s) {unsupported} are not supported (a bi-encoder here is "
                          f"Transformer -> Pooling -> optional Normalize)", path=modules_file)
    if modules:
        found["normalize"] = "Normalize" in kinds
        found["similarity"] = "cosine" if found["normalize"] else "dot"
    pooling_dir = Path(kinds["Pooling"].get("path", "1_Pooling")) if "Pooling" in kinds else Path("1_Pooling")
    pooling_file = path / pooling_dir / "config.json"
    if modules and ("Pooling" in kinds) != pooling_file.exists():
        raise ConfigError(f"the settings files disagree: modules.json {'lists' if 'Pooling' in kinds else 'has no'} "
                          f"a Pooling module but {pooling_dir / 'config.json'} "
                          f"{'is missing' if 'Pooling' in kinds else 'exists'}", path=modules_file)
    if pooling_file.exists():
        pooling = _read(pooling_file)
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True)
        if len(modes) != 1 or modes[0] not in POOLING_MODES:
            raise ConfigError(f"pooling modes {modes}: exactly one of {sorted(POOLING_MODES)} is supported",
                              path=pooling_file)
        found["pooling"] = POOLING_MODES[modes[0]]
        config_file = path / "config.json"
        dim = pooling.get("word_embedding_dimension")
        hidden = _read(config_file).get("hidden_size") if config_file.exists() else None
        if dim is not None and hidden is not None and dim != hidden:
            raise ConfigError(f"the settings files disagree: word_embedding_dimension {dim} but the model's "
                              f"hidden_size is {hidden} (config.json)", path=pooling_file)
    st_file = path / "sentence_bert_config.json"
    if st_file.exists():
        st = _read(st_file)
        if st.get("max_seq_length"):
            found["max_query_length"] = found["max_passage_length"] = int(st["max_seq_length"])
        found["do_lower_case"] = bool(st.get("do_lower_case", False))
    prompts_file = path / "config_sentence_transformers.json"
    if prompts_file.exists():
        prompts = _read(prompts_file).get("prompts") or {}
        if "query" in prompts:
            found["query_prefix"] = prompts["query"]
        if "document" in prompts or "passage" in prompts:
            found["passage_prefix"] = prompts.get("document", prompts.get("passage", ""))
    return found


def settings_from_folder(path: Path) -> dict[str, Any]:
    """The encoder settings stored with a model folder, as its authors configured it.

    A sentence-transformers folder gives pooling, normalisation, ``max_seq_length`` (for queries
    and passages alike), ``do_lower_case`` and prompts; a harness checkpoint's ``lossboard.json``
    adds what sentence-transformers cannot hold (a query max length of its own) and must agree
    with the sentence-transformers files on the rest; a bare transformers folder gives nothing
    (its max length is then :func:`model_max_length`).
    """
    found = _st_settings(path)
    own = path / SETTINGS_FILE
    if not own.exists():
        return found
    stored = dict(_read(own)["settings"])
    both = {"pooling", "normalize", "similarity", "max_passage_length", "do_lower_case"} & set(found) & set(stored)
    disagree = sorted(k for k in both if found[k] != stored[k])
    if disagree:
        raise ConfigError("the settings files disagree: " + ", ".join(
            f"{k} is {stored[k]!r} in {SETTINGS_FILE} but {found[k]!r} in the sentence-transformers files"
            for k in disagree), path=own)
    return stored


def load_pretrained(path_or_id: str, settings: EncoderSettings) -> BiEncoder:
    """A bi-encoder from a local folder or a Hugging Face id, with the given settings."""
    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    transformer = AutoModel.from_pretrained(path_or_id)
    return BiEncoder(transformer, tokenizer, settings)
