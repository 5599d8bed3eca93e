"""The pipeline's reads: what each stage asks the journal, as typed records.

Plain queries over one connection (the write side is ``store``; the status report's reads
are ``report_reads``). Joins used in more than one place are the views in ``schema.VIEWS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from agent.journal.connection import JournalConnection
from agent.journal.names import legacy_archive_key
from agent.journal.records import (
    FILE_COLUMN_COUNT,
    DatasetRecord,
    DeliveryRecord,
    FileIdentity,
    FileRecord,
    file_from_row,
)
from agent.journal.schema import UNVERIFIED_SQL, DatasetState, DeliveryState, FileState

_REMOTE_STATES = f"SELECT remote_state FROM deliveries WHERE destination = ? AND remote_state IS NOT NULL AND state IN {UNVERIFIED_SQL}"  # noqa: E501, S608 - constants only
LOOKUP_BATCH = 500  # bound parameters per query (SQLite allows 32,766 since 3.32; older builds 999)


class JournalReads(JournalConnection):
    """Reads the pipeline stages make; every one a named method with a typed result."""

    def known_identity(self, root: str, rel_path: str) -> tuple[FileIdentity, FileState] | None:
        row = self._db.execute(
            "SELECT dev, ino, size_bytes, mtime_ns, state FROM files WHERE root = ? AND rel_path = ?",
            (root, rel_path),
        ).fetchone()
        if row is None:
            return None
        return FileIdentity(*row[:4]), FileState(row[4])

    def current_identities(self, root: str, rel_paths: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
        """(dev, ino, size, mtime_ns) of each of *rel_paths* the journal holds and that is not
        stale (what ``known_identity`` says, for a reconcile scan's batch at once): one query
        per folder in each ``LOOKUP_BATCH`` paths, when they come sorted by name. (Names
        that are not UTF-8 come back as the same ``str``, as from every read.)"""
        known: dict[str, tuple[int, int, int, int]] = {}
        for start in range(0, len(rel_paths), LOOKUP_BATCH):
            # In name order (as a scan's run comes) a batch is one short range of the index;
            # in any other order the range answers less and the rest is looked up by name.
            batch = list(rel_paths[start : start + LOOKUP_BATCH])
            if batch[0].rpartition("/")[0] == batch[-1].rpartition("/")[0]:
                self._look_up_run(root, batch, known)  # one folder: the common case
            else:
                for run in _folder_runs(batch):
                    self._look_up_run(root, run, known)
        return known

    def _look_up_run(self, root: str, run: list[str], known: dict[str, tuple[int, int, int, int]]) -> None:
        """One folder's files, sorted: neighbours in the (root, rel_path) index, so one range
        read (about twice as fast as looking each up). Rows in the range that are not in the
        run (a subfolder's files sorting between) do no harm; paths the range did not answer
        are then looked up by name."""
        # A million rows per reconcile: read as plain rows. Only rel_path can be a BLOB (a
        # name that is not UTF-8): such a row is keyed by bytes here, so its str name is
        # missing and looked up by name below, where it is decoded as the row factory would.
        rows = self._plain_rows(
            "SELECT rel_path, dev, ino, size_bytes, mtime_ns FROM files"
            " WHERE root = ? AND rel_path BETWEEN ? AND ? AND state != ? LIMIT ?",
            (root, run[0], run[-1], FileState.STALE, 2 * len(run)),
        )
        known.update({row[0]: row[1:] for row in rows})
        missing = [path for path in run if path not in known]
        if missing:  # new or stale files, a range cut short by its limit, or names bound as BLOBs
            placeholders = ",".join("?" * len(missing))
            by_name = f"SELECT rel_path, dev, ino, size_bytes, mtime_ns FROM files WHERE root = ? AND state != ? AND rel_path IN ({placeholders})"  # noqa: E501, S608 - placeholders only
            rows = self._plain_rows(by_name, (root, FileState.STALE, *missing))
            known.update({_text(row[0]): row[1:] for row in rows})

    def files_in_state(self, state: FileState, limit: int) -> list[FileRecord]:
        rows = self._db.execute(
            "SELECT * FROM file_records WHERE state = ? ORDER BY id LIMIT ?", (state, limit)
        ).fetchall()
        return [file_from_row(row) for row in rows]

    def file_by_path(self, root: str, rel_path: str) -> FileRecord | None:
        row = self._db.execute(
            "SELECT * FROM file_records WHERE root = ? AND rel_path = ?", (root, rel_path)
        ).fetchone()
        return file_from_row(row) if row else None

    def gap_paths(self) -> list[tuple[str, str]]:
        """(root, rel_path) of every recorded gap."""
        return [(str(root), str(path)) for root, path in self._db.execute("SELECT root, rel_path FROM gaps")]

    def dataset_gaps(self, dataset_id: int) -> list[tuple[str, str]]:
        """(rel_path, reason) of the parts of a dataset that could not be read."""
        rows = self._db.execute(
            "SELECT rel_path, reason FROM gaps WHERE dataset_id = ? ORDER BY rel_path", (dataset_id,)
        ).fetchall()
        return [(str(path), str(reason)) for path, reason in rows]

    def deliveries_to_send(self, destination: str, limit: int) -> list[DeliveryRecord]:
        rows = self._db.execute(
            "SELECT f.*, d.version, d.state, d.offset_bytes, s.dataset_key, d.remote_state, s.archive_key"
            # CROSS JOIN: driven by the (few) waiting deliveries through their state index; left
            # to itself the planner walks every hashed file, 0.3 s at a million harvested files.
            " FROM deliveries d CROSS JOIN file_records f ON f.id = d.file_id JOIN datasets s ON s.id = f.dataset_id"
            " WHERE d.destination = ? AND d.state IN (?, ?) AND f.state = ? AND d.version = f.version"
            " ORDER BY d.file_id LIMIT ?",
            (destination, DeliveryState.PENDING, DeliveryState.SENDING, FileState.HASHED, limit),
        ).fetchall()
        n = FILE_COLUMN_COUNT
        return [
            DeliveryRecord(
                file=file_from_row(row[:n]),
                destination=destination,
                version=int(row[n]),
                state=DeliveryState(row[n + 1]),
                offset_bytes=int(row[n + 2]),
                dataset_key=str(row[n + 3]),
                remote_state=json.loads(row[n + 4]) if row[n + 4] else None,
                archive_key=row[n + 5] or legacy_archive_key(str(row[n + 3])),
            )
            for row in rows
        ]

    def remote_states(self, destination: str) -> list[dict[str, Any]]:
        """Resume states of deliveries still in progress at *destination*."""
        rows = self._db.execute(
            _REMOTE_STATES,
            (destination,),
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def abandoned_uploads(self, destination: str, limit: int = 20) -> list[tuple[int, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT id, remote_state FROM abandoned_uploads WHERE destination = ? ORDER BY id LIMIT ?",
            (destination, limit),
        ).fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]

    def dataset(self, dataset_id: int) -> DatasetRecord:
        row = self._db.execute(
            "SELECT id, root, dataset_key, fields_json, state, revision, opened_at, closed_at, close_reason,"
            " archive_key FROM datasets WHERE id = ?",
            (dataset_id,),
        ).fetchone()
        if row is None:
            raise KeyError(dataset_id)
        return DatasetRecord(
            id=row[0], root=row[1], dataset_key=row[2], fields=json.loads(row[3]), state=DatasetState(row[4]),
            revision=row[5], opened_at=row[6], closed_at=row[7], close_reason=row[8],
            archive_key=row[9] or legacy_archive_key(row[2]),
        )  # fmt: skip

    def open_dataset_ids(self) -> list[int]:
        return [row[0] for row in self._db.execute("SELECT id FROM datasets WHERE state = ?", (DatasetState.OPEN,))]

    def dataset_files(self, dataset_id: int) -> list[FileRecord]:
        rows = self._db.execute(
            "SELECT * FROM file_records WHERE dataset_id = ? ORDER BY path_in_dataset",
            (dataset_id,),
        ).fetchall()
        return [file_from_row(row) for row in rows]

    def change_generation(self) -> int:
        """Moves whenever a dataset may have become ready to commit (or uncommitted): read it
        before ``datasets_ready_to_commit``; while it stands still, the answer cannot change."""
        return self._count("SELECT generation FROM changes", ())

    def datasets_ready_to_commit(self, destination: str) -> list[int]:
        """Closed datasets whose every current file version is settled at *destination*.

        Files that failed are not waited for (they are listed as missing in the
        package); files still settling or hashing are.
        """
        rows = self._db.execute(
            "SELECT s.id FROM datasets s WHERE s.state = ?"
            " AND NOT EXISTS (SELECT 1 FROM commits c WHERE c.dataset_id = s.id AND c.destination = ?"
            "   AND c.revision >= s.revision AND c.state = 'committed')"
            " AND NOT EXISTS (SELECT 1 FROM files f LEFT JOIN deliveries d ON d.file_id = f.id"
            "   AND d.destination = ? AND d.version = f.version"
            "   WHERE f.dataset_id = s.id AND f.state NOT IN (?, ?)"
            "   AND (d.state IS NULL OR d.state NOT IN (?, ?)))",
            (
                DatasetState.CLOSED, destination, destination, FileState.FAILED, FileState.IGNORED,
                DeliveryState.VERIFIED, DeliveryState.FAILED,
            ),
        ).fetchall()  # fmt: skip
        return [row[0] for row in rows]

    def delivery_states(self, dataset_id: int, destination: str) -> dict[int, tuple[DeliveryState, str | None]]:
        rows = self._db.execute(
            "SELECT file_id, state, error FROM current_deliveries WHERE dataset_id = ? AND destination = ?",
            (dataset_id, destination),
        ).fetchall()
        return {row[0]: (DeliveryState(row[1]), row[2]) for row in rows}

    def verification_counts(self, dataset_id: int, destination: str) -> dict[str, int]:
        """How the dataset's current file versions were verified at *destination*, with counts."""
        rows = self._db.execute(
            "SELECT COALESCE(verified_by, 'not recorded'), COUNT(*) FROM current_deliveries"
            " WHERE dataset_id = ? AND destination = ? AND state = ? GROUP BY 1 ORDER BY 1",
            (dataset_id, destination, DeliveryState.VERIFIED),
        ).fetchall()
        return {str(method): int(count) for method, count in rows}

    def file_errors(self, dataset_id: int) -> dict[int, str]:
        rows = self._db.execute(
            "SELECT id, error FROM files WHERE dataset_id = ? AND state = ?", (dataset_id, FileState.FAILED)
        ).fetchall()
        return {row[0]: row[1] or "failed" for row in rows}

    def file_metadata(self, dataset_id: int) -> dict[int, str]:
        """Metadata JSON of each file in a dataset, by file id."""
        rows = self._db.execute(
            "SELECT id, metadata_json FROM files WHERE dataset_id = ? AND metadata_json IS NOT NULL", (dataset_id,)
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def dataset_completeness(self, dataset_id: int) -> dict[str, Any] | None:
        """How the dataset's last close was decided, and what its files declared vs found."""
        row = self._db.execute("SELECT completeness_json FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def dataset_warnings(self, dataset_id: int) -> list[str]:
        row = self._db.execute("SELECT warnings_json FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        return list(json.loads(row[0])) if row else []

    def has_unhashed_files(self, dataset_id: int) -> bool:
        """A member of the dataset is settled or stale, i.e. not hashed yet."""
        return bool(
            self._rows(
                "SELECT 1 FROM files WHERE dataset_id = ? AND state IN (?, ?) LIMIT 1",
                (dataset_id, FileState.SETTLED, FileState.STALE),
            )
        )

    def delivery_attempts(self, file_id: int, destination: str) -> int:
        """Failed attempts so far at delivering the file's current version to *destination*."""
        return self._count(
            "SELECT attempts FROM deliveries WHERE file_id = ? AND destination = ?", (file_id, destination)
        )


def _folder_runs(rel_paths: list[str]) -> Iterator[list[str]]:
    """Sorted *rel_paths* cut where the folder changes."""
    run: list[str] = []
    folder = None
    for rel_path in rel_paths:
        parent = rel_path.rpartition("/")[0]
        if parent != folder and run:
            yield run
            run = []
        folder = parent
        run.append(rel_path)
    if run:
        yield run


def _text(name: str | bytes) -> str:
    return name if isinstance(name, str) else name.decode("utf-8", "surrogateescape")
