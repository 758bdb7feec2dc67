"""``harness <stage>``: the command every Snakemake rule calls, usable from any script.

This module parses the arguments and hands them to the stage's driver, ``harness.stages.<stage>.run``.
Each stage takes explicit input paths, writes explicit outputs (atomically) and logs to stderr;
nothing is shared between stages but files. A command that makes a step of a run also leaves
``<out>.step.json``, the commands behind its output (:mod:`harness.provenance`). A
:class:`~harness.errors.HarnessError` ends the command with its message and exit status 2, without a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from typing import Any

from harness import provenance
from harness.errors import HarnessError
from harness.io import write_json


# commands that read finished runs rather than make a step of one: they leave no step file (provenance.step_file)
READERS = ("compare", "mteb", "site")

PRECISION_HELP = "fp32, or bf16: bfloat16 autocast where the device has it natively, refused elsewhere (harness.precision)"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="convert a dataset source to the on-disk format")
    s.add_argument("--source", required=True, help="generated | beir-dir | beir | irds | dpr-qa")
    s.add_argument("--path", help="input folder or id of the source")
    s.add_argument("--options", type=_json, default={}, help="source options as JSON")
    s.add_argument("--out", required=True)

    def model_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--model", required=True, help="minilm, tiny, a folder or a Hugging Face id")
        s.add_argument("--settings", type=_json, default={}, help="encoder settings as JSON (base models only)")
        s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))

    s = sub.add_parser("mine", help="mine hard negatives for a dataset's training groups (BM25, or dense with --model)")
    s.add_argument("--model", help="mine with this bi-encoder's top results instead of BM25 (minilm, a folder, a hub id)")
    s.add_argument("--settings", type=_json, default={}, help="encoder settings as JSON (base models only)")
    s.add_argument("--embeddings", help="the corpus's embedding shards by --model (default: encode here)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--precision", default="fp32", help=PRECISION_HELP)
    s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))
    s.add_argument("--dataset", required=True)
    s.add_argument("--negatives", type=int, default=30)
    s.add_argument("--seed", type=int, default=13)
    s.add_argument("--out", required=True, help="training groups (JSON Lines) with the mined negatives")

    s = sub.add_parser("teacher", help="score training lists with a teacher (CADET rescaling)")
    model_args(s)
    s.add_argument("--groups", help="training groups to score (default: the dataset's train.jsonl)")
    s.add_argument("--kind", choices=["bi-encoder", "cross-encoder"], default="bi-encoder")
    s.add_argument("--dataset", required=True)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--out", required=True)

    s = sub.add_parser("synthesize", help="synthetic training queries over a corpus, filtered as CADET does")
    s.add_argument("--corpus", required=True, help="prepared dataset whose passages the queries are written for")
    s.add_argument("--generator", type=_json, required=True,
                   help="JSON: model, backend, types, passages, per_type, seed, few_shot, chunk, prompts, sampling")
    s.add_argument("--key", default="generator", help="the generator's config key (errors name it)")
    s.add_argument("--few-shot", help="prepared dataset whose training queries are the few-shot examples (default: --corpus)")
    s.add_argument("--retriever", required=True, help="the filter's bi-encoder (minilm, a folder, a hub id)")
    s.add_argument("--retriever-settings", type=_json, default={})
    s.add_argument("--retriever-precision", default="fp32", help=PRECISION_HELP)
    s.add_argument("--embeddings", help="the corpus's embedding shards by --retriever (default: encode here)")
    s.add_argument("--depth", type=int, default=20, help="passages retrieved per query and reranked by the teacher")
    s.add_argument("--teacher-kind", choices=["bi-encoder", "cross-encoder"], default="bi-encoder")
    s.add_argument("--teacher-model", required=True)
    s.add_argument("--teacher-settings", type=_json, default={})
    s.add_argument("--record", type=_json, default={}, help="config names stored in meta.json's source")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))
    s.add_argument("--work", required=True, help="where generated chunks are kept between attempts")
    s.add_argument("--out", required=True)

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
    s.add_argument("--precision", default="fp32", help=PRECISION_HELP)
    s.add_argument("--out", required=True)

    s = sub.add_parser("encode", help="encode one shard of a corpus")
    model_args(s)
    s.add_argument("--dataset", required=True)
    s.add_argument("--shard", type=int, default=0)
    s.add_argument("--num-shards", type=int, default=1)
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--precision", default="fp32", help=PRECISION_HELP)
    s.add_argument("--dtype", help="storage type: float16 or float32 (default: harness.retrieval.DTYPE)")
    s.add_argument("--out", required=True)

    s = sub.add_parser("evaluate", help="search a dataset split and compute its metrics")
    model_args(s)
    s.add_argument("--dataset", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--corpus", help="folder whose corpus.jsonl is searched (default: the dataset's own)")
    s.add_argument("--family", default="generic")
    s.add_argument("--metrics", nargs="*", default=[])
    s.add_argument("--ignore-identical-ids", action=argparse.BooleanOptionalAction, default=None,
                   help="drop a retrieved passage whose id is the query's (default: yes for the beir family, as BEIR)")
    s.add_argument("--embeddings", help="folder of precomputed corpus shards (default: encode the corpus here)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--dtype", help="without --embeddings: the corpus embeddings' type, as a shard job stores them")
    s.add_argument("--precision", default="fp32", help=PRECISION_HELP)
    s.add_argument("--index", default="Flat", help="faiss index factory string")
    s.add_argument("--run-info", type=_json, default={}, help="grid key and config for metrics.json")
    s.add_argument("--out", required=True)

    def generative_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--model", required=True, help="tiny-seq2seq, minilm, a folder or a Hugging Face id")
        s.add_argument("--views", nargs="+", required=True, help="identifier views: title substring pseudo_query")
        s.add_argument("--dataset", required=True)
        s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))

    s = sub.add_parser("gen-index", help="build the identifier index of a corpus for a generative model")
    generative_args(s)
    s.add_argument("--out", required=True)

    s = sub.add_parser("gen-train", help="train a generative retriever: phase 1 (gen) or 2 (ltrgr)")
    generative_args(s)
    s.add_argument("--index", required=True, help="the corpus's identifier index (harness gen-index)")
    s.add_argument("--generative", type=_json, required=True, help="the model's generative settings as JSON")
    s.add_argument("--phase", choices=["gen", "ltrgr"], default="gen")
    s.add_argument("--ranking", help="phase 2: the phase-1 ranking of the training queries (gen-rank --keys-out)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--options", type=_json, default={}, help="training hyper-parameters as JSON")
    s.add_argument("--resume-dir", help="where resume checkpoints are kept between attempts")
    s.add_argument("--out", required=True)

    s = sub.add_parser("gen-rank", help="rank a split with a generative retriever and compute its metrics")
    generative_args(s)
    s.add_argument("--index", required=True)
    s.add_argument("--generative", type=_json, required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--corpus", help="folder whose corpus.jsonl the index was built from (answer matching)")
    s.add_argument("--family", default="generic")
    s.add_argument("--metrics", nargs="*", default=[])
    s.add_argument("--run-info", type=_json, default={})
    s.add_argument("--keys-out", help="rank the training queries and write their matched identifiers here instead")
    s.add_argument("--out", help="run folder (metrics.json, per_query.jsonl, run.trec)")

    s = sub.add_parser("compare", help="aggregate seeds and test every loss against the baseline")
    s.add_argument("--rows", type=_json, help='JSON {"label": ["run folder per seed", ...]}')
    s.add_argument("--baseline")
    s.add_argument("--results", default="results")
    s.add_argument("--options", type=_json, default={})
    s.add_argument("--out")
    s.add_argument("--summary", nargs="+", help="every table's compare JSON: write the claims' verdicts and ranks")
    s.add_argument("--claims-out", help="with --summary: claims.json")
    s.add_argument("--ranks-out", help="with --summary: ranks.json")

    s = sub.add_parser("mteb", help="a second opinion: MTEB's own evaluator on its tasks (network) or a prepared split")
    model_args(s)
    s.add_argument("--tasks", nargs="*", default=[], help="MTEB retrieval task names, e.g. SciFact NFCorpus")
    s.add_argument("--local", type=_json, default=[],
                   help='prepared splits to evaluate offline, as JSON: [{"dataset": DIR, "split": S, '
                        '"corpus": DIR (optional), "name": N (optional)}]')
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--out", required=True, help="JSON file of the scores")

    s = sub.add_parser("check-loss", help="run the loss contract's checks on a loss (registered name or module:Class)")
    s.add_argument("loss", help="a registered loss name or module:Class (importing it runs that module's code)")
    s.add_argument("--params", type=_json, default={}, help="the loss's parameters as JSON")
    s.add_argument("--label", help="the loss's label under 'losses' in the config (errors name its key)")
    s.add_argument("--cost-queries", type=int, default=256, help="Q of the cost measurement (0: skip it)")
    s.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", 0)))
    s.add_argument("--out", help="JSON report")

    s = sub.add_parser("site", help="build the static leaderboard")
    s.add_argument("--results", default="results")
    s.add_argument("--references", help="YAML file of published scores to mark rows OK or FAIL against")
    s.add_argument("--out", default="site")
    s.add_argument("--show-host", action="store_true", help="show the machines' host names (left out by default)")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        stage = importlib.import_module(f"harness.stages.{args.command.replace('-', '_')}")
        stage.run(args)
        if args.command not in READERS and getattr(args, "out", None):
            made = stage.output(args) if hasattr(stage, "output") else args.out  # encode: a shard of --out
            write_json(provenance.step_file(made),
                       provenance.steps(args.command, ["harness", *argv], vars(args).values()))
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
