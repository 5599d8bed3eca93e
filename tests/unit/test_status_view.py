"""The status screen fits an 80x24 terminal, whatever the journal holds."""

from __future__ import annotations

from typing import Any, cast

from rich.console import Console

from agent.observe.health import assess
from agent.observe.report import StatusReport
from agent.observe.status_view import duration, size, status_view


def busy_report(datasets: int, errors: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "agent": {"running": True, "pid": 42, "started_at": "2026-11-22T08:00:00+00:00", "instrument_id": "FAC-1"},
        "files": {"settling": 3, "settled": 1, "hashed": 900, "failed": 1, "quarantined": 0},
        "deliveries": {"facility": {"verified": 800, "pending": 90, "sending": 1, "failed": 1}},
        "destinations": [
            {"name": "facility", "state": "paused", "reason": "facility: HTTP 503 " * 5, "next_retry_at":
             "2026-11-22T09:00:00+00:00", "hold": None, "rate_bytes_per_second": 0.0},
            {"name": "nas", "state": "active", "reason": None, "next_retry_at": None, "hold": "paused by operator",
             "rate_bytes_per_second": 0.0},
        ],
        "datasets": [
            {"key": f"operator-with-a-long-name/2026-11-{index:02d}_very-long-session-name-{index}", "operator":
             "operator-with-a-long-name", "state": "uploading", "files": 100, "files_done": 50, "bytes": 10 << 30,
             "bytes_done": 5 << 30, "rate_bytes_per_second": 30 << 20, "eta_seconds": 170.0}
            for index in range(datasets)
        ],
        "errors": [
            {"at": "2026-11-22T08:30:00+00:00", "kind": "transient", "message": "facility unreachable " * 8,
             "hint": "check the network " * 6}
            for _ in range(errors)
        ],
        "guard": {"active": True, "since": "2026-11-22T08:59:00+00:00", "path": "/data/x.tif",
                  "rate_bytes_per_second": 20 << 20},
        "oldest_unsafe": {"path": "/data/a", "age_seconds": 4000.0},
    }  # fmt: skip
    report["health"] = assess(report)
    return report


def rendered(report: dict[str, Any], width: int, height: int | None) -> list[str]:
    console = Console(width=width, height=height or 200, record=True, color_system=None, force_terminal=False)
    console.print(status_view(cast(StatusReport, report), width=width, height=height))
    return console.export_text().splitlines()


def test_a_busy_agent_fits_80_by_24() -> None:
    lines = rendered(busy_report(datasets=50, errors=20), 80, 24)
    assert len(lines) <= 24, "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert text.startswith("DOWN")
    assert "PAUSED" in text and "PAUSED BY OPERATOR" in text and "acquisition running" in text
    assert "uploading" in text and "recent errors" in text


def test_without_a_height_the_status_command_shows_more() -> None:
    lines = rendered(busy_report(datasets=50, errors=20), 120, None)
    assert sum("uploading" in line for line in lines) == 15
    assert sum("[transient]" in line for line in lines) == 5


def test_sizes_and_durations_read_naturally() -> None:
    assert size(512) == "512 B" and size(3 << 20) == "3.0 MiB"
    assert duration(59) == "59s" and duration(600) == "10m" and duration(7300) == "2h01m" and duration(200000) == "2d"


def test_a_long_dataset_name_keeps_its_operator_and_its_session_at_80_columns() -> None:
    report = busy_report(datasets=1, errors=0)
    report["datasets"][0] |= {"key": "alice-from-the-imaging-core/2026-11-22_spinning-disk-z-stack", "operator": None}
    row = next(line for line in rendered(report, 80, 24) if "uploading" in line)
    label = row.split("uploading")[0].strip()
    assert label.startswith("alice") and label.endswith("z-stack") and "…" in label, label
