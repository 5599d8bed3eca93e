from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config.models import Settle
from agent.journal.store import FileIdentity
from agent.pipeline.datasets import DatasetTimers
from agent.pipeline.hashing import identity_of
from agent.pipeline.settle import SettleTracker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeFiles:
    """Stat results by path, changed by the test."""

    def __init__(self) -> None:
        self.sizes: dict[Path, int] = {}

    def stat(self, path: Path) -> os.stat_result:
        if path not in self.sizes:
            raise FileNotFoundError(path)
        size = self.sizes[path]
        return os.stat_result((0o100644, 7, 1, 1, 0, 0, size, 0, 0, 0))

    def identity(self, path: Path) -> FileIdentity:
        return identity_of(self.stat(path))


def test_file_settles_only_after_quiet_period_on_monotonic_clock() -> None:
    clock, files = FakeClock(), FakeFiles()
    tracker = SettleTracker(10, clock=clock, stat=files.stat)
    path = Path("/r/a")
    files.sizes[path] = 5
    tracker.observe("/r", "a", path, files.identity(path))
    for step in range(1, 10):
        clock.now += 1
        assert tracker.poll().settled == [], f"settled early at {step}s"
    clock.now += 1.01
    assert [candidate.rel_path for candidate in tracker.poll().settled] == ["a"]
    assert len(tracker) == 0


def test_growing_file_never_settles_and_quiet_restarts_after_last_change() -> None:
    clock, files = FakeClock(), FakeFiles()
    tracker = SettleTracker(4, clock=clock, stat=files.stat)
    path = Path("/r/growing")
    files.sizes[path] = 0
    tracker.observe("/r", "growing", path, files.identity(path))
    for _ in range(40):  # the writer appends every second for 40 s
        clock.now += 1
        files.sizes[path] += 100
        assert tracker.poll().settled == []
    for _ in range(3):
        clock.now += 1
        assert tracker.poll().settled == []
    clock.now += 1.5
    settled = tracker.poll().settled
    assert len(settled) == 1 and settled[0].identity.size_bytes == 4000


def test_vanished_candidate_is_reported_and_forgotten() -> None:
    clock, files = FakeClock(), FakeFiles()
    tracker = SettleTracker(2, clock=clock, stat=files.stat)
    path = Path("/r/gone")
    files.sizes[path] = 1
    tracker.observe("/r", "gone", path, files.identity(path))
    del files.sizes[path]
    clock.now += 3
    result = tracker.poll()
    assert [candidate.rel_path for candidate in result.vanished] == ["gone"] and not result.settled
    assert len(tracker) == 0


def test_dataset_closes_after_idle_but_not_while_busy() -> None:
    clock = FakeClock()
    timers = DatasetTimers(Settle(dataset_idle_seconds=60, dataset_max_open_seconds=3600), clock=clock)
    timers.touch(1)
    clock.now += 59
    assert timers.due(busy=[]) == []
    timers.touch(1)  # a new member resets the idle timer
    clock.now += 59
    assert timers.due(busy=[]) == []
    clock.now += 2
    assert timers.due(busy=[1]) == []  # a member still settling keeps it open
    decisions = timers.due(busy=[])
    assert [(decision.dataset_id, decision.reason) for decision in decisions] == [(1, "idle")]
    assert 1 not in timers


def test_marker_closes_dataset_and_idle_alone_does_not() -> None:
    clock = FakeClock()
    timers = DatasetTimers(Settle(dataset_idle_seconds=5, marker="acquisition.done"), clock=clock)
    timers.touch(7)
    clock.now += 100
    assert timers.due(busy=[]) == []
    timers.touch(7, marker=True)
    assert [decision.reason for decision in timers.due(busy=[])] == ["marker file acquisition.done arrived"]


def test_forced_close_cap_even_while_busy() -> None:
    clock = FakeClock()
    timers = DatasetTimers(Settle(dataset_idle_seconds=5, dataset_max_open_seconds=100), clock=clock)
    timers.touch(3)
    for _ in range(20):
        clock.now += 5
        timers.touch(3)
    decisions = timers.due(busy=[3])
    assert len(decisions) == 1 and decisions[0].forced and decisions[0].reason.startswith("forced")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_settling_file_replaced_by_a_named_pipe_is_dropped_not_settled(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(2, clock=clock)
    path = tmp_path / "a.tif"
    path.write_bytes(b"1")
    tracker.observe("/r", "a.tif", path, identity_of(path.stat()))
    path.unlink()
    os.mkfifo(path)
    clock.now += 5
    result = tracker.poll()
    assert result.settled == [] and [c.rel_path for c in result.vanished] == ["a.tif"]
    assert len(tracker) == 0


def test_a_followed_symlink_settles_by_its_targets_identity(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(2, clock=clock)
    (tmp_path / "real.tif").write_bytes(b"1")
    link = tmp_path / "alias.tif"
    link.symlink_to(tmp_path / "real.tif")
    tracker.observe("/r", "alias.tif", link, identity_of(os.stat(link)), follow_symlinks=True)
    clock.now += 1
    tracker.poll()
    clock.now += 2
    (settled,) = tracker.poll().settled
    assert settled.identity == identity_of(os.stat(link))
