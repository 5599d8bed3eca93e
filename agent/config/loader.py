"""Find, read and validate the YAML configuration, with precise error messages.

Errors name the file, the line, the key path and what was expected, and suggest the
closest known key for a misspelt one. The YAML is composed once to remember where
each key sits, then validated by the pydantic models.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from agent.config.models import PATTERN_MEANINGS, AgentConfig, Destination
from agent.errors import ConfigError

ENVIRONMENT_VARIABLE = "HARVEST_CONFIG"

Location = tuple[str | int, ...]


def default_config_path() -> Path:
    """The platform's default config file location."""
    if sys.platform == "win32":
        program_data = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return Path(program_data) / "harvest-agent" / "config.yaml"
    return Path("/etc/harvest-agent/config.yaml")


def resolve_config_path(explicit: Path | None) -> Path:
    """``--config`` first, then ``$HARVEST_CONFIG``, then the platform default."""
    if explicit is not None:
        return explicit
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    if from_environment:
        return Path(from_environment)
    return default_config_path()


@dataclass(frozen=True)
class ConfigProblem:
    """One validation problem, already located in the file."""

    file_path: Path
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file_path}:{self.line}" if self.line else str(self.file_path)
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} {self.message}"


class ConfigInvalid(ConfigError):
    """The config file failed validation; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def _line_map(node: yaml.Node, location: Location = ()) -> Iterator[tuple[Location, int]]:
    """Yield (key path, 1-based line) for every mapping key and sequence item."""
    yield location, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            yield (*location, key), key_node.start_mark.line + 1
            for entry in _line_map(value_node, (*location, key)):
                if entry[0] != (*location, key):
                    yield entry
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _line_map(item, (*location, index))


def _format_location(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _known_keys(model: type[BaseModel], location: Location, data: Any) -> list[str]:
    """The keys allowed at *location*, by walking the models alongside the data."""
    current: Any = model
    node: Any = data
    for part in location:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        current = _model_in(annotation, node.get(part) if isinstance(node, dict) else None, part)
        node = node.get(part) if isinstance(node, dict) else None
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any, value: Any, key: str) -> Any:
    """Find the pydantic model inside an annotation such as ``list[WatchRule]``."""
    candidates: list[Any] = [annotation]
    found: list[type[BaseModel]] = []
    while candidates:
        item = candidates.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            found.append(item)
        candidates.extend(getattr(item, "__args__", ()) or ())
        candidates.extend(getattr(item, "__metadata__", ()) or ())
        origin = getattr(item, "__origin__", None)
        if origin is not None and origin is not item:
            candidates.append(origin)
    if len(found) > 1 and isinstance(value, list) and value and isinstance(value[0], dict):
        wanted_type = value[0].get("type")
        for model in found:
            type_field = model.model_fields.get("type")
            if type_field is not None and wanted_type in getattr(type_field.annotation, "__args__", ()):
                return model
    return found[0] if found else None


def _describe(error: Any, data: Any) -> tuple[Location, str]:
    location: Location = tuple(part for part in error["loc"] if not (isinstance(part, str) and part in _UNION_TAGS))
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(AgentConfig, location[:-1], data)
        suggestion = difflib.get_close_matches(str(location[-1]), known, n=1)
        hint = f"; did you mean {suggestion[0]!r}?" if suggestion else f"; allowed keys: {', '.join(known)}"
        return location, f"unknown key{hint}"
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return (*location, "type"), f"unknown type {error['ctx']['tag']!r}; expected one of: {expected}"
    if kind == "missing":
        return location, "required key is missing"
    found = error.get("input")
    shown = "" if isinstance(found, dict | list) else f" (found {found!r})"
    return location, f"{_for_a_person(error)}{shown}"


def _for_a_person(error: Any) -> str:
    """Pydantic's message in the words of the config's reader, not of its validator."""
    if error["type"] == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return PATTERN_MEANINGS.get(pattern, f"does not have the expected form ({pattern})")
    message = str(error["msg"]).removeprefix("Value error, ")
    for said, meant in (("Input should be", "must be"), ("Input should have", "must have"), ("String should", "must")):
        message = message.replace(said, meant)
    return message


# Pydantic puts the discriminator value ("tus", ...) into error locations: derived from
# the destination models so that a new transport needs no change here.
_UNION_TAGS = {
    tag for model in get_args(get_args(Destination)[0]) for tag in get_args(model.model_fields["type"].annotation)
}


MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VALUES = 100_000  # scalars, mappings and sequences once aliases are expanded


def _refuse(file_path: Path, line: int | None, message: str) -> ConfigInvalid:
    return ConfigInvalid([ConfigProblem(file_path, line, "", message)])


def _check_shape(node: yaml.Node, file_path: Path) -> None:
    """Refuse YAML bombs before any value is built: alias expansion, nesting, duplicate keys.

    Walks the composed node graph iteratively (no recursion), counting a node again each
    time an alias reaches it, which is what building the values would cost.
    """
    pending: list[tuple[yaml.Node, int]] = [(node, 1)]
    values = 0
    while pending:
        current, depth = pending.pop()
        values += 1
        line = current.start_mark.line + 1
        if values > MAX_VALUES:
            raise _refuse(file_path, line, f"more than {MAX_VALUES} values once aliases are expanded; refused")
        if depth > MAX_DEPTH:
            raise _refuse(file_path, line, f"nested more than {MAX_DEPTH} levels deep; refused")
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in current.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
                key_line = key_node.start_mark.line + 1
                if key is not None and key != "<<":
                    if key in seen:
                        raise _refuse(
                            file_path, key_line, f"key {key!r} appears twice (lines {seen[key]} and {key_line})"
                        )
                    seen[key] = key_line
                pending.append((key_node, depth + 1))
                pending.append((value_node, depth + 1))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend((item, depth + 1) for item in current.value)


def parse_config(text: str, file_path: Path) -> AgentConfig:
    """Validate YAML *text*; raise ``ConfigInvalid`` with located problems."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise _refuse(file_path, None, f"the config file is larger than {MAX_CONFIG_BYTES >> 20} MiB; refused")
    try:
        node = yaml.compose(text)
        if node is not None:
            _check_shape(node, file_path)
        data = yaml.safe_load(text)
    except RecursionError:
        raise _refuse(file_path, None, f"nested more than {MAX_DEPTH} levels deep; refused") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigInvalid([ConfigProblem(file_path, line, "", f"not valid YAML: {problem}")]) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigInvalid([ConfigProblem(file_path, 1, "", "expected a mapping of settings at the top level")])
    lines = dict(_line_map(node))
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False):
            location, message = _describe(detail, data)
            line = None
            for depth in range(len(location), -1, -1):
                line = lines.get(location[:depth])
                if line is not None:
                    break
            problems.append(ConfigProblem(file_path, line, _format_location(location), message))
        raise ConfigInvalid(problems) from None


def load_config(file_path: Path) -> AgentConfig:
    """Read and validate the config file at *file_path*."""
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {file_path} (name one with --config FILE or ${ENVIRONMENT_VARIABLE})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read config file {file_path}: {reason}") from None
    return anchor_relative_paths(parse_config(text, file_path), file_path.parent)


def anchor_relative_paths(config: AgentConfig, base_path: Path) -> AgentConfig:
    """Relative paths in a config file are relative to the file's folder, not the cwd; every
    path is made absolute and normalised."""

    def anchored(path: Path) -> Path:
        # A Windows path (D:\Data, \\server\share) stays as written even when checked on Linux.
        if not path.is_absolute() and PureWindowsPath(str(path)).is_absolute():
            return path
        # Normalised (no "." or ".."): systemd ignores a ReadOnlyPaths= that is not, and
        # every message and `config show` should name the folder plainly.
        return Path(os.path.normpath((base_path / path).absolute()))

    def walk(value: Any) -> Any:
        if isinstance(value, Path):
            return anchored(value)
        if isinstance(value, BaseModel):
            return value.model_copy(update={name: walk(getattr(value, name)) for name in type(value).model_fields})
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    # Every path anywhere in the config (state dir, roots, destinations, CA bundles, keys, log file).
    anchored_config: AgentConfig = walk(config)
    return anchored_config
