"""A rerun never sends again what an S3 archive already holds, whatever the server keeps."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import harvest_command, subprocess_env, write_config
from tests.integration.faultproxy import FaultProxy
from tests.integration.servers import start_rclone_s3


def _scan(config: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        harvest_command("scan", "--config", str(config)),
        capture_output=True, text=True, env={**subprocess_env(), **environment}, timeout=240,
    )  # fmt: skip


def test_rclone_s3_rerun_with_a_fresh_state_dir_and_a_restarted_server_sends_nothing_large(tmp_path: Path) -> None:
    session = tmp_path / "instrument" / "ida" / "s1"
    session.mkdir(parents=True)
    (session / "stack.raw").write_bytes(os.urandom(12 << 20))  # multipart (5 MiB parts)
    (session / "single.raw").write_bytes(os.urandom(6 << 20))  # above a part: looked up too
    server = start_rclone_s3(tmp_path)
    proxy = FaultProxy(server.port)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        destination = {**server.destination}
        destination["endpoint_url"] = destination["endpoint_url"].replace(str(server.port), str(proxy.port))
        config = write_config(tmp_path, destinations=[destination])
        first = _scan(config, server.environment)
        assert first.returncode == 0, first.stdout + first.stderr[-2000:]
        sent_first = [line for line in proxy.requests if b"stack.raw" in line and line.startswith(b"PUT")]
        assert sent_first, "the first run uploads the file"

        # A fresh state dir, and a server that forgot every object's metadata (a restart).
        shutil.rmtree(tmp_path / "state")
        server.stop()
        restarted = start_rclone_s3_at(tmp_path, server.port)
        proxy.requests.clear()
        second = _scan(config, server.environment)
        assert second.returncode == 0, second.stdout + second.stderr[-2000:]
        resent = [line for line in proxy.requests if line.startswith(b"PUT") and b".raw" in line]
        assert resent == [], resent
    finally:
        proxy.close()
        server.stop()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(timeout=10)


def start_rclone_s3_at(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """rclone serve s3 again on the same port and folder (objects kept, metadata not)."""
    from tests.integration.servers import ACCESS_KEY, SECRET_KEY, _start, rclone

    return _start(
        [rclone(), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
         "--config", "/dev/null", str(tmp_path / "rclone-s3")],
        port, tmp_path / "rclone-s3-again.log",
    )  # fmt: skip
