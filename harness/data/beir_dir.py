"""BEIR-format sources: a local BEIR folder (``beir-dir``) or a BEIR dataset by name (``beir``).

A BEIR folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (Thakur et al.,
"BEIR", NeurIPS 2021 Datasets and Benchmarks). It is read strictly, normalised (string ids, a
title for every document, only ``_id``/``text``/``answers`` kept for queries) and written in the
on-disk format; qrels lines that name documents outside the corpus are kept and counted as
warnings, as trec_eval would. A ``train`` split (or a ready ``train.jsonl``) becomes training groups.

Options of ``beir`` (besides ``negatives`` and ``seed``, as for ``beir-dir``):

* ``name``: the dataset's zip name in BEIR's README (``scifact``, ``cqadupstack``, ...).
* ``cache``: the folder the zip is downloaded and unzipped into, once, and reused.
* ``subset``: the sub-folder to convert, for a zip that holds several BEIR folders. CQADupStack's
  unzips to ``cqadupstack/<forum>/`` for its 12 StackExchange forums (``android``, ``english``,
  ..., ``wordpress``); BEIR evaluates each forum within its own corpus and reports their mean
  as the one CQADupStack score, so each forum is a dataset of its own (``subset: gis``).
* ``url``: where to download ``<name>.zip`` from, e.g. a mirror (default: BEIR's documented
  address, :data:`BEIR_URL`). Its last path segment names the zip and the folder in ``cache``.

Prepare jobs of one zip may run at once (CQADupStack's 12 forums do): an exclusive lock on
``<cache>/<name>.lock`` serialises the download and unzip, which ``beir.util.download_and_unzip``
does in place and skips when the zip or the folder exists, so no job reads a half-written zip or
a half-unzipped folder.
"""

from __future__ import annotations

import fcntl
import shutil
import zipfile
from pathlib import Path
from typing import Any

from harness.data.format import (
    read_corpus,
    read_qrels,
    read_queries,
    read_train_groups,
    write_corpus,
    write_qrels,
    write_queries,
    write_train_groups,
)
from harness.data.mining import train_groups
from harness.errors import ConfigError, DataError

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"


def beir_url(name: str) -> str:
    """The download address of a public BEIR dataset, as BEIR's README gives it."""
    return BEIR_URL.format(name=name)


def convert(out: Path, path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Convert the BEIR folder ``path`` into ``out``.

    A ``train.jsonl`` is kept with its given negatives; else a ``train`` split's judged positives
    become training groups without negatives (the ``mine`` stage mines them).
    """
    raw = Path(path)
    if not raw.is_dir():
        raise DataError("not a folder", raw)
    corpus = read_corpus(raw / "corpus.jsonl")
    queries = read_queries(raw / "queries.jsonl")
    qrels_files = sorted((raw / "qrels").glob("*.tsv"))
    if not qrels_files:
        raise DataError("no qrels/<split>.tsv files", raw / "qrels")
    warnings: dict[str, int] = {}
    qrels = {}
    for qrels_file in qrels_files:
        report = read_qrels(qrels_file, queries, corpus)
        qrels[qrels_file.stem] = report.qrels
        if report.unknown_docs:
            warnings[f"qrels/{qrels_file.stem}: documents not in the corpus"] = report.unknown_docs
        if report.repeated:
            warnings[f"qrels/{qrels_file.stem}: judgements repeated (kept once)"] = report.repeated

    write_corpus(out / "corpus.jsonl", ((d, doc["title"], doc["text"]) for d, doc in corpus.items()))
    write_queries(out / "queries.jsonl", ((q, query["text"], query.get("answers")) for q, query in queries.items()))
    for split, split_qrels in qrels.items():
        write_qrels(out / "qrels" / f"{split}.tsv", split_qrels)
    if (raw / "train.jsonl").exists():
        groups = read_train_groups(raw / "train.jsonl")
        for group in groups:
            if group.query_id not in queries:
                raise DataError(f"training query {group.query_id!r} has no text", raw / "train.jsonl", field="query_id")
            for name in ("positives", "negatives"):
                missing = [d for d in getattr(group, name) if d not in corpus]
                if missing:
                    raise DataError(f"query {group.query_id!r}: document {missing[0]!r} is not in the corpus",
                                    raw / "train.jsonl", field=name)
        write_train_groups(out / "train.jsonl", groups)
    elif "train" in qrels:
        groups = train_groups(qrels["train"])
        if groups:
            write_train_groups(out / "train.jsonl", groups)
    return {"name": "beir-dir", "path": raw.name}, warnings


def _subfolders(folder: Path) -> list[str]:
    """The names of ``folder``'s sub-folders that are BEIR folders (hold a ``corpus.jsonl``)."""
    return sorted(d.name for d in folder.iterdir() if (d / "corpus.jsonl").is_file())


def download(out: Path, name: str, cache: str | Path, subset: str | None = None,
             url: str | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """Download the BEIR dataset ``name`` from ``url`` (default: :func:`beir_url`) into ``cache``
    with ``beir.util.download_and_unzip`` (skipped when already there) under an exclusive lock,
    then convert it, or its sub-folder ``subset``, as :func:`convert` does.

    beir unzips whenever the folder is missing and trusts any folder it finds, so a job killed
    while unzipping would leave a half folder for good: a marker file written after a complete
    unzip tells the two apart, and a folder without it is removed and unzipped again.
    """
    from beir import util

    url = url or beir_url(name)
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        unzipped = cache / url.rsplit("/", 1)[-1].removesuffix(".zip")
        marker = cache / f"{unzipped.name}.unzipped"
        if unzipped.is_dir() and not marker.exists():
            shutil.rmtree(unzipped)
        try:
            folder = Path(util.download_and_unzip(url, str(cache)))
        except zipfile.BadZipFile:
            zip_path = cache / url.rsplit("/", 1)[-1]
            zip_path.unlink(missing_ok=True)
            raise DataError(f"not a zip file (downloaded from {url}); removed, so the next run downloads it again",
                            zip_path) from None
        if not folder.is_dir():
            raise DataError(f"the zip from {url} did not unzip to this folder", folder)
        marker.touch()
    subsets = _subfolders(folder)
    if subset is not None:
        if subset not in subsets:
            raise ConfigError(f"{name!r} has no subset {subset!r}; available: {', '.join(subsets) or 'none'}",
                              "subset")
        folder = folder / subset
    elif subsets and not (folder / "corpus.jsonl").exists():
        raise ConfigError(f"{name!r} holds several BEIR folders; choose one of: {', '.join(subsets)}", "subset")
    record, warnings = convert(out, folder)
    return {**record, "name": "beir", "dataset": name, "subset": subset, "url": url}, warnings
