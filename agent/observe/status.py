"""The status report, built from the journal alone (read-only), never from logs.

The CLI opens the journal read-only while the daemon writes to it (WAL allows both).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import ErrorKind
from agent.journal.schema import Hold
from agent.journal.store import DeliveryState, FileState, Journal
from agent.observe.health import HEALTHY, HEARTBEAT_STALE_SECONDS, assess
from agent.observe.report import (
    AgentReport,
    Commit,
    DatasetReport,
    DatasetState,
    DestinationReport,
    DestinationState,
    ErrorReport,
    FailedFile,
    GuardReport,
    Health,
    InFlight,
    OldestUnsafe,
    StatusReport,
    Unreadable,
    UnreadablePart,
    Waiting,
    WorkerReport,
)

RECENT_ERRORS = 20
RECENT_DATASETS = 50
RATE_WINDOW_SECONDS = 6.0  # the engine's rate is an average over about this long


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


def _silent_pid(facts: dict[str, str]) -> int | None:
    if facts.get("stopped_at") or not facts.get("pid"):
        return None
    pid = int(facts["pid"])
    return pid if _pid_alive(pid) and pid != os.getpid() else None


def build_status(state_dir: Path) -> StatusReport:
    journal = Journal(state_dir, read_only=True)
    try:
        return report_from(journal)
    finally:
        journal.close()


def report_from(journal: Journal) -> StatusReport:
    now = time.time()
    facts = journal.facts()
    running = agent_running(facts, now)
    files = {state.value: 0 for state in FileState}
    for state, count in journal.query("SELECT state, COUNT(*) FROM files GROUP BY state"):
        files[str(state)] = int(count)
    files["settling"] = int(facts.get("settling") or 0) if running else 0
    # Quarantined files are failed on purpose (kept on the instrument): shown, but not an alarm.
    files["quarantined"] = int(
        journal.query("SELECT COUNT(*) FROM files WHERE state = 'failed' AND quarantined = 1")[0][0]
    )
    deliveries = delivery_counts(journal)
    unreadable = [
        UnreadablePart(path=f"{root}/{rel_path}", reason=str(reason))
        for root, rel_path, reason in journal.query(
            "SELECT root, rel_path, reason FROM gaps ORDER BY at LIMIT ?", (RECENT_ERRORS,)
        )
    ]
    unreadable_count = int(journal.query("SELECT COUNT(*) FROM gaps")[0][0])
    live = _live_progress(facts) if running else {}
    in_flight = [
        InFlight(
            path=f"{root}/{rel_path}",
            destination=str(destination),
            bytes_done=max(int(offset), live.get((destination, file_id), 0)),
            bytes_total=int(size),
        )
        for root, rel_path, destination, offset, size, file_id in journal.query(
            "SELECT f.root, f.rel_path, d.destination, d.offset_bytes, f.size_bytes, f.id FROM deliveries d"
            " JOIN files f ON f.id = d.file_id AND f.version = d.version WHERE d.state = ? ORDER BY d.updated_at",
            (DeliveryState.SENDING,),
        )
    ]
    rates = {key[len("rate.") :]: float(value or 0) for key, value in facts.items() if key.startswith("rate.")}
    datasets = [_dataset_report(journal, row, rates if running else {}, live) for row in journal.query(
        "SELECT id, dataset_key, state, revision, closed_at, close_reason, fields_json, warnings_json FROM datasets"
        " ORDER BY id DESC LIMIT ?",
        (RECENT_DATASETS,),
    )]  # fmt: skip
    errors = [
        ErrorReport(
            at=_iso(at),
            kind=_kind(kind),
            path=path,
            destination=destination,
            message=str(message),
            hint=_kind(kind).hint,
        )
        for at, kind, path, destination, message in journal.query(
            "SELECT at, kind, path, destination, message FROM errors ORDER BY id DESC LIMIT ?", (RECENT_ERRORS,)
        )
    ]
    failed_files = [
        FailedFile(path=f"{root}/{rel_path}", error=error)
        for root, rel_path, error in journal.query(
            "SELECT root, rel_path, error FROM files WHERE state = ? ORDER BY updated_at DESC LIMIT ?",
            (FileState.FAILED, RECENT_ERRORS),
        )
    ]
    destinations = [
        _destination_report(str(name), str(state), reason, next_retry, facts, rates, running)
        for name, state, reason, next_retry in journal.query(
            "SELECT name, state, reason, next_retry_at FROM destinations ORDER BY name"
        )
    ]
    guard = GuardReport(
        active=running and facts.get("guard_active") == "1",
        since=_iso(facts.get("guard_since")) if running else None,
        path=(facts.get("guard_path") or None) if running else None,
        rate_bytes_per_second=float(facts.get("guard_rate") or 0) or None,
    )
    workers: dict[str, WorkerReport] = json.loads(facts.get("workers") or "{}") if running else {}
    mode = facts.get("mode") or None  # "run" (the daemon) or "scan" (one-shot, e.g. from cron)
    agent = AgentReport(
        running=running,
        pid=int(facts["pid"]) if running else None,
        started_at=_iso(facts.get("started_at")),
        heartbeat_at=_iso(facts.get("heartbeat_at")),
        # Down since: a clean stop records its time; after a crash the last heartbeat tells.
        down_since=None if running else _iso(facts.get("stopped_at") or facts.get("heartbeat_at")),
        version=facts.get("version"),
        instrument_id=facts.get("instrument_id"),
        mode="run" if mode == "run" else "scan" if mode == "scan" else None,
        # Alive but silent: its process runs, its heartbeat does not (state dir full?).
        unresponsive_pid=_silent_pid(facts) if not running else None,
    )
    waiting = Waiting(
        settling=files["settling"],
        to_hash=files.get("settled", 0) + files.get("stale", 0),
        to_send=sum(counts.get("pending", 0) + counts.get("sending", 0) for counts in deliveries.values()),
        datasets_to_commit=_uncommitted_datasets(journal),
    )
    everything_archived = (
        not any(waiting.values())
        and not (files.get("failed", 0) - files["quarantined"])
        and not any(counts.get("failed", 0) for counts in deliveries.values())
        and not unreadable_count
    )
    report = StatusReport(
        health=Health(state="healthy", code=HEALTHY, reasons=[]),  # assessed below, from the rest
        agent=agent,
        workers=workers,
        files=files,
        deliveries=deliveries,
        destinations=destinations,
        in_flight=in_flight,
        datasets=datasets,
        failed_files=failed_files,
        unreadable=Unreadable(count=unreadable_count, parts=unreadable),
        errors=errors,
        guard=guard,
        oldest_unsafe=_oldest_unsafe(journal, now),
        waiting=waiting,
        everything_archived=everything_archived,
    )
    report["health"] = assess(report)
    return report


def _kind(value: str) -> ErrorKind:
    return ErrorKind(value) if value in set(ErrorKind) else ErrorKind.INTERNAL


def _hold(value: str | None) -> Hold | None:
    return Hold(value) if value in set(Hold) else None


def _destination_report(
    name: str,
    state: str,
    reason: str | None,
    next_retry: float | None,
    facts: dict[str, str],
    rates: dict[str, float],
    running: bool,
) -> DestinationReport:
    # Nobody watching it: what the journal says is only the last thing known.
    shown: DestinationState = ("paused" if state == "paused" else "active") if running else "unknown"
    return DestinationReport(
        name=name,
        state=shown,
        reason=reason,
        next_retry_at=_iso(next_retry),
        hold=_hold(facts.get(f"hold.{name}")) if running else None,
        rate_bytes_per_second=rates.get(name, 0.0) if running else 0.0,
        rate_window_seconds=RATE_WINDOW_SECONDS,
        retrying=(facts.get(f"retrying.{name}") or None) if running else None,
        last_known_state=None if running else state,
    )


def _uncommitted_datasets(journal: Journal) -> int:
    """Datasets still open, never committed anywhere, or whose commit is not (yet) of their revision.

    Only destinations that hold a commit row count: a rule may send to some destinations
    only, and a destination still missing data shows in the deliveries waiting or failed.
    """
    return int(
        journal.query(
            "SELECT COUNT(*) FROM datasets s WHERE s.state = 'open'"
            " OR NOT EXISTS (SELECT 1 FROM commits c WHERE c.dataset_id = s.id)"
            " OR EXISTS (SELECT 1 FROM commits c WHERE c.dataset_id = s.id"
            " AND (c.state != 'committed' OR c.revision < s.revision))"
        )[0][0]
    )


def delivery_counts(journal: Journal) -> dict[str, dict[str, int]]:
    """Deliveries of current file versions, per destination and state.

    Counted from the index alone, then corrected for the few rows that still describe an
    older version (a file changed and is not hashed again yet), found from those files.
    """
    counts: dict[str, dict[str, int]] = {}
    for destination, state, count in journal.query(
        "SELECT destination, state, COUNT(*) FROM deliveries GROUP BY destination, state"
    ):
        counts.setdefault(str(destination), {state.value: 0 for state in DeliveryState})[str(state)] = int(count)
    for destination, state, count in journal.query(
        "SELECT d.destination, d.state, COUNT(*) FROM files f JOIN deliveries d ON d.file_id = f.id"
        " WHERE f.state IN (?, ?, ?, ?) AND d.version != f.version GROUP BY d.destination, d.state",
        (FileState.SETTLED, FileState.STALE, FileState.FAILED, FileState.IGNORED),
    ):
        counts[str(destination)][str(state)] -= int(count)
    return counts


def _oldest_unsafe(journal: Journal, now: float) -> OldestUnsafe | None:
    """The file version that has waited longest and is not yet archived everywhere.

    Its age counts from when the agent first saw that version (``first_seen_at``), so
    neither checkpoints nor restarts reset it. Each candidate is found from a state index.
    """
    candidates: list[tuple[float, int]] = [
        (float(at), int(file_id))
        for file_id, at in journal.query(
            "SELECT id, COALESCE(first_seen_at, updated_at) AS seen FROM files WHERE state IN (?, ?)"
            " ORDER BY seen LIMIT 1",
            (FileState.SETTLED, FileState.STALE),
        )
    ]
    for (destination,) in journal.query("SELECT name FROM destinations"):
        for state in (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.FAILED):
            candidates += [
                (float(at), int(file_id))
                for file_id, at in journal.query(
                    "SELECT f.id, COALESCE(f.first_seen_at, d.updated_at) AS seen FROM deliveries d"
                    " JOIN files f ON f.id = d.file_id AND f.version = d.version"
                    " WHERE d.state = ? AND d.destination = ? ORDER BY seen LIMIT 1",
                    (state, destination),
                )
            ]
    if not candidates:
        return None
    since, file_id = min(candidates)
    root, rel_path = journal.query("SELECT root, rel_path FROM files WHERE id = ?", (file_id,))[0]
    return OldestUnsafe(path=f"{root}/{rel_path}", since=_iso(since), age_seconds=max(0.0, now - since))


def _live_progress(facts: dict[str, str]) -> dict[tuple[str, int], int]:
    """Bytes sent so far for files in flight, per (destination, file id), from the heartbeat."""
    live: dict[tuple[str, int], int] = {}
    for key, value in facts.items():
        if key.startswith("live.") and value:
            for file_id, sent in json.loads(value).items():
                live[(key[len("live.") :], int(file_id))] = int(sent)
    return live


def _dataset_report(
    journal: Journal, row: tuple[Any, ...], rates: dict[str, float], live: dict[tuple[str, int], int]
) -> DatasetReport:
    dataset_id, key, state, revision, closed_at, reason, fields_json, warnings_json = row
    files_total, bytes_total, failed_files, quarantined = journal.query(
        "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), COALESCE(SUM(state = 'failed'), 0),"
        " COALESCE(SUM(state = 'failed' AND quarantined = 1), 0) FROM files"
        " WHERE dataset_id = ? AND state != 'ignored'",
        (dataset_id,),
    )[0]
    by_destination: dict[str, dict[str, int]] = {}
    for destination, delivery_state, count, done_bytes in journal.query(
        "SELECT d.destination, d.state, COUNT(*), SUM(CASE WHEN d.state = 'verified' THEN f.size_bytes"
        " ELSE d.offset_bytes END) FROM deliveries d JOIN files f ON f.id = d.file_id AND f.version = d.version"
        " WHERE f.dataset_id = ? GROUP BY d.destination, d.state",
        (dataset_id,),
    ):
        counts = by_destination.setdefault(str(destination), {"bytes": 0})
        counts[str(delivery_state)] = int(count)
        counts["bytes"] += int(done_bytes or 0)
    for destination, file_id, offset in journal.query(
        # CROSS JOIN keeps SQLite on the dataset's files, not on every pending delivery.
        "SELECT d.destination, d.file_id, d.offset_bytes FROM files f CROSS JOIN deliveries d ON d.file_id = f.id"
        " AND f.version = d.version WHERE f.dataset_id = ? AND d.state IN ('pending', 'sending')",
        (dataset_id,),
    ):
        extra = live.get((str(destination), int(file_id)), 0) - int(offset)
        if extra > 0 and str(destination) in by_destination:
            by_destination[str(destination)]["bytes"] += extra
    files_done = journal.query(
        "SELECT COUNT(*) FROM files f WHERE f.dataset_id = ? AND f.state = 'hashed'"
        " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.file_id = f.id AND d.version = f.version)"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.file_id = f.id AND d.version = f.version"
        " AND d.state != 'verified')",
        (dataset_id,),
    )[0][0]
    commits = {
        str(destination): Commit(revision=int(commit_revision), state=str(commit_state), committed_at=_iso(at))
        for destination, commit_revision, commit_state, at in journal.query(
            "SELECT destination, revision, state, committed_at FROM commits WHERE dataset_id = ?", (dataset_id,)
        )
    }
    count = max(1, len(by_destination))
    bytes_done = min(int(bytes_total), sum(counts["bytes"] for counts in by_destination.values()) // count)
    unfinished = [name for name, counts in by_destination.items() if counts.get("pending") or counts.get("sending")]
    failed_deliveries = sum(counts.get("failed", 0) for counts in by_destination.values())
    all_committed = bool(by_destination) and all(
        (commit := commits.get(name)) is not None and commit["revision"] == revision and commit["state"] == "committed"
        for name in by_destination
    )
    warnings = json.loads(warnings_json or "[]")
    gaps = int(journal.query("SELECT COUNT(*) FROM gaps WHERE dataset_id = ?", (dataset_id,))[0][0])
    if not by_destination and commits:  # nothing readable in it, but its package was written
        all_committed = all(
            commit["revision"] == revision and commit["state"] == "committed" for commit in commits.values()
        )
    shown: DatasetState
    if failed_files - quarantined or failed_deliveries:
        shown = "failed"
    elif state == "closed" and all_committed:
        shown = "incomplete" if warnings or quarantined or gaps else "committed"
    elif state == "open" and not unfinished:
        shown = "settling"
    else:
        shown = "uploading"
    rate = sum(rates.get(name, 0.0) for name in unfinished) / count if shown == "uploading" else 0.0
    remaining = int(bytes_total) - bytes_done
    fields = json.loads(fields_json or "{}")
    return DatasetReport(
        key=str(key),
        operator=fields.get("operator"),
        state=shown,
        revision=int(revision),
        closed_at=_iso(closed_at),
        close_reason=reason,
        files=int(files_total),
        files_done=int(files_done),
        bytes=int(bytes_total),
        bytes_done=bytes_done,
        failed_files=int(failed_files - quarantined),
        quarantined_files=int(quarantined),
        failed_deliveries=failed_deliveries,
        unreadable_parts=gaps,
        rate_bytes_per_second=rate,
        eta_seconds=remaining / rate if rate > 0 and remaining > 0 else None,
        warnings=warnings,
        committed=commits,
    )
