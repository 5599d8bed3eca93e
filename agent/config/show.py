"""``harvest config show``: the effective configuration, with anything secret redacted.

Secrets never live in the config (only credential *names*), but a URL can carry a
user:password or a signed query string; those parts are replaced by ``***``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from agent.config.models import AgentConfig

REDACTED = "***"
_SECRET_KEYS = re.compile(r"(password|secret|token|signature|credential_value|key_id)", re.IGNORECASE)


def _redact_url(text: str) -> str:
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {name: redact(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [redact(item, key) for item in value]
    if isinstance(value, str):
        if _SECRET_KEYS.search(key):
            return REDACTED
        return _redact_url(value) if "://" in value else value
    return value


def effective_yaml(config: AgentConfig) -> str:
    data = redact(config.model_dump(mode="json"))
    header = "# effective configuration: defaults filled in, relative paths resolved, secrets redacted\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
