"""Generating CADET's queries: passage sampling, per-passage seeds, backends, chunked generation.

Determinism: the ``M`` passages are ``random.Random(seed).sample`` of the corpus's rows; passage
``p`` gets its own seed ``passage_seed(seed, p)`` (sha256 of both), which seeds the sampling of all
its queries (torch's generator for transformers ``generate``, the request's ``seed`` for vLLM) and
the choice of its few-shot examples. So a passage's queries depend on nothing but the config, the
model and the passage, and a rerun gives the same bytes on the same machine: whether it resumes from
chunks or not, whatever the chunk size.

Sampling settings (:class:`Sampling`) are fixed by the config and recorded with the dataset. Each
passage asks ``per_type`` sampled completions of every type's prompt; a completion's query is its
first line, stripped. :func:`check_query` drops (and names why) a completion that is not valid UTF-8
(a byte-level model can stop inside a character, which decodes to U+FFFD), empty, or over-long (cut
at ``max_new_tokens`` before it ended its line or the sequence).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from harness.errors import ConfigError
from harness.io import iter_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

BACKENDS = ("transformers", "vllm")
DROP_REASONS = ("not_utf8", "empty", "too_long", "duplicate", "not_retrieved", "outranked")
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class Sampling:
    """The decoding settings of every completion (nucleus sampling, Holtzman et al., 2020)."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 64


@dataclass(frozen=True)
class Completion:
    """One sampled completion: its text, and whether it ended (EOS) rather than hit ``max_new_tokens``."""

    text: str
    finished: bool


@dataclass(frozen=True)
class Request:
    """One passage's prompts (one per query type) and its seed."""

    passage_id: str
    seed: int
    prompts: dict[str, str]


class Backend(Protocol):
    def generate(self, requests: Sequence[Request], n: int) -> list[dict[str, list[Completion]]]:
        """``n`` completions of each prompt of each request, seeded by the request's seed."""


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model takes it: in its chat template when the tokenizer has one (the
    template then carries the special tokens, so the tokenizer must not add its own)."""
    if not has_chat_template(tokenizer):
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def passage_seed(seed: int, passage_id: str) -> int:
    """The seed of one passage: the first 4 bytes of sha256("<seed>:<passage id>"), below 2**31."""
    digest = hashlib.sha256(f"{seed}:{passage_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def sample_rows(total: int, passages: int, seed: int) -> list[int]:
    """``passages`` distinct corpus rows out of ``total``, in sampled order (all of them if fewer)."""
    return random.Random(seed).sample(range(total), min(passages, total))


def few_shot_examples(pool: Sequence[str], k: int, seed: int) -> list[str]:
    """``k`` example queries from ``pool`` for the passage seeded ``seed``."""
    return random.Random(seed).sample(list(pool), min(k, len(pool)))


def check_query(completion: Completion) -> tuple[str, str | None]:
    """The query of a completion (its first line, stripped) and why it is dropped (None: kept).

    ``not_utf8``: holds U+FFFD, what a decoder makes of bytes that are not UTF-8; ``empty``: nothing
    but whitespace before the first line break; ``too_long``: the completion hit ``max_new_tokens``
    without ending its first line, so the query is cut.
    """
    text = completion.text.strip()
    query = text.split("\n", 1)[0].strip()
    if "\ufffd" in query or not _encodable(query):
        return query, "not_utf8"
    if not query:
        return query, "empty"
    if not completion.finished and "\n" not in text:
        return query, "too_long"
    return query, None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TransformersBackend:
    """``transformers`` ``generate`` with nucleus sampling; one call per passage (its prompts batched,
    left-padded), torch's generator seeded with the passage's seed before the call."""

    def __init__(self, model: str, sampling: Sampling, key: str = "generator") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the generator {model!r}: {exc}", key=f"{key}.model") from None
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.settings = dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                             max_new_tokens=sampling.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                             eos_token_id=self.tokenizer.eos_token_id)
        self.config_class = GenerationConfig

    def generate(self, requests: Sequence[Request], n: int) -> list[dict[str, list[Completion]]]:
        import torch

        out = []
        for request in requests:
            types = list(request.prompts)
            batch = self.tokenizer([render(self.tokenizer, request.prompts[t]) for t in types], return_tensors="pt",
                                   padding=True, add_special_tokens=not has_chat_template(self.tokenizer)).to(self.device)
            torch.manual_seed(request.seed)
            with torch.inference_mode():
                ids = self.model.generate(**batch, generation_config=self.config_class(
                    **self.settings, num_return_sequences=n))
            new = ids[:, batch["input_ids"].shape[1]:].tolist()
            eos = self.settings["eos_token_id"]
            completions: dict[str, list[Completion]] = {t: [] for t in types}
            for i, seq in enumerate(new):
                end = seq.index(eos) if eos in seq else len(seq)
                text = self.tokenizer.decode(seq[:end], skip_special_tokens=True)
                completions[types[i // n]].append(Completion(text, end < len(seq)))
            out.append(completions)
        return out


class VLLMBackend:
    """vLLM (``pip install 'lossboard[gpu]'``): all prompts of a chunk in one call, each request with
    its passage's seed, so the output does not depend on how requests are batched."""

    def __init__(self, model: str, sampling: Sampling, key: str = "generator") -> None:
        try:
            import vllm
        except ImportError:
            raise ConfigError("backend 'vllm' needs vLLM: pip install 'lossboard[gpu]' (or backend: transformers)",
                              key=f"{key}.backend") from None
        self.vllm = vllm
        self.sampling = sampling
        try:
            self.llm = vllm.LLM(model=model, seed=0)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the generator {model!r}: {exc}", key=f"{key}.model") from None
        tokenizer = self.llm.get_tokenizer()
        self.tokenizer = tokenizer

    def generate(self, requests: Sequence[Request], n: int) -> list[dict[str, list[Completion]]]:
        prompts, params, where = [], [], []
        for i, request in enumerate(requests):
            for qtype, prompt in request.prompts.items():
                prompts.append(render(self.tokenizer, prompt))
                params.append(self.vllm.SamplingParams(
                    n=n, temperature=self.sampling.temperature, top_p=self.sampling.top_p,
                    max_tokens=self.sampling.max_new_tokens, seed=request.seed))
                where.append((i, qtype))
        results = self.llm.generate(prompts, params, use_tqdm=False)
        out: list[dict[str, list[Completion]]] = [{} for _ in requests]
        for (i, qtype), result in zip(where, results):
            out[i][qtype] = [Completion(c.text, c.finish_reason == "stop") for c in result.outputs]
        return out


def load_backend(backend: str, model: str, sampling: Sampling, key: str = "generator") -> Backend:
    """The backend named in the config; :class:`ConfigError` names the key when it cannot load."""
    if backend == "transformers":
        return TransformersBackend(model, sampling, key)
    if backend == "vllm":
        return VLLMBackend(model, sampling, key)
    raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}", key=f"{key}.backend")


def chunk_file(work: Path, index: int) -> Path:
    return work / f"chunk-{index:06d}.jsonl"


def generate_chunks(requests: Sequence[Request], n: int, backend: Callable[[], Backend], work: Path,
                    chunk_size: int, spec: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """Every completion of ``requests``, generated ``chunk_size`` passages at a time into ``work``.

    Each chunk is written atomically once generated, so a killed job loses at most the chunk it was
    on; a rerun reads the chunks already there and generates the rest (the backend is only loaded if
    something is left). ``spec`` (everything the completions depend on) is kept in ``work``: chunks
    written under another spec are removed first. Returns one record per completion:
    ``{"passage_id", "type", "k", "text", "finished"}``, in request, type and sample order.
    """
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / SPEC_FILE
    spec = json.loads(json.dumps({**spec, "chunk_size": chunk_size}))
    if spec_path.exists() and json.loads(spec_path.read_text(encoding="utf-8")) != spec:
        log.info("%s: generated under another spec; starting again", work)
        shutil.rmtree(work)
        work.mkdir(parents=True)
    write_json(spec_path, spec)
    chunks = [requests[i:i + chunk_size] for i in range(0, len(requests), chunk_size)]
    done = sum(1 for i in range(len(chunks)) if chunk_file(work, i).exists())
    if done:
        log.info("%s: %d of %d chunks already generated", work, done, len(chunks))
    model: Backend | None = None
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(requests), desc="synthesize", unit="passage", disable=not progress)
    for i, chunk in enumerate(chunks):
        path = chunk_file(work, i)
        if not path.exists():
            model = model or backend()
            results = model.generate(chunk, n)
            write_jsonl(path, ({"passage_id": r.passage_id, "type": t, "k": k, "text": c.text,
                                "finished": c.finished}
                               for r, result in zip(chunk, results) for t in r.prompts
                               for k, c in enumerate(result[t])))
        records.extend(obj for _, obj in iter_jsonl(path))
        bar.update(len(chunk))
    bar.close()
    return records


def sampling_record(sampling: Sampling) -> dict[str, Any]:
    return asdict(sampling)
