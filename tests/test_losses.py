"""The loss registry's contract: configuration errors, self-description, invariances, the exact
chunked Mann-Whitney sum, and reproducible random draws. (Values and gradients against plain loops
are in test_losses_reference.py.)"""

from __future__ import annotations

import collections
import doctest
import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import harness.losses.mann_whitney as mann_whitney
from harness.errors import ConfigError, TrainingError
from harness.losses import REGISTRY, Loss, get_loss
from harness.losses.mann_whitney import pair_softplus_sum

NAMES = ["infonce", "mw", "jointlh", "summarglh", "lsepair", "rand1lh", "listwise_kd", "ltr_margin"]


def batch(q: int = 4, d: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores, labels with one or two positives per row, teacher scores in [0, 1] on every entry."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(q, d, generator=gen, dtype=torch.float64).requires_grad_()
    labels = torch.zeros(q, d, dtype=torch.float64)
    labels[torch.arange(q), torch.arange(q)] = 1.0
    labels[0, q] = 2.0
    teacher = torch.rand(q, d, generator=gen, dtype=torch.float64)
    return scores, labels, teacher


# --- registry and configuration --------------------------------------------------------------------

def test_registry_holds_the_issue_losses():
    assert list(REGISTRY) == NAMES
    assert all(issubclass(cls, Loss) and cls.name == name for name, cls in REGISTRY.items())
    assert [name for name, cls in REGISTRY.items() if cls.needs_teacher] == ["listwise_kd"]


def test_unknown_loss_names_every_valid_one():
    with pytest.raises(ConfigError) as error:
        get_loss("triplet")
    assert error.value.key == "losses.triplet"
    assert all(name in str(error.value) for name in NAMES)


def test_unknown_parameter_names_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        get_loss("mw", temprature=0.1)
    assert error.value.key == "losses.mw.temprature"
    assert "temperature" in str(error.value) and "pairs" in str(error.value)


@pytest.mark.parametrize("name,params", [("infonce", {"temperature": "0.1"}), ("infonce", {"temperature": 0.0}),
                                         ("infonce", {"temperature": float("nan")}), ("mw", {"pairs": 1}),
                                         ("rand1lh", {"seed": 1.5}), ("rand1lh", {"seed": True}),
                                         ("ltr_margin", {"top_weight": -0.5}), ("jointlh", {"temperature": -1})])
def test_bad_parameter_values_are_rejected(name, params):
    with pytest.raises(ConfigError) as error:
        get_loss(name, **params)
    assert error.value.key == f"losses.{name}.{next(iter(params))}"


def test_parameters_override_defaults_and_ints_become_floats():
    loss = get_loss("listwise_kd", filter_ratio=1, contrastive_weight=0.5)
    config = loss.get_config_dict()
    assert config == {**REGISTRY["listwise_kd"].defaults(), "filter_ratio": 1.0, "contrastive_weight": 0.5}
    assert isinstance(config["filter_ratio"], float)


def test_issue_defaults():
    assert {name: cls.defaults() for name, cls in REGISTRY.items()} == {
        "infonce": {"temperature": 0.05},
        "mw": {"temperature": 0.01, "pairs": False},
        "jointlh": {"temperature": 1.0},
        "summarglh": {"temperature": 1.0},
        "lsepair": {"temperature": 1.0},
        "rand1lh": {"temperature": 1.0, "seed": 0},
        "listwise_kd": {"student_temperature": 0.05, "teacher_temperature": 0.3, "contrastive_weight": 0.1,
                        "contrastive_temperature": 0.01, "filter_ratio": 0.6},
        "ltr_margin": {"margin": 0.1, "random_margin_offset": 0.0, "top_weight": 0.5, "random_weight": 0.5,
                       "seed": 0},
    }


# --- self-description ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_loss_describes_itself(name):
    cls = REGISTRY[name]
    assert cls.citation.startswith("@") and "title=" in cls.citation and "year=" in cls.citation
    assert re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{5}", cls.paper)
    assert cls.paper.rsplit("/", 1)[1] in cls.__doc__
    config = get_loss(name).get_config_dict()
    assert json.loads(json.dumps(config)) == config == cls.defaults()


@pytest.mark.parametrize("name", NAMES)
def test_docstring_sections_in_order_and_defaults_documented(name):
    doc = REGISTRY[name].__doc__
    positions = [doc.find(section) for section in ("Args:", "References:", "Inputs:", "Example:")]
    assert -1 not in positions and positions == sorted(positions)
    entries = re.split(r"\n\s+(?=\w+: )", doc[positions[0]:positions[1]])[1:]  # one per documented parameter
    documented = {entry.split(":", 1)[0]: " ".join(entry.split()) for entry in entries}
    assert list(documented) == list(REGISTRY[name].params)
    for key, default in REGISTRY[name].defaults().items():
        assert re.search(rf"\(default {re.escape(str(default))}[,;)]", documented[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_docstring_example_runs(name):
    tests = doctest.DocTestFinder(recurse=False).find(REGISTRY[name])
    runner = doctest.DocTestRunner()
    for test in tests:
        runner.run(test)
    assert sum(len(test.examples) for test in tests) >= 4
    assert runner.summarize(verbose=False).failed == 0


# --- batch checks ----------------------------------------------------------------------------------

def test_bad_batches_are_rejected():
    scores, labels, teacher = batch()
    with pytest.raises(TrainingError, match="labels"):
        get_loss("infonce")(scores, labels[:, :-1])
    with pytest.raises(TrainingError, match="teacher"):
        get_loss("listwise_kd")(scores, labels)
    with pytest.raises(TrainingError, match=r"\[0, 1\]"):
        get_loss("listwise_kd")(scores, labels, teacher * 3 - 1)


def test_half_precision_scores_are_computed_in_float32():
    scores, labels, _ = batch()
    value = get_loss("mw", temperature=0.05)(scores.detach().to(torch.bfloat16), labels)
    assert value.dtype == torch.float32
    exact = get_loss("mw", temperature=0.05)(scores.detach().to(torch.bfloat16).double(), labels)
    torch.testing.assert_close(value.double(), exact, rtol=1e-5, atol=1e-6)


# --- invariances the papers rest on ----------------------------------------------------------------

def shift_one_row(scores: torch.Tensor, row: int, constant: float) -> torch.Tensor:
    shifted = scores.detach().clone()
    shifted[row] += constant
    return shifted


@pytest.mark.parametrize("name,params", [("infonce", {}), ("jointlh", {}), ("summarglh", {}), ("lsepair", {}),
                                         ("mw", {"pairs": True})])
def test_row_losses_ignore_a_constant_added_to_one_row(name, params):
    scores, labels, _ = batch()
    loss = get_loss(name, **params)
    torch.testing.assert_close(loss(shift_one_row(scores, 1, 0.7), labels), loss(scores, labels))


def test_mw_is_changed_by_a_constant_added_to_one_row():
    scores, labels, _ = batch()
    loss = get_loss("mw")
    assert loss(shift_one_row(scores, 1, 0.7), labels).item() > 1.05 * loss(scores, labels).item()
    assert loss(shift_one_row(scores, 1, -0.7), labels).item() < 0.95 * loss(scores, labels).item()


def test_rand1lh_equals_infonce_with_one_positive():
    scores, labels, _ = batch(q=6, d=20, seed=3)
    labels[0, 6] = 0.0  # one positive per row
    for temperature in (0.05, 1.0):
        infonce = get_loss("infonce", temperature=temperature)(scores, labels)
        rand1lh = get_loss("rand1lh", temperature=temperature, seed=7)
        for _ in range(3):
            torch.testing.assert_close(rand1lh(scores, labels), infonce)


# --- the exact, chunked Mann-Whitney sum -----------------------------------------------------------

@pytest.mark.parametrize("chunk_elements", [1, 7, 29, 60, 10_000])
def test_pair_softplus_sum_equals_the_naive_pair_matrix(chunk_elements):
    gen = torch.Generator().manual_seed(0)
    u = (torch.randn(13, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    v = (torch.randn(29, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    naive = F.softplus(v[None, :] - u[:, None]).sum()  # [13, 29] materialised
    chunked = pair_softplus_sum(u, v, chunk_elements)
    torch.testing.assert_close(chunked, naive, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.autograd.grad(chunked, (u, v)), torch.autograd.grad(naive, (u, v)),
                               rtol=1e-12, atol=1e-15)


def test_pair_softplus_sum_of_no_pairs_is_a_differentiable_zero():
    u = torch.randn(3, requires_grad=True)
    value = pair_softplus_sum(u, torch.empty(0), 8)
    value.backward()
    assert value.item() == 0.0 and torch.equal(u.grad, torch.zeros(3))


def test_pair_softplus_sum_without_grad_still_sums():
    u, v = torch.randn(5, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(pair_softplus_sum(u, v, 4), F.softplus(v[None, :] - u[:, None]).sum())


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.largest = max([self.largest] + [t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)])
        return out


def test_mw_never_materialises_the_pair_matrix(monkeypatch):
    q, d = 64, 512
    monkeypatch.setattr(mann_whitney, "CPU_CHUNK_ELEMENTS", 1 << 12)
    scores = torch.randn(q, d, requires_grad=True)
    labels = torch.zeros(q, d)
    labels[torch.arange(q), torch.arange(q) * 8] = 1.0
    labels[torch.arange(q), torch.arange(q) * 8 + 1] = 2.0
    with LargestTensor() as probe:
        get_loss("mw")(scores, labels).backward()
    assert probe.largest == q * d  # the score matrix itself; the pairs number 128 × 32640
    assert scores.grad.abs().sum() > 0


# --- reproducible random draws ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rand1lh", "ltr_margin"])
def test_seeded_draws_are_reproducible_and_resumable(name):
    scores, labels, _ = batch(q=8, d=24)
    labels[:, 10:14] = 1.0  # several positives per row, so draws matter
    first, second, other = get_loss(name, seed=3), get_loss(name, seed=3), get_loss(name, seed=4)
    run = [first(scores, labels).item() for _ in range(5)]
    assert run == [second(scores, labels).item() for _ in range(5)]
    assert run != [other(scores, labels).item() for _ in range(5)]
    assert len(set(run)) > 1  # the generator advances
    state = first.state_dict()
    expected = [first(scores, labels).item() for _ in range(3)]
    resumed = get_loss(name, seed=0)
    resumed.load_state_dict(state)
    assert [resumed(scores, labels).item() for _ in range(3)] == expected


def test_rand1lh_draws_positives_uniformly():
    """One row, three positives whose losses differ: each is drawn about a third of the time."""
    scores = torch.tensor([[0.0, 1.0, 2.0, 0.5, -1.0]], dtype=torch.float64)
    labels = torch.tensor([[1.0, 3.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    loss = get_loss("rand1lh", seed=11)
    counts = collections.Counter(round(loss(scores, labels).item(), 9) for _ in range(900))
    assert len(counts) == 3 and all(240 < count < 360 for count in counts.values())


def test_ltr_margin_draws_pairs_uniformly():
    """One row, 2 positives × 3 negatives with distinct differences: each pair ~ 1/6 of the draws."""
    scores = torch.tensor([[0.0, 10.0, 100.0, 1000.0, 10000.0]], dtype=torch.float64)
    labels = torch.tensor([[1.0, 2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    loss = get_loss("ltr_margin", top_weight=0.0, random_weight=1.0, seed=11)
    counts = collections.Counter(loss(scores, labels).item() for _ in range(1200))
    assert len(counts) == 6 and all(140 < count < 260 for count in counts.values())
