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
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent import __version__
from agent.config.models import AgentConfig
from agent.controls.channel import ControlServer
from agent.controls.guard import AcquisitionGuard
from agent.destinations import build_transports
from agent.destinations.base import DestinationTransport
from agent.engine.closing import DatasetCloser
from agent.engine.commands import CommandHandler
from agent.engine.completion import candidate_wholeness, completion_facts
from agent.engine.discovery import Discovery
from agent.engine.gaps import Gaps
from agent.engine.hash_worker import HashWorker
from agent.engine.roots import Roots
from agent.engine.services import RateMeter, start_control, start_metrics
from agent.engine.supervision import HUNG_WORKER_SECONDS, RestartLog
from agent.engine.transfer_worker import TransferWorker
from agent.errors import JournalWriteError
from agent.extract.bundles import one_instant
from agent.journal.lock import StateDirLock
from agent.journal.store import FileRecord, FileState, Journal, SettledFile
from agent.observe.metrics_server import MetricsServer
from agent.observe.notify import Notifier
from agent.pipeline.datasets import DatasetTimers, place
from agent.pipeline.settle import Candidate, SettleTracker
from agent.secrets.redact import redact

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 2.0
WATCHER_CHECK_SECONDS = 5.0


class Engine:
    def __init__(
        self,
        config: AgentConfig,
        *,
        oneshot: bool = False,
        watch: bool = True,
        transports: list[DestinationTransport] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """*transports* replaces the configured ones and *clock* the monotonic clock (for tests)."""
        self.config = config
        self.oneshot = oneshot
        self.stop_event = threading.Event()
        self._lock = StateDirLock(config.state_dir)
        self._lock.acquire()
        self._notifier = Notifier() if not oneshot else Notifier(address="")
        self._roots = Roots(config)
        self._use_watchers = watch and not oneshot
        polled = [rule.polling_interval_seconds for rule in config.watch if rule.polling]
        self.guard = AcquisitionGuard(
            config.acquisition_guard, stop=self.stop_event, min_active_seconds=2 * max(polled, default=0.0)
        )
        self._clock = clock
        self._tracker = SettleTracker(
            config.settle.quiet_seconds,
            clock=clock,
            on_change=lambda candidate: self.guard.growth_seen(str(candidate.path)),
            wholeness=candidate_wholeness,
            # A one-shot scan takes files as they are: a truncated one goes to its rule's
            # malformed policy at once, and a later scan sees its whole version as new.
            grace=lambda root: 0.0 if oneshot else self._roots.truncated_grace(root, config.settle),
        )
        self._timers = DatasetTimers(config.settle, clock=clock)
        self._journal = Journal(config.state_dir)
        self._gaps = Gaps(self._journal, on_dataset=self._timers.touch)
        self._discovery = Discovery(
            self._roots,
            self._journal,
            self._tracker,
            self._gaps,
            self.guard,
            scan_interval_seconds=config.scan.interval_seconds,
            periodic_scans=not oneshot,
            clock=clock,
        )
        self._closer = DatasetCloser(self._journal, self._roots, self._tracker, self._timers, self._gaps, config.settle)
        # A one-shot scan ends when every worker waits for work: each wait wakes the engine to check.
        self._worker_idle: Callable[[], None] = self._discovery.inbox.wake if oneshot else lambda: None
        self._published_settling = -1
        self._troubles = 0
        self._next_heartbeat = 0.0
        self._next_watcher_check = 0.0
        self.transports: list[DestinationTransport] = transports if transports is not None else build_transports(config)
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
        self._rates = {worker.transport.name: RateMeter() for worker in self._transfer_workers}

    def _new_hash_worker(self) -> HashWorker:
        return HashWorker(
            self.config.state_dir,
            self._roots,
            stop=self.stop_event,
            on_hashed=self._hashed,
            on_changed=self._requeue,
            on_idle=self._worker_idle,
        )

    def _new_transfer_worker(self, transport: DestinationTransport, operator_paused: bool) -> TransferWorker:
        return TransferWorker(
            self.config,
            self._roots,
            transport,
            stop=self.stop_event,
            on_changed=self._requeue,
            on_idle=self._worker_idle,
            give_up_when_paused=self.oneshot,
            guard=self.guard,
            operator_paused=operator_paused,
            honour_schedule=not self.oneshot,
        )

    # ----- callbacks from worker threads (thread-safe: they only enqueue or set events) -----

    def _wake_transfers(self) -> None:
        for worker in self._transfer_workers:
            worker.wake.set()

    def _hashed(self, dataset_ids: set[int]) -> None:
        """Files were hashed: their datasets may now be complete by declaration."""
        self._closer.note_hashed(dataset_ids)
        self._wake_transfers()
        self._discovery.inbox.wake()

    def _requeue(self, record: FileRecord) -> None:
        """A file changed while it was read: let it settle again."""
        self._discovery.inbox.notice(Path(record.root), Path(record.root) / record.rel_path)

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
            self._closer.note_hashed({dataset_id})  # complete by declaration before a restart?
        if self._use_watchers:
            self._discovery.start_watchers()
        self._hash_worker.start()
        for worker in self._transfer_workers:
            worker.start()
        self._discovery.start_scans()
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
        self._discovery.reconcile_soon()  # once the journal takes writes again

    def _start_control(self) -> None:
        if not self.oneshot:
            self._control = start_control(self.config, self.commands.submit, self._journal)

    def _start_metrics(self) -> None:
        if not self.oneshot:
            self._metrics = start_metrics(self.config, self._journal)

    def _shutdown(self) -> None:
        self._notifier.stopping()
        if self._control is not None:
            self._control.close()
        if self._metrics is not None:
            self._metrics.stop()
        self._discovery.stop_watchers()
        for worker in [self._hash_worker, *self._transfer_workers]:
            worker.wake.set()
            if worker.ident is not None:  # started (an engine driven step by step starts none)
                worker.join(timeout=30)
        try:
            self._journal.set_facts({"stopped_at": str(time.time()), "settling": "0"})
        except JournalWriteError as error:
            logger.warning("could not record the clean stop: %s", error)
        self._journal.close()
        self._lock.release()

    # ----- the loop --------------------------------------------------------------------

    def step(self) -> None:
        """One pass of the engine thread's stages: operator commands, discovery, settle, closing."""
        self.commands.run_pending()
        self._discovery.tick(self._clock())
        self._settle()
        if len(self._tracker) != self._published_settling:
            # Published when it changes, not only with the heartbeat: status never shows a
            # file settling that is already hashed, or none while one is.
            self._published_settling = len(self._tracker)
            self._journal.set_facts({"settling": str(self._published_settling)})
        closed = self._closer.close_declared()
        if self._closer.close_due() or closed:
            self._wake_transfers()

    def _tick(self) -> None:
        """A step, then housekeeping: watchers and workers supervised, the heartbeat published."""
        self.step()
        now = self._clock()
        if now >= self._next_watcher_check:
            if self._use_watchers:
                self._discovery.check_watchers()
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
        facts |= completion_facts(self._journal, self._tracker, self._timers, self._closer, now)
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
    def settling(self) -> int:
        """Files found and not yet settled."""
        return len(self._tracker)

    @property
    def hash_worker(self) -> HashWorker:
        return self._hash_worker

    @property
    def transfer_workers(self) -> list[TransferWorker]:
        return self._transfer_workers

    @property
    def journal(self) -> Journal:
        """The engine thread's journal connection (use only from the engine thread)."""
        return self._journal

    def notice(self, root: Path, path: Path) -> None:
        """Queue a path for the engine thread to look at (thread-safe)."""
        self._discovery.inbox.notice(root, path)

    def wake(self) -> None:
        """End the engine thread's wait now (thread-safe)."""
        self._discovery.inbox.wake()

    def rescan(self, rule_paths: list[Path]) -> None:
        """Full scans of these roots (engine thread)."""
        self._discovery.rescan(rule_paths)

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
        if self._discovery.scanning:
            return
        deadlines = [self._tracker.next_deadline(), self._timers.next_deadline(), self._next_heartbeat]
        deadline = min(deadline for deadline in deadlines if deadline is not None)
        timeout = min(max(deadline - self._clock(), 0.01), 1.0)
        self._discovery.inbox.wait(timeout)

    def _settle(self) -> None:
        result = self._tracker.poll()
        self._gaps.vanished((candidate.root, candidate.rel_path) for candidate in result.vanished)
        if not result.settled:
            return
        with one_instant():  # files settled together share their folders' look-ups
            settled = [self._placement(candidate) for candidate in result.settled]
        touched = self._journal.record_settled(settled)
        marker = self.config.settle.marker
        markers = {item.dataset_key for item in settled if marker and item.rel_path.rsplit("/", 1)[-1] == marker}
        for dataset_id in touched:
            dataset = self._journal.dataset(dataset_id)
            self._timers.touch(dataset_id, marker=dataset.dataset_key in markers)
        self._hash_worker.wake.set()

    def _placement(self, candidate: Candidate) -> SettledFile:
        root = self._roots.get(candidate.root)
        match = place(root.rule, candidate.rel_path, candidate.path) if root is not None else None
        return SettledFile(
            root=candidate.root,
            rel_path=candidate.rel_path,
            identity=candidate.identity,
            dataset_key=match.dataset_key if match else None,
            dataset_fields=match.fields if match else {},
            path_in_dataset=match.path_in_dataset if match else None,
        )

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

    # ----- oneshot (harvest scan) --------------------------------------------------------

    def _oneshot_finished(self) -> bool:
        if self._discovery.scanning or len(self._tracker):
            return False
        if self._hash_worker.busy or self._journal.files_in_state(FileState.SETTLED, 1):
            return False
        for dataset_id in self._journal.open_dataset_ids():
            self._closer.close(dataset_id, "scan finished", decided_by="scan")
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
