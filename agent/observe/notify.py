"""systemd service notifications (sd_notify), without a C dependency.

``READY=1`` once the journal is open and the watchers run, ``STATUS=`` lines that sum up
progress, and ``WATCHDOG=1`` only while every worker thread's heartbeat is recent: a
hung worker stops the pings and systemd restarts the service instead of letting it
stall silently. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract socket namespace
        self._address = address
        watchdog_usec = os.environ.get("WATCHDOG_USEC")
        watchdog_pid = os.environ.get("WATCHDOG_PID")
        enabled = watchdog_usec and (not watchdog_pid or int(watchdog_pid) == os.getpid())
        # Ping at half the watchdog period, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval_seconds = int(watchdog_usec) / 2e6 if enabled and watchdog_usec else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *fields: str) -> None:
        if not self._address:
            return
        message = "\n".join(fields).encode("utf-8")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self._address)
                sock.sendall(message)
            except OSError:
                pass  # systemd went away (shutdown): nothing useful to do

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping: in-flight uploads will resume at the next start")
