"""CADET's synthetic train set end to end: Snakemake runs prepare -> synthesize (a tiny random causal LM)
-> train -> evaluate -> compare -> site on a 6-passage generated collection, and the site's dataset page
shows the per-type counts; bad synthetic train sets stop at the config check, before any job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import make_tiny_causal_lm
from harness.errors import ConfigError
from harness.grid import check

REPO = Path(__file__).resolve().parents[1]
TINY_GRID = yaml.safe_load((REPO / ".test" / "config.yaml").read_text(encoding="utf-8"))


def synthetic_grid(generator_model: str) -> dict[str, Any]:
    """The workflow test's tiny grid with one synthetic train set (and no human one): 6 passages, 6 query
    types x 2 completions each, filtered by the tiny model's top 2 and trained 2 steps with InfoNCE."""
    grid = {k: v for k, v in TINY_GRID.items() if k not in ("mteb", "train_sets", "losses")}
    grid["datasets"] = {"gen": {"source": "generated", "family": "generic",
                                "options": {"seed": 5, "docs": 6, "docs_per_entity": 1, "train_queries": 4,
                                            "dev_queries": 2, "test_queries": 6, "hard_negatives": 1}}}
    grid["train_sets"] = {"syn": {
        "source": "synthetic-queries", "corpus": "gen", "batch_size": 2, "hard_negatives": 1, "max_steps": 2,
        "learning_rate": 1.0e-3,
        "generator": {"model": generator_model, "passages": 6, "per_type": 2, "seed": 3, "chunk": 3,
                      "sampling": {"max_new_tokens": 8}},
        "filter": {"retriever": "tiny", "depth": 2}}}
    grid["losses"] = {"infonce": {}}
    grid["encode"] = {"shards": 1}
    grid["resources"] = {"synthesize": {"threads": 1}}
    return grid


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # mostly short ASCII lines, so that a few queries find their passage first even with random models
    return make_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "gpt2", eos_bias=2.0, newline_bias=6.0, ascii_bias=2.5)


@pytest.mark.slow
def test_synthetic_train_set_runs_to_a_site_with_its_counts(tmp_path: Path, lm: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(synthetic_grid(str(lm))))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = tmp_path / "results"
    meta = json.loads((results / "data/syn/meta.json").read_text())
    types = meta["synthesis"]["types"]
    assert all(c["generated"] == 6 * 2 for c in types.values()) and len(types) == 6
    kept = sum(c["kept"] for c in types.values())
    assert kept == meta["counts"]["queries"] == meta["counts"]["train_groups"] >= 2

    run = json.loads((results / "runs/tiny/syn/infonce/seed1/gen/metrics.json").read_text())
    assert run["train"]["steps"] == 2
    provenance = run["provenance"]
    assert provenance["train_data"]["prompts"] == meta["source"]["prompts"]
    assert provenance["train_data"]["sampling"] == {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 8}
    assert provenance["train_data"]["filter"]["depth"] == 2
    assert provenance["config"]["train"]["generator"]["model"] == str(lm)

    pages = [p.read_text() for p in (tmp_path / "site/datasets").glob("*.html")]
    page = next(p for p in pages if "Training queries: synthetic" in p)
    table = page[page.index('<table class="synthesis-counts">'):]
    table = table[:table.index("</table>")]
    for qtype, c in types.items():
        row = table[table.index(f'<th scope="row">{qtype.replace("_", " ")}</th>'):]
        row = row[:row.index("</tr>")]
        cells = [cell.split("</td>")[0] for cell in row.split('<td class="num">')[1:]]
        assert cells == [str(c["generated"]), str(c["kept"]), *(str(c["dropped"][r]) for r in meta["synthesis"]["reasons"])]


def validated(grid: dict[str, Any]) -> dict[str, Any]:
    from snakemake.utils import validate

    validate(grid, str(REPO / "config" / "config.schema.yaml"), set_default=True)
    return grid


@pytest.mark.parametrize("change, key, message", [
    (lambda g, tmp: g["train_sets"]["syn"]["generator"].update(types=["question", "riddle"]),
     "train_sets.syn.generator.types", "unknown query type 'riddle'"),
    (lambda g, tmp: g["train_sets"]["syn"]["generator"].update(prompts={"question": str(tmp / "bad.txt")}),
     "train_sets.syn.generator.prompts.question", "has no placeholder {passage}"),
    (lambda g, tmp: g["train_sets"]["syn"]["generator"].update(model=str(tmp)),
     "train_sets.syn.generator.model", "cannot load the generator"),
    (lambda g, tmp: g["train_sets"]["syn"]["generator"].update(model="no such model"),
     "train_sets.syn.generator.model", "neither a folder nor a Hugging Face id"),
    (lambda g, tmp: g["train_sets"]["syn"]["filter"].update(retriever="bm25"),
     "train_sets.syn.filter.retriever", "is not under 'models'"),
    (lambda g, tmp: g["train_sets"]["syn"].update(corpus="wiki"), "train_sets.syn.corpus", "'wiki'"),
    (lambda g, tmp: g["train_sets"].update(gen=g["train_sets"].pop("syn")), "train_sets.gen", "dataset of its own"),
    (lambda g, tmp: g["train_sets"]["syn"].update(losses=["mw"]), "train_sets.syn.losses[0]", "not a key of .losses."),
], ids=["unknown type", "template without placeholder", "generator does not load", "not a model id",
        "retriever not a model", "unknown corpus", "name of a dataset", "unknown loss"])
def test_bad_synthetic_train_set_stops_at_the_config_check(tmp_path: Path, lm: Path, change, key: str,
                                                           message: str) -> None:
    (tmp_path / "bad.txt").write_text("Write a question.\n")
    grid = synthetic_grid(str(lm))
    change(grid, tmp_path)
    with pytest.raises(ConfigError, match=message) as err:
        check(validated(grid))
    assert err.value.key == key
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_synthetic_grid_passes_the_check(lm: Path) -> None:
    check(validated(synthetic_grid(str(lm))))
