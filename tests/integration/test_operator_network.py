"""Operator commands and doctor against every network server (@tus/server, moto,
rclone serve s3, rclone serve sftp): a pause holds a large upload at a checkpoint and a
resume continues it; doctor's probe works and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.helpers import harvest_command, random_file, subprocess_env, wait_for, write_config
from tests.integration.conftest import Daemon
from tests.integration.servers import Server, s3_client

MIB = 1 << 20


def _leftover_probes(server: Server) -> list[str]:
    if server.kind in ("moto", "rclone-s3"):
        client = s3_client(server.destination["endpoint_url"])
        listing = client.list_objects_v2(Bucket="imaging")
        return [item["Key"] for item in listing.get("Contents", []) if "harvest-doctor" in item["Key"]]
    return [str(path) for path in server.directory.rglob("*") if path.name != "faults.json"]


def test_doctor_probes_each_server_and_cleans_up(tmp_path: Path, server: Server) -> None:
    (tmp_path / "instrument").mkdir()
    config = write_config(tmp_path, destinations=[server.destination])
    result = subprocess.run(
        harvest_command("doctor", "--config", str(config)),
        capture_output=True,
        text=True,
        env={**subprocess_env(), **server.environment},
        timeout=120,
    )
    name = server.destination["name"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[ok]   destination {name}: " in result.stdout
    assert f"[ok]   clock vs {name}: " in result.stdout
    assert _leftover_probes(server) == [], "the doctor's probe was left at the server"
    for secret in server.environment.values():
        assert secret[:20] not in result.stdout + result.stderr


def test_pause_holds_a_network_upload_at_a_checkpoint_and_resume_continues(
    tmp_path: Path, server: Server, daemon_factory: Callable[[Path], Daemon]
) -> None:
    destination = {**server.destination, "bandwidth": "6MiB/s"}
    if server.kind == "tus":
        destination["chunk_bytes"] = 2 * MIB
    config = write_config(tmp_path, destinations=[destination])
    random_file(tmp_path / "instrument/kim/run1/stack.raw", 48 * MIB)
    os.environ.update(server.environment)
    try:
        daemon = daemon_factory(config).start()
        wait_for(lambda: daemon.running() and daemon.checkpointed(tmp_path) > 0, timeout=60, what="a checkpoint")
        assert daemon.harvest("pause").returncode == 0
        name = server.destination["name"]
        wait_for(lambda: daemon.upload_held(tmp_path, name), timeout=30, what="upload held")
        report = daemon.status()
        assert report["destinations"][0]["hold"] == "paused by operator"
        assert report["deliveries"][server.destination["name"]].get("verified", 0) == 0
        assert all(item["bytes_done"] < item["bytes_total"] for item in report["in_flight"])
        assert daemon.harvest("resume").returncode == 0
        wait_for(lambda: daemon.status()["datasets"][0]["state"] == "committed", timeout=90, what="committed")
        resumed = daemon.journal_rows(tmp_path, "SELECT resumed_from_bytes FROM deliveries")
        assert resumed[0][0] and 0 < resumed[0][0] < 48 * MIB, "the upload restarted instead of resuming"
    finally:
        for key in server.environment:
            os.environ.pop(key, None)
