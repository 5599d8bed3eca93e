"""``harvest retry`` in the journal: failed files and deliveries get another chance."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.journal.records import RetryOutcome
from agent.journal.report_reads import ReportReads
from agent.journal.schema import DatasetState, DeliveryState, FileState


class RetryWrites(ReportReads):
    def retry_failed(self, item: str | None, exists: Callable[[str, str], bool]) -> RetryOutcome:
        """Give failed files and deliveries another chance (``harvest retry``).

        *item* narrows the retry to one file (absolute or root-relative path) or one
        dataset key; None retries everything that failed. A failed file that exists
        again is marked stale so the engine settles and hashes it anew; one still
        missing stays failed. A failed delivery goes back to pending with a fresh
        attempt count, and a dataset already committed without it gets a new revision.
        """

        def wanted(root: str, rel_path: str, dataset_key: str | None) -> bool:
            return item is None or item in (f"{root}/{rel_path}", rel_path, dataset_key)

        outcome = RetryOutcome()
        now = time.time()
        with self.transaction() as db:
            for file_id, root, rel_path, key in db.execute(
                "SELECT f.id, f.root, f.rel_path, s.dataset_key FROM files f LEFT JOIN datasets s"
                " ON s.id = f.dataset_id WHERE f.state = ?",
                (FileState.FAILED,),
            ).fetchall():
                if not wanted(root, rel_path, key):
                    continue
                if not exists(root, rel_path):
                    outcome.still_missing.append(f"{root}/{rel_path}")
                    continue
                db.execute(
                    "UPDATE files SET state = ?, error = NULL, quarantined = 0, updated_at = ? WHERE id = ?",
                    (FileState.STALE, now, file_id),
                )
                outcome.files.append((root, rel_path))
            bumped: set[int] = set()
            for file_id, destination, root, rel_path, key, dataset_id in db.execute(
                "SELECT d.file_id, d.destination, f.root, f.rel_path, s.dataset_key, s.id FROM deliveries d"
                " JOIN files f ON f.id = d.file_id AND f.version = d.version JOIN datasets s ON s.id = f.dataset_id"
                " WHERE d.state = ? AND f.state = ?",
                (DeliveryState.FAILED, FileState.HASHED),
            ).fetchall():
                if not wanted(root, rel_path, key):
                    continue
                db.execute(
                    "UPDATE deliveries SET state = ?, attempts = 0, error = NULL, updated_at = ?"
                    " WHERE file_id = ? AND destination = ?",
                    (DeliveryState.PENDING, now, file_id, destination),
                )
                outcome.deliveries += 1
                committed = db.execute(
                    "SELECT 1 FROM commits c JOIN datasets s ON s.id = c.dataset_id WHERE c.dataset_id = ?"
                    " AND c.revision = s.revision AND s.state = ?",
                    (dataset_id, DatasetState.CLOSED),
                ).fetchone()
                if committed and dataset_id not in bumped:
                    db.execute("UPDATE datasets SET revision = revision + 1 WHERE id = ?", (dataset_id,))
                    bumped.add(dataset_id)
        return outcome
