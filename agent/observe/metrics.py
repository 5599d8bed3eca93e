"""Prometheus metrics from the journal (served by ``agent.observe.metrics_server``).

Every scrape reads the journal (read-only) through the same report as ``harvest
status``, so the figures a fleet dashboard shows are the ones an operator sees.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.journal.schema import Hold
from agent.journal.store import Journal
from agent.observe.report import StatusReport
from agent.observe.status import report_from

logger = logging.getLogger(__name__)


class JournalCollector(Collector):
    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir

    def collect(self) -> Iterator[Metric]:
        journal = Journal(self._state_dir, read_only=True)
        try:
            report = report_from(journal)
            counters = journal.counters("delivered_")
            delivered = [
                (
                    row.name,
                    counters.get(f"delivered_files.{row.name}", 0),
                    counters.get(f"delivered_bytes.{row.name}", 0),
                )
                for row in journal.destinations()
            ]
            queued = [tuple(row) for row in journal.queued()]
            failures = list(journal.counters("failures.").items())
        finally:
            journal.close()
        yield from _metrics(report, delivered, queued, failures)


def _files_and_bytes(
    family: type[CounterMetricFamily] | type[GaugeMetricFamily], prefix: str, meaning: str, rows: list[tuple[Any, ...]]
) -> Iterator[Metric]:
    """``PREFIX_bytes`` and ``PREFIX_files`` per destination, from (destination, files, bytes) rows."""
    byte_family = family(f"{prefix}_bytes", f"Bytes {meaning}", labels=["destination"])
    file_family = family(f"{prefix}_files", f"Files {meaning}", labels=["destination"])
    for destination, count, byte_count in rows:
        file_family.add_metric([str(destination)], float(count))
        byte_family.add_metric([str(destination)], float(byte_count))
    yield byte_family
    yield file_family


def _metrics(
    report: StatusReport,
    delivered: list[tuple[Any, ...]],
    queued: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
) -> Iterator[Metric]:
    agent = report["agent"]
    info = InfoMetricFamily("harvest_agent", "Agent version and instrument identity")
    info.add_metric(
        [], {"version": str(agent.get("version") or ""), "instrument_id": str(agent.get("instrument_id") or "")}
    )
    yield info
    up = GaugeMetricFamily("harvest_agent_up", "1 while the agent is running (recent heartbeat)")
    up.add_metric([], 1.0 if agent["running"] else 0.0)
    yield up
    health = GaugeMetricFamily("harvest_health", "0 healthy, 1 degraded, 2 down (as harvest status exits)")
    health.add_metric([], float(report["health"]["code"]))
    yield health
    yield from _files_and_bytes(CounterMetricFamily, "harvest_delivered", "verified at each destination", delivered)
    yield from _files_and_bytes(GaugeMetricFamily, "harvest_queue", "waiting to be sent", queued)
    states = GaugeMetricFamily("harvest_files", "Files by state", labels=["state"])
    for state, count in report["files"].items():
        states.add_metric([state], float(count))
    yield states
    oldest = GaugeMetricFamily("harvest_oldest_pending_file_age_seconds", "Age of the oldest file not yet archived")
    oldest.add_metric([], float(report["oldest_unsafe"]["age_seconds"]) if report["oldest_unsafe"] else 0.0)
    yield oldest
    failed = CounterMetricFamily("harvest_failures", "Failures recorded, by class", labels=["class"])
    for key, value in failures:
        failed.add_metric([str(key).removeprefix("failures.")], float(value))
    yield failed
    destination_up = GaugeMetricFamily(
        "harvest_destination_up", "1 if the destination is usable", labels=["destination"]
    )
    paused = GaugeMetricFamily(
        "harvest_destination_paused", "1 if uploads to the destination are paused", labels=["destination", "reason"]
    )
    for destination in report["destinations"]:
        name = str(destination["name"])
        errored = destination["state"] == "paused"
        destination_up.add_metric([name], 0.0 if errored else 1.0)
        hold = destination.get("hold")
        reason = "error" if errored else "operator" if hold == Hold.OPERATOR else "schedule" if hold else ""
        paused.add_metric([name, reason], 1.0 if reason else 0.0)
    yield destination_up
    yield paused
    worker_up = GaugeMetricFamily("harvest_worker_up", "1 while a worker thread runs", labels=["worker"])
    restarts = CounterMetricFamily(
        "harvest_worker_restarts", "Worker threads restarted by the supervisor since start", labels=["worker"]
    )
    internal = CounterMetricFamily(
        "harvest_worker_internal_errors", "Unexpected errors a worker survived since start", labels=["worker"]
    )
    for name, worker in (report.get("workers") or {}).items():
        worker_up.add_metric([name], 1.0 if worker.get("alive") else 0.0)
        restarts.add_metric([name], float(worker.get("restarts") or 0))
        internal.add_metric([name], float(worker.get("internal_errors") or 0))
    yield worker_up
    yield restarts
    yield internal
    guard = GaugeMetricFamily("harvest_acquisition_guard_active", "1 while an acquisition is running")
    guard.add_metric([], 1.0 if report["guard"]["active"] else 0.0)
    yield guard
