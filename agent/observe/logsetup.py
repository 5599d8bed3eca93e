"""Logging: text or JSON lines to stderr (journald collects them), plus a rotating file.

Where no journald collects stderr (Windows, or ``logging.file`` set) the same lines go
to a size-rotated file. Every formatted line, tracebacks included, passes through
``agent.secrets.redact``: a secret that reaches an exception message never reaches a log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from agent.config.models import AgentConfig
from agent.secrets.redact import redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class RedactingFormatter(logging.Formatter):
    """Formats a record (its traceback included), then masks secrets in the whole text."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


def log_file_path(config: AgentConfig) -> Path | None:
    """The rotating log file, if any: 'auto' means one only where no journald is present."""
    setting = config.logging.file
    if setting is None:
        return None
    if setting == "auto":
        if sys.platform == "win32" and not os.environ.get("JOURNAL_STREAM"):
            return config.state_dir / "logs" / "harvest.log"
        return None
    return Path(setting)


def setup_logging(config: AgentConfig, *, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, config.logging.level.upper())
    formatter: logging.Formatter = (
        JsonFormatter() if config.logging.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    path = log_file_path(config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                path,
                maxBytes=config.logging.max_bytes,
                backupCount=config.logging.backups,
                encoding="utf-8",
                errors="backslashreplace",
            )
        )
    if path is not None:
        with contextlib.suppress(OSError):
            path.chmod(0o640)  # never readable by other local users, whatever the umask
    for handler in handlers:
        handler.setFormatter(RedactingFormatter(formatter))
    logging.basicConfig(level=level, handlers=handlers, force=True)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    for noisy in ("botocore", "boto3", "urllib3", "paramiko", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
