"""precision: fp32 | bf16 — refused where the device has no native bf16, recorded where it runs.

This CPU may or may not have bf16: the capability check (``harness.precision.cpu_has_bf16``) is
monkeypatched both ways. With it forced on, PyTorch runs bf16 autocast in emulation, which gives the
same rounding as native bf16 (bf16 inputs, float32 accumulation), only slower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from snakemake.utils import validate

from harness import cli, precision
from harness.errors import ConfigError
from harness.grid import check, load_yaml
from harness.models.registry import load_model
from harness.stages.evaluate import evaluate
from harness.train import TrainArgs, train

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"max_query_length": 16, "max_passage_length": 24}
TEXTS = ["notes on the repair of the castle", "what about comet maps", "a boundary layer over a flat plate",
         "the heat transfer of a slender body in supersonic flow"]


@pytest.fixture
def without_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _config(**top: object) -> dict:
    cfg = load_yaml(REPO / "config" / "config.yaml")
    cfg.update(top)
    return cfg


def _validated(cfg: dict) -> dict:
    validate(cfg, str(REPO / "config" / "config.schema.yaml"), set_default=True)
    return cfg


def test_the_capability_check_agrees_with_the_cpu_flags() -> None:
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("no /proc/cpuinfo, or torch was told to ignore the CPU's vector extensions")
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    assert precision.cpu_has_bf16() == bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "bf16"})


def test_bf16_is_refused_on_a_cpu_without_it(without_bf16: None) -> None:
    model = load_model("tiny", SETTINGS)
    with pytest.raises(ConfigError, match="key 'precision'.*no native bfloat16") as err:
        model.encode(TEXTS, "passage", precision="bf16")
    assert err.value.key == "precision"
    assert model.encode(TEXTS, "passage", precision="fp32").shape == (4, model.dim)
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        model.encode(TEXTS, "passage", precision="fp16")


def test_the_config_check_names_the_key_before_any_job(without_bf16: None) -> None:
    check(_validated(_config()))  # fp32, the default
    with pytest.raises(ConfigError) as err:
        check(_validated(_config(precision="bf16")))
    assert err.value.key == "precision"
    cfg = _config()
    cfg["models"]["minilm"]["precision"] = "bf16"
    with pytest.raises(ConfigError) as err:
        check(_validated(cfg))
    assert err.value.key == "models.minilm.precision"
    # jobs given a GPU check their own device when they run
    gpu = {s: {"gpu": 1} for s in ("train", "encode", "evaluate", "teacher", "mine")}
    check(_validated(_config(precision="bf16", resources=gpu)))
    # a per-model fp32 overrides a global bf16
    cfg = _config(precision="bf16")
    cfg["models"]["minilm"]["precision"] = "fp32"
    check(_validated(cfg))
    # a generative model runs in fp32 whatever the global precision, and refuses bf16 of its own
    cfg = _config()
    cfg["models"]["minilm-gen"]["precision"] = "bf16"
    with pytest.raises(ConfigError) as err:
        check(_validated(cfg))
    assert err.value.key == "models.minilm-gen.precision" and "fp32" in str(err.value)


def test_the_encode_command_fails_cleanly(without_bf16: None, tiny_dataset: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["encode", "--model", "tiny", "--dataset", str(tiny_dataset), "--precision", "bf16",
                     "--out", str(tmp_path / "emb")])
    assert code == 2
    assert "harness encode: error: key 'precision': bf16 asked for" in capsys.readouterr().err
    assert not (tmp_path / "emb").exists()


def test_bf16_embeddings_are_close_to_fp32_but_not_equal(with_bf16: None) -> None:
    model = load_model("tiny", SETTINGS)
    fp32 = model.encode(TEXTS, "passage")
    bf16 = model.encode(TEXTS, "passage", precision="bf16")
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert not np.array_equal(fp32, bf16)  # autocast did act
    assert cosine.min() > 0.999


@pytest.mark.slow
def test_the_precision_is_recorded_in_training_and_evaluation(with_bf16: None, tiny_dataset: Path,
                                                              tmp_path: Path) -> None:
    args = TrainArgs(model="tiny", dataset=tiny_dataset, loss="infonce", out=tmp_path / "ckpt",
                     model_settings=SETTINGS, seed=3, batch_size=8, hard_negatives=1, max_steps=2,
                     learning_rate=1e-3, precision="bf16")
    out = train(args)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["precision"] == "bf16"
    assert json.loads((out / "lossboard.json").read_text())["train_args"]["precision"] == "bf16"
    record = evaluate(str(out), tiny_dataset, "test", tmp_path / "run", precision="bf16")
    assert record["train"]["precision"] == "bf16"
    assert record["provenance"]["precision"] == "bf16"
    fp32 = evaluate(str(out), tiny_dataset, "test", tmp_path / "run32")
    assert fp32["provenance"]["precision"] == "fp32"


def test_training_in_bf16_is_refused_without_it(without_bf16: None, tiny_dataset: Path, tmp_path: Path) -> None:
    args = TrainArgs(model="tiny", dataset=tiny_dataset, loss="infonce", out=tmp_path / "ckpt",
                     model_settings=SETTINGS, batch_size=8, max_steps=1, precision="bf16")
    with pytest.raises(ConfigError, match="key 'precision'"):
        train(args)
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.slow
def test_the_run_page_shows_the_precision(tmp_path: Path) -> None:
    from conftest import load_site_fixture
    from harness.leaderboard.build import build_site

    results = load_site_fixture().write_results(tmp_path / "results")
    metrics = results / "runs/minilm/synth/listwise_kd/seed1/synth/metrics.json"
    record = json.loads(metrics.read_text())
    record["train"]["precision"] = "bf16"
    record["provenance"]["precision"] = "bf16"
    metrics.write_text(json.dumps(record))
    build_site(results, tmp_path / "site")
    pages = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "site" / "runs").glob("*.html")}
    page = next(text for name, text in pages.items() if "listwise_kd-seed1-synth" in name)
    assert '<th scope="row">precision</th><td>training bf16, encoding bf16</td>' in page
    older = next(text for name, text in pages.items() if "infonce-seed1-synth" in name)
    assert '<th scope="row">precision</th><td>training –, encoding –</td>' in older  # records from before it
