"""Bandwidth limits: parse rates like ``"10MiB/s"`` and pace bytes with a token bucket.

The limiter is applied to the bytes actually written or sent, after each chunk, so
the long-run rate holds whatever the chunk size; a short burst of one chunk is allowed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
    "g": 1000**3, "gb": 1000**3, "gib": 1 << 30,
}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> float | None:
    """Bytes per second for ``"20MiB/s"``, ``"500k"``, ...; ``None`` for ``"off"`` (unlimited)."""
    if text.strip().lower() in ("off", "unlimited", "none"):
        return None
    found = _RATE.match(text)
    if found is None or found.group(2).lower() not in _UNITS:
        raise ValueError(f"not a rate: {text!r} (expected e.g. '10MiB/s', '500KB/s' or 'off')")
    rate = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if rate <= 0:
        raise ValueError(f"rate must be positive: {text!r}")
    return rate


class RateLimiter:
    """Token bucket; ``rate()`` is asked each time, so a timetable can change it."""

    def __init__(
        self,
        rate: Callable[[], float | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
        burst_seconds: float = 0.25,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._stop = stop or threading.Event()
        self._burst_seconds = burst_seconds
        self._lock = threading.Lock()
        self._debt_until = clock()

    def consume(self, count: int) -> float:
        """Account for *count* bytes; sleep until the rate allows them. Returns seconds slept."""
        rate = self._rate()
        if rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            # Unused allowance older than the burst window is forgotten.
            start = max(self._debt_until, now - self._burst_seconds)
            self._debt_until = start + count / rate
            wait = self._debt_until - now
        if wait > 0:
            self._stop.wait(wait)
            return wait
        return 0.0
