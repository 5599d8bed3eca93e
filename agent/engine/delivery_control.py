"""The engine's side of one delivery, as the transport sees it (``destinations.base.TransferControl``).

It journals intent before the first byte (for copies that can resume), stores what a
transport needs to resume, checkpoints durable offsets, counts progress, and tells the
transport to stop at the next checkpoint when the agent stops or uploads are held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.journal.store import DeliveryRecord, Journal

logger = logging.getLogger(__name__)


@dataclass
class DeliveryControl:
    """The engine's side of one delivery: journal intent, checkpoints, stop requests."""

    journal: Journal
    delivery: DeliveryRecord
    stop: threading.Event
    hold: Callable[[], str | None] = field(default=lambda: None)
    journal_intent_from_bytes: int = 8 << 20
    sent_bytes: int = 0
    resumed_from_bytes: int | None = None
    on_progress: Callable[[int], object] = field(default=lambda count: None)

    def started(self, remote_key: str, resumed_from_bytes: int | None) -> None:
        self.resumed_from_bytes = resumed_from_bytes
        if resumed_from_bytes:
            logger.info("resuming %s from byte %d", remote_key, resumed_from_bytes)
        # Intent matters for copies that can resume (and that status shows in flight);
        # a small file is simply copied again after a crash, so its intent is not
        # journalled: one transaction per file would halve small-file throughput.
        if resumed_from_bytes or self.delivery.file.identity.size_bytes >= self.journal_intent_from_bytes:
            self.journal.start_delivery(self.delivery, remote_key, resumed_from_bytes)

    def save_state(self, state: dict[str, Any] | None) -> None:
        self.journal.save_remote_state(self.delivery, state)

    def checkpoint(self, offset_bytes: int) -> None:
        self.journal.checkpoint_delivery(self.delivery, offset_bytes)

    def progress(self, sent_bytes: int) -> None:
        self.sent_bytes += sent_bytes
        self.on_progress(sent_bytes)

    def should_stop(self) -> bool:
        """Shutting down, or paused by the operator / an upload window closed: stop at a checkpoint."""
        return self.stop.is_set() or self.hold() is not None
