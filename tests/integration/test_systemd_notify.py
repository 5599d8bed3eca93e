"""The daemon speaks sd_notify: READY=1 when running, STATUS= lines, WATCHDOG=1 pings, STOPPING=1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import harvest_command, subprocess_env, write_config


def test_ready_status_watchdog_and_stopping(tmp_path: Path) -> None:
    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    config = write_config(tmp_path)
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(1.0)
    environment = {**subprocess_env(), "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"}
    process = subprocess.Popen(
        harvest_command("run", "--config", str(config)),
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("WATCHDOG=1" in message for message in messages):
            try:
                messages.append(receiver.recv(4096).decode())
            except TimeoutError:
                continue
        assert any(message.startswith("READY=1") for message in messages), messages
        assert any("STATUS=" in message and "settling" in message for message in messages), messages
        assert any("WATCHDOG=1" in message for message in messages), messages
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("STOPPING=1" in message for message in messages):
            try:
                messages.append(receiver.recv(4096).decode())
            except TimeoutError:
                continue
        assert any("STOPPING=1" in message for message in messages), messages
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        receiver.close()
        os.unlink(address)
