"""Health levels of `harvest status` (its exit code), from a report."""

from __future__ import annotations

from typing import Any

from agent.status import DEGRADED, DOWN, HEALTHY, UNSAFE_DEGRADED_SECONDS, assess


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agent": {"running": True},
        "files": {"failed": 0, "quarantined": 0},
        "deliveries": {"archive": {"verified": 3, "failed": 0}},
        "destinations": [{"name": "archive", "state": "active", "reason": None, "hold": None}],
        "oldest_unsafe": None,
    }
    base.update(changes)
    return base


def test_all_well_is_healthy() -> None:
    assert assess(report()) == {"state": "healthy", "code": HEALTHY, "reasons": []}


def test_an_agent_that_is_not_running_is_down() -> None:
    health = assess(report(agent={"running": False}))
    assert health["code"] == DOWN and "not running" in health["reasons"][0]


def test_failed_files_or_deliveries_are_down_but_quarantine_is_not() -> None:
    assert assess(report(files={"failed": 1, "quarantined": 0}))["code"] == DOWN
    assert assess(report(deliveries={"archive": {"failed": 2}}))["code"] == DOWN
    assert assess(report(files={"failed": 1, "quarantined": 1}))["code"] == HEALTHY


def test_paused_destinations_and_old_unsafe_data_are_degraded() -> None:
    paused = [{"name": "archive", "state": "paused", "reason": "unreachable", "hold": None}]
    assert assess(report(destinations=paused))["code"] == DEGRADED
    by_operator = [{"name": "archive", "state": "active", "reason": None, "hold": "paused by operator"}]
    assert assess(report(destinations=by_operator))["code"] == DEGRADED
    window = [{"name": "archive", "state": "active", "reason": None, "hold": "outside upload window"}]
    assert assess(report(destinations=window))["code"] == HEALTHY
    old = {"path": "/data/a.tif", "age_seconds": UNSAFE_DEGRADED_SECONDS + 1}
    assert assess(report(oldest_unsafe=old))["code"] == DEGRADED
