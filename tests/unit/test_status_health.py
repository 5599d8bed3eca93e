"""Health levels of `harvest status` (its exit code), from a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.observe.health import DEGRADED, DOWN, HEALTHY, UNSAFE_DEGRADED_SECONDS, assess


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


# ----- the truth table (docs/operator-guide.md, "When is status green?") -----------------


def _workers(**changes: Any) -> dict[str, Any]:
    worker = {"alive": True, "stalled": False, "restarts": 0, "last_restart_at": None, "internal_errors": 0}
    return {"hash": dict(worker), "transfer-archive": {**worker, **changes}}


def test_a_dead_worker_is_down_and_a_recent_restart_or_stall_is_degraded() -> None:
    import time

    assert assess(report(workers=_workers()))["code"] == HEALTHY
    dead = assess(report(workers=_workers(alive=False)))
    assert dead["code"] == DOWN and "transfer-archive is not running" in dead["reasons"][0]
    restarted = assess(report(workers=_workers(restarts=1, last_restart_at=time.time() - 60,
                                               last_restart_reason="KeyError: 'etag'")))  # fmt: skip
    assert restarted["code"] == DEGRADED and "restarted" in restarted["reasons"][0]
    long_ago = assess(report(workers=_workers(restarts=1, last_restart_at=time.time() - 86400)))
    assert long_ago["code"] == HEALTHY
    assert assess(report(workers=_workers(stalled=True)))["code"] == DEGRADED


def test_a_destination_retrying_or_silent_is_degraded() -> None:
    retrying = [{"name": "archive", "state": "active", "reason": None, "hold": None,
                 "retrying": "no answer for 60 s; PATCH: ReadTimeout, attempt 3 of 4"}]  # fmt: skip
    health = assess(report(destinations=retrying))
    assert health["code"] == DEGRADED and "no answer for 60 s" in health["reasons"][0]


def test_unreadable_parts_of_the_tree_are_degraded() -> None:
    gaps = {"count": 1, "parts": [{"path": "/data/alice/s1/locked/", "reason": "cannot list folder: denied"}]}
    health = assess(report(unreadable=gaps))
    assert health["code"] == DEGRADED and "locked" in health["reasons"][0]


def test_a_scan_only_setup_is_healthy_when_everything_is_archived_and_degraded_when_not() -> None:
    after_scan = {"running": False, "mode": "scan"}
    assert assess(report(agent=after_scan, everything_archived=True))["code"] == HEALTHY
    assert assess(report(agent=after_scan, everything_archived=False))["code"] == DEGRADED
    # The daemon's setup: not running is always down, whatever was archived.
    assert assess(report(agent={"running": False, "mode": "run"}, everything_archived=True))["code"] == DOWN


def test_the_published_status_schema_is_the_report_type_and_a_real_report_validates(tmp_path: Path) -> None:
    import json

    import jsonschema

    from agent.journal.store import Journal
    from agent.observe.report import json_schema
    from agent.observe.status import build_status

    published = json.loads((Path(__file__).parents[2] / "docs/schemas/status-1.schema.json").read_text())
    assert published == json_schema(), "run: python -m agent.observe.report > docs/schemas/status-1.schema.json"
    Journal(tmp_path / "state").close()
    jsonschema.validate(build_status(tmp_path / "state"), published)
    broken = dict(build_status(tmp_path / "state"))
    broken["health"] = {"state": "fine", "code": 0, "reasons": []}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, published)
