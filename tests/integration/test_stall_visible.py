"""A destination that accepts connections but never answers is visible in status at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for, write_config
from tests.integration.conftest import Daemon, copy_sample
from tests.integration.faultproxy import FaultProxy
from tests.integration.servers import start_tus

DaemonFactory = Callable[[Path], Daemon]


def test_a_silent_server_shows_as_retrying_and_degraded_then_recovers(
    tmp_path: Path, daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_tus(tmp_path)
    proxy = FaultProxy(server.port)
    try:
        destination = {**server.destination, "timeout_seconds": 40}
        destination["url"] = destination["url"].replace(str(server.port), str(proxy.port))
        config = write_config(tmp_path, destinations=[destination])
        for key, value in server.environment.items():
            monkeypatch.setenv(key, value)
        daemon = daemon_factory(config).start()
        wait_for(daemon.running, what="agent running", timeout=30)
        wait_for(lambda: daemon.status()["destinations"], what="destination known", timeout=30)
        proxy.add("stall", 60)  # the next request gets no answer for a minute
        copy_sample("dicom/series/CT_5slice", tmp_path / "instrument" / "mo")

        def stalled() -> dict[str, Any] | None:
            report = daemon.status()
            retrying = report["destinations"][0].get("retrying") or ""
            return report if "no answer for" in retrying else None

        report = wait_for(stalled, timeout=90, interval=1.0, what="status shows the silent server")
        assert report is not None
        assert report["health"]["state"] == "degraded"
        assert any("retrying" in reason for reason in report["health"]["reasons"])
        wait_for(
            lambda: daemon.journal_rows(tmp_path, "SELECT 1 FROM commits WHERE state = 'committed'"),
            timeout=180, interval=1.0, what="delivered once the server answers again",
        )  # fmt: skip
        wait_for(lambda: daemon.status()["health"]["state"] == "healthy", timeout=60, what="healthy again")
        assert daemon.stop() == 0
    finally:
        proxy.close()
        server.stop()
