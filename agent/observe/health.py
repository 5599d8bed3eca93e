"""Health: healthy (0), degraded (1) or down (2), and why, decided in one place.

The truth table (docs/operator-guide.md) lives here: ``harvest status``'s exit code, the
``harvest_health`` metric and the ``/status`` summary all come from :func:`assess`.
Its unit tests are ``tests/unit/test_status_health.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agent.journal.schema import Hold
from agent.observe.report import Health, HealthState

HEALTHY, DEGRADED, DOWN = 0, 1, 2
HEARTBEAT_STALE_SECONDS = 30.0
UNSAFE_DEGRADED_SECONDS = 24 * 3600.0
WORKER_RESTART_DEGRADED_SECONDS = 15 * 60.0


def assess(report: Mapping[str, Any]) -> Health:
    """Healthy (0), degraded (1) or down (2), with the reasons: the exit code of `harvest status`."""
    down: list[str] = []
    degraded: list[str] = []
    if not report["agent"]["running"]:
        if report["agent"].get("unresponsive_pid"):
            down.append(
                f"the agent (pid {report['agent']['unresponsive_pid']}) runs but has not written its journal for"
                f" {HEARTBEAT_STALE_SECONDS:.0f} s or more: is the state dir full or read-only? (see its log)"
            )
        elif report["agent"].get("mode") != "scan":
            down.append("the agent is not running")
        elif not report.get("everything_archived", False):
            # A scan-only setup (cron): no daemon is expected, but data waits for the next scan.
            degraded.append("no agent is running and the last harvest scan left data not yet archived")
    failed_deliveries = sum(counts.get("failed", 0) for counts in report["deliveries"].values())
    failed_files = report["files"].get("failed", 0) - report["files"].get("quarantined", 0)
    if failed_files or failed_deliveries:
        down.append(f"{failed_files} file(s) and {failed_deliveries} delivery(ies) failed: see `harvest retry --help`")
    now = time.time()
    for name, worker in (report.get("workers") or {}).items():
        if not worker.get("alive", True):
            down.append(f"worker {name} is not running (the supervisor restarts it)")
        elif worker.get("stalled"):
            degraded.append(f"worker {name} has shown no progress for minutes")
        restarted_at = worker.get("last_restart_at")
        if restarted_at and now - float(restarted_at) < WORKER_RESTART_DEGRADED_SECONDS:
            degraded.append(
                f"worker {name} was restarted {(now - float(restarted_at)) / 60:.0f} min ago after an internal"
                f" error ({worker.get('last_restart_reason')}); see the log"
            )
    for destination in report["destinations"]:
        if destination["state"] == "paused":
            reason = destination.get("reason")
            degraded.append(f"destination {destination['name']} is paused" + (f": {reason}" if reason else ""))
        elif destination.get("hold") == Hold.OPERATOR:
            degraded.append(f"destination {destination['name']} is paused by an operator")
        elif retrying := destination.get("retrying"):
            detail = f": {retrying}" if retrying is not True else ""
            degraded.append(f"destination {destination['name']} is retrying{detail}")
    # A summary for the network (metrics status_detail) withholds paths and free text: say it without them.
    unreadable = report.get("unreadable", {}).get("count", 0)
    if unreadable:
        parts = report["unreadable"].get("parts")
        first = f" (first: {parts[0]['path']}: {parts[0]['reason']})" if parts else ""
        degraded.append(
            f"{unreadable} part(s) of the watched folders could not be read{first}; their datasets are archived"
            " as incomplete"
        )
    unsafe = report["oldest_unsafe"]
    if unsafe and unsafe["age_seconds"] > UNSAFE_DEGRADED_SECONDS:
        degraded.append(
            f"{unsafe.get('path', 'a file')} has waited {unsafe['age_seconds'] / 3600:.0f} h to reach the archive"
        )
    code = DOWN if down else DEGRADED if degraded else HEALTHY
    state: HealthState = "down" if code == DOWN else "degraded" if code == DEGRADED else "healthy"
    return Health(state=state, code=code, reasons=down + degraded)
