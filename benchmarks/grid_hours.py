"""Expected hours of a grid per Snakemake rule, from measured rates and dataset sizes (issue #5).

Default mode: the jobs of the config's grid (``harness.grid.Grid`` on the config with the schema's
defaults filled in, as ``rules/common.smk`` validates it), each priced as work / rate with the rates
``benchmarks/bench_rates.py`` measured on one device and the published sizes in
``benchmarks/dataset_sizes.yaml``:

- train: per checkpoint, steps × batch_size examples (steps = max_steps when set, else train
  queries // batch_size × epochs) / the model's training examples/s at the train set's shape (hard
  negatives, max positives, GradCache chunk). A job on W = ``devices`` × ``resources.train.nodes``
  processes is priced in device-hours, examples / (W × one device's rate × e(W)), and runs
  1/W of them in wall time; the scaling efficiency e(W) comes from ``--scaling`` (the JSON
  ``benchmarks/bench_ddp.py`` writes: examples/s on W devices over W × on one), else e = 1 (ideal
  scaling: a lower bound on the hours, and the output says so); each of its W processes parses the corpus;
- encode: per (trained or zero-shot model, searched corpus), the corpus's passages / passages/s
  (priced in the evaluate row when the evaluate job encodes its corpus itself: Grid.search_shards),
  split over the corpus's shards;
- evaluate: per (trained or zero-shot model, eval set), its queries / queries/s plus the exact
  search, queries × passages / the measured faiss flat scores/s at the model's dimension;
- teacher: per train set a distillation loss needs, (positives + negatives) pairs / the
  cross-encoder's pairs/s (negatives: the miner's ``mined_negatives``, else the source's cap);
- mine: BM25 indexing (passages / passages/s) and retrieval (queries × passages / pairs/s; bm25s
  scores every passage for each query), or a dense miner's query encoding and search;
- reading ``corpus.jsonl`` (the "corpus reads" column), at the measured rates of ``read_corpus``
  (parsing) and ``count_passages`` (scanning lines): a training, mining or teacher job parses its
  whole corpus; an encode shard scans the file twice (counting, then finding its lines) and parses
  its own share; an answer-match (``qa``) evaluation scans the file and parses the passages it
  retrieved (at most queries × 1,000); other evaluations read no passage text;
- synthesize (a synthetic train set, CADET): its completions (passages × types × per_type) ×
  ``max_new_tokens`` / the generator's measured new tokens/s (``generate``, ``bench_generate.py``), an
  upper bound (a completion that ends early costs less), plus the filter: the retriever's query
  encoding and exact search, and ``depth`` teacher pairs per query. A synthetic train set trains on
  at most that many queries (the filter keeps fewer), so its train and teacher rows are upper bounds;
- prepare (downloads), compare, mteb and site are counted, not priced.

Models other than the measured ``minilm`` and ``bert-base`` are priced as the measured model of the
same size (``SAME_SIZE``; ``--map NAME=MEASURED`` overrides), and the output says so.

``--from-benchmarks RESULTS_DIR`` instead sums the wall-clock seconds (column ``s``) of Snakemake's
own ``benchmark:`` files of a finished run, ``RESULTS_DIR/benchmarks/<rule>/**/*.tsv``, per rule:
the hours that run actually took.

    python benchmarks/grid_hours.py --rates benchmarks/rates-cpu.json     # config/paper.yaml
    python benchmarks/grid_hours.py --from-benchmarks results
    python benchmarks/grid_hours.py --smoke       # config/paper.yaml with the committed CPU rates
    python benchmarks/grid_hours.py --rates benchmarks/rates-<gpu>.json --scaling benchmarks/scaling-<gpu>.json
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.errors import ConfigError, DataError, HarnessError  # noqa: E402
from harness.grid import ZERO_SHOT, Grid, check, load_yaml, total_steps  # noqa: E402
from harness.stages.evaluate import TOP_K  # noqa: E402

SCHEMA = ROOT / "config" / "config.schema.yaml"
PAPER = ROOT / "config" / "paper.yaml"
SIZES = ROOT / "benchmarks" / "dataset_sizes.yaml"
CPU_RATES = ROOT / "benchmarks" / "rates-cpu.json"
SAME_SIZE = {  # model path -> the measured model of its size (layers × width)
    "minilm": "minilm",
    "sentence-transformers/all-MiniLM-L6-v2": "minilm",
    "bert-base-uncased": "bert-base",
    "xlm-roberta-base": "bert-base",
    "intfloat/e5-base-unsupervised": "bert-base",
}
RULES = ("prepare", "synthesize", "mine", "teacher", "train", "encode", "evaluate", "gen_index", "gen_train",
         "gen_ranking", "gen_train_ltrgr", "gen_rank", "compare", "mteb", "site", "all")


def load_config(path: Path) -> dict[str, Any]:
    """The config with the schema's defaults filled in and the grid's own checks passed."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = load_yaml(path)
    try:
        validate(config, str(SCHEMA), set_default=True)
    except WorkflowError as exc:
        raise ConfigError(f"does not match {SCHEMA.relative_to(ROOT)}: {exc}", path=path) from None
    check(config)
    return config


def shape_key(train_set: dict[str, Any]) -> str:
    """The training shape a rate is measured at: hard negatives, max positives, GradCache chunk."""
    return f"hn{train_set['hard_negatives']}-pos{train_set['max_positives']}-gc{train_set['grad_cache_chunk']}"


def given_negatives(dataset: dict[str, Any]) -> int:
    """Hard negatives per training group a source keeps (its ``negatives`` option or default)."""
    from harness.data.prepare import SOURCES

    params = inspect.signature(SOURCES[dataset["source"]]).parameters
    name = next((n for n in ("negatives", "hard_negatives") if n in params), None)
    return 0 if name is None else int(dataset["options"].get(name, params[name].default))


@dataclass
class Row:
    """One rule: its job count, the work it does, and its seconds (None: not priced)."""

    rule: str
    jobs: int = 0
    work: str = ""
    compute_s: float | None = None
    read_s: float | None = None
    gpu: int | None = None

    def add(self, jobs: int, compute_s: float, read_s: float) -> None:
        self.jobs += jobs
        self.compute_s = (self.compute_s or 0.0) + compute_s
        self.read_s = (self.read_s or 0.0) + read_s


class Estimate:
    """Hours per rule of one config, from a rates JSON and a dataset sizes YAML."""

    def __init__(self, config: dict[str, Any], rates: dict[str, Any], rates_path: Path, sizes: dict[str, Any],
                 sizes_path: Path, mapping: dict[str, str] | None = None,
                 scaling: dict[str, Any] | None = None) -> None:
        self.config, self.grid = config, Grid(config)
        self.scaling = scaling
        self.rates, self.rates_path = rates, rates_path
        self.sizes, self.sizes_path = sizes, sizes_path
        self.mapping = dict(mapping or {})
        self.notes: list[str] = []

    # -- inputs ---------------------------------------------------------------------------------
    def measured(self, model: str) -> str:
        """The rates entry a config model is priced with."""
        measured = self.rates.get("models") or {}
        if model in self.mapping:
            name = self.mapping[model]
        elif model in measured:
            name = model
        else:
            path = self.config["models"][model]["path"]
            if path not in SAME_SIZE:
                raise ConfigError(f"no rates for model {model!r} (path {path!r}); measured: {sorted(measured)}; "
                                  f"pass --map {model}=<one of them>", key=f"models.{model}", path=self.rates_path)
            name = SAME_SIZE[path]
        if name not in measured:
            raise ConfigError(f"no rates for model {name!r} (for config model {model!r}); measured: {sorted(measured)}",
                              key=f"models.{name}", path=self.rates_path)
        return name

    def rate(self, *keys: str) -> float:
        """A positive number at ``keys`` in the rates JSON; the error names the file and the key."""
        value: Any = self.rates
        for i, key in enumerate(keys):
            if not isinstance(value, dict) or key not in value:
                raise ConfigError("missing (measure it with benchmarks/bench_rates.py)",
                                  key=".".join(keys[:i + 1]), path=self.rates_path)
            value = value[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"expected a positive rate, got {value!r}", key=".".join(keys), path=self.rates_path)
        return float(value)

    def model_rate(self, model: str, *keys: str) -> float:
        return self.rate("models", self.measured(model), *keys)

    def size(self, dataset: str, field: str, split: str | None = None) -> int:
        """A count from the sizes file; the error names the file and the key."""
        key = f"{dataset}.{field}" + (f".{split}" if split else "")
        entry = self.sizes.get(dataset)
        if not isinstance(entry, dict):
            raise ConfigError("unknown dataset: no sizes given", key=dataset, path=self.sizes_path)
        value = entry.get(field)
        if split is not None:
            value = value.get(split) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"expected a count, got {value!r}", key=key, path=self.sizes_path)
        return value

    def read_s(self, dataset: str, parsed: float | None = None, scans: int = 0) -> float:
        """Seconds to parse ``parsed`` passages (default: all) of ``dataset``'s ``corpus.jsonl``
        after ``scans`` passes over all its lines."""
        n = self.size(dataset, "corpus")
        return (scans * n / self.rate("corpus_scan", "passages_per_s")
                + (n if parsed is None else parsed) / self.rate("corpus_read", "passages_per_s"))

    def gpu(self, rule: str) -> int:
        return int(self.config["resources"].get(rule, {}).get("gpu", 0))

    def world(self, train: str) -> int:
        """The processes (devices) of one training job: ``devices`` per node × ``resources.train.nodes``."""
        return int(self.grid.train_sets[train].get("devices", 1)) * int(self.config["resources"].get("train", {})
                                                                          .get("nodes", 1))

    def efficiency(self, world: int) -> float:
        """e(W): examples/s on W devices over W × on one (``--scaling``); 1 for one device or when unmeasured."""
        if world == 1:
            return 1.0
        measured = (self.scaling or {}).get("efficiency", {})
        if str(world) not in measured:
            note = (f"train: {world} devices per job priced at ideal scaling (e = 1; no --scaling measurement "
                    f"for {world}): a lower bound")
            if note not in self.notes:
                self.notes.append(note)
            return 1.0
        return float(measured[str(world)])

    # -- the grid -------------------------------------------------------------------------------
    def variants(self, model: str) -> list[tuple[str, str, int]]:
        """(train set, loss, seed) of every encoded model: the zero-shot one and each checkpoint of ``model``."""
        g = self.grid
        return [(ZERO_SHOT, ZERO_SHOT, 0)] + [(t, k, s) for t in g.train_sets if model in g.models_of(t)
                                             for k in g.losses_of(t) for s in g.seeds]

    def train_corpus(self, train: str) -> str:
        """The dataset whose corpus a train set reads (a synthetic one's ``corpus``)."""
        return self.grid.train_sets[train].get("corpus", train)

    def train_queries(self, train: str) -> int:
        """A train set's training queries; a synthetic one's completions, an upper bound of what the filter keeps."""
        spec = self.grid.train_sets[train]
        if train in self.grid.synthetic():
            gen = spec["generator"]
            return gen["passages"] * len(gen["types"]) * gen["per_type"]
        return self.size(train, "train_queries")

    def train_examples(self, train: str) -> int:
        spec = self.grid.train_sets[train]
        steps = total_steps(self.train_queries(train), spec["batch_size"], spec["epochs"], spec["max_steps"])
        return steps * spec["batch_size"]

    def teacher_pairs(self, train: str) -> int:
        spec = self.grid.train_sets[train]
        if train in self.grid.synthetic() and spec["miner"] == "given":
            return self.train_queries(train) * spec["filter"]["depth"]  # the source passage and its negatives
        negatives = spec["mined_negatives"] if spec["miner"] != "given" else given_negatives(self.grid.datasets[train])
        positives = self.train_queries(train) if train in self.grid.synthetic() else self.size(train, "train_positives")
        return positives + self.train_queries(train) * negatives

    def synthesize_s(self, train: str) -> float:
        """Generation (an upper bound: every completion runs to max_new_tokens) and the filter of a synthetic train set."""
        spec = self.grid.train_sets[train]
        gen, depth, retriever = spec["generator"], spec["filter"]["depth"], spec["filter"]["retriever"]
        completions, corpus = self.train_queries(train), self.size(spec["corpus"], "corpus")
        seconds = completions * gen["sampling"]["max_new_tokens"] / self.rate("generate", "new_tokens_per_s")
        seconds += (completions / self.model_rate(retriever, "query", "per_s")
                    + completions * corpus / self.model_rate(retriever, "search", "scores_per_s"))
        teacher = self.config["teacher"]
        if teacher["kind"] == "cross-encoder":
            seconds += completions * depth / self.rate("teacher", "pairs_per_s")
        else:
            seconds += completions * depth / self.model_rate(teacher["model"], "passage", "per_s")
        return seconds

    def rows(self) -> list[Row]:
        g = self.grid
        self.notes = []
        rows = {rule: Row(rule, gpu=self.gpu(rule) if rule in ("train", "encode", "evaluate", "teacher", "mine", "synthesize")
                          else None) for rule in RULES}
        used = {self.train_corpus(t) for t in g.train_sets} | {d for e in g.eval_sets for d in (g.dataset_of(e), g.corpus_of(e))}
        used |= {g.few_shot_source(t) for t in g.synthetic()} - {None}
        rows["prepare"].jobs, rows["prepare"].work = len(used), "downloads and conversion: not priced"

        completions = 0
        for t in g.synthetic():
            completions += self.train_queries(t)
            rows["synthesize"].add(1, self.synthesize_s(t), self.read_s(self.train_corpus(t)))
        rows["synthesize"].work = (f"{completions:,} completions of up to "
                                   + "/".join(sorted({str(g.train_sets[t]['generator']['sampling']['max_new_tokens'])
                                                      for t in g.synthetic()})) + " tokens" if completions else "")

        mined = [t for t in g.train_sets if g.train_sets[t]["miner"] != "given"]
        for t in mined:
            queries, passages = self.train_queries(t), self.size(self.train_corpus(t), "corpus")
            dense = g.dense_miner(t)
            if dense is None:
                seconds = (passages / self.rate("bm25", "index_passages_per_s")
                           + queries * passages / self.rate("bm25", "query_passages_per_s"))
            else:
                seconds = (queries / self.model_rate(dense, "query", "per_s")
                           + queries * passages / self.model_rate(dense, "search", "scores_per_s"))
            rows["mine"].add(1, seconds, self.read_s(self.train_corpus(t)))
        rows["mine"].work = " + ".join(f"{self.train_queries(t):,} queries × {self.size(self.train_corpus(t), 'corpus'):,} "
                                       f"passages ({g.train_sets[t]['miner']})" for t in mined)

        teacher = self.config["teacher"]
        distilled = [t for t in g.train_sets if any(g.needs_teacher(k) for k in g.losses_of(t))]
        pairs = 0
        for t in distilled:
            n = self.teacher_pairs(t)
            pairs += n
            if teacher["kind"] == "cross-encoder":
                seconds = n / self.rate("teacher", "pairs_per_s")
            else:
                seconds = (n / self.model_rate(teacher["model"], "passage", "per_s")
                           + self.train_queries(t) / self.model_rate(teacher["model"], "query", "per_s"))
            rows["teacher"].add(1, seconds, self.read_s(self.train_corpus(t)))
        rows["teacher"].work = f"{pairs:,} (query, passage) pairs" if distilled else ""

        examples = 0
        for m in g.dense_models():
            for t in g.train_sets:
                if m not in g.models_of(t):
                    continue
                rate = self.model_rate(m, "train", shape_key(g.train_sets[t]), "examples_per_s")
                n = self.train_examples(t)
                checkpoints = len(g.losses_of(t)) * len(g.seeds)
                examples += n * checkpoints
                world = self.world(t)  # device-seconds: W devices for n / (W × rate × e(W)) seconds
                rows["train"].add(checkpoints, checkpoints * n / (rate * self.efficiency(world)),
                                  checkpoints * self.read_s(self.train_corpus(t)) * world)
        rows["train"].work = f"{examples:,} examples"
        worlds = {t: self.world(t) for t in g.train_sets}
        if any(w > 1 for w in worlds.values()):
            rows["train"].gpu = self.gpu("train") * max(worlds.values())
            self.notes.append("train: hours are device-hours; a job on W devices takes 1/W of them in wall time (W: "
                              + ", ".join(f"{t} {w}" for t, w in worlds.items()) + ")")

        corpora = sorted({g.corpus_of(e) for e in g.eval_sets})
        encoded = {(m, v, c) for m in g.dense_models() for v in self.variants(m) for c in corpora}
        encoded |= {(g.dense_miner(t), (ZERO_SHOT, ZERO_SHOT, 0), t) for t in g.train_sets if g.dense_miner(t)}
        passages = 0
        for m, v, c in sorted(encoded, key=str):
            n, shards = self.size(c, "corpus"), g.shards_of(c)
            passages += n
            if g.search_shards(m, *v, c):
                rows["encode"].add(shards, n / self.model_rate(m, "passage", "per_s"),
                                   shards * self.read_s(c, parsed=n / shards, scans=2))
            else:  # the evaluate job encodes this corpus itself (one scan, no job of its own)
                rows["evaluate"].add(0, n / self.model_rate(m, "passage", "per_s"), self.read_s(c, parsed=n, scans=1))
        rows["encode"].work = f"{passages:,} passages"

        queries = scores = 0
        for m in g.dense_models():
            for _ in self.variants(m):
                for e in g.eval_sets:
                    q = self.size(g.dataset_of(e), "queries", g.eval_sets[e]["split"])
                    n = self.size(g.corpus_of(e), "corpus")
                    queries, scores = queries + q, scores + q * n
                    read = (self.read_s(g.corpus_of(e), parsed=min(n, q * TOP_K), scans=1)
                            if g.family_of(e) == "qa" else 0.0)  # answer match reads the retrieved texts
                    rows["evaluate"].add(1, q / self.model_rate(m, "query", "per_s")
                                         + q * n / self.model_rate(m, "search", "scores_per_s"), read)
        rows["evaluate"].work = f"{queries:,} queries; {scores:.2e} query·passage scores"

        self._generative(rows)
        rows["compare"].jobs = len(g.all_compares())
        rows["compare"].work = "seeds aggregated, randomisation tests (CPU, seconds each): not priced"
        rows["mteb"].jobs, rows["mteb"].work = len(g.all_mteb()), "MTEB's own evaluator: not priced"
        rows["site"].jobs, rows["all"].jobs = 1, 1
        self.notes = self._notes() + self.notes  # the notes of the pricing above come last
        return [rows[r] for r in RULES if rows[r].jobs]

    def _generative(self, rows: dict[str, Row]) -> None:
        """The generative models' rules, priced with the rates JSON's ``generative`` entry (one measured
        encoder-decoder; bench_generative.py and the quickstart's own benchmark files)."""
        from harness.generative.config import TOKENS_PER_PASSAGE, settings
        from harness.grid import GENERATIVE_ROWS as ROWS

        g = self.grid
        for m in g.generative_models():
            cfg = settings(g.models[m])
            for c in sorted({g.corpus_of(e) for e in g.eval_sets_of(m)} | set(g.train_sets_of(m))):
                tokens = self.size(c, "corpus") * TOKENS_PER_PASSAGE
                rows["gen_index"].add(1, tokens / self.rate("generative", "index_tokens_per_s"), self.read_s(c))
            for t in g.train_sets_of(m):
                n = self.train_examples(t) * len(g.seeds)
                rate = self.rate("generative", "train_examples_per_s")
                rows["gen_train"].add(len(g.seeds), n / rate, len(g.seeds) * self.read_s(t))
                rows["gen_train_ltrgr"].add(len(g.seeds), n / self.rate("generative", "ltrgr_examples_per_s"),
                                            len(g.seeds) * self.read_s(t))
                ranked = cfg["ranking_queries"] or self.size(t, "train_queries")
                rows["gen_ranking"].add(len(g.seeds), len(g.seeds) * ranked / self.rate("generative", "queries_per_s"),
                                        0.0)
            for e in g.eval_sets_of(m):
                q = self.size(g.dataset_of(e), "queries", g.eval_sets[e]["split"])
                runs = 1 + len(g.train_sets_of(m)) * len(ROWS) * len(g.seeds)
                rows["gen_rank"].add(runs, runs * q / self.rate("generative", "queries_per_s"), 0.0)
        for rule in ("gen_index", "gen_train", "gen_ranking", "gen_train_ltrgr", "gen_rank"):
            rows[rule].gpu = self.gpu(rule.replace("_ltrgr", "").replace("gen_ranking", "gen_rank"))
            rows[rule].work = "priced as the rates' generative.model (a notes entry says how it was measured)"

    def _notes(self) -> list[str]:
        mapped = {m: self.measured(m) for m in self.grid.dense_models()}
        stand_ins = [f"{m} as {v}" for m, v in mapped.items() if m != v]
        train = {m: self.rates["models"][v]["train"] for m, v in mapped.items()}
        batches = sorted({str(s.get("batch_size")) for shapes in train.values() for s in shapes.values()})
        device = self.rates.get("device", {}).get("name", "?")
        notes = [f"device: {device}; precision: {self.rates.get('precision', '?')}; "
                 f"measured {self.rates.get('date', '?')}"]
        if stand_ins:
            notes.append("priced as the measured model of the same size: " + ", ".join(stand_ins)
                         + " (same layers and width; their tokenisers cut English into slightly different counts)")
        notes.append(f"train: examples/s measured at batch {'/'.join(batches)} on the generated collection (passages "
                     "lengthened to the rates' passage length), not at the config's batch sizes; with GradCache the "
                     "per-example cost barely depends on the batch")
        if any(self.grid.train_sets[t]["miner"] == "bm25" for t in self.grid.train_sets):
            notes.append(f"BM25 retrieval measured on {self.rates.get('bm25', {}).get('threads', '?')} thread(s); "
                         f"the mine rule asks for {self.config['resources'].get('mine', {}).get('threads', 1)}")
        notes.append(f"passages of {self.rates.get('text', {}).get('passage_words', '?')} words (DPR's length); "
                     "MS MARCO's are shorter and some BEIR corpora longer (cut at max_passage_length)")
        if self.grid.synthetic():
            generate = self.rates.get("generate", {})
            notes.append(f"synthesize: generation at {generate.get('new_tokens_per_s', '?')} new tokens/s, measured with "
                         f"{generate.get('model', '?')} ({generate.get('backend', '?')}); an 8B instruction model on a GPU "
                         "is slower per token than that tiny model: measure the real generator with bench_generate.py "
                         "--model; its train and teacher rows count every completion (the filter keeps fewer)")
        notes.append("losses are priced as infonce (every loss is <= 0.2 % of a step: bench_losses.py); "
                     "listwise_kd trains on the queries the teacher keeps (about 3/4), so its rows are upper bounds")
        return notes


def hours(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    h = seconds / 3600
    return f"{h:,.0f}" if h >= 100 else f"{h:.1f}" if h >= 1 else f"{h:.2f}"


def table(rows: list[Row]) -> str:
    lines = ["| rule | jobs | GPU per job | work | compute h | corpus reads h | hours |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        total = None if r.compute_s is None else r.compute_s + (r.read_s or 0.0)
        lines.append(f"| {r.rule} | {r.jobs:,} | {'' if r.gpu is None else r.gpu} | {r.work} | {hours(r.compute_s)} "
                     f"| {hours(r.read_s)} | {hours(total)} |")
    priced = [r for r in rows if r.compute_s is not None]
    total = sum(r.compute_s + (r.read_s or 0.0) for r in priced)
    gpu = sum(r.compute_s + (r.read_s or 0.0) for r in priced if r.gpu)
    lines.append(f"| **total** | {sum(r.jobs for r in rows):,} | | | {hours(sum(r.compute_s for r in priced))} "
                 f"| {hours(sum(r.read_s or 0.0 for r in priced))} | **{hours(total)}** |")
    lines.append("")
    lines.append(f"total: {hours(total)} h, of which {hours(gpu)} h in the rules that ask for a GPU "
                 "(resources.<rule>.gpu)")
    return "\n".join(lines)


# -- measured hours of a finished run -----------------------------------------------------------
def tsv_seconds(path: Path) -> float:
    """The summed ``s`` column of one Snakemake benchmark file (one row per repetition)."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or "s" not in reader.fieldnames:
            raise DataError("not a Snakemake benchmark file: no column 's'", path, 1, "s")
        total = 0.0
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["s"])
            except (TypeError, ValueError):
                raise DataError(f"expected seconds, got {row['s']!r}", path, line, "s") from None
            if not math.isfinite(value) or value < 0:
                raise DataError(f"expected seconds, got {row['s']!r}", path, line, "s")
            total += value
    return total


def benchmark_rows(results: Path) -> list[Row]:
    """Per rule folder under ``results/benchmarks``: its number of benchmark files and their seconds."""
    root = Path(results) / "benchmarks"
    if not root.is_dir():
        raise DataError("no Snakemake benchmark folder (rules write RESULTS/benchmarks/<rule>/...)", root)
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.rglob("*.tsv"))
        if files:
            rows.append(Row(folder.name, len(files), compute_s=sum(tsv_seconds(f) for f in files)))
    if not rows:
        raise DataError("no benchmark files (*.tsv) under any rule folder", root)
    return rows


def benchmark_table(rows: list[Row]) -> str:
    lines = ["| rule | jobs | hours |", "|---|---:|---:|"]
    lines += [f"| {r.rule} | {r.jobs:,} | {hours(r.compute_s)} |" for r in rows]
    lines.append(f"| **total** | {sum(r.jobs for r in rows):,} | **{hours(sum(r.compute_s or 0.0 for r in rows))}** |")
    return "\n".join(lines)


def parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        name, sep, measured = item.partition("=")
        if not sep or not name or not measured:
            raise ConfigError(f"expected NAME=MEASURED, got {item!r}", key="--map")
        mapping[name] = measured
    return mapping


def load_rates(path: Path) -> dict[str, Any]:
    try:
        rates = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("rates file not found; write it with benchmarks/bench_rates.py", path=path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON (line {exc.lineno}): {exc.msg}", path=path) from None
    if not isinstance(rates, dict):
        raise ConfigError("a rates file is a JSON object", path=path)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=PAPER)
    parser.add_argument("--rates", type=Path, help="rates JSON of bench_rates.py (default: benchmarks/rates-<this "
                                                   "machine's device>.json)")
    parser.add_argument("--sizes", type=Path, default=SIZES)
    parser.add_argument("--map", action="append", default=[], metavar="NAME=MEASURED",
                        help="price config model NAME as the measured model MEASURED (repeatable)")
    parser.add_argument("--from-benchmarks", type=Path, metavar="RESULTS_DIR",
                        help="sum Snakemake's benchmark files of a finished run instead")
    parser.add_argument("--scaling", type=Path, help="scaling efficiency JSON of bench_ddp.py (training jobs on "
                                                     "several devices; default: ideal scaling)")
    parser.add_argument("--smoke", action="store_true", help="config/paper.yaml with benchmarks/rates-cpu.json")
    args = parser.parse_args(argv)
    try:
        if args.from_benchmarks is not None:
            print(f"Measured hours per rule of the run in {args.from_benchmarks} (Snakemake's benchmark files, "
                  "column s: each job's wall-clock seconds, summed; jobs that ran side by side all count)\n")
            print(benchmark_table(benchmark_rows(args.from_benchmarks)))
            return 0
        if args.smoke:
            args.rates = CPU_RATES
        if args.rates is None:
            from machine import device_slug

            args.rates = ROOT / "benchmarks" / f"rates-{device_slug()}.json"
        estimate = Estimate(load_config(args.config), load_rates(args.rates), args.rates, load_yaml(args.sizes),
                            args.sizes, parse_map(args.map),
                            load_rates(args.scaling) if args.scaling is not None else None)
        rows = estimate.rows()
    except HarnessError as exc:
        print(f"grid_hours: {exc}", file=sys.stderr)
        return 2
    print(f"Expected hours of {args.config.name} per rule: work / the rates in {args.rates.name}, "
          f"sizes from {args.sizes.name}\n")
    print(table(rows))
    print()
    for note in estimate.notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
