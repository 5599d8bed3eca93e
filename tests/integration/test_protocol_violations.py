"""Servers that break the protocol never kill a worker, never fail a file, never fool status.

A reply without the header the protocol requires (a tus 201 without Location, a PATCH or
HEAD reply without Upload-Offset, an S3 part without ETag) used to end the destination's
worker thread with a KeyError, or mark the file failed, while status said HEALTHY. Each is
now a transient fault: the destination pauses and is probed with backoff, status shows
why, and the data arrives complete once the server behaves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bagit
import pytest

from tests.helpers import wait_for, write_config
from tests.integration.conftest import Daemon, copy_sample
from tests.integration.faultproxy import FaultProxy
from tests.integration.servers import STARTERS, Server, fetch_bags

DaemonFactory = Callable[[Path], Daemon]
DROPS = {"tus": [("Location", 2), ("Upload-Offset", 2)], "moto": [("ETag", 4)]}


def _through(proxy: FaultProxy, server: Server) -> dict[str, Any]:
    destination = {**server.destination, "timeout_seconds": 10}
    if "url" in destination:
        destination["url"] = destination["url"].replace(str(server.port), str(proxy.port))
    else:
        destination["endpoint_url"] = destination["endpoint_url"].replace(str(server.port), str(proxy.port))
    return destination


@pytest.mark.parametrize("kind", sorted(DROPS))
def test_replies_missing_required_headers_are_transient_and_everything_arrives(
    kind: str, tmp_path: Path, daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = STARTERS[kind](tmp_path)
    proxy = FaultProxy(server.port)
    try:
        for name, count in DROPS[kind]:
            proxy.drop_header(name, count)
        session = tmp_path / "instrument" / "hana" / "s1"
        copy_sample("dicom/series/CT_5slice", session)
        (session / "stack.raw").write_bytes(os.urandom(12 << 20))  # multipart at S3, several PATCHes at tus
        config = write_config(tmp_path, destinations=[_through(proxy, server)])
        for key, value in server.environment.items():
            monkeypatch.setenv(key, value)
        daemon = daemon_factory(config).start()
        wait_for(daemon.running, what="agent running", timeout=30)

        def committed() -> bool:
            rows = daemon.journal_rows(tmp_path, "SELECT state FROM commits")
            return bool(rows) and all(row[0] == "committed" for row in rows)

        wait_for(committed, timeout=180, what="the dataset committed despite the protocol violations")
        report = wait_for(lambda: (r := daemon.status())["health"]["state"] == "healthy" and r, timeout=60,
                          what="status healthy again")  # fmt: skip
        assert report["files"]["failed"] == 0
        assert all(worker["alive"] and worker["restarts"] == 0 for worker in report["workers"].values())
        assert daemon.stop() == 0
        bag = fetch_bags(server, tmp_path / "fetched") / "TEST-SCOPE-01" / "hana" / "s1"
    finally:
        proxy.close()
        server.stop()
    assert any(applied.startswith("drop") for applied in proxy.applied), proxy.applied
    bagit.Bag(str(bag)).validate()
    sidecar = json.loads((bag / "harvest.json").read_text())
    assert sidecar["dataset"]["complete"] is True and len(sidecar["files"]) == 6
    log = daemon.log()
    assert "stopped unexpectedly" not in log and "Traceback" not in log.split("unexpected error")[0]


def test_a_bucket_that_appears_later_is_waited_for_not_a_dead_worker(
    tmp_path: Path, daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.servers import s3_client

    server = STARTERS["moto"](tmp_path)
    try:
        destination = {**server.destination, "bucket": "appears-later"}
        copy_sample("dicom/series/CT_5slice", tmp_path / "instrument" / "ola")
        config = write_config(tmp_path, destinations=[destination])
        for key, value in server.environment.items():
            monkeypatch.setenv(key, value)
        daemon = daemon_factory(config).start()

        def paused() -> dict[str, Any] | None:
            report = daemon.status() if daemon.running() else None  # its journal has tables once it runs
            if report and report["destinations"] and report["destinations"][0]["state"] == "paused":
                return report
            return None

        report = wait_for(paused, timeout=60, what="the destination paused for the missing bucket")
        assert report is not None and report["health"]["state"] == "degraded"
        assert "appears-later" in report["destinations"][0]["reason"]
        s3_client(server.destination["endpoint_url"]).create_bucket(Bucket="appears-later")
        wait_for(
            lambda: daemon.journal_rows(tmp_path, "SELECT 1 FROM commits WHERE state = 'committed'"),
            timeout=120, interval=0.5, what="delivered once the bucket exists",
        )  # fmt: skip
        report = daemon.status()
        assert all(worker["alive"] and worker["restarts"] == 0 for worker in report["workers"].values())
        assert daemon.stop() == 0
    finally:
        server.stop()
