"""The engine's supervisor restarts a worker thread that is not running, and says so."""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import load_config
from agent.engine import Engine
from agent.observe.status import build_status
from tests.helpers import wait_for, write_config


def test_a_worker_that_is_not_running_is_restarted_and_reported(tmp_path: Path) -> None:
    (tmp_path / "instrument").mkdir()
    (tmp_path / "archive").mkdir()
    engine = Engine(load_config(write_config(tmp_path)))
    try:
        # Workers that were never started are exactly what a dead thread looks like.
        before = engine.worker_facts()
        assert not any(worker["alive"] for worker in before.values())
        engine._supervise_workers()
        facts = engine.worker_facts()
        assert all(worker["alive"] for worker in facts.values()), facts
        assert all(worker["restarts"] == 1 for worker in facts.values())
        assert all(worker["last_restart_reason"] for worker in facts.values())
        errors = engine.journal.recent_errors(100)
        assert sum(error.kind == "internal" and "restarted" in error.message for error in errors) == len(facts)
        engine.journal.set_facts(engine._live_facts(0.0))
        engine.journal.set_facts({"pid": str(os.getpid())})
        report = build_status(tmp_path / "state")
        assert report["workers"]["hash"]["restarts"] == 1
        assert report["health"]["state"] == "degraded"
        assert any("restarted" in reason for reason in report["health"]["reasons"])
    finally:
        engine.stop_event.set()
        engine._shutdown()  # wakes and joins every worker
        wait_for(lambda: not any(w.is_alive() for w in engine.transfer_workers), timeout=30)
