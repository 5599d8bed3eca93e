"""The control channel: JSON requests, an allow-list, clear errors without a daemon."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

import pytest

from agent.controls.channel import ControlServer, ControlUnavailable, ControlUntrusted, control_address, send_command


def test_commands_reach_the_handler_and_answers_come_back(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(command: str, arguments: dict[str, Any]) -> dict[str, Any]:
        seen.append((command, arguments))
        return {"ok": True, "message": f"did {command}"}

    server = ControlServer(tmp_path, handler)
    server.listen()
    server.start()
    try:
        reply = send_command(tmp_path, "pause", {"destination": "archive"})
        assert reply == {"ok": True, "message": "did pause"}
        assert seen == [("pause", {"destination": "archive"})]
        refused = send_command(tmp_path, "shutdown")
        assert refused["ok"] is False and "unknown command" in refused["message"]
        assert len(seen) == 1  # never reached the handler
        if sys.platform != "win32":
            mode = stat.S_IMODE(Path(control_address(tmp_path)[0]).stat().st_mode)
            assert mode == 0o660
    finally:
        server.close()
    assert not server.is_alive()
    assert not (tmp_path / "control.sock").exists()


def test_malformed_requests_get_an_error_not_a_crash(tmp_path: Path) -> None:
    server = ControlServer(tmp_path, lambda command, arguments: {"ok": True, "message": ""})
    server.listen()
    server.start()
    try:
        address, family = control_address(tmp_path)
        with Client(address, family) as connection:
            connection.send_bytes(b"not json")
            reply = json.loads(connection.recv_bytes())
        assert reply["ok"] is False and "bad request" in reply["message"]
        assert send_command(tmp_path, "ping")["ok"] is True  # still serving
    finally:
        server.close()


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ControlUnavailable, match="no agent is running"):
        send_command(tmp_path, "ping")


def test_a_long_state_dir_keeps_its_socket_inside_it(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True, mode=0o700)
    before = set(Path(tempfile.gettempdir()).glob("harvest-agent-*"))
    server = ControlServer(deep, lambda command, arguments: {"ok": True, "message": f"did {command}"})
    if not Path("/proc/self/fd").is_dir():  # no way to reach a long path: a clear error instead
        with pytest.raises(OSError, match="choose a shorter state_dir"):
            server.listen()
        return
    server.listen()
    server.start()
    try:
        assert (deep / "control.sock").is_socket()
        assert set(Path(tempfile.gettempdir()).glob("harvest-agent-*")) == before, "nothing in a shared directory"
        assert send_command(deep, "pause") == {"ok": True, "message": "did pause"}
    finally:
        server.close()
    assert not (deep / "control.sock").exists()


def test_a_state_dir_every_user_may_write_is_refused_on_both_sides(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    server = ControlServer(state, lambda command, arguments: {"ok": True, "message": "paused"})
    server.listen()
    server.start()
    try:
        state.chmod(0o777)
        with pytest.raises(ControlUntrusted, match="writable by every user"):
            send_command(state, "pause")
    finally:
        server.close()
    with pytest.raises(OSError, match="writable by every user"):
        ControlServer(state, lambda command, arguments: {"ok": True, "message": ""}).listen()


def _squat(path: Path, uid: int) -> int:
    """Fork a process that drops to *uid*, listens on *path* and answers every request 'paused'."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the squatter: never returns into pytest
        try:
            os.setgid(uid)
            os.setuid(uid)
            with Listener(str(path), "AF_UNIX") as listener:
                os.write(ready_write, b"1")
                while True:
                    with listener.accept() as connection, contextlib.suppress(OSError):
                        connection.send_bytes(json.dumps({"ok": True, "message": "paused (squatter)"}).encode())
        finally:
            os._exit(0)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"1", "the squatter did not start"
    os.close(ready_read)
    return pid


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="running a squatter as another user needs root (CI is root)"
)
def test_a_socket_another_user_planted_is_never_trusted(tmp_path: Path) -> None:
    nobody = 65534
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    lair = Path(tempfile.mkdtemp(prefix="squatter-"))  # somewhere the other user may write
    lair.chmod(0o777)
    squatter = _squat(lair / "s.sock", nobody)
    try:
        (lair / "s.sock").rename(state / "control.sock")  # as if it had been there first
        with pytest.raises(ControlUntrusted, match="not the agent's socket"):
            send_command(state, "pause")
        if hasattr(socket, "SO_PEERCRED"):  # the file now looks right; the listening process still does not
            os.chown(state / "control.sock", 0, 0)
            with pytest.raises(ControlUntrusted, match="runs as uid 65534"):
                send_command(state, "pause")
    finally:
        os.kill(squatter, signal.SIGKILL)
        os.waitpid(squatter, 0)
        shutil.rmtree(lair, ignore_errors=True)


def test_windows_uses_a_named_pipe_per_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    first, family = control_address(tmp_path / "a")
    second, _ = control_address(tmp_path / "b")
    assert family == "AF_PIPE"
    assert first.startswith("\\\\.\\pipe\\harvest-agent-") and first != second


def test_an_agent_that_drops_the_connection_is_a_clear_error(tmp_path: Path) -> None:
    import threading
    from multiprocessing.connection import Listener

    address, family = control_address(tmp_path)
    with Listener(address, family) as listener:

        def drop_one() -> None:
            listener.accept().close()

        thread = threading.Thread(target=drop_one)
        thread.start()
        with pytest.raises(ControlUnavailable, match="dropped the connection"):
            send_command(tmp_path, "ping")
        thread.join()


def test_deeply_nested_or_hostile_requests_never_end_the_channel(tmp_path: Path) -> None:
    def failing(command: str, arguments: dict[str, object]) -> dict[str, object]:
        if command == "rescan":
            raise RuntimeError("a bug in a handler")
        return {"ok": True, "message": ""}

    server = ControlServer(tmp_path, failing)
    server.listen()
    server.start()
    try:
        address, family = control_address(tmp_path)
        too_deep = b'{"command": "ping", "args": ' + b'{"a": ' * 9 + b"{}" + b"}" * 9 + b"}"
        for hostile in (b"[" * 60_000, b'{"command": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", too_deep):
            with Client(address, family) as connection:
                connection.send_bytes(hostile)
                reply = json.loads(connection.recv_bytes())
            assert reply["ok"] is False and "nest" in reply["message"], reply
        with contextlib.suppress(Exception):
            send_command(tmp_path, "rescan")  # the handler raises: the channel must survive it
        assert server.is_alive()
        assert send_command(tmp_path, "ping")["ok"] is True  # still serving
    finally:
        server.close()
