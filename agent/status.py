"""The status report, built from the journal alone (read-only), never from logs.

The CLI opens the journal read-only while the daemon writes to it (WAL allows both).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.journal import DeliveryState, FileState, Journal

HEARTBEAT_STALE_SECONDS = 30.0
RECENT_ERRORS = 20
RECENT_DATASETS = 50


def _iso(value: float | str | None) -> str | None:
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(float(value), UTC).isoformat()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def agent_running(facts: dict[str, str], now: float) -> bool:
    if facts.get("stopped_at") or not facts.get("pid"):
        return False
    heartbeat = float(facts.get("heartbeat_at") or 0)
    return now - heartbeat < HEARTBEAT_STALE_SECONDS and _pid_alive(int(facts["pid"]))


def build_status(state_dir: Path) -> dict[str, Any]:
    journal = Journal(state_dir, read_only=True)
    try:
        return _report(journal)
    finally:
        journal.close()


def _report(journal: Journal) -> dict[str, Any]:
    now = time.time()
    facts = journal.facts()
    running = agent_running(facts, now)
    files = {state.value: 0 for state in FileState}
    for state, count in journal.query("SELECT state, COUNT(*) FROM files GROUP BY state"):
        files[str(state)] = int(count)
    files["settling"] = int(facts.get("settling") or 0) if running else 0
    deliveries: dict[str, dict[str, int]] = {}
    for destination, state, count in journal.query(
        "SELECT d.destination, d.state, COUNT(*) FROM deliveries d JOIN files f ON f.id = d.file_id"
        " AND f.version = d.version GROUP BY d.destination, d.state"
    ):
        counts = deliveries.setdefault(str(destination), {state.value: 0 for state in DeliveryState})
        counts[str(state)] = int(count)
    destinations = [
        {"name": name, "state": state, "reason": reason, "next_retry_at": _iso(next_retry)}
        for name, state, reason, next_retry in journal.query(
            "SELECT name, state, reason, next_retry_at FROM destinations ORDER BY name"
        )
    ]
    in_flight = [
        {"path": f"{root}/{rel_path}", "destination": destination, "bytes_done": offset, "bytes_total": size}
        for root, rel_path, destination, offset, size in journal.query(
            "SELECT f.root, f.rel_path, d.destination, d.offset_bytes, f.size_bytes FROM deliveries d"
            " JOIN files f ON f.id = d.file_id AND f.version = d.version WHERE d.state = ? ORDER BY d.updated_at",
            (DeliveryState.SENDING,),
        )
    ]
    datasets = []
    for dataset_id, key, state, revision, closed_at, reason in journal.query(
        "SELECT id, dataset_key, state, revision, closed_at, close_reason FROM datasets ORDER BY id DESC LIMIT ?",
        (RECENT_DATASETS,),
    ):
        file_count, byte_count, failed_count = journal.query(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), SUM(state = 'failed') FROM files WHERE dataset_id = ?",
            (dataset_id,),
        )[0]
        commits = {
            str(destination): {"revision": commit_revision, "state": commit_state, "committed_at": _iso(at)}
            for destination, commit_revision, commit_state, at in journal.query(
                "SELECT destination, revision, state, committed_at FROM commits WHERE dataset_id = ?", (dataset_id,)
            )
        }
        datasets.append(
            {
                "key": key,
                "state": state,
                "revision": revision,
                "closed_at": _iso(closed_at),
                "close_reason": reason,
                "files": file_count,
                "bytes": byte_count,
                "failed_files": failed_count or 0,
                "committed": commits,
            }
        )
    errors = [
        {"at": _iso(at), "kind": kind, "path": path, "destination": destination, "message": message}
        for at, kind, path, destination, message in journal.query(
            "SELECT at, kind, path, destination, message FROM errors ORDER BY id DESC LIMIT ?", (RECENT_ERRORS,)
        )
    ]
    failed_files = [
        {"path": f"{root}/{rel_path}", "error": error}
        for root, rel_path, error in journal.query(
            "SELECT root, rel_path, error FROM files WHERE state = ? ORDER BY updated_at DESC LIMIT ?",
            (FileState.FAILED, RECENT_ERRORS),
        )
    ]
    return {
        "agent": {
            "running": running,
            "pid": int(facts["pid"]) if running else None,
            "started_at": _iso(facts.get("started_at")),
            "heartbeat_at": _iso(facts.get("heartbeat_at")),
            "version": facts.get("version"),
            "instrument_id": facts.get("instrument_id"),
        },
        "files": files,
        "deliveries": deliveries,
        "destinations": destinations,
        "in_flight": in_flight,
        "datasets": datasets,
        "failed_files": failed_files,
        "errors": errors,
    }
