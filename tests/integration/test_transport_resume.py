"""SIGKILL the agent mid-upload of a 220 MiB file to each real server; the restart resumes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import bagit

from tests.helpers import wait_for, write_config
from tests.integration.conftest import Daemon
from tests.integration.servers import Server, fetch_bags

SIZE = 220 * 1024 * 1024


def journal_row(tmp_path: Path, sql: str) -> tuple[object, ...] | None:
    path = tmp_path / "state" / "journal.sqlite3"
    if not path.exists():
        return None
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchone()  # type: ignore[no-any-return]
    except sqlite3.OperationalError:
        return None
    finally:
        connection.close()


def test_sigkill_mid_upload_resumes_from_acknowledged_offset(
    tmp_path: Path, server: Server, daemon_factory: Callable[[Path], Daemon]
) -> None:
    session = tmp_path / "instrument" / "frank" / "big"
    session.mkdir(parents=True)
    source = session / "volume.raw"
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with source.open("wb") as stream:
        for index in range(SIZE // len(block)):
            chunk = index.to_bytes(4, "little") + block[4:]
            stream.write(chunk)
            digest.update(chunk)
    destination = {**server.destination, "bandwidth": "40MiB/s"}
    if server.destination["type"] == "s3":
        destination["part_bytes"] = 8 << 20
    config = write_config(tmp_path, destinations=[destination])
    os.environ.update(server.environment)  # the daemons inherit the credential
    try:
        daemon = daemon_factory(config).start()

        def acknowledged() -> int:
            row = journal_row(tmp_path, "SELECT offset_bytes FROM deliveries WHERE state = 'sending'")
            return int(row[0]) if row else 0  # type: ignore[call-overload]

        wait_for(lambda: acknowledged() > 100 << 20, timeout=120, interval=0.02, what="100 MiB acknowledged")
        daemon.kill()
        durable = acknowledged()
        assert durable > 100 << 20

        restarted = daemon_factory(config).start()
        wait_for(
            lambda: journal_row(tmp_path, "SELECT 1 FROM commits WHERE state = 'committed'") is not None,
            timeout=180, what="dataset committed after the restart",
        )  # fmt: skip
        row = journal_row(tmp_path, "SELECT resumed_from_bytes, resumes FROM deliveries")
        assert row is not None
        resumed_from, resumes = int(row[0]), int(row[1])  # type: ignore[call-overload]
        assert resumes >= 1
        assert resumed_from >= durable, "resumed before the last acknowledged offset: bytes sent twice"
        assert "resuming" in restarted.log()
        assert restarted.stop() == 0
    finally:
        for key in server.environment:
            os.environ.pop(key, None)

    bag_path = fetch_bags(server, tmp_path / "fetched") / "TEST-SCOPE-01" / "frank" / "big"
    bagit.Bag(str(bag_path)).validate()
    with (bag_path / "data" / "volume.raw").open("rb") as delivered:
        assert hashlib.file_digest(delivered, "sha256").hexdigest() == digest.hexdigest()
    sidecar = json.loads((bag_path / "harvest.json").read_text())
    assert sidecar["files"][0]["sha256"] == digest.hexdigest()
