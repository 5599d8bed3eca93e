"""Secrets for destinations: resolved at use, never logged, never in config or status.

``credential: NAME`` in a destination is looked up, in order, in:

1. ``$HARVEST_CREDENTIAL_<NAME>`` (upper-case, other characters as ``_``);
2. ``$CREDENTIALS_DIRECTORY/NAME`` (systemd ``LoadCredential=``);
3. the OS keyring, service ``harvest-agent`` (Windows Credential Manager, macOS
   Keychain, Secret Service), written by ``harvest login NAME``.

A ``Secret`` never shows its value in ``repr``/``str``, so it cannot leak through a log
line or an exception message by accident.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import AuthError, FatalError

KEYRING_SERVICE = "harvest-agent"


@dataclass(frozen=True)
class Secret:
    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"<secret from {self.source}>"


# Every secret resolved in this process, so that the log filter can mask it wherever it appears.
_RESOLVED: set[str] = set()


def resolved_secrets() -> frozenset[str]:
    return frozenset(_RESOLVED)


def _remember(secret: Secret) -> Secret:
    for part in (secret.value, *secret.value.split(":", 1)[1:]):
        if len(part) >= 6:
            _RESOLVED.add(part)
    return secret


def environment_variable(name: str) -> str:
    return "HARVEST_CREDENTIAL_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class CredentialMissing(AuthError):
    """A credential the config names is set nowhere (environment, systemd credentials, keyring)."""


class KeyringUnavailable(FatalError):
    """No usable keyring backend (typical on a headless server)."""


def _keyring_get(name: str) -> str | None:
    import keyring
    from keyring.errors import KeyringError, NoKeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, name)
    except NoKeyringError:
        return None
    except KeyringError as error:
        raise KeyringUnavailable(f"the OS keyring could not be read: {type(error).__name__}") from None


def resolve(name: str) -> Secret:
    """The secret called *name*; ``AuthError`` naming every place looked in if absent."""
    variable = environment_variable(name)
    value = os.environ.get(variable)
    if value:
        return _remember(Secret(value, f"${variable}"))
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / name
        if path.is_file():
            return _remember(Secret(path.read_text(encoding="utf-8").strip(), f"systemd credential {name}"))
    value = _keyring_get(name)
    if value:
        return _remember(Secret(value, f"keyring {KEYRING_SERVICE}/{name}"))
    raise CredentialMissing(
        f"credential {name!r} not found: set ${variable}, provide it as a systemd credential"
        f" (LoadCredential={name}:...), or run `harvest login {name}`"
    )


def store(name: str, value: str) -> None:
    """Store a secret in the OS keyring (``harvest login``)."""
    import keyring
    from keyring.errors import KeyringError, NoKeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, name, value)
    except NoKeyringError:
        raise KeyringUnavailable(
            "no OS keyring is available on this machine (headless server?): give the secret as"
            f" ${environment_variable(name)} or as a systemd credential (LoadCredential={name}:/path)"
        ) from None
    except KeyringError as error:
        raise KeyringUnavailable(f"the OS keyring refused to store the secret: {type(error).__name__}") from None
