"""Dataset templates: how a file's path relative to its watched root names its dataset.

A template such as ``"{operator}/{project}/{session}"`` has one part per folder level.
Each ``{field}`` matches one folder name (or part of one: ``"{date}_{session}"``) and
becomes a dataset field; ``*`` matches any text within one folder name; anything else
must match literally. The folders the template covers name the dataset (its key); the
rest of the path is the file's place inside the dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_BRACE = re.compile(r"[{}]")


@dataclass(frozen=True)
class TemplateMatch:
    dataset_key: str
    fields: dict[str, str]
    path_in_dataset: str


class DatasetTemplate:
    """A parsed dataset template; raises ``ValueError`` for a malformed one."""

    def __init__(self, text: str) -> None:
        if not text or text.startswith("/") or text.endswith("/"):
            raise ValueError("dataset template must be a relative path like '{operator}/{session}'")
        self.text = text
        self.field_names: list[str] = []
        self._segments: list[re.Pattern[str]] = []
        for segment in text.split("/"):
            if segment in ("", ".", ".."):
                raise ValueError(f"dataset template has an empty or relative part: {text!r}")
            self._segments.append(self._compile_segment(segment))

    def _compile_segment(self, segment: str) -> re.Pattern[str]:
        pattern = ""
        position = 0
        for found in _FIELD.finditer(segment):
            pattern += self._literal(segment[position : found.start()])
            name = found.group(1)
            if name in self.field_names:
                raise ValueError(f"dataset template names field {{{name}}} twice")
            self.field_names.append(name)
            pattern += f"(?P<{name}>.+?)"
            position = found.end()
        pattern += self._literal(segment[position:])
        return re.compile(pattern + r"\Z", re.DOTALL)

    @staticmethod
    def _literal(text: str) -> str:
        if _ANY_BRACE.search(text):
            raise ValueError(f"dataset template has a stray brace in {text!r}; fields look like {{name}}")
        return ".*?".join(re.escape(piece) for piece in text.split("*"))

    @property
    def depth(self) -> int:
        return len(self._segments)

    def match(self, relative_path: str, *, stop_at: int | None = None) -> TemplateMatch | None:
        """Match a POSIX-style relative file path; ``None`` if it is not inside a dataset.

        *stop_at* (a folder count) ends the dataset there even if the template goes deeper:
        a folder that is one acquisition (an OME-Zarr store) must not be split.
        """
        parts = relative_path.split("/")
        depth = self.depth if stop_at is None else max(1, min(stop_at, self.depth))
        if len(parts) <= depth:
            return None
        fields: dict[str, str] = {}
        for pattern, part in zip(self._segments[:depth], parts, strict=False):
            found = pattern.match(part)
            if found is None:
                return None
            fields.update(found.groupdict())
        return TemplateMatch(
            dataset_key="/".join(parts[:depth]),
            fields=fields,
            path_in_dataset="/".join(parts[depth:]),
        )
