"""The local control channel: ``harvest pause/resume/retry/rescan`` talk to the daemon.

A Unix socket in the state dir (mode 0660, so the service's group may use it) or a
named pipe on Windows, via ``multiprocessing.connection``'s byte messages. Each request
is one JSON object ``{"command": NAME, "args": {...}}`` from an allow-list, answered by
one JSON object ``{"ok": bool, "message": str, ...}``. Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from agent.errors import FatalError

logger = logging.getLogger(__name__)

COMMANDS = frozenset({"ping", "pause", "resume", "retry", "rescan"})
MAX_MESSAGE_BYTES = 64 << 10
SOCKET_NAME = "control.sock"
_UNIX_PATH_MAX = 104  # the smallest sun_path limit among Linux (108) and the BSDs/macOS (104)

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


class ControlUnavailable(FatalError):
    """No daemon answers on the control channel."""


def control_address(state_dir: Path) -> tuple[str, str]:
    """(address, family) of the channel for the agent that owns *state_dir*."""
    digest = hashlib.sha256(str(state_dir.absolute()).encode()).hexdigest()[:16]
    if sys.platform == "win32":
        return rf"\\.\pipe\harvest-agent-{digest}", "AF_PIPE"
    path = str(state_dir.absolute() / SOCKET_NAME)
    if len(path.encode()) >= _UNIX_PATH_MAX:
        path = str(Path(tempfile.gettempdir()) / f"harvest-agent-{digest}.sock")
    return path, "AF_UNIX"


MAX_NESTING = 8  # requests are flat objects; anything deeper is refused before parsing


def _nesting(text: str) -> int:
    """How deeply brackets nest in a JSON text (outside strings), counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _decode(raw: bytes) -> dict[str, Any]:
    text = raw.decode("utf-8")
    if _nesting(text) > MAX_NESTING:
        raise ValueError(f"a message may nest at most {MAX_NESTING} levels")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    return value


class ControlServer(threading.Thread):
    """Accepts one client at a time; each request is answered by *handler*."""

    def __init__(self, state_dir: Path, handler: Handler, *, group: str | None = None) -> None:
        super().__init__(name="control", daemon=True)
        self._address, self._family = control_address(state_dir)
        self._handler = handler
        self._group = group
        self._closing = threading.Event()
        self._listener: Listener | None = None

    def listen(self) -> None:
        """Bind now (in the caller's thread) so errors surface at start-up."""
        if self._family == "AF_UNIX":
            # We hold the state-dir lock: a socket file left here is from a dead agent.
            with contextlib.suppress(FileNotFoundError):
                Path(self._address).unlink()
            old_umask = os.umask(0o117)
            try:
                self._listener = Listener(self._address, self._family)
            finally:
                os.umask(old_umask)
            if self._group is not None:
                import grp  # POSIX only

                os.chown(self._address, -1, grp.getgrnam(self._group).gr_gid)
            Path(self._address).chmod(0o660)
        else:
            self._listener = Listener(self._address, self._family)

    def run(self) -> None:
        listener = self._listener
        if listener is None:
            return
        while not self._closing.is_set():
            try:
                connection = listener.accept()
            except OSError:
                if self._closing.is_set():
                    return
                continue
            try:
                with connection:
                    self._serve(connection)
            except Exception:
                logger.exception("control channel: a request failed; still listening")

    def _serve(self, connection: Connection) -> None:
        try:
            if not connection.poll(5.0):
                return
            request = _decode(connection.recv_bytes(MAX_MESSAGE_BYTES))
            command = request.get("command")
            arguments = request.get("args") or {}
            if command not in COMMANDS or not isinstance(arguments, dict):
                reply: dict[str, Any] = {"ok": False, "message": f"unknown command {command!r}"}
            else:
                reply = self._handler(str(command), arguments)
        except (OSError, EOFError, ValueError, RecursionError) as error:
            reply = {"ok": False, "message": f"bad request: {str(error)[:200]}"}
        with contextlib.suppress(OSError, EOFError):
            connection.send_bytes(json.dumps(reply).encode("utf-8"))

    def close(self) -> None:
        self._closing.set()
        listener = self._listener
        if listener is None:
            return
        # accept() blocks; a connection of our own wakes it to see the flag.
        with contextlib.suppress(OSError, EOFError):
            Client(self._address, self._family).close()
        self.join(timeout=5)
        listener.close()
        if self._family == "AF_UNIX":
            with contextlib.suppress(FileNotFoundError):
                Path(self._address).unlink()


def send_command(state_dir: Path, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one command to the daemon; ``ControlUnavailable`` if none is listening."""
    address, family = control_address(state_dir)
    try:
        connection = Client(address, family)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlUnavailable(
            f"no agent is running for this config (nothing listens on {address}); start it with"
            " `systemctl start harvest-agent` or `harvest run`"
        ) from None
    except PermissionError:
        raise ControlUnavailable(
            f"permission denied on {address}: run as the service user or a member of its group"
        ) from None
    except OSError as error:
        raise ControlUnavailable(f"cannot reach the agent on {address}: {error.strerror or error}") from None
    with connection:
        try:
            connection.send_bytes(json.dumps({"command": command, "args": arguments or {}}).encode("utf-8"))
            if not connection.poll(60.0):
                raise ControlUnavailable("the agent did not answer within 60 s")
            return _decode(connection.recv_bytes(MAX_MESSAGE_BYTES))
        except (OSError, EOFError, ValueError):
            raise ControlUnavailable("the agent dropped the connection without a valid answer (stopping?)") from None
