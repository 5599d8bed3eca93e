"""The journal: the agent's durable state, in one SQLite database (WAL mode).

This module and its parts (``connection``, ``reads``, ``report_reads``, ``names``, ``schema``,
``records``) are the only ones that touch SQLite. Pipeline stages talk to each other
only through the states recorded here, so a crash at any instant leaves a state from
which the next start continues: intent is recorded before a side effect, the result
after it, and anything between the two is re-checked on resume (a destination file
that already holds the right bytes is verified and kept, never copied twice).

States (each column has a CHECK constraint):

    files.state       settled -> hashed              (stale: changed while read, waiting to settle again)
                      ignored (outside any dataset)   failed (item error, see files.error)
    deliveries.state  pending -> sending -> verified  (one row per file and destination)
                      failed (item error at that destination)
    datasets.state    open -> closed                  (a late file reopens it: revision + 1)
    commits.state     committed (revision written at that destination) / uncommitted

Schema changes are forward migrations keyed by ``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

from agent.errors import ErrorKind
from agent.journal.connection import JOURNAL_FILE_NAME, display
from agent.journal.names import archive_name
from agent.journal.records import (
    DatasetRecord,
    DeliveryRecord,
    FileIdentity,
    FileRecord,
    RetryOutcome,
    SettledFile,
)
from agent.journal.retry import RetryWrites
from agent.journal.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DatasetState,
    DeliveryState,
    DestinationHealth,
    FileState,
)
from agent.package.names import UnrepresentableName

__all__ = [
    "JOURNAL_FILE_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DatasetRecord",
    "DatasetState",
    "DeliveryRecord",
    "DeliveryState",
    "DestinationHealth",
    "FileIdentity",
    "FileRecord",
    "FileState",
    "Journal",
    "RetryOutcome",
    "SettledFile",
]


class Journal(RetryWrites):
    """The pipeline's states over one journal connection; open one per thread."""

    # ----- files -------------------------------------------------------------------

    def record_settled(self, settled: Sequence[SettledFile]) -> list[int]:
        """Record files that settled; returns the ids of datasets that gained a new version.

        A file seen before with the same identity changes nothing; a new identity is a
        new version that must be hashed and delivered again, and reopens its dataset.
        """
        touched: list[int] = []
        now = time.time()
        with self.transaction() as db:
            for item in settled:
                row = db.execute(
                    "SELECT id, dev, ino, size_bytes, mtime_ns, state FROM files WHERE root = ? AND rel_path = ?",
                    (item.root, item.rel_path),
                ).fetchone()
                identity = item.identity
                if row is not None and FileIdentity(*row[1:5]) == identity and row[5] != FileState.STALE:
                    continue
                state, error = FileState.SETTLED, None
                dataset_id: int | None = None
                archive_path: str | None = None
                path_nfc = unicodedata.normalize("NFC", item.path_in_dataset or "")
                try:
                    if item.dataset_key is None:
                        state, error = FileState.IGNORED, "not inside a folder that matches the dataset template"
                    else:
                        dataset_id = self._dataset_for(db, item, now)
                        archive_path = archive_name(db, f"dataset:{dataset_id}", item.path_in_dataset or "")
                except UnrepresentableName as reason:
                    state, error = FileState.FAILED, f"cannot be archived: {reason}"
                values = (
                    dataset_id, item.path_in_dataset, path_nfc, archive_path, identity.dev, identity.ino,
                    identity.size_bytes, identity.mtime_ns, state, error, now,
                )  # fmt: skip
                if row is None:
                    db.execute(
                        "INSERT INTO files (dataset_id, path_in_dataset, path_nfc, archive_path, dev, ino, size_bytes,"
                        " mtime_ns, state, error, updated_at, first_seen_at, root, rel_path)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*values, now, item.root, item.rel_path),
                    )
                else:
                    db.execute(
                        "UPDATE files SET dataset_id = ?, path_in_dataset = ?, path_nfc = ?, archive_path = ?,"
                        " dev = ?, ino = ?, size_bytes = ?, mtime_ns = ?, state = ?, error = ?, updated_at = ?,"
                        " first_seen_at = ?, sha256 = NULL, quarantined = 0, version = version + 1 WHERE id = ?",
                        (*values, now, row[0]),
                    )
                db.execute("DELETE FROM gaps WHERE root = ? AND rel_path = ?", (item.root, item.rel_path))
                if error is not None and state == FileState.FAILED:
                    self._insert_error(db, ErrorKind.ITEM, error, path=f"{item.root}/{item.rel_path}", destination=None)
                if dataset_id is not None:
                    touched.append(dataset_id)
        return sorted(set(touched))

    def _dataset_for(self, db: sqlite3.Connection, item: SettledFile, now: float) -> int:
        row = db.execute(
            "SELECT id, state FROM datasets WHERE root = ? AND dataset_key = ?", (item.root, item.dataset_key)
        ).fetchone()
        if row is None:
            archive_key = archive_name(db, f"root:{item.root}", item.dataset_key or "")
            cursor = db.execute(
                "INSERT INTO datasets (root, dataset_key, archive_key, fields_json, state, opened_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (item.root, item.dataset_key, archive_key, json.dumps(item.dataset_fields), DatasetState.OPEN, now),
            )
            return int(cursor.lastrowid or 0)
        if row[1] == DatasetState.CLOSED:
            # A late file: the dataset reopens and its next commit is a new revision.
            db.execute(
                "UPDATE datasets SET state = ?, revision = revision + 1, closed_at = NULL, close_reason = NULL,"
                " completeness_json = NULL WHERE id = ?",
                (DatasetState.OPEN, row[0]),
            )
        return int(row[0])

    def record_hashes(
        self,
        hashed: Sequence[tuple[FileRecord, str, str | None]],
        destinations_by_root: dict[str, list[str]],
        quarantined: dict[int, str] | None = None,
    ) -> None:
        """Store SHA-256 and metadata, queue one delivery per destination, in one transaction.

        A file in *quarantined* (file id -> reason) is recorded failed instead, with no
        delivery: in the same transaction, so no transfer can pick it up in between.
        """
        now = time.time()
        quarantined = quarantined or {}
        with self.transaction() as db:
            for record, sha256, metadata_json in hashed:
                reason = quarantined.get(record.id)
                cursor = db.execute(
                    "UPDATE files SET state = ?, sha256 = ?, metadata_json = ?, error = ?, quarantined = ?,"
                    " updated_at = ? WHERE id = ? AND version = ? AND state = ?",
                    (
                        FileState.HASHED if reason is None else FileState.FAILED, sha256, metadata_json, reason,
                        int(reason is not None), now, record.id, record.version, FileState.SETTLED,
                    ),
                )  # fmt: skip
                if cursor.rowcount == 0:
                    continue  # a newer version arrived meanwhile; it will be hashed in turn
                if reason is not None:
                    path = f"{record.root}/{record.rel_path}"
                    self._insert_error(db, ErrorKind.ITEM, reason, path=path, destination=None)
                    continue
                for destination in destinations_by_root.get(record.root, []):
                    db.execute(
                        "INSERT INTO abandoned_uploads (destination, remote_state, at) SELECT destination,"
                        " remote_state, ? FROM deliveries WHERE file_id = ? AND destination = ?"
                        " AND remote_state IS NOT NULL AND state != 'verified'",
                        (now, record.id, destination),
                    )
                    db.execute(
                        "INSERT INTO deliveries (file_id, destination, version, state, updated_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (file_id, destination) DO UPDATE SET"
                        " version = excluded.version, state = excluded.state, offset_bytes = 0, remote_state = NULL,"
                        " resumed_from_bytes = NULL, error = NULL, attempts = 0, updated_at = excluded.updated_at",
                        (record.id, destination, record.version, DeliveryState.PENDING, now),
                    )

    def mark_file(self, record: FileRecord, state: FileState, error: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET state = ?, error = ?, quarantined = 0, updated_at = ? WHERE id = ? AND version = ?",
                (state, None if error is None else display(error), time.time(), record.id, record.version),
            )

    # ----- gaps: parts of a dataset that could not be read --------------------------

    def record_gap(
        self, root: str, rel_path: str, reason: str, dataset_key: str | None, fields: dict[str, str]
    ) -> int | None:
        """Record that *rel_path* (a folder ends in ``/``) could not be read; its dataset, if
        any, is then incomplete (reopened if it was closed). Returns the dataset's id when
        the gap is new, so its timers can start."""
        now = time.time()
        with self.transaction() as db:
            known = db.execute("SELECT 1 FROM gaps WHERE root = ? AND rel_path = ?", (root, rel_path)).fetchone()
            if known is not None:
                db.execute(
                    "UPDATE gaps SET reason = ?, at = ? WHERE root = ? AND rel_path = ?",
                    (display(reason), now, root, rel_path),
                )
                return None
            dataset_id = None
            if dataset_key is not None:
                item = SettledFile(root, rel_path, FileIdentity(0, 0, 0, 0), dataset_key, fields, None)
                dataset_id = self._dataset_for(db, item, now)
            db.execute(
                "INSERT INTO gaps (root, rel_path, dataset_id, reason, at) VALUES (?, ?, ?, ?, ?)",
                (root, rel_path, dataset_id, display(reason), now),
            )
            return dataset_id

    def clear_gap(self, root: str, rel_path: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM gaps WHERE root = ? AND rel_path = ?", (root, rel_path))

    # ----- deliveries ----------------------------------------------------------------

    def start_delivery(self, delivery: DeliveryRecord, remote_key: str, resumed_from_bytes: int | None) -> None:
        """Record intent before the first byte is written at the destination."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET state = ?, remote_key = ?, updated_at = ?,"
                " resumed_from_bytes = COALESCE(?, resumed_from_bytes),"
                " resumes = resumes + (CASE WHEN ? IS NULL THEN 0 ELSE 1 END)"
                " WHERE file_id = ? AND destination = ? AND version = ?",
                (
                    DeliveryState.SENDING, remote_key, time.time(), resumed_from_bytes, resumed_from_bytes,
                    delivery.file.id, delivery.destination, delivery.version,
                ),
            )  # fmt: skip
            # The dataset's bag at this destination is no longer complete: the archive
            # must not take it until the next commit writes the manifests again.
            db.execute(
                "UPDATE commits SET state = 'uncommitted' WHERE dataset_id = ? AND destination = ?",
                (delivery.file.dataset_id, delivery.destination),
            )

    def save_remote_state(self, delivery: DeliveryRecord, state: dict[str, Any] | None) -> None:
        """Durably store what a transport needs to resume (e.g. the tus upload URL) right away."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET remote_state = ?, updated_at = ? WHERE file_id = ? AND destination = ?"
                " AND version = ?",
                (
                    None if state is None else json.dumps(state), time.time(),
                    delivery.file.id, delivery.destination, delivery.version,
                ),
            )  # fmt: skip

    def forget_abandoned(self, upload_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM abandoned_uploads WHERE id = ?", (upload_id,))

    def checkpoint_delivery(self, delivery: DeliveryRecord, offset_bytes: int) -> None:
        """A durable offset: everything before it is on stable storage at the destination."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET offset_bytes = ?, updated_at = ? WHERE file_id = ? AND destination = ?"
                " AND version = ?",
                (offset_bytes, time.time(), delivery.file.id, delivery.destination, delivery.version),
            )

    def finish_deliveries(self, results: Sequence[tuple[DeliveryRecord, DeliveryState, str | None]]) -> None:
        """Record verified (or failed) deliveries; call only after the bytes are durable.

        The third element is the error of a failed delivery, or how a verified one was
        verified ("server sha256sum", "read back", ...; None when the transport did not say).
        """
        now = time.time()
        delivered: dict[str, tuple[int, int]] = {}
        with self.transaction() as db:
            for delivery, state, detail in results:
                verified = state == DeliveryState.VERIFIED
                error, verified_by = (None, detail) if verified else (detail, None)
                if verified:
                    files, size = delivered.get(delivery.destination, (0, 0))
                    delivered[delivery.destination] = (files + 1, size + delivery.file.identity.size_bytes)
                db.execute(
                    "UPDATE deliveries SET state = ?, error = ?, verified_by = ?, updated_at = ?,"
                    " attempts = attempts + (CASE WHEN ? IS NULL THEN 0 ELSE 1 END),"
                    " offset_bytes = CASE WHEN ? = 'verified' THEN ? ELSE offset_bytes END"
                    " WHERE file_id = ? AND destination = ? AND version = ?",
                    (
                        state, None if error is None else display(error), verified_by, now, error, state,
                        delivery.file.identity.size_bytes,
                        delivery.file.id, delivery.destination, delivery.version,
                    ),
                )  # fmt: skip
            # Monotonic counters for the metrics endpoint (a sum over the table would drop
            # when a new file version replaces a delivered one).
            for destination, (files, size) in delivered.items():
                for key, amount in (
                    (f"delivered_files.{destination}", files),
                    (f"delivered_bytes.{destination}", size),
                ):
                    db.execute(
                        "INSERT INTO agent (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                        " SET value = CAST(value AS INTEGER) + excluded.value",
                        (key, str(amount)),
                    )

    # ----- datasets and commits ------------------------------------------------------

    def close_dataset(self, dataset_id: int, reason: str, completeness: dict[str, Any] | None = None) -> None:
        block = None if completeness is None else json.dumps(completeness)
        with self.transaction() as db:
            db.execute(
                "UPDATE datasets SET state = ?, closed_at = ?, close_reason = ?, completeness_json = ?"
                " WHERE id = ? AND state = ?",
                (DatasetState.CLOSED, time.time(), reason, block, dataset_id, DatasetState.OPEN),
            )

    def add_dataset_warning(self, dataset_id: int, warning: str) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT warnings_json FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            warnings = json.loads(row[0]) if row else []
            if warning not in warnings:
                warnings.append(warning)
            db.execute("UPDATE datasets SET warnings_json = ? WHERE id = ?", (json.dumps(warnings), dataset_id))

    def record_commit(
        self, dataset_id: int, destination: str, revision: int, remote_state: dict[str, Any] | None = None
    ) -> None:
        """The revision is committed at *destination*. What the transport left for an earlier
        commit (tus: its tag-file uploads) is queued to be terminated, in the same transaction."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "SELECT remote_state FROM commits WHERE dataset_id = ? AND destination = ?", (dataset_id, destination)
            ).fetchone()
            if row is not None and row[0]:
                for upload_url in json.loads(row[0]).get("tag_uploads", []):
                    db.execute(
                        "INSERT INTO abandoned_uploads (destination, remote_state, at) VALUES (?, ?, ?)",
                        (destination, json.dumps({"upload_url": upload_url}), now),
                    )
            db.execute(
                "INSERT INTO commits (dataset_id, destination, revision, state, committed_at, remote_state)"
                " VALUES (?, ?, ?, 'committed', ?, ?) ON CONFLICT (dataset_id, destination) DO UPDATE SET"
                " revision = excluded.revision, state = 'committed', committed_at = excluded.committed_at,"
                " remote_state = excluded.remote_state",
                (dataset_id, destination, revision, now, None if remote_state is None else json.dumps(remote_state)),
            )

    # ----- destinations and errors -------------------------------------------------

    def set_destination_health(
        self, name: str, health: DestinationHealth, reason: str | None, next_retry_at: float | None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO destinations (name, state, reason, next_retry_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, health, None if reason is None else display(reason), next_retry_at, time.time()),
            )
