"""The state dir in trouble: full, or its journal truncated. A clear word, never a traceback."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import harvest_command, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon, wait_for_revision

DaemonFactory = Callable[[Path], Daemon]


def test_a_zero_byte_journal_is_a_one_line_error_for_every_command(tmp_path: Path) -> None:
    (tmp_path / "instrument" / "a" / "s").mkdir(parents=True)
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.sqlite3").write_bytes(b"")
    for command in (["status"], ["status", "--json"], ["scan"]):
        result = subprocess.run(
            harvest_command(*command, "--config", str(config)),
            capture_output=True, text=True, env=subprocess_env(), timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "is empty (0 bytes)" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "state" / "journal.sqlite3").stat().st_size == 0, "nothing started afresh on it"


@pytest.fixture
def small_state_dir(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the state dir (root only: tests run as root in CI)."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_state_dir_pauses_the_agent_with_a_reason_and_it_goes_on_after(
    tmp_path: Path, small_state_dir: Path, daemon_factory: DaemonFactory
) -> None:
    (tmp_path / "archive").mkdir()
    first = tmp_path / "instrument" / "kim" / "s1"
    first.mkdir(parents=True)
    (first / "a.tif").write_bytes(b"before the disk filled")
    config = write_config(tmp_path, settle={"quiet_seconds": 0.5, "dataset_idle_seconds": 1.0})
    daemon = daemon_factory(config).start()
    wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/kim/s1", 1, timeout=60)

    filler = small_state_dir / "filler"
    # Unbuffered: a write the full disk cut short leaves nothing buffered for close() to retry.
    with filler.open("wb", buffering=0) as stream, contextlib.suppress(OSError):
        while True:
            stream.write(b"\0" * 65536)
    second = tmp_path / "instrument" / "kim" / "s2"
    second.mkdir()
    (second / "b.tif").write_bytes(b"while the disk was full")

    def reports_full() -> dict[str, object] | None:
        result = subprocess.run(
            harvest_command("status", "--json", "--config", str(config)),
            capture_output=True, text=True, env=subprocess_env(), timeout=60,
        )  # fmt: skip
        assert "Traceback" not in result.stderr
        if result.returncode != 2:
            return None
        import json

        report: dict[str, object] = json.loads(result.stdout)
        reasons = " ".join(report["health"]["reasons"])  # type: ignore[index]
        return report if "state dir full or read-only" in reasons else None

    wait_for(reports_full, timeout=90, interval=1.0, what="status says the agent cannot write its journal")
    assert daemon.process is not None and daemon.process.poll() is None, "the agent kept running"
    assert "Traceback" not in daemon.log()

    filler.unlink()
    bag = wait_for_revision(tmp_path / "archive/TEST-SCOPE-01/kim/s2", 1, timeout=180)
    assert bag["dataset"]["complete"] is True
    wait_for(lambda: daemon.status()["health"]["state"] == "healthy", timeout=60, what="healthy again")
    assert daemon.stop() == 0


def test_status_and_watch_never_hang_on_a_locked_journal(tmp_path: Path) -> None:
    import sqlite3

    import pexpect

    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    assert subprocess.run(harvest_command("scan", "--config", str(config)), capture_output=True,
                          env=subprocess_env(), timeout=120).returncode == 0  # fmt: skip
    holder = sqlite3.connect(tmp_path / "state" / "journal.sqlite3", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO agent (key, value) VALUES ('lock-test', '1')")  # holds the lock
    try:
        result = subprocess.run(
            harvest_command("status", "--config", str(config)),
            capture_output=True, text=True, env=subprocess_env(), timeout=60,
        )  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        command = harvest_command("watch", "--interval", "0.2", "--config", str(config))
        env = {**subprocess_env(), "TERM": "xterm-256color"}
        child = pexpect.spawn(command[0], command[1:], dimensions=(24, 80), env=env, encoding="utf-8", timeout=30)
        try:
            child.expect("waiting for the agent's journal")
            child.sendcontrol("c")
            child.expect(pexpect.EOF, timeout=15)  # a hang detector: the reader gives up within seconds
        finally:
            child.close()
        assert child.exitstatus == 0, child.before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
