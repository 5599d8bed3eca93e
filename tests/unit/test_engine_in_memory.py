"""The engine and its workers in one process: an in-memory destination and a fake clock.

Each test drives the stages by hand (``Engine.step`` for discovery, settling and closing;
each worker's ``step`` for hashing and transfer), so what happens and in which order is
decided by the test alone: no threads, no sleeps, no timing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.loader import load_config
from agent.destinations.base import DestinationTransport
from agent.destinations.memory import MemoryTransport
from agent.engine import discovery
from agent.engine.core import Engine
from agent.journal.schema import Hold
from agent.journal.store import DatasetState, Journal
from agent.observe.scan_summary import summarize
from tests.helpers import write_config

QUIET = 5.0
IDLE = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    def __init__(self, tmp_path: Path, **rule: object) -> None:
        """*rule*: settings of the one watch rule (e.g. group_by)."""
        self.instrument = tmp_path / "instrument"
        self.instrument.mkdir()
        settle = {"quiet_seconds": QUIET, "dataset_idle_seconds": IDLE, "dataset_max_open_seconds": 3600}
        settle["truncated_grace_seconds"] = 0  # the tiny stand-in ".tif" files here are not real TIFFs
        watch = [{"path": str(self.instrument), "dataset": "{operator}/{session}", **rule}]
        self.config = load_config(write_config(tmp_path, settle=settle, watch=watch))
        self.clock = FakeClock()
        self.archive = MemoryTransport("archive")
        self.engine = Engine(self.config, watch=False, transports=[self.archive], clock=self.clock)
        self.journal = Journal(self.config.state_dir)  # the workers' connection
        (self.transfer,) = self.engine.transfer_workers
        self.transfer.prepare(self.journal)

    def close(self) -> None:
        self.journal.close()
        self.engine.stop_event.set()
        self.engine._shutdown()

    def write(self, rel_path: str, content: bytes) -> None:
        path = self.instrument / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def settle(self) -> None:
        """Find what was written, let it stay quiet long enough, record it as settled."""
        self.engine.rescan([self.instrument])
        self.engine.step()
        for _ in range(8):
            if not self.engine.settling:
                return
            self.clock.advance(QUIET / 2)
            self.engine.step()
        raise AssertionError("files still settling")

    def work(self) -> None:
        """Hash what settled, then deliver and commit what is ready."""
        self.engine.hash_worker.wake.set()
        self.engine.hash_worker.step(self.journal)
        self.transfer.wake.set()
        self.transfer.step(self.journal)

    def close_idle_datasets(self) -> None:
        self.clock.advance(IDLE + 1)
        self.engine.step()

    def dataset(self, key: str) -> tuple[DatasetState, int]:
        (dataset_id,) = [i for i in self.journal.open_dataset_ids() + self._closed() if self._key(i) == key]
        record = self.journal.dataset(dataset_id)
        return record.state, record.revision

    def _closed(self) -> list[int]:
        return [row.id for row in self.journal.recent_datasets(100) if row.state == "closed"]

    def _key(self, dataset_id: int) -> str:
        return self.journal.dataset(dataset_id).dataset_key


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.close()


BAG = "TEST-SCOPE-01/alice/s1"


def test_a_dataset_is_delivered_then_committed_once_it_is_idle(harness: Harness) -> None:
    harness.write("alice/s1/a.tif", b"a" * 1000)
    harness.write("alice/s1/b.tif", b"b" * 2000)
    harness.settle()
    harness.work()
    assert harness.archive.objects[f"{BAG}/data/a.tif"] == b"a" * 1000
    assert harness.archive.syncs >= 1  # made durable before the journal calls it verified
    assert not any(kind == "commit" for kind, _ in harness.archive.log)  # still open: no commit
    assert harness.dataset("alice/s1") == (DatasetState.OPEN, 1)
    harness.clock.advance(IDLE - 10)
    harness.engine.step()
    assert harness.dataset("alice/s1")[0] == DatasetState.OPEN  # not idle long enough
    harness.close_idle_datasets()
    assert harness.dataset("alice/s1") == (DatasetState.CLOSED, 1)
    harness.work()
    assert harness.archive.log[-1] == ("commit", BAG)  # payload first, manifests last
    manifest = harness.archive.objects[f"{BAG}/manifest-sha256.txt"].decode()
    assert f"{hashlib.sha256(b'a' * 1000).hexdigest()}  data/a.tif" in manifest
    assert "data/b.tif" in manifest


def test_a_late_file_reopens_its_dataset_as_a_new_revision(harness: Harness) -> None:
    harness.write("alice/s1/a.tif", b"a" * 100)
    harness.settle()
    harness.work()
    harness.close_idle_datasets()
    harness.work()
    assert harness.dataset("alice/s1") == (DatasetState.CLOSED, 1)
    harness.write("alice/s1/late.tif", b"late")
    harness.settle()
    assert harness.dataset("alice/s1") == (DatasetState.OPEN, 2)
    assert f"{BAG}/manifest-sha256.txt" in harness.archive.objects  # revision 1 stays whole meanwhile
    harness.work()
    assert f"{BAG}/manifest-sha256.txt" not in harness.archive.objects  # the bag changes: not complete
    harness.close_idle_datasets()
    harness.work()
    assert "data/late.tif" in harness.archive.objects[f"{BAG}/manifest-sha256.txt"].decode()
    assert "Harvest-Revision: 2" in harness.archive.objects[f"{BAG}/bag-info.txt"].decode()


def test_an_operator_hold_stops_uploads_but_not_hashing(harness: Harness) -> None:
    harness.transfer.operator_paused = True
    assert harness.transfer.hold_reason() == Hold.OPERATOR
    harness.write("alice/s1/a.tif", b"a" * 100)
    harness.settle()
    harness.work()
    assert harness.archive.log == []
    assert harness.journal.deliveries_to_send("archive", 10)  # hashed and queued meanwhile
    harness.transfer.operator_paused = False
    harness.work()
    assert harness.archive.log == [("put", f"{BAG}/data/a.tif")]


def test_an_unavailable_destination_pauses_and_resumes_without_losing_a_file(harness: Harness) -> None:
    harness.write("alice/s1/a.tif", b"a" * 100)
    harness.settle()
    harness.archive.available = False
    harness.work()
    assert harness.transfer.paused_reason is not None
    assert [row.state for row in harness.journal.destinations()] == ["paused"]
    harness.work()  # still down: the next probe waits for its backoff
    assert harness.archive.log == []
    harness.archive.available = True
    harness.transfer.retry_now()
    harness.work()  # the probe succeeds: active again
    harness.work()
    assert harness.transfer.paused_reason is None
    assert [row.state for row in harness.journal.destinations()] == ["active"]
    assert harness.archive.log == [("put", f"{BAG}/data/a.tif")]


def test_no_commit_while_a_file_of_the_dataset_is_undelivered(harness: Harness) -> None:
    harness.write("alice/s1/a.tif", b"a" * 100)
    harness.settle()
    harness.engine.hash_worker.wake.set()
    harness.engine.hash_worker.step(harness.journal)
    harness.close_idle_datasets()
    harness.transfer.operator_paused = True
    harness.work()
    assert harness.dataset("alice/s1")[0] == DatasetState.CLOSED
    assert harness.archive.log == []
    harness.transfer.operator_paused = False
    harness.work()
    assert harness.archive.log == [("put", f"{BAG}/data/a.tif"), ("commit", BAG)]


def test_refused_credentials_pause_the_destination_with_a_login_hint_kind(harness: Harness) -> None:
    harness.write("alice/s1/a.tif", b"a")
    harness.settle()
    harness.archive.refuse_credentials = True
    harness.work()
    assert harness.transfer.paused_reason is not None
    assert [error.kind for error in harness.journal.recent_errors(5)] == ["auth"]


def test_the_scan_verdict_asks_each_destination_only_for_the_roots_that_send_to_it(tmp_path: Path) -> None:
    roots = [tmp_path / "confocal", tmp_path / "widefield"]
    watch = [
        {"path": str(roots[0]), "name": "confocal", "dataset": "{operator}/{session}", "destinations": ["core"]},
        {
            "path": str(roots[1]),
            "name": "widefield",
            "dataset": "{operator}/{session}",
            "destinations": ["core", "lab"],
        },
    ]
    destinations = [{"name": name, "type": "filesystem", "path": str(tmp_path / name)} for name in ("core", "lab")]
    config = load_config(write_config(tmp_path, watch=watch, destinations=destinations))
    for root in roots:
        (root / "alice" / "s1").mkdir(parents=True)
        (root / "alice" / "s1" / "a.tif").write_bytes(b"a" * 100)  # no TIFF magic: nothing to check
    clock = FakeClock()
    core, lab = MemoryTransport("core"), MemoryTransport("lab")
    transports: list[DestinationTransport] = [core, lab]
    engine = Engine(config, watch=False, oneshot=True, transports=transports, clock=clock)
    journal = Journal(config.state_dir)
    try:
        for worker in engine.transfer_workers:
            worker.prepare(journal)
        engine.rescan(roots)
        for _ in range(10):
            engine.step()
            clock.advance(QUIET)
        engine.hash_worker.wake.set()
        engine.hash_worker.step(journal)
        clock.advance(3600)
        engine.step()
        for worker in engine.transfer_workers:
            worker.wake.set()
            worker.step(journal)
        assert [kind for kind, _ in core.log].count("commit") == 2
        assert [kind for kind, _ in lab.log].count("commit") == 1
        verdict = summarize(config)
        assert verdict.ok, verdict.text
        journal.close()
    finally:
        engine.stop_event.set()
        engine._shutdown()


@pytest.mark.parametrize(("cpu_share", "rescanned"), [(1.0, True), (1e-12, False)])
def test_a_reconcile_costlier_than_its_cpu_share_puts_the_next_one_off(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, cpu_share: float, rescanned: bool
) -> None:
    """The periodic reconcile keeps its average cost under RECONCILE_CPU_SHARE of a core: a
    scan that cost more makes the next one wait longer than scan.interval_seconds (with a
    share of 1e-12 any scan costs too much; with 1.0 none does)."""
    monkeypatch.setattr(discovery, "RECONCILE_CPU_SHARE", cpu_share)
    harness.write("alice/s1/a.tif", b"a")
    harness.engine.step()  # the start-up reconcile (a small tree: done in this step)
    first = harness.journal.facts()["reconcile_finished_at"]
    interval = float(harness.journal.facts()["reconcile_interval_seconds"])
    assert (interval == harness.config.scan.interval_seconds) is rescanned
    harness.clock.advance(harness.config.scan.interval_seconds + 1)
    harness.engine.step()
    assert (harness.journal.facts()["reconcile_finished_at"] != first) is rescanned


def test_the_reconcile_interval_grows_with_its_cost_only_past_the_share() -> None:
    share = discovery.RECONCILE_CPU_SHARE
    assert discovery.reconcile_interval(600.0, 0.1) == 600.0
    assert discovery.reconcile_interval(600.0, 600.0 * share) == 600.0
    assert discovery.reconcile_interval(600.0, 3.7) == pytest.approx(3.7 / share)
