"""The status report's shape: what ``harvest status --json`` and ``/status`` promise.

An operator-facing contract, so it is typed here and published as a JSON Schema
(``python -m agent.observe.report > docs/schemas/status-1.schema.json``); a test checks that
the published schema is this one and that ``status --json`` validates against it.
Times are ISO 8601 (UTC) strings, sizes bytes, durations seconds.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from typing_extensions import TypedDict

from agent.errors import ErrorKind
from agent.journal.schema import Hold  # pydantic reads its schema from this one before Python 3.12

STATUS_VERSION = 1

HealthState = Literal["healthy", "degraded", "down"]
DatasetState = Literal["settling", "uploading", "committed", "incomplete", "failed"]
DestinationState = Literal["active", "paused", "unknown"]


class Health(TypedDict):
    state: HealthState
    code: int  # 0 healthy, 1 degraded, 2 down: the exit code of `harvest status`
    reasons: list[str]


class AgentReport(TypedDict):
    running: bool
    pid: int | None
    started_at: str | None
    heartbeat_at: str | None
    down_since: str | None
    version: str | None
    instrument_id: str | None
    mode: Literal["run", "scan"] | None
    unresponsive_pid: int | None


class WorkerReport(TypedDict):
    alive: bool
    stalled: bool
    restarts: int
    last_restart_at: float | None
    last_restart_reason: str | None
    internal_errors: int


class DestinationReport(TypedDict):
    name: str
    state: DestinationState
    reason: str | None
    next_retry_at: str | None
    hold: Hold | None
    rate_bytes_per_second: float
    rate_window_seconds: float
    retrying: str | None
    last_known_state: str | None


class InFlight(TypedDict):
    path: str
    destination: str
    bytes_done: int
    bytes_total: int


class Commit(TypedDict):
    revision: int
    state: str
    committed_at: str | None


class DatasetReport(TypedDict):
    key: str
    operator: str | None
    state: DatasetState
    revision: int
    closed_at: str | None
    close_reason: str | None
    files: int
    files_done: int
    bytes: int
    bytes_done: int
    failed_files: int
    quarantined_files: int
    failed_deliveries: int
    unreadable_parts: int
    rate_bytes_per_second: float
    eta_seconds: float | None
    warnings: list[Any]
    committed: dict[str, Commit]
    open_reason: str | None  # an open dataset: what it waits for ("waiting for 2 of 240 images")
    completeness: dict[str, Any] | None  # a closed dataset: how its close was decided (harvest.json's block)


class IncompleteFile(TypedDict):
    path: str
    detail: str
    waiting_seconds: float


class FailedFile(TypedDict):
    path: str
    error: str | None


class UnreadablePart(TypedDict):
    path: str
    reason: str


class Unreadable(TypedDict):
    count: int
    parts: list[UnreadablePart]


class ErrorReport(TypedDict):
    at: str | None
    kind: ErrorKind
    path: str | None
    destination: str | None
    message: str
    hint: str


class GuardReport(TypedDict):
    active: bool
    since: str | None
    path: str | None
    rate_bytes_per_second: float | None


class OldestUnsafe(TypedDict):
    path: str
    since: str | None
    age_seconds: float


class Waiting(TypedDict):
    settling: int
    to_hash: int
    to_send: int
    datasets_to_commit: int


class StatusReport(TypedDict):
    """Everything `harvest status` knows, from the journal alone."""

    health: Health
    agent: AgentReport
    workers: dict[str, WorkerReport]
    files: dict[str, int]  # files by journal state, plus "settling" and "quarantined"
    deliveries: dict[str, dict[str, int]]  # destination -> delivery state -> count
    destinations: list[DestinationReport]
    in_flight: list[InFlight]
    datasets: list[DatasetReport]
    failed_files: list[FailedFile]
    unreadable: Unreadable
    errors: list[ErrorReport]
    guard: GuardReport
    oldest_unsafe: OldestUnsafe | None
    waiting: Waiting
    incomplete_files: list[IncompleteFile]  # stopped changing but not whole: waiting for the rest
    everything_archived: bool


def json_schema() -> dict[str, Any]:
    """The report's JSON Schema (draft 2020-12), as published in docs/schemas/."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(StatusReport).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"status-{STATUS_VERSION}.schema.json",
        **schema,
        "title": f"harvest status --json, version {STATUS_VERSION}",
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
