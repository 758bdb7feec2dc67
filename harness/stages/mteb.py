"""The mteb stage, a second opinion: a model evaluated by MTEB's own evaluator (Muennighoff et al., EACL 2023).

The harness's numbers come from its own metrics (held to trec_eval); this runs the same model
through ``mteb.evaluate``, on two kinds of task:

- **MTEB retrieval tasks by name** (``SciFact``, ``NFCorpus``, …), whose data MTEB downloads from
  the Hugging Face Hub, so that a reader can check a run against MTEB's leaderboard (which
  publishes nDCG@10 = 64.51 for all-MiniLM-L6-v2 on SciFact);
- **a prepared lossboard dataset split** (:func:`local_task`), evaluated offline, so that the
  harness's own nDCG@10 on it can be checked against MTEB's on the very same queries, passages
  and judgements.

The model goes through the harness's loader with its encoder settings and is saved as a
sentence-transformers folder (pooling, normalisation, max length), whose query and passage
prefixes become the prompts ``query`` and ``document`` that MTEB passes for retrieval; so MTEB
encodes what the harness encodes, ``title + " " + text`` for a passage included, with one
difference: sentence-transformers has a single ``max_seq_length`` (the passages'), so a query
longer than ``max_query_length`` tokens is cut later under MTEB than in the harness.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from harness.data.format import read_corpus, read_qrels, read_queries
from harness.errors import ConfigError, DataError
from harness.io import write_json
from harness.models.registry import load_model
from harness.stages import set_threads

log = logging.getLogger("harness")


def hub_tasks(names: list[str]) -> list[Any]:
    """MTEB's retrieval tasks by name; raises :class:`ConfigError` for an unknown or non-retrieval task."""
    import mteb

    try:
        tasks = list(mteb.get_tasks(tasks=names))
    except KeyError as exc:
        raise ConfigError(f"unknown MTEB task: {exc.args[0]}", key="mteb.tasks") from None
    not_retrieval = [t.metadata.name for t in tasks if t.metadata.type != "Retrieval"]
    if not_retrieval:
        raise ConfigError(f"not retrieval tasks: {not_retrieval}", key="mteb.tasks")
    return tasks


def local_task(dataset: Path, split: str, corpus_dir: Path | None = None, name: str | None = None,
               ignore_identical_ids: bool = False) -> Any:
    """An MTEB retrieval task over one split of a prepared dataset folder (searching ``corpus_dir``'s
    corpus when given), dropping a passage whose id is the query's when ``ignore_identical_ids``
    (as MTEB's ArguAna and Quora tasks do). Only splits with passage judgements qualify: MTEB has
    no answer match."""
    from mteb.abstasks import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    dataset = Path(dataset)
    queries = read_queries(dataset / "queries.jsonl")
    qrels_path = dataset / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_path, queries).qrels
    if not qrels:
        raise DataError(f"split {split!r} has no passage judgements for MTEB to evaluate", qrels_path)
    corpus_file = Path(corpus_dir or dataset) / "corpus.jsonl"
    task_name = name or f"lossboard/{dataset.name}/{split}"

    class LocalRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name=task_name, description=f"the {split!r} split of the lossboard dataset {dataset.name!r}",
            reference=None, dataset={"path": str(dataset), "revision": "local"}, type="Retrieval",
            category="t2t", modalities=["text"], eval_splits=[split], eval_langs=["eng-Latn"],
            main_score="ndcg_at_10", date=None, domains=None, task_subtypes=None, license=None,
            annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="")

        def load_data(self, **_: Any) -> None:
            corpus = read_corpus(corpus_file)
            self.corpus = {split: {d: {"title": p.get("title", ""), "text": p["text"]} for d, p in corpus.items()}}
            self.queries = {split: {q: queries[q]["text"] for q in qrels}}
            self.relevant_docs = {split: qrels}
            self.data_loaded = True

    task = LocalRetrieval()
    task.ignore_identical_ids = ignore_identical_ids
    return task


def run_mteb(model: str, tasks: list[Any], out: Path, settings: dict[str, Any] | None = None,
             batch_size: int = 128) -> dict[str, Any]:
    """Evaluate ``model`` (``minilm``, ``tiny``, a folder or a hub id, with encoder ``settings``)
    on MTEB ``tasks``; write ``out``: each task's main score and its nDCG@10."""
    import mteb
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory(prefix="lossboard-mteb-") as folder:
        load_model(model, settings).save(folder)
        encoder = SentenceTransformer(folder)
        result = mteb.evaluate(encoder, tasks, encode_kwargs={"batch_size": batch_size}, cache=None,
                               show_progress_bar=False)
    main = {t.metadata.name: t.metadata.main_score for t in tasks}
    scores = {}
    for r in result.task_results:
        split_scores = next(iter(r.scores.values()))[0]
        scores[r.task_name] = {"metric": main[r.task_name], "value": r.get_score(),
                               "ndcg@10": split_scores["ndcg_at_10"]}
    record = {"model": model, "mteb": mteb.__version__, "scores": scores}
    write_json(out, record)
    return record


def run(a: argparse.Namespace) -> None:
    set_threads(a.threads)
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
