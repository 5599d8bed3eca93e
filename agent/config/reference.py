"""Generate the configuration reference (docs/configuration.md) from the models.

The reference is generated so that it never drifts from what the agent accepts; a test
fails when the committed file differs from what this module produces.
"""

from __future__ import annotations

import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from agent.config.models import AgentConfig

HEADER = """# Configuration reference

One YAML file per instrument. Found from `--config FILE`, else `$HARVEST_CONFIG`, else
`/etc/harvest-agent/config.yaml` (`%PROGRAMDATA%\\harvest-agent\\config.yaml` on Windows).
Relative paths are relative to the config file's folder. Unknown keys are errors.
Check a file with `harvest config check FILE`.

This page is generated from the models in `agent/config/models.py`
(`python -m agent.config.reference > docs/configuration.md`); do not edit it by hand.
"""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for argument in get_args(annotation):
        found.extend(model for model in _models_in(argument) if model not in found)
    return found


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(value) for value in get_args(annotation))
    if origin in (list, typing.List):  # noqa: UP006
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(argument) for argument in get_args(annotation) if argument is not type(None))
    if isinstance(annotation, type):
        return "mapping" if issubclass(annotation, BaseModel) else annotation.__name__.replace("Path", "path")
    return str(annotation)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        return "see below" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "" if info.default is PydanticUndefined else f"`{info.default!r}`"


def _tag(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].annotation.__args__[0])  # type: ignore[union-attr]


def _label(base: str, model: type[BaseModel], *, several: bool) -> str:
    return f"{base} (type: {_tag(model)})" if several else base


def _anchor(title: str) -> str:
    """The link target GitHub and most Markdown renderers give a heading."""
    return "".join(char for char in title.lower() if char.isalnum() or char in " -_").replace(" ", "-")


def _section(title: str, model: type[BaseModel], lines: list[str], seen: set[type[BaseModel]]) -> None:
    seen.add(model)
    lines += ["", f"## {title}", ""]
    if model.__doc__:
        lines += [" ".join(model.__doc__.split()), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        description = (info.description or "").replace("|", "\\|")
        base = f"{title}.{name}" if title != "top level" else name
        models = _models_in(info.annotation)
        labels = {inner: _label(base, inner, several=len(models) > 1) for inner in models}
        kind = _type_name(info.annotation)
        if len(models) > 1:  # a choice of mappings (the destinations): name each, linked to its section
            choices = ", ".join(f"[{_tag(inner)}](#{_anchor(label)})" for inner, label in labels.items())
            kind = ("list of " if kind.startswith("list of ") else "") + f"mappings, one of: {choices}"
        elif models:
            kind = kind.replace("mapping", f"mapping, see [{base}](#{_anchor(base)})", 1)
        lines.append(f"| `{name}` | {kind} | {_default(info)} | {description} |")
        for inner, label in labels.items():
            if inner not in seen:
                nested.append((label, inner))
    for label, inner in nested:
        _section(label, inner, lines, seen)


def reference() -> str:
    lines = [HEADER.rstrip()]
    _section("top level", AgentConfig, lines, set())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
