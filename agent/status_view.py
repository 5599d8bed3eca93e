"""The one-screen status view (rich), shared by ``harvest status`` and ``harvest watch``.

Built to fit an 80x24 terminal: the header, destinations and guard take a few lines,
datasets fill what is left (newest first), the latest errors come last with a hint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "committed": "green",
    "uploading": "cyan",
    "settling": "yellow",
    "incomplete": "magenta",
    "failed": "bold red",
}
HEALTH_STYLES = {"healthy": "bold green", "degraded": "bold yellow", "down": "bold red"}


def size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def _since(iso: str | None) -> str:
    if not iso:
        return "?"
    moment = datetime.fromisoformat(iso).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def _header(report: dict[str, Any]) -> Text:
    agent, health = report["agent"], report["health"]
    text = Text()
    text.append(f"{health['state'].upper()}", style=HEALTH_STYLES[health["state"]])
    instrument = agent.get("instrument_id") or "?"
    if agent["running"]:
        text.append(f"  {instrument}: agent up since {_since(agent['started_at'])} (pid {agent['pid']})")
    else:
        text.append(f"  {instrument}: agent DOWN", style="bold")
    files = report["files"]
    text.append(
        f"\nfiles: {files.get('settling', 0)} settling, {files.get('settled', 0)} to hash,"
        f" {files.get('hashed', 0)} hashed, {files.get('failed', 0)} failed"
    )
    unsafe = report.get("oldest_unsafe")
    if unsafe:
        text.append(f"; oldest not yet archived: {duration(unsafe['age_seconds'])}")
    elif agent["running"]:
        text.append("; everything found is archived", style="green")
    return text


def _destinations(report: dict[str, Any]) -> Text:
    text = Text()
    for destination in report["destinations"]:
        name = destination["name"]
        counts = report["deliveries"].get(name, {})
        text.append(f"\n{name}: ")
        if destination["state"] == "paused":
            text.append("PAUSED", style="bold yellow")
            text.append(f" ({destination['reason']}; next try {_since(destination['next_retry_at'])})")
        elif destination.get("hold"):
            text.append(destination["hold"].upper(), style="yellow")
        else:
            text.append("up", style="green")
            rate = destination.get("rate_bytes_per_second") or 0
            if rate > 1024:
                text.append(f" {size(rate)}/s")
        text.append(f"  {counts.get('verified', 0)} verified, {counts.get('pending', 0) + counts.get('sending', 0)}"
                    f" to send, {counts.get('failed', 0)} failed")  # fmt: skip
    guard = report.get("guard") or {}
    if guard.get("active"):
        rate = guard.get("rate_bytes_per_second") or 0
        text.append("\nacquisition running: uploads throttled", style="bold magenta")
        text.append(f" to {size(rate)}/s since {_since(guard.get('since'))}")
    return text


def _datasets(report: dict[str, Any], rows: int, width: int) -> Table:
    table = Table(box=None, padding=(0, 1), expand=False, show_edge=False)
    table.add_column("dataset", overflow="ellipsis", no_wrap=True, max_width=max(16, width - 58))
    table.add_column("state", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("progress", no_wrap=True, width=10)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("ETA", justify="right", no_wrap=True)
    for dataset in report["datasets"][: max(rows, 0)]:
        total = dataset["bytes"] or 0
        done = dataset["bytes_done"] or 0
        label = dataset["key"] + (f" ({dataset['operator']})" if dataset.get("operator") else "")
        eta = dataset.get("eta_seconds")
        rate = dataset.get("rate_bytes_per_second") or 0
        table.add_row(
            label,
            Text(dataset["state"], style=STATE_STYLES.get(dataset["state"], "")),
            f"{dataset['files_done']}/{dataset['files']}",
            ProgressBar(total=max(total, 1), completed=done if total else 1, width=10),
            f"{size(done)}/{size(total)}",
            (duration(eta) if eta is not None else "") + (f" {size(rate)}/s" if rate > 1024 and width >= 90 else ""),
        )
    return table


def _errors(report: dict[str, Any], count: int) -> Text:
    text = Text()
    for error in report["errors"][:count]:
        text.append(f"\n{_since(error['at'])} ", style="dim")
        text.append(f"[{error['kind']}] ", style="red")
        text.append(error["message"])
        if error.get("hint"):
            text.append(f"\n  -> {error['hint']}", style="italic")
    return text


def status_view(report: dict[str, Any], *, width: int = 80, height: int | None = None) -> RenderableType:
    """The whole screen; with *height*, trimmed to fit it (for ``harvest watch``)."""
    header = _header(report)
    destinations = _destinations(report)
    reasons = Text("\n".join(f"! {reason}" for reason in report["health"]["reasons"]), style="yellow")
    used = 2 + len(destinations.plain.splitlines()) + len(report["health"]["reasons"])
    if height is None:
        rows, error_count = 15, 5
    else:
        error_count = 1 if report["errors"] else 0
        rows = height - used - 2 - 3 * error_count  # table header, spacing, error + hint lines
    parts: list[RenderableType] = [header, destinations]
    if report["health"]["reasons"]:
        parts.append(reasons)
    if report["datasets"] and rows > 0:
        parts.append(_datasets(report, rows, width))
    if error_count and report["errors"]:
        parts.append(Text("recent errors:", style="bold") + _errors(report, error_count))
    return Group(*parts)
