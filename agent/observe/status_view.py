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

from agent.observe.report import StatusReport

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


def _header(report: StatusReport) -> list[Text]:
    agent, health = report["agent"], report["health"]
    first = Text()
    first.append(f"{health['state'].upper()}", style=HEALTH_STYLES[health["state"]])
    instrument = agent.get("instrument_id") or "?"
    if agent["running"]:
        first.append(f"  {instrument}: agent up since {_since(agent['started_at'])} (pid {agent['pid']})")
    elif agent.get("mode") == "scan":
        first.append(f"  {instrument}: no agent running; last harvest scan ended")
        if agent.get("down_since"):
            first.append(f" {_since(agent['down_since'])}")
    else:
        first.append(f"  {instrument}: agent DOWN", style="bold")
        if agent.get("down_since"):
            first.append(f" since {_since(agent['down_since'])}")
    files = report["files"]
    second = Text(
        f"files: {files.get('settling', 0)} settling, {files.get('settled', 0)} to hash,"
        f" {files.get('hashed', 0)} hashed, {files.get('failed', 0)} failed"
    )
    unsafe = report.get("oldest_unsafe")
    if unsafe:
        second.append(f"; oldest not yet archived: {duration(unsafe['age_seconds'])}")
    if report.get("everything_archived"):
        second.append("; everything found is archived", style="green")
    else:
        waiting = report.get("waiting") or {}
        if not unsafe and any(waiting.values()):
            second.append(f"; {waiting.get('datasets_to_commit', 0)} dataset(s) not yet committed")
    return [first, second]


def _destinations(report: StatusReport) -> list[Text]:
    lines = []
    for destination in report["destinations"]:
        name = destination["name"]
        counts = report["deliveries"].get(name, {})
        text = Text(f"{name}: ")
        if destination["state"] == "unknown":
            text.append("unknown (agent not running)", style="dim")
        elif destination["state"] == "paused":
            text.append("PAUSED", style="bold yellow")
        elif hold := destination.get("hold"):
            text.append(hold.upper(), style="yellow")
        elif destination.get("retrying"):
            text.append(f"RETRYING: {destination['retrying']}", style="yellow")
        else:
            text.append("up", style="green")
            rate = destination.get("rate_bytes_per_second") or 0
            if rate > 1024:
                window = destination.get("rate_window_seconds") or 6
                text.append(f" {size(rate)}/s (average of the last {window:.0f} s)")
        text.append(f"  {counts.get('verified', 0)} verified, {counts.get('pending', 0) + counts.get('sending', 0)}"
                    f" to send, {counts.get('failed', 0)} failed")  # fmt: skip
        if destination["state"] == "paused":
            text.append(f"; next try {_since(destination['next_retry_at'])}: {destination['reason']}")
        lines.append(text)
    guard = report.get("guard") or {}
    if guard.get("active"):
        rate = guard.get("rate_bytes_per_second") or 0
        text = Text("acquisition running: uploads throttled", style="bold magenta")
        text.append(f" to {size(rate)}/s since {_since(guard.get('since'))}")
        lines.append(text)
    return lines


def _datasets(report: StatusReport, rows: int, width: int) -> Table:
    show_rate = width >= 100
    table = Table(box=None, padding=(0, 1), pad_edge=False, expand=False, show_edge=False)
    # Fixed columns take 46 cells plus 2 between each pair, the rate 13 more; the key gets the
    # rest (one cell spare, so that rich never has to shrink the fixed columns).
    key_width = max(12, width - 57 - (13 if show_rate else 0))
    table.add_column("dataset", overflow="ellipsis", no_wrap=True, width=key_width)
    table.add_column("state", no_wrap=True, width=10)
    table.add_column("files", justify="right", no_wrap=True, width=9, overflow="ellipsis")
    table.add_column("progress", no_wrap=True, width=10)
    table.add_column("bytes", justify="right", no_wrap=True, width=11, overflow="ellipsis")
    table.add_column("ETA", justify="right", no_wrap=True, width=6)
    if show_rate:
        table.add_column("rate", justify="right", no_wrap=True, width=11)
    for dataset in report["datasets"][: max(rows, 0)]:
        total = dataset["bytes"] or 0
        done = dataset["bytes_done"] or 0
        operator = dataset.get("operator")
        label = dataset["key"] + (f" ({operator})" if operator and operator not in dataset["key"] else "")
        label = _middle_cut(label, key_width)
        eta = dataset.get("eta_seconds")
        rate = dataset.get("rate_bytes_per_second") or 0
        cells: list[Any] = [
            label,
            Text(dataset["state"], style=STATE_STYLES.get(dataset["state"], "")),
            f"{dataset['files_done']}/{dataset['files']}",
            ProgressBar(total=max(total, 1), completed=done if total else 1, width=10),
            f"{_short(done)}/{_short(total)}",
            duration(eta) if eta is not None else "",
        ]
        if show_rate:
            cells.append(f"{size(rate)}/s" if rate > 1024 else "")
        table.add_row(*cells)
    return table


def _middle_cut(label: str, width: int) -> str:
    """*label* in *width* cells: its start (the operator) and its end (the session) kept, the middle cut."""
    if len(label) <= width:
        return label
    head = (width - 1) * 2 // 5
    return label[:head] + "…" + label[len(label) - (width - 1 - head) :]


def _short(count: float) -> str:
    """Sizes in at most 7 characters, for the table."""
    for unit in ("B", "K", "M", "G", "T"):
        if abs(count) < 1000 or unit == "T":
            return f"{count:.0f}{unit}" if unit == "B" or count >= 100 else f"{count:.1f}{unit}"
        count /= 1024
    return f"{count}B"


def _errors(report: StatusReport, count: int) -> list[Text]:
    lines = []
    for error in report["errors"][:count]:
        text = Text(f"{_since(error['at'])} ", style="dim")
        text.append(f"[{error['kind']}] ", style="red")
        text.append(error["message"])
        lines.append(text)
        if error.get("hint"):
            lines.append(Text(f"  -> {error['hint']}", style="italic"))
    return lines


def _waiting(report: StatusReport, limit: int) -> list[Text]:
    """Why open datasets are still open, and files that stopped changing but are not whole."""
    lines = []
    for item in (report.get("incomplete_files") or [])[:limit]:
        waited = duration(item["waiting_seconds"])
        lines.append(Text(f"incomplete: {item['path']}: {item['detail']} (waiting {waited})", style="yellow"))
    open_datasets = [dataset for dataset in report["datasets"] if dataset.get("open_reason")]
    for dataset in open_datasets[:limit]:
        lines.append(Text(f"open: {dataset['key']}: {dataset['open_reason']}"))
    return lines


def status_view(report: StatusReport, *, width: int = 80, height: int | None = None) -> RenderableType:
    """The whole screen; with *height*, every line is cut to the width and the datasets
    and errors are trimmed so that it fits (for ``harvest watch``)."""
    lines = [*_header(report), *_destinations(report)]
    lines += [Text(f"! {reason}", style="yellow") for reason in report["health"]["reasons"]]
    lines += _waiting(report, 3 if height is None else 1)
    if height is None:
        rows, error_count = 15, 5
    else:
        error_count = 1 if report["errors"] else 0
        # Table header, the "recent errors" title, and the error with its hint.
        rows = height - len(lines) - 1 - (3 if error_count else 0)
    error_lines = _errors(report, error_count)
    if height is not None:
        for line in [*lines, *error_lines]:
            line.no_wrap, line.overflow = True, "ellipsis"
    parts: list[RenderableType] = list(lines)
    if report["datasets"] and rows > 0:
        parts.append(_datasets(report, rows, width))
    if error_lines:
        parts.append(Text("recent errors:", style="bold"))
        parts.extend(error_lines)
    return Group(*parts)
