"""Dataset closing: when a dataset is complete, and what a close records.

Runs on the engine thread. The timers (``agent.pipeline.datasets.DatasetTimers``) say
when a dataset's quiet period, marker or maximum open time is due; what its files declare
(``agent.pipeline.declared``) can close it earlier, as soon as all of it is present,
settled and whole. This module says whether a dataset is still busy (a member settling or
unhashed, a declared fileset member missing) and closes it, recording how it was decided
(``declared``, ``marker``, ``idle``, ``forced``, ``scan``): a missing fileset member or a
truncated member becomes a warning in its package, and a forced close records what was
still being written as a gap, for a later revision to hold.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config.models import Settle
from agent.engine.gaps import Gaps
from agent.engine.roots import Roots
from agent.errors import ErrorKind
from agent.extract.unit_extent import expected_files
from agent.journal.store import FileState, Journal
from agent.pipeline.datasets import DatasetTimers, missing_fileset_members
from agent.pipeline.declared import Declared, DeclaredFile, evaluate
from agent.pipeline.settle import Candidate, SettleTracker

STILL_WRITTEN = (
    "still being written when the dataset was closed by force (dataset_max_open_seconds); a later revision will hold it"
)


class DatasetCloser:
    def __init__(
        self,
        journal: Journal,
        roots: Roots,
        tracker: SettleTracker,
        timers: DatasetTimers,
        gaps: Gaps,
        settle: Settle | None = None,
    ) -> None:
        self._journal = journal
        self._roots = roots
        self._tracker = tracker
        self._timers = timers
        self._gaps = gaps
        self._settle = settle or timers.settle
        self.waiting: dict[int, str] = {}  # open dataset -> what its declarations still wait for
        self._hashed: set[int] = set()  # noted by the hash worker, asked on the engine thread
        self._hashed_lock = threading.Lock()

    def close_due(self) -> bool:
        """Close every dataset whose timers are due and that is not busy; True if any closed."""
        decisions = self._timers.due(self.busy)
        for decision in decisions:
            self.close(decision.dataset_id, decision.reason, forced=decision.forced, decided_by=decision.decided_by)
        return bool(decisions)

    def note_hashed(self, dataset_ids: set[int]) -> None:
        """Files of these datasets were hashed (any thread): ask them at the next close_declared."""
        with self._hashed_lock:
            self._hashed |= dataset_ids

    def close_declared(self) -> bool:
        """Close the datasets noted as hashed whose files declare everything present, settled
        and whole (a marker, when configured, keeps priority); True if any closed."""
        with self._hashed_lock:
            dataset_ids, self._hashed = self._hashed, set()
        if not dataset_ids or not self._settle.close_on_declared or self._settle.marker is not None:
            return False
        closed = False
        for dataset_id in sorted(dataset_ids):
            if dataset_id not in self._timers:
                continue  # closed already, or not open
            root = self._roots.get(self._journal.dataset(dataset_id).root)
            if root is not None and root.rule.group_by == "dicom-study":
                continue  # a study does not declare its series: the idle timer decides
            if self._settling_or_unhashed(dataset_id):
                # Asked again when those are hashed: reading every member's metadata at each
                # batch of a large dataset would cost more than it tells.
                self.waiting.setdefault(dataset_id, "waiting for members still settling or being hashed")
                continue
            declared = self.declared(dataset_id)
            waiting = declared.waiting()
            if waiting is not None or not declared.complete:
                self.waiting[dataset_id] = waiting or "not every file declares its acquisition; idle timer decides"
                continue
            self._timers.forget(dataset_id)
            self.close(dataset_id, "declared complete", decided_by="declared", declared=declared)
            closed = True
        return closed

    def declared(self, dataset_id: int) -> Declared:
        metadata = self._journal.file_metadata(dataset_id)
        return evaluate(
            (
                DeclaredFile(
                    record.path_in_dataset or "",
                    Path(record.root) / record.rel_path,
                    json.loads(metadata[record.id]) if record.id in metadata else None,
                )
                for record in self._journal.dataset_files(dataset_id)
                if record.state not in (FileState.FAILED, FileState.IGNORED)
            ),
            expected_files,
        )

    def pending_in(self, root_key: str, dataset_key: str) -> list[Candidate]:
        """Files still settling that belong (or, unplaceable before they settle, may belong) to a dataset."""
        return list(self._pending(root_key, dataset_key))

    def _pending(self, root_key: str, dataset_key: str) -> Iterator[Candidate]:
        root = self._roots.get(root_key)
        for candidate in self._tracker.pending():
            if candidate.root != root_key:
                continue
            if root is None or root.rule.group_by != "folder":
                yield candidate  # DICOM grouping needs the settled header to place a file
                continue
            match = root.rule.template.match(candidate.rel_path)
            if match is not None and match.dataset_key == dataset_key:
                yield candidate

    def busy(self, dataset_id: int) -> bool:
        """Not complete yet: a member is settling or unhashed, or a fileset member is missing."""
        return self._settling_or_unhashed(dataset_id) or bool(self._missing_fileset_members(dataset_id))

    def _settling_or_unhashed(self, dataset_id: int) -> bool:
        if self._journal.has_unhashed_files(dataset_id):  # one indexed look-up, asked first
            return True
        dataset = self._journal.dataset(dataset_id)
        return next(self._pending(dataset.root, dataset.dataset_key), None) is not None

    def _missing_fileset_members(self, dataset_id: int) -> list[str]:
        metadata = self._journal.file_metadata(dataset_id)
        return missing_fileset_members(
            (record.path_in_dataset or "", json.loads(metadata[record.id]) if record.id in metadata else None)
            for record in self._journal.dataset_files(dataset_id)
            if record.state != FileState.FAILED
        )

    def close(
        self,
        dataset_id: int,
        reason: str,
        *,
        forced: bool = False,
        decided_by: str = "idle",
        declared: Declared | None = None,
    ) -> None:
        dataset = self._journal.dataset(dataset_id)
        declared = declared or self.declared(dataset_id)
        missing = declared.missing
        self.waiting.pop(dataset_id, None)
        if declared.truncated:
            shown = ", ".join(declared.truncated[:5]) + (" ..." if len(declared.truncated) > 5 else "")
            self._journal.add_dataset_warning(dataset_id, f"truncated file(s) shipped as they are: {shown}")
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
        self._journal.close_dataset(dataset_id, reason, completeness_block(decided_by, declared))


def completeness_block(decided_by: str, declared: Declared) -> dict[str, Any]:
    """How the close was decided and what was declared vs found (harvest.json ``completeness``)."""
    return {
        "decided_by": decided_by,
        "declared": [count.as_dict() for count in declared.counts],
        "complete_by_declaration": declared.complete,
        "undeclared_files": len(declared.undeclared),
        "truncated": declared.truncated,
    }
