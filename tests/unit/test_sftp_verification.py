"""How an SFTP copy is verified: the server's own hash where it offers one, else read back.

The SSH exec channel and the remote read are replaced by fakes (the real server is in the
integration tests, where rclone serve sftp answers sha256sum); what is checked here is the
decision: which hash is trusted, when the copy is read back, and when it is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.config.destinations import SftpDestination
from agent.destinations.base import READ_BACK, PayloadItem
from agent.destinations.sftp import SftpTransport
from agent.errors import ItemError
from agent.journal.store import FileIdentity

DATA = b"acquired bytes" * 1000
SHA256 = hashlib.sha256(DATA).hexdigest()


class FakeServer:
    """Answers hash commands like a shell over SSH exec would (or refuses them)."""

    def __init__(self, commands: dict[str, str | None], stored: bytes = DATA) -> None:
        self.commands = commands  # command -> hashlib name it runs; None: not offered
        self.stored = stored
        self.calls: list[str] = []
        self.read_back = 0

    def exec(self, command: str) -> str | None:
        self.calls.append(command)
        name, _, path = command.partition(" ")
        algorithm = self.commands.get(name)
        if algorithm is None:
            return None
        return f"{hashlib.new(algorithm, self.stored if path else b'').hexdigest()}  {path or '-'}\n"

    def remote_sha256(self, path: str, length: int | None = None) -> str:
        self.read_back += 1
        return hashlib.sha256(self.stored).hexdigest()


def transport(tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> SftpTransport:
    config = SftpDestination(type="sftp", name="nas", host="127.0.0.1", username="harvest", path="/archive")
    sftp = SftpTransport(config, tmp_path)
    monkeypatch.setattr(sftp, "_exec", server.exec)
    monkeypatch.setattr(sftp, "_remote_sha256", server.remote_sha256)
    return sftp


def item(tmp_path: Path) -> PayloadItem:
    return PayloadItem(tmp_path / "src", FileIdentity(1, 2, len(DATA), 3), SHA256, "FAC/a/s1", "x.raw", 0)


def test_a_server_that_runs_sha256sum_verifies_without_reading_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer({"sha256sum": "sha256", "md5sum": "md5"})
    sftp = transport(tmp_path, server, monkeypatch)
    assert sftp._verify("/archive/.harvest-partial/x.partial", item(tmp_path), {"sha256": SHA256}) == "server sha256sum"
    assert server.read_back == 0
    sftp._verify("/archive/.harvest-partial/y.partial", item(tmp_path), {"sha256": SHA256})
    assert [call.split()[0] for call in server.calls].count("sha256sum") == 3  # probed once, then one per file


def test_an_md5_only_server_is_compared_with_the_md5_computed_while_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer({"md5sum": "md5"})
    sftp = transport(tmp_path, server, monkeypatch)
    sent = {"sha256": SHA256, "md5": hashlib.md5(DATA).hexdigest()}  # noqa: S324
    assert sftp._verify("/archive/p", item(tmp_path), sent) == "server md5sum"
    assert server.read_back == 0


def test_without_a_hash_command_the_copy_is_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer({})
    sftp = transport(tmp_path, server, monkeypatch)
    assert sftp._verify("/archive/p", item(tmp_path), {"sha256": SHA256}) == READ_BACK
    assert server.read_back == 1


def test_a_shell_that_prints_something_else_is_not_a_hash_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer({})
    sftp = transport(tmp_path, server, monkeypatch)
    monkeypatch.setattr(sftp, "_exec", lambda command: "Welcome to the archive!\n")
    assert sftp._verify("/archive/p", item(tmp_path), {"sha256": SHA256}) == READ_BACK


def test_a_damaged_copy_is_refused_by_the_server_hash_and_by_the_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer({"sha256sum": "sha256"}, stored=DATA[:-1] + b"!")
    sftp = transport(tmp_path, server, monkeypatch)
    with pytest.raises(ItemError, match="verification failed"):
        sftp._verify("/archive/p", item(tmp_path), {"sha256": SHA256})
    assert server.read_back == 1  # a disagreeing server hash is confirmed by reading back


def test_a_server_whose_hash_disagrees_with_a_good_copy_is_not_trusted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer({"sha256sum": "sha256"})
    sftp = transport(tmp_path, server, monkeypatch)
    monkeypatch.setattr(sftp, "_server_digest", lambda command, algorithm, path: "0" * 64)
    assert sftp._verify("/archive/p", item(tmp_path), {"sha256": SHA256}) == READ_BACK
    assert sftp._verify("/archive/q", item(tmp_path), {"sha256": SHA256}) == READ_BACK
    assert server.read_back == 2


def test_bytes_that_changed_while_sent_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sftp = transport(tmp_path, FakeServer({"sha256sum": "sha256"}), monkeypatch)
    with pytest.raises(ItemError, match="changed while it was sent"):
        sftp._verify("/archive/p", item(tmp_path), {"sha256": "1" * 64})
