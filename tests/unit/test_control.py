"""The control channel: JSON requests, an allow-list, clear errors without a daemon."""

from __future__ import annotations

import contextlib
import json
import stat
import sys
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import pytest

from agent.control import ControlServer, ControlUnavailable, control_address, send_command


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


def test_a_long_state_dir_falls_back_to_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    address, family = control_address(deep)
    if family == "AF_UNIX":
        assert len(address.encode()) < 104
        assert address != str(deep / "control.sock")


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
