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


class PathFilter:
    """Decides whether a relative path (file or folder) may be harvested."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self._in_progress = [glob_to_regex(pattern) for pattern in IN_PROGRESS_PATTERNS]
        self._include = [glob_to_regex(pattern) for pattern in include]
        self._exclude = [glob_to_regex(pattern) for pattern in exclude]

    @staticmethod
    def is_junk_name(name: str) -> bool:
        lowered = name.lower()
        return lowered in JUNK_NAMES or lowered.startswith("._") or name.startswith(INTERNAL_PREFIX)

    def is_in_progress(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        return any(pattern.match(name) for pattern in self._in_progress)

    def folder_allowed(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        if self.is_junk_name(name):
            return False
        return not any(pattern.match(rel_path + "/") for pattern in self._exclude)

    def file_allowed(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        if self.is_junk_name(name) or self.is_in_progress(rel_path):
            return False
        if any(pattern.match(rel_path) for pattern in self._exclude):
            return False
        return not self._include or any(pattern.match(rel_path) for pattern in self._include)
