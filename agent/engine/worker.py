"""What every worker thread shares: its journal connection, its loop, its heartbeat, its wake.

A worker (``HashWorker``, ``TransferWorker``) writes only ``step``: one round of work.
The loop here beats the heartbeat the engine's supervision and systemd's watchdog read,
ends on the stop event or when a step says so, and never dies of a surprise: an
unexpected error is counted, kept as ``last_error`` for status, and handed to
``on_internal_error`` (back off, or pause the destination), then the loop goes on.
A worker that still ends (it could not open the journal) is restarted by the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.errors import ErrorKind, SourceChangedError, SourceVanishedError, StopRequested
from agent.journal.store import FileRecord, FileState, Journal

logger = logging.getLogger(__name__)


class Worker(threading.Thread):
    def __init__(
        self, name: str, state_dir: Path, stop: threading.Event, on_idle: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._on_idle = on_idle  # told each time the worker waits for work (a one-shot scan ends then)
        self._state_dir = state_dir
        self._stop_event = stop
        self.wake = threading.Event()  # set by the stage before it: work is waiting
        self.heartbeat = 0.0
        self.busy = False
        self.internal_errors = 0
        self.last_error: str | None = None

    def run(self) -> None:
        try:
            journal = Journal(self._state_dir)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            logger.exception("worker %s could not open the journal", self.name)
            raise
        try:
            self.prepare(journal)
            while not self._stop_event.is_set():
                self.heartbeat = time.monotonic()
                try:
                    if not self.step(journal):
                        return
                except StopRequested:
                    return
                except Exception as error:  # noqa: BLE001 - a bug or a surprise must never end the stage
                    self.busy = False
                    self.internal_errors += 1
                    self.last_error = f"{type(error).__name__}: {error}"[:300]
                    self.on_internal_error(journal, error)
        finally:
            self.busy = False
            journal.close()

    def prepare(self, journal: Journal) -> None:
        """Once, before the first step."""

    def step(self, journal: Journal) -> bool:
        """One round of work; False ends the worker."""
        raise NotImplementedError

    def on_internal_error(self, journal: Journal, error: Exception) -> None:
        raise NotImplementedError

    def idle(self, seconds: float = 1.0) -> None:
        """Wait for a wake (or *seconds*), then clear it."""
        self._on_idle()
        self.wake.wait(timeout=seconds)
        self.wake.clear()


def source_moved_on(
    journal: Journal,
    record: FileRecord,
    error: SourceChangedError | SourceVanishedError,
    on_changed: Callable[[FileRecord], None],
) -> None:
    """The file changed while it was read (it settles again) or is gone (it failed: an item error)."""
    if isinstance(error, SourceChangedError):
        journal.mark_file(record, FileState.STALE, str(error))
        on_changed(record)
        return
    journal.mark_file(record, FileState.FAILED, str(error))
    journal.record_error(ErrorKind.ITEM, str(error), path=f"{record.root}/{record.rel_path}")
