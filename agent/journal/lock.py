"""One agent per state directory: an exclusive lock held for the process's lifetime.

Two agents (say ``harvest run`` and a manual ``harvest scan``) sharing a journal would
deliver the same files twice and race on commits; the second one stops with a one-line
reason instead. The lock is released by the OS when the process dies, even on kill -9.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from agent.errors import FatalError

LOCK_FILE_NAME = "agent.lock"


class StateDirLocked(FatalError):
    """Another agent process is using this state directory."""


class StateDirLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE_NAME
        self._stream: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            stream = self.path.open("a+", encoding="utf-8")
        except OSError as error:
            raise FatalError(f"state_dir {self.path.parent} is not usable: {error.strerror or error}") from None
        try:
            _lock(stream)
        except OSError:
            stream.seek(0)
            holder = stream.read().strip() or "unknown"
            stream.close()
            raise StateDirLocked(
                f"another harvest agent (pid {holder}) is using {self.path.parent}; stop it first"
            ) from None
        stream.seek(0)
        stream.truncate()
        stream.write(str(os.getpid()))
        stream.flush()
        self._stream = stream

    def release(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _lock(stream: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        stream.seek(0)
        msvcrt.locking(stream.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
