"""The generative retriever's identifier index (issue #15, item 2): build rate, size, next-token queries.

Cranfield and CISI (``../shared/data``) are tokenised with MiniLM's tokenizer (titles and bodies,
as ``harness gen-index`` does) and indexed by :class:`harness.generative.index.IdentifierIndex`
(a suffix array from pydivsufsort). Prints per corpus: identifier tokens, the median build time
of the repetitions and its rate (tokens/s, tokenisation excluded), the bytes per token of the
saved index and of the arrays a job holds, and next-token queries/s for prefixes of 0 to 3
tokens drawn from the corpus (seeded), the question constrained decoding asks at every step.

    python benchmarks/bench_generative.py            # both corpora, 3 repetitions, 2,000 prefixes
    python benchmarks/bench_generative.py --smoke    # Cranfield's first 200 passages, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.generative.index import IdentifierIndex  # noqa: E402
from harness.generative.model import load_tokenizer, tokens  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def corpus(name: str, limit: int | None) -> list[dict[str, str]]:
    with open(DATA / name / "corpus.jsonl", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    return docs[:limit] if limit else docs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    if not DATA.is_dir():
        sys.exit("../shared/data is absent: this benchmark reads Cranfield and CISI from it")
    names, reps, prefixes, limit = (["cranfield"], 1, 200, 200) if a.smoke else (["cranfield", "cisi"], 3, 2000, None)
    tok = load_tokenizer("minilm")
    print("| corpus | passages | identifier tokens | build s (median) | build tokens/s | index file bytes/token "
          "| in-memory bytes/token | next-token queries/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        docs = corpus(name, limit)
        titles = tokens(tok, [d.get("title") or "" for d in docs], 64)
        bodies = tokens(tok, [d["text"] for d in docs], 512)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            index = IdentifierIndex.build([d["_id"] for d in docs], titles, bodies, [[] for _ in docs], len(tok))
            times.append(time.perf_counter() - start)
        build = statistics.median(times)
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp))
            file_bytes = (Path(tmp) / "index.npz").stat().st_size
        memory = index.text.nbytes + index.sa.nbytes + index.starts.nbytes
        rng = random.Random(0)
        sequences = [b for b in bodies if len(b) > 4]
        queries = []
        for _ in range(prefixes):
            seq = rng.choice(sequences)
            start = rng.randrange(len(seq) - 3)
            queries.append(seq[start:start + rng.randint(0, 3)])
        index.first_tokens, index.root_tokens  # built once per index, as a ranking job does
        start = time.perf_counter()
        for q in queries:
            index.next_tokens(q)
        rate = len(queries) / (time.perf_counter() - start)
        print(f"| {name} | {len(docs):,} | {index.n_tokens:,} | {build:.3f} | {index.n_tokens / build:,.0f} "
              f"| {file_bytes / index.n_tokens:.1f} | {memory / index.n_tokens:.1f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
