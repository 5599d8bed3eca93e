"""Settle stage: a file is ready only once it has stopped changing.

The quiet period runs on the LOCAL MONOTONIC clock, never by comparing file mtimes
with the wall clock: copy tools (robocopy, rsync -t) restore old mtimes, network
shares have clock skew, and NTP can step the wall clock. A file settles when its
identity (dev, ino, size, mtime_ns) has been observed unchanged for ``quiet_seconds``,
re-checked several times within that period so a writer that pauses briefly is seen.
Memory is proportional to the number of files not yet settled, not to the tree size.

A file that stopped changing must also be whole (``agent.extract.whole``): one whose
headers declare bytes, planes or blocks it does not hold keeps waiting as "incomplete"
(the writer may be paused between tiles) until it changes, or until its root's
``truncated_grace_seconds`` have passed; then it settles as it is, and the rule's
``malformed`` policy decides whether it is shipped (never as complete) or kept.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.extract.model import FileCompleteness
from agent.journal.store import FileIdentity
from agent.pipeline.hashing import identity_of

Clock = Callable[[], float]
StatFunction = Callable[[Path], os.stat_result]


def _lstat(path: Path) -> os.stat_result:
    return path.lstat()


@dataclass
class Candidate:
    root: str
    rel_path: str
    path: Path
    identity: FileIdentity
    last_change: float
    next_check: float
    follow_symlinks: bool = False
    incomplete: FileCompleteness | None = None  # truncated when its quiet period ended
    incomplete_since: float | None = None


Wholeness = Callable[[Candidate], FileCompleteness]


@dataclass(frozen=True)
class SettleResult:
    settled: list[Candidate]
    vanished: list[Candidate]


class SettleTracker:
    """Tracks files that are not yet known to be complete."""

    def __init__(
        self,
        quiet_seconds: float,
        *,
        clock: Clock = time.monotonic,
        stat: StatFunction = _lstat,
        on_change: Callable[[Candidate], None] | None = None,
        wholeness: Wholeness | None = None,
        grace: Callable[[str], float] = lambda root: 0.0,
    ) -> None:
        """*wholeness* checks a quiet file's structure; *grace* is how long a truncated file
        of a root waits before it settles anyway."""
        self.quiet_seconds = quiet_seconds
        # Told about every change to a file already being watched (the acquisition guard).
        self._on_change = on_change or (lambda candidate: None)
        # Re-check several times per quiet period (but not more than a few times a
        # second) so that a change and a change back are not both missed.
        self.check_interval = min(max(quiet_seconds / 4, 0.1), 5.0)
        self._clock = clock
        self._stat = stat
        self._candidates: dict[tuple[str, str], Candidate] = {}
        self._wholeness = wholeness
        self._grace = grace

    def __len__(self) -> int:
        return len(self._candidates)

    def pending(self) -> list[Candidate]:
        return list(self._candidates.values())

    def incomplete(self) -> list[Candidate]:
        """Files that stopped changing but are not whole yet."""
        return [candidate for candidate in self._candidates.values() if candidate.incomplete is not None]

    def observe(
        self, root: str, rel_path: str, path: Path, identity: FileIdentity, *, follow_symlinks: bool = False
    ) -> None:
        """A file was seen (by a scan or a watch event) with this identity.

        *follow_symlinks*: the file is (or may be) a link that the root follows; it is then
        watched by its target's identity, the one the hash stage will see.
        """
        now = self._clock()
        key = (root, rel_path)
        candidate = self._candidates.get(key)
        if candidate is None:
            self._candidates[key] = Candidate(
                root, rel_path, path, identity, now, now + self.check_interval, follow_symlinks
            )
        elif candidate.identity != identity:
            self._changed(candidate, identity, now)
            candidate.next_check = now + self.check_interval

    def forget(self, root: str, rel_path: str) -> None:
        self._candidates.pop((root, rel_path), None)

    def next_deadline(self) -> float | None:
        return min((candidate.next_check for candidate in self._candidates.values()), default=None)

    def poll(self) -> SettleResult:
        """Re-check candidates that are due; return those that settled or vanished."""
        now = self._clock()
        settled: list[Candidate] = []
        vanished: list[Candidate] = []
        for key, candidate in list(self._candidates.items()):
            if candidate.next_check > now:
                continue
            try:
                found = candidate.path.stat() if candidate.follow_symlinks else self._stat(candidate.path)
            except FileNotFoundError:
                vanished.append(self._candidates.pop(key))
                continue
            except OSError:
                # Unreadable metadata right now (share hiccup): look again later.
                candidate.next_check = now + self.check_interval
                continue
            if not stat.S_ISREG(found.st_mode):
                # Replaced by a named pipe, a device or a folder: nothing to harvest here.
                vanished.append(self._candidates.pop(key))
                continue
            identity = identity_of(found)
            if identity != candidate.identity:
                self._changed(candidate, identity, now)
            elif now - candidate.last_change >= self.quiet_seconds and self._whole_or_given_up(candidate, now):
                settled.append(self._candidates.pop(key))
                continue
            due = candidate.last_change + self.quiet_seconds
            if candidate.incomplete_since is not None:
                due = candidate.incomplete_since + self._grace(candidate.root)
            candidate.next_check = max(min(now + self.check_interval, due), now + 0.01)
        return SettleResult(settled, vanished)

    def _changed(self, candidate: Candidate, identity: FileIdentity, now: float) -> None:
        candidate.identity = identity
        candidate.last_change = now
        candidate.incomplete = candidate.incomplete_since = None
        self._on_change(candidate)

    def _whole_or_given_up(self, candidate: Candidate, now: float) -> bool:
        """Quiet: settle if whole (or nothing to check), or once a truncated file's grace is over."""
        if candidate.incomplete_since is None:
            if self._wholeness is None:
                return True
            verdict = self._wholeness(candidate)
            if verdict.state != "truncated":
                return True
            candidate.incomplete, candidate.incomplete_since = verdict, now
        return now - candidate.incomplete_since >= self._grace(candidate.root)
