"""Filesystem destination: a local folder or a mounted archive share (SMB/NFS).

Each file is copied into a staging ``.partial`` file, checkpointed (fdatasync, then the
durable offset is journalled) every ``checkpoint_bytes`` so that a crash resumes from
the last checkpoint, verified by re-reading the copy and comparing SHA-256, and only
then renamed to its final name inside the bag. The staging folder sits on the same
filesystem as the bags, so the rename is atomic, and outside the bags, so a 255-byte
file name never becomes too long and a half-copied file is never inside a bag.

The destination root must already exist: an unmounted share must never be replaced
by a folder filling the instrument PC's own disk.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import sys
from pathlib import Path

from agent.config.models import FilesystemDestination
from agent.destinations.base import Delivered, DestinationTransport, PayloadItem, TransferControl
from agent.errors import ItemError, StopRequested, TransientError
from agent.hashing import check_identity, open_source, stream_chunks
from agent.package.bagit import COMMIT_MARKERS
from agent.package.sidecar import DatasetPackage

STAGING_FOLDER = ".harvest-partial"
COPY_CHUNK_BYTES = 4 << 20
_ITEM_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.EISDIR, errno.ENOTDIR, errno.EFBIG}


def _sha256_of(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _fsync_folder(path: Path) -> None:
    if sys.platform == "win32":  # folders cannot be opened for fsync on Windows
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _syncfs(path: Path) -> bool:
    """Flush the whole filesystem holding *path* in one call (Linux); False if unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return bool(libc.syncfs(descriptor) == 0)
    finally:
        os.close(descriptor)


class FilesystemTransport(DestinationTransport):
    def __init__(self, config: FilesystemDestination) -> None:
        self.name = config.name
        self.root_path = config.path
        self.checkpoint_bytes = config.checkpoint_bytes
        self._unsynced: list[Path] = []

    # The one place where OS errors at this destination become the agent's errors.
    def _translate(self, error: OSError, what: str) -> Exception:
        reason = error.strerror or str(error)
        if error.errno in _ITEM_ERRNOS:
            return ItemError(f"{self.name}: cannot {what}: {reason}")
        return TransientError(f"{self.name}: cannot {what}: {reason}")

    def probe(self) -> None:
        if not self.root_path.is_dir():
            raise TransientError(
                f"{self.name}: destination folder {self.root_path} does not exist (is the share mounted?)"
            )
        probe_path = self.root_path / STAGING_FOLDER / f"probe-{os.getpid()}"
        try:
            probe_path.parent.mkdir(exist_ok=True)
            probe_path.write_bytes(b"harvest-agent probe\n")
            probe_path.unlink()
        except OSError as error:
            raise self._translate(error, f"write to {self.root_path}") from None

    def _staging_path(self, item: PayloadItem) -> Path:
        key = f"{item.bag_path}\0{item.path_in_dataset}\0{item.sha256}".encode("utf-8", "surrogateescape")
        return self.root_path / STAGING_FOLDER / (hashlib.sha256(key).hexdigest()[:32] + ".partial")

    def deliver(self, item: PayloadItem, control: TransferControl) -> Delivered:
        if not self.root_path.is_dir():
            raise TransientError(
                f"{self.name}: destination folder {self.root_path} does not exist (is the share mounted?)"
            )
        bag_path = self.root_path / item.bag_path
        final_path = bag_path / "data" / item.path_in_dataset
        remote_key = f"{item.bag_path}/data/{item.path_in_dataset}"
        try:
            self._uncommit(bag_path)
            if (
                final_path.is_file()
                and final_path.stat().st_size == item.identity.size_bytes
                and _sha256_of(final_path) == item.sha256
            ):
                return Delivered(remote_key, skipped=True)
            staging_path = self._staging_path(item)
            staging_path.parent.mkdir(exist_ok=True)
            self._copy(item, staging_path, remote_key, control)
            final_path.parent.mkdir(parents=True, exist_ok=True)
            staging_path.replace(final_path)
        except OSError as error:
            raise self._translate(error, f"write {remote_key}") from None
        self._unsynced.append(final_path)
        return Delivered(remote_key, skipped=False)

    def _uncommit(self, bag_path: Path) -> None:
        """Before a bag changes, remove its manifests: it is no longer complete."""
        for name in COMMIT_MARKERS:
            marker = bag_path / name
            if marker.exists():
                marker.unlink()
                _fsync_folder(bag_path)

    def _copy(self, item: PayloadItem, staging_path: Path, remote_key: str, control: TransferControl) -> None:
        offset = 0
        if staging_path.exists():
            # Resume from the last durable offset; anything the file holds beyond it
            # may not have reached stable storage before the crash, so it is cut off.
            offset = min(item.resume_offset_bytes, staging_path.stat().st_size)
        control.started(remote_key, offset if offset > 0 else None)
        source = open_source(item.source_path, follow_symlinks=item.follow_symlinks)
        try:
            check_identity(item.source_path, source, item.identity, "before")
            with staging_path.open("r+b" if offset else "wb") as target:
                if offset:
                    target.truncate(offset)
                    target.seek(offset)
                read_next = stream_chunks(source, item.identity.size_bytes, offset, COPY_CHUNK_BYTES)
                since_checkpoint = 0
                while chunk := read_next():
                    target.write(chunk)
                    offset += len(chunk)
                    since_checkpoint += len(chunk)
                    control.progress(len(chunk))
                    if since_checkpoint >= self.checkpoint_bytes or control.should_stop():
                        target.flush()
                        os.fsync(target.fileno())
                        control.checkpoint(offset)
                        since_checkpoint = 0
                        if control.should_stop():
                            raise StopRequested
                if offset > self.checkpoint_bytes:
                    # Large files are made durable on their own; small ones are flushed
                    # together by sync() before the journal records them as verified.
                    target.flush()
                    os.fsync(target.fileno())
            check_identity(item.source_path, source, item.identity, "while")
        finally:
            os.close(source)
        if offset != item.identity.size_bytes:
            raise ItemError(f"{item.source_path}: copied {offset} bytes, expected {item.identity.size_bytes}")
        copied_sha256 = _sha256_of(staging_path)
        if copied_sha256 != item.sha256:
            staging_path.unlink()
            raise ItemError(
                f"{self.name}: verification failed for {remote_key} (SHA-256 of the copy differs); will copy again"
            )

    def sync(self) -> None:
        files = self._unsynced
        self._unsynced = []
        if not files:
            return
        try:
            if not _syncfs(self.root_path):
                for file_path in files:
                    with file_path.open("rb+") as stream:
                        os.fsync(stream.fileno())
                for folder in {file_path.parent for file_path in files}:
                    _fsync_folder(folder)
        except OSError as error:
            raise self._translate(error, "flush to stable storage") from None

    def commit(self, package: DatasetPackage) -> None:
        bag_path = self.root_path / package.bag_path
        try:
            (bag_path / "data").mkdir(parents=True, exist_ok=True)
            self._uncommit(bag_path)
            for tag_file in package.tag_files:
                temporary_path = bag_path / f".harvest-{tag_file.name}.tmp"
                with temporary_path.open("wb") as stream:
                    stream.write(tag_file.content)
                    stream.flush()
                    os.fsync(stream.fileno())
                temporary_path.replace(bag_path / tag_file.name)
            _fsync_folder(bag_path)
        except OSError as error:
            raise self._translate(error, f"write the package of {package.bag_path}") from None
