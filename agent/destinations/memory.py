"""An in-memory destination: the transport contract with nothing behind it but a dict.

For tests of the engine and its workers (as httpx ships a mock transport): it keeps what
it received, in the order it received it, verifies each copy's SHA-256 like a real
transport, and can be made unavailable (``available = False``: every request raises
``TransientError``) or to refuse credentials (``refuse_credentials``). Not configurable
in YAML: a facility never archives to memory.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.destinations.base import Delivered, DestinationTransport, PayloadItem, SelfTest, TransferControl
from agent.destinations.moving import UncommitOnce, checked_source, pump
from agent.errors import AuthError, ItemError, TransientError
from agent.package.bagit import COMMIT_MARKERS
from agent.package.sidecar import DatasetPackage
from agent.pipeline.hashing import stream_chunks

CHUNK_BYTES = 1 << 20


@dataclass
class MemoryTransport(DestinationTransport):
    name: str
    available: bool = True
    refuse_credentials: bool = False
    checkpoint_bytes: int = 4 << 20
    objects: dict[str, bytes] = field(default_factory=dict)
    #: Every write, in order: ("put", key) for a file, ("commit", bag path) for a package.
    log: list[tuple[str, str]] = field(default_factory=list)
    syncs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._uncommits = UncommitOnce(self._remove_markers)

    def _check(self, what: str) -> None:
        if self.refuse_credentials:
            raise AuthError(f"credentials rejected for {self.name}: {what}")
        if not self.available:
            raise TransientError(f"{self.name}: {what}: unavailable")

    def probe(self) -> None:
        self._check("probe")

    def deliver(self, item: PayloadItem, control: TransferControl) -> Delivered:
        self._check(f"write {item.remote_key}")
        if hashlib.sha256(self.objects.get(item.remote_key, b"")).hexdigest() == item.sha256:
            return Delivered(item.remote_key, skipped=True, verified_by="in memory (sha256)")
        self._uncommits.before_change(item.bag_path)
        copy = bytearray()
        with checked_source(item) as source:
            control.started(item.remote_key, None)
            read_next = stream_chunks(source, item.identity.size_bytes, 0, CHUNK_BYTES)
            pump(read_next, copy.extend, 0, control, checkpoint_bytes=self.checkpoint_bytes, make_durable=lambda: None)
        if hashlib.sha256(copy).hexdigest() != item.sha256:
            raise ItemError(f"{self.name}: verification failed for {item.remote_key}")
        with self._lock:
            self.objects[item.remote_key] = bytes(copy)
            self.log.append(("put", item.remote_key))
        return Delivered(item.remote_key, skipped=False, verified_by="in memory (sha256)")

    def _remove_markers(self, bag_path: str) -> None:
        with self._lock:
            for name in COMMIT_MARKERS:
                self.objects.pop(f"{bag_path}/{name}", None)

    def sync(self) -> None:
        self.syncs += 1

    def commit(self, package: DatasetPackage) -> dict[str, Any] | None:
        self._check(f"commit {package.bag_path}")
        self._uncommits.before_commit(package.bag_path)
        with self._lock:
            for tag_file in package.tag_files:
                self.objects[f"{package.bag_path}/{tag_file.name}"] = tag_file.content
            self.log.append(("commit", package.bag_path))
        return None

    def self_test(self, scope: str) -> SelfTest:
        self._check("self test")
        return SelfTest("kept a probe in memory")
