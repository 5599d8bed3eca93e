"""The engine: runs the pipeline stages and connects them through the journal.

The engine's own thread does discovery (paths the watchers notice + reconcile scans), the settle
stage and dataset closing; one thread hashes; one thread per destination transfers and
commits. Stages never call each other: they record states in the journal and wake the
next stage.
"""

from __future__ import annotations

import json
import logging
import os
import stat as stat_module
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from agent import __version__
from agent.config.models import AgentConfig, WatchRule
from agent.controls.channel import ControlServer
from agent.controls.guard import AcquisitionGuard
from agent.destinations import build_transports
from agent.destinations.base import DestinationTransport
from agent.engine.commands import CommandHandler
from agent.engine.gaps import Gaps
from agent.engine.hash_worker import HashWorker
from agent.engine.supervision import HUNG_WORKER_SECONDS, RestartLog
from agent.engine.transfer_worker import TransferWorker
from agent.errors import ErrorKind, HarvestError, JournalWriteError
from agent.journal.lock import StateDirLock
from agent.journal.store import FileRecord, FileState, Journal, SettledFile
from agent.observe.metrics_server import MetricsServer
from agent.observe.notify import Notifier
from agent.pipeline.datasets import DatasetTimers, missing_fileset_members, place
from agent.pipeline.filters import PathFilter
from agent.pipeline.hashing import identity_of
from agent.pipeline.settle import Candidate, SettleTracker
from agent.pipeline.watch import Found, Inbox, RootWatcher, relative_posix, scan_tree
from agent.secrets import credentials
from agent.secrets.redact import redact

logger = logging.getLogger(__name__)
SCAN_SLICE = 2000
HEARTBEAT_SECONDS = 2.0
WATCHER_CHECK_SECONDS = 5.0
EXCLUDED_SIZES_KEPT = 4096  # excluded files whose size is remembered for the acquisition guard


class _RateMeter:
    """Bytes per second, smoothed over about six seconds of heartbeats."""

    def __init__(self) -> None:
        self.rate = 0.0
        self._last_bytes = 0
        self._last_time: float | None = None

    def update(self, total_bytes: int, now: float) -> float:
        if self._last_time is not None and now > self._last_time:
            instant = (total_bytes - self._last_bytes) / (now - self._last_time)
            weight = min(1.0, (now - self._last_time) / 6.0)
            # From idle, the first measured interval is the estimate (no slow ramp from zero).
            self.rate = instant if self.rate < 1.0 else self.rate + weight * (instant - self.rate)
        self._last_bytes, self._last_time = total_bytes, now
        return self.rate


class _Root:
    """One watched root with its rule, filter and watcher."""

    def __init__(self, rule: WatchRule, inbox: Inbox) -> None:
        self.rule = rule
        self.path = rule.path
        self.key = str(rule.path)
        self.filter = PathFilter(rule.include, rule.exclude)
        self.template = rule.template
        self.watcher = RootWatcher(
            rule.path, inbox, polling=rule.polling, polling_interval=rule.polling_interval_seconds
        )


class Engine:
    def __init__(self, config: AgentConfig, *, oneshot: bool = False, watch: bool = True) -> None:
        self.config = config
        self.oneshot = oneshot
        self.stop_event = threading.Event()
        self._lock = StateDirLock(config.state_dir)
        self._lock.acquire()
        self._notifier = Notifier() if not oneshot else Notifier(address="")
        self._inbox = Inbox()
        self._roots = [_Root(rule, self._inbox) for rule in config.watch]
        self._use_watchers = watch and not oneshot
        polled = [rule.polling_interval_seconds for rule in config.watch if rule.polling]
        self.guard = AcquisitionGuard(
            config.acquisition_guard, stop=self.stop_event, min_active_seconds=2 * max(polled, default=0.0)
        )
        self._tracker = SettleTracker(
            config.settle.quiet_seconds, on_change=lambda candidate: self.guard.growth_seen(str(candidate.path))
        )
        self._timers = DatasetTimers(config.settle)
        self._journal = Journal(config.state_dir)
        self._gaps = Gaps(self._journal, on_dataset=self._timers.touch)
        self._published_settling = -1
        self._troubles = 0
        self._scans: list[tuple[_Root, Iterator[Found]]] = []
        self._excluded_sizes: OrderedDict[str, int] = OrderedDict()
        self._next_scan = 0.0
        self._next_heartbeat = 0.0
        self._next_watcher_check = 0.0
        self.transports: list[DestinationTransport] = build_transports(config)
        self._hash_worker = self._new_hash_worker()
        paused = set(json.loads(self._journal.facts().get("operator_paused") or "[]"))
        self._transfer_workers = [
            self._new_transfer_worker(transport, transport.name in paused and not oneshot)
            for transport in self.transports
        ]
        # Worker supervision: restarts per worker name, and when and why the last one was.
        self._restarts = RestartLog()
        self.commands = CommandHandler(self)
        self._control: ControlServer | None = None
        self._metrics: MetricsServer | None = None
        self._rates = {worker.transport.name: _RateMeter() for worker in self._transfer_workers}

    def _new_hash_worker(self) -> HashWorker:
        config = self.config
        return HashWorker(
            config.state_dir,
            {str(rule.path): config.destinations_for(rule) for rule in config.watch},
            {str(rule.path): rule.follow_symlinks for rule in config.watch},
            quarantine_roots=frozenset(str(rule.path) for rule in config.watch if rule.malformed == "quarantine"),
            stop=self.stop_event,
            on_hashed=self._wake_transfers,
            on_changed=self._requeue,
        )

    def _new_transfer_worker(self, transport: DestinationTransport, operator_paused: bool) -> TransferWorker:
        return TransferWorker(
            self.config,
            transport,
            stop=self.stop_event,
            on_changed=self._requeue,
            give_up_when_paused=self.oneshot,
            guard=self.guard,
            operator_paused=operator_paused,
            honour_schedule=not self.oneshot,
        )

    # ----- callbacks from worker threads (thread-safe: they only enqueue or set events) -----

    def _wake_transfers(self) -> None:
        for worker in self._transfer_workers:
            worker.wake.set()

    def _requeue(self, record: FileRecord) -> None:
        """A file changed while it was read: let it settle again."""
        self._inbox.notice(Path(record.root), Path(record.root) / record.rel_path)

    # ----- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (daemon) or until everything found is delivered (oneshot)."""
        self._journal.set_facts(
            {
                "pid": str(os.getpid()),
                "started_at": str(time.time()),
                "heartbeat_at": str(time.time()),
                "stopped_at": "",
                "version": __version__,
                "instrument_id": self.config.instrument.id,
                "mode": "scan" if self.oneshot else "run",
            }
        )
        for dataset_id in self._journal.open_dataset_ids():
            self._timers.track(dataset_id)
        if self._use_watchers:
            for root in self._roots:
                self._start_watcher(root)
        self._hash_worker.start()
        for worker in self._transfer_workers:
            worker.start()
        self._start_scans()
        self._start_control()
        self._start_metrics()
        self._notifier.ready(self._status_line())
        try:
            while not self.stop_event.is_set():
                try:
                    self._tick()
                    if self.oneshot and self._oneshot_finished():
                        break
                    self._troubles = 0
                except JournalWriteError as error:
                    self._trouble(error, traceback=False)
                    continue
                except Exception as error:  # noqa: BLE001 - the engine thread must never die of a surprise
                    self._trouble(error, traceback=True)
                    continue
                self._wait()
        finally:
            self.stop_event.set()
            self._shutdown()
        return 0

    def _trouble(self, error: Exception, *, traceback: bool) -> None:
        """Wait with backoff and go on: nothing is lost (what was not journalled is found again
        by the reconcile scan that follows), and status tells why the heartbeat stopped."""
        self._troubles += 1
        delay = min(60.0, 2.0 ** min(self._troubles, 6))
        if traceback:
            logger.error("engine: unexpected error; going on in %.0f s", delay, exc_info=error)
        else:
            logger.warning("%s (retry in %.0f s)", error, delay)
        self._notifier.status(f"trouble: {error}")
        self.stop_event.wait(delay)
        self._next_scan = 0.0  # reconcile once the journal takes writes again

    def _start_control(self) -> None:
        if self.oneshot or not self.config.control.enabled:
            return
        self._control = ControlServer(self.config.state_dir, self.commands.submit, group=self.config.control.group)
        try:
            self._control.listen()
        except (OSError, KeyError) as error:
            message = f"control channel unavailable ({error}); harvest pause/resume/retry/rescan will not work"
            logger.warning(message)
            self._journal.record_error(ErrorKind.CONTROL, message)
            self._control = None
            return
        self._control.start()

    def _start_metrics(self) -> None:
        if self.oneshot or self.config.metrics is None:
            return
        settings = self.config.metrics
        try:
            token = credentials.resolve(settings.credential).value if settings.credential else None
            self._metrics = MetricsServer(settings, self.config.state_dir, token=token)
        except (OSError, HarvestError) as error:
            detail = error.strerror if isinstance(error, OSError) and error.strerror else error
            message = f"metrics endpoint {settings.listen} unavailable: {detail}"
            logger.error(message)
            self._journal.record_error(ErrorKind.METRICS, message)
            return
        self._metrics.start()
        logger.info("serving /metrics and /status on %s", self.config.metrics.listen)

    def _shutdown(self) -> None:
        self._notifier.stopping()
        if self._control is not None:
            self._control.close()
        if self._metrics is not None:
            self._metrics.stop()
        for root in self._roots:
            root.watcher.stop()
        self._hash_worker.wake.set()
        self._hash_worker.join(timeout=30)
        for worker in self._transfer_workers:
            worker.wake.set()
            worker.join(timeout=30)
        try:
            self._journal.set_facts({"stopped_at": str(time.time()), "settling": "0"})
        except JournalWriteError as error:
            logger.warning("could not record the clean stop: %s", error)
        self._journal.close()
        self._lock.release()

    def _start_watcher(self, root: _Root) -> None:
        try:
            root.watcher.start()
        except OSError as error:
            message = f"cannot watch {root.path}: {error.strerror}; relying on periodic scans"
            logger.warning(message)
            self._journal.record_error(ErrorKind.WATCH, message, path=root.key)

    # ----- the loop --------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        self.commands.run_pending()
        self._look_at_noticed()
        if now >= self._next_scan and not self._scans and not self.oneshot:
            self._start_scans()
        self._advance_scans()
        self._settle()
        if len(self._tracker) != self._published_settling:
            # Published when it changes, not only with the heartbeat: status never shows a
            # file settling that is already hashed, or none while one is.
            self._published_settling = len(self._tracker)
            self._journal.set_facts({"settling": str(self._published_settling)})
        self._close_datasets()
        if now >= self._next_watcher_check:
            if self._use_watchers:
                self._check_watchers()
            self._supervise_workers()
            self._next_watcher_check = now + WATCHER_CHECK_SECONDS
        if now >= self._next_heartbeat:
            self._journal.set_facts(self._live_facts(now))
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            self._notifier.status(self._status_line())
            if self._notifier.watchdog_interval_seconds is not None and self.workers_healthy():
                self._notifier.watchdog()

    def _live_facts(self, now: float) -> dict[str, str]:
        """What the status report needs that the journal's tables do not hold."""
        facts = {"heartbeat_at": str(time.time()), "settling": str(len(self._tracker)), **self.guard.facts()}
        facts["workers"] = json.dumps(self.worker_facts())
        for worker in self._transfer_workers:
            name = worker.transport.name
            facts[f"hold.{name}"] = worker.hold_reason() or ""
            facts[f"live.{name}"] = json.dumps(dict(worker.live))
            rate = self._rates[name].update(worker.bytes_sent, now)
            # A rate is shown only while something is being sent; idle is no rate at all.
            facts[f"rate.{name}"] = f"{rate:.0f}" if worker.live else "0"
            facts[f"retrying.{name}"] = redact(worker.retrying or "")
        return facts

    @property
    def transfer_workers(self) -> list[TransferWorker]:
        return self._transfer_workers

    @property
    def journal(self) -> Journal:
        """The engine thread's journal connection (use only from the engine thread)."""
        return self._journal

    def notice(self, root: Path, path: Path) -> None:
        """Queue a path for the engine thread to look at (thread-safe)."""
        self._inbox.notice(root, path)

    def wake(self) -> None:
        """End the engine thread's wait now (thread-safe)."""
        self._inbox.wake()

    def rescan(self, rule_paths: list[Path]) -> None:
        """Full scans of these roots (engine thread)."""
        for root in self._roots:
            if root.path in rule_paths:
                self._scans.append((root, self._scan_root(root)))

    def workers_healthy(self) -> bool:
        """Every worker thread alive with a recent heartbeat (else systemd's watchdog restarts us)."""
        limit = max(HUNG_WORKER_SECONDS, 4 * (self._notifier.watchdog_interval_seconds or 0))
        now = time.monotonic()
        workers: list[HashWorker | TransferWorker] = [self._hash_worker, *self._transfer_workers]
        return all(worker.is_alive() and now - worker.heartbeat < limit for worker in workers if not
                   getattr(worker, "gave_up", False))  # fmt: skip

    def _status_line(self) -> str:
        paused = [worker.transport.name for worker in self._transfer_workers if worker.paused_reason]
        text = f"{len(self._tracker)} settling"
        return text + (f"; paused: {', '.join(paused)}" if paused else "; destinations active")

    def _wait(self) -> None:
        if self._scans:
            return
        deadlines = [self._tracker.next_deadline(), self._timers.next_deadline(), self._next_heartbeat]
        deadline = min(deadline for deadline in deadlines if deadline is not None)
        timeout = min(max(deadline - time.monotonic(), 0.01), 1.0)
        self._inbox.wait(timeout)

    def _start_scans(self) -> None:
        self._gaps.prune()
        self._scans = [(root, self._scan_root(root)) for root in self._roots]
        self._next_scan = time.monotonic() + self.config.scan.interval_seconds

    def _scan_root(self, root: _Root, start: Path | None = None) -> Iterator[Found]:
        if not root.path.is_dir():
            message = f"watched root {root.path} does not exist or is not a folder"
            self._journal.record_error(ErrorKind.WATCH, message, path=root.key)
            return iter(())
        return scan_tree(
            root.path,
            root.filter,
            follow_symlinks=root.rule.follow_symlinks,
            start=start,
            on_error=lambda path, message: self._journal.record_error(ErrorKind.WATCH, f"{path}: {message}", path=path),
            on_unreadable=lambda path, folder, reason: self._gaps.unreadable(root.rule, path, folder, reason),
            on_listed=lambda folder: self._gaps.listed(root.rule, folder),
        )

    def _advance_scans(self) -> None:
        budget = SCAN_SLICE
        while self._scans and budget > 0:
            root, scan = self._scans[0]
            for found in scan:
                self._observe(root, found.rel_path, found.path, found.stat)
                budget -= 1
                if budget <= 0:
                    return
            self._scans.pop(0)

    def _observe(self, root: _Root, rel_path: str, path: Path, stat: os.stat_result) -> None:
        identity = identity_of(stat)
        known = self._journal.known_identity(root.key, rel_path)
        if known is not None and known[0] == identity and known[1] != FileState.STALE:
            return
        self._tracker.observe(root.key, rel_path, path, identity, follow_symlinks=root.rule.follow_symlinks)

    def _look_at_noticed(self) -> None:
        for root_path, path in self._inbox.drain():
            root = next((root for root in self._roots if root.path == root_path), None)
            if root is not None:
                self._look_at(root, path)

    def _look_at(self, root: _Root, path: Path) -> None:
        rel_path = relative_posix(root.path, path)
        if rel_path is None:
            return
        try:
            stat = path.lstat()
        except OSError:
            self._tracker.forget(root.key, rel_path)
            return
        if stat_module.S_ISLNK(stat.st_mode):
            if root.rule.follow_symlinks:  # the scan decides whether and how to follow it
                self._scans.append((root, self._scan_root(root, start=path.parent)))
            return
        if stat_module.S_ISDIR(stat.st_mode):
            if root.filter.folder_allowed(rel_path):
                self._scans.append((root, self._scan_root(root, start=path)))
            return
        if stat_module.S_ISREG(stat.st_mode):
            if root.filter.file_allowed(rel_path):
                self._observe(root, rel_path, path, stat)
            else:
                self._note_excluded_growth(path, stat.st_size)

    def _note_excluded_growth(self, path: Path, size: int) -> None:
        """An excluded file (say ZEN's *.tmp while it saves) is never harvested, but its
        growth still means an acquisition is running: the guard must see it."""
        key = str(path)
        previous = self._excluded_sizes.pop(key, None)
        self._excluded_sizes[key] = size
        if previous is not None and previous != size:
            self.guard.growth_seen(key)
        if len(self._excluded_sizes) > EXCLUDED_SIZES_KEPT:
            self._excluded_sizes.popitem(last=False)

    def _settle(self) -> None:
        result = self._tracker.poll()
        self._gaps.vanished((candidate.root, candidate.rel_path) for candidate in result.vanished)
        if not result.settled:
            return
        settled = [self._placement(candidate) for candidate in result.settled]
        touched = self._journal.record_settled(settled)
        marker = self.config.settle.marker
        markers = {item.dataset_key for item in settled if marker and item.rel_path.rsplit("/", 1)[-1] == marker}
        for dataset_id in touched:
            dataset = self._journal.dataset(dataset_id)
            self._timers.touch(dataset_id, marker=dataset.dataset_key in markers)
        self._hash_worker.wake.set()

    def _placement(self, candidate: Candidate) -> SettledFile:
        root = next(root for root in self._roots if root.key == candidate.root)
        match = place(root.rule, candidate.rel_path, candidate.path)
        return SettledFile(
            root=candidate.root,
            rel_path=candidate.rel_path,
            identity=candidate.identity,
            dataset_key=match.dataset_key if match else None,
            dataset_fields=match.fields if match else {},
            path_in_dataset=match.path_in_dataset if match else None,
        )

    def _pending_in(self, root_key: str, dataset_key: str) -> list[Candidate]:
        """Files still settling that belong (or, unplaceable before they settle, may belong) to a dataset."""
        root = next((root for root in self._roots if root.key == root_key), None)
        pending = []
        for candidate in self._tracker.pending():
            if candidate.root != root_key:
                continue
            if root is None or root.rule.group_by != "folder":
                pending.append(candidate)  # DICOM grouping needs the settled header to place a file
                continue
            match = root.template.match(candidate.rel_path)
            if match is not None and match.dataset_key == dataset_key:
                pending.append(candidate)
        return pending

    def _dataset_busy(self, dataset_id: int) -> bool:
        """Not complete yet: a member is settling or unhashed, or a fileset member is missing."""
        dataset = self._journal.dataset(dataset_id)
        if self._pending_in(dataset.root, dataset.dataset_key):
            return True
        if self._journal.has_unhashed_files(dataset_id):
            return True
        return bool(self._missing_fileset_members(dataset_id))

    def _missing_fileset_members(self, dataset_id: int) -> list[str]:
        metadata = self._journal.file_metadata(dataset_id)
        return missing_fileset_members(
            (record.path_in_dataset or "", json.loads(metadata[record.id]) if record.id in metadata else None)
            for record in self._journal.dataset_files(dataset_id)
            if record.state != FileState.FAILED
        )

    def _close(self, dataset_id: int, reason: str, *, forced: bool = False) -> None:
        missing = self._missing_fileset_members(dataset_id)
        dataset = self._journal.dataset(dataset_id)
        if missing:
            warning = f"closed with fileset members missing: {', '.join(missing)}"
            self._journal.add_dataset_warning(dataset_id, warning)
            self._journal.record_error(ErrorKind.DATASET, f"dataset {dataset.dataset_key}: {warning}")
        if forced:
            message = f"dataset {dataset.dataset_key} was closed by force: {reason}"
            self._journal.record_error(ErrorKind.DATASET, message)
            root = next((root for root in self._roots if root.key == dataset.root), None)
            still_written = (
                "still being written when the dataset was closed by force (dataset_max_open_seconds);"
                " a later revision will hold it"
            )
            for candidate in self._pending_in(dataset.root, dataset.dataset_key):
                if root is not None:
                    self._gaps.record(root.rule, candidate.rel_path, still_written)
        self._journal.close_dataset(dataset_id, reason)

    def _close_datasets(self) -> None:
        decisions = self._timers.due(self._dataset_busy)
        for decision in decisions:
            self._close(decision.dataset_id, decision.reason, forced=decision.forced)
        if decisions:
            self._wake_transfers()

    def _supervise_workers(self) -> None:
        """Restart a worker thread that ended although nobody asked it to (its error is in the log)."""
        if self.stop_event.is_set():
            return
        if not self._hash_worker.is_alive():
            reason = self._hash_worker.last_error or "ended unexpectedly"
            self._restarts.note("hash", reason, self._journal)
            self._hash_worker = self._new_hash_worker()
            self._hash_worker.start()
        for index, worker in enumerate(self._transfer_workers):
            if worker.is_alive() or worker.gave_up:
                continue
            self._restarts.note(
                f"transfer-{worker.transport.name}", worker.last_error or "ended unexpectedly", self._journal
            )
            replacement = self._new_transfer_worker(worker.transport, worker.operator_paused)
            self._transfer_workers[index] = replacement
            replacement.start()

    def worker_facts(self) -> dict[str, dict[str, object]]:
        """Each worker thread: alive, restarts, internal errors, last error (for status and metrics)."""
        return self._restarts.facts(
            [("hash", self._hash_worker, False)]
            + [(f"transfer-{worker.transport.name}", worker, worker.gave_up) for worker in self._transfer_workers]
        )

    def _check_watchers(self) -> None:
        for root in self._roots:
            if not root.watcher.is_alive() and root.path.is_dir():
                message = f"watcher for {root.path} had stopped; restarted it and rescanning"
                logger.warning(message)
                self._journal.record_error(ErrorKind.WATCH, message, path=root.key)
                root.watcher.restart()
                self._scans.append((root, self._scan_root(root)))

    # ----- oneshot (harvest scan) --------------------------------------------------------

    def _oneshot_finished(self) -> bool:
        if self._scans or len(self._tracker):
            return False
        if self._hash_worker.busy or self._journal.files_in_state(FileState.SETTLED, 1):
            return False
        for dataset_id in self._journal.open_dataset_ids():
            self._close(dataset_id, "scan finished")
            self._timers.forget(dataset_id)
            self._wake_transfers()
        pending = [w for w in self._transfer_workers if not w.gave_up]
        for worker in pending:
            name = worker.transport.name
            if worker.busy or worker.paused_reason is not None:
                return False
            if self._journal.deliveries_to_send(name, 1) or self._journal.datasets_ready_to_commit(name):
                return False
        return True
