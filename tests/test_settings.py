"""One source of truth per setting: the config schema agrees with the code that reads each key."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from harness.grid import NOT_TRAINING_OPTIONS
from harness.metrics import FAMILIES
from harness.models.biencoder import EncoderSettings
from harness.retrieval import DTYPE, DTYPES
from harness.train import OPTIONS, TrainArgs

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml").read_text())
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema_of(hint: typing.Any) -> dict[str, typing.Any]:
    """What the schema says of a field with the type hint ``hint``: its type, or its enum of literals.
    ``X | None`` is an ``X`` the config may leave out (None: the model's own, e.g. its max length)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    return {"type": JSON_TYPES[hint]}


def _fields(cls: type) -> dict[str, tuple[typing.Any, typing.Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(cls)}


def test_train_set_keys_types_and_defaults_are_train_args_options() -> None:
    schema = SCHEMA["properties"]["train_sets"]["additionalProperties"]["properties"]
    options = {name: spec for name, spec in schema.items() if name not in NOT_TRAINING_OPTIONS}
    fields = _fields(TrainArgs)
    assert sorted(options) == sorted(OPTIONS)
    for name, spec in options.items():
        hint, default = fields[name]
        assert spec["type"] == _schema_of(hint)["type"], name
        assert spec["default"] == default and type(spec["default"]) is type(default), name


def test_model_settings_keys_and_types_are_encoder_settings_fields() -> None:
    schema = SCHEMA["properties"]["models"]["additionalProperties"]["properties"]["settings"]["properties"]
    fields = _fields(EncoderSettings)
    assert sorted(schema) == sorted(fields)
    for name, spec in schema.items():
        expected = _schema_of(fields[name][0])
        assert {k: spec[k] for k in expected} == expected, name


def test_metric_families_are_the_metrics_module_families() -> None:
    datasets = SCHEMA["properties"]["datasets"]["additionalProperties"]["properties"]
    eval_sets = SCHEMA["properties"]["eval_sets"]["additionalProperties"]["properties"]
    assert datasets["family"]["enum"] == list(FAMILIES)
    assert eval_sets["family"]["enum"] == list(FAMILIES)


def test_encode_dtype_default_and_choices_are_retrievals() -> None:
    dtype = SCHEMA["properties"]["encode"]["properties"]["dtype"]
    assert dtype["default"] == DTYPE
    assert dtype["enum"] == list(DTYPES)
