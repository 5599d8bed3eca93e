"""Discovery: which files to look at, from the watchers' notices and the reconcile scans.

Runs on the engine thread. Watchers (one per root) queue paths in the inbox; each tick
looks at what was noticed, starts the periodic reconcile scan when it is due and advances
running scans a slice at a time, so a huge tree never blocks settling or closing. Every
regular file allowed by its root's filter goes to the settle stage, unless the journal
already holds that identity. An excluded file that grows still tells the acquisition
guard that the instrument is writing.
"""

from __future__ import annotations

import logging
import stat as stat_module
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from operator import attrgetter
from pathlib import Path

from agent.controls.guard import AcquisitionGuard
from agent.engine.gaps import Gaps
from agent.engine.roots import Root, Roots
from agent.errors import ErrorKind
from agent.journal.store import Journal
from agent.pipeline.hashing import identity_of
from agent.pipeline.settle import SettleTracker
from agent.pipeline.watch import Inbox, RootWatcher, Run, relative_posix, scan_runs

logger = logging.getLogger(__name__)
# The periodic reconcile's share of one core, averaged over its interval, at most: on a tree
# where a full scan costs more than this over ``scan.interval_seconds``, the next one waits
# longer (a million files: 3.7 s of CPU, so about 25 min instead of 10). Watch events still
# bring new files at once; what waits is only the catch-up of a change they missed.
RECONCILE_CPU_SHARE = 0.0025
SCAN_SLICE = 2000  # entries a running scan looks at per tick
_IDENTITY = attrgetter("st_dev", "st_ino", "st_size", "st_mtime_ns")  # as the journal holds it
EXCLUDED_SIZES_KEPT = 4096  # excluded files whose size is remembered for the acquisition guard


def reconcile_interval(configured_seconds: float, scan_cpu_seconds: float) -> float:
    """Seconds from one periodic reconcile's start to the next: the configured interval, or
    longer where the scan would otherwise cost more than ``RECONCILE_CPU_SHARE`` of a core."""
    return max(configured_seconds, scan_cpu_seconds / RECONCILE_CPU_SHARE)


class Discovery:
    def __init__(
        self,
        roots: Roots,
        journal: Journal,
        tracker: SettleTracker,
        gaps: Gaps,
        guard: AcquisitionGuard,
        *,
        scan_interval_seconds: float,
        periodic_scans: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._roots = roots
        self._journal = journal
        self._tracker = tracker
        self._gaps = gaps
        self._guard = guard
        self._scan_interval = scan_interval_seconds
        self._periodic = periodic_scans
        self._clock = clock
        self.inbox = Inbox()
        self._watchers = {
            root.key: RootWatcher(
                root.path, self.inbox, polling=root.rule.polling, polling_interval=root.rule.polling_interval_seconds
            )
            for root in roots
        }
        self._scans: list[tuple[Root, Iterator[Run]]] = []
        self._excluded_sizes: OrderedDict[str, int] = OrderedDict()
        self._next_scan = 0.0
        # A full scan's start: wall, process CPU, engine thread CPU, engine clock.
        self._reconcile_started: tuple[float, float, float, float] | None = None
        self._reconcile_files = 0

    @property
    def scanning(self) -> bool:
        return bool(self._scans)

    # ----- watchers --------------------------------------------------------------------

    def start_watchers(self) -> None:
        for root in self._roots:
            try:
                self._watchers[root.key].start()
            except OSError as error:
                message = f"cannot watch {root.path}: {error.strerror}; relying on periodic scans"
                logger.warning(message)
                self._journal.record_error(ErrorKind.WATCH, message, path=root.key)

    def stop_watchers(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()

    def check_watchers(self) -> None:
        """Restart a watcher that stopped (its root was away a while) and rescan its root."""
        for root in self._roots:
            watcher = self._watchers[root.key]
            if not watcher.is_alive() and root.path.is_dir():
                message = f"watcher for {root.path} had stopped; restarted it and rescanning"
                logger.warning(message)
                self._journal.record_error(ErrorKind.WATCH, message, path=root.key)
                watcher.restart()
                self._scans.append((root, self._scan(root)))

    # ----- the engine thread's part ----------------------------------------------------

    def tick(self, now: float) -> None:
        """Look at what was noticed, start the reconcile scan when due, advance running scans."""
        for root_path, path in self.inbox.drain():
            root = self._roots.at(root_path)
            if root is not None:
                self._look_at(root, path)
        if self._periodic and now >= self._next_scan and not self._scans:
            self.start_scans()
        self._advance()

    def start_scans(self) -> None:
        """A full reconcile scan of every root."""
        self._gaps.prune()
        self._scans = [(root, self._scan(root)) for root in self._roots]
        started = self._clock()
        self._next_scan = started + self._scan_interval
        self._reconcile_started = (time.monotonic(), time.process_time(), time.thread_time(), started)
        self._reconcile_files = 0

    def reconcile_soon(self) -> None:
        self._next_scan = 0.0

    def rescan(self, rule_paths: list[Path]) -> None:
        """Full scans of these roots (``harvest rescan``)."""
        self._scans += [(root, self._scan(root)) for root in self._roots if root.path in rule_paths]

    def _scan(self, root: Root, start: Path | None = None) -> Iterator[Run]:
        if not root.path.is_dir():
            message = f"watched root {root.path} does not exist or is not a folder"
            self._journal.record_error(ErrorKind.WATCH, message, path=root.key)
            return iter(())
        return scan_runs(
            root.path,
            root.filter,
            follow_symlinks=root.follow_symlinks,
            start=start,
            on_error=lambda path, message: self._journal.record_error(ErrorKind.WATCH, f"{path}: {message}", path=path),
            on_unreadable=lambda path, folder, reason: self._gaps.unreadable(root.rule, path, folder, reason),
            on_listed=lambda folder: self._gaps.listed(root.rule, folder),
        )

    def _advance(self) -> None:
        """About ``SCAN_SLICE`` files of the running scans, their journal records looked up a
        folder's run at a time (a reconcile of a million harvested files is a few thousand
        queries)."""
        budget = SCAN_SLICE
        while self._scans and budget > 0:
            root, scan = self._scans[0]
            run = next(scan, None)
            if run is None:  # this scan is finished
                self._scans.pop(0)
                if not self._scans:
                    self._reconcile_done()
                continue
            self._observe_batch(root, run)
            budget -= len(run.files)
            self._reconcile_files += len(run.files)

    def _reconcile_done(self) -> None:
        """Published for status and benchmarks: when the last full scan ended, and its cost."""
        if self._reconcile_started is None:
            return
        wall, cpu, engine_cpu, started = self._reconcile_started
        self._reconcile_started = None
        # The scan runs on this (the engine's) thread: its CPU, not the process's (workers
        # may be busy harvesting meanwhile), is what the scan costs.
        interval = reconcile_interval(self._scan_interval, time.thread_time() - engine_cpu)
        if self._next_scan > 0.0:  # not when an operator asked for a rescan meanwhile
            self._next_scan = max(self._next_scan, started + interval)
        if interval > self._scan_interval:
            message = "the reconcile of %d files took %.1f s of CPU: the next one in %.0f s, not %.0f s"
            logger.info(message, self._reconcile_files, interval * RECONCILE_CPU_SHARE, interval, self._scan_interval)
        self._journal.set_facts({
            "reconcile_finished_at": str(time.time()),
            "reconcile_seconds": f"{time.monotonic() - wall:.3f}",
            "reconcile_cpu_seconds": f"{time.process_time() - cpu:.3f}",
            "reconcile_files": str(self._reconcile_files),
            "reconcile_interval_seconds": f"{interval:.0f}",
        })  # fmt: skip

    def _observe_batch(self, root: Root, run: Run) -> None:
        known = self._journal.current_identities(root.key, [rel_path for rel_path, _ in run.files])
        for rel_path, stat in run.files:
            if known.get(rel_path) == _IDENTITY(stat):
                continue  # harvested as it is: the common case of a reconcile, kept cheap
            self._tracker.observe(root.key, rel_path, run.path_of(rel_path), identity_of(stat),
                                  follow_symlinks=root.follow_symlinks)  # fmt: skip

    def _look_at(self, root: Root, path: Path) -> None:
        rel_path = relative_posix(root.path, path)
        if rel_path is None:
            return
        try:
            stat = path.lstat()
        except OSError:
            self._tracker.forget(root.key, rel_path)
            return
        if stat_module.S_ISLNK(stat.st_mode):
            if root.follow_symlinks:  # the scan decides whether and how to follow it
                self._scans.append((root, self._scan(root, start=path.parent)))
            return
        if stat_module.S_ISDIR(stat.st_mode):
            if root.filter.folder_allowed(rel_path):
                self._scans.append((root, self._scan(root, start=path)))
            return
        if stat_module.S_ISREG(stat.st_mode):
            if root.filter.file_allowed(rel_path):
                self._observe_batch(root, Run(str(path.parent), [(rel_path, stat)]))
            else:
                self._note_excluded_growth(path, stat.st_size)

    def _note_excluded_growth(self, path: Path, size: int) -> None:
        """An excluded file (say ZEN's *.tmp while it saves) is never harvested, but its
        growth still means an acquisition is running: the guard must see it."""
        key = str(path)
        previous = self._excluded_sizes.pop(key, None)
        self._excluded_sizes[key] = size
        if previous is not None and previous != size:
            self._guard.growth_seen(key)
        if len(self._excluded_sizes) > EXCLUDED_SIZES_KEPT:
            self._excluded_sizes.popitem(last=False)
