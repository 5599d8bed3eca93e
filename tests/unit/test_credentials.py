from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from agent.errors import AuthError
from agent.secrets import credentials


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_lookup_order_environment_then_systemd_then_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    credentials.store("nas-key", "from-keyring")
    assert credentials.resolve("nas-key").value == "from-keyring"
    (tmp_path / "nas-key").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert credentials.resolve("nas-key").value == "from-systemd"
    monkeypatch.setenv("HARVEST_CREDENTIAL_NAS_KEY", "from-env")
    secret = credentials.resolve("nas-key")
    assert secret.value == "from-env" and secret.source == "$HARVEST_CREDENTIAL_NAS_KEY"
    assert "from-env" not in repr(secret) and "from-env" not in str(secret)


def test_missing_credential_names_every_alternative(
    monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(AuthError) as caught:
        credentials.resolve("facility-token")
    message = str(caught.value)
    assert "$HARVEST_CREDENTIAL_FACILITY_TOKEN" in message
    assert "LoadCredential=facility-token" in message
    assert "harvest login facility-token" in message


def test_no_keyring_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends.fail import Keyring as FailKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(FailKeyring())  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(credentials.KeyringUnavailable, match="HARVEST_CREDENTIAL_X"):
            credentials.store("x", "secret")
    finally:
        keyring.set_keyring(previous)
