"""The daemon's metrics endpoint under hostile clients: bounded, quiet, loopback, discreet."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.helpers import random_file, wait_for, write_config
from tests.integration.conftest import Daemon, bag_committed
from tests.integration.servers import free_port

MIB = 1 << 20


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) of sockets listening on *port*."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, port_hex = local.partition(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return bytes(response.read())


def _get_when_free(port: int, path: str) -> bytes:
    """GET once a connection slot is free (slots of cut connections free a moment after the cut)."""

    def attempt() -> bytes | None:
        try:
            return _get(port, path)
        except (ConnectionError, urllib.error.URLError):
            return None

    body = wait_for(attempt, timeout=30, what=f"{path} served")
    assert body is not None
    return body


def test_a_flood_of_half_sent_requests_costs_no_threads_and_no_tracebacks(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    port = free_port()
    # No host: loopback only. A short deadline so the test need not wait for the default.
    config = write_config(tmp_path, metrics={"listen": f":{port}", "timeout_seconds": 2, "max_connections": 8})
    (tmp_path / "archive").mkdir()
    random_file(tmp_path / "instrument/DOE^JOHN/session-Zq7/image.raw", MIB)
    daemon = daemon_factory(config).start()
    wait_for(lambda: bag_committed(tmp_path / "archive/TEST-SCOPE-01/DOE^JOHN/session-Zq7"), timeout=60, what="bag")
    assert daemon.process is not None
    pid = daemon.process.pid
    assert _listening_addresses(port) == {"0100007F"}, "listens on 127.0.0.1 only"

    # /status is a summary: it does not name the operator (a patient, on a scanner) or the session.
    status = _get(port, "/status")
    assert json.loads(status)["detail"] == "summary"
    assert b"DOE" not in status and b"Zq7" not in status

    baseline = _threads(pid)
    slow: list[socket.socket] = []
    busiest = 0
    for index in range(400):
        connection = socket.create_connection(("127.0.0.1", port), timeout=30)
        connection.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # ...and never the blank line
        slow.append(connection)
        if index % 20 == 0:
            busiest = max(busiest, _threads(pid))
    # A thread and a deadline timer per served connection, a few more while finished ones
    # exit; never one per client.
    assert busiest <= baseline + 2 * 8 + 6, (baseline, busiest)
    for connection in slow[:200]:
        connection.close()  # half the clients vanish mid-request
    for connection in slow[200:]:
        connection.settimeout(30)
        assert connection.recv(1024) == b"", "every half-sent request is refused or cut at the deadline"
        connection.close()

    assert json.loads(_get_when_free(port, "/status"))["agent"]["running"]  # the endpoint still serves
    assert b"harvest_agent_up 1.0" in _get_when_free(port, "/metrics")
    wait_for(lambda: _threads(pid) <= baseline + 2, timeout=30, what="threads back to normal")
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()
