"""What the grid knows about generative models: their rows, settings and the checks before any job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.generative.decode import DEFAULTS
from harness.generative.index import BYTES_PER_TOKEN, VIEWS
from harness.io import read_json
from harness.losses.ltrgr import GENERATION_WEIGHT, MARGIN, RANDOM_OFFSET

GENERATIVE = "generative"
GENERATIVE_KEYS = ("identifiers", "decode", "ltrgr", "train", "train_sets", "eval_sets")  # phase 1 (generation), phase 2 (LTRGR)
LTRGR_DEFAULTS = {"margin": MARGIN, "random_offset": RANDOM_OFFSET, "generation_weight": GENERATION_WEIGHT,
                  "ranking_queries": 0}
TOKENS_PER_PASSAGE = 200  # an upper estimate of a passage's identifier tokens (DPR: 100 words + title)
INDEX_RESOURCE_DEFAULTS = {"gpu": 0, "mem_mb": 8000, "runtime": 120, "threads": 1}


def is_generative(spec: dict[str, Any]) -> bool:
    return spec.get("kind") == GENERATIVE


def settings(spec: dict[str, Any]) -> dict[str, Any]:
    """A generative model's settings as ``harness gen-*`` take them: decoding (defaults: MINDER's) and LTRGR's."""
    return {"decode": {**DEFAULTS, **(spec.get("decode") or {})}, **LTRGR_DEFAULTS, **(spec.get("ltrgr") or {})}


def corpus_passages(config: dict[str, Any], dataset: str) -> int | None:
    """The passages of a dataset's corpus where known before any job: the config's ``passages``,
    the prepared folder's meta.json, or a generated collection's size."""
    spec = config["datasets"][dataset]
    if "passages" in spec:
        return int(spec["passages"])
    meta = Path(str(config["results"])) / "data" / dataset / "meta.json"
    if meta.is_file():
        counts = read_json(meta).get("counts", {})
        if "docs" in counts:
            return int(counts["docs"])
    if spec["source"] == "generated":
        import inspect

        from harness.data.generated import generate

        return int((spec.get("options") or {}).get("docs", inspect.signature(generate).parameters["docs"].default))
    return None


def check(config: dict[str, Any]) -> None:
    """Refuse, naming the key: a generative model without a tokenizer, an empty or unknown identifier
    view, a train or eval set that is not in the grid, and an identifier index that would not fit
    ``resources.gen_index.mem_mb``."""
    from harness.generative.model import TINY_SEQ2SEQ, check_tokenizer_folder

    for name, spec in config["models"].items():
        if not is_generative(spec):
            if any(k in spec for k in GENERATIVE_KEYS):
                raise ConfigError(f"{', '.join(GENERATIVE_KEYS)} are settings of kind: generative",
                                  key=f"models.{name}")
            continue
        for field in ("train_sets", "eval_sets"):
            for i, entry in enumerate(spec.get(field) or []):
                if entry not in config[field]:
                    raise ConfigError(f"{entry!r} is not under {field!r}", key=f"models.{name}.{field}[{i}]")
        evals = spec.get("eval_sets") or list(config["eval_sets"])
        corpora = sorted({config["eval_sets"][e].get("corpus") or config["eval_sets"][e].get("dataset", e)
                          for e in evals} | set(spec.get("train_sets") or config["train_sets"]))
        views = spec.get("identifiers") or []
        if not views:
            raise ConfigError(f"a generative model needs identifier views, some of {list(VIEWS)}",
                              key=f"models.{name}.identifiers")
        for i, view in enumerate(views):
            if view not in VIEWS:
                raise ConfigError(f"unknown identifier view {view!r}; valid: {', '.join(VIEWS)}",
                                  key=f"models.{name}.identifiers[{i}]")
        if spec["path"] != TINY_SEQ2SEQ and spec["path"] != "minilm":
            check_tokenizer_folder(spec["path"], key=f"models.{name}.path")
        mem_mb = (config.get("resources") or {}).get("gen_index", {}).get("mem_mb", INDEX_RESOURCE_DEFAULTS["mem_mb"])
        for corpus in corpora:
            passages = corpus_passages(config, corpus)
            if passages is None:
                continue
            need = passages * TOKENS_PER_PASSAGE * BYTES_PER_TOKEN / 2**20
            if need > mem_mb:
                raise ConfigError(f"the identifier index of {corpus!r} ({passages:,} passages) needs about "
                                  f"{need:,.0f} MiB, more than the {mem_mb:,} MiB of its job; raise "
                                  "resources.gen_index.mem_mb", key="resources.gen_index.mem_mb")
