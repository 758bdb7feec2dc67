"""The six CADET query types and their prompt templates (Tamber et al., arXiv 2505.19274).

Each type has a template file in ``harness/synthesis/prompts/<type>.txt``, written from the paper's
description of the type; a config may name its own file per type (``generator.prompts.<type>``).
A template is Python ``str.format`` text: ``{passage}`` (the passage, ``title + " " + text``) in every
template, ``{examples}`` (real queries, one per line after ``- ``) in ``user_few_shot``'s; literal
braces are doubled. Lines starting with ``#`` at the top of a file are comments (the citation) and
are not sent to the model; the file's sha256 (comments included) is recorded with the dataset.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

QUERY_TYPES = ("question", "claim", "title", "keywords", "user_zero_shot", "user_few_shot")
FEW_SHOT = "user_few_shot"
PROMPTS_DIR = Path(__file__).parent / "prompts"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def placeholders(qtype: str) -> set[str]:
    """The placeholders a template of ``qtype`` must hold, and may only hold."""
    return {"passage", "examples"} if qtype == FEW_SHOT else {"passage"}


@dataclass(frozen=True)
class Template:
    """One query type's prompt template, read from its file."""

    qtype: str
    path: Path
    text: str
    sha256: str

    def render(self, passage: str, examples: list[str] | None = None) -> str:
        values = {"passage": passage}
        if self.qtype == FEW_SHOT:
            values["examples"] = "\n".join(f"- {e}" for e in examples or [])
        return self.text.format(**values)


def template_path(qtype: str, override: str | None = None) -> Path:
    return Path(override) if override else PROMPTS_DIR / f"{qtype}.txt"


def load_template(qtype: str, override: str | None = None, key: str = "generator") -> Template:
    """Read and check the template of ``qtype``; :class:`ConfigError` names ``key`` (the config key of
    the generator) and the file: an unknown type, an unreadable file, a missing or unknown placeholder."""
    if qtype not in QUERY_TYPES:
        raise ConfigError(f"unknown query type {qtype!r}; known: {', '.join(QUERY_TYPES)}", key=f"{key}.types")
    path = template_path(qtype, override)
    where = f"{key}.prompts.{qtype}"
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the prompt template {path} ({exc})", key=where) from None
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    body = "".join(lines).strip("\n") + "\n"
    try:
        found = {name for _, name, _, _ in string.Formatter().parse(body) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"prompt template {path} is not valid format text ({exc}; double literal braces)",
                          key=where) from None
    need = placeholders(qtype)
    if need - found:
        raise ConfigError(f"prompt template {path} has no placeholder "
                          + ", ".join("{" + n + "}" for n in sorted(need - found)), key=where)
    if found - need:
        raise ConfigError(f"prompt template {path} has unknown placeholder(s) "
                          + ", ".join("{" + n + "}" for n in sorted(found - need))
                          + f"; a {qtype} template takes " + ", ".join("{" + n + "}" for n in sorted(need)),
                          key=where)
    return Template(qtype, path, body, hashlib.sha256(raw).hexdigest())


def load_templates(types: list[str], overrides: dict[str, str] | None = None,
                   key: str = "generator") -> dict[str, Template]:
    """The checked templates of ``types`` (see :func:`load_template`); a repeated type is an error."""
    overrides = overrides or {}
    for qtype in overrides:
        if qtype not in types:
            raise ConfigError(f"a prompt for type {qtype!r}, which is not under types", key=f"{key}.prompts.{qtype}")
    if len(set(types)) != len(types):
        raise ConfigError("a query type is listed twice", key=f"{key}.types")
    return {t: load_template(t, overrides.get(t), key) for t in types}


def check_generator_model(model: str, key: str) -> None:
    """A generator that can be checked before any job: a local folder must hold a transformers
    config that loads; anything else must look like a Hugging Face id (``org/name``), which is only
    resolved by the job (the Hub may be unreachable when the grid is checked)."""
    path = Path(model)
    if path.exists():
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the generator {model!r}: {exc}", key=f"{key}.model") from None
    elif not HUB_ID.match(model):
        raise ConfigError(f"generator {model!r} is neither a folder nor a Hugging Face id (org/name)",
                          key=f"{key}.model")
