"""The journal's state counts (migration 9): status reads them instead of counting every
row, so they must equal a full count after every kind of write, from any connection, and
for a journal that held rows before the counts existed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.journal.store import DeliveryState, FileIdentity, FileRecord, FileState, Journal, SettledFile
from tests.helpers import journal_rows

DESTINATIONS = {"/root": ["archive", "nas"]}


def settled(rel_path: str, size: int = 10, mtime_ns: int = 123) -> SettledFile:
    return SettledFile(
        root="/root",
        rel_path=rel_path,
        identity=FileIdentity(1, hash(rel_path) & 0xFFFF, size, mtime_ns),
        dataset_key="alice/s1",
        dataset_fields={"operator": "alice", "session": "s1"},
        path_in_dataset=rel_path.split("/", 2)[-1],
    )


def counted_files(state_dir: Path) -> dict[str, int]:
    return {str(state): int(count) for state, count in journal_rows(
        state_dir, "SELECT state, COUNT(*) FROM files GROUP BY state")}  # fmt: skip


def counted_current_deliveries(state_dir: Path) -> dict[str, dict[str, int]]:
    """Deliveries of each file's current version, counted row by row (what status promises)."""
    counts: dict[str, dict[str, int]] = {}
    for destination, state, count in journal_rows(
        state_dir,
        "SELECT d.destination, d.state, COUNT(*) FROM deliveries d JOIN files f ON f.id = d.file_id"
        " AND f.version = d.version GROUP BY d.destination, d.state",
    ):
        counts.setdefault(destination, {state.value: 0 for state in DeliveryState})[state] = count
    return counts


def assert_counts_match(journal: Journal, state_dir: Path, step: str) -> None:
    assert journal.file_state_counts() == counted_files(state_dir), step
    assert _nonzero(journal.delivery_counts()) == _nonzero(counted_current_deliveries(state_dir)), step


def _nonzero(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    kept = {name: {state: count for state, count in states.items() if count} for name, states in counts.items()}
    return {name: states for name, states in kept.items() if states}


def test_state_counts_equal_a_full_count_after_every_kind_of_write(tmp_path: Path) -> None:
    journal, other = Journal(tmp_path), Journal(tmp_path)  # two connections, as the workers have
    names = [f"alice/s1/f{index}.tif" for index in range(6)]

    def send(destination: str, state: DeliveryState, count: int) -> Callable[[], object]:
        def step() -> None:
            deliveries = other.deliveries_to_send(destination, count)
            for delivery in deliveries:
                other.start_delivery(delivery, delivery.file.rel_path, None)
            if state != DeliveryState.SENDING:
                other.finish_deliveries([(delivery, state, None) for delivery in deliveries])

        return step

    def hash_all() -> None:
        records = other.files_in_state(FileState.SETTLED, 100) + other.files_in_state(FileState.STALE, 100)
        other.record_hashes([(record, "ab" * 32, None) for record in records], DESTINATIONS)

    def hashed(rel_path: str) -> FileRecord:
        return next(record for record in journal.files_in_state(FileState.HASHED, 10) if record.rel_path == rel_path)

    steps: list[tuple[str, Callable[[], object]]] = [
        ("settled", lambda: journal.record_settled([settled(name) for name in names])),
        ("hashed", hash_all),
        ("sending", send("archive", DeliveryState.SENDING, 2)),
        ("verified", send("archive", DeliveryState.VERIFIED, 6)),
        ("failed", send("nas", DeliveryState.FAILED, 2)),
        ("verified elsewhere", send("nas", DeliveryState.VERIFIED, 3)),
        ("a file changed", lambda: journal.record_settled([settled(names[0], size=20, mtime_ns=456)])),
        ("the same again", lambda: journal.record_settled([settled(names[0], size=20, mtime_ns=456)])),
        ("stale", lambda: journal.mark_file(journal.files_in_state(FileState.SETTLED, 1)[0], FileState.STALE, "x")),
        ("hashed again", hash_all),
        ("file failed", lambda: journal.mark_file(hashed(names[5]), FileState.FAILED, "unreadable")),
        ("retried", lambda: journal.retry_failed(None, exists=lambda root, rel_path: True)),
        ("a new file", lambda: other.record_settled([settled("alice/s1/late.tif")])),
    ]
    for name, step in steps:
        step()
        assert_counts_match(journal, tmp_path, name)
        assert_counts_match(other, tmp_path, name)
    assert journal.file_state_counts().get("hashed", 0) > 0
    journal.close()
    other.close()


def test_a_journal_that_held_rows_before_the_counts_is_counted_when_it_migrates(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_settled([settled(f"alice/s1/f{index}.tif") for index in range(5)])
    journal.record_hashes([(r, "ab" * 32, None) for r in journal.files_in_state(FileState.SETTLED, 3)], DESTINATIONS)
    deliveries = journal.deliveries_to_send("nas", 2)
    journal.finish_deliveries([(delivery, DeliveryState.VERIFIED, None) for delivery in deliveries])
    journal.close()
    # As an agent before migration 9 left it: no counts, no triggers.
    for name in ("files_insert", "files_update", "files_delete",
                 "deliveries_insert", "deliveries_update", "deliveries_delete"):  # fmt: skip
        journal_rows(tmp_path, f"DROP TRIGGER count_{name}")
    journal_rows(tmp_path, "DROP TABLE state_counts")
    journal_rows(tmp_path, "PRAGMA user_version = 8")
    migrated = Journal(tmp_path)
    assert migrated.file_state_counts() == {"settled": 2, "hashed": 3}
    assert migrated.delivery_counts()["nas"]["verified"] == 2
    assert_counts_match(migrated, tmp_path, "migrated")
    migrated.record_settled([settled("alice/s1/new.tif")])
    assert migrated.file_state_counts() == {"settled": 3, "hashed": 3}
    migrated.close()
