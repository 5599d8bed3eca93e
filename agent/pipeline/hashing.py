"""Hash stage: SHA-256 of a source file, streamed from the bytes actually read.

The file's identity (dev, ino, size, mtime_ns) is checked before reading, after
reading on the open descriptor, and again by path, as borg does: a file rewritten,
appended to or replaced while we read it raises ``SourceChangedError`` and is
re-queued to settle again, so a mix of old and new bytes never gets a checksum.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_module
import threading
from collections.abc import Callable
from pathlib import Path

from agent.errors import ItemError, SourceChangedError, SourceVanishedError, StopRequested
from agent.journal.store import FileIdentity

READ_CHUNK_BYTES = 1 << 20
# O_NONBLOCK: a file swapped for a named pipe (or a device) between settling and reading
# must not block the open; fstat then shows it is no regular file.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def identity_of(stat_result: os.stat_result) -> FileIdentity:
    return FileIdentity(
        dev=stat_result.st_dev,
        ino=stat_result.st_ino,
        size_bytes=stat_result.st_size,
        mtime_ns=stat_result.st_mtime_ns,
    )


def open_source(path: Path, *, follow_symlinks: bool = False, expected: FileIdentity | None = None) -> int:
    """Open a source file read-only, translating OS errors into item errors.

    With *expected*, the opened file must be that version (the check before reading, on the
    same ``fstat`` that proves it a regular file): ``SourceChangedError`` otherwise.
    """
    flags = _OPEN_FLAGS if not follow_symlinks else _OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise SourceVanishedError(f"{path}: vanished before it could be read") from None
    except PermissionError:
        raise ItemError(f"{path}: permission denied (the agent's user cannot read it)") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ItemError(f"{path}: is a symbolic link, which this root does not follow") from None
        raise ItemError(f"{path}: cannot open: {error.strerror}") from None
    try:
        opened = os.fstat(descriptor)
    except OSError as error:
        os.close(descriptor)
        raise ItemError(f"{path}: cannot read file information: {error.strerror}") from None
    if not stat_module.S_ISREG(opened.st_mode):
        os.close(descriptor)
        raise ItemError(f"{path}: is no longer a regular file (replaced by a named pipe, device or folder); skipped")
    if expected is not None and identity_of(opened) != expected:
        os.close(descriptor)
        raise SourceChangedError(f"{path}: changed before reading; it will be read again once it settles")
    return descriptor


def check_identity(path: Path, descriptor: int, expected: FileIdentity, *, follow_symlinks: bool = False) -> None:
    """After reading: raise ``SourceChangedError`` unless the open file and the path still
    match *expected* (the check before reading is ``open_source``'s).

    The path is checked too, so a file replaced by a rename is caught. Where the root
    follows symbolic links, the path is checked by its target (a link's own identity never
    matches the file it names).
    """
    try:
        by_descriptor = identity_of(os.fstat(descriptor))
        by_path = identity_of(path.stat(follow_symlinks=follow_symlinks))
    except FileNotFoundError:
        raise SourceVanishedError(f"{path}: vanished while reading") from None
    if by_descriptor != expected or by_path != expected:
        raise SourceChangedError(f"{path}: changed while reading; it will be read again once it settles")


_SEEK_AND_READ = threading.Lock()  # where there is no pread, a descriptor's offset is shared


def read_at(descriptor: int, length: int, offset: int) -> bytes:
    """Up to *length* bytes at *offset*, safe from several threads on one descriptor."""
    if hasattr(os, "pread"):
        return os.pread(descriptor, length, offset)
    with _SEEK_AND_READ:  # Windows
        os.lseek(descriptor, offset, os.SEEK_SET)
        return os.read(descriptor, length)


def stream_chunks(
    descriptor: int, size_bytes: int, start_bytes: int = 0, chunk_bytes: int = READ_CHUNK_BYTES
) -> Callable[[], memoryview]:
    """Return a reader of successive chunks from *start_bytes* up to *size_bytes*.

    Reading stops at the expected size even if a writer keeps appending: the identity
    check after reading then reports the change (an endless append must not mean an
    endless read).
    """
    remaining = size_bytes - start_bytes
    # A small file gets a small buffer: zeroing megabytes per file would dominate
    # the cost of a 10,000-file session.
    view = memoryview(bytearray(max(1, min(chunk_bytes, remaining))))
    position = start_bytes
    if hasattr(os, "preadv"):  # positioned reads into the buffer: no seek, no copy

        def read_next() -> memoryview:
            nonlocal remaining, position
            if remaining <= 0:
                return view[:0]
            count = os.preadv(descriptor, [view[: min(chunk_bytes, remaining)]], position)
            remaining -= count
            position += count
            return view[:count]

        return read_next

    def read_and_copy() -> memoryview:  # Windows: no positioned or vectored reads
        nonlocal remaining, position
        if remaining <= 0:
            return view[:0]
        data = read_at(descriptor, min(chunk_bytes, remaining), position)
        count = len(data)
        view[:count] = data
        remaining -= count
        position += count
        return view[:count]

    return read_and_copy


def sha256_of_descriptor(descriptor: int, size_bytes: int) -> str:
    """SHA-256 of the first *size_bytes* of an open file (used to verify copies)."""
    digest = hashlib.sha256()
    read_next = stream_chunks(descriptor, size_bytes)
    while chunk := read_next():
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(
    path: Path,
    expected: FileIdentity,
    *,
    follow_symlinks: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """SHA-256 of *path*, which must keep identity *expected* throughout the read."""
    descriptor = open_source(path, follow_symlinks=follow_symlinks, expected=expected)
    try:
        if hasattr(os, "posix_fadvise") and expected.size_bytes > READ_CHUNK_BYTES:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        digest = hashlib.sha256()
        read_next = stream_chunks(descriptor, expected.size_bytes)
        total_bytes = 0
        while chunk := read_next():
            digest.update(chunk)
            total_bytes += len(chunk)
            if should_stop():
                raise StopRequested
        if total_bytes != expected.size_bytes:
            raise SourceChangedError(
                f"{path}: changed while reading ({total_bytes} bytes read, {expected.size_bytes} expected);"
                " it will be read again once it settles"
            )
        check_identity(path, descriptor, expected, follow_symlinks=follow_symlinks)
        return digest.hexdigest()
    except OSError as error:
        raise ItemError(f"{path}: read failed: {error.strerror}") from None
    finally:
        os.close(descriptor)
