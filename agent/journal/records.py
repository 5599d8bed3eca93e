"""Typed rows of the journal: what its queries return and its writers take.

Kept apart from ``agent.journal.store`` (which re-exports them) so that the journal module
holds the SQL and this one the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.journal.schema import DatasetState, DeliveryState, FileState


@dataclass(frozen=True)
class FileIdentity:
    """What makes one version of a file: any change means new bytes may be inside."""

    dev: int
    ino: int
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class FileRecord:
    id: int
    dataset_id: int | None
    root: str
    rel_path: str
    path_in_dataset: str | None
    identity: FileIdentity
    version: int
    state: FileState
    sha256: str | None
    archive_path: str | None = None  # the file's name in the bag (agent.package.names)

    @property
    def bag_name(self) -> str:
        """Where the file lies under the bag's ``data/`` (journals before v5 kept the source name)."""
        return self.archive_path or self.path_in_dataset or self.rel_path


@dataclass(frozen=True)
class DeliveryRecord:
    file: FileRecord
    destination: str
    version: int
    state: DeliveryState
    offset_bytes: int
    dataset_key: str
    remote_state: dict[str, Any] | None = None
    archive_key: str | None = None  # the dataset's folder at the archive (agent.package.names)


@dataclass(frozen=True)
class DatasetRecord:
    id: int
    root: str
    dataset_key: str
    fields: dict[str, str]
    state: DatasetState
    revision: int
    opened_at: float
    closed_at: float | None
    close_reason: str | None
    archive_key: str | None = None


@dataclass
class RetryOutcome:
    files: list[tuple[str, str]] = field(default_factory=list)  # (root, rel_path) to settle again
    deliveries: int = 0
    still_missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SettledFile:
    """A file that passed the settle stage, with its dataset placement (if any)."""

    root: str
    rel_path: str
    identity: FileIdentity
    dataset_key: str | None
    dataset_fields: dict[str, str]
    path_in_dataset: str | None


FILE_COLUMNS = (
    "f.id, f.dataset_id, f.root, f.rel_path, f.path_in_dataset, f.dev, f.ino, f.size_bytes,"
    " f.mtime_ns, f.version, f.state, f.sha256, f.archive_path"
)
FILE_COLUMN_COUNT = 13


def file_from_row(row: Sequence[Any]) -> FileRecord:
    return FileRecord(
        id=int(row[0]),
        dataset_id=row[1],
        root=str(row[2]),
        rel_path=str(row[3]),
        path_in_dataset=row[4],
        identity=FileIdentity(*(int(value) for value in row[5:9])),
        version=int(row[9]),
        state=FileState(row[10]),
        sha256=row[11],
        archive_path=row[12],
    )
