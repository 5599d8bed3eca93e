"""Completeness on the engine thread: the settle stage's wholeness check, and what status
shows about it (files that stopped changing but are not whole, why open datasets are open)."""

from __future__ import annotations

import json
import logging

from agent.engine.closing import DatasetCloser
from agent.extract.model import FileCompleteness
from agent.extract.whole import check_file
from agent.journal.store import Journal
from agent.package.names import display
from agent.pipeline.datasets import DatasetTimers
from agent.pipeline.settle import Candidate, SettleTracker
from agent.secrets.redact import redact

logger = logging.getLogger(__name__)
MAX_SHOWN = 50  # open datasets and incomplete files whose reasons status shows


def candidate_wholeness(candidate: Candidate) -> FileCompleteness:
    """Is this quiet file whole? A file that cannot be read now is not held back for it."""
    try:
        return check_file(candidate.path)
    except OSError:
        return FileCompleteness(state="unknown", detail="unreadable for the structure check")
    except Exception as error:  # noqa: BLE001 - a bug in a check costs this file its verdict, never the engine
        # The type only: a parser's message may quote the file's bytes (a patient's name).
        logger.warning("%s: structure check failed (%s)", display(str(candidate.path)), type(error).__name__)
        return FileCompleteness(state="unknown", detail="structure check failed")


def completion_facts(
    journal: Journal, tracker: SettleTracker, timers: DatasetTimers, closer: DatasetCloser, now: float
) -> dict[str, str]:
    """The ``open_reasons`` and ``incomplete_files`` facts of the status report."""
    reasons: dict[str, str] = {}
    for dataset_id in journal.open_dataset_ids()[:MAX_SHOWN]:
        parts = [part for part in (closer.waiting.get(dataset_id), timers.open_reason(dataset_id)) if part]
        if parts:
            reasons[str(dataset_id)] = "; ".join(parts)
    incomplete = [
        {
            "path": f"{candidate.root}/{candidate.rel_path}",
            "detail": redact(candidate.incomplete.detail or "truncated"),
            "waiting_seconds": round(now - candidate.incomplete_since, 1),
        }
        for candidate in tracker.incomplete()[:MAX_SHOWN]
        if candidate.incomplete is not None and candidate.incomplete_since is not None
    ]
    return {"open_reasons": json.dumps(reasons), "incomplete_files": json.dumps(incomplete)}
