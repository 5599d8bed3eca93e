"""Frequent restarts never stop progress: finished deliveries are journalled as they finish."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest

from tests.helpers import wait_for, write_config
from tests.integration.conftest import Daemon, harvest_json
from tests.integration.servers import start_rclone_sftp

DaemonFactory = Callable[[Path], Daemon]


def _counts(daemon: Daemon, directory: Path) -> dict[str, int]:
    if not (directory / "state/journal.sqlite3").exists():
        return {}
    rows = daemon.journal_rows(directory, "SELECT state, COUNT(*) FROM deliveries GROUP BY state")
    return {str(state): int(count) for state, count in rows}


def _progressed(daemon: Daemon, directory: Path, verified_before: int) -> dict[str, int] | None:
    """Verified deliveries beyond *verified_before* while others still wait (one batch)."""
    counts = _counts(daemon, directory)
    return counts if counts.get("verified", 0) > verified_before and counts.get("pending", 0) else None


@pytest.mark.parametrize("kill_rounds", [3])
def test_sftp_verified_files_are_journalled_during_a_batch_and_kept_across_kills(
    tmp_path: Path, daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch, kill_rounds: int
) -> None:
    server = start_rclone_sftp(tmp_path)
    try:
        session = tmp_path / "instrument" / "jo" / "s1"
        session.mkdir(parents=True)
        for index in range(24):
            (session / f"tile-{index:02d}.raw").write_bytes(os.urandom(1 << 20))
        # Slow enough (24 MiB at 4 MiB/s) that the batch takes seconds: the journal must
        # show verified files while others are still waiting, in one batch.
        destination = {**server.destination, "bandwidth": "4MiB/s"}
        config = write_config(tmp_path, destinations=[destination])
        for key, value in server.environment.items():
            monkeypatch.setenv(key, value)
        verified_before = 0
        for _ in range(kill_rounds):
            daemon = daemon_factory(config).start()
            progressed = wait_for(
                lambda: _progressed(daemon, tmp_path, verified_before),  # noqa: B023 - called at once
                timeout=60, what="a verified delivery journalled while others wait",
            )  # fmt: skip
            assert progressed is not None
            verified_before = progressed["verified"]
            daemon.kill()  # kill -9 in the middle of the batch
        assert verified_before >= kill_rounds, "every run kept what it had verified"
        daemon = daemon_factory(config).start()
        bag = server.directory / "TEST-SCOPE-01/jo/s1"
        wait_for(lambda: (bag / "tagmanifest-sha256.txt").exists(), timeout=120, what="bag committed")
        assert daemon.stop() == 0
        bagit.Bag(str(bag)).validate()
        assert len(harvest_json(bag)["files"]) == 24
    finally:
        server.stop()


def test_sftp_staging_folder_removed_behind_the_agents_back_is_made_again(
    tmp_path: Path, daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    server = start_rclone_sftp(tmp_path)
    try:
        session = tmp_path / "instrument" / "pia" / "s1"
        session.mkdir(parents=True)
        (session / "big.raw").write_bytes(os.urandom(16 << 20))
        destination = {**server.destination, "bandwidth": "4MiB/s"}
        config = write_config(tmp_path, destinations=[destination])
        for key, value in server.environment.items():
            monkeypatch.setenv(key, value)
        daemon = daemon_factory(config).start()
        staging = server.directory / ".harvest-partial"
        wait_for(lambda: any(path.stat().st_size > 0 for path in staging.glob("*.partial")), timeout=60,
                 what="a partial copy at the server")  # fmt: skip
        shutil.rmtree(staging)  # a cleanup job on the server
        bag = server.directory / "TEST-SCOPE-01/pia/s1"
        wait_for(lambda: (bag / "tagmanifest-sha256.txt").exists(), timeout=120, what="bag committed")
        assert daemon.stop() == 0
        bagit.Bag(str(bag)).validate()
        assert (bag / "data/big.raw").read_bytes() == (session / "big.raw").read_bytes()
        assert not list(staging.glob("*.partial")), "nothing left in the staging folder"
    finally:
        server.stop()
