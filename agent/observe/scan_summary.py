"""The verdict of ``harvest scan``: is everything verified at every destination?"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.models import AgentConfig
from agent.journal.store import DatasetState, DeliveryState, FileState, Journal


@dataclass(frozen=True)
class ScanSummary:
    ok: bool
    text: str


def summarize(config: AgentConfig) -> ScanSummary:
    journal = Journal(config.state_dir, read_only=True)
    try:
        problems: list[str] = []
        for root, rel_path, error in journal.query(
            "SELECT root, rel_path, error FROM files WHERE state = ?", (FileState.FAILED,)
        ):
            problems.append(f"{root}/{rel_path}: {error}")
        for root, rel_path, destination, error in journal.query(
            "SELECT f.root, f.rel_path, d.destination, d.error FROM deliveries d JOIN files f ON f.id = d.file_id"
            " AND f.version = d.version WHERE d.state != ? AND f.state = ?",
            (DeliveryState.VERIFIED, FileState.HASHED),
        ):
            problems.append(f"{root}/{rel_path}: not verified at {destination}: {error or 'not delivered'}")
        for root, rel_path, reason in journal.query("SELECT root, rel_path, reason FROM gaps ORDER BY rel_path"):
            problems.append(f"{root}/{rel_path}: {reason} (its dataset is archived as incomplete)")
        for name, reason in journal.query("SELECT name, reason FROM destinations WHERE state = 'paused'"):
            problems.append(f"destination {name} unavailable: {reason}")
        committed = 0
        for destination in config.destinations:
            rows = journal.query(
                "SELECT s.dataset_key FROM datasets s LEFT JOIN commits c ON c.dataset_id = s.id"
                " AND c.destination = ? WHERE s.state != ? OR c.revision IS NULL OR c.revision < s.revision"
                " OR c.state != 'committed'",
                (destination.name, DatasetState.CLOSED),
            )
            for (key,) in rows:
                problems.append(f"dataset {key}: not committed at {destination.name}")
            committed += int(
                journal.query(
                    "SELECT COUNT(*) FROM commits WHERE destination = ? AND state = 'committed'", (destination.name,)
                )[0][0]
            )
        ignored = journal.query("SELECT COUNT(*) FROM files WHERE state = ?", (FileState.IGNORED,))[0][0]
        verified = journal.query("SELECT COUNT(*) FROM deliveries WHERE state = ?", (DeliveryState.VERIFIED,))[0][0]
    finally:
        journal.close()
    lines = [f"{verified} file deliveries verified, {committed} dataset commits"]
    if ignored:
        lines.append(f"{ignored} files outside any dataset folder were not harvested (see harvest status)")
    if problems:
        lines.append(f"{len(problems)} problem(s):")
        lines.extend(f"  {problem}" for problem in problems[:50])
        if len(problems) > 50:
            lines.append(f"  ... and {len(problems) - 50} more")
    return ScanSummary(ok=not problems, text="\n".join(lines))
