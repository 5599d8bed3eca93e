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
from agent.journal.report_reads import DatasetRow
from agent.journal.schema import Hold
from agent.journal.store import FileState, Journal
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
    files = {state.value: 0 for state in FileState} | journal.file_state_counts()
    files["settling"] = int(facts.get("settling") or 0) if running else 0
    # Quarantined files are failed on purpose (kept on the instrument): shown, but not an alarm.
    files["quarantined"] = journal.quarantined_count()
    deliveries = journal.delivery_counts()
    unreadable = [
        UnreadablePart(path=f"{gap.root}/{gap.rel_path}", reason=gap.reason) for gap in journal.gaps(RECENT_ERRORS)
    ]
    unreadable_count = journal.gap_count()
    live = _live_progress(facts) if running else {}
    in_flight = [
        InFlight(
            path=f"{row.root}/{row.rel_path}",
            destination=row.destination,
            bytes_done=max(row.offset_bytes, live.get((row.destination, row.file_id), 0)),
            bytes_total=row.size_bytes,
        )
        for row in journal.in_flight()
    ]
    rates = {key[len("rate.") :]: float(value or 0) for key, value in facts.items() if key.startswith("rate.")}
    open_reasons: dict[str, str] = _json_fact(facts, "open_reasons", {}) if running else {}
    datasets = [
        _dataset_report(journal, row, rates if running else {}, live, open_reasons)
        for row in journal.recent_datasets(RECENT_DATASETS)
    ]
    errors = [
        ErrorReport(
            at=_iso(error.at),
            kind=_kind(error.kind),
            path=error.path,
            destination=error.destination,
            message=error.message,
            hint=_kind(error.kind).hint,
        )
        for error in journal.recent_errors(RECENT_ERRORS)
    ]
    failed_files = [
        FailedFile(path=f"{failed.root}/{failed.rel_path}", error=failed.reason)
        for failed in journal.failed_files(RECENT_ERRORS)
    ]
    destinations = [
        _destination_report(row.name, row.state, row.reason, row.next_retry_at, facts, rates, running)
        for row in journal.destinations()
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
        datasets_to_commit=journal.uncommitted_dataset_count(),
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
        incomplete_files=_json_fact(facts, "incomplete_files", []) if running else [],
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


def _oldest_unsafe(journal: Journal, now: float) -> OldestUnsafe | None:
    """The file version that has waited longest and is not yet archived everywhere."""
    oldest = journal.oldest_unsafe()
    if oldest is None:
        return None
    since, root, rel_path = oldest
    return OldestUnsafe(path=f"{root}/{rel_path}", since=_iso(since), age_seconds=max(0.0, now - since))


def _live_progress(facts: dict[str, str]) -> dict[tuple[str, int], int]:
    """Bytes sent so far for files in flight, per (destination, file id), from the heartbeat."""
    live: dict[tuple[str, int], int] = {}
    for key, value in facts.items():
        if key.startswith("live.") and value:
            for file_id, sent in json.loads(value).items():
                live[(key[len("live.") :], int(file_id))] = int(sent)
    return live


def _json_fact(facts: dict[str, str], name: str, default: Any) -> Any:
    try:
        value = json.loads(facts.get(name) or "null")
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def _dataset_report(
    journal: Journal,
    row: DatasetRow,
    rates: dict[str, float],
    live: dict[tuple[str, int], int],
    open_reasons: dict[str, str],
) -> DatasetReport:
    totals = journal.dataset_totals(row.id)
    by_destination: dict[str, dict[str, int]] = {}
    for progress in journal.dataset_delivery_progress(row.id):
        counts = by_destination.setdefault(progress.destination, {"bytes": 0})
        counts[progress.state] = progress.deliveries
        counts["bytes"] += progress.done_bytes
    unfinished = [name for name, counts in by_destination.items() if counts.get("pending") or counts.get("sending")]
    for destination, file_id, offset in journal.dataset_unfinished_offsets(row.id) if unfinished else ():
        extra = live.get((destination, file_id), 0) - offset
        if extra > 0 and destination in by_destination:
            by_destination[destination]["bytes"] += extra
    commits = {
        commit.destination: Commit(revision=commit.revision, state=commit.state, committed_at=_iso(commit.committed_at))
        for commit in journal.dataset_commits(row.id)
    }
    count = max(1, len(by_destination))
    bytes_done = min(totals.bytes, sum(counts["bytes"] for counts in by_destination.values()) // count)
    failed_deliveries = sum(counts.get("failed", 0) for counts in by_destination.values())
    all_committed = bool(by_destination) and all(
        (commit := commits.get(name)) is not None
        and commit["revision"] == row.revision
        and commit["state"] == "committed"
        for name in by_destination
    )
    warnings = json.loads(row.warnings_json or "[]")
    gaps = journal.gap_count(row.id)
    if not by_destination and commits:  # nothing readable in it, but its package was written
        all_committed = all(
            commit["revision"] == row.revision and commit["state"] == "committed" for commit in commits.values()
        )
    failed_files = totals.failed - totals.quarantined
    shown: DatasetState
    if failed_files or failed_deliveries:
        shown = "failed"
    elif row.state == "closed" and all_committed:
        shown = "incomplete" if warnings or totals.quarantined or gaps else "committed"
    elif row.state == "open" and not unfinished:
        shown = "settling"
    else:
        shown = "uploading"
    rate = sum(rates.get(name, 0.0) for name in unfinished) / count if shown == "uploading" else 0.0
    remaining = totals.bytes - bytes_done
    fields = json.loads(row.fields_json or "{}")
    return DatasetReport(
        key=row.key,
        operator=fields.get("operator"),
        state=shown,
        revision=row.revision,
        closed_at=_iso(row.closed_at),
        close_reason=row.close_reason,
        files=totals.files,
        files_done=journal.dataset_files_done(row.id),
        bytes=totals.bytes,
        bytes_done=bytes_done,
        failed_files=failed_files,
        quarantined_files=totals.quarantined,
        failed_deliveries=failed_deliveries,
        unreadable_parts=gaps,
        rate_bytes_per_second=rate,
        eta_seconds=remaining / rate if rate > 0 and remaining > 0 else None,
        warnings=warnings,
        committed=commits,
        open_reason=open_reasons.get(str(row.id)) if row.state == "open" else None,
        completeness=journal.dataset_completeness(row.id) if row.state == "closed" else None,
    )
