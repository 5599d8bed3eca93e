from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.config.models import FilesystemDestination
from agent.destinations.base import PayloadItem
from agent.destinations.filesystem import STAGING_FOLDER, FilesystemTransport
from agent.errors import ItemError, SourceChangedError, StopRequested, TransientError
from agent.package.bagit import TagFile
from agent.package.sidecar import DatasetPackage
from agent.pipeline.hashing import identity_of

MIB = 1 << 20


@dataclass
class RecordingControl:
    stop_after_bytes: int | None = None
    started_calls: list[tuple[str, int | None]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    sent_bytes: int = 0

    def started(self, remote_key: str, resumed_from_bytes: int | None) -> None:
        self.started_calls.append((remote_key, resumed_from_bytes))

    def checkpoint(self, offset_bytes: int) -> None:
        self.checkpoints.append(offset_bytes)

    def save_state(self, state: dict[str, Any] | None) -> None:
        """The filesystem transport resumes from an offset alone; nothing else to keep."""

    def progress(self, sent_bytes: int) -> None:
        self.sent_bytes += sent_bytes

    def should_stop(self) -> bool:
        return self.stop_after_bytes is not None and self.sent_bytes >= self.stop_after_bytes


def make(tmp_path: Path, size: int) -> tuple[FilesystemTransport, PayloadItem, bytes]:
    archive = tmp_path / "archive"
    archive.mkdir()
    source = tmp_path / "src.bin"
    data = os.urandom(size)
    source.write_bytes(data)
    transport = FilesystemTransport(
        FilesystemDestination(name="archive", type="filesystem", path=archive, checkpoint_bytes=4 * MIB)
    )
    item = PayloadItem(
        source_path=source,
        identity=identity_of(source.stat()),
        sha256=hashlib.sha256(data).hexdigest(),
        bag_path="FAC/alice/s1",
        path_in_dataset="sub/src.bin",
        resume_offset_bytes=0,
    )
    return transport, item, data


def test_deliver_copies_verifies_and_renames(tmp_path: Path) -> None:
    transport, item, data = make(tmp_path, 3 * MIB + 5)
    control = RecordingControl()
    delivered = transport.deliver(item, control)
    transport.sync()
    final = tmp_path / "archive/FAC/alice/s1/data/sub/src.bin"
    assert final.read_bytes() == data
    assert delivered.remote_key == "FAC/alice/s1/data/sub/src.bin" and not delivered.skipped
    assert control.started_calls == [("FAC/alice/s1/data/sub/src.bin", None)]
    assert list((tmp_path / "archive" / STAGING_FOLDER).iterdir()) == []


def test_identical_file_already_there_is_skipped(tmp_path: Path) -> None:
    transport, item, _ = make(tmp_path, 1000)
    transport.deliver(item, RecordingControl())
    control = RecordingControl()
    assert transport.deliver(item, control).skipped
    assert control.sent_bytes == 0


def test_interrupted_copy_resumes_from_durable_offset(tmp_path: Path) -> None:
    transport, item, data = make(tmp_path, 20 * MIB)
    first = RecordingControl(stop_after_bytes=9 * MIB)
    with pytest.raises(StopRequested):
        transport.deliver(item, first)
    durable = first.checkpoints[-1]
    assert durable >= 9 * MIB
    resumed_item = PayloadItem(**{**item.__dict__, "resume_offset_bytes": durable})
    second = RecordingControl()
    transport.deliver(resumed_item, second)
    assert second.started_calls[0][1] == durable
    assert second.sent_bytes == len(data) - durable
    assert (tmp_path / "archive/FAC/alice/s1/data/sub/src.bin").read_bytes() == data


def test_resume_never_trusts_bytes_beyond_the_journalled_offset(tmp_path: Path) -> None:
    transport, item, data = make(tmp_path, 10 * MIB)
    with pytest.raises(StopRequested):
        transport.deliver(item, RecordingControl(stop_after_bytes=8 * MIB))
    staging = next((tmp_path / "archive" / STAGING_FOLDER).iterdir())
    with staging.open("r+b") as stream:  # garbage after the durable offset, as after a power cut
        stream.seek(5 * MIB)
        stream.write(b"\xff" * MIB)
    resumed_item = PayloadItem(**{**item.__dict__, "resume_offset_bytes": 4 * MIB})
    transport.deliver(resumed_item, RecordingControl())
    assert (tmp_path / "archive/FAC/alice/s1/data/sub/src.bin").read_bytes() == data


def test_corrupt_prefix_fails_verification_and_is_discarded(tmp_path: Path) -> None:
    transport, item, _ = make(tmp_path, 10 * MIB)
    with pytest.raises(StopRequested):
        transport.deliver(item, RecordingControl(stop_after_bytes=8 * MIB))
    staging = next((tmp_path / "archive" / STAGING_FOLDER).iterdir())
    with staging.open("r+b") as stream:
        stream.write(b"corrupt")
    resumed_item = PayloadItem(**{**item.__dict__, "resume_offset_bytes": 8 * MIB})
    with pytest.raises(ItemError, match="verification failed"):
        transport.deliver(resumed_item, RecordingControl())
    assert not staging.exists()


def test_source_changed_during_copy(tmp_path: Path) -> None:
    transport, item, _ = make(tmp_path, 10 * MIB)

    class Appending(RecordingControl):
        def progress(self, sent_bytes: int) -> None:
            super().progress(sent_bytes)
            with item.source_path.open("ab") as stream:
                stream.write(b"late")

    with pytest.raises(SourceChangedError):
        transport.deliver(item, Appending())
    assert not (tmp_path / "archive/FAC/alice/s1/data/sub/src.bin").exists()


def test_missing_destination_root_is_transient_and_never_created(tmp_path: Path) -> None:
    transport, item, _ = make(tmp_path, 10)
    (tmp_path / "archive").rmdir()
    with pytest.raises(TransientError, match="is the share mounted"):
        transport.deliver(item, RecordingControl())
    with pytest.raises(TransientError):
        transport.probe()
    assert not (tmp_path / "archive").exists()


def test_commit_writes_manifests_last_and_delivery_uncommits(tmp_path: Path) -> None:
    transport, item, _ = make(tmp_path, 10)
    transport.deliver(item, RecordingControl())
    package = DatasetPackage(
        "FAC/alice/s1",
        1,
        [TagFile("bagit.txt", b"x"), TagFile("manifest-sha256.txt", b"m"), TagFile("tagmanifest-sha256.txt", b"t")],
    )
    transport.commit(package)
    bag = tmp_path / "archive/FAC/alice/s1"
    assert (bag / "tagmanifest-sha256.txt").read_bytes() == b"t"
    assert not list(bag.glob(".harvest-*"))
    other = PayloadItem(**{**item.__dict__, "path_in_dataset": "late.bin"})
    transport.deliver(other, RecordingControl())
    assert not (bag / "tagmanifest-sha256.txt").exists() and not (bag / "manifest-sha256.txt").exists()


def test_full_destination_is_transient(tmp_path: Path) -> None:
    transport, item, _ = make(tmp_path, 10 * MIB)
    staging = transport._staging_path(item)
    staging.parent.mkdir()
    staging.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    with pytest.raises(TransientError, match="No space left on device"):
        transport.deliver(item, RecordingControl())
    assert not (tmp_path / "archive/FAC/alice/s1/data/sub/src.bin").exists()


def test_modes_follow_the_config_never_the_umask_and_never_widen_the_source(tmp_path: Path) -> None:
    import stat

    from agent.journal.store import Journal

    old_umask = os.umask(0o000)  # the worst case: everything would be world-writable
    try:
        journal = Journal(tmp_path / "state")
        journal.set_facts({"x": "1"})
        assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
        for name in ("journal.sqlite3", "journal.sqlite3-wal"):
            assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600, name
        journal.close()
        private = tmp_path / "private.raw"
        private.write_bytes(b"secret acquisition")
        private.chmod(0o600)
        shared = tmp_path / "shared.raw"
        shared.write_bytes(b"open acquisition")
        shared.chmod(0o644)
        archive = tmp_path / "archive"
        archive.mkdir()
        transport = FilesystemTransport(FilesystemDestination(name="a", type="filesystem", path=archive))
        for source in (private, shared):
            item = PayloadItem(
                source_path=source, identity=identity_of(source.stat()),
                sha256=hashlib.sha256(source.read_bytes()).hexdigest(), bag_path="FAC/alice/s1",
                path_in_dataset=source.name, resume_offset_bytes=0,
            )  # fmt: skip
            transport.deliver(item, RecordingControl())
        transport.sync()
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in archive.rglob("*.raw")}
        assert modes == {"private.raw": 0o600, "shared.raw": 0o640}, modes
    finally:
        os.umask(old_umask)


def test_the_log_file_is_never_readable_by_other_users(tmp_path: Path) -> None:
    import logging
    import stat

    from agent.config import load_config
    from agent.observe.logsetup import setup_logging
    from tests.helpers import write_config

    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    log_file = tmp_path / "logs" / "agent.log"
    config = load_config(write_config(tmp_path, logging={"file": str(log_file)}))
    old_umask = os.umask(0o000)
    try:
        setup_logging(config)
        logging.getLogger("agent").warning("a line")
    finally:
        os.umask(old_umask)
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def _sparse_source(tmp_path: Path, size: int, data_at: dict[int, bytes]) -> tuple[FilesystemTransport, PayloadItem]:
    transport, item, _ = make(tmp_path, 0)
    with item.source_path.open("r+b") as stream:
        stream.truncate(size)
        for offset, chunk in data_at.items():
            stream.seek(offset)
            stream.write(chunk)
    if _allocated(item.source_path) >= size // 2:
        pytest.skip("the test filesystem does not keep holes (tmp_path on a filesystem without sparse files)")
    digest = hashlib.sha256(item.source_path.read_bytes()).hexdigest()
    identity = identity_of(item.source_path.stat())
    return transport, PayloadItem(**{**item.__dict__, "identity": identity, "sha256": digest})


def test_holes_in_a_sparse_source_stay_holes_in_the_archive_copy(tmp_path: Path) -> None:
    tail = os.urandom(4096)
    transport, item = _sparse_source(tmp_path, 50 * MIB, {10 * MIB: os.urandom(MIB), 50 * MIB - 4096: tail})
    control = RecordingControl()
    transport.deliver(item, control)
    transport.sync()
    final = tmp_path / "archive/FAC/alice/s1/data/sub/src.bin"
    assert final.read_bytes() == item.source_path.read_bytes()  # and verified by SHA-256 on the way
    assert _allocated(final) <= _allocated(item.source_path) + MIB, "the holes were not written out"
    assert control.sent_bytes == 50 * MIB  # progress counts the holes as done


def test_a_file_that_is_one_hole_takes_no_space_and_a_hole_resumes(tmp_path: Path) -> None:
    transport, item = _sparse_source(tmp_path, 50 * MIB, {})
    transport.deliver(item, RecordingControl())
    final = tmp_path / "archive/FAC/alice/s1/data/sub/src.bin"
    assert final.stat().st_size == 50 * MIB and _allocated(final) < MIB

    other = tmp_path / "again"
    other.mkdir()
    transport, item = _sparse_source(other, 40 * MIB, {8 * MIB: os.urandom(6 * MIB), 30 * MIB: b"end"})
    first = RecordingControl(stop_after_bytes=10 * MIB)
    with pytest.raises(StopRequested):
        transport.deliver(item, first)
    durable = first.checkpoints[-1]
    transport.deliver(PayloadItem(**{**item.__dict__, "resume_offset_bytes": durable}), RecordingControl())
    final = other / "archive/FAC/alice/s1/data/sub/src.bin"
    assert final.read_bytes() == item.source_path.read_bytes()
    assert _allocated(final) <= _allocated(item.source_path) + MIB
