"""The engine's side services: the control channel, the metrics endpoint, transfer rates.

Each is optional: one that cannot start is recorded as an error and the pipeline goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent.config.models import AgentConfig
from agent.controls.channel import ControlServer
from agent.errors import ErrorKind, HarvestError
from agent.journal.store import Journal
from agent.observe.metrics_server import MetricsServer
from agent.secrets import credentials

logger = logging.getLogger(__name__)


def start_control(config: AgentConfig, submit: Callable[..., Any], journal: Journal) -> ControlServer | None:
    """The control channel for ``harvest pause/resume/retry/rescan``, listening; None if disabled or unavailable."""
    if not config.control.enabled:
        return None
    control = ControlServer(config.state_dir, submit, group=config.control.group)
    try:
        control.listen()
    except (OSError, KeyError) as error:
        message = f"control channel unavailable ({error}); harvest pause/resume/retry/rescan will not work"
        logger.warning(message)
        journal.record_error(ErrorKind.CONTROL, message)
        return None
    control.start()
    return control


def start_metrics(config: AgentConfig, journal: Journal) -> MetricsServer | None:
    """The /metrics and /status endpoint, serving; None if not configured or unavailable."""
    settings = config.metrics
    if settings is None:
        return None
    try:
        token = credentials.resolve(settings.credential).value if settings.credential else None
        server = MetricsServer(settings, config.state_dir, token=token)
    except (OSError, HarvestError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        message = f"metrics endpoint {settings.listen} unavailable: {detail}"
        logger.error(message)
        journal.record_error(ErrorKind.METRICS, message)
        return None
    server.start()
    logger.info("serving /metrics and /status on %s", settings.listen)
    return server


class RateMeter:
    """Bytes per second, smoothed over about six seconds of heartbeats."""

    def __init__(self) -> None:
        self.rate = 0.0
        self._last_bytes = 0
        self._last_time: float | None = None

    def update(self, total_bytes: int, now: float) -> float:
        if self._last_time is not None and now > self._last_time:
            instant = (total_bytes - self._last_bytes) / (now - self._last_time)
            weight = min(1.0, (now - self._last_time) / 6.0)
            # From idle, the first measured interval is the estimate (no slow ramp from zero).
            self.rate = instant if self.rate < 1.0 else self.rate + weight * (instant - self.rate)
        self._last_bytes, self._last_time = total_bytes, now
        return self.rate
