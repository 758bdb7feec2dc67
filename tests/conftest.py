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
if os.environ.get("PYTEST_XDIST_WORKER"):  # the suite runs on 2 xdist workers (pyproject addopts): a core each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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
def config() -> dict:
    """The quickstart config (``config/config.yaml``) with the schema's defaults filled in."""
    from snakemake.utils import validate

    from harness.grid import load_yaml

    cfg = load_yaml(REPO / "config" / "config.yaml")
    validate(cfg, str(REPO / "config" / "config.schema.yaml"), set_default=True)
    return cfg


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


def make_tiny_causal_lm(root: Path, eos_bias: float = 0.0, newline_bias: float = 0.0, ascii_bias: float = 0.0) -> Path:
    """A random 2-layer GPT-2 (seeded) with a byte-level BPE tokenizer trained here on a few lines, saved
    to ``root``: a generator for the synthesize stage's plumbing. Byte-level, so a sample can stop inside
    a UTF-8 character; ``eos_bias`` / ``newline_bias`` / ``ascii_bias`` raise the logits of end-of-text,
    newline and the tokens of printable ASCII text, so some completions end, some are cut, some are text."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([f"what about the {t} {f}?\nnotes on the {f} of the {t}" for t in TOPICS for f in FACETS],
                            vocab_size=320, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                        tie_word_embeddings=False, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    with torch.no_grad():  # the final layer norm's output has mean exactly 1 once its bias is 1, so adding
        model.transformer.ln_f.bias.fill_(1.0)  # b / n_embd to a row of the head adds b to that token's logit
        model.lm_head.weight[tokenizer.eos_token_id] += eos_bias / config.n_embd
        model.lm_head.weight[tokenizer.convert_tokens_to_ids("Ċ")] += newline_bias / config.n_embd
        for token in range(len(tokenizer)):
            text = tokenizer.decode([token])
            if text.isascii() and text.isprintable() and token != tokenizer.eos_token_id:
                model.lm_head.weight[token] += ascii_bias / config.n_embd
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root

