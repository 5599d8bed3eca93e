"""Retry-After is honoured: no request reaches a destination before the server said it may."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import bagit
import pytest

from tests.helpers import harvest_command, subprocess_env, write_config
from tests.integration.conftest import copy_sample
from tests.integration.faultproxy import FaultProxy
from tests.integration.servers import STARTERS, fetch_bags

RETRY_AFTER = 2.0


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("kind", ["tus", "moto"])
def test_no_request_before_retry_after_has_passed(kind: str, status: int, tmp_path: Path) -> None:
    server = STARTERS[kind](tmp_path)
    proxy = FaultProxy(server.port)
    try:
        copy_sample("dicom/series/CT_5slice", tmp_path / "instrument" / "lee")
        destination = {**server.destination, "timeout_seconds": 10}
        key = "url" if "url" in destination else "endpoint_url"
        destination[key] = destination[key].replace(str(server.port), str(proxy.port))
        config = write_config(tmp_path, destinations=[destination])
        proxy.respond(status, count=3, retry_after=RETRY_AFTER)
        result = subprocess.run(
            harvest_command("scan", "--config", str(config)),
            capture_output=True, text=True, env={**subprocess_env(), **server.environment}, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr[-2000:]
        assert proxy.applied.count(f"respond {status}") == 3
        times = proxy.request_times
        # Each refused request is followed by the next one no sooner than Retry-After.
        gaps = [later - earlier for earlier, later in itertools.pairwise(times[:4])]
        assert all(gap >= RETRY_AFTER - 0.05 for gap in gaps), gaps
        bag = fetch_bags(server, tmp_path / "fetched") / "TEST-SCOPE-01" / "lee" / "CT_5slice"
        bagit.Bag(str(bag)).validate()
    finally:
        proxy.close()
        server.stop()
