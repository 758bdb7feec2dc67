"""``harness <stage>``: the command every Snakemake rule calls, usable from any script.

Each stage takes explicit input paths, writes explicit outputs (atomically) and logs to stderr;
nothing is shared between stages but files. A :class:`~harness.errors.HarnessError` ends the
command with its message and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError

log = logging.getLogger("harness")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def cmd_prepare(a: argparse.Namespace) -> None:
    from harness.data.prepare import prepare

    options = dict(a.options)
    if a.path is not None:
        options["path"] = a.path
    meta = prepare(a.source, Path(a.out), **options)
    log.info("prepared %s: %s", a.out, meta.get("counts"))


def cmd_teacher(a: argparse.Namespace) -> None:
    from harness.models.teacher import run_teacher

    _threads(a.threads)
    kept = run_teacher(a.kind, a.model, Path(a.dataset), Path(a.out), Path(a.groups) if a.groups else None,
                       a.settings, a.batch_size)
    log.info("teacher scores for %d queries -> %s", kept, a.out)


def cmd_train(a: argparse.Namespace) -> None:
    from harness.train import TrainArgs, train

    _threads(a.threads)
    options = dict(a.options)
    fields = set(TrainArgs.__dataclass_fields__) - {"model", "dataset", "loss", "out", "loss_params",
                                                     "model_settings", "seed", "teacher", "groups", "resume_dir",
                                                     "leakage_eval", "loss_check"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(fields)}", key="--options")
    args = TrainArgs(model=a.model, dataset=Path(a.dataset), loss=a.loss, out=Path(a.out),
                     loss_params=a.loss_params, model_settings=a.settings, seed=a.seed,
                     teacher=Path(a.teacher) if a.teacher else None, groups=Path(a.groups) if a.groups else None,
                     leakage_eval=[Path(d) for d in a.leakage_eval],
                     resume_dir=Path(a.resume_dir) if a.resume_dir else None,
                     loss_check=Path(a.loss_check) if a.loss_check else None, **options)
    out = train(args)
    log.info("checkpoint -> %s", out)


def cmd_mine(a: argparse.Namespace) -> None:
    from harness.data.mining import mine_bm25, mine_dense

    if a.model is None:
        mine_bm25(Path(a.dataset), Path(a.out), a.negatives, a.seed, a.threads or 1)
    else:
        from harness.models.registry import load_model

        _threads(a.threads)
        mine_dense(Path(a.dataset), Path(a.out), a.negatives, a.seed, load_model(a.model, a.settings),
                   Path(a.embeddings) if a.embeddings else None, a.batch_size, a.bf16)
    log.info("%s negatives%s -> %s", a.model or "bm25", f" over {a.embeddings}" if a.embeddings else "", a.out)


def cmd_encode(a: argparse.Namespace) -> None:
    from harness.models.registry import load_model
    from harness.retrieval import encode_corpus_shard

    _threads(a.threads)
    model = load_model(a.model, a.settings)
    encode_corpus_shard(model, Path(a.dataset) / "corpus.jsonl", Path(a.out), a.shard,
                        a.num_shards, a.batch_size, a.dtype, bf16=a.bf16)


def cmd_evaluate(a: argparse.Namespace) -> None:
    from harness.evaluate import evaluate

    _threads(a.threads)
    record = evaluate(a.model, Path(a.dataset), a.split, Path(a.out), family=a.family, extra_metrics=a.metrics,
                      corpus_dir=Path(a.corpus) if a.corpus else None,
                      settings=a.settings, embeddings=Path(a.embeddings) if a.embeddings else None,
                      batch_size=a.batch_size, index=a.index, run_info=a.run_info, bf16=a.bf16,
                      ignore_identical_ids=a.ignore_identical_ids)
    log.info("%s", json.dumps(record["metrics"], sort_keys=True))


def cmd_compare(a: argparse.Namespace) -> None:
    from harness.compare import main_compare

    if not isinstance(a.rows, dict) or not all(isinstance(v, list) for v in a.rows.values()):
        raise ConfigError("expected a JSON object of row label -> list of run folders", key="--rows")
    rows = {label: [Path(d) for d in dirs] for label, dirs in a.rows.items()}
    main_compare(rows, a.baseline, Path(a.out), Path(a.results), **a.options)


def cmd_mteb(a: argparse.Namespace) -> None:
    from harness.mteb_eval import hub_tasks, local_task, run_mteb

    _threads(a.threads)
    tasks = hub_tasks(a.tasks) if a.tasks else []
    for i, spec in enumerate(a.local):
        try:
            tasks.append(local_task(Path(spec["dataset"]), spec["split"],
                                    Path(spec["corpus"]) if spec.get("corpus") else None, spec.get("name"),
                                    bool(spec.get("ignore_identical_ids", False))))
        except (KeyError, TypeError):
            raise ConfigError("expected {dataset, split[, corpus, name, ignore_identical_ids]}",
                              key=f"--local[{i}]") from None
    if not tasks:
        raise ConfigError("name MTEB tasks (--tasks) or prepared splits (--local)", key="--tasks")
    record = run_mteb(a.model, tasks, Path(a.out), a.settings, a.batch_size)
    log.info("%s", json.dumps(record["scores"], sort_keys=True))


def cmd_check_loss(a: argparse.Namespace) -> None:
    from harness.stages.check_loss import run

    run(a)


def cmd_site(a: argparse.Namespace) -> None:
    from harness.leaderboard.build import build_site

    index = build_site(Path(a.results), Path(a.out), references=Path(a.references) if a.references else None)
    print(f"leaderboard: {index.resolve()}", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="convert a dataset source to the on-disk format")
    s.add_argument("--source", required=True, help="generated | beir-dir | beir | irds | dpr-qa")
    s.add_argument("--path", help="input folder or id of the source")
    s.add_argument("--options", type=_json, default={}, help="source options as JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_prepare)

    def model_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--model", required=True, help="minilm, tiny, a folder or a Hugging Face id")
        s.add_argument("--settings", type=_json, default={}, help="encoder settings as JSON (base models only)")
        s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))

    s = sub.add_parser("mine", help="mine hard negatives for a dataset's training groups (BM25, or dense with --model)")
    s.add_argument("--model", help="mine with this bi-encoder's top results instead of BM25 (minilm, a folder, a hub id)")
    s.add_argument("--settings", type=_json, default={}, help="encoder settings as JSON (base models only)")
    s.add_argument("--embeddings", help="the corpus's embedding shards by --model (default: encode here)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--bf16", action="store_true", help="bfloat16 autocast when encoding on a GPU")
    s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))
    s.add_argument("--dataset", required=True)
    s.add_argument("--negatives", type=int, default=30)
    s.add_argument("--seed", type=int, default=13)
    s.add_argument("--out", required=True, help="training groups (JSON Lines) with the mined negatives")
    s.set_defaults(run=cmd_mine)

    s = sub.add_parser("teacher", help="score training lists with a teacher (CADET rescaling)")
    model_args(s)
    s.add_argument("--groups", help="training groups to score (default: the dataset's train.jsonl)")
    s.add_argument("--kind", choices=["bi-encoder", "cross-encoder"], default="bi-encoder")
    s.add_argument("--dataset", required=True)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_teacher)

    s = sub.add_parser("train", help="train a bi-encoder with one loss")
    model_args(s)
    s.add_argument("--dataset", required=True)
    s.add_argument("--loss", required=True)
    s.add_argument("--loss-params", type=_json, default={})
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--options", type=_json, default={}, help="training hyper-parameters as JSON")
    s.add_argument("--teacher", help="teacher scores (JSON Lines) for distillation losses")
    s.add_argument("--groups", help="training groups (default: the dataset's train.jsonl)")
    s.add_argument("--leakage-eval", nargs="*", default=[],
                   help="prepared eval folders: training queries found there are dropped (see allow_leakage)")
    s.add_argument("--resume-dir", help="where resume checkpoints are kept between attempts")
    s.add_argument("--loss-check", help="the loss's contract report (harness check-loss), copied into the checkpoint")
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_train)

    s = sub.add_parser("encode", help="encode one shard of a corpus")
    model_args(s)
    s.add_argument("--dataset", required=True)
    s.add_argument("--shard", type=int, default=0)
    s.add_argument("--num-shards", type=int, default=1)
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--bf16", action="store_true", help="bfloat16 autocast when encoding on a GPU")
    s.add_argument("--dtype", choices=["float16", "float32"], default="float32")
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_encode)

    s = sub.add_parser("evaluate", help="search a dataset split and compute its metrics")
    model_args(s)
    s.add_argument("--dataset", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--corpus", help="folder whose corpus.jsonl is searched (default: the dataset's own)")
    s.add_argument("--family", default="generic")
    s.add_argument("--metrics", nargs="*", default=[])
    s.add_argument("--ignore-identical-ids", action=argparse.BooleanOptionalAction, default=None,
                   help="drop a retrieved passage whose id is the query's (default: yes for the beir family, as BEIR)")
    s.add_argument("--embeddings", help="folder of precomputed corpus shards")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--bf16", action="store_true", help="bfloat16 autocast when encoding on a GPU")
    s.add_argument("--index", default="Flat", help="faiss index factory string")
    s.add_argument("--run-info", type=_json, default={}, help="grid key and config for metrics.json")
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_evaluate)

    s = sub.add_parser("compare", help="aggregate seeds and test every loss against the baseline")
    s.add_argument("--rows", type=_json, required=True, help='JSON {"label": ["run folder per seed", ...]}')
    s.add_argument("--baseline", required=True)
    s.add_argument("--results", default="results")
    s.add_argument("--options", type=_json, default={})
    s.add_argument("--out", required=True)
    s.set_defaults(run=cmd_compare)

    s = sub.add_parser("mteb", help="a second opinion: MTEB's own evaluator on its tasks (network) or a prepared split")
    model_args(s)
    s.add_argument("--tasks", nargs="*", default=[], help="MTEB retrieval task names, e.g. SciFact NFCorpus")
    s.add_argument("--local", type=_json, default=[],
                   help='prepared splits to evaluate offline, as JSON: [{"dataset": DIR, "split": S, '
                        '"corpus": DIR (optional), "name": N (optional)}]')
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--out", required=True, help="JSON file of the scores")
    s.set_defaults(run=cmd_mteb)

    s = sub.add_parser("check-loss", help="run the loss contract's checks on a loss (registered name or module:Class)")
    s.add_argument("loss", help="a registered loss name or module:Class (importing it runs that module's code)")
    s.add_argument("--params", type=_json, default={}, help="the loss's parameters as JSON")
    s.add_argument("--label", help="the loss's label under 'losses' in the config (errors name its key)")
    s.add_argument("--cost-queries", type=int, default=256, help="Q of the cost measurement (0: skip it)")
    s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))
    s.add_argument("--out", help="JSON report")
    s.set_defaults(run=cmd_check_loss)

    s = sub.add_parser("site", help="build the static leaderboard")
    s.add_argument("--results", default="results")
    s.add_argument("--references", help="YAML file of published scores to mark rows OK or FAIL against")
    s.add_argument("--out", default="site")
    s.set_defaults(run=cmd_site)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
