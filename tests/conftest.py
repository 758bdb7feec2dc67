"""Shared fixtures: offline environment, a tiny dataset in the on-disk format, and the tiny grid run
once through Snakemake for every end-to-end test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from harness.data.format import (  # noqa: E402
    TrainGroup, write_corpus, write_meta, write_qrels, write_queries, write_train_groups)

REPO = Path(__file__).resolve().parents[1]
SITE_FIXTURE = Path(__file__).parent / "fixtures" / "results" / "generate.py"
SHARED_DATA = REPO.parent / "shared" / "data"
TINY_GRID = REPO / ".test" / "config.yaml"  # the workflow catalog's .test/ config
CUSTOM_LOSS = REPO / "examples" / "custom_loss"

TOPICS = ["river", "castle", "engine", "violin", "glacier", "orchard", "comet", "harbor"]
FACETS = ["history", "repair", "weather", "music", "trade", "maps"]


def make_tiny_dataset(root: Path) -> Path:
    """48 passages on 8 topics x 6 facets; queries name a topic and a facet.

    Passage (t, f) is the positive of query (t, f) with grade 2; passage (t, f+1) shares the
    topic and is a hard negative; queries of even topics also accept (t, f+2) with grade 1, so
    some groups have several positives.
    """
    docs, queries, qrels, groups = [], [], {"train": {}, "test": {}}, []
    for t, topic in enumerate(TOPICS):
        for f, facet in enumerate(FACETS):
            docs.append((f"d{t}-{f}", topic.title(), f"notes on the {facet} of the {topic}, item {t * 6 + f}"))
    for t, topic in enumerate(TOPICS):
        for f, facet in enumerate(FACETS):
            qid = f"q{t}-{f}"
            queries.append((qid, f"what about {topic} {facet}", None))
            split = "test" if f >= 4 else "train"
            judged = {f"d{t}-{f}": 2}
            if t % 2 == 0:
                judged[f"d{t}-{(f + 2) % 6}"] = 1
            qrels[split][qid] = judged
            if split == "train":
                groups.append(TrainGroup(qid, list(judged), [f"d{t}-{(f + 1) % 6}", f"d{(t + 1) % 8}-{f}"],
                                         {d: g for d, g in judged.items()}))
    root.mkdir(parents=True, exist_ok=True)
    write_corpus(root / "corpus.jsonl", docs)
    write_queries(root / "queries.jsonl", queries)
    for split, judged in qrels.items():
        write_qrels(root / "qrels" / f"{split}.tsv", judged)
    write_train_groups(root / "train.jsonl", groups)
    write_meta(root, {"name": "tiny-fixture"})
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (it is not part of a user's clone)")
    return SHARED_DATA


def load_site_fixture() -> ModuleType:
    """``tests/fixtures/results/generate.py``, which writes a results tree for the site's tests."""
    spec = importlib.util.spec_from_file_location("site_fixture_results", SITE_FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Workflow:
    """Snakemake on one folder, as users run it: the repository's Snakefile, ``configfiles`` in order
    (later ones extend earlier ones key by key), ``pythonpath`` ahead of the repository."""

    workdir: Path
    configfiles: tuple[Path, ...]
    pythonpath: tuple[Path, ...] = ()

    def snakemake(self, *args: str, configfiles: tuple[Path, ...] | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, [*self.pythonpath, REPO])))
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(self.workdir), *args, "--configfile", *map(str, configfiles or self.configfiles)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workflow, subprocess.CompletedProcess]:
    """The tiny grid of ``.test/config.yaml`` with the custom-loss example added as its README says
    (its config after the grid's, its folder on PYTHONPATH), run once with 2 cores: the workflow and
    custom-loss tests read the same results."""
    workdir = tmp_path_factory.mktemp("grid")
    shutil.copy(TINY_GRID, workdir / "config.yaml")
    flow = Workflow(workdir, (workdir / "config.yaml", CUSTOM_LOSS / "config.yaml"), (CUSTOM_LOSS,))
    return flow, flow.snakemake("--cores", "2")
