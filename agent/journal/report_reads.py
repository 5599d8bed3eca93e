"""What the operator's reports read: ``harvest status``, ``harvest scan``'s verdict, /metrics.

Each read is a named method returning typed rows; ``agent.observe`` builds its reports from
them and never sees SQL. The current-version join is the ``current_deliveries`` view.
"""

from __future__ import annotations

from typing import NamedTuple

from agent.journal.reads import JournalReads
from agent.journal.schema import UNVERIFIED_SQL, DatasetState, DeliveryState, FileState

# An index read of the unverified deliveries, not a scan of every one ("+" keeps the planner
# off files_by_state, which would visit every hashed file).
_UNDELIVERED = f"SELECT root, rel_path, destination, error FROM current_deliveries WHERE state IN {UNVERIFIED_SQL} AND +file_state = ?"  # noqa: E501, S608 - constants only


class PathReason(NamedTuple):
    """A file or folder (``root``/``rel_path``) and what is wrong with it."""

    root: str
    rel_path: str
    reason: str


class InFlightRow(NamedTuple):
    root: str
    rel_path: str
    destination: str
    offset_bytes: int
    size_bytes: int
    file_id: int


class DatasetRow(NamedTuple):
    id: int
    key: str
    state: str
    revision: int
    closed_at: float | None
    close_reason: str | None
    fields_json: str | None
    warnings_json: str | None


class ErrorRow(NamedTuple):
    at: float
    kind: str
    path: str | None
    destination: str | None
    message: str


class DestinationRow(NamedTuple):
    name: str
    state: str
    reason: str | None
    next_retry_at: float | None


class UndeliveredRow(NamedTuple):
    root: str
    rel_path: str
    destination: str
    error: str | None


class DatasetTotals(NamedTuple):
    files: int
    bytes: int
    failed: int
    quarantined: int


class DeliveryProgress(NamedTuple):
    destination: str
    state: str
    deliveries: int
    done_bytes: int


class CommitRow(NamedTuple):
    destination: str
    revision: int
    state: str
    committed_at: float | None


class QueuedRow(NamedTuple):
    destination: str
    files: int
    bytes: int


class ReportReads(JournalReads):
    """Reads for the operator's reports (read-only connections welcome)."""

    # ----- files and their problems ------------------------------------------------------

    def file_state_counts(self) -> dict[str, int]:
        """Files per state (kept by the journal's triggers: a few rows however many files)."""
        return {
            str(state): int(count)
            for state, count in self._rows(
                "SELECT state, count FROM state_counts WHERE subject = 'files' AND destination = '' AND count != 0"
            )
        }

    def quarantined_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM files WHERE state = 'failed' AND quarantined = 1")

    def failed_files(self, limit: int = -1) -> list[PathReason]:
        """Failed files, latest first (-1: all of them)."""
        return [
            PathReason(str(root), str(rel_path), str(error or "failed"))
            for root, rel_path, error in self._rows(
                "SELECT root, rel_path, error FROM files WHERE state = ? ORDER BY updated_at DESC LIMIT ?",
                (FileState.FAILED, limit),
            )
        ]

    def gaps(self, limit: int = -1, *, by_path: bool = False) -> list[PathReason]:
        """Parts that could not be read, oldest first (or by path); -1: all of them."""
        sql = (
            "SELECT root, rel_path, reason FROM gaps ORDER BY rel_path LIMIT ?"
            if by_path
            else "SELECT root, rel_path, reason FROM gaps ORDER BY at LIMIT ?"
        )
        return [
            PathReason(str(root), str(rel_path), str(reason)) for root, rel_path, reason in self._rows(sql, (limit,))
        ]

    def gap_count(self, dataset_id: int | None = None) -> int:
        if dataset_id is None:
            return self._count("SELECT COUNT(*) FROM gaps")
        return self._count("SELECT COUNT(*) FROM gaps WHERE dataset_id = ?", (dataset_id,))

    def file_count(self, state: FileState) -> int:
        return self._count("SELECT COUNT(*) FROM files WHERE state = ?", (state,))

    # ----- deliveries --------------------------------------------------------------------

    def in_flight(self) -> list[InFlightRow]:
        """Current-version deliveries being sent, longest unchanged first."""
        return [
            InFlightRow(str(root), str(rel_path), str(destination), int(offset), int(size), int(file_id))
            for root, rel_path, destination, offset, size, file_id in self._rows(
                "SELECT root, rel_path, destination, offset_bytes, size_bytes, file_id FROM current_deliveries"
                " WHERE state = ? ORDER BY updated_at",
                (DeliveryState.SENDING,),
            )
        ]

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        """Deliveries of current file versions, per destination and state.

        Read from the counts the journal's triggers keep, then corrected for the few rows that
        still describe an older version (a file changed and is not hashed again yet), found
        from those files.
        """
        counts: dict[str, dict[str, int]] = {}
        for destination, state, count in self._rows(
            "SELECT destination, state, count FROM state_counts WHERE subject = 'deliveries'"
        ):
            counts.setdefault(str(destination), {state.value: 0 for state in DeliveryState})[str(state)] = int(count)
        for destination, state, count in self._rows(
            "SELECT d.destination, d.state, COUNT(*) FROM files f JOIN deliveries d ON d.file_id = f.id"
            " WHERE f.state IN (?, ?, ?, ?) AND d.version != f.version GROUP BY d.destination, d.state",
            (FileState.SETTLED, FileState.STALE, FileState.FAILED, FileState.IGNORED),
        ):
            counts[str(destination)][str(state)] -= int(count)
        return counts

    def undelivered(self) -> list[UndeliveredRow]:
        """Hashed files not (yet) verified at a destination, with the delivery's error."""
        return [
            UndeliveredRow(str(root), str(rel_path), str(destination), error)
            for root, rel_path, destination, error in self._rows(
                _UNDELIVERED,
                (FileState.HASHED,),
            )
        ]

    def verified_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM deliveries WHERE state = ?", (DeliveryState.VERIFIED,))

    def queued(self) -> list[QueuedRow]:
        """Files and bytes still to send, per destination."""
        return [
            QueuedRow(str(destination), int(files), int(size))
            for destination, files, size in self._rows(
                "SELECT destination, COUNT(*), COALESCE(SUM(size_bytes - offset_bytes), 0) FROM current_deliveries"
                " WHERE state IN ('pending', 'sending') GROUP BY destination"
            )
        ]

    def oldest_unsafe(self) -> tuple[float, str, str] | None:
        """(first seen, root, rel_path) of the file version waiting longest to be archived everywhere.

        Its age counts from when the agent first saw that version (``first_seen_at``), so
        neither checkpoints nor restarts reset it. Each candidate is found from a state index.
        """
        candidates: list[tuple[float, int]] = [
            (float(at), int(file_id))
            for file_id, at in self._rows(
                "SELECT id, COALESCE(first_seen_at, updated_at) AS seen FROM files WHERE state IN (?, ?)"
                " ORDER BY seen LIMIT 1",
                (FileState.SETTLED, FileState.STALE),
            )
        ]
        for destination in self.destinations():
            for state in (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.FAILED):
                candidates += [
                    (float(at), int(file_id))
                    for file_id, at in self._rows(
                        "SELECT file_id, COALESCE(first_seen_at, updated_at) AS seen FROM current_deliveries"
                        " WHERE state = ? AND destination = ? ORDER BY seen LIMIT 1",
                        (state, destination.name),
                    )
                ]
        if not candidates:
            return None
        since, file_id = min(candidates)
        root, rel_path = self._rows("SELECT root, rel_path FROM files WHERE id = ?", (file_id,))[0]
        return since, str(root), str(rel_path)

    # ----- datasets ----------------------------------------------------------------------

    def recent_datasets(self, limit: int) -> list[DatasetRow]:
        return [
            DatasetRow(int(row[0]), str(row[1]), str(row[2]), int(row[3]), *row[4:])
            for row in self._rows(
                "SELECT id, dataset_key, state, revision, closed_at, close_reason, fields_json, warnings_json"
                " FROM datasets ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        ]

    def uncommitted_dataset_count(self) -> int:
        """Datasets still open, never committed anywhere, or whose commit is not (yet) of their revision.

        Only destinations that hold a commit row count: a rule may send to some destinations
        only, and a destination still missing data shows in the deliveries waiting or failed.
        """
        return self._count(
            "SELECT COUNT(*) FROM datasets s WHERE s.state = 'open'"
            " OR NOT EXISTS (SELECT 1 FROM commits c WHERE c.dataset_id = s.id)"
            " OR EXISTS (SELECT 1 FROM commits c WHERE c.dataset_id = s.id"
            " AND (c.state != 'committed' OR c.revision < s.revision))"
        )

    def uncommitted_datasets(self, destination: str) -> list[tuple[str, str]]:
        """(root, dataset key) of datasets not committed at *destination* in their current revision."""
        return [
            (str(root), str(key))
            for root, key in self._rows(
                "SELECT s.root, s.dataset_key FROM datasets s LEFT JOIN commits c ON c.dataset_id = s.id"
                " AND c.destination = ? WHERE s.state != ? OR c.revision IS NULL OR c.revision < s.revision"
                " OR c.state != 'committed'",
                (destination, DatasetState.CLOSED),
            )
        ]

    def committed_count(self, destination: str) -> int:
        return self._count("SELECT COUNT(*) FROM commits WHERE destination = ? AND state = 'committed'", (destination,))

    def dataset_totals(self, dataset_id: int) -> DatasetTotals:
        """Files and bytes of a dataset (ignored files aside), and how many failed or were quarantined."""
        files, size, failed, quarantined = self._rows(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), COALESCE(SUM(state = 'failed'), 0),"
            " COALESCE(SUM(state = 'failed' AND quarantined = 1), 0) FROM files"
            " WHERE dataset_id = ? AND state != 'ignored'",
            (dataset_id,),
        )[0]
        return DatasetTotals(int(files), int(size), int(failed), int(quarantined))

    def dataset_delivery_progress(self, dataset_id: int) -> list[DeliveryProgress]:
        """Per destination and state: deliveries of the dataset and their durable bytes."""
        return [
            DeliveryProgress(str(destination), str(state), int(count), int(done or 0))
            for destination, state, count, done in self._rows(
                "SELECT destination, state, COUNT(*), SUM(CASE WHEN state = 'verified' THEN size_bytes"
                " ELSE offset_bytes END) FROM current_deliveries WHERE dataset_id = ? GROUP BY destination, state",
                (dataset_id,),
            )
        ]

    def dataset_unfinished_offsets(self, dataset_id: int) -> list[tuple[str, int, int]]:
        """(destination, file id, durable offset) of the dataset's deliveries still to finish."""
        return [
            (str(destination), int(file_id), int(offset))
            for destination, file_id, offset in self._rows(
                # CROSS JOIN keeps SQLite on the dataset's files, not on every pending delivery.
                "SELECT d.destination, d.file_id, d.offset_bytes FROM files f CROSS JOIN deliveries d"
                " ON d.file_id = f.id AND f.version = d.version WHERE f.dataset_id = ?"
                " AND d.state IN ('pending', 'sending')",
                (dataset_id,),
            )
        ]

    def dataset_files_done(self, dataset_id: int) -> int:
        """Hashed files of the dataset verified at every destination they go to."""
        # MIN over no deliveries is NULL: a file going nowhere is not done. One look-up per file.
        return self._count(
            "SELECT COUNT(*) FROM files f WHERE f.dataset_id = ? AND f.state = 'hashed'"
            " AND (SELECT MIN(d.state = 'verified') FROM deliveries d WHERE d.file_id = f.id"
            " AND d.version = f.version) = 1",
            (dataset_id,),
        )

    def dataset_commits(self, dataset_id: int) -> list[CommitRow]:
        return [
            CommitRow(str(destination), int(revision), str(state), at)
            for destination, revision, state, at in self._rows(
                "SELECT destination, revision, state, committed_at FROM commits WHERE dataset_id = ?", (dataset_id,)
            )
        ]

    # ----- destinations, errors, counters ------------------------------------------------

    def destinations(self, *, paused_only: bool = False) -> list[DestinationRow]:
        sql = (
            "SELECT name, state, reason, next_retry_at FROM destinations WHERE state = 'paused' ORDER BY name"
            if paused_only
            else "SELECT name, state, reason, next_retry_at FROM destinations ORDER BY name"
        )
        return [
            DestinationRow(str(name), str(state), reason, next_retry)
            for name, state, reason, next_retry in self._rows(sql)
        ]

    def recent_errors(self, limit: int) -> list[ErrorRow]:
        return [
            ErrorRow(float(at), str(kind), path, destination, str(message))
            for at, kind, path, destination, message in self._rows(
                "SELECT at, kind, path, destination, message FROM errors ORDER BY id DESC LIMIT ?", (limit,)
            )
        ]

    def counters(self, prefix: str) -> dict[str, int]:
        """Monotonic counters kept beside the facts (``delivered_files.NAME``, ``failures.KIND``)."""
        return {key: int(value) for key, value in self.facts().items() if key.startswith(prefix)}
