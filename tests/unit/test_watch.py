from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent.pipeline import watch
from agent.pipeline.filters import PathFilter
from agent.pipeline.watch import Inbox, RootWatcher, scan_runs
from tests.helpers import wait_for


def scanned(root: Path, **kwargs: object) -> tuple[list[str], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    runs = scan_runs(root, PathFilter(), on_error=lambda path, message: errors.append((path, message)), **kwargs)  # type: ignore[arg-type]
    return sorted(found.rel_path for run in runs for found in run.found()), errors


def test_scan_streams_files_and_skips_junk(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.tif").write_bytes(b"1")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"1")
    (tmp_path / "a" / "y.partial").write_bytes(b"1")
    (tmp_path / "top.dcm").write_bytes(b"1")
    files, errors = scanned(tmp_path)
    assert files == ["a/b/x.tif", "top.dcm"] and errors == []


def test_symlinks_not_followed_by_default_and_never_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "real.tif").write_bytes(b"1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"no")
    (root / "d" / "link-out").symlink_to(outside)
    (root / "d" / "loop").symlink_to(root / "d")
    (root / "d" / "alias.tif").symlink_to(root / "d" / "real.tif")

    files, errors = scanned(root)
    assert files == ["d/real.tif"] and errors == []

    files, errors = scanned(root, follow_symlinks=True)
    assert "d/link-out/secret.txt" not in files
    assert "d/alias.tif" in files and "d/real.tif" in files
    messages = [message for _, message in errors]
    assert any("outside the watched root" in message for message in messages)
    # A link to a folder inside the root is never descended into: the real folder is
    # scanned where it is, so each file is found once, whatever the order.
    assert not any(name.startswith("d/loop/") for name in files)
    assert len(files) == len(set(files))


def test_unreadable_folder_is_reported_and_scan_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "f.tif").write_bytes(b"1")
    real_scandir, real_open = os.scandir, os.open

    def scandir(path: str | int) -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    def open_folder(path: str, flags: int) -> int:  # where folders are listed by descriptor
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags)

    monkeypatch.setattr("agent.pipeline.watch.os.scandir", scandir)
    monkeypatch.setattr("agent.pipeline.watch.os.open", open_folder)
    files, errors = scanned(tmp_path)
    assert files == ["open/f.tif"]
    assert errors == [(str(tmp_path / "locked"), "cannot list folder: Permission denied")]


@pytest.mark.parametrize("polling", [False, True])
def test_watcher_passes_paths_on_and_restarts(tmp_path: Path, polling: bool) -> None:
    inbox = Inbox()
    watcher = RootWatcher(tmp_path, inbox, polling=polling, polling_interval=0.2)
    watcher.start()
    noticed: list[Path] = []

    def seen_new_file() -> bool:
        noticed.extend(path for _, path in inbox.drain())
        return any(path.name == "new.tif" for path in noticed)

    try:
        (tmp_path / "new.tif").write_bytes(b"1")
        wait_for(seen_new_file, timeout=10)
        watcher._observer.stop()  # type: ignore[union-attr]  # simulate a watcher thread dying
        watcher._observer.join()  # type: ignore[union-attr]
        assert not watcher.is_alive()
        watcher.restart()
        assert watcher.is_alive() and watcher.restarts == 1
    finally:
        watcher.stop()


def test_the_inbox_wakes_its_waiter_and_loses_nothing() -> None:
    import threading
    import time

    inbox = Inbox()
    threading.Timer(0.05, inbox.wake).start()
    started = time.monotonic()
    inbox.wait(timeout=30)  # a wake ends the wait long before the timeout
    assert time.monotonic() - started < 15
    inbox.notice(Path("/r"), Path("/r/a"))
    inbox.wait(timeout=30)  # something noticed: returns at once
    inbox.notice(Path("/r"), Path("/r/b"))
    assert list(inbox.drain()) == [(Path("/r"), Path("/r/a")), (Path("/r"), Path("/r/b"))]
    assert list(inbox.drain()) == []


def test_a_folders_files_come_in_name_order_in_bounded_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconcile looks a run up as one range of the journal's index: each run is one
    folder's files, sorted; a big folder comes as several runs (memory stays bounded),
    every file exactly once, each with the path it really has."""
    monkeypatch.setattr(watch, "SORTED_RUN", 4)
    names = [f"f{index:02d}.tif" for index in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6)]
    for name in names:
        (tmp_path / "big" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "big" / name).write_bytes(name.encode())
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "b.tif").write_bytes(b"b.tif")
    (tmp_path / "small" / "a.tif").write_bytes(b"a.tif")
    runs = [list(run.found()) for run in scan_runs(tmp_path, PathFilter())]
    assert all(0 < len(run) <= 4 for run in runs)
    for run in runs:
        paths = [found.rel_path for found in run]
        assert paths == sorted(paths)
        assert len({path.rpartition("/")[0] for path in paths}) == 1  # one folder per run
        for found in run:
            assert found.path == tmp_path / found.rel_path
            assert found.path.read_bytes() == found.rel_path.rpartition("/")[2].encode()
            assert found.stat.st_ino == found.path.stat().st_ino
    every = [found.rel_path for run in runs for found in run]
    assert sorted(every) == sorted([f"big/{name}" for name in names] + ["small/a.tif", "small/b.tif"])
    assert len(every) == len(set(every))
