"""The one destination interface that every transport implements.

A transport owns how bytes reach its archive; the engine owns *when* and records the
outcome in the journal. A transport raises only the agent's own errors: ``ItemError``
for one file, ``TransientError`` when the archive is unreachable or full, ``AuthError``
when it refuses the credentials.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.journal.store import FileIdentity
from agent.package.sidecar import DatasetPackage


@dataclass(frozen=True)
class PayloadItem:
    """One file version to deliver into a dataset's bag."""

    source_path: Path
    identity: FileIdentity
    sha256: str
    bag_path: str
    path_in_dataset: str
    resume_offset_bytes: int
    follow_symlinks: bool = False
    resume_state: dict[str, Any] | None = None
    instrument_id: str = ""
    dataset_key: str = ""

    @property
    def remote_key(self) -> str:
        """Where the file goes, relative to the destination's root: inside its bag's payload."""
        return f"{self.bag_path}/data/{self.path_in_dataset}"


class TransferControl(Protocol):
    """How a transport reports progress to, and takes orders from, the engine."""

    def started(self, remote_key: str, resumed_from_bytes: int | None) -> None:
        """Called once, before the first byte is written (records intent)."""

    def save_state(self, state: dict[str, Any] | None) -> None:
        """Durably record what is needed to resume this upload (before relying on it)."""

    def checkpoint(self, offset_bytes: int) -> None:
        """Everything before *offset_bytes* is durable at the destination."""

    def progress(self, sent_bytes: int) -> None:
        """*sent_bytes* more bytes were sent; may block to honour a bandwidth limit."""

    def should_stop(self) -> bool:
        """True when the agent is shutting down: stop at the next checkpoint."""


@dataclass(frozen=True)
class SelfTest:
    """What `harvest doctor` learnt by writing, reading back and deleting a probe object."""

    detail: str
    server_time: float | None = None  # the server's clock (Date header or a file's mtime), for skew


PROBE_BYTES = b"harvest-agent doctor probe: safe to delete\n"
READ_BACK = "read back (sha256)"  # Delivered.verified_by: the copy was read again and hashed


@dataclass(frozen=True)
class Delivered:
    remote_key: str
    skipped: bool  # the destination already held these exact bytes
    #: How the bytes at the destination were checked ("server sha256sum", "read back", ...).
    verified_by: str | None = None


class DestinationTransport(ABC):
    """A place datasets are archived to."""

    name: str
    #: Small files (no journal writes while in flight) this transport can send at once.
    parallel_small_files: int = 1
    #: What the transport's inner retries are doing right now ("PATCH: ReadTimeout, attempt 2"),
    #: None when the last request succeeded: shown in status so a stall is never invisible.
    retry_note: str | None = None
    #: No request before this moment (time.monotonic): the server's last Retry-After.
    not_before: float = 0.0

    def hold_off(self, seconds: float | None) -> None:
        """The server asked for a pause (Retry-After): no request of this transport before it ends."""
        if seconds:
            self.not_before = max(self.not_before, time.monotonic() + seconds)

    def wait_turn(self) -> None:
        """Sleep until the server's Retry-After has passed (called before every request)."""
        delay = self.not_before - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    @abstractmethod
    def probe(self) -> None:
        """Raise ``TransientError`` / ``AuthError`` unless the destination is usable now."""

    @abstractmethod
    def deliver(self, item: PayloadItem, control: TransferControl) -> Delivered:
        """Copy one file, verify it, and make it visible under its final name."""

    @abstractmethod
    def sync(self) -> None:
        """Make every delivery since the last call durable (called before journalling them)."""

    @abstractmethod
    def commit(self, package: DatasetPackage) -> dict[str, Any] | None:
        """Write the package's tag files, manifests last: the bag is then complete.

        May return what to remember of this commit (tus: its tag-file uploads), so that a
        later revision's commit can have the superseded ones terminated (``abandon``).
        """

    @abstractmethod
    def self_test(self, scope: str) -> SelfTest:
        """Write a small probe object under *scope*, read it back, delete it (`harvest doctor`)."""

    def abort_orphans(self, known_states: list[dict[str, Any]], scope: str) -> int:
        """Terminate unfinished uploads under *scope* (this instrument's folder) that the
        journal does not know: left when the agent crashed between creating an upload and
        journalling it. Returns how many were terminated (default: cannot list them)."""
        return 0

    def abandon(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Terminate an unfinished upload a newer file version superseded (default: nothing)."""
