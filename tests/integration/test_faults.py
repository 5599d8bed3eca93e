"""Network faults between agent and server: resets mid-upload, stalls, truncated replies."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import bagit

from tests.helpers import harvest_command, subprocess_env, write_config
from tests.integration.conftest import copy_sample
from tests.integration.faultproxy import FaultProxy
from tests.integration.servers import Server, fetch_bags


def test_upload_survives_reset_stall_and_truncated_reply(tmp_path: Path, server: Server) -> None:
    session = tmp_path / "instrument" / "gina" / "s1"
    copy_sample("dicom/series/CT_5slice", session)
    (session / "stack.raw").write_bytes(os.urandom(24 << 20))
    proxy = FaultProxy(server.port)
    proxy.add("reset", 6 << 20)  # connection reset in the middle of a PATCH / part / write
    proxy.add("stall", 1.5)
    proxy.add("truncate", 20)  # a reply cut off after 20 bytes
    destination = {**server.destination, "timeout_seconds": 10}  # a stalled reply becomes a retry
    if "url" in destination:
        destination["url"] = destination["url"].replace(str(server.port), str(proxy.port))
    elif "endpoint_url" in destination:
        destination["endpoint_url"] = destination["endpoint_url"].replace(str(server.port), str(proxy.port))
    else:
        destination["port"] = proxy.port
    config = write_config(tmp_path, destinations=[destination])
    try:
        result = subprocess.run(
            harvest_command("scan", "--config", str(config)),
            capture_output=True, text=True, env={**subprocess_env(), **server.environment}, timeout=240,
        )  # fmt: skip
    finally:
        proxy.close()
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "reset" in proxy.applied
    bag = fetch_bags(server, tmp_path / "fetched") / "TEST-SCOPE-01" / "gina" / "s1"
    bagit.Bag(str(bag)).validate()
    assert len(json.loads((bag / "harvest.json").read_text())["files"]) == 6
