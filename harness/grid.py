"""The grid: a validated config -> every output path of the workflow.

The Snakefile reads the config, validates it with the JSON schema (``config/config.schema.yaml``,
defaults filled in) and then with :func:`check`, which knows what a schema cannot: that a loss,
a metric family or a dataset a grid entry names exists. Every path of the results tree is written
here, once, in :data:`PATHS`: the rules take their input and output patterns from
:meth:`Grid.pattern`, the grid's own methods and the readers (shard names in
:mod:`harness.retrieval`, MTEB scores in :mod:`harness.leaderboard.collect`) format the same
templates, so the rules, the tests and the site agree on it.

Results tree (relative to ``results``)::

    data/<dataset>/                                 prepared dataset (meta.json marks it done)
    mined/<dataset>/<miner>.jsonl                   training groups with mined hard negatives
    teacher/<dataset>/<teacher>.jsonl               teacher scores for listwise distillation
    synthesis/<train>/chunk-*.jsonl                 a synthetic train set's generated chunks (resume)
    loss-checks/<loss>.json                         contract report of a loss named by module:Class
    checkpoints/<model>/<train>/<loss>/seed<s>/     trained model (sentence-transformers folder)
    resume/<model>/<train>/<loss>/seed<s>/          resume checkpoints of a training job
    embeddings/<model>/<train>/<loss>/seed<s>/<corpus>/shard-<i>-of-<n>.npy
    runs/<model>/<train>/<loss>/seed<s>/<eval>/     metrics.json, per_query.jsonl, run.trec
    gen-index/<corpus>/<model>/                     identifier index of a corpus (generative models)
    gen-ranking/<model>/<train>/seed<s>.jsonl       phase-1 ranking of the training queries (LTRGR's input)
    compare/<model>/<train>/<eval>.json             seeds aggregated + tests against the baseline
    compare/claims.json, compare/ranks.json         the papers' claims' verdicts; Friedman/Nemenyi per board
    mteb/<model>/<train>/<loss>/seed<s>.json        MTEB's own scores, when the config asks for them

Beside each output of a step (a dataset, a mined or teacher file, a checkpoint, a shard, an
evaluation folder) lies ``<output>.step.json``: the commands that made it, its inputs' first
(:func:`harness.provenance.step_file`); the site prints an evaluation's as the row's reproduce steps.

The zero-shot row is the untrained model: ``train`` = ``loss`` = ``zero-shot``, seed 0. A dense
miner (a model key) ranks with that model's zero-shot embeddings of the training corpus. A model
of ``kind: generative`` has the rows ``gen`` and ``ltrgr`` (:mod:`harness.generative.config`)
instead of the losses, and its ``gen`` row is its rows' baseline. A bi-encoder's table also holds the
``gen`` and ``ltrgr`` rows of each generative model trained and evaluated on its train and eval set
(:meth:`Grid.guests`), so they are tested against the dense baseline too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.io import read_json

ZERO_SHOT = "zero-shot"
GENERATIVE_ROWS = ("gen", "ltrgr")  # a generative model's rows: phase 1 (MINDER's generation loss), phase 2 (LTRGR)
MINERS = ("given", "bm25")
MINER_KEYS = ("miner", "mined_negatives")  # a train set's keys read by the mine stage; the rest are training options
SYNTHETIC = "synthetic-queries"  # a train set's source when the synthesize stage writes its queries (CADET)
SYNTHESIS_KEYS = ("source", "corpus", "generator", "filter")  # read by the synthesize stage
SCOPE_KEYS = ("models", "losses")  # which models and rows a train set trains (default: all)
NOT_TRAINING_OPTIONS = (*MINER_KEYS, *SYNTHESIS_KEYS, *SCOPE_KEYS)  # a train set's other keys go to `harness train`

PATHS = {
    "data": "{results}/data/{dataset}",
    "mined": "{results}/mined/{dataset}/{miner}.jsonl",
    "teacher": "{results}/teacher/{dataset}/{teacher}.jsonl",
    "synthesis": "{results}/synthesis/{dataset}",
    "loss_check": "{results}/loss-checks/{loss}.json",
    "checkpoint": "{results}/checkpoints/{model}/{train}/{loss}/seed{seed}",
    "resume": "{results}/resume/{model}/{train}/{loss}/seed{seed}",
    "embeddings": "{results}/embeddings/{model}/{train}/{loss}/seed{seed}/{corpus}",
    "shard": "shard-{shard:03d}-of-{shards:03d}.npy",  # a file of an embeddings folder
    "run": "{results}/runs/{model}/{train}/{loss}/seed{seed}/{eval}",
    "compare": "{results}/compare/{model}/{train}/{eval}.json",
    "mteb": "{results}/mteb/{model}/{train}/{loss}/seed{seed}.json",
    "claims": "{results}/compare/claims.json",
    "ranks": "{results}/compare/ranks.json",
    "gen_index": "{results}/gen-index/{corpus}/{model}",
    "gen_ranking": "{results}/gen-ranking/{model}/{train}/seed{seed}.jsonl",
}


class _Wildcard(str):
    """A field left for Snakemake: ``{name}`` whatever the format spec (``{shard:03d}`` -> ``{shard}``)."""

    def __format__(self, spec: str) -> str:
        return str(self)


class _Wildcards(dict[str, Any]):
    def __missing__(self, key: str) -> _Wildcard:
        return _Wildcard("{" + key + "}")


@dataclass(frozen=True)
class LossEntry:
    """One row of the leaderboard: a loss (a registered name or ``module:Class``) with its parameters."""

    key: str
    name: str
    params: dict[str, Any]
    label: str


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config with the safe loader; errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of keys", path=path)
    check_size(data, path)
    return data


MAX_VALUES = 100_000


def check_size(config: Any, path: str | Path | None = None) -> None:
    """Refuse a config that expands to more than :data:`MAX_VALUES` values (a YAML alias bomb: nine
    levels of nine aliases load as shared objects in no time, then any walk over them never ends)."""
    stack, seen = [config], 0
    while stack:
        obj = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"the config expands to more than {MAX_VALUES:,} values (YAML aliases nested in "
                              "aliases?); write it out", path=path)
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)


def total_steps(groups: int, batch_size: int, epochs: int, max_steps: int) -> int:
    """The optimizer steps of a training run: ``max_steps`` when set (passing over the groups as often as
    it takes, as Hugging Face's Trainer does), else ``epochs`` passes of whole batches."""
    return max_steps or groups // batch_size * epochs


def guest_label(model: str, row: str) -> str:
    """The label of another model's row on a table: ``minilm-gen · ltrgr``."""
    return f"{model} · {row}"


def loss_key(label: str, params: dict[str, Any]) -> str:
    """The row key of a loss entry: its label, plus its parameters when it has any.

    ``mw`` with ``{temperature: 0.05}`` -> ``mw.temperature=0.05``, so two settings of one loss
    are two rows and two results folders.
    """
    if not params:
        return label
    return label + "." + ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(params.items()))


def loss_entries(config: dict[str, Any]) -> dict[str, LossEntry]:
    entries = {}
    for label, params in (config.get("losses") or {}).items():
        params = dict(params or {})
        name = params.pop("loss", label)
        key = loss_key(label, params)
        entries[key] = LossEntry(key, name, params, label)
    return entries


def check(config: dict[str, Any]) -> None:
    """Checks beyond the schema; raises :class:`ConfigError` naming the key's path."""
    from harness.data.prepare import check_options
    from harness.losses import resolve_loss
    from harness.metrics import metrics_for

    datasets = config["datasets"]
    for name, spec in datasets.items():
        metrics_for(spec["family"], spec.get("metrics"))
        try:
            check_options(spec["source"], spec["options"])
        except ConfigError as exc:
            raise ConfigError(exc.message, key=f"datasets.{name}.options.{exc.key}") from None
    from harness.generative import config as generative

    for name in MINERS:
        if name in config["models"]:
            raise ConfigError(f"{name!r} names a miner; call the model something else", key=f"models.{name}")
    for name, spec in config["train_sets"].items():
        if spec.get("source") == SYNTHETIC:
            _check_synthetic(config, name, spec)
        elif name not in datasets:
            raise ConfigError(f"names dataset {name!r}, which is not under 'datasets'", key=f"train_sets.{name}")
        elif any(k in spec for k in SYNTHESIS_KEYS):
            key = next(k for k in SYNTHESIS_KEYS if k in spec)
            raise ConfigError(f"'{key}' belongs to a train set with source: {SYNTHETIC}", key=f"train_sets.{name}.{key}")
        _check_scope(config, name, spec)
        miner = spec.get("miner", "given")
        if miner not in MINERS and miner not in config["models"]:
            raise ConfigError(f"miner {miner!r} is neither one of {list(MINERS)} nor a model under 'models'",
                              key=f"train_sets.{name}.miner")
        _check_world(config, name, spec)
        if miner in config["models"] and generative.is_generative(config["models"][miner]):
            raise ConfigError(f"miner {miner!r} is a generative model; a dense miner is a bi-encoder",
                              key=f"train_sets.{name}.miner")
    for name, spec in config["eval_sets"].items():
        for field in ("dataset", "corpus"):
            dataset = spec.get(field, spec.get("dataset", name))
            if dataset not in datasets:
                raise ConfigError(f"names dataset {dataset!r}, which is not under 'datasets'",
                                  key=f"eval_sets.{name}" + (f".{field}" if field in spec else ""))
        searched = datasets[spec.get("corpus", spec.get("dataset", name))]
        if searched["source"] == "dpr-qa" and (searched.get("options") or {}).get("corpus") == "contexts":
            raise ConfigError("searches a corpus of training contexts only; name the dataset holding the full "
                              "corpus with 'corpus:'", key=f"eval_sets.{name}")
        if "family" in spec:
            metrics_for(spec["family"], datasets[spec.get("dataset", name)].get("metrics"))
        if "subgroup" in spec and "group" not in spec:
            raise ConfigError("a subgroup counts as one eval set in its group's average; give the eval set a group",
                              key=f"eval_sets.{name}.subgroup")
        _check_split(config, name, spec)
    for label, params in (config.get("losses") or {}).items():
        params = dict(params or {})
        name = params.pop("loss", label)
        cls = resolve_loss(name, key=f"losses.{label}" + (".loss" if name != label else ""))
        try:
            cls(**params)
        except ConfigError as exc:  # the loss names its own key (losses.<name>.<param>): name the row's
            param = (exc.key or "").removeprefix(f"losses.{cls.name}")
            raise ConfigError(exc.message, key=f"losses.{label}{param if param.startswith('.') else ''}") from None
        key = loss_key(label, params)
        if "/" in key or "\\" in key:
            raise ConfigError(f"row key {key!r} would be a path of several folders; give the parameter another value",
                              key=f"losses.{label}")
    generative.check(config)
    baseline = config.get("baseline")
    if baseline not in loss_entries(config):
        raise ConfigError(f"baseline {baseline!r} is not a row of 'losses'", key="baseline")
    Grid(config).check_inside()
    for i, name in enumerate((config.get("mteb") or {}).get("eval_sets", [])):
        if name not in config["eval_sets"]:
            raise ConfigError(f"names eval set {name!r}, which is not under 'eval_sets'", key=f"mteb.eval_sets[{i}]")
    if config.get("references"):
        _check_references(config)
    claims(config)
    for key in ("teacher",):
        teacher = config.get(key) or {}
        if teacher.get("kind") == "bi-encoder" and teacher.get("model") not in config["models"]:
            raise ConfigError(f"teacher model {teacher.get('model')!r} is not under 'models'", key=f"{key}.model")
    _check_precision(config)


def _check_precision(config: dict[str, Any]) -> None:
    """Refuse bf16 for a model whose jobs run on this machine (no GPU asked for in ``resources``) when
    its device has no native bf16 (:func:`harness.precision.require`); a job given a GPU checks its own."""
    import torch

    from harness.precision import require

    grid = Grid(config)
    here = {s for s in ("train", "encode", "evaluate", "mine") if not (config.get("resources") or {}).get(s, {}).get("gpu")}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as the stages pick it
    for model, spec in config["models"].items():
        if grid.is_generative(model):
            if spec.get("precision") == "bf16":
                raise ConfigError("a generative model trains and ranks in fp32 (its stages have no bf16)",
                                  key=f"models.{model}.precision")
            continue
        stages = {"train", "encode", "evaluate"} | {"mine" for t in grid.train_sets if grid.dense_miner(t) == model}
        if grid.precision(model) == "bf16" and stages & here:
            require("bf16", device, key=f"models.{model}.precision" if "precision" in spec else "precision")


def _check_world(config: dict[str, Any], name: str, spec: dict[str, Any]) -> None:
    """A train set's batch is split evenly over its job's processes (``devices`` per node × the
    train job's ``nodes``); ``nodes`` is a resource of training jobs only."""
    resources = config.get("resources") or {}
    for stage, values in resources.items():
        if stage != "train" and "nodes" in (values or {}):
            raise ConfigError("only a training job spans several nodes", key=f"resources.{stage}.nodes")
    nodes = (resources.get("train") or {}).get("nodes", 1)
    world = spec.get("devices", 1) * nodes
    batch_size = spec.get("batch_size", 32)
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the job's {world} processes (devices "
                          f"{spec.get('devices', 1)} × resources.train.nodes {nodes}); every process encodes an "
                          "equal share of the queries", key=f"train_sets.{name}.batch_size")


def _check_synthetic(config: dict[str, Any], name: str, spec: dict[str, Any]) -> None:
    """A synthetic train set (CADET): its own name, a corpus and few-shot dataset under 'datasets', a
    filter retriever under 'models', query types with prompt templates that hold their placeholders,
    and a generator that loads (a local folder is loaded now; a Hub id by the job)."""
    from harness.synthesis.prompts import FEW_SHOT, check_generator_model, load_templates

    key = f"train_sets.{name}"
    if name in config["datasets"]:
        raise ConfigError(f"a {SYNTHETIC} train set is a dataset of its own; call it something else than "
                          f"dataset {name!r}", key=key)
    for field in ("corpus", "generator", "filter"):
        if field not in spec:
            raise ConfigError(f"a {SYNTHETIC} train set needs '{field}'", key=f"{key}.{field}")
    if spec["corpus"] not in config["datasets"]:
        raise ConfigError(f"names dataset {spec['corpus']!r}, which is not under 'datasets'", key=f"{key}.corpus")
    generator = spec["generator"]
    load_templates(list(generator["types"]), generator.get("prompts"), f"{key}.generator")
    few_shot = generator.get("few_shot_from")
    if few_shot is not None and few_shot not in config["datasets"]:
        raise ConfigError(f"names dataset {few_shot!r}, which is not under 'datasets'", key=f"{key}.generator.few_shot_from")
    if few_shot is not None and FEW_SHOT not in generator["types"]:
        raise ConfigError(f"few-shot examples, but no {FEW_SHOT} query type", key=f"{key}.generator.few_shot_from")
    check_generator_model(str(generator["model"]), f"{key}.generator")
    if spec["filter"]["retriever"] not in config["models"]:
        raise ConfigError(f"retriever {spec['filter']['retriever']!r} is not under 'models'", key=f"{key}.filter.retriever")


def _check_scope(config: dict[str, Any], name: str, spec: dict[str, Any]) -> None:
    """A train set's ``models`` and ``losses`` (when given) name models and rows of the grid, the baseline among them."""
    for field in SCOPE_KEYS:
        for i, item in enumerate(spec.get(field, [])):
            if item not in (config.get(field) or {}):
                raise ConfigError(f"{item!r} is not a key of '{field}'", key=f"train_sets.{name}.{field}[{i}]")
    baseline = loss_entries(config).get(config.get("baseline"))
    if "losses" in spec and baseline is not None and baseline.label not in spec["losses"]:
        raise ConfigError(f"every comparison needs the baseline {baseline.label!r}; add it",
                          key=f"train_sets.{name}.losses")


def claims(config: dict[str, Any]) -> list[Any]:
    """The config's ``claims:`` parsed and checked (:func:`harness.claims.parse_claims`), each row named
    by its row key (a label with parameters becomes ``label.param=value``)."""
    from dataclasses import replace

    from harness.claims import parse_claims
    from harness.losses import REGISTRY
    from harness.metrics import metrics_for

    grid = Grid(config)
    by_label = {e.label: key for key, e in grid.losses.items()}
    measured = sorted({m for e in config["eval_sets"]
                       for m in metrics_for(grid.family_of(e), config["datasets"][grid.dataset_of(e)].get("metrics"))})

    def check_metric(name: str) -> None:
        if name not in measured:
            raise ConfigError(f"unknown metric {name!r}: no eval set of this grid measures it; measured: "
                              f"{', '.join(measured)}")

    parsed = parse_claims(config.get("claims"), rows=[ZERO_SHOT, *grid.losses, *by_label],
                          known_rows=[*REGISTRY, *GENERATIVE_ROWS], models=list(config["models"]),
                          eval_sets=list(config["eval_sets"]), check_metric=check_metric)
    return [replace(c, a=by_label.get(c.a, c.a), others=tuple(by_label.get(o, o) for o in c.others)) for c in parsed]


def _check_references(config: dict[str, Any]) -> None:
    """The references file exists and each entry names a row, an eval set and a metric of this grid."""
    from harness.metrics import metrics_for
    from harness.references import check_references, read_references

    refs = read_references(config["references"])
    grid = Grid(config)
    metrics = {e: metrics_for(grid.family_of(e), config["datasets"][grid.dataset_of(e)].get("metrics"))
               for e in config["eval_sets"]}
    check_references(refs, list(config["models"]), list(config["train_sets"]), list(grid.losses), metrics)


def _check_split(config: dict[str, Any], name: str, spec: dict[str, Any]) -> None:
    """Refuse an eval set whose split its dataset does not have, where that is known before any job:
    from the source (a generated collection, a local BEIR folder) or from the prepared folder."""
    from harness.data.format import splits
    from harness.data.prepare import known_splits

    dataset = spec.get("dataset", name)
    source = config["datasets"][dataset]
    known = known_splits(source["source"], source["options"])
    folder = Path(str(config["results"])) / "data" / dataset
    if known is None and (folder / "meta.json").is_file():
        known = splits(folder) + read_json(folder / "meta.json").get("source", {}).get("answer_match_splits", [])
    if known is not None and spec["split"] not in known:
        raise ConfigError(f"dataset {dataset!r} has no split {spec['split']!r}; it has: {', '.join(known)}",
                          key=f"eval_sets.{name}.split")


class Grid:
    """The outputs of a validated config."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.results = str(config["results"])
        self.models: dict[str, Any] = config["models"]
        self.datasets: dict[str, Any] = config["datasets"]
        self.train_sets: dict[str, Any] = config["train_sets"]
        self.eval_sets: dict[str, Any] = config["eval_sets"]
        self.losses = loss_entries(config)
        self.seeds: list[int] = list(config["seeds"])

    # -- names ----------------------------------------------------------------------------------
    def dataset_of(self, eval_set: str) -> str:
        """The dataset an eval set evaluates (several eval sets may be splits of one dataset)."""
        return self.eval_sets[eval_set].get("dataset", eval_set)

    def corpus_of(self, eval_set: str) -> str:
        """The dataset whose corpus an eval set searches (eval sets may share one corpus)."""
        return self.eval_sets[eval_set].get("corpus") or self.dataset_of(eval_set)

    def family_of(self, eval_set: str) -> str:
        return self.eval_sets[eval_set].get("family") or self.datasets[self.dataset_of(eval_set)]["family"]

    def ignore_identical_ids(self, eval_set: str) -> bool:
        """Whether an eval set drops a retrieved passage whose id is the query's (BEIR's rule)."""
        from harness.metrics import ignores_identical_ids

        spec = self.eval_sets[eval_set]
        return bool(spec.get("ignore_identical_ids", ignores_identical_ids(self.family_of(eval_set))))

    def precision(self, model: str) -> str:
        """The arithmetic a model trains and encodes in: its own ``precision``, else the config's (a
        bi-encoder's; a generative model runs in fp32)."""
        default = "fp32" if self.is_generative(model) else self.config["precision"]
        return str(self.models[model].get("precision", default))

    def teacher_name(self) -> str:
        teacher = self.config["teacher"]
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(teacher["model"]))

    def synthetic(self) -> list[str]:
        """The train sets whose queries the synthesize stage writes (CADET)."""
        return [t for t, spec in self.train_sets.items() if spec.get("source") == SYNTHETIC]

    def models_of(self, train: str) -> list[str]:
        """The models trained on a train set (its ``models``, else all)."""
        return list(self.train_sets[train].get("models") or self.models)

    def losses_of(self, train: str) -> list[str]:
        """The rows trained on a train set (its ``losses``, else all), in the order of 'losses'."""
        chosen = self.train_sets[train].get("losses")
        return [k for k in self.losses if chosen is None or self.losses[k].label in chosen]

    def needs_teacher(self, loss: str) -> bool:
        from harness.losses import resolve_loss

        return bool(resolve_loss(self.losses[loss].name).needs_teacher)

    def wildcard_constraints(self) -> dict[str, str]:
        def one_of(names: list[str]) -> str:
            return "|".join(re.escape(n) for n in names)

        return {
            "model": one_of(list(self.models)),
            "train": one_of([*self.train_sets, ZERO_SHOT]),
            "loss": one_of([*self.losses, *GENERATIVE_ROWS, ZERO_SHOT]),
            "eval": one_of(list(self.eval_sets)),
            "dataset": one_of([*self.datasets, *self.synthetic()]),
            "corpus": one_of(sorted({self.corpus_of(e) for e in self.eval_sets}
                                    | {t for t in self.train_sets if self.dense_miner(t)}
                                    | {self.train_sets[t]["corpus"] for t in self.synthetic()})),
            "seed": r"\d+",
            "shard": r"\d+",
            "shards": r"\d+",
            "miner": one_of(sorted({self.train_sets[t]["miner"] for t in self.train_sets} - {"given"}) or ["bm25"]),
            "teacher": re.escape(self.teacher_name()),
        }

    # -- paths ----------------------------------------------------------------------------------
    def pattern(self, name: str, **values: Any) -> str:
        """The path template ``PATHS[name]`` under this grid's results folder, the fields given in
        ``values`` filled in and the others left as Snakemake wildcards (``{model}``)."""
        return PATHS[name].format_map(_Wildcards(results=self.results, **values))

    def check_inside(self) -> None:
        """Refuse a grid with an output path outside the results folder."""
        root = os.path.normpath(self.results)
        for path in [*self.all_runs(), *self.all_compares(), *self.all_mteb()]:
            if os.path.commonpath([root, os.path.normpath(path)]) != root:
                raise ConfigError(f"output path {path!r} leaves the results folder {self.results!r}")

    def data(self, dataset: str) -> str:
        return self.pattern("data", dataset=dataset)

    def loss_check(self, loss: str) -> list[str]:
        """The contract report a row's training waits for: [] for a registered loss, which the
        test suite checks; one report per row of a loss named by ``module:Class``."""
        from harness.losses import REGISTRY

        return [] if self.losses[loss].name in REGISTRY else [self.pattern("loss_check", loss=loss)]

    def checkpoint(self, model: str, train: str, loss: str, seed: int | str) -> str:
        return self.pattern("checkpoint", model=model, train=train, loss=loss, seed=seed)

    def run(self, model: str, train: str, loss: str, seed: int | str, eval_set: str) -> str:
        return self.pattern("run", model=model, train=train, loss=loss, seed=seed, eval=eval_set)

    def shards_of(self, corpus: str) -> int:
        return int(self.datasets[corpus].get("shards", self.config["encode"]["shards"]))

    def shard_files(self, model: str, train: str, loss: str, seed: int | str, corpus: str) -> list[str]:
        base = self.pattern("embeddings", model=model, train=train, loss=loss, seed=seed, corpus=corpus)
        n = self.shards_of(corpus)
        return [f"{base}/{PATHS['shard'].format(shard=i, shards=n)}" for i in range(n)]

    def search_shards(self, model: str, train: str, loss: str, seed: int | str, corpus: str) -> list[str]:
        """The corpus shards an evaluation searches, or [] when it encodes its corpus itself.

        A checkpoint's corpus is encoded by its own ``encode`` jobs only when that pays: the corpus is
        sharded, several of the model's eval sets search it, or the encoding is reused (a dense miner's
        or a synthetic filter's zero-shot encoding). Otherwise one evaluate job encodes it, exactly as
        a shard job would (:func:`harness.retrieval.encode_passages`), and the grid saves a process
        that would pay the imports and a model load again (about 9 CPU s; benchmarks/RESULTS.md §12).
        """
        files = self.shard_files(model, train, loss, seed, corpus)
        searched_by = [e for e in self.eval_sets_of(model) if self.corpus_of(e) == corpus]
        reused = {f for t in self.train_sets for f in self.miner_shards(t)}
        reused |= {f for t in self.synthetic() for f in self.filter_shards(t)}
        return files if len(files) > 1 or len(searched_by) > 1 or files[0] in reused else []

    def mined(self, train: str) -> list[str]:
        """The mined training groups of a train set ([] when it trains on its own hard negatives)."""
        miner = self.train_sets[train]["miner"]
        return [] if miner == "given" else [self.pattern("mined", dataset=train, miner=miner)]

    def dense_miner(self, train: str) -> str | None:
        """The model whose zero-shot top results give a train set its hard negatives, if any."""
        miner = self.train_sets[train]["miner"]
        return None if miner in MINERS else miner

    def miner_shards(self, train: str) -> list[str]:
        """The corpus embeddings a dense miner searches: its zero-shot encoding of the train corpus."""
        model = self.dense_miner(train)
        return [] if model is None else self.shard_files(model, ZERO_SHOT, ZERO_SHOT, 0, train)

    def eval_metas(self) -> list[str]:
        """The ``meta.json`` of every dataset evaluated (the training leakage guard reads them)."""
        return [f"{self.data(d)}/meta.json" for d in sorted({self.dataset_of(e) for e in self.eval_sets})]

    def train_options(self, train: str) -> dict[str, Any]:
        """The hyper-parameters handed to ``harness train`` (the miner's, the synthesis's and the scope's
        settings stay here)."""
        return {k: v for k, v in self.train_sets[train].items() if k not in NOT_TRAINING_OPTIONS}

    def filter_shards(self, train: str) -> list[str]:
        """The corpus embeddings a synthetic train set's filter searches: its retriever's zero-shot encoding."""
        spec = self.train_sets[train]
        return self.shard_files(spec["filter"]["retriever"], ZERO_SHOT, ZERO_SHOT, 0, spec["corpus"])

    def few_shot_source(self, train: str) -> str | None:
        """The dataset whose training queries a synthetic train set's few-shot prompts show (None: no such prompt)."""
        from harness.synthesis.prompts import FEW_SHOT

        generator = self.train_sets[train]["generator"]
        return generator.get("few_shot_from", self.train_sets[train]["corpus"]) if FEW_SHOT in generator["types"] else None

    def teacher(self, train: str) -> str:
        """The teacher scores of a train set's groups."""
        return self.pattern("teacher", dataset=train, teacher=self.teacher_name())

    def compare(self, model: str, train: str, eval_set: str) -> str:
        return self.pattern("compare", model=model, train=train, eval=eval_set)

    def is_generative(self, model: str) -> bool:
        return self.models[model].get("kind") == "generative"

    def dense_models(self) -> list[str]:
        return [m for m in self.models if not self.is_generative(m)]

    def generative_models(self) -> list[str]:
        return [m for m in self.models if self.is_generative(m)]

    def rows_of(self, model: str, train: str) -> list[str]:
        """The trained rows of a model on a train set: its losses (:meth:`losses_of`) for a bi-encoder, ``gen``
        and ``ltrgr`` for a generative one."""
        return list(GENERATIVE_ROWS) if self.is_generative(model) else self.losses_of(train)

    def baseline_of(self, model: str) -> str:
        """The row a model's rows are tested against: the config's baseline, ``gen`` for a generative model."""
        return GENERATIVE_ROWS[0] if self.is_generative(model) else str(self.config["baseline"])

    def gen_index(self, model: str, corpus: str) -> str:
        """The identifier index of a corpus for a generative model's tokenizer."""
        return self.pattern("gen_index", model=model, corpus=corpus)

    def rows(self, model: str, train: str, eval_set: str) -> dict[str, list[str]]:
        """Every row of one comparison table -> its run folders (one per seed): the model's own rows, then,
        on a bi-encoder's table, the rows of every generative model trained on the same train set and
        evaluated on the same eval set (:meth:`guests`)."""
        rows = {ZERO_SHOT: [self.run(model, ZERO_SHOT, ZERO_SHOT, 0, eval_set)]}
        for key in self.rows_of(model, train):
            rows[key] = [self.run(model, train, key, seed, eval_set) for seed in self.seeds]
        return rows | self.guests(model, train, eval_set)

    def guests(self, model: str, train: str, eval_set: str) -> dict[str, list[str]]:
        """The rows another model brings to a bi-encoder's table, labelled ``<model> · <row>`` (:func:`guest_label`):
        each generative model's ``gen`` and ``ltrgr`` on the same train and eval set (the same queries), tested
        against the dense baseline like the table's own losses."""
        if self.is_generative(model):
            return {}
        return {guest_label(g, key): [self.run(g, train, key, seed, eval_set) for seed in self.seeds]
                for g in self.generative_models() if train in self.train_sets_of(g) and eval_set in self.eval_sets_of(g)
                for key in self.rows_of(g, train)}

    def summaries(self) -> list[str]:
        """The files compare writes from every table: the claims' verdicts and the rank tests."""
        return [self.pattern("claims"), self.pattern("ranks")]

    def train_sets_of(self, model: str) -> list[str]:
        """The train sets a model is trained on: all (or a generative model's own list) that do not leave
        it out (a train set's ``models``)."""
        return [t for t in (self.models[model].get("train_sets") or self.train_sets) if model in self.models_of(t)]

    def eval_sets_of(self, model: str) -> list[str]:
        """The eval sets a model is evaluated on: all, unless a generative model lists its own."""
        return list(self.models[model].get("eval_sets") or self.eval_sets)

    def all_compares(self) -> list[str]:
        return [self.compare(m, t, e) for m in self.models for t in self.train_sets_of(m) for e in self.eval_sets_of(m)]

    def mteb(self, model: str, train: str, loss: str, seed: int | str) -> str:
        return self.pattern("mteb", model=model, train=train, loss=loss, seed=seed)

    def all_mteb(self) -> list[str]:
        """MTEB's scores for every trained and zero-shot model ([] unless the config asks for them)."""
        mteb = self.config.get("mteb") or {}
        if not (mteb.get("tasks") or mteb.get("eval_sets")):
            return []
        files = [self.mteb(m, ZERO_SHOT, ZERO_SHOT, 0) for m in self.dense_models()]
        return files + [self.mteb(m, t, k, s) for m in self.dense_models() for t in self.train_sets_of(m)
                        for k in self.losses_of(t) for s in self.seeds]

    def mteb_local(self) -> list[dict[str, str]]:
        """The eval sets MTEB evaluates offline, as ``harness mteb --local`` takes them."""
        return [{"name": e, "dataset": self.data(self.dataset_of(e)), "split": self.eval_sets[e]["split"],
                 "corpus": self.data(self.corpus_of(e)), "ignore_identical_ids": self.ignore_identical_ids(e)}
                for e in (self.config.get("mteb") or {}).get("eval_sets", [])]

    def mteb_datasets(self) -> list[str]:
        """The folders of the datasets (and corpora) of the eval sets MTEB evaluates offline."""
        return sorted({d for spec in self.mteb_local() for d in (spec["dataset"], spec["corpus"])})

    def all_runs(self) -> list[str]:
        runs = [self.run(m, ZERO_SHOT, ZERO_SHOT, 0, e) for m in self.models for e in self.eval_sets_of(m)]
        runs += [self.run(m, t, k, s, e) for m in self.models for t in self.train_sets_of(m) for k in self.rows_of(m, t)
                 for s in self.seeds for e in self.eval_sets_of(m)]
        return runs
