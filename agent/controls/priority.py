"""Lower the agent's CPU and I/O priority so the acquisition software comes first."""

from __future__ import annotations

import logging

import psutil

logger = logging.getLogger(__name__)
NICE_LOW = 10


def lower_priority() -> str:
    """Below-normal CPU priority and idle/low I/O priority; returns what was done."""
    process = psutil.Process()
    done: list[str] = []
    try:
        if psutil.WINDOWS:
            process.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)  # type: ignore[attr-defined,unused-ignore]
            process.ionice(psutil.IOPRIO_LOW)  # type: ignore[attr-defined,unused-ignore]
            done = ["CPU below normal", "I/O low"]
        else:
            if process.nice() < NICE_LOW:
                process.nice(NICE_LOW)
            done.append(f"nice {process.nice()}")
            if psutil.LINUX:
                # Lowest best-effort level, not the idle class: idle could starve the agent
                # for as long as an acquisition writes.
                process.ionice(psutil.IOPRIO_CLASS_BE, value=7)
                done.append("I/O best-effort 7")
    except (psutil.Error, OSError) as error:
        logger.warning("could not lower the process priority: %s", error)
    return ", ".join(done) or "unchanged"
