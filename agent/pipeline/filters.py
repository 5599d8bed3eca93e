"""Which paths under a watched root are candidates for harvesting at all.

Junk that operating systems and editors leave behind, and files that are still being
written by name convention (``*.tmp``, ``*.partial``, Office lock files ``~$*``), never
pass, whatever the config says. Config ``include``/``exclude`` patterns are globs on
the POSIX path relative to the root: ``*`` stays within one folder name, ``**`` spans
folders, and a pattern without ``/`` matches the file name at any depth.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

JUNK_NAMES = frozenset({"thumbs.db", ".ds_store", "desktop.ini", "ehthumbs.db", ".directory"})
IN_PROGRESS_PATTERNS = ("*.tmp", "*.temp", "*.partial", "*.part", "*.crdownload", "~$*", ".~lock.*", "*.swp")
INTERNAL_PREFIX = ".harvest-"


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a path glob into a regex over POSIX relative paths."""
    anchored = "/" in pattern.rstrip("/")
    body = pattern.lstrip("/")
    regex = ""
    index = 0
    while index < len(body):
        if body.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif body.startswith("**", index):
            regex += ".*"
            index += 2
        elif body[index] == "*":
            regex += "[^/]*"
            index += 1
        elif body[index] == "?":
            regex += "[^/]"
            index += 1
        else:
            regex += re.escape(body[index])
            index += 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(prefix + regex + r"(?:/.*)?\Z", re.DOTALL)


def _any_of(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching where any of the globs matches (one match per path, not one per glob)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{glob_to_regex(pattern).pattern})" for pattern in patterns), re.DOTALL)


class PathFilter:
    """Decides whether a relative path (file or folder) may be harvested."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self._in_progress = _any_of(IN_PROGRESS_PATTERNS)
        self._include = _any_of(include)
        self._exclude = _any_of(exclude)

    @staticmethod
    def is_junk_name(name: str) -> bool:
        lowered = name.lower()
        return lowered in JUNK_NAMES or lowered.startswith("._") or name.startswith(INTERNAL_PREFIX)

    def is_in_progress(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        return self._in_progress is not None and self._in_progress.match(name) is not None

    def folder_allowed(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        if self.is_junk_name(name):
            return False
        return self._exclude is None or self._exclude.match(rel_path + "/") is None

    def file_allowed(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        if self.is_junk_name(name) or self.is_in_progress(rel_path):
            return False
        if self._exclude is not None and self._exclude.match(rel_path) is not None:
            return False
        return self._include is None or self._include.match(rel_path) is not None
