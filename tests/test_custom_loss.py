"""Bring your own loss: ``module:Class`` names in the config, the contract suite on every built-in
loss and on the example, and the errors a researcher's class can meet before any job runs."""

from __future__ import annotations

import copy
import doctest
import hashlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from snakemake.utils import validate

from harness import cli
from harness.errors import ConfigError
from harness.grid import Grid, check, load_yaml
from harness.losses import REGISTRY, get_loss, resolve_loss
from harness.losses.contract import check_loss, contract_batch
from harness.models.biencoder import EncoderSettings
from harness.models.registry import build_tiny

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "custom_loss"
SCHEMA = str(REPO / "config" / "config.schema.yaml")

USER_LOSSES = '''
import torch
from harness.losses import Loss, Param, SeededLoss
from harness.losses.base import row_mean, target_index

CITE = "@misc{x, title={X}, year={2024}}"


class Mean(Loss):
    """Mean score of each row's target positive, negated (a valid loss)."""
    name, paper, citation = "mean", "https://example.org", CITE
    params = {"gamma": Param(2.0, "an exponent", "positive")}

    def compute(self, scores, labels, teacher):
        target = scores.gather(1, target_index(labels)[:, None]).squeeze(1)
        return row_mean(-target * self.gamma, (labels > 0).any(dim=1))


class NotALoss(torch.nn.Module):
    def forward(self, scores, labels, teacher=None):
        return scores.sum()


class NoCitation(Mean):
    citation = None


class TwoArguments(Mean):
    def compute(self, scores, labels):
        return scores.sum()


class NoCompute(Loss):
    name, paper, citation = "nocompute", "https://example.org", CITE


class PerRow(Mean):
    def compute(self, scores, labels, teacher):
        return -scores[:, 0]


class NaNOnIgnoredRows(Mean):
    def compute(self, scores, labels, teacher):
        return (scores * (labels > 0)).sum() / (labels > 0).any(dim=1).float().prod()


class UsesIgnored(Mean):
    def compute(self, scores, labels, teacher):
        return super().compute(scores, labels, teacher) + 0.1 * scores.logsumexp(dim=1).mean()


class ColumnWeighted(Mean):
    def compute(self, scores, labels, teacher):
        weights = torch.arange(scores.shape[1], dtype=scores.dtype) * (labels >= 0)
        return (scores * weights).sum()


class WrongGradient(Mean):
    def compute(self, scores, labels, teacher):
        return (scores * scores.detach() * (labels > 0)).sum()


class GlobalRandom(SeededLoss):
    """Draws from torch's global generator instead of its own."""
    name, paper, citation = "globalrandom", "https://example.org", CITE
    params = {"seed": Param(0, "seed")}

    def compute(self, scores, labels, teacher):
        return (scores * (labels > 0)).sum() * torch.rand(()).to(scores.dtype)
'''


@pytest.fixture(scope="module")
def user_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A researcher's module on sys.path, with good and broken losses."""
    root = tmp_path_factory.mktemp("user")
    (root / "lossboard_user_losses.py").write_text(USER_LOSSES)
    (root / "lossboard_user_broken.py").write_text("import lossboard_no_such_dependency\n")
    sys.path.insert(0, str(root))
    yield "lossboard_user_losses"
    sys.path.remove(str(root))


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_tiny(EncoderSettings.from_dict({"max_query_length": 16, "max_passage_length": 24}))


# --- naming a class in the config -----------------------------------------------------------------

def test_a_dotted_path_resolves_and_validates_its_parameters(user_module: str) -> None:
    loss = get_loss(f"{user_module}:Mean", gamma=3)
    assert loss.get_config_dict() == {"gamma": 3.0}
    with pytest.raises(ConfigError) as error:
        get_loss(f"{user_module}:Mean", gama=3)
    assert error.value.key == "losses.mean.gama"
    with pytest.raises(ConfigError, match="gamma"):
        get_loss(f"{user_module}:Mean", gamma="3")


@pytest.mark.parametrize("name, message", [
    ("lossboard_no_such_module:Focal", "module 'lossboard_no_such_module' not found"),
    ("lossboard_user_broken:Focal", "importing 'lossboard_user_broken' failed: No module named "
                                    "'lossboard_no_such_dependency'"),
    ("lossboard_user_losses:Focal", "has no class 'Focal'"),
    ("lossboard_user_losses:NotALoss", "not a subclass of harness.losses.Loss"),
    ("lossboard_user_losses:CITE", "not a subclass of harness.losses.Loss"),
    ("lossboard_user_losses:NoCitation", r"\['citation'\]"),
    ("lossboard_user_losses:NoCompute", "does not implement compute"),
    ("lossboard_user_losses:TwoArguments", r"compute must accept \(scores, labels, teacher\)"),
    ("infonce2", "valid losses: infonce, mw"),
])
def test_bad_classes_stop_the_config_check_naming_the_key(config: dict, user_module: str, name: str,
                                                          message: str) -> None:
    config["losses"]["focal"] = {"loss": name, "gamma": 2.0}
    with pytest.raises(ConfigError, match=message) as error:
        check(config)
    assert error.value.key == "losses.focal.loss"


def test_the_grid_carries_a_custom_row(config: dict, user_module: str) -> None:
    config["losses"]["focal"] = {"loss": f"{user_module}:Mean", "gamma": 2.0}
    validate(config, SCHEMA, set_default=True)
    check(config)
    grid = Grid(config)
    assert grid.losses["focal.gamma=2.0"].name == f"{user_module}:Mean"
    assert grid.loss_check("focal.gamma=2.0") == ["results/loss-checks/focal.gamma=2.0.json"]
    assert grid.loss_check("infonce") == [] and not grid.needs_teacher("focal.gamma=2.0")
    config["losses"]["focal"]["gamma"] = -1.0
    with pytest.raises(ConfigError, match="must be > 0") as error:
        check(config)
    assert error.value.key == "losses.focal.gamma"
    config["losses"]["focal"] = {"loss": f"{user_module}:Mean", "gama": 2.0}
    with pytest.raises(ConfigError, match="valid parameters: gamma") as error:
        check(config)
    assert error.value.key == "losses.focal.gama"


def test_the_schema_accepts_module_class_and_refuses_other_text(config: dict) -> None:
    from snakemake.exceptions import WorkflowError

    config["losses"]["focal"] = {"loss": "mypkg.losses:FocalInfoNCE"}
    validate(config, SCHEMA, set_default=True)
    config["losses"]["focal"] = {"loss": "mypkg.losses:Focal; rm -rf /"}
    with pytest.raises(WorkflowError, match="loss"):
        validate(config, SCHEMA, set_default=True)


# --- the contract suite ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_builtin_loss_passes_the_contract(name: str, tiny: torch.nn.Module) -> None:
    report = check_loss(REGISTRY[name], {}, model=tiny, cost_queries=0)
    assert report.passed, "\n".join(report.lines())
    judged = {c.name for c in report.checks if c.passed}
    assert judged == {"finite", "gradcheck", "permutation", "ignored_zero_grad", "grad_cache"} | (
        {"seeded"} if "seed" in REGISTRY[name].params else set())


@pytest.mark.parametrize("cls, failing", [
    ("PerRow", "finite"), ("NaNOnIgnoredRows", "finite"), ("UsesIgnored", "ignored_zero_grad"),
    ("ColumnWeighted", "permutation"), ("WrongGradient", "gradcheck"), ("GlobalRandom", "seeded"),
])
def test_a_broken_loss_fails_the_check_it_breaks(user_module: str, tiny: torch.nn.Module, cls: str,
                                                 failing: str) -> None:
    report = check_loss(resolve_loss(f"{user_module}:{cls}"), {}, model=tiny, cost_queries=0)
    assert failing in {c.name for c in report.failed()}, "\n".join(report.lines())
    assert not report.passed


def test_the_ignored_rows_batch_is_what_it_says() -> None:
    scores, labels, teacher = contract_batch(4, 12, seed=3, positives=2, ignored_rows=(1, 3), ignored_share=0.3)
    assert (labels[[1, 3]] == -1).all() and ((labels[[0, 2]] > 0).sum(dim=1) == 2).all()
    assert sorted(labels[0][labels[0] > 0].tolist()) == [1.0, 2.0]
    assert torch.equal(teacher.isnan(), labels < 0) and scores.dtype == torch.float64


def test_cost_is_reported_not_judged(user_module: str, tiny: torch.nn.Module) -> None:
    report = check_loss(resolve_loss(f"{user_module}:Mean"), {}, model=tiny, cost_queries=16)
    cost = report.checks[-1]
    assert cost.name == "cost" and cost.passed is None and cost.value > 0 and "of infonce" in cost.detail


# --- the command ----------------------------------------------------------------------------------

def test_check_loss_command_writes_the_report(user_module: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert cli.main(["check-loss", f"{user_module}:Mean", "--params", '{"gamma": 1.5}', "--cost-queries", "0",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PASS  gradcheck" in printed and "every check passed" in printed
    report = json.loads(out.read_text())
    assert report["passed"] and report["params"] == {"gamma": 1.5}
    source = Path(sys.modules[user_module].__file__)
    assert report["source"] == {"class": f"{user_module}:Mean", "file": str(source.resolve()),
                                "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


def test_check_loss_command_fails_naming_the_check(user_module: str, tmp_path: Path, capsys) -> None:
    assert cli.main(["check-loss", f"{user_module}:UsesIgnored", "--label", "focal", "--cost-queries", "0",
                     "--out", str(tmp_path / "r.json")]) == 2
    captured = capsys.readouterr()
    assert "FAIL  ignored_zero_grad" in captured.out
    assert "key 'losses.focal'" in captured.err and "ignored_zero_grad" in captured.err


# --- the example ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dcl() -> Iterator[type]:
    sys.path.insert(0, str(EXAMPLE))
    yield resolve_loss("debiased_contrastive:DebiasedContrastive")
    sys.path.remove(str(EXAMPLE))


def naive_dcl(scores: torch.Tensor, labels: torch.Tensor, t: float, tau_plus: float) -> float:
    """Chuang et al. eq. 6 with M = 1, row by row in float64 without any shift."""
    total, rows = 0.0, 0
    for s, y in zip(scores.tolist(), labels.tolist()):
        if max(y) <= 0:
            continue
        p = y.index(max(y))
        negatives = [math.exp(v / t) for v, label in zip(s, y) if label == 0]
        pos = math.exp(s[p] / t)
        g = max((sum(negatives) / len(negatives) - tau_plus * pos) / (1 - tau_plus), math.exp(-1 / t))
        total += -math.log(pos / (pos + len(negatives) * g))
        rows += 1
    return total / rows


@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.3])
def test_example_matches_the_papers_formula(dcl: type, tau_plus: float) -> None:
    scores, labels, _ = contract_batch(6, 10, seed=11, positives=2, ignored_rows=(4,), ignored_share=0.2)
    scores = scores.detach().tanh()  # cosine-like, so e^{s/t} stays representable in the naive sum
    value = dcl(temperature=0.1, tau_plus=tau_plus)(scores, labels).item()
    assert value == pytest.approx(naive_dcl(scores, labels, 0.1, tau_plus), rel=1e-10)
    if tau_plus == 0.0:
        assert value == pytest.approx(get_loss("infonce", temperature=0.1)(scores, labels).item(), rel=1e-10)


def test_example_refuses_a_prior_of_one_and_runs_its_docstring(dcl: type) -> None:
    with pytest.raises(ConfigError) as error:
        dcl(tau_plus=1.0)
    assert error.value.key == "losses.debiased_contrastive.tau_plus"
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder(recurse=False).find(dcl):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 4 and runner.summarize(verbose=False).failed == 0


def test_example_passes_the_contract(dcl: type, tiny: torch.nn.Module) -> None:
    report = check_loss(dcl, {"tau_plus": 0.1}, model=tiny, cost_queries=0)
    assert report.passed, "\n".join(report.lines())


def test_example_config_adds_the_row(config: dict, dcl: type) -> None:
    extra = load_yaml(EXAMPLE / "config.yaml")
    merged = copy.deepcopy(config)
    merged["losses"].update(extra["losses"])
    validate(merged, SCHEMA, set_default=True)
    check(merged)
    assert Grid(merged).loss_check("dcl.tau_plus=0.1") == ["results/loss-checks/dcl.tau_plus=0.1.json"]


# --- training records the code it ran -------------------------------------------------------------

def test_training_records_the_loss_source_and_keeps_its_report(user_module: str, tiny_dataset: Path,
                                                               tmp_path: Path) -> None:
    from harness.train import TrainArgs, train

    report = tmp_path / "focal.json"
    report.write_text('{"passed": true}\n')
    out = train(TrainArgs(model="tiny", dataset=tiny_dataset, loss=f"{user_module}:Mean", out=tmp_path / "ckpt",
                          loss_params={"gamma": 1.5}, model_settings={"max_query_length": 16, "max_passage_length": 24},
                          batch_size=8, max_steps=1, loss_check=report))
    source = Path(sys.modules[user_module].__file__).resolve()
    expected = {"class": f"{user_module}:Mean", "file": str(source),
                "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["loss"] == {"name": f"{user_module}:Mean", "params": {"gamma": 1.5}, "source": expected}
    assert json.loads((out / "lossboard.json").read_text())["loss"]["source"] == expected
    assert (out / "loss_check.json").read_bytes() == report.read_bytes()
