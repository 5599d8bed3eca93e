"""Dataset closing: when a dataset is complete, and what a close records.

Runs on the engine thread. The timers (``agent.pipeline.datasets.DatasetTimers``) say
when a dataset's quiet period, marker or maximum open time is due; this module says
whether it is still busy (a member settling or unhashed, a declared fileset member
missing) and closes it: a missing fileset member becomes a warning in its package, and a
forced close records what was still being written as a gap, for a later revision to hold.
"""

from __future__ import annotations

import json

from agent.engine.gaps import Gaps
from agent.engine.roots import Roots
from agent.errors import ErrorKind
from agent.journal.store import FileState, Journal
from agent.pipeline.datasets import DatasetTimers, missing_fileset_members
from agent.pipeline.settle import Candidate, SettleTracker

STILL_WRITTEN = (
    "still being written when the dataset was closed by force (dataset_max_open_seconds); a later revision will hold it"
)


class DatasetCloser:
    def __init__(
        self, journal: Journal, roots: Roots, tracker: SettleTracker, timers: DatasetTimers, gaps: Gaps
    ) -> None:
        self._journal = journal
        self._roots = roots
        self._tracker = tracker
        self._timers = timers
        self._gaps = gaps

    def close_due(self) -> bool:
        """Close every dataset whose timers are due and that is not busy; True if any closed."""
        decisions = self._timers.due(self.busy)
        for decision in decisions:
            self.close(decision.dataset_id, decision.reason, forced=decision.forced)
        return bool(decisions)

    def pending_in(self, root_key: str, dataset_key: str) -> list[Candidate]:
        """Files still settling that belong (or, unplaceable before they settle, may belong) to a dataset."""
        root = self._roots.get(root_key)
        pending = []
        for candidate in self._tracker.pending():
            if candidate.root != root_key:
                continue
            if root is None or root.rule.group_by != "folder":
                pending.append(candidate)  # DICOM grouping needs the settled header to place a file
                continue
            match = root.rule.template.match(candidate.rel_path)
            if match is not None and match.dataset_key == dataset_key:
                pending.append(candidate)
        return pending

    def busy(self, dataset_id: int) -> bool:
        """Not complete yet: a member is settling or unhashed, or a fileset member is missing."""
        dataset = self._journal.dataset(dataset_id)
        if self.pending_in(dataset.root, dataset.dataset_key):
            return True
        if self._journal.has_unhashed_files(dataset_id):
            return True
        return bool(self._missing_fileset_members(dataset_id))

    def _missing_fileset_members(self, dataset_id: int) -> list[str]:
        metadata = self._journal.file_metadata(dataset_id)
        return missing_fileset_members(
            (record.path_in_dataset or "", json.loads(metadata[record.id]) if record.id in metadata else None)
            for record in self._journal.dataset_files(dataset_id)
            if record.state != FileState.FAILED
        )

    def close(self, dataset_id: int, reason: str, *, forced: bool = False) -> None:
        missing = self._missing_fileset_members(dataset_id)
        dataset = self._journal.dataset(dataset_id)
        if missing:
            warning = f"closed with fileset members missing: {', '.join(missing)}"
            self._journal.add_dataset_warning(dataset_id, warning)
            self._journal.record_error(ErrorKind.DATASET, f"dataset {dataset.dataset_key}: {warning}")
        if forced:
            message = f"dataset {dataset.dataset_key} was closed by force: {reason}"
            self._journal.record_error(ErrorKind.DATASET, message)
            root = self._roots.get(dataset.root)
            for candidate in self.pending_in(dataset.root, dataset.dataset_key):
                if root is not None:
                    self._gaps.record(root.rule, candidate.rel_path, STILL_WRITTEN)
        self._journal.close_dataset(dataset_id, reason)
