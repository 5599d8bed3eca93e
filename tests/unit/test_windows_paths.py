"""Windows-specific code paths, exercised here with the platform faked.

Not exercised on Linux: the real msvcrt locking semantics, Windows Credential Manager
through keyring, WinSW, and a PyInstaller build on Windows (see docs/install.md).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from agent.config.loader import default_config_path
from agent.destinations import filesystem
from agent.journal import lock as lock_module


def test_default_config_under_programdata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("PROGRAMDATA", r"D:\ProgramData")
    assert default_config_path() == Path(r"D:\ProgramData") / "harvest-agent" / "config.yaml"
    monkeypatch.delenv("PROGRAMDATA")
    assert default_config_path() == Path(r"C:\ProgramData") / "harvest-agent" / "config.yaml"


def test_state_dir_lock_uses_msvcrt_on_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []
    fake = types.SimpleNamespace(LK_NBLCK=2, locking=lambda fd, mode, length: calls.append((fd, mode, length)))
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(sys, "platform", "win32")
    state_lock = lock_module.StateDirLock(tmp_path)
    state_lock.acquire()
    try:
        assert len(calls) == 1 and calls[0][1:] == (2, 1)  # non-blocking lock of one byte
    finally:
        state_lock.release()


def test_state_dir_lock_refuses_a_second_holder_on_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def locked(fd: int, mode: int, length: int) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(LK_NBLCK=2, locking=locked))
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(lock_module.StateDirLocked, match="another harvest agent"):
        lock_module.StateDirLock(tmp_path).acquire()


def test_folder_fsync_and_syncfs_are_skipped_off_linux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "win32")

    def no_open(*arguments: object, **keywords: object) -> int:
        raise AssertionError("folders cannot be opened on Windows")

    monkeypatch.setattr("agent.destinations.filesystem.os.open", no_open)
    filesystem._fsync_folder(tmp_path)  # must not try to open the folder
    assert filesystem._syncfs(tmp_path) is False  # per-file fsync is used instead
