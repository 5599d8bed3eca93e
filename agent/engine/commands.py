"""Operator commands from the control channel, carried out on the engine's thread.

The control thread only queues a request and waits for its answer; the engine runs
it between ticks, so the journal and the scan list are touched by one thread only.
"""

from __future__ import annotations

import json
import queue
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.engine.core import Engine

ANSWER_TIMEOUT_SECONDS = 30.0
Reply = dict[str, Any]


class CommandHandler:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.Queue[tuple[str, dict[str, Any], Future[Reply]]] = queue.Queue()

    def submit(self, command: str, arguments: dict[str, Any]) -> Reply:
        """From the control thread: queue a command and wait for the engine's answer."""
        future: Future[Reply] = Future()
        self._queue.put((command, arguments, future))
        self._engine.wake()
        try:
            return future.result(timeout=ANSWER_TIMEOUT_SECONDS)
        except FutureTimeout:
            return {"ok": False, "message": "the agent is busy; the command was queued and will still run"}

    def run_pending(self) -> None:
        """On the engine thread: carry out every queued command."""
        while True:
            try:
                command, arguments, future = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(getattr(self, f"_{command}")(**arguments))
            except TypeError as error:  # unexpected or missing arguments
                future.set_result({"ok": False, "message": f"bad arguments for {command}: {error}"})

    # ----- commands (names are the control channel's allow-list) ----------------------

    def _ping(self) -> Reply:
        config = self._engine.config
        return {"ok": True, "message": f"agent for {config.instrument.id} is running"}

    def _workers(self, destination: str | None) -> list[Any] | Reply:
        workers = self._engine.transfer_workers
        if destination is None:
            return workers
        chosen = [worker for worker in workers if worker.transport.name == destination]
        if not chosen:
            known = ", ".join(worker.transport.name for worker in workers)
            return {"ok": False, "message": f"unknown destination {destination!r} (configured: {known})"}
        return chosen

    def _set_paused(self, destination: str | None, paused: bool) -> Reply:
        workers = self._workers(destination)
        if isinstance(workers, dict):
            return workers
        for worker in workers:
            worker.operator_paused = paused
            worker.wake.set()
        names = sorted(worker.transport.name for worker in self._engine.transfer_workers if worker.operator_paused)
        self._engine.journal.set_facts({"operator_paused": json.dumps(names)})
        chosen = ", ".join(worker.transport.name for worker in workers)
        if paused:
            return {"ok": True, "message": f"paused {chosen}; a transfer in progress stops at its next checkpoint"}
        return {"ok": True, "message": f"resumed {chosen}"}

    def _pause(self, destination: str | None = None) -> Reply:
        return self._set_paused(destination, True)

    def _resume(self, destination: str | None = None) -> Reply:
        return self._set_paused(destination, False)

    def _retry(self, item: str | None = None) -> Reply:
        engine = self._engine
        outcome = engine.journal.retry_failed(item, lambda root, rel_path: (Path(root) / rel_path).is_file())
        for root, rel_path in outcome.files:
            engine.notice(Path(root), Path(root) / rel_path)
        for worker in engine.transfer_workers:
            worker.retry_now()
        parts = []
        if outcome.files:
            parts.append(f"{len(outcome.files)} file(s) will be settled and hashed again")
        if outcome.deliveries:
            parts.append(f"{outcome.deliveries} delivery(ies) will be tried again")
        if outcome.still_missing:
            parts.append(
                f"{len(outcome.still_missing)} file(s) are still missing: {', '.join(outcome.still_missing[:5])}"
            )
        if not parts:
            target = f" matching {item!r}" if item else ""
            return {"ok": item is None, "message": f"nothing failed{target}; paused destinations are probed now"}
        return {"ok": True, "message": "; ".join(parts), "files": len(outcome.files), "deliveries": outcome.deliveries}

    def _rescan(self, root: str | None = None) -> Reply:
        rules = self._engine.config.watch
        if root is not None:
            rules = [rule for rule in rules if root in (str(rule.path), rule.name)]
            if not rules:
                known = ", ".join(str(rule.path) for rule in self._engine.config.watch)
                return {"ok": False, "message": f"{root!r} is not a watched root (configured: {known})"}
        self._engine.rescan([rule.path for rule in rules])
        return {"ok": True, "message": "rescanning " + ", ".join(str(rule.path) for rule in rules)}
