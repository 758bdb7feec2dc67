"""No config string reaches a shell unquoted.

Generated from the schema: every string field (and every key that names something) gets a payload
that runs ``touch pwned`` if a shell ever reads it as code. A field the schema or :func:`check`
refuses is safe; the accepted ones are all set at once, every rule's command is rendered by a dry
run and then run through bash with ``harness`` replaced by a stub that records its arguments.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from harness.errors import ConfigError
from harness.grid import check, load_yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "config" / "config.schema.yaml"
PAYLOAD = "x$(touch pwned)`touch pwned`;touch pwned;'"
MARKER = "pwned"
ANY = "*"  # a path step into every value of a map (or every item of a list)


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    for part in node.get("allOf", []):
        node = {**_resolve(part, schema), **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def string_fields(schema: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every path of the schema whose value is a string, or a list of strings, or a map key."""
    found: list[tuple[str, ...]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        node = _resolve(node, schema)
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "string" in types:
            found.append(path)
        if "array" in types and "string" in [_resolve(node.get("items", {}), schema).get("type")]:
            found.append((*path, ANY))
        for key, child in node.get("properties", {}).items():
            walk(child, (*path, key))
        if isinstance(node.get("additionalProperties"), dict):
            found.append((*path, "<key>"))
            walk(node["additionalProperties"], (*path, ANY))

    walk(schema, ())
    return found


def base_config() -> dict[str, Any]:
    """The quickstart grid trimmed to two losses, with every optional rule and field switched on
    (a cross-encoder teacher: its model string goes to the command as it is)."""
    config = load_yaml(REPO / "config" / "config.yaml")
    config["losses"] = {"infonce": {}, "listwise_kd": {}}
    config["train_sets"]["synthetic"]["miner"] = "minilm"
    config["mteb"] = {"tasks": ["SciFact"], "eval_sets": ["synthetic"]}
    config["datasets"]["synthetic"]["group"] = "g"
    config["eval_sets"]["synthetic"].update(group="g", subgroup="s", dataset="synthetic", corpus="synthetic")
    config["models"]["minilm"]["settings"] = {"query_prefix": "q: ", "passage_prefix": "p: "}
    config["teacher"] = {"kind": "cross-encoder", "model": "cross-encoder/ms-marco-MiniLM-L6-v2"}
    return config


def with_payload(config: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``config`` with the payload at ``path`` (in every map entry / list item it names)."""
    config = copy.deepcopy(config)

    def put(node: Any, rest: tuple[str, ...]) -> None:
        key, rest = rest[0], rest[1:]
        if key == "<key>":
            if node:  # an optional map the base config leaves empty has no key to rename
                node[PAYLOAD] = node.pop(next(iter(node)))
        elif rest == (ANY,) and not isinstance(node.get(key), dict):  # a list of strings
            node[key] = [PAYLOAD]
        elif key == ANY:
            for value in node.values():
                put(value, rest)
        elif not rest:
            node[key] = PAYLOAD
        else:
            put(node.setdefault(key, {}), rest)

    put(config, path)
    return config


def accepted(config: dict[str, Any]) -> bool:
    """Whether the schema and :func:`check` accept ``config`` (a refusal must be a clear error)."""
    try:
        validate(config, str(SCHEMA_PATH), set_default=True)
        check(config)
    except (WorkflowError, ConfigError):
        return False
    return True


@pytest.mark.slow
def test_no_config_string_runs_in_a_shell(tmp_path: Path) -> None:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    fields = string_fields(schema)
    assert ("eval_sets", ANY, "split") in fields and ("encode", "index") in fields and ("results",) in fields
    base = base_config()
    assert accepted(copy.deepcopy(base))
    taken = [path for path in fields if accepted(with_payload(base, path))]
    assert ("models", ANY, "path") in taken and ("encode", "index") in taken
    config = base
    for path in taken:
        config = with_payload(config, path)
    assert accepted(copy.deepcopy(config))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "-s", str(REPO / "Snakefile"),
                          "--configfile", "config.yaml", "-d", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    lines = (dry.stdout + dry.stderr).splitlines()
    commands = [line.removeprefix("Shell command: ") for line in lines if line.startswith("Shell command: harness ")]
    for log in (line.strip().removeprefix("log: ") for line in lines if line.strip().startswith("log: ")):
        (tmp_path / log).parent.mkdir(parents=True, exist_ok=True)
    assert {c.split()[1] for c in commands} == {"prepare", "mine", "encode", "teacher", "train", "evaluate",
                                                "mteb", "gen-index", "gen-train", "gen-rank", "compare", "site"}
    stub = tmp_path / "bin" / "harness"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >> "$ARGV_LOG"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "ARGV_LOG": str(tmp_path / "argv.log")}
    for command in commands:
        run = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert run.returncode == 0 and not run.stderr, (command, run.stderr)
    assert not (tmp_path / MARKER).exists()
    assert not list(tmp_path.rglob(MARKER))
    assert PAYLOAD in (tmp_path / "argv.log").read_text()
