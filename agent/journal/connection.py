"""The journal's connection: opening, migrations, views, transactions, facts, errors.

Part of the journal package, the only one that touches SQLite. ``reads.JournalReads`` and
``report_reads.ReportReads`` add the named reads on top of this class, ``store.Journal``
the pipeline's state transitions.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import ErrorKind, JournalError, JournalWriteError
from agent.journal.schema import MIGRATIONS, SCHEMA_VERSION, VIEWS, statements
from agent.package.names import display as _display
from agent.secrets.redact import redact

JOURNAL_FILE_NAME = "journal.sqlite3"

ERRORS_KEPT = 1000
READER_BUSY_SECONDS = 2.0


def _to_db(value: object) -> object:
    """A name that is not UTF-8 (a surrogate-escaped byte) is stored losslessly as a BLOB."""
    if type(value) is str and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _bind(parameters: Any) -> Any:
    if isinstance(parameters, (tuple, list)):
        return tuple(_to_db(value) for value in parameters)
    return parameters


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> tuple[Any, ...]:
    for value in row:
        if type(value) is bytes:
            return tuple(value.decode("utf-8", "surrogateescape") if type(value) is bytes else value for value in row)
    return row


class _Connection(sqlite3.Connection):
    """Binds names that are not valid UTF-8 (Latin-1 from an SMB mount, old instrument
    software) as BLOBs and reads them back as the same ``str``: the journal stores every
    name the operating system can give, losslessly."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return super().execute(sql, _bind(parameters))

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return super().executemany(sql, (_bind(item) for item in parameters))


_WRITE_ERRORS = {
    8: "the state dir is read-only",  # SQLITE_READONLY
    10: "an I/O error",  # SQLITE_IOERR
    13: "the state dir is full",  # SQLITE_FULL
    14: "the journal cannot be opened",  # SQLITE_CANTOPEN
}


def _write_error(path: Path, error: sqlite3.OperationalError) -> Exception:
    """A refused write becomes the agent's JournalWriteError; anything else stays what it is."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _WRITE_ERRORS:
        return JournalWriteError(f"cannot write the journal {path}: {_WRITE_ERRORS[primary]}; will try again")
    if primary == 5:  # SQLITE_BUSY: another writer held the lock for the whole timeout
        return JournalWriteError(f"the journal {path} stayed locked by another process; will try again")
    return error


def _refuse_empty(path: Path) -> None:
    """A zero-byte journal is a truncated one: starting afresh on it would forget everything."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return
    if empty:
        raise JournalError(
            f"journal {path} is empty (0 bytes): it was truncated. Restore it from a backup, or move it away"
            " to start afresh (every file is then checked again; bags already archived are kept)"
        )


def display(text: str) -> str:
    """Text fit to store for people: printable, and with no secret in it (``agent.secrets.redact``)."""
    return redact(_display(text))


class JournalConnection:
    """One connection to the journal; open one per thread."""

    def __init__(self, state_dir: Path, *, read_only: bool = False) -> None:
        self.path = state_dir / JOURNAL_FILE_NAME
        self.read_only = read_only
        self._serial = threading.RLock()
        _refuse_empty(self.path)
        try:
            if read_only:
                if not self.path.exists():
                    raise JournalError(f"no journal at {self.path}: the agent has not run with this state_dir yet")
                uri = f"{self.path.absolute().as_uri()}?mode=ro"
                # A reader waits for a lock at most a few seconds, in C where Ctrl-C cannot
                # reach it: `harvest watch` must leave at once when asked, also under load.
                self._db = sqlite3.connect(
                    uri, uri=True, timeout=READER_BUSY_SECONDS, check_same_thread=False, factory=_Connection
                )
            else:
                if not state_dir.exists():
                    # Private: the journal names every file and dataset (0750 with the
                    # operators' group comes from the systemd unit's StateDirectoryMode).
                    state_dir.mkdir(parents=True, mode=0o700)
                new = not self.path.exists()
                self._db = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False, factory=_Connection
                )
                with contextlib.suppress(FileNotFoundError):
                    if new or self.path.stat().st_mode & 0o007:
                        # Never readable by other users, whatever the umask; readable by the
                        # group only where the state dir lets the group in (the operators'
                        # group of the systemd unit, for `harvest status`). SQLite gives its
                        # -wal and -shm files the same mode.
                        shared = state_dir.stat().st_mode & 0o050 == 0o050
                        self.path.chmod((0o640 if shared else 0o600) if new else self.path.stat().st_mode & 0o770)
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode is durable across process crashes; an fsync at
                # each checkpoint guards against power loss.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
            self._db.row_factory = _row
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if read_only and version == 0:
                raise JournalError(f"{self.path} is not a harvest journal (it holds no journal tables)")
        except sqlite3.DatabaseError as error:
            raise JournalError(f"cannot open journal {self.path}: {error}") from None
        except OSError as error:
            raise JournalError(f"cannot open journal {self.path}: {error.strerror or error}") from None
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} was written by a newer agent (schema {version} > {SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:  # only a reader gets here: a writer has just migrated
            raise JournalError(
                f"journal {self.path} is from an older agent (schema {version} < {SCHEMA_VERSION}) or being"
                " upgraded: start the agent once, then try again"
            )
        for statement in VIEWS:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(current, SCHEMA_VERSION):
            with self.transaction():
                for statement in statements(MIGRATIONS[number]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work (BEGIN IMMEDIATE: writers queue, never deadlock).

        A write the disk refuses (state dir full, read-only, I/O error) rolls back and raises
        ``JournalWriteError``: nothing is recorded half, and the caller may try again later.
        """
        # One transaction at a time on this connection, also when threads share it (a
        # worker's small-file pool): a statement of one never lands inside another's.
        with self._serial:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise _write_error(self.path, error) from None
            try:
                yield self._db
            except sqlite3.OperationalError as error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise _write_error(self.path, error) from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise _write_error(self.path, error) from None

    # ----- agent facts -------------------------------------------------------------

    def set_facts(self, facts: dict[str, str]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO agent (key, value) VALUES (?, ?)", facts.items())

    def facts(self) -> dict[str, str]:
        return dict(self._rows("SELECT key, value FROM agent"))

    def record_error(
        self, kind: ErrorKind, message: str, *, path: str | None = None, destination: str | None = None
    ) -> None:
        with self.transaction() as db:
            self._insert_error(db, kind, message, path=path, destination=destination)

    @staticmethod
    def _insert_error(
        db: sqlite3.Connection, kind: ErrorKind, message: str, *, path: str | None, destination: str | None
    ) -> None:
        db.execute(
            "INSERT INTO errors (at, kind, path, destination, message) VALUES (?, ?, ?, ?, ?)",
            (time.time(), kind, None if path is None else display(path), destination, display(message)),
        )
        # A monotonic count per class for the metrics endpoint (the errors table is trimmed).
        db.execute(
            "INSERT INTO agent (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
            " SET value = CAST(value AS INTEGER) + 1",
            (f"failures.{kind}",),
        )
        db.execute("DELETE FROM errors WHERE id <= (SELECT MAX(id) FROM errors) - ?", (ERRORS_KEPT,))

    def _rows(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Every row of one read (a reader waits for a busy writer only a few seconds)."""
        try:
            with self._serial:
                return [tuple(row) for row in self._db.execute(sql, parameters).fetchall()]
        except sqlite3.OperationalError as error:
            if self.read_only:
                raise JournalError(f"the journal {self.path} is busy ({error}); try again") from None
            raise

    def _plain_rows(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        """Rows without the row factory, for hot loops (a reconcile reads a million):
        a name that is not UTF-8 comes back as its bytes, for the caller to decode."""
        cursor = self._db.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, _bind(parameters)).fetchall()

    def _count(self, sql: str, parameters: Sequence[object] = ()) -> int:
        return int(self._rows(sql, parameters)[0][0] or 0)
