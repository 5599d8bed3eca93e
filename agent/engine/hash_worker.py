"""The hash stage's worker thread: settled files in, SHA-256 and queued deliveries out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.engine.roots import Roots
from agent.engine.worker import Worker, source_moved_on
from agent.errors import ErrorKind, ItemError, SourceChangedError, SourceVanishedError, StopRequested
from agent.extract import extract_metadata
from agent.extract.bundles import one_instant
from agent.journal.store import FileRecord, FileState, Journal
from agent.pipeline.hashing import sha256_file

logger = logging.getLogger(__name__)
BATCH_SIZE = 256
BACKOFF_MAX_SECONDS = 300.0


class HashWorker(Worker):
    def __init__(
        self,
        state_dir: Path,
        roots: Roots,
        *,
        stop: threading.Event,
        on_hashed: Callable[[set[int]], None],
        on_changed: Callable[[FileRecord], None],
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__("hash", state_dir, stop, on_idle)
        self._roots = roots
        self._destinations_by_root = roots.destinations_by_key()
        self._on_hashed = on_hashed
        self._on_changed = on_changed
        self._failures = 0

    def step(self, journal: Journal) -> bool:
        self.busy = True
        worked = self._run_batch(journal)
        self._failures = 0
        self.busy = worked
        if not worked:
            self.idle()
        return True

    def on_internal_error(self, journal: Journal, error: Exception) -> None:
        self._failures += 1
        logger.error("hash worker: unexpected error; retrying with backoff", exc_info=error)
        self._stop_event.wait(min(BACKOFF_MAX_SECONDS, 2.0 * 2 ** min(self._failures, 8)))

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
            if metadata.completeness is not None and metadata.completeness.state == "truncated":
                malformed: str | None = f"truncated: {metadata.completeness.detail}"
            else:
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
        with one_instant():  # files of one batch share their folders' look-ups
            for record in records:
                self._hash_one(journal, record, hashed, quarantined)
        if hashed:
            journal.record_hashes(hashed, self._destinations_by_root, quarantined)
            self._on_hashed({record.dataset_id for record, _, _ in hashed if record.dataset_id is not None})
        return bool(records)

    def _hash_one(
        self,
        journal: Journal,
        record: FileRecord,
        hashed: list[tuple[FileRecord, str, str | None]],
        quarantined: dict[int, str],
    ) -> None:
        """Hash one file and read its metadata into *hashed*, or record why it could not be."""
        path = Path(record.root) / record.rel_path
        try:
            digest = sha256_file(
                path,
                record.identity,
                follow_symlinks=self._roots.follow_symlinks(record.root),
                should_stop=self._beat_and_check_stop,
            )
        except (SourceChangedError, SourceVanishedError) as error:
            logger.info("%s", error)
            source_moved_on(journal, record, error, self._on_changed)
            return
        except ItemError as error:
            logger.warning("%s", error)
            journal.mark_file(record, FileState.FAILED, str(error))
            journal.record_error(ErrorKind.ITEM, str(error), path=str(path))
            return
        except OSError as error:
            # Failing to read a file is that file's problem (an I/O error on a bad sector).
            message = f"{path}: read failed: {error.strerror or error}"
            journal.mark_file(record, FileState.FAILED, message)
            journal.record_error(ErrorKind.ITEM, message, path=str(path))
            return
        except StopRequested:
            raise
        except Exception as error:
            logger.error("%s: unexpected error while hashing", path, exc_info=error)
            message = f"{path}: internal error while hashing ({type(error).__name__}); see the log"
            journal.mark_file(record, FileState.FAILED, message)
            journal.record_error(ErrorKind.INTERNAL, message, path=str(path))
            return
        metadata_json, malformed = self._metadata(path)
        hashed.append((record, digest, metadata_json))
        if malformed is not None and (root := self._roots.get(record.root)) and root.quarantines_malformed:
            # Kept on the instrument, listed as missing in the dataset's package.
            quarantined[record.id] = f"quarantined (malformed, rule says quarantine): {malformed}"
