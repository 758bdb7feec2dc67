"""Published references: the file's entries are checked against the grid, and the site marks each
checked cell OK (|Δ| within the tolerance) or FAIL, on the overview, the dataset page and in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_site_fixture
import yaml
from snakemake.utils import validate

from harness.errors import ConfigError
from harness.grid import check, load_yaml
from harness.leaderboard.build import build_site
from harness.references import read_references

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "config.schema.yaml"


def paper_config() -> dict:
    config = load_yaml(REPO / "config" / "paper.yaml")
    validate(config, str(SCHEMA), set_default=True)
    return config


def test_the_paper_grids_references_name_its_rows() -> None:
    config = paper_config()
    check(config)  # raises on an entry naming an unknown model, eval set or metric
    refs = read_references(REPO / config["references"])
    scifact = [r for r in refs.entries if (r.model, r.eval_set, r.metric) == ("minilm", "beir-scifact", "ndcg@10")]
    assert scifact[0].value == 0.64508  # MTEB's leaderboard value first; the disagreeing file after it
    assert all(r.source and r.protocol for r in refs.entries)


@pytest.mark.parametrize("change, message", [
    ({"model": "nope"}, r"references\[0\] \(nope, beir-scifact, ndcg@10\).*unknown model 'nope'"),
    ({"eval_set": "beir-nope"}, "unknown eval_set 'beir-nope'"),
    ({"metric": "hits@20"}, "does not report 'hits@20'"),
    ({"train": "nq"}, "train and loss both 'zero-shot'"),
    ({"loss": "focal", "train": "nq"}, "unknown loss 'focal'"),
    ({"value": 64.508}, "a fraction, not a percentage"),
    ({"source": ""}, "non-empty string"),
    ({"sorce": "typo"}, r"unknown \['sorce'\]"),
])
def test_a_bad_entry_is_refused_naming_it(tmp_path: Path, change: dict, message: str) -> None:
    entry = {"model": "minilm", "eval_set": "beir-scifact", "metric": "ndcg@10", "value": 0.64508,
             "source": "somewhere", "protocol": "MTEB"}
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump({"references": [{**entry, **change}]}))
    config = paper_config()
    config["references"] = str(path)
    with pytest.raises(ConfigError, match=message) as err:
        check(config)
    assert str(path) in str(err.value)


def _fixture_results(root: Path) -> Path:
    return load_site_fixture().write_results(root / "results")


def _zero_shot(results: Path, model: str, eval_set: str, metric: str) -> float:
    for path in (results / "runs").glob("**/metrics.json"):
        record = json.loads(path.read_text())
        run = record["run"]
        if (run["model"], run["loss"], run["eval"]) == (model, "zero-shot", eval_set):
            return record["metrics"][metric]
    raise AssertionError("no zero-shot run in the fixture")


def test_the_site_marks_ok_and_fail_with_delta(tmp_path: Path) -> None:
    results = _fixture_results(tmp_path)
    ours = _zero_shot(results, "e5", "scifact", "ndcg@10")
    arguana = _zero_shot(results, "e5", "arguana", "ndcg@10")
    refs = {"tolerance": 0.01, "references": [
        {"model": "e5", "eval_set": "scifact", "metric": "ndcg@10", "value": round(ours - 0.004, 5),
         "source": "paper A, Table 2", "protocol": "BEIR"},
        {"model": "e5", "eval_set": "scifact", "metric": "ndcg@10", "value": round(ours + 0.03, 5),
         "source": "results file B", "protocol": "another dataset revision"},
        {"model": "e5", "eval_set": "arguana", "metric": "ndcg@10", "value": round(arguana - 0.02, 5),
         "source": "paper C", "protocol": "BEIR"},
        {"model": "e5", "eval_set": "nq", "metric": "ndcg@10", "value": 0.5, "source": "paper D",
         "protocol": "BEIR", "train": "msmarco", "loss": "infonce"},
    ]}
    (tmp_path / "refs.yaml").write_text(yaml.safe_dump(refs))
    index = build_site(results, tmp_path / "site", references=tmp_path / "refs.yaml")

    checks = json.loads((tmp_path / "site" / "leaderboard.json").read_text())["references"]
    assert [c["verdict"] for c in checks] == ["OK", "FAIL", "FAIL", "not run"]
    assert checks[0]["delta"] == pytest.approx(ours - refs["references"][0]["value"], abs=1e-12)
    assert [c["primary"] for c in checks] == [True, False, True, True]

    html = index.read_text(encoding="utf-8")
    shown = f"published {refs['references'][0]['value']:.3f}, Δ {ours - refs['references'][0]['value']:+.3f} <b>OK</b>"
    assert shown in html  # in the zero-shot row's cell, visible without hovering
    assert "Published references: 1 OK, 1 FAIL" in html  # the cells' own references: scifact OK, arguana FAIL
    other = f'<td class="num">{refs["references"][1]["value"]:.4f}</td>'
    assert other in html and "(other source)" in html  # the disagreeing source, listed with its own verdict
    pages = [p.read_text(encoding="utf-8") for p in (tmp_path / "site" / "datasets").glob("*scifact*.html")]
    assert pages and all("Published references" in p and other in p and "<b>FAIL</b>" in p for p in pages)


def test_the_zero_shot_rows_encoding_is_shown(tmp_path: Path) -> None:
    results = _fixture_results(tmp_path)
    index = build_site(results, tmp_path / "site")
    html = index.read_text(encoding="utf-8")
    assert html.count("Zero-shot row encoded with mean pooling, cosine,\nmax 256 / 256 tokens") == 2  # one per board
    runs = [p.read_text(encoding="utf-8") for p in (tmp_path / "site").glob("runs/**/*.html")]
    protocol = [r for r in runs if "Encoding protocol" in r]
    assert protocol and len(protocol) == len(runs)
    assert any("<td>yes (BEIR)</td>" in r for r in protocol) and any("<td>no</td>" in r for r in protocol)
    assert all('<th scope="row">passage max length</th><td class="num">256</td>' in r for r in protocol)


def test_the_losses_page_shows_the_code_and_contract_report_the_runs_used(tmp_path: Path) -> None:
    results = _fixture_results(tmp_path)
    report = {"loss": "mypkg.losses:Focal", "params": {}, "passed": True, "checks": [
        {"name": "gradcheck", "passed": True, "value": 3.5e-10, "detail": "float64 gradcheck", "measured": {}},
        {"name": "cost", "passed": None, "value": 1.7, "detail": "time vs infonce", "measured": {}}]}
    cards = sorted(results.glob("checkpoints/*/*/*/seed*/lossboard.json"))
    name = json.loads(cards[0].read_text())["loss"]["name"]
    for card_file in cards:  # every checkpoint of one loss, as one custom loss's runs would be
        metadata = json.loads(card_file.read_text())
        if metadata["loss"]["name"] == name:
            metadata["loss"]["source"] = {"class": "mypkg.losses:Focal", "file": "focal.py", "sha256": "ab" * 32}
            card_file.write_text(json.dumps(metadata))
            (card_file.parent / "loss_check.json").write_text(json.dumps(report))
    build_site(results, tmp_path / "site")
    page = (tmp_path / "site" / "losses.html").read_text(encoding="utf-8")
    assert "<code>mypkg.losses:Focal</code>" in page and ("ab" * 8) in page
    assert "<td>PASS</td><td class=\"num\">3.5e-10</td>" in page and "<td>reported</td>" in page
