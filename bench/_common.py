"""Helpers shared by the benchmarks (they run from a checkout, next to tests/)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.helpers import random_file

__all__ = ["delivery_states", "random_file"]


def delivery_states(state_dir: Path) -> set[str]:
    """The states of the deliveries in an agent's journal, read-only (empty before it exists)."""
    journal = state_dir / "journal.sqlite3"
    if not journal.exists():
        return set()
    try:
        connection = sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True)
        try:
            return {str(row[0]) for row in connection.execute("SELECT DISTINCT state FROM deliveries")}
        finally:
            connection.close()
    except sqlite3.Error:
        return set()
