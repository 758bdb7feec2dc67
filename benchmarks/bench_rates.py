"""Rates of the papers' grid on this device: encoding, training, search, teacher scoring (issue #5).

Writes the JSON that ``benchmarks/grid_hours.py`` turns into hours per Snakemake rule. The device is
CUDA when torch sees a GPU, else the CPU. Every rate is the median of ``--reps`` timed repetitions
after an untimed warm-up; on a GPU ``torch.cuda.synchronize()`` closes the warm-up and brackets
every timed region.

Models, each with the encoder settings of the config's entry of the same name (``config/paper.yaml``:
pooling, normalisation, max lengths 32/256):

- ``minilm``: the packaged all-MiniLM-L6-v2;
- ``bert-base``: bert-base-uncased's architecture (``BertConfig()`` defaults) with random weights
  and the packaged MiniLM's tokenizer, which is bert-base-uncased's WordPiece vocabulary: the
  weights cannot be downloaded here, and they do not change the compute;
- the teacher: an XLM-RoBERTa-large-sized sequence classifier (24 layers, width 1024, 250,002-token
  vocabulary, random weights), the architecture of the grid's BAAI/bge-reranker-v2-m3, with
  XLM-R's tokenizer when it is cached and else the MiniLM tokenizer (speed depends on the sequence
  length and the model's size, not on the vocabulary); the JSON names the tokenizer used.

Timed:

- passages/s and queries/s: ``BiEncoder.encode`` (tokenisation, forward, copy to the host) as
  ``harness encode`` and ``harness evaluate`` call it, in the model's ``precision`` from the config
  where the device has native bf16, else fp32 (the JSON says which); on a GPU passages at ``encode.batch_size`` and queries
  at 128 (``harness evaluate``'s batch), on the CPU one batch of 16 passages and queries at 32;
- train examples/s (= queries/s): ``Trainer.train()`` of ``harness.train`` with ``infonce`` on the
  generated collection (``harness.data.generated``, passages lengthened to ``--passage-words``),
  once per training shape (hard negatives, max positives, GradCache chunk) of the config's
  ``train_sets``, in the model's precision as for encoding, at ``--train-batch`` queries per
  step, smaller than the config's 64/128: examples/s at that batch is what is measured (with
  GradCache the per-example cost barely depends on the batch). ``--warmup-steps`` untimed steps,
  then ``--train-steps`` timed steps split over the repetitions; loading is not timed;
- search: ``FlatIPSearcher`` (faiss flat inner product, on the GPU when faiss sees one) over
  random unit vectors of the model's dimension, top 1,000 as ``harness evaluate`` asks:
  query·passage scores/s (the cost is linear in queries and passages);
- teacher pairs/s: tokenising (query, passage) pairs and the classifier's forward, in fp32 as
  ``harness teacher`` runs sentence-transformers' ``CrossEncoder``, at its batch of 64 on a GPU
  (8 on the CPU); on a GPU also under bf16 autocast, for reference;
- BM25: ``bm25s`` indexing (passages/s) and retrieval (query·passage pairs/s: bm25s scores every
  passage for each query) as ``harness mine`` runs them, retrieval on the config's
  ``resources.mine.threads`` threads or this machine's cores if fewer;
- ``corpus.jsonl``: ``read_corpus`` (parsing, passages/s) and ``count_passages`` (scanning lines,
  passages/s), the two ways jobs read a corpus (see ``grid_hours.py``).

Text: passages of ``--passage-words`` words (default 100, DPR's passage length) and queries of
``--query-words`` words, drawn (seeded) from the running text of the generated collection, so
common words come at their natural rate; the mean token counts are written with the rates.

    python benchmarks/bench_rates.py                # writes benchmarks/rates-<device>.json
    python benchmarks/bench_rates.py --smoke --out /tmp/rates.json   # tiny random models; seconds
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from grid_hours import PAPER, load_config, shape_key  # noqa: E402
from machine import cpu_model, device_name, device_slug  # noqa: E402
from harness.data.format import count_passages, passage_text, read_corpus, write_corpus  # noqa: E402
from harness.data.generated import generate  # noqa: E402
from harness.errors import ConfigError, HarnessError  # noqa: E402
from harness.stages.evaluate import TOP_K  # noqa: E402
from harness.io import write_json  # noqa: E402
from harness.models.biencoder import BiEncoder, EncoderSettings  # noqa: E402
from harness.models.registry import build_tiny, load_model, packaged_minilm_path  # noqa: E402
from harness.retrieval import FlatIPSearcher  # noqa: E402
from harness.grid import Grid  # noqa: E402
from harness.precision import device_has_bf16  # noqa: E402
from harness.train import Trainer, TrainArgs  # noqa: E402

MEASURED = ("minilm", "bert-base")
QUERY_BATCH = 128  # harness evaluate's --batch-size default
TEACHER_BATCH = 64  # harness teacher's --batch-size default
BM25_DEPTH = 100  # harness mine ranks 3 × 30 negatives + the judged passages deep
XLMR_LARGE = {"vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096, "max_position_embeddings": 514, "type_vocab_size": 1}
TINY_TEACHER = {**XLMR_LARGE, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 64}
XLMR_TOKENIZER = "FacebookAI/xlm-roberta-large"


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    passages: int
    passage_batch: int
    queries: int
    query_batch: int
    train_batch: int
    warmup_steps: int
    train_steps: int
    teacher_pairs: int
    teacher_batch: int
    search_passages: int
    search_queries: int
    bm25_passages: int
    bm25_queries: int
    read_passages: int
    reps: int


def plan_for(cuda: bool, smoke: bool, encode_batch: int) -> Plan:
    """On a GPU the grid's batch sizes, with enough batches to time; on the CPU one small batch
    each, to stay within minutes on two cores; ``--smoke`` a handful of texts."""
    if smoke:
        return Plan(passages=8, passage_batch=4, queries=8, query_batch=4, train_batch=4, warmup_steps=0,
                    train_steps=1, teacher_pairs=4, teacher_batch=4, search_passages=2000, search_queries=10,
                    bm25_passages=300, bm25_queries=10, read_passages=300, reps=1)
    if cuda:
        return Plan(passages=16 * encode_batch, passage_batch=encode_batch, queries=64 * QUERY_BATCH,
                    query_batch=QUERY_BATCH, train_batch=64, warmup_steps=3, train_steps=30,
                    teacher_pairs=16 * TEACHER_BATCH, teacher_batch=TEACHER_BATCH, search_passages=1_000_000,
                    search_queries=1000, bm25_passages=20_000, bm25_queries=200, read_passages=50_000, reps=3)
    return Plan(passages=16, passage_batch=16, queries=128, query_batch=32, train_batch=8, warmup_steps=1,
                train_steps=3, teacher_pairs=8, teacher_batch=8, search_passages=100_000, search_queries=100,
                bm25_passages=20_000, bm25_queries=200, read_passages=50_000, reps=3)


def synchronizer(cuda: bool) -> Callable[[], None]:
    return torch.cuda.synchronize if cuda else (lambda: None)


def timed(fn: Callable[[], object], reps: int, sync: Callable[[], None]) -> list[float]:
    """Wall-clock seconds of ``reps`` calls of ``fn``, each bracketed by ``sync``."""
    runs = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - start)
    return runs


def rounded(runs: list[float]) -> list[float]:
    return [round(r, 4) for r in runs]


# -- text -----------------------------------------------------------------------------------------
def running_words(dataset: Path) -> list[str]:
    """Every word of the generated collection's passages, in order (common words repeat)."""
    return [w for doc in read_corpus(dataset / "corpus.jsonl").values() for w in passage_text(doc).split()]


def sample_texts(words: list[str], count: int, length: int, rng: np.random.Generator) -> list[str]:
    return [" ".join(words[i] for i in row) for row in rng.integers(len(words), size=(count, length))]


def lengthen_corpus(dataset: Path, words: list[str], length: int, rng: np.random.Generator) -> None:
    """Pad every passage of ``dataset`` with running words up to ``length`` words, title included."""
    corpus = read_corpus(dataset / "corpus.jsonl")
    docs = []
    for doc_id, doc in corpus.items():
        missing = max(0, length - len(passage_text(doc).split()))
        extra = " ".join(words[i] for i in rng.integers(len(words), size=missing))
        docs.append((doc_id, doc["title"], f"{doc['text']} {extra}".strip()))
    write_corpus(dataset / "corpus.jsonl", docs)


def mean_tokens(tokenizer: Any, texts: list[str], max_length: int, pairs_with: list[str] | None = None) -> float:
    encoded = tokenizer(texts, pairs_with, truncation=True, max_length=max_length)["input_ids"]
    return round(float(np.mean([len(ids) for ids in encoded])), 1)


# -- models ---------------------------------------------------------------------------------------
def encoder(name: str, settings: dict[str, Any], smoke: bool) -> tuple[BiEncoder, str]:
    """The bi-encoder measured as ``name`` and a one-line description of it."""
    parsed = EncoderSettings.from_dict(settings, f"models.{name}.settings")
    if smoke:
        return build_tiny(parsed), "2-layer random BERT (smoke)"
    if name == "minilm":
        return load_model("minilm", settings), "all-MiniLM-L6-v2 (packaged)"
    tokenizer = transformers.AutoTokenizer.from_pretrained(packaged_minilm_path())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        transformer = transformers.BertModel(transformers.BertConfig(), add_pooling_layer=False)
    return (BiEncoder(transformer, tokenizer, parsed),
            "bert-base-uncased architecture, random weights, bert-base-uncased WordPiece tokenizer")


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def teacher_tokenizer() -> tuple[Any, str]:
    """XLM-R's tokenizer when it is cached (or reachable), else the packaged MiniLM's."""
    try:
        return transformers.AutoTokenizer.from_pretrained(XLMR_TOKENIZER), XLMR_TOKENIZER
    except (OSError, ValueError):
        path = packaged_minilm_path()
        return transformers.AutoTokenizer.from_pretrained(path), "all-MiniLM-L6-v2's (bert-base-uncased WordPiece)"


# -- measurements ---------------------------------------------------------------------------------
def encode_rate(model: BiEncoder, texts: list[str], kind: str, batch: int, precision: str, reps: int,
                sync: Callable[[], None]) -> dict[str, Any]:
    """Texts/s of ``BiEncoder.encode`` over ``texts``, after one untimed pass."""
    model.encode(texts, kind, batch, precision=precision)
    sync()
    runs = timed(lambda: model.encode(texts, kind, batch, precision=precision), reps, sync)
    s = model.settings
    max_length = s.max_query_length if kind == "query" else s.max_passage_length
    prefix = s.query_prefix if kind == "query" else s.passage_prefix
    return {"count": len(texts), "batch_size": batch, "max_length": max_length,
            "mean_tokens": mean_tokens(model.tokenizer, [prefix + t for t in texts], max_length),
            "per_s": round(len(texts) / statistics.median(runs), 3), "runs_s": rounded(runs)}


def search_rate(dim: int, passages: int, queries: int, reps: int) -> dict[str, Any]:
    """Query·passage scores/s of ``FlatIPSearcher.search`` (top ``TOP_K``), index building untimed."""
    import faiss

    rng = np.random.default_rng(0)
    docs = rng.standard_normal((passages, dim), dtype=np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    query_emb = docs[rng.integers(passages, size=queries)] + 0.1 * rng.standard_normal((queries, dim), dtype=np.float32)
    searcher = FlatIPSearcher(docs)
    k = min(TOP_K, passages)
    searcher.search(query_emb, k)
    runs = timed(lambda: searcher.search(query_emb, k), reps, lambda: None)  # faiss returns when done
    return {"passages": passages, "queries": queries, "dim": dim, "k": k, "faiss_gpus": faiss.get_num_gpus(),
            "scores_per_s": round(passages * queries / statistics.median(runs), 1), "runs_s": rounded(runs)}


def teacher_rate(pairs: list[tuple[str, str]], batch: int, sizes: dict[str, int], description: str,
                 device: torch.device, reps: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Pairs/s of a random XLM-R-sized cross-encoder's forward, fp32 (and bf16 autocast on a GPU)."""
    tokenizer, tokenizer_name = teacher_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.XLMRobertaForSequenceClassification(transformers.XLMRobertaConfig(num_labels=1, **sizes))
    model.to(device).eval()
    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]

    @torch.inference_mode()
    def score(bf16: bool) -> None:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
        for lo in range(0, len(pairs), batch):
            features = tokenizer(queries[lo:lo + batch], passages[lo:lo + batch], padding=True, truncation=True,
                                 max_length=512, return_tensors="pt")
            features.pop("token_type_ids", None)  # XLM-R has one segment type
            with autocast:
                logits = model(**{k: v.to(device) for k, v in features.items()}).logits  # [b, 1]
            logits.float().cpu()

    result: dict[str, Any] = {"description": description, "parameters": parameters(model), "tokenizer": tokenizer_name,
                              "pairs": len(pairs), "batch_size": batch,
                              "precision": "fp32 (as harness teacher runs CrossEncoder)",
                              "mean_tokens": mean_tokens(tokenizer, queries, 512, passages)}
    for bf16 in ([False, True] if device.type == "cuda" else [False]):
        score(bf16)
        sync()
        runs = timed(lambda: score(bf16), reps, sync)
        key = "pairs_per_s_bf16" if bf16 else "pairs_per_s"
        result[key] = round(len(pairs) / statistics.median(runs), 3)
        result["runs_s_bf16" if bf16 else "runs_s"] = rounded(runs)
    return result


def bm25_rate(docs: list[str], queries: list[str], threads: int, reps: int) -> dict[str, Any]:
    """bm25s indexing passages/s and retrieval query·passage pairs/s on ``threads`` threads,
    tokenisation included."""
    import bm25s

    def index() -> Any:
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(docs, show_progress=False), show_progress=False)
        return retriever

    retriever = index()
    index_runs = timed(index, reps, lambda: None)
    k = min(BM25_DEPTH, len(docs))

    def retrieve() -> None:
        tokens = bm25s.tokenize(queries, return_ids=False, show_progress=False)
        retriever.retrieve(tokens, k=k, show_progress=False, n_threads=threads)

    retrieve()
    retrieve_runs = timed(retrieve, reps, lambda: None)
    return {"passages": len(docs), "queries": len(queries), "k": k, "threads": threads,
            "index_passages_per_s": round(len(docs) / statistics.median(index_runs), 1),
            "query_passages_per_s": round(len(docs) * len(queries) / statistics.median(retrieve_runs), 1),
            "index_runs_s": rounded(index_runs), "retrieve_runs_s": rounded(retrieve_runs)}


def read_rates(path: Path, texts: list[str], reps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Passages/s of ``read_corpus`` (parsing every line) and of ``count_passages`` (scanning the
    lines only) on a ``corpus.jsonl`` of ``texts``, in the page cache after a first read."""
    write_corpus(path, ((f"d{i}", "", t) for i, t in enumerate(texts)))
    rates = []
    for fn in (read_corpus, count_passages):
        read = functools.partial(fn, path)
        read()
        runs = timed(read, reps, lambda: None)
        rates.append({"passages": len(texts), "passages_per_s": round(len(texts) / statistics.median(runs), 1),
                      "runs_s": rounded(runs)})
    return rates[0], rates[1]


def train_rate(model_dir: Path, dataset: Path, settings: dict[str, Any], train_set: dict[str, Any], plan: Plan,
               out: Path, sync: Callable[[], None], precision: str) -> dict[str, Any]:
    """Examples/s of ``Trainer.train()``: untimed warm-up steps, then the timed steps in ``reps`` runs."""
    per_rep = max(1, plan.train_steps // plan.reps)
    total = plan.warmup_steps + per_rep * plan.reps
    args = TrainArgs(model=str(model_dir), dataset=dataset, loss="infonce", out=out, model_settings=settings,
                     batch_size=plan.train_batch, hard_negatives=train_set["hard_negatives"],
                     max_positives=train_set["max_positives"], grad_cache_chunk=train_set["grad_cache_chunk"],
                     precision=precision, learning_rate=train_set["learning_rate"],
                     epochs=total, max_steps=total)  # epochs: the schedule never runs out before max_steps
    trainer = Trainer(args)
    trainer.total_steps = plan.warmup_steps  # train() runs up to total_steps; raised run by run below
    trainer.train()
    sync()
    runs = []
    for _ in range(plan.reps):
        trainer.total_steps += per_rep
        runs.extend(timed(trainer.train, 1, sync))
    steps = range(plan.warmup_steps, trainer.total_steps)
    docs = [len(trainer.batches.build(s, trainer.queries, trainer.corpus).docs) for s in steps]
    result = {"hard_negatives": train_set["hard_negatives"], "max_positives": train_set["max_positives"],
              "grad_cache_chunk": train_set["grad_cache_chunk"], "precision": precision,
              "batch_size": plan.train_batch, "warmup_steps": plan.warmup_steps, "steps_per_run": per_rep,
              "passages_per_step": round(float(np.mean(docs)), 1),
              "examples_per_s": round(per_rep * plan.train_batch / statistics.median(runs), 3),
              "runs_s": rounded(runs)}
    return result


# -- report ---------------------------------------------------------------------------------------
def table(rates: dict[str, Any]) -> str:
    models, shapes = rates["models"], sorted({k for m in rates["models"].values() for k in m["train"]})
    lines = ["| model | parameters | passages/s | queries/s | "
             + " | ".join(f"train examples/s {s}" for s in shapes) + " | search scores/s |",
             "|---|---:|---:|---:|" + "---:|" * len(shapes) + "---:|"]
    for name, m in models.items():
        train = " | ".join(f"{m['train'][s]['examples_per_s']:.2f}" if s in m["train"] else "—" for s in shapes)
        lines.append(f"| {name} | {m['parameters'] / 1e6:.1f} M | {m['passage']['per_s']:.1f} | "
                     f"{m['query']['per_s']:.1f} | {train} | {m['search']['scores_per_s']:.3g} |")
    t = rates["teacher"]
    bf16 = f", bf16 autocast {t['pairs_per_s_bf16']:.1f}" if "pairs_per_s_bf16" in t else ""
    b, r, c = rates["bm25"], rates["corpus_read"], rates["corpus_scan"]
    return "\n".join(lines + [
        "",
        f"teacher ({t['description']}, {t['parameters'] / 1e6:.0f} M parameters, {t['mean_tokens']:.0f} tokens "
        f"per pair, tokenizer {t['tokenizer']}): {t['pairs_per_s']:.2f} pairs/s fp32{bf16}",
        f"bm25s: indexing {b['index_passages_per_s']:.0f} passages/s; retrieval {b['query_passages_per_s']:.3g} "
        f"query·passage pairs/s ({b['threads']} thread(s), {b['passages']:,} passages)",
        f"corpus.jsonl: parsing {r['passages_per_s']:.0f} passages/s, scanning lines "
        f"{c['passages_per_s']:.0f} passages/s",
    ])


def describe(rates: dict[str, Any], plan: Plan) -> str:
    d, text = rates["device"], rates["text"]
    minilm = rates["models"][MEASURED[0]]
    train = next(iter(minilm["train"].values()))
    return "\n".join([
        f"- device: {d['name']}; torch {rates['torch']}, {d['torch_threads']} threads; load average at start "
        f"{d['load_average'][0]:.1f}; {rates['date']}",
        f"- precision: {rates['precision']}",
        f"- text: passages of {text['passage_words']} words ({minilm['passage']['mean_tokens']:.0f} tokens), queries "
        f"of {text['query_words']} words ({minilm['query']['mean_tokens']:.0f} tokens), drawn from the generated "
        "collection's running text",
        f"- encoding: {plan.passages} passages at batch {plan.passage_batch}, {plan.queries} queries at batch "
        f"{plan.query_batch}; median of {plan.reps} after a warm-up pass",
        f"- training: infonce on the generated collection, **batch {plan.train_batch} queries per step** (the grid "
        f"trains with 64/128: examples/s at this smaller batch is what was measured), {train['steps_per_run']} "
        f"timed step(s) per run after {plan.warmup_steps} warm-up step(s), median of {plan.reps} runs; shapes are "
        "hn<hard negatives>-pos<max positives>-gc<GradCache chunk>",
        f"- search: faiss flat inner product, top {minilm['search']['k']}, {minilm['search']['passages']:,} random "
        f"vectors, {minilm['search']['queries']} queries, faiss GPUs {minilm['search']['faiss_gpus']}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=PAPER, help="the grid whose models and train shapes are "
                                                                   "measured (default: config/paper.yaml)")
    parser.add_argument("--out", type=Path, help="the JSON written (default: benchmarks/rates-<device>.json; "
                                                 "with --smoke, nothing unless given)")
    parser.add_argument("--smoke", action="store_true", help="tiny random models, a handful of texts, 1 step; seconds")
    parser.add_argument("--passage-words", type=int, default=100)
    parser.add_argument("--query-words", type=int, default=8)
    parser.add_argument("--train-batch", type=int, help="queries per training step (default: 64 GPU, 8 CPU)")
    parser.add_argument("--train-steps", type=int, help="timed training steps (default: 30 GPU, 3 CPU)")
    parser.add_argument("--warmup-steps", type=int, help="untimed training steps first (default: 3 GPU, 1 CPU)")
    parser.add_argument("--reps", type=int, help="timed repetitions (default: 3)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    cuda = torch.cuda.is_available() and not args.smoke
    device, sync = torch.device("cuda" if cuda else "cpu"), synchronizer(cuda)
    try:
        config = load_config(args.config)
        for name in MEASURED:
            if name not in config["models"]:
                raise ConfigError("the model measured under this name takes its encoder settings from here",
                                  key=f"models.{name}", path=args.config)
    except HarnessError as exc:
        print(f"bench_rates: {exc}", file=sys.stderr)
        return 2
    plan = plan_for(cuda, args.smoke, int(config["encode"]["batch_size"]))
    plan = replace(plan, **{k: v for k, v in {"train_batch": args.train_batch, "train_steps": args.train_steps,
                                              "warmup_steps": args.warmup_steps, "reps": args.reps}.items()
                            if v is not None})
    grid = Grid(config)
    measured_in = {name: grid.precision(name) if device_has_bf16(device) else "fp32" for name in MEASURED}
    shapes: dict[str, dict[str, Any]] = {}
    for spec in config["train_sets"].values():
        shapes.setdefault(shape_key(spec), spec)
    load = os.getloadavg()
    rng = np.random.default_rng(0)
    cpu_name = f"cpu: {cpu_model()}, {os.cpu_count()} cores"
    rates: dict[str, Any] = {
        "schema": 1, "smoke": args.smoke, "config": os.path.relpath(args.config, ROOT),
        "device": {"kind": device.type, "name": device_name() if cuda else cpu_name,
                   "slug": device_slug() if cuda else "cpu", "cpu": cpu_model(), "cores": os.cpu_count(),
                   "torch_threads": torch.get_num_threads(), "load_average": [round(x, 2) for x in load]},
        "torch": torch.__version__, "transformers": transformers.__version__,
        "precision": {**measured_in, "teacher": "fp32, as harness teacher runs it",
                      "note": "the config's precision where this device has native bf16, else fp32"},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "text": {"passage_words": args.passage_words, "query_words": args.query_words,
                 "source": "words drawn from the running text of harness.data.generated's collection (seed 13)"},
        "plan": asdict(plan), "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench_rates.") as tmp_dir:
        tmp = Path(tmp_dir)
        dataset = tmp / "generated"
        generate(dataset)
        words = running_words(dataset)
        lengthen_corpus(dataset, words, args.passage_words, rng)
        passages = sample_texts(words, max(plan.passages, plan.teacher_pairs, plan.bm25_passages,
                                           plan.read_passages), args.passage_words, rng)
        queries = sample_texts(words, max(plan.queries, plan.teacher_pairs, plan.bm25_queries), args.query_words, rng)

        model_dirs = {}
        for name in MEASURED:
            settings = config["models"][name]["settings"]
            model, description = encoder(name, settings, args.smoke)
            model.to(device)
            print(f"bench_rates: {name}: encoding and search", file=sys.stderr)
            rates["models"][name] = {
                "description": description, "parameters": parameters(model), "dim": model.dim,
                "settings": model.settings.to_dict(),
                "passage": encode_rate(model, passages[:plan.passages], "passage", plan.passage_batch, measured_in[name],
                                       plan.reps, sync),
                "query": encode_rate(model, queries[:plan.queries], "query", plan.query_batch, measured_in[name], plan.reps, sync),
                "search": search_rate(model.dim, plan.search_passages, plan.search_queries, plan.reps),
            }
            model_dirs[name] = tmp / "models" / name
            model.to("cpu").save(model_dirs[name])
            del model
            gc.collect()

        print("bench_rates: teacher, bm25, corpus reading", file=sys.stderr)
        sizes, description = ((TINY_TEACHER, "2-layer random XLM-R classifier (smoke)") if args.smoke else
                              (XLMR_LARGE, "XLM-RoBERTa-large-sized sequence classifier, random weights"))
        rates["teacher"] = teacher_rate(list(zip(queries[:plan.teacher_pairs], passages[:plan.teacher_pairs])),
                                        plan.teacher_batch, sizes, description, device, plan.reps, sync)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        mine_threads = min(int(config["resources"].get("mine", {}).get("threads", 1)), os.cpu_count() or 1)
        rates["bm25"] = bm25_rate(passages[:plan.bm25_passages], queries[:plan.bm25_queries], mine_threads, plan.reps)
        rates["corpus_read"], rates["corpus_scan"] = read_rates(tmp / "read" / "corpus.jsonl",
                                                                passages[:plan.read_passages], plan.reps)

        # Training last: Trainer turns on torch's deterministic algorithms for the rest of the process.
        for name in MEASURED:
            rates["models"][name]["train"] = {}
            for key, spec in shapes.items():
                print(f"bench_rates: {name}: training, shape {key}", file=sys.stderr)
                rates["models"][name]["train"][key] = train_rate(
                    model_dirs[name], dataset, config["models"][name]["settings"], spec, plan, tmp / "checkpoint", sync, measured_in[name])
                gc.collect()

    print(describe(rates, plan))
    print()
    print(table(rates))
    out = args.out or (None if args.smoke else ROOT / "benchmarks" / f"rates-{rates['device']['slug']}.json")
    if out is not None:
        write_json(out, rates)
        print(f"\nrates written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
