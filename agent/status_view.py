"""Plain-text rendering of the status report for terminals."""

from __future__ import annotations

from typing import Any


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def render_status(report: dict[str, Any]) -> str:
    agent = report["agent"]
    lines = []
    if agent["running"]:
        lines.append(f"agent: running (pid {agent['pid']}, since {agent['started_at']}) — {agent['instrument_id']}")
    else:
        lines.append("agent: not running")
    files = report["files"]
    lines.append(
        "files: " + ", ".join(f"{count} {state}" for state, count in files.items() if count) or "files: none yet"
    )
    for destination in report["destinations"]:
        extra = f" — {destination['reason']} (next try {destination['next_retry_at']})" if destination["reason"] else ""
        counts = report["deliveries"].get(destination["name"], {})
        done = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
        lines.append(f"destination {destination['name']}: {destination['state']}{extra}; {done or 'nothing yet'}")
    for item in report["in_flight"]:
        total = item["bytes_total"] or 1
        lines.append(
            f"  sending {item['path']} -> {item['destination']}: {_size(item['bytes_done'])} of"
            f" {_size(item['bytes_total'])} ({100 * item['bytes_done'] / total:.0f}%)"
        )
    if report["datasets"]:
        lines.append("datasets (newest first):")
        for dataset in report["datasets"][:15]:
            committed = ", ".join(
                f"{name} r{commit['revision']}" + ("" if commit["state"] == "committed" else " (updating)")
                for name, commit in dataset["committed"].items()
            )
            failed = f", {dataset['failed_files']} failed" if dataset["failed_files"] else ""
            lines.append(
                f"  {dataset['key']}: {dataset['state']} r{dataset['revision']}, {dataset['files']} files,"
                f" {_size(dataset['bytes'])}{failed}; committed: {committed or 'not yet'}"
            )
    if report["errors"]:
        lines.append("recent errors:")
        for error in report["errors"][:10]:
            lines.append(f"  {error['at']} [{error['kind']}] {error['message']}")
    return "\n".join(lines)
