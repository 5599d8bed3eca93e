"""The verdict of ``harvest scan``: is everything verified at every destination?"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.models import AgentConfig
from agent.journal.store import FileState, Journal


@dataclass(frozen=True)
class ScanSummary:
    ok: bool
    text: str


def summarize(config: AgentConfig) -> ScanSummary:
    journal = Journal(config.state_dir, read_only=True)
    try:
        problems = [f"{failed.root}/{failed.rel_path}: {failed.reason}" for failed in journal.failed_files()]
        problems += [
            f"{row.root}/{row.rel_path}: not verified at {row.destination}: {row.error or 'not delivered'}"
            for row in journal.undelivered()
        ]
        problems += [
            f"{gap.root}/{gap.rel_path}: {gap.reason} (its dataset is archived as incomplete)"
            for gap in journal.gaps(by_path=True)
        ]
        problems += [
            f"destination {row.name} unavailable: {row.reason}" for row in journal.destinations(paused_only=True)
        ]
        committed = 0
        for destination in config.destinations:
            # Only the roots whose rule sends there: a dataset another destination holds is not missing here.
            roots = {str(rule.path) for rule in config.watch if destination.name in config.destinations_for(rule)}
            problems += [
                f"dataset {key}: not committed at {destination.name}"
                for root, key in journal.uncommitted_datasets(destination.name)
                if root in roots
            ]
            committed += journal.committed_count(destination.name)
        ignored = journal.file_count(FileState.IGNORED)
        verified = journal.verified_count()
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
