"""``harvest watch``: the status screen refreshed from the journal until Ctrl-C."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from agent.errors import HarvestError
from agent.observe.status import build_status
from agent.observe.status_view import status_view


def _screen(state_dir: Path, console: Console) -> RenderableType:
    try:
        report = build_status(state_dir)
    except HarvestError as error:
        return Text(f"waiting for the agent's journal: {error}", style="yellow")
    width, height = console.size
    footer = Text(f"{time.strftime('%H:%M:%S')}  refreshing; Ctrl-C to leave (the agent keeps running)", style="dim")
    return Group(status_view(report, width=width, height=height - 1), footer)


def watch_status(state_dir: Path, interval: float) -> None:
    """Refresh until Ctrl-C. Every wait is interruptible and journal reads give up after a
    couple of seconds (READER_BUSY_SECONDS), so Ctrl-C leaves promptly even under load."""
    console = Console()
    try:
        with Live(_screen(state_dir, console), console=console, screen=True, auto_refresh=False) as live:
            took = 0.0
            while True:
                # On a huge journal a refresh costs real CPU: never spend over a fifth of it.
                time.sleep(max(interval, 4 * took))
                started = time.monotonic()
                screen = _screen(state_dir, console)
                took = time.monotonic() - started
                live.update(screen, refresh=True)
    except KeyboardInterrupt:
        pass
