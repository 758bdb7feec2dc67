"""Generation rate of the synthesize stage (CADET's synthetic queries): new tokens per second.

Times :class:`harness.synthesis.generate.TransformersBackend` (or the vLLM backend) on the repository's
six prompt templates filled with 100-word passages, ``--per-type`` completions each, every completion
run to ``--max-new-tokens`` (a random model almost never samples its end-of-text token), and merges
the rate into a rates JSON as ``generate`` (read by ``grid_hours.py`` for the synthesize rule):

    python benchmarks/bench_generate.py                     # tiny random GPT-2 -> rates-<device>.json
    python benchmarks/bench_generate.py --model meta-llama/Llama-3.1-8B-Instruct --backend vllm
    python benchmarks/bench_generate.py --smoke             # seconds; writes nothing

Without ``--model`` the generator is a random 2-layer GPT-2 (64 wide) built from a transformers config
with MiniLM's tokenizer: offline, and a measure of the stage's own overhead more than of a real LLM.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness.data.format import passage_text, read_corpus  # noqa: E402
from harness.data.generated import generate as generated_collection  # noqa: E402
from harness.io import write_json  # noqa: E402
from harness.synthesis.generate import Request, Sampling, load_backend, passage_seed  # noqa: E402
from harness.synthesis.prompts import QUERY_TYPES, load_templates  # noqa: E402
from machine import device_name, device_slug  # noqa: E402

TINY = {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 1024}


def tiny_generator(folder: Path) -> str:
    """A random GPT-2 of :data:`TINY`'s shape with MiniLM's tokenizer ([SEP] as end-of-text), saved to ``folder``."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from harness.models.registry import packaged_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    tokenizer.eos_token = tokenizer.sep_token
    config = GPT2Config(vocab_size=len(tokenizer), eos_token_id=tokenizer.sep_token_id,
                        bos_token_id=tokenizer.cls_token_id, **TINY)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def passages(count: int, words: int = 100) -> list[str]:
    """``count`` passages of ``words`` words drawn from the generated collection's running text (seed 13)."""
    with tempfile.TemporaryDirectory() as tmp:
        generated_collection(Path(tmp), docs=300)
        pool = [w for doc in read_corpus(Path(tmp) / "corpus.jsonl").values() for w in passage_text(doc).split()]
    rng = random.Random(13)
    return [" ".join(rng.choices(pool, k=words)) for _ in range(count)]


def measure(model: str, backend: str, requests: int, per_type: int, max_new_tokens: int, reps: int) -> dict[str, Any]:
    templates = load_templates(list(QUERY_TYPES))
    examples = ["what is the capital of france", "symptoms of flu", "how long to boil an egg"]
    reqs = [Request(f"p{i}", passage_seed(0, f"p{i}"), {t: tpl.render(text, examples) for t, tpl in templates.items()})
            for i, text in enumerate(passages(requests))]
    generator = load_backend(backend, model, Sampling(max_new_tokens=max_new_tokens))
    generator.generate(reqs[:1], per_type)  # warm-up
    runs, tokens = [], 0
    for _ in range(reps):
        start = time.perf_counter()
        out = generator.generate(reqs, per_type)
        runs.append(time.perf_counter() - start)
        finished = sum(c.finished for result in out for cs in result.values() for c in cs)
        tokens = requests * len(QUERY_TYPES) * per_type * max_new_tokens
        if finished:
            raise SystemExit(f"{finished} completions ended before {max_new_tokens} tokens: the rate would be off")
    best = min(runs)
    return {"model": model if model else "", "backend": backend, "requests": requests, "per_type": per_type,
            "max_new_tokens": max_new_tokens, "completions": requests * len(QUERY_TYPES) * per_type,
            "runs_s": [round(r, 4) for r in runs], "new_tokens_per_s": round(tokens / best, 1),
            "device": device_name(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a causal LM folder or hub id (default: a tiny random GPT-2)")
    parser.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--requests", type=int, default=4, help="passages (each: 6 prompts)")
    parser.add_argument("--per-type", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rates", type=Path, help="rates JSON to merge into (default: benchmarks/rates-<device>.json)")
    parser.add_argument("--print-only", action="store_true", help="print the entry, write nothing")
    parser.add_argument("--smoke", action="store_true", help="one passage, 4 tokens, one run; prints only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.per_type, args.max_new_tokens, args.reps, args.print_only = 1, 1, 4, 1, True
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or tiny_generator(Path(tmp) / "gpt2")
        entry = measure(model, args.backend, args.requests, args.per_type, args.max_new_tokens, args.reps)
    entry["model"] = args.model or f"tiny random GPT-2 ({TINY['n_layer']} layers, {TINY['n_embd']} wide, MiniLM's tokenizer)"
    entry["threads"] = args.threads
    print(json.dumps(entry, indent=1))
    if not args.print_only:
        path = args.rates or ROOT / "benchmarks" / f"rates-{device_slug()}.json"
        rates = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        rates["generate"] = entry
        write_json(path, rates)
        print(f"-> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
