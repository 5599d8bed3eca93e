"""Which paths under a watched root are candidates for harvesting at all.

Junk that operating systems and editors leave behind, and files that are still being
written by name convention (``*.tmp``, ``*.partial``, Office lock files ``~$*``), never
pass, whatever the config says. Config ``include``/``exclude`` patterns are globs on
the POSIX path relative to the root: ``*`` stays within one folder name, ``**`` spans
folders, and a pattern without ``/`` matches the file name at any depth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

JUNK_NAMES = frozenset({"thumbs.db", ".ds_store", "desktop.ini", "ehthumbs.db", ".directory"})
IN_PROGRESS_SUFFIXES = (".tmp", ".temp", ".partial", ".part", ".crdownload", ".swp")
IN_PROGRESS_PREFIXES = ("~$", ".~lock.")
IN_PROGRESS_PATTERNS = tuple(f"*{suffix}" for suffix in IN_PROGRESS_SUFFIXES) + tuple(
    f"{prefix}*" for prefix in IN_PROGRESS_PREFIXES
)
INTERNAL_PREFIX = ".harvest-"
_JUNK_LENGTHS = frozenset(len(name) for name in JUNK_NAMES)  # only names of these lengths are lower-cased
# Names refused by their start alone: AppleDouble files, the agent's own, in-progress ones.
_REFUSED_PREFIXES = ("._", INTERNAL_PREFIX, *IN_PROGRESS_PREFIXES)


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
        self._include = _any_of(include)
        self._exclude = _any_of(exclude)

    @staticmethod
    def is_junk_name(name: str) -> bool:
        return name.lower() in JUNK_NAMES or name.startswith(("._", INTERNAL_PREFIX))

    @staticmethod
    def is_in_progress(rel_path: str) -> bool:
        name = rel_path.rpartition("/")[2]
        return name.endswith(IN_PROGRESS_SUFFIXES) or name.startswith(IN_PROGRESS_PREFIXES)

    def folder_allowed(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        if self.is_junk_name(name):
            return False
        return self._exclude is None or self._exclude.match(rel_path + "/") is None

    def file_allowed(self, rel_path: str) -> bool:
        path_allowed = self.path_allowed
        return self.name_allowed(rel_path.rpartition("/")[2]) and (path_allowed is None or path_allowed(rel_path))

    @staticmethod
    def name_allowed(name: str) -> bool:
        """What a file's name alone decides: never junk, the agent's own or in progress.
        (Called for every file of every reconcile, millions: plain string tests, no regex.)"""
        refused = name.startswith(_REFUSED_PREFIXES) or name.endswith(IN_PROGRESS_SUFFIXES)
        return not (refused or (len(name) in _JUNK_LENGTHS and name.lower() in JUNK_NAMES))

    @property
    def path_allowed(self) -> Callable[[str], bool] | None:
        """What the config's include and exclude patterns decide about a relative path, or
        ``None`` where the config has none (then only the name decides)."""
        if self._include is None and self._exclude is None:
            return None
        return self._by_patterns

    def _by_patterns(self, rel_path: str) -> bool:
        if self._exclude is not None and self._exclude.match(rel_path) is not None:
            return False
        return self._include is None or self._include.match(rel_path) is not None
