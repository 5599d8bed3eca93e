"""Gaps: parts of the watched tree the agent could not read, kept until they can be.

A folder a scan cannot list, a file whose information cannot be read, and a file still
growing when a dataset is closed by force are recorded in the journal (table ``gaps``)
against the dataset they belong to, which is then archived as incomplete, listing them.
A gap clears when the part is read after all, or no longer exists. Runs on the engine
thread; the set in memory mirrors the journal's table so that a scan asks the journal
only about folders that had a gap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.config.models import WatchRule
from agent.journal.store import Journal
from agent.pipeline.watch import relative_posix

ROOT_GAP = "./"  # the whole root could not be listed: no dataset to name


class Gaps:
    def __init__(self, journal: Journal, on_dataset: Callable[[int], None]) -> None:
        self._journal = journal
        self._on_dataset = on_dataset  # a dataset gained a gap: its timers start
        self._known = set(journal.gap_paths())

    def unreadable(self, rule: WatchRule, path: str, folder: bool, reason: str) -> None:
        """A scan could not read *path* (a folder, or a file's information)."""
        if Path(path) == rule.path:
            self.record(rule, ROOT_GAP, reason)
            return
        rel_path = relative_posix(rule.path, Path(path))
        if rel_path is not None:
            self.record(rule, rel_path + "/" if folder else rel_path, reason)

    def record(self, rule: WatchRule, gap_path: str, reason: str) -> None:
        match = None
        if rule.group_by == "folder" and gap_path != ROOT_GAP:
            # A folder's dataset is the one a file inside it would belong to.
            match = rule.template.match(gap_path + "_" if gap_path.endswith("/") else gap_path)
        dataset_id = self._journal.record_gap(
            str(rule.path), gap_path, reason, match.dataset_key if match else None, match.fields if match else {}
        )
        self._known.add((str(rule.path), gap_path))
        if dataset_id is not None:
            self._on_dataset(dataset_id)

    def listed(self, rule: WatchRule, folder: Path) -> None:
        """A scan listed *folder*: a gap it was is cleared."""
        if not self._known:
            return
        rel_path = "." if folder == rule.path else relative_posix(rule.path, folder)
        if rel_path is not None:
            self._clear(str(rule.path), f"{rel_path}/")

    def vanished(self, parts: Iterable[tuple[str, str]]) -> None:
        """Files (root, rel_path) that disappeared while settling are no gaps."""
        for root, rel_path in parts:
            self._clear(root, rel_path)

    def prune(self) -> None:
        """Gaps whose folder or file no longer exists are no gaps (a scan meets them no more)."""
        for root, gap_path in list(self._known):
            if gap_path != ROOT_GAP and not os.path.lexists(Path(root) / gap_path.rstrip("/")):
                self._clear(root, gap_path)

    def _clear(self, root: str, gap_path: str) -> None:
        if (root, gap_path) in self._known:
            self._journal.clear_gap(root, gap_path)
            self._known.discard((root, gap_path))
