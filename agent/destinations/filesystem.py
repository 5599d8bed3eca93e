"""Filesystem destination: a local folder or a mounted archive share (SMB/NFS).

Each file is copied into a staging ``.partial`` file, checkpointed (fdatasync, then the
durable offset is journalled) every ``checkpoint_bytes`` so that a crash resumes from
the last checkpoint, verified by re-reading the copy and comparing SHA-256, and only
then renamed to its final name inside the bag. The staging folder sits on the same
filesystem as the bags, so the rename is atomic, and outside the bags, so a 255-byte
file name never becomes too long and a half-copied file is never inside a bag.

Holes in a sparse source stay holes in the copy (``agent.pipeline.sparse``): only its data
ranges are read and written, and the copy is verified the same way.

The destination root must already exist: an unmounted share must never be replaced
by a folder filling the instrument PC's own disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat as stat_module
import sys
import uuid
from pathlib import Path
from typing import Any

from agent.config.models import FilesystemDestination
from agent.destinations.base import (
    PROBE_BYTES,
    READ_BACK,
    Delivered,
    DestinationTransport,
    PayloadItem,
    SelfTest,
    TransferControl,
)
from agent.destinations.moving import UncommitOnce, checked_source, pump, staging_stem
from agent.errors import ItemError, TransientError
from agent.package.bagit import COMMIT_MARKERS
from agent.package.sidecar import DatasetPackage
from agent.pipeline.hashing import sha256_of_descriptor, stream_chunks
from agent.pipeline.sparse import data_ranges

STAGING_FOLDER = ".harvest-partial"
COPY_CHUNK_BYTES = 4 << 20
_ITEM_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.EISDIR, errno.ENOTDIR, errno.EFBIG}


def _sha256_of(path: Path | str, size_bytes: int) -> str:
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return _sha256_of_open(descriptor, size_bytes)
    finally:
        os.close(descriptor)


def _sha256_of_open(descriptor: int, size_bytes: int) -> str:
    if os.fstat(descriptor).st_size != size_bytes:
        return "size differs"
    return sha256_of_descriptor(descriptor, size_bytes)


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
        self.file_mode = config.file_mode
        self._unsynced: list[Path] = []
        self._root = str(config.path)
        self._staging_ready = False
        self._folders_made: set[str] = set()
        self._uncommits = UncommitOnce(self._remove_markers)

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

    def self_test(self, scope: str) -> SelfTest:
        self.probe()
        probe_path = self.root_path / STAGING_FOLDER / f"doctor-{uuid.uuid4().hex}"
        try:
            probe_path.write_bytes(PROBE_BYTES)
            try:
                if probe_path.read_bytes() != PROBE_BYTES:
                    raise ItemError(f"{self.name}: the probe file read back differently")
                server_time = probe_path.stat().st_mtime  # set by the file server's clock on a share
            finally:
                probe_path.unlink()
        except OSError as error:
            raise self._translate(error, f"write, read and delete in {self.root_path}") from None
        return SelfTest(f"wrote, read back and deleted a probe in {self.root_path}", server_time)

    def _staging_path(self, item: PayloadItem) -> Path:
        return self.root_path / STAGING_FOLDER / (staging_stem(item) + ".partial")

    def deliver(self, item: PayloadItem, control: TransferControl) -> Delivered:
        # Plain string paths and cached folder creation on this hot path: for a
        # 10,000-file session, pathlib and repeated mkdir calls cost more than the copy.
        if not os.path.isdir(self._root):
            raise TransientError(
                f"{self.name}: destination folder {self.root_path} does not exist (is the share mounted?)"
            )
        bag_path = os.path.join(self._root, item.bag_path)
        final_path = os.path.join(bag_path, "data", item.path_in_dataset)
        remote_key = item.remote_key
        try:
            self._uncommits.before_change(bag_path)
            if self._already_there(final_path, item):
                return Delivered(remote_key, skipped=True, verified_by=READ_BACK)
            staging_path = self._staging_path(item)
            if not self._staging_ready:
                staging_path.parent.mkdir(exist_ok=True)
                self._staging_ready = True
            try:
                self._copy(item, staging_path, remote_key, control)
            except ItemError:  # also a source that changed or vanished mid-copy
                # This partial copy (named by the version's SHA-256) will never be resumed.
                with contextlib.suppress(OSError):
                    staging_path.unlink()
                raise
            folder = os.path.dirname(final_path)
            if folder not in self._folders_made:
                os.makedirs(folder, exist_ok=True)
                self._folders_made.add(folder)
            os.replace(staging_path, final_path)
        except OSError as error:
            self._staging_ready = False
            self._folders_made.clear()
            raise self._translate(error, f"write {remote_key}") from None
        self._unsynced.append(Path(final_path))
        return Delivered(remote_key, skipped=False, verified_by=READ_BACK)

    def abandon(self, state: dict[str, Any]) -> None:
        """Remove the partial copy of a superseded file version."""
        name = str(state.get("staging") or "")
        if name.endswith(".partial") and "/" not in name and "\\" not in name:
            with contextlib.suppress(FileNotFoundError):
                (self.root_path / STAGING_FOLDER / name).unlink()

    @staticmethod
    def _already_there(final_path: str, item: PayloadItem) -> bool:
        """Idempotency: the exact bytes are already at their final name (e.g. after a crash)."""
        try:
            if os.stat(final_path).st_size != item.identity.size_bytes:
                return False
        except FileNotFoundError:
            return False
        return _sha256_of(final_path, item.identity.size_bytes) == item.sha256

    @staticmethod
    def _remove_markers(bag_path: str) -> None:
        """Before a bag changes, remove its manifests: it is no longer complete."""
        for name in COMMIT_MARKERS:
            marker = os.path.join(bag_path, name)
            if os.path.exists(marker):
                os.unlink(marker)
                _fsync_folder(Path(bag_path))

    def _copy(self, item: PayloadItem, staging_path: Path, remote_key: str, control: TransferControl) -> None:
        offset = 0
        if item.resume_offset_bytes:
            # Resume from the last durable offset; anything the file holds beyond it
            # may not have reached stable storage before the crash, so it is cut off.
            with contextlib.suppress(FileNotFoundError):
                offset = min(item.resume_offset_bytes, staging_path.stat().st_size)
        control.started(remote_key, offset if offset > 0 else None)
        if item.identity.size_bytes >= self.checkpoint_bytes and not item.resume_state:
            # A copy that may be resumed is also one that may be superseded: journalled so
            # that a newer version of the file removes it (abandon), never left behind.
            control.save_state({"staging": staging_path.name})
        with checked_source(item) as source:
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | (0 if offset else os.O_TRUNC)
            # The configured mode, never wider than the source's: a 0600 file stays private.
            mode = self.file_mode & stat_module.S_IMODE(os.fstat(source).st_mode)
            target = os.open(staging_path, flags, mode)
            if hasattr(os, "fchmod"):
                os.fchmod(target, mode)  # exact, whatever the umask or an earlier partial had
            try:
                if offset:
                    os.ftruncate(target, offset)
                offset = self._copy_ranges(source, target, offset, item.identity.size_bytes, control)
                if offset > self.checkpoint_bytes:
                    # Large files are made durable on their own; small ones are flushed
                    # together by sync() before the journal records them as verified.
                    os.fsync(target)
                # Read back through the copy's own descriptor: what the file now holds.
                copied_sha256 = _sha256_of_open(target, item.identity.size_bytes)
            finally:
                os.close(target)
        if offset != item.identity.size_bytes:
            raise ItemError(f"{item.source_path}: copied {offset} bytes, expected {item.identity.size_bytes}")
        if copied_sha256 != item.sha256:
            staging_path.unlink()
            raise ItemError(
                f"{self.name}: verification failed for {remote_key} (SHA-256 of the copy differs); will copy again"
            )

    def _copy_ranges(self, source: int, target: int, offset: int, size: int, control: TransferControl) -> int:
        """Copy *source* from *offset* to *size*, leaving its holes as holes; the offset reached."""

        def write(chunk: bytes | memoryview) -> None:
            written = 0
            while written < len(chunk):
                written += os.write(target, chunk[written:])

        # A hole in a small file is not worth two seeks per file: its zeros are copied.
        ranges = data_ranges(source, offset, size) if size - offset > COPY_CHUNK_BYTES else [(offset, size)]
        for first, stop in ranges:
            if first > offset:  # a hole in the source stays a hole in the copy
                os.ftruncate(target, first)
                control.progress(first - offset)
                offset = first
            os.lseek(target, first, os.SEEK_SET)
            read_next = stream_chunks(source, stop, first, COPY_CHUNK_BYTES)
            offset = pump(
                read_next, write, offset, control,
                checkpoint_bytes=self.checkpoint_bytes, make_durable=lambda: os.fsync(target),
            )  # fmt: skip
            if offset < stop:  # the source ended early: it shrank while being copied
                return offset
        if offset < size:  # a hole up to the end
            os.ftruncate(target, size)
            control.progress(size - offset)
            offset = size
        return offset

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
            self._uncommits.before_commit(str(bag_path))
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
