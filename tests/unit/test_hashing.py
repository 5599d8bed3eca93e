from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.errors import ItemError, SourceChangedError, SourceVanishedError
from agent.pipeline.hashing import (
    READ_CHUNK_BYTES,
    identity_of,
    read_at,
    sha256_file,
    sha256_of_descriptor,
    stream_chunks,
)


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    data = os.urandom(3 * READ_CHUNK_BYTES + 17)
    path.write_bytes(data)
    assert sha256_file(path, identity_of(path.stat())) == hashlib.sha256(data).hexdigest()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    assert sha256_file(path, identity_of(path.stat())) == hashlib.sha256(b"").hexdigest()


def test_file_appended_while_read_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(b"x" * (2 * READ_CHUNK_BYTES))
    identity = identity_of(path.stat())
    calls: list[int] = []

    def append_after_first_chunk() -> bool:  # fault injection through the per-chunk hook
        if not calls:
            with path.open("ab") as stream:
                stream.write(b"more")
        calls.append(1)
        return False

    with pytest.raises(SourceChangedError, match="changed while reading"):
        sha256_file(path, identity, should_stop=append_after_first_chunk)


def test_file_replaced_by_rename_while_read_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"a" * 100)
    identity = identity_of(path.stat())
    replacement = tmp_path / "b.bin"
    replacement.write_bytes(b"b" * 100)

    def swap() -> bool:
        if replacement.exists():
            replacement.replace(path)
        return False

    with pytest.raises(SourceChangedError):
        sha256_file(path, identity, should_stop=swap)


def test_stale_identity_is_rejected_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    identity = identity_of(path.stat())
    path.write_bytes(b"abcd")
    with pytest.raises(SourceChangedError, match="changed before reading"):
        sha256_file(path, identity)


def test_vanished_and_permission_denied_are_item_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    identity = identity_of(path.stat())
    path.unlink()
    with pytest.raises(SourceVanishedError):
        sha256_file(path, identity)
    path.write_bytes(b"abc")

    def deny(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("agent.pipeline.hashing.os.open", deny)
    with pytest.raises(ItemError, match="permission denied"):
        sha256_file(path, identity_of(path.stat()))


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target.bin"
    target.write_bytes(b"abc")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    with pytest.raises(ItemError, match="symbolic link"):
        sha256_file(link, identity_of(target.stat()))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_file_swapped_for_a_named_pipe_is_an_item_error_and_never_blocks(tmp_path: Path) -> None:
    import threading

    from agent.extract import extract_metadata

    path = tmp_path / "a.tif"
    path.write_bytes(b"abc")
    identity = identity_of(path.stat())
    path.unlink()
    os.mkfifo(path)  # no writer ever opens it: a blocking open would wait forever
    outcome: list[BaseException | object] = []

    def read() -> None:
        try:
            sha256_file(path, identity)
        except ItemError as error:
            outcome.append(error)
        outcome.append(extract_metadata(path))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)  # a hang detector, not a timing assertion
    assert not reader.is_alive(), "reading a named pipe blocked"
    assert isinstance(outcome[0], ItemError) and "no longer a regular file" in str(outcome[0])


def test_a_followed_symlink_is_checked_by_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.tif"
    target.write_bytes(b"data")
    link = tmp_path / "alias.tif"
    link.symlink_to(target)
    digest = sha256_file(link, identity_of(os.stat(link)), follow_symlinks=True)
    assert digest == hashlib.sha256(b"data").hexdigest()


@pytest.mark.parametrize("positioned", [True, False], ids=["preadv", "read-and-copy (Windows)"])
def test_chunks_are_read_from_their_own_offset_whatever_the_platform_offers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, positioned: bool
) -> None:
    if not positioned:
        monkeypatch.delattr(os, "preadv", raising=False)
    data = os.urandom(3 * 1000 + 17)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        first = stream_chunks(descriptor, len(data), 0, 1000)
        second = stream_chunks(descriptor, 2000, 500, 400)
        assert bytes(first()) == data[:1000]
        # A second reader from another offset, used in between, does not move the first.
        assert b"".join(bytes(chunk) for chunk in iter(second, b"")) == data[500:2000]
        assert b"".join(bytes(chunk) for chunk in iter(first, b"")) == data[1000:]
        assert sha256_of_descriptor(descriptor, len(data)) == hashlib.sha256(data).hexdigest()
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("positioned", [True, False], ids=["pread", "seek-and-read (Windows)"])
def test_parts_read_from_threads_on_one_descriptor_are_each_their_own_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, positioned: bool
) -> None:
    if not positioned:
        monkeypatch.delattr(os, "pread", raising=False)
    data = os.urandom(64 * 4096)
    path = tmp_path / "parts.bin"
    path.write_bytes(data)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            parts = list(pool.map(lambda number: read_at(descriptor, 4096, number * 4096), range(64)))
    finally:
        os.close(descriptor)
    assert b"".join(parts) == data
