from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.errors import JournalError
from agent.journal.store import (
    JOURNAL_FILE_NAME,
    SCHEMA_VERSION,
    DatasetState,
    DeliveryState,
    DestinationHealth,
    FileIdentity,
    FileState,
    Journal,
    SettledFile,
)
from tests.helpers import journal_rows, wait_for


def settled(rel_path: str, size: int = 10, key: str | None = "alice/s1") -> SettledFile:
    return SettledFile(
        root="/root",
        rel_path=rel_path,
        identity=FileIdentity(1, hash(rel_path) & 0xFFFF, size, 123),
        dataset_key=key,
        dataset_fields={"operator": "alice", "session": "s1"} if key else {},
        path_in_dataset=rel_path.split("/", 2)[-1] if key else None,
    )


def test_schema_version_and_check_constraints(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal_rows(tmp_path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert journal_rows(tmp_path, "PRAGMA journal_mode")[0][0] == "wal"
    journal.record_settled([settled("alice/s1/a")])
    with pytest.raises(sqlite3.IntegrityError):
        journal_rows(tmp_path, "UPDATE files SET state = 'bogus'")
    journal.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Journal(tmp_path).close()
    connection = sqlite3.connect(tmp_path / JOURNAL_FILE_NAME)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(JournalError, match="newer agent"):
        Journal(tmp_path)


def test_a_reader_refuses_a_journal_an_older_agent_wrote(tmp_path: Path) -> None:
    Journal(tmp_path).close()
    connection = sqlite3.connect(tmp_path / JOURNAL_FILE_NAME)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    connection.close()
    with pytest.raises(JournalError, match="older agent"):
        Journal(tmp_path, read_only=True)


def test_read_only_without_journal_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="has not run"):
        Journal(tmp_path, read_only=True)


def test_settle_hash_deliver_commit_cycle_and_new_revision(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    touched = journal.record_settled([settled("alice/s1/a.tif"), settled("alice/s1/b.tif"), settled("x.txt", key=None)])
    assert len(touched) == 1
    dataset_id = touched[0]
    assert journal.record_settled([settled("alice/s1/a.tif")]) == []  # same identity: nothing new
    ignored = journal.files_in_state(FileState.IGNORED, 10)
    assert [record.rel_path for record in ignored] == ["x.txt"]

    records = journal.files_in_state(FileState.SETTLED, 10)
    journal.record_hashes([(record, "ab" * 32, None) for record in records], {"/root": ["archive", "copy"]})
    deliveries = journal.deliveries_to_send("archive", 10)
    assert len(deliveries) == 2 and all(d.state == DeliveryState.PENDING for d in deliveries)
    assert journal.datasets_ready_to_commit("archive") == []  # still open

    journal.close_dataset(dataset_id, "idle")
    assert journal.datasets_ready_to_commit("archive") == []  # not delivered yet
    for delivery in deliveries:
        journal.start_delivery(delivery, "k", None)
    journal.finish_deliveries([(delivery, DeliveryState.VERIFIED, None) for delivery in deliveries])
    assert journal.datasets_ready_to_commit("archive") == [dataset_id]
    assert journal.datasets_ready_to_commit("copy") == []  # tracked independently
    journal.record_commit(dataset_id, "archive", 1)
    assert journal.datasets_ready_to_commit("archive") == []

    # A late file reopens the dataset as revision 2; a changed file is a new version.
    journal.record_settled([settled("alice/s1/c.tif"), settled("alice/s1/a.tif", size=11)])
    dataset = journal.dataset(dataset_id)
    assert dataset.state == DatasetState.OPEN and dataset.revision == 2
    changed = journal.file_by_path("/root", "alice/s1/a.tif")
    assert changed is not None and changed.version == 2 and changed.sha256 is None
    assert changed.state == FileState.SETTLED
    journal.close()


def test_checkpoint_and_resume_offset_survive_reopen(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_settled([settled("alice/s1/big.bin", size=1000)])
    record = journal.files_in_state(FileState.SETTLED, 1)[0]
    journal.record_hashes([(record, "cd" * 32, None)], {"/root": ["archive"]})
    delivery = journal.deliveries_to_send("archive", 1)[0]
    journal.start_delivery(delivery, "key", None)
    journal.checkpoint_delivery(delivery, 600)
    journal.close()
    reopened = Journal(tmp_path)
    again = reopened.deliveries_to_send("archive", 1)[0]
    assert again.state == DeliveryState.SENDING and again.offset_bytes == 600
    reopened.close()


def test_forward_migration_keeps_existing_rows(tmp_path: Path) -> None:
    from agent.journal.store import MIGRATIONS

    connection = sqlite3.connect(tmp_path / JOURNAL_FILE_NAME)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            connection.execute(statement)
    connection.execute(
        "INSERT INTO files (root, rel_path, dev, ino, size_bytes, mtime_ns, state, updated_at)"
        " VALUES ('/r', 'a/b/c.tif', 1, 2, 3, 4, 'ignored', 0)"
    )
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    journal = Journal(tmp_path)
    assert journal_rows(tmp_path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION > 1
    assert journal_rows(tmp_path, "SELECT rel_path, metadata_json FROM files") == [("a/b/c.tif", None)]
    assert journal_rows(tmp_path, "SELECT COUNT(*) FROM abandoned_uploads") == [(0,)]
    journal.close()


def test_a_new_file_version_queues_the_old_upload_for_termination(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_settled([settled("alice/s1/a.tif", size=100)])
    record = journal.files_in_state(FileState.SETTLED, 1)[0]
    journal.record_hashes([(record, "ab" * 32, None)], {"/root": ["facility"]})
    delivery = journal.deliveries_to_send("facility", 1)[0]
    journal.save_remote_state(delivery, {"upload_url": "http://x/files/1"})
    journal.record_settled([settled("alice/s1/a.tif", size=200)])  # the file changed
    newer = journal.files_in_state(FileState.SETTLED, 1)[0]
    journal.record_hashes([(newer, "cd" * 32, None)], {"/root": ["facility"]})
    assert [state for _, state in journal.abandoned_uploads("facility")] == [{"upload_url": "http://x/files/1"}]
    assert journal.deliveries_to_send("facility", 1)[0].remote_state is None
    journal.close()


def test_retry_resets_failed_deliveries_and_makes_a_new_revision(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    (dataset_id,) = journal.record_settled([settled("alice/s1/a.tif"), settled("alice/s1/b.tif")])
    journal.record_hashes(
        [(record, "ab" * 32, None) for record in journal.files_in_state(FileState.SETTLED, 10)], {"/root": ["archive"]}
    )
    journal.close_dataset(dataset_id, "idle")
    first, second = journal.deliveries_to_send("archive", 10)
    journal.finish_deliveries([(first, DeliveryState.VERIFIED, None), (second, DeliveryState.FAILED, "HTTP 413")])
    assert journal.datasets_ready_to_commit("archive") == [dataset_id]  # committed with b missing
    journal.record_commit(dataset_id, "archive", 1)
    lost = journal.file_by_path("/root", "alice/s1/a.tif")
    assert lost is not None
    journal.mark_file(lost, FileState.FAILED, "vanished")

    # Narrowed to another item: nothing changes.
    outcome = journal.retry_failed("alice/s2", lambda root, rel_path: True)
    assert outcome.files == [] and outcome.deliveries == 0

    # The failed file is still missing on disk; the failed delivery goes back to pending.
    outcome = journal.retry_failed(None, lambda root, rel_path: rel_path != "alice/s1/a.tif")
    assert outcome.still_missing == ["/root/alice/s1/a.tif"] and outcome.files == []
    assert outcome.deliveries == 1
    (again,) = journal.deliveries_to_send("archive", 10)
    assert again.file.rel_path == "alice/s1/b.tif" and again.state == DeliveryState.PENDING
    assert journal_rows(tmp_path, "SELECT attempts, error FROM deliveries WHERE file_id = ?", (again.file.id,))[0] == (
        0,
        None,
    )
    assert journal.dataset(dataset_id).revision == 2  # the committed bag lacked b: a new revision follows
    journal.finish_deliveries([(again, DeliveryState.VERIFIED, None)])
    assert journal.datasets_ready_to_commit("archive") == [dataset_id]

    # Once the file exists again, retry by path marks it stale so the engine settles it anew.
    outcome = journal.retry_failed("/root/alice/s1/a.tif", lambda root, rel_path: True)
    assert outcome.files == [("/root", "alice/s1/a.tif")]
    assert journal.known_identity("/root", "alice/s1/a.tif")[1] == FileState.STALE  # type: ignore[index]
    journal.close()


def test_delivered_counters_only_grow(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_settled([settled("alice/s1/a.tif", size=100)])
    (record,) = journal.files_in_state(FileState.SETTLED, 10)
    journal.record_hashes([(record, "ab" * 32, None)], {"/root": ["archive"]})
    (delivery,) = journal.deliveries_to_send("archive", 10)
    journal.finish_deliveries([(delivery, DeliveryState.VERIFIED, None)])
    facts = journal.facts()
    assert (facts["delivered_files.archive"], facts["delivered_bytes.archive"]) == ("1", "100")

    # A new version of the file replaces the delivery row; the counters keep what was sent.
    journal.record_settled([settled("alice/s1/a.tif", size=150)])
    (record,) = journal.files_in_state(FileState.SETTLED, 10)
    journal.record_hashes([(record, "cd" * 32, None)], {"/root": ["archive"]})
    (delivery,) = journal.deliveries_to_send("archive", 10)
    journal.finish_deliveries([(delivery, DeliveryState.VERIFIED, None)])
    facts = journal.facts()
    assert (facts["delivered_files.archive"], facts["delivered_bytes.archive"]) == ("2", "250")
    journal.close()


def test_a_quarantined_file_never_gets_a_delivery(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_settled([settled("alice/s1/good.tif"), settled("alice/s1/bad.tif")])
    records = journal.files_in_state(FileState.SETTLED, 10)
    bad = next(record for record in records if record.rel_path.endswith("bad.tif"))
    journal.record_hashes(
        [(record, "ab" * 32, None) for record in records], {"/root": ["archive"]}, {bad.id: "quarantined (malformed)"}
    )
    # One transaction: there is no moment at which the bad file is hashed and sendable.
    assert [d.file.rel_path for d in journal.deliveries_to_send("archive", 10)] == ["alice/s1/good.tif"]
    assert journal.known_identity("/root", "alice/s1/bad.tif")[1] == FileState.FAILED  # type: ignore[index]
    assert journal_rows(tmp_path, "SELECT kind, message FROM errors") == [("item", "quarantined (malformed)")]
    assert journal.facts()["failures.item"] == "1"
    # Quarantine is a flag, whatever the message says; a new version of the file clears it.
    assert journal_rows(tmp_path, "SELECT rel_path FROM files WHERE quarantined = 1") == [("alice/s1/bad.tif",)]
    journal.record_settled([settled("alice/s1/bad.tif", size=999)])
    assert journal_rows(tmp_path, "SELECT COUNT(*) FROM files WHERE quarantined = 1") == [(0,)]
    journal.close()


def test_quarantines_recorded_before_the_flag_are_recognised_once_by_their_text(tmp_path: Path) -> None:
    from agent.journal.store import MIGRATIONS

    connection = sqlite3.connect(tmp_path / JOURNAL_FILE_NAME)
    for number, migration in enumerate(MIGRATIONS[:5]):
        for statement in migration.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {number + 1}")
    for name, error in (("held.tif", "quarantined (malformed, rule says quarantine): bad IFD"), ("x.tif", "gone")):
        connection.execute(
            "INSERT INTO files (root, rel_path, dev, ino, size_bytes, mtime_ns, state, error, updated_at)"
            " VALUES ('/r', ?, 1, 2, 3, 4, 'failed', ?, 0)",
            (name, error),
        )
    connection.commit()
    connection.close()
    journal = Journal(tmp_path)
    assert journal_rows(tmp_path, "SELECT rel_path FROM files WHERE quarantined = 1") == [("held.tif",)]
    journal.close()


def test_oldest_unsafe_age_counts_from_first_sight_not_from_checkpoints(tmp_path: Path) -> None:
    import time

    from agent.observe.status import report_from

    journal = Journal(tmp_path)
    journal.record_settled([settled("alice/s1/big.bin", size=1000)])
    journal.set_destination_health("archive", DestinationHealth.ACTIVE, None, None)
    record = journal.files_in_state(FileState.SETTLED, 1)[0]
    first_seen = journal_rows(tmp_path, "SELECT first_seen_at FROM files WHERE id = ?", (record.id,))[0][0]
    journal.record_hashes([(record, "cd" * 32, None)], {"/root": ["archive"]})
    delivery = journal.deliveries_to_send("archive", 1)[0]
    journal.start_delivery(delivery, "key", None)
    wait_for(lambda: time.time() > first_seen + 0.01, what="the clock to move past first sight")
    journal.checkpoint_delivery(delivery, 600)  # moves updated_at, never the age
    unsafe = report_from(journal)["oldest_unsafe"]
    assert unsafe is not None
    assert unsafe["age_seconds"] >= time.time() - first_seen - 1.0
    updated = journal_rows(tmp_path, "SELECT updated_at FROM deliveries")[0][0]
    assert updated > first_seen
    assert unsafe["since"] == datetime.fromtimestamp(first_seen, UTC).isoformat()
    journal.close()


def test_a_zero_byte_journal_is_refused_not_started_afresh(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE_NAME).write_bytes(b"")
    for read_only in (False, True):
        with pytest.raises(JournalError, match="empty"):
            Journal(tmp_path, read_only=read_only)
    assert (tmp_path / JOURNAL_FILE_NAME).stat().st_size == 0


def _as_user(uid: int, gid: int, action: Callable[[], object]) -> str:
    """Run *action* in a child process as uid:gid (no other groups); its outcome as text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # never returns into pytest
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                action()
                outcome = "ok"
            except Exception as error:
                outcome = f"{type(error).__name__}: {error}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    outcome = os.read(read_end, 4096).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="acting as other users needs root (CI is root)"
)
def test_the_operators_group_reads_the_journal_and_other_users_do_not(tmp_path: Path) -> None:
    from agent.observe.status import build_status

    operators = 65534
    home = Path(tempfile.mkdtemp(prefix="harvest-group-"))  # tmp_path's parents are root's alone
    home.chmod(0o755)
    state = home / "state"
    state.mkdir()
    os.chown(state, 0, operators)
    state.chmod(0o2750)  # as systemd's StateDirectoryMode=0750 with the service's group
    writer = Journal(state)  # open, as the running agent holds it
    try:
        for name in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o640, name
        assert _as_user(operators, operators, lambda: build_status(state)) == "ok"
        other = _as_user(operators, operators - 1, lambda: build_status(state))
        assert other.startswith("JournalError"), other
    finally:
        writer.close()
        shutil.rmtree(home)


def test_migrations_are_history_and_never_change() -> None:
    """A journal migrated last year ran these exact statements: editing one rewrites history.

    A new state or column is a new migration appended to the list, never an edit."""
    import hashlib

    from agent.journal.schema import MIGRATIONS

    applied = ["b92a50279ebc98d6", "e163a4e7358bbdbf", "90cb40191d14c67f", "bca1f731ba9a8215", "612d4e63847b147d"]
    digests = [hashlib.sha256(migration.encode()).hexdigest()[:16] for migration in MIGRATIONS]
    assert digests[: len(applied)] == applied


def test_the_change_generation_moves_whenever_a_dataset_may_become_ready_to_commit(tmp_path: Path) -> None:
    """An idle transfer worker skips the readiness scan while the generation stands still, so
    every step that can make (or unmake) readiness must move it, from any connection."""
    journal, other = Journal(tmp_path), Journal(tmp_path)
    steps: list[tuple[str, Callable[[], object]]] = []
    dataset_id = journal.record_settled([settled("alice/s1/a.tif"), settled("alice/s1/b.tif")])[0]
    records = journal.files_in_state(FileState.SETTLED, 10)

    def deliver(state: DeliveryState) -> Callable[[], object]:
        return lambda: other.finish_deliveries([(d, state, None) for d in other.deliveries_to_send("archive", 1)])

    steps += [
        ("hashed", lambda: other.record_hashes([(r, "ab" * 32, None) for r in records], {"/root": ["archive"]})),
        ("closed", lambda: journal.close_dataset(dataset_id, "idle")),
        ("verified", deliver(DeliveryState.VERIFIED)),
        ("failed", deliver(DeliveryState.FAILED)),
        ("committed", lambda: other.record_commit(dataset_id, "archive", 1)),
        ("new file", lambda: journal.record_settled([settled("alice/s1/c.tif")])),
        ("file failed", lambda: journal.mark_file(journal.files_in_state(FileState.SETTLED, 1)[0], FileState.FAILED,
                                                  "unreadable")),
    ]  # fmt: skip
    for name, step in steps:
        before = journal.change_generation()
        step()
        assert journal.change_generation() > before, name
    still = journal.change_generation()
    journal.set_facts({"heartbeat_at": "1"})  # a heartbeat changes nothing a commit depends on
    assert journal.change_generation() == still
    journal.close()
    other.close()


def test_identities_are_looked_up_a_batch_at_a_time_whatever_the_names(tmp_path: Path) -> None:
    """The reconcile's batched look-up answers exactly as one look-up per file would: for a
    folder whose subfolder's files sort between its own, names that are not UTF-8, and
    files the journal does not know."""
    journal = Journal(tmp_path)
    names = [f"alice/s1/f{index:03d}.tif" for index in range(40)]
    names += [f"alice/s1/f010.tif.d/{index}.tif" for index in range(30)]  # sorts between f010 and f011
    names += ["alice/s1/\udce9t\udce9.tif", "alice/s1/zz.tif"]  # Latin-1 bytes kept as surrogates
    journal.record_settled([settled(name) for name in names])
    asked = names[:40] + names[-2:] + ["alice/s1/new.tif"]
    stale = journal.file_by_path("/root", "alice/s1/f005.tif")
    assert stale is not None
    journal.mark_file(stale, FileState.STALE, "changed while read")
    found = journal.current_identities("/root", asked)
    for name in asked:
        single = journal.known_identity("/root", name)
        expected = None
        if single is not None and single[1] is not FileState.STALE:
            identity = single[0]
            expected = (identity.dev, identity.ino, identity.size_bytes, identity.mtime_ns)
        assert found.get(name) == expected, name
    assert "alice/s1/f005.tif" not in found and "alice/s1/f004.tif" in found
    journal.close()


def test_every_delivery_not_verified_is_reported_and_its_upload_found(tmp_path: Path) -> None:
    """The summary's "not verified" list and the resume states the transfer start aborts
    orphans by read the unverified deliveries through an index: every state but verified
    must still be there."""
    journal = Journal(tmp_path)
    journal.record_settled([settled(f"alice/s1/{name}.tif") for name in "pscv"])
    journal.record_hashes([(record, "ab" * 32, None) for record in journal.files_in_state(FileState.SETTLED, 10)],
                          {"/root": ["archive"]})  # fmt: skip
    by_name = {delivery.file.rel_path: delivery for delivery in journal.deliveries_to_send("archive", 10)}
    for name in ("alice/s1/s.tif", "alice/s1/c.tif", "alice/s1/v.tif"):
        journal.start_delivery(by_name[name], name, None)
        journal.save_remote_state(by_name[name], {"upload": name})
    journal.finish_deliveries([(by_name["alice/s1/c.tif"], DeliveryState.FAILED, "refused"),
                               (by_name["alice/s1/v.tif"], DeliveryState.VERIFIED, "read back")])  # fmt: skip
    undelivered = {row.rel_path: row.error for row in journal.undelivered()}
    assert undelivered == {"alice/s1/p.tif": None, "alice/s1/s.tif": None, "alice/s1/c.tif": "refused"}
    uploads = [state["upload"] for state in journal.remote_states("archive")]
    assert "alice/s1/s.tif" in uploads and "alice/s1/v.tif" not in uploads
    journal.close()
