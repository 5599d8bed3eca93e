from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves agent threads running (watchdog's idea)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        thread
        for thread in threading.enumerate()
        if thread not in before and thread.is_alive() and thread.name.startswith(("hash", "transfer"))
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [thread.name for thread in leaked if thread.is_alive()]
    assert not still, f"threads leaked: {still}"
