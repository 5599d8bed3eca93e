"""The journal's schema: state enums and forward migrations (SQL text only).

Kept apart from ``agent.journal.store`` (the only module that talks to SQLite) so the schema
can be read in one place. Each migration is applied once, in order, and
``PRAGMA user_version`` records how many have run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from enum import StrEnum


class FileState(StrEnum):
    SETTLED = "settled"
    HASHED = "hashed"
    STALE = "stale"
    IGNORED = "ignored"
    FAILED = "failed"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    VERIFIED = "verified"
    FAILED = "failed"


# "state IN UNVERIFIED_SQL", not "state != 'verified'": the journal's indexes then find the
# few unverified deliveries instead of scanning the millions verified (a literal list, built
# from the enum, so a new state is never forgotten).
UNVERIFIED_SQL = "(" + ", ".join(f"'{state}'" for state in DeliveryState if state is not DeliveryState.VERIFIED) + ")"


class DatasetState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DestinationHealth(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class Hold(StrEnum):
    """Why a destination's uploads are held (stored as the ``hold.NAME`` fact)."""

    OPERATOR = "paused by operator"
    SCHEDULE = "outside upload window"


MIGRATIONS: list[str] = [
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        root TEXT NOT NULL,
        dataset_key TEXT NOT NULL,
        fields_json TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
        revision INTEGER NOT NULL DEFAULT 1,
        opened_at REAL NOT NULL,
        closed_at REAL,
        close_reason TEXT,
        UNIQUE (root, dataset_key)
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER REFERENCES datasets (id),
        root TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        path_in_dataset TEXT,
        path_nfc TEXT,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        state TEXT NOT NULL CHECK (state IN ('settled', 'hashed', 'stale', 'ignored', 'failed')),
        sha256 TEXT,
        error TEXT,
        updated_at REAL NOT NULL,
        UNIQUE (root, rel_path)
    );
    CREATE INDEX files_by_state ON files (state);
    CREATE INDEX files_by_dataset ON files (dataset_id, path_nfc);
    CREATE TABLE deliveries (
        file_id INTEGER NOT NULL REFERENCES files (id),
        destination TEXT NOT NULL,
        version INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'verified', 'failed')),
        offset_bytes INTEGER NOT NULL DEFAULT 0,
        resumed_from_bytes INTEGER,
        resumes INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        remote_key TEXT,
        error TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (file_id, destination)
    );
    CREATE INDEX deliveries_by_state ON deliveries (destination, state);
    CREATE TABLE commits (
        dataset_id INTEGER NOT NULL REFERENCES datasets (id),
        destination TEXT NOT NULL,
        revision INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('committed', 'uncommitted')),
        committed_at REAL,
        PRIMARY KEY (dataset_id, destination)
    );
    CREATE TABLE errors (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        path TEXT,
        destination TEXT,
        message TEXT NOT NULL
    );
    CREATE TABLE destinations (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('active', 'paused')),
        reason TEXT,
        next_retry_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE agent (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: metadata extracted at acquisition time, stored per file version.
    """
    ALTER TABLE files ADD COLUMN metadata_json TEXT;
    ALTER TABLE datasets ADD COLUMN warnings_json TEXT NOT NULL DEFAULT '[]';
    """,
    # 3: transport resume state (tus upload URL, S3 upload id and parts, ...) and uploads
    # left behind by a superseded file version, to be terminated at the destination.
    """
    ALTER TABLE deliveries ADD COLUMN remote_state TEXT;
    CREATE TABLE abandoned_uploads (
        id INTEGER PRIMARY KEY,
        destination TEXT NOT NULL,
        remote_state TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    # 4: status and metrics on journals of millions of files: deliveries by state (in flight,
    # oldest waiting) without scanning every row.
    """
    CREATE INDEX deliveries_by_state_age ON deliveries (state, destination, updated_at);
    INSERT OR REPLACE INTO agent (key, value)
        SELECT 'delivered_files.' || d.destination, COUNT(*) FROM deliveries d
        WHERE d.state = 'verified' GROUP BY d.destination;
    INSERT OR REPLACE INTO agent (key, value)
        SELECT 'delivered_bytes.' || d.destination, SUM(f.size_bytes) FROM deliveries d
        JOIN files f ON f.id = d.file_id WHERE d.state = 'verified' GROUP BY d.destination;
    """,
    # 5: archive names. Each source name is mapped once, injectively, to the name it has at
    # every archive (agent.package.names); a later twin by case or normalization gets a
    # distinct name, never the same one. gaps: parts of the watched tree the agent could not
    # read (an unlistable folder, a file still written at a forced close), listed as missing
    # in their dataset's package until they can be read. first_seen_at: when the agent first saw the file,
    # the age status reports (updated_at changes at every checkpoint and restart).
    """
    ALTER TABLE datasets ADD COLUMN archive_key TEXT;
    ALTER TABLE commits ADD COLUMN remote_state TEXT;
    ALTER TABLE files ADD COLUMN archive_path TEXT;
    ALTER TABLE files ADD COLUMN first_seen_at REAL;
    UPDATE files SET first_seen_at = updated_at;
    CREATE TABLE gaps (
        root TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        dataset_id INTEGER REFERENCES datasets (id),
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (root, rel_path)
    );
    CREATE TABLE archive_names (
        scope TEXT NOT NULL,
        parent TEXT NOT NULL,
        source TEXT NOT NULL,
        archive TEXT NOT NULL,
        fold TEXT NOT NULL,
        PRIMARY KEY (scope, parent, source),
        UNIQUE (scope, parent, fold)
    );
    """,
    # 6: quarantine is a flag, not a message prefix (a failed file kept on the instrument on
    # purpose: shown, never an alarm); earlier quarantines are recognised by their text once.
    """
    ALTER TABLE files ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
    UPDATE files SET quarantined = 1 WHERE state = 'failed' AND error LIKE 'quarantined%';
    """,
    # 7: how a dataset's close was decided (declared, marker, idle, forced, scan) and what its
    # files declared vs what was found: harvest.json's completeness block.
    """
    ALTER TABLE datasets ADD COLUMN completeness_json TEXT;
    """,
    # 8: how each delivery was verified (harvest.json says it per destination), and a
    # counter that moves whenever a dataset could have become ready to commit (see the TEMP
    # triggers below): an idle transfer worker reads one row instead of scanning every closed
    # dataset, so its cost stays flat however many files the journal holds.
    """
    CREATE TABLE changes (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
    INSERT INTO changes (id, generation) VALUES (1, 0);
    ALTER TABLE deliveries ADD COLUMN verified_by TEXT;
    """,
    # 9: how many files and deliveries are in each state, kept by triggers (part of the
    # journal, so every writer keeps them, whatever its version): status reads a few rows
    # instead of counting a million. A delivery's subject is its destination; a file's is ''.
    """
    CREATE TABLE state_counts (
        subject TEXT NOT NULL,
        destination TEXT NOT NULL,
        state TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (subject, destination, state)
    ) WITHOUT ROWID;
    INSERT INTO state_counts SELECT 'files', '', state, COUNT(*) FROM files GROUP BY state;
    INSERT INTO state_counts SELECT 'deliveries', destination, state, COUNT(*) FROM deliveries
        GROUP BY destination, state;
    CREATE TRIGGER count_files_insert AFTER INSERT ON files BEGIN
        INSERT INTO state_counts VALUES ('files', '', NEW.state, 1)
            ON CONFLICT DO UPDATE SET count = count + 1;
    END;
    CREATE TRIGGER count_files_update AFTER UPDATE OF state ON files WHEN OLD.state IS NOT NEW.state BEGIN
        UPDATE state_counts SET count = count - 1
            WHERE subject = 'files' AND destination = '' AND state = OLD.state;
        INSERT INTO state_counts VALUES ('files', '', NEW.state, 1)
            ON CONFLICT DO UPDATE SET count = count + 1;
    END;
    CREATE TRIGGER count_files_delete AFTER DELETE ON files BEGIN
        UPDATE state_counts SET count = count - 1
            WHERE subject = 'files' AND destination = '' AND state = OLD.state;
    END;
    CREATE TRIGGER count_deliveries_insert AFTER INSERT ON deliveries BEGIN
        INSERT INTO state_counts VALUES ('deliveries', NEW.destination, NEW.state, 1)
            ON CONFLICT DO UPDATE SET count = count + 1;
    END;
    CREATE TRIGGER count_deliveries_update AFTER UPDATE OF state, destination ON deliveries
        WHEN OLD.state IS NOT NEW.state OR OLD.destination IS NOT NEW.destination BEGIN
        UPDATE state_counts SET count = count - 1
            WHERE subject = 'deliveries' AND destination = OLD.destination AND state = OLD.state;
        INSERT INTO state_counts VALUES ('deliveries', NEW.destination, NEW.state, 1)
            ON CONFLICT DO UPDATE SET count = count + 1;
    END;
    CREATE TRIGGER count_deliveries_delete AFTER DELETE ON deliveries BEGIN
        UPDATE state_counts SET count = count - 1
            WHERE subject = 'deliveries' AND destination = OLD.destination AND state = OLD.state;
    END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def statements(migration: str) -> Iterator[str]:
    """A migration's SQL statements one by one (a trigger's body holds semicolons of its own)."""
    pending = ""
    for piece in migration.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


_TRIGGER = (
    "CREATE TEMP TRIGGER changes_{name} AFTER {event} ON main.{table}"
    " BEGIN UPDATE changes SET generation = generation + 1; END"
)

# Named joins, created per connection (TEMP: never part of the journal's history, so they
# may change with the code). SQLite flattens them into the queries that use them, indexes
# included. ``file_records`` is a file row as ``records.file_from_row`` reads it;
# ``current_deliveries`` is each delivery of a file's current version with its file's facts.
VIEWS: tuple[str, ...] = (
    """
    CREATE TEMP VIEW file_records AS SELECT id, dataset_id, root, rel_path, path_in_dataset, dev, ino,
        size_bytes, mtime_ns, version, state, sha256, archive_path FROM files
    """,
    """
    CREATE TEMP VIEW current_deliveries AS SELECT d.file_id, d.destination, d.version, d.state, d.offset_bytes,
        d.error, d.attempts, d.updated_at, f.root, f.rel_path, f.size_bytes, f.dataset_id, f.state AS file_state,
        f.first_seen_at, d.verified_by
    FROM deliveries d JOIN files f ON f.id = d.file_id AND f.version = d.version
    """,
    # Every change that can make a dataset ready to commit at some destination (or no longer
    # committed) moves ``changes.generation``. TEMP triggers fire for the writes of the
    # connection that made them, and every connection makes them, so all writes count.
    *(
        _TRIGGER.format(name=f"{table}_{event.split()[0].lower()}", event=event, table=table)
        for table, event in (
            ("datasets", "UPDATE OF state, revision"),
            ("files", "INSERT"),
            ("files", "UPDATE OF state, version"),
            ("deliveries", "INSERT"),
            ("deliveries", "UPDATE OF state, version"),
            ("commits", "INSERT"),
            ("commits", "UPDATE"),
            ("commits", "DELETE"),
        )
    ),
)
