"""The acquisition guard: while the instrument is writing, uploads slow down.

The settle stage reports every change it sees to a file it is still waiting on (a file
that grows or is rewritten). For ``active_seconds`` after the last such change the
guard is on, and every destination together sends at most the guard's rate, so the
acquisition software keeps the disk and the network link it needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agent.config.models import GuardSettings
from agent.rules.bandwidth import RateLimiter, parse_rate


class AcquisitionGuard:
    def __init__(
        self,
        settings: GuardSettings,
        *,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        min_active_seconds: float = 0.0,
    ) -> None:
        self._settings = settings
        # A polled root reports growth only once per poll: stay on across the gaps.
        self._active_seconds = max(settings.active_seconds, min_active_seconds)
        self._clock = clock
        self._rate = parse_rate(settings.bandwidth)
        self._last_growth: float | None = None
        self._since_wall: float | None = None
        self._growing_path = ""
        self.limiter = RateLimiter(self.rate, clock=clock, stop=stop)

    def growth_seen(self, path: str) -> None:
        """Called from the engine thread when a file that is not yet settled changes."""
        if not self._settings.enabled:
            return
        if not self.active:
            self._since_wall = time.time()
        self._last_growth = self._clock()
        self._growing_path = path

    @property
    def active(self) -> bool:
        last = self._last_growth
        return last is not None and self._clock() - last < self._active_seconds

    def rate(self) -> float | None:
        """The shared rate while active; unlimited otherwise."""
        return self._rate if self.active else None

    def facts(self) -> dict[str, str]:
        """What status shows: on/off, since when, and which file was last seen growing."""
        active = self.active
        return {
            "guard_active": "1" if active else "0",
            "guard_since": str(self._since_wall) if active and self._since_wall else "",
            "guard_path": self._growing_path if active else "",
            "guard_rate": str(self._rate or ""),
        }
