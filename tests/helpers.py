"""Shared test helpers: config files, waiting for conditions, source-tree snapshots."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

DATA = Path(__file__).parent / "data"
T = TypeVar("T")


def write_config(
    directory: Path,
    *,
    watch: list[dict[str, Any]] | None = None,
    destinations: list[dict[str, Any]] | None = None,
    settle: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    config = {
        "version": 1,
        "instrument": {"id": "TEST-SCOPE-01", "name": "Test microscope", "facility": "Test facility"},
        "state_dir": str(directory / "state"),
        "watch": watch or [{"path": str(directory / "instrument"), "dataset": "{operator}/{session}"}],
        "settle": settle or {"quiet_seconds": 0.5, "dataset_idle_seconds": 1.5},
        "destinations": destinations or [{"name": "archive", "type": "filesystem", "path": str(directory / "archive")}],
        **extra,
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def wait_for(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    """Poll *condition* until it returns something truthy; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def stays_false(condition: Callable[[], object], seconds: float, what: str, interval: float = 0.1) -> None:
    """Assert that *condition* stays falsy for *seconds* (e.g. a dataset must not close yet)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not condition(), what
        time.sleep(interval)


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under *root*: (sha256, size, mtime_ns), to prove the source is untouched."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            result[str(path.relative_to(root))] = (digest, stat.st_size, stat.st_mtime_ns)
    return result


def harvest_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "agent", *arguments]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def random_file(path: Path, size: int, block_bytes: int = 4 << 20) -> Path:
    """A file of *size* random bytes (incompressible, unlike zeros), written in blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, block_bytes))
            handle.write(block)
            remaining -= len(block)
    return path


def journal_rows(state_dir: Path, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement on the journal file, through a connection of the test's own.

    For tests that look beneath the journal's methods (the agent keeps SQL in its journal package).
    """
    import sqlite3

    with contextlib.closing(sqlite3.connect(state_dir / "journal.sqlite3", timeout=30)) as db, db:
        return [tuple(row) for row in db.execute(sql, parameters).fetchall()]
