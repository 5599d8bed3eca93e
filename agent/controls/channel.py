"""The local control channel: ``harvest pause/resume/retry/rescan`` talk to the daemon.

A Unix socket in the state dir (mode 0660, so the service's group may use it) or a
named pipe on Windows, via ``multiprocessing.connection``'s byte messages. Each request
is one JSON object ``{"command": NAME, "args": {...}}`` from an allow-list, answered by
one JSON object ``{"ok": bool, "message": str, ...}``. Nothing is unpickled.

The socket never leaves the state dir, which only the service user (and its group) may
write: no world-writable fallback another local user could take first. A state dir too
deep for a socket path (104 bytes) is reached on Linux through ``/proc/self/fd/N/``, an
open handle on the directory itself. The client trusts a reply only from a socket owned
by the state dir's owner (or root) and, where the kernel says who listens
(``SO_PEERCRED``), from a process running as that user; a state dir every user may write
is refused on both sides.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterator
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


class ControlUntrusted(FatalError):
    """Something answers on the control channel that is not the agent's user."""


def control_address(state_dir: Path) -> tuple[str, str]:
    """(address, family) of the channel for the agent that owns *state_dir*.

    On POSIX this is always ``STATE_DIR/control.sock``; :func:`reachable` makes a path
    too long for a socket usable.
    """
    if sys.platform == "win32":
        digest = hashlib.sha256(str(state_dir.absolute()).encode()).hexdigest()[:16]
        return rf"\\.\pipe\harvest-agent-{digest}", "AF_PIPE"
    return str(state_dir.absolute() / SOCKET_NAME), "AF_UNIX"


@contextlib.contextmanager
def reachable(state_dir: Path) -> Iterator[tuple[str, str]]:
    """(address, family) to bind or connect to now; a long path goes through a directory handle."""
    address, family = control_address(state_dir)
    if family != "AF_UNIX" or len(address.encode()) < _UNIX_PATH_MAX:
        yield address, family
        return
    if not Path("/proc/self/fd").is_dir():
        raise OSError(
            f"the state dir path is too long for a control socket on this system ({len(address.encode())} bytes,"
            f" under {_UNIX_PATH_MAX} needed): choose a shorter state_dir"
        )
    handle = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{handle}/{SOCKET_NAME}", family
    finally:
        os.close(handle)


def _writable_by_all(directory: Path) -> bool:
    return bool(directory.stat().st_mode & stat.S_IWOTH)


def _peer_uid(connection: Connection) -> int | None:
    """The uid of the process at the other end of a Unix socket, where the kernel tells."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    with socket.socket(fileno=os.dup(connection.fileno())) as view:
        _pid, uid, _gid = struct.unpack("3i", view.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return int(uid)


def _check_trusted(state_dir: Path, address: str, connection: Connection) -> None:
    """Refuse a channel that someone other than the state dir's owner (or root) provides."""
    owner = state_dir.stat().st_uid
    trusted = {owner, 0}
    if _writable_by_all(state_dir):
        raise ControlUntrusted(
            f"the state dir {state_dir} is writable by every user, so its control socket cannot be trusted;"
            " make it 0700 or 0750"
        )
    info = Path(address).stat()
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid not in trusted:
        raise ControlUntrusted(
            f"{control_address(state_dir)[0]} is not the agent's socket (owned by uid {info.st_uid}, the state dir"
            f" by uid {owner}): refusing to trust it"
        )
    peer = _peer_uid(connection)
    if peer is not None and peer not in trusted:
        raise ControlUntrusted(
            f"the process listening on the control socket runs as uid {peer}, not the agent's user"
            f" (uid {owner}): refusing to trust it"
        )


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
        self._state_dir = state_dir
        self._handler = handler
        self._group = group
        self._closing = threading.Event()
        self._listener: Listener | None = None
        self._held = contextlib.ExitStack()  # keeps a long state dir reachable while we listen
        self._address, self._family = control_address(state_dir)

    def listen(self) -> None:
        """Bind now (in the caller's thread) so errors surface at start-up."""
        if self._family != "AF_UNIX":
            self._listener = Listener(self._address, self._family)
            return
        if _writable_by_all(self._state_dir):
            raise OSError(f"the state dir {self._state_dir} is writable by every user; make it 0700 or 0750")
        self._address, _ = self._held.enter_context(reachable(self._state_dir))
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
        self._held.close()


def send_command(state_dir: Path, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one command to the daemon; ``ControlUnavailable`` if none is listening."""
    display = control_address(state_dir)[0]
    try:
        with reachable(state_dir) as (address, family):
            connection = Client(address, family)
            try:
                if family == "AF_UNIX":
                    _check_trusted(state_dir, address, connection)
            except BaseException:
                connection.close()
                raise
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlUnavailable(
            f"no agent is running for this config (nothing listens on {display}); start it with"
            " `systemctl start harvest-agent` or `harvest run`"
        ) from None
    except PermissionError:
        raise ControlUnavailable(
            f"permission denied on {display}: run as the service user or a member of its group"
        ) from None
    except OSError as error:
        raise ControlUnavailable(f"cannot reach the agent on {display}: {error.strerror or error}") from None
    with connection:
        try:
            connection.send_bytes(json.dumps({"command": command, "args": arguments or {}}).encode("utf-8"))
            if not connection.poll(60.0):
                raise ControlUnavailable("the agent did not answer within 60 s")
            return _decode(connection.recv_bytes(MAX_MESSAGE_BYTES))
        except (OSError, EOFError, ValueError):
            raise ControlUnavailable("the agent dropped the connection without a valid answer (stopping?)") from None
