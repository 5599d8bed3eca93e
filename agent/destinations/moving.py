"""How bytes move, written once for every transport.

- ``checked_source``: the source file opened without following links, its identity
  checked before the first byte is read and again after the last (a file that changed or
  vanished meanwhile raises ``SourceChangedError`` / ``SourceVanishedError``).
- ``pump``: the checkpointed copy loop: every chunk reported as progress, the copy made
  durable and its offset checkpointed every *checkpoint_bytes* and before a requested stop.
- ``UncommitOnce``: a committed bag's manifests removed once before the bag changes.
- ``staging_stem`` and ``login_hint``: the staging names and the credential hint all
  transports use.

Retry policy (docs/architecture.md): a transport retries one request a few times (HTTP:
``destinations.http``; S3: botocore's standard mode; SFTP: one fresh connection); the
worker owns pausing the destination and backing off.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agent.destinations.base import PayloadItem, TransferControl
from agent.errors import StopRequested
from agent.pipeline.hashing import check_identity, open_source


@contextmanager
def checked_source(item: PayloadItem) -> Iterator[int]:
    """The source's descriptor, its identity checked before and (on success) after the block."""
    source = open_source(item.source_path, follow_symlinks=item.follow_symlinks, expected=item.identity)
    try:
        yield source
        check_identity(item.source_path, source, item.identity, follow_symlinks=item.follow_symlinks)
    finally:
        os.close(source)


def pump(
    read_next: Callable[[], bytes | memoryview],
    write: Callable[[bytes | memoryview], object],
    offset: int,
    control: TransferControl,
    *,
    checkpoint_bytes: int,
    make_durable: Callable[[], object],
) -> int:
    """Copy chunks until *read_next* returns none; the offset reached.

    Every *checkpoint_bytes* (and when the engine asks to stop) the copy is made durable
    and its offset checkpointed; a requested stop then raises ``StopRequested``.
    """
    since_checkpoint = 0
    while chunk := read_next():
        write(chunk)
        offset += len(chunk)
        since_checkpoint += len(chunk)
        control.progress(len(chunk))
        if since_checkpoint >= checkpoint_bytes or control.should_stop():
            make_durable()
            control.checkpoint(offset)
            since_checkpoint = 0
            if control.should_stop():
                raise StopRequested
    return offset


def staging_stem(item: PayloadItem) -> str:
    """A staging name for one file version at one place in one bag (never resumed for another)."""
    key = f"{item.bag_path}\0{item.path_in_dataset}\0{item.sha256}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:32]


def login_hint(credential: str | None, otherwise: str = "configure a credential") -> str:
    """What to do about rejected credentials."""
    return f"run `harvest login {credential}`" if credential else otherwise


class UncommitOnce:
    """Removes a committed bag's manifests before the bag first changes, once per bag.

    *remove_markers* deletes the manifests of one bag. A commit writes them again and calls
    ``committed`` so that the next change removes them anew. Thread-safe (parallel senders).
    """

    def __init__(self, remove_markers: Callable[[str], None]) -> None:
        self._remove_markers = remove_markers
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def before_change(self, bag: str) -> None:
        with self._lock:
            if bag in self._done:
                return
            self._remove_markers(bag)
            self._done.add(bag)

    def before_commit(self, bag: str) -> None:
        """A commit rewrites the manifests: remove the old ones first, whatever happened since."""
        with self._lock:
            self._done.discard(bag)
        self.before_change(bag)
        self.committed(bag)

    def committed(self, bag: str) -> None:
        with self._lock:
            self._done.discard(bag)

    def forget_all(self) -> None:
        with self._lock:
            self._done.clear()
