"""The hash stage's worker thread: settled files in, SHA-256 and queued deliveries out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.errors import ErrorKind, ItemError, SourceChangedError, SourceVanishedError, StopRequested
from agent.extract import extract_metadata
from agent.journal.store import FileRecord, FileState, Journal
from agent.pipeline.hashing import sha256_file

logger = logging.getLogger(__name__)
BATCH_SIZE = 256
BACKOFF_MAX_SECONDS = 300.0


class HashWorker(threading.Thread):
    def __init__(
        self,
        state_dir: Path,
        destinations_by_root: dict[str, list[str]],
        follow_symlinks_by_root: dict[str, bool],
        *,
        quarantine_roots: frozenset[str] = frozenset(),
        stop: threading.Event,
        on_hashed: Callable[[], None],
        on_changed: Callable[[FileRecord], None],
    ) -> None:
        super().__init__(name="hash", daemon=True)
        self._state_dir = state_dir
        self._destinations_by_root = destinations_by_root
        self._follow_symlinks_by_root = follow_symlinks_by_root
        self._quarantine_roots = quarantine_roots
        self._stop_event = stop
        self._on_hashed = on_hashed
        self._on_changed = on_changed
        self.wake = threading.Event()
        self.heartbeat = 0.0
        self.busy = False
        self.internal_errors = 0
        self.last_error: str | None = None

    def run(self) -> None:
        try:
            journal = Journal(self._state_dir)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            logger.exception("hash worker could not open the journal")
            raise
        failures = 0
        try:
            while not self._stop_event.is_set():
                self.heartbeat = time.monotonic()
                self.busy = True
                try:
                    worked = self._run_batch(journal)
                    failures = 0
                except StopRequested:
                    return
                except Exception as error:
                    failures += 1
                    self.internal_errors += 1
                    self.last_error = f"{type(error).__name__}: {error}"[:300]
                    logger.error("hash worker: unexpected error; retrying with backoff", exc_info=error)
                    self.busy = False
                    self._stop_event.wait(min(BACKOFF_MAX_SECONDS, 2.0 * 2 ** min(failures, 8)))
                    continue
                self.busy = worked
                if not worked:
                    self.wake.wait(timeout=1.0)
                    self.wake.clear()
        finally:
            self.busy = False
            journal.close()

    def _beat_and_check_stop(self) -> bool:
        self.heartbeat = time.monotonic()  # hashing a large file is progress, not a hang
        return self._stop_event.is_set()

    @staticmethod
    def _metadata(path: Path) -> tuple[str | None, str | None]:
        """Header-only metadata, read right after hashing while the file is in the page cache.

        Returns the metadata JSON and, for a file whose format parser rejected it, why.
        """
        try:
            metadata = extract_metadata(path)
            malformed = metadata.warnings[0] if metadata.format == "generic" and metadata.warnings else None
            return metadata.model_dump_json(), malformed
        except OSError as error:
            logger.info("%s: metadata not extracted: %s", path, error.strerror)
            return None, None
        except Exception:  # a bug in an extractor must cost this file its metadata, nothing more
            logger.exception("%s: metadata extraction failed", path)
            return None, None

    def _run_batch(self, journal: Journal) -> bool:
        records = journal.files_in_state(FileState.SETTLED, BATCH_SIZE)
        hashed: list[tuple[FileRecord, str, str | None]] = []
        quarantined: dict[int, str] = {}
        for record in records:
            path = Path(record.root) / record.rel_path
            try:
                digest = sha256_file(
                    path,
                    record.identity,
                    follow_symlinks=self._follow_symlinks_by_root.get(record.root, False),
                    should_stop=self._beat_and_check_stop,
                )
            except SourceChangedError as error:
                logger.info("%s", error)
                journal.mark_file(record, FileState.STALE, str(error))
                self._on_changed(record)
                continue
            except SourceVanishedError as error:
                journal.mark_file(record, FileState.FAILED, str(error))
                journal.record_error(ErrorKind.ITEM, str(error), path=str(path))
                continue
            except ItemError as error:
                logger.warning("%s", error)
                journal.mark_file(record, FileState.FAILED, str(error))
                journal.record_error(ErrorKind.ITEM, str(error), path=str(path))
                continue
            except OSError as error:
                # Failing to read a file is that file's problem (an I/O error on a bad sector).
                message = f"{path}: read failed: {error.strerror or error}"
                journal.mark_file(record, FileState.FAILED, message)
                journal.record_error(ErrorKind.ITEM, message, path=str(path))
                continue
            except StopRequested:
                raise
            except Exception as error:
                logger.error("%s: unexpected error while hashing", path, exc_info=error)
                message = f"{path}: internal error while hashing ({type(error).__name__}); see the log"
                journal.mark_file(record, FileState.FAILED, message)
                journal.record_error(ErrorKind.INTERNAL, message, path=str(path))
                continue
            metadata_json, malformed = self._metadata(path)
            hashed.append((record, digest, metadata_json))
            if malformed is not None and record.root in self._quarantine_roots:
                # Kept on the instrument, listed as missing in the dataset's package.
                quarantined[record.id] = f"quarantined (malformed, rule says quarantine): {malformed}"
        if hashed:
            journal.record_hashes(hashed, self._destinations_by_root, quarantined)
            self._on_hashed()
        return bool(records)
