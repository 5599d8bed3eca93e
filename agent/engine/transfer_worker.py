"""The transfer and commit stages for one destination, in one worker thread.

Deliveries are taken from the journal in batches: each file is copied and verified
by the transport, the batch is made durable (``transport.sync()``), and only then are
the deliveries recorded as verified. Closed datasets whose every file is verified get
their package committed (manifests last). A destination that is unreachable, full or
refuses credentials is paused and probed again with exponential backoff and jitter,
while the other stages keep working locally.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from agent.config.models import AgentConfig
from agent.controls.guard import AcquisitionGuard
from agent.destinations.base import DestinationTransport, PayloadItem
from agent.engine.commit import package_for
from agent.engine.delivery_control import DeliveryControl
from agent.engine.roots import Roots
from agent.engine.worker import Worker, source_moved_on
from agent.errors import (
    AuthError,
    ErrorKind,
    HarvestError,
    ItemError,
    SourceChangedError,
    SourceVanishedError,
    StopRequested,
    TransientError,
)
from agent.journal.schema import Hold
from agent.journal.store import (
    DeliveryRecord,
    DeliveryState,
    DestinationHealth,
    FileRecord,
    Journal,
)
from agent.package.names import encode_component
from agent.package.sidecar import bag_path_for
from agent.rules.bandwidth import RateLimiter

logger = logging.getLogger(__name__)
BATCH_SIZE = 512
SMALL_FILE_BYTES = 8 << 20


MAX_ATTEMPTS = 3
STALL_REPORT_SECONDS = 15.0  # a busy destination silent this long shows as retrying in status
FLUSH_SECONDS = 1.0  # finished deliveries are made durable and journalled at least this often
BACKOFF_FIRST_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0


class TransferWorker(Worker):
    def __init__(
        self,
        config: AgentConfig,
        roots: Roots,
        transport: DestinationTransport,
        *,
        stop: threading.Event,
        on_changed: Callable[[FileRecord], None],
        on_idle: Callable[[], None] = lambda: None,
        give_up_when_paused: bool = False,
        guard: AcquisitionGuard | None = None,
        operator_paused: bool = False,
        honour_schedule: bool = True,
    ) -> None:
        super().__init__(f"transfer-{transport.name}", config.state_dir, stop, on_idle)
        self._config = config
        self.transport = transport
        self._on_changed = on_changed
        self._give_up_when_paused = give_up_when_paused
        self._roots = roots
        settings = next(destination for destination in config.destinations if destination.name == transport.name)
        timetable = settings.timetable
        self._limiter = RateLimiter(lambda: timetable.rate_at(datetime.now()) if timetable else None, stop=stop)
        self._guard = guard
        # `harvest scan` is an explicit request to deliver now: it does not wait for a window.
        self._schedule = settings.schedule if honour_schedule else None
        self._max_transfers = settings.max_transfers
        self.operator_paused = operator_paused
        self.bytes_sent = 0  # since start, for the rate shown in status
        self._commit_generation: int | None = None  # journal change generation of the last commit pass
        self.live: dict[int, int] = {}  # file id -> bytes sent so far, for files in flight
        self.paused_reason: str | None = None
        self.gave_up = False
        self.last_progress = time.monotonic()
        self._last_flush = time.monotonic()
        self._failures = 0
        self._pauses = 0
        self._next_probe = 0.0

    def prepare(self, journal: Journal) -> None:
        journal.set_destination_health(self.transport.name, DestinationHealth.ACTIVE, None, None)
        self._abort_orphans(journal)

    def step(self, journal: Journal) -> bool:
        """One round of work; False when the worker should end (a one-shot scan gave up)."""
        if self.hold_reason() is not None:
            self.idle()
            return True
        if self.paused_reason is not None and not self._try_resume(journal):
            if self.gave_up:
                return False
            self.idle(max(0.1, min(5.0, self._next_probe - time.monotonic())))
            return True
        self.busy = True
        try:
            worked = self._deliver_batch(journal) | self._commit_ready(journal)
            self._terminate_abandoned(journal)
        except (TransientError, AuthError) as error:
            self._pause(journal, error)
            worked = False
        self.busy = worked
        if not worked:
            self.idle()
        return True

    def on_internal_error(self, journal: Journal, error: Exception) -> None:
        """Logged once with its traceback, counted, and retried with backoff like an outage."""
        logger.error("transfer worker for %s: unexpected error; retrying with backoff", self.transport.name,
                     exc_info=error)  # fmt: skip
        message = (
            f"{self.transport.name}: internal error ({type(error).__name__}); retrying with backoff."
            " Please report it with the log file"
        )
        try:
            self._pause(journal, TransientError(message), kind=ErrorKind.INTERNAL)
        except Exception:
            logger.exception("could not record the error in the journal")
            self._stop_event.wait(BACKOFF_FIRST_SECONDS)

    @property
    def retrying(self) -> str | None:
        """Inner retries and silent servers, for status: "no answer for 60 s; PATCH: ReadTimeout, attempt 3"."""
        if not self.busy:
            return None
        quiet = time.monotonic() - self.last_progress
        parts = [f"no answer for {quiet:.0f} s"] if quiet >= STALL_REPORT_SECONDS else []
        if self.transport.retry_note:
            parts.append(self.transport.retry_note)
        return "; ".join(parts) or None

    # ----- health --------------------------------------------------------------------

    def hold_reason(self) -> Hold | None:
        """Why no upload may start now (None: go ahead). Hashing and extraction go on regardless."""
        if self.operator_paused:
            return Hold.OPERATOR
        if self._schedule is not None and not self._schedule.is_open(datetime.now()):
            return Hold.SCHEDULE
        return None

    def retry_now(self) -> None:
        """The operator asked for a retry: probe a paused destination at once."""
        self._next_probe = 0.0
        self.wake.set()

    def _pause(self, journal: Journal, error: Exception, kind: ErrorKind | None = None) -> None:
        self._failures += 1
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (self._failures - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
        # No request before the server's Retry-After has passed, also not a probe.
        delay = max(delay, getattr(error, "retry_after_seconds", None) or 0.0)
        self._next_probe = time.monotonic() + delay
        self.paused_reason = str(error)
        kind = kind or (error.kind if isinstance(error, HarvestError) else ErrorKind.TRANSIENT)
        logger.warning("destination %s paused: %s (next try in %.0f s)", self.transport.name, error, delay)
        journal.set_destination_health(self.transport.name, DestinationHealth.PAUSED, str(error), time.time() + delay)
        journal.record_error(kind, str(error), destination=self.transport.name)
        self._pauses += 1
        if self._give_up_when_paused and self._pauses >= MAX_ATTEMPTS:
            self.gave_up = True

    def _try_resume(self, journal: Journal) -> bool:
        if time.monotonic() < self._next_probe:
            return False
        try:
            self.transport.probe()
        except (TransientError, AuthError) as error:
            self._pause(journal, error)
            return False
        except ItemError as error:  # a probe concerns the whole destination: never one item
            self._pause(journal, TransientError(str(error)))
            return False
        logger.info("destination %s is available again", self.transport.name)
        # The backoff is kept until a delivery succeeds: a destination that answers
        # probes but fails every upload must not be retried in a hot loop.
        self.paused_reason = None
        journal.set_destination_health(self.transport.name, DestinationHealth.ACTIVE, None, None)
        return True

    # ----- transfer ------------------------------------------------------------------

    def _deliver_batch(self, journal: Journal) -> bool:
        deliveries = journal.deliveries_to_send(self.transport.name, BATCH_SIZE)
        results: list[tuple[DeliveryRecord, DeliveryState, str | None]] = []
        parallel = min(self.transport.parallel_small_files, self._max_transfers or 64)
        small = [d for d in deliveries if parallel > 1 and d.file.identity.size_bytes < SMALL_FILE_BYTES]
        self._last_flush = time.monotonic()
        try:
            if small:
                self._deliver_in_parallel(journal, small, parallel, results)
            sent_in_parallel = {id(delivery) for delivery in small}
            for delivery in deliveries:
                if id(delivery) in sent_in_parallel:
                    continue
                if self.hold_reason() is not None or self._stop_event.is_set():
                    break
                outcome = self._deliver_one(journal, delivery)
                if outcome is not None:
                    results.append(outcome)
                    self._flush_if_due(journal, results)
        finally:
            self._flush(journal, results)
        return bool(deliveries)

    def _flush_if_due(self, journal: Journal, results: list[tuple[DeliveryRecord, DeliveryState, str | None]]) -> None:
        """Journal finished deliveries at least every FLUSH_SECONDS: a restart never redoes
        (or re-reads to verify) more than that much work."""
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self._flush(journal, results)

    def _flush(self, journal: Journal, results: list[tuple[DeliveryRecord, DeliveryState, str | None]]) -> None:
        self._last_flush = time.monotonic()
        if not results:
            return
        # Durable first, journalled second: "verified" is a promise.
        self.transport.sync()
        journal.finish_deliveries(results)
        if any(state == DeliveryState.VERIFIED for _, state, _ in results):
            self._failures = 0
        results.clear()

    def _deliver_in_parallel(
        self,
        journal: Journal,
        deliveries: list[DeliveryRecord],
        parallel: int,
        results: list[tuple[DeliveryRecord, DeliveryState, str | None]],
    ) -> None:
        """Small files to a network store, several at once (latency, not bandwidth, bounds them).

        Small files journal nothing while in flight; the few journal calls of the error
        paths are serialised. Every delivery that finished is kept even when another failed.
        """
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"send-{self.transport.name}") as pool:
            # The pool's threads share the worker's journal connection, which serialises them.
            futures = [pool.submit(self._deliver_one, journal, delivery) for delivery in deliveries]
            for future in futures:
                try:
                    outcome = future.result()
                except (TransientError, AuthError, StopRequested) as error:
                    failure = failure or error
                    continue
                if outcome is not None:
                    results.append(outcome)
                    self._flush_if_due(journal, results)  # serialised with the senders by the connection
        if failure is not None:
            raise failure

    def _deliver_one(
        self, journal: Journal, delivery: DeliveryRecord
    ) -> tuple[DeliveryRecord, DeliveryState, str | None] | None:
        record = delivery.file
        source_path = Path(record.root) / record.rel_path
        item = PayloadItem(
            source_path=source_path,
            identity=record.identity,
            sha256=record.sha256 or "",
            bag_path=bag_path_for(
                self._config.instrument.id,
                delivery.archive_key or delivery.dataset_key,
                self._roots.name(record.root),
            ),
            path_in_dataset=record.bag_name,
            resume_offset_bytes=delivery.offset_bytes,
            follow_symlinks=self._roots.follow_symlinks(record.root),
            resume_state=delivery.remote_state,
            instrument_id=self._config.instrument.id,
            dataset_key=delivery.dataset_key,
        )
        if self.hold_reason() is not None:
            return None
        file_id = record.id
        self.last_progress = time.monotonic()
        self.live[file_id] = delivery.offset_bytes

        def progress(count: int) -> None:
            self.live[file_id] = self.live.get(file_id, 0) + count
            self._progress(count)

        control = DeliveryControl(journal, delivery, self._stop_event, self.hold_reason, on_progress=progress)
        try:
            return self._deliver_with(journal, delivery, item, control)
        finally:
            self.live.pop(file_id, None)

    def _deliver_with(
        self, journal: Journal, delivery: DeliveryRecord, item: PayloadItem, control: DeliveryControl
    ) -> tuple[DeliveryRecord, DeliveryState, str | None] | None:
        record = delivery.file
        source_path = item.source_path
        try:
            delivered = self.transport.deliver(item, control)
        except StopRequested:
            if self._stop_event.is_set():
                raise
            return None  # held at a checkpoint; the delivery resumes from there later
        except (SourceChangedError, SourceVanishedError) as error:
            source_moved_on(journal, record, error, self._on_changed)
            gone = isinstance(error, SourceVanishedError)
            return (delivery, DeliveryState.FAILED, str(error)) if gone else None
        except (TransientError, AuthError):
            raise
        except ItemError as error:
            journal.record_error(ErrorKind.ITEM, str(error), path=str(source_path), destination=self.transport.name)
            attempts = journal.delivery_attempts(record.id, self.transport.name)
            # This failure is attempt number attempts + 1.
            state = DeliveryState.FAILED if attempts + 1 >= MAX_ATTEMPTS else DeliveryState.PENDING
            return (delivery, state, str(error))
        except Exception as error:
            logger.error("%s: unexpected error delivering %s", self.transport.name, source_path, exc_info=error)
            message = f"{self.transport.name}: unexpected reply or internal error ({type(error).__name__})"
            journal.record_error(ErrorKind.INTERNAL, message, destination=self.transport.name)
            raise TransientError(
                f"{self.transport.name}: unexpected reply or internal error ({type(error).__name__}); retrying"
            ) from None
        how = delivered.verified_by
        return (delivery, DeliveryState.VERIFIED, f"already there ({how})" if delivered.skipped and how else how)

    def _abort_orphans(self, journal: Journal) -> None:
        """Once per start: uploads the server holds but the journal never recorded."""
        try:
            scope = encode_component(self._config.instrument.id)
            aborted = self.transport.abort_orphans(journal.remote_states(self.transport.name), scope)
        except (TransientError, AuthError, ItemError) as error:
            logger.info("could not look for orphaned uploads at %s: %s", self.transport.name, error)
            return
        if aborted:
            logger.info("aborted %d orphaned upload(s) at %s", aborted, self.transport.name)

    def _progress(self, sent_bytes: int) -> None:
        self.heartbeat = self.last_progress = time.monotonic()  # a long upload is progress, not a hang
        self.bytes_sent += sent_bytes
        self._limiter.consume(sent_bytes)
        if self._guard is not None:
            self._guard.limiter.consume(sent_bytes)

    def _terminate_abandoned(self, journal: Journal) -> None:
        for upload_id, state in journal.abandoned_uploads(self.transport.name):
            try:
                self.transport.abandon(state)
            except ItemError as error:
                logger.info("could not terminate an abandoned upload at %s: %s", self.transport.name, error)
            journal.forget_abandoned(upload_id)

    # ----- commit --------------------------------------------------------------------

    def _commit_ready(self, journal: Journal) -> bool:
        # The readiness query looks at every closed dataset; it runs only when the journal's
        # change generation moved since the last complete pass (read first: a change during
        # the pass moves it again). A pass that raised leaves it unset: tried again.
        generation = journal.change_generation()
        if generation == self._commit_generation:
            return False
        ready = journal.datasets_ready_to_commit(self.transport.name)
        for dataset_id in ready:
            self.last_progress = time.monotonic()
            dataset = journal.dataset(dataset_id)
            built = package_for(journal, dataset, self.transport.name, self._config.instrument, self._roots)
            try:
                remembered = self.transport.commit(built.package)
            except ItemError as error:
                message = f"{self.transport.name}: commit of {dataset.dataset_key} refused: {error}"
                raise TransientError(message) from None
            journal.record_commit(dataset_id, self.transport.name, dataset.revision, remembered)
            logger.info(
                "committed %s revision %d to %s (%d files, %d missing)",
                dataset.dataset_key, dataset.revision, self.transport.name, built.files, built.missing,
            )  # fmt: skip
        self._commit_generation = generation
        return bool(ready)
