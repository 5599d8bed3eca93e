"""Worker supervision's bookkeeping: restarts, and each worker's health as status facts.

The engine restarts a worker thread that ended without being asked to; this records
why and when (log, journal error, count) and describes every worker for ``harvest
status`` and ``/metrics``: alive, stalled, restarts, errors it survived.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from agent.errors import ErrorKind
from agent.journal.store import Journal

logger = logging.getLogger(__name__)
HUNG_WORKER_SECONDS = 120.0  # a worker without a heartbeat this long counts as stalled


class Worker(Protocol):
    heartbeat: float
    internal_errors: int

    def is_alive(self) -> bool: ...


class RestartLog:
    def __init__(self) -> None:
        self._restarts: dict[str, tuple[int, float, str]] = {}
        self._lock = threading.Lock()

    def note(self, name: str, reason: str, journal: Journal) -> None:
        with self._lock:
            count = self._restarts.get(name, (0, 0.0, ""))[0] + 1
            self._restarts[name] = (count, time.time(), reason)
        message = f"worker {name} stopped ({reason}); restarted it (restart {count})"
        logger.error(message)
        with contextlib.suppress(Exception):  # the journal may be what failed
            journal.record_error(ErrorKind.INTERNAL, message)

    def facts(self, workers: Sequence[tuple[str, Worker, bool]]) -> dict[str, dict[str, object]]:
        """(name, worker, finished on purpose) -> alive, stalled, restarts, internal errors."""
        now = time.monotonic()
        facts: dict[str, dict[str, object]] = {}
        for name, worker, finished in workers:
            with self._lock:
                count, at, reason = self._restarts.get(name, (0, 0.0, ""))
            alive = worker.is_alive()
            facts[name] = {
                "alive": alive or finished,
                "stalled": alive and worker.heartbeat > 0 and now - worker.heartbeat > HUNG_WORKER_SECONDS,
                "restarts": count,
                "last_restart_at": at or None,
                "last_restart_reason": reason or None,
                "internal_errors": worker.internal_errors,
            }
        return facts
